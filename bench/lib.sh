# Shared by the bench scripts: build once, start calos mock-llm and calos on free
# ports, sign up a bench user, and stop everything on exit.
# shellcheck shell=bash

BIN=${CALOS_BIN:-target/release/calos}
TMP=$(mktemp -d)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }

build_release() {
  if [ -z "${CALOS_BIN:-}" ]; then
    say "building calos (release)"
    cargo build --release -p server --bin calos >&2
  fi
  # 1,000 client sockets + 1,000 upstream sockets + the listeners.
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
}

# wait_for_line FILE REGEX: prints the first match (the process's address line).
wait_for_line() {
  local file=$1 regex=$2
  for _ in $(seq 1 200); do
    if grep -oE "$regex" "$file" 2>/dev/null | head -1 | grep -q .; then
      grep -oE "$regex" "$file" | head -1
      return 0
    fi
    sleep 0.05
  done
  echo "timed out waiting for $regex in $file:" >&2
  cat "$file" >&2
  return 1
}

# start_mock NAME [mock-llm flags]: sets MOCK_URL.
start_mock() {
  local name=$1; shift
  "$BIN" mock-llm --port 0 "$@" >"$TMP/$name.log" 2>"$TMP/$name.err" &
  PIDS+=($!)
  MOCK_URL=$(wait_for_line "$TMP/$name.log" 'listening on http://127\.0\.0\.1:[0-9]+')
  MOCK_URL=${MOCK_URL#listening on }
}

# start_calos NAME UPSTREAM_URL [env...]: sets CALOS_URL and CALOS_PID. The mock
# is reached as an OpenAI-compatible server (`compat`), the same endpoint the
# direct runs use, so both sides speak the same wire format.
start_calos() {
  local name=$1 upstream=$2; shift 2
  mkdir -p "$TMP/$name-data"
  env CALOS_DATA_DIR="$TMP/$name-data" LOG_LEVEL=warn \
    CALOS_COMPAT_URL="$upstream/v1" CALOS_MODEL_ROUTES='mock-*=compat' \
    OLLAMA_URL=http://127.0.0.1:9 \
    CALOS_CHAT_RATE_PER_SEC=1000000 CALOS_CHAT_BURST=1000000 \
    CALOS_PROVIDER_CONCURRENCY=4096 CALOS_QUEUE_SIZE=4096 \
    CALOS_UPSTREAM_POOL_MAX_IDLE=2048 CALOS_IDLE_TIMEOUT_SECS=600 \
    CALOS_MAX_CONNECTIONS=100000 CALOS_MAX_CONNECTIONS_PER_IP=100000 CALOS_MAX_INFLIGHT_PER_USER=100000 \
    "$@" "$BIN" serve --local --port 0 --dashboard-port 0 >"$TMP/$name.log" 2>"$TMP/$name.err" &
  CALOS_PID=$!
  PIDS+=("$CALOS_PID")
  CALOS_URL=$(wait_for_line "$TMP/$name.log" 'listening on http://127\.0\.0\.1:[0-9]+')
  CALOS_URL=${CALOS_URL#listening on }
}

# register_user URL: prints a token for a fresh bench account.
register_user() {
  curl -sf -X POST "$1/api/auth/register" -H 'Content-Type: application/json' \
    -d "{\"username\":\"bench-$RANDOM$RANDOM\",\"password\":\"bench-password-123\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# measure_idle_streams STREAMS TOKEN: holds STREAMS streams open through calos
# after their first token (the mock stalls them) and sets OPEN_STREAMS,
# RSS_BEFORE and RSS_DURING (KiB of calos's resident memory).
measure_idle_streams() {
  local streams=$1 token=$2 loader
  RSS_BEFORE=$(rss_kb "$CALOS_PID")
  curl -sf -X POST "$MOCK_URL/_mock/fault" -H 'Content-Type: application/json' -d '{"fault":"stall-after:1"}'
  "$BIN" load --json --api openai --model mock-gpt --url "$CALOS_URL" --token "$token" --no-cache --stream \
    -c "$streams" -n 1 --timeout 600 >/dev/null 2>&1 &
  loader=$!
  OPEN_STREAMS=0
  for _ in $(seq 1 600); do
    OPEN_STREAMS=$(curl -sf "$MOCK_URL/_mock/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["openStreams"])')
    [ "$OPEN_STREAMS" -ge "$streams" ] && break
    sleep 0.1
  done
  sleep 1
  RSS_DURING=$(rss_kb "$CALOS_PID")
  kill -INT "$loader" 2>/dev/null || true
  wait "$loader" 2>/dev/null || true
  curl -sf -X POST "$MOCK_URL/_mock/fault" -H 'Content-Type: application/json' -d '{"fault":"none"}'
}
