#!/usr/bin/env bash
# calos's hot path against its goals, every row in one run, as ratios to the
# same measurement taken directly against `calos mock-llm` moments before (this
# machine is shared and noisy: only side-by-side figures mean anything).
#
#   bench/hotpath.sh              # DURATION=10s CONC=20 RATE=1000 STREAMS=1000 CHATS=100000
#   bench/hotpath.sh peers        # the same, plus LiteLLM's proxy on the same mock
#   DURATION=5s bench/hotpath.sh  # quicker, noisier
#
# oha drives the closed- and open-loop HTTP rows (installed from crates.io when
# missing); `calos load` drives the streamed rows (it times every event) and the
# 100,000-chat memory run. CPU per request is calos's own user+system time
# (/proc/PID/stat) over the requests it answered.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-10s} CONC=${CONC:-20} RATE=${RATE:-1000} STREAMS=${STREAMS:-1000}
CHATS=${CHATS:-100000} PEERS=${1:-}

command -v oha >/dev/null || { say "installing oha from crates.io (once, ~5 min)"; cargo install oha --locked >&2; }
build_release
start_mock mock --ttft-ms 0 --tokens-per-sec 0 --tokens 5
start_calos calos "$MOCK_URL"
TOKEN=$(register_user "$CALOS_URL")
say "mock-llm at $MOCK_URL, calos at $CALOS_URL (pid $CALOS_PID)"

BODY=$TMP/body.json
echo '{"model":"mock-gpt","messages":[{"role":"user","content":"Hello"}],"stream":false}' >"$BODY"
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# oha_run NAME URL [oha flags]: one oha run into $TMP/NAME.json as
# {rps, p50, p99, ok, failed, cpuUsPerReq}; CPU is calos's, when calos answered.
oha_run() {
  local name=$1 url=$2; shift 2
  say "$name"
  local before; before=$(cpu_ticks "$CALOS_PID")
  oha --no-tui --output-format json "$@" "$url" >"$TMP/$name.oha.json"
  local after; after=$(cpu_ticks "$CALOS_PID")
  python3 - "$TMP/$name.oha.json" "$((after - before))" "$TICKS" >"$TMP/$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); s = r["summary"]; p = r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
ok = sum(v for k, v in codes.items() if k.startswith("2"))
# A -z run ends by aborting the requests in flight; those are not failures.
errors = {k: v for k, v in r.get("errorDistribution", {}).items() if "deadline" not in k}
failed = sum(codes.values()) - ok + sum(errors.values())
cpu_us = int(sys.argv[2]) * 1e6 / int(sys.argv[3])
print(json.dumps({"rps": s["requestsPerSec"], "p50": (p["p50"] or 0) * 1000, "p99": (p["p99"] or 0) * 1000,
                  "ok": ok, "failed": failed, "cpuUsPerReq": cpu_us / ok if ok else 0}))
PY
}

chat=(-m POST -T application/json -D "$BODY")
fresh=(-H "Authorization: Bearer $TOKEN" -H 'Cache-Control: no-cache')
cached=(-H "Authorization: Bearer $TOKEN")
closed=(-c "$CONC" -z "$DURATION")
open=(-q "$RATE" --latency-correction -c 50 -z "$DURATION")
MOCK_CHAT=$MOCK_URL/v1/chat/completions CALOS_CHAT=$CALOS_URL/v1/chat/completions

# Warm both (connection pools, the cache's one entry, the account cache).
oha --no-tui -n 2000 -c "$CONC" "${chat[@]}" "$MOCK_CHAT" >/dev/null
oha --no-tui -n 2000 -c "$CONC" "${chat[@]}" "${cached[@]}" "$CALOS_CHAT" >/dev/null
RSS_START=$(rss_kb "$CALOS_PID")

oha_run closed-direct "$MOCK_CHAT" "${closed[@]}" "${chat[@]}"
oha_run closed-calos "$CALOS_CHAT" "${closed[@]}" "${chat[@]}" "${fresh[@]}"
# The same with an API key instead of a session token (a SHA-256 and a cache
# lookup instead of a JWT check).
KEY=$(curl -sf -X POST "$CALOS_URL/api/keys" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d '{"name":"bench"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
oha --no-tui -n 2000 -c "$CONC" "${chat[@]}" -H "Authorization: Bearer $KEY" -H 'Cache-Control: no-cache' "$CALOS_CHAT" >/dev/null
oha_run closed-key "$CALOS_CHAT" "${closed[@]}" "${chat[@]}" -H "Authorization: Bearer $KEY" -H 'Cache-Control: no-cache'
# The same on a second calos without the usage ledger, right after: what
# writing every request's row costs (the hand-over on the request path, and
# the writer's batched inserts, which spend calos's CPU too).
MAIN_PID=$CALOS_PID MAIN_URL=$CALOS_URL
start_calos calos-noledger "$MOCK_URL" CALOS_USAGE_LEDGER=off
NOLEDGER_TOKEN=$(register_user "$CALOS_URL")
oha --no-tui -n 2000 -c "$CONC" "${chat[@]}" -H "Authorization: Bearer $NOLEDGER_TOKEN" -H 'Cache-Control: no-cache' "$CALOS_URL/v1/chat/completions" >/dev/null
oha_run closed-noledger "$CALOS_URL/v1/chat/completions" "${closed[@]}" "${chat[@]}" -H "Authorization: Bearer $NOLEDGER_TOKEN" -H 'Cache-Control: no-cache'
kill "$CALOS_PID" 2>/dev/null || true
CALOS_PID=$MAIN_PID CALOS_URL=$MAIN_URL
oha_run closed-calos-again "$CALOS_CHAT" "${closed[@]}" "${chat[@]}" "${fresh[@]}"
oha_run closed-cached "$CALOS_CHAT" "${closed[@]}" "${chat[@]}" "${cached[@]}"
oha_run open-direct "$MOCK_CHAT" "${open[@]}" "${chat[@]}"
oha_run open-calos "$CALOS_CHAT" "${open[@]}" "${chat[@]}" "${fresh[@]}"
oha_run health "$CALOS_URL/api/health" "${closed[@]}"
oha_run me "$CALOS_URL/api/auth/me" "${closed[@]}" -H "Authorization: Bearer $TOKEN"

calos_load() { # NAME URL [flags]: one `calos load --json` run into $TMP/NAME.json
  local name=$1 url=$2; shift 2
  say "$name"
  "$BIN" load --json --api openai --model mock-gpt --url "$url" --warmup 200 "$@" >"$TMP/$name.json"
}
calos_load stream-direct "$MOCK_URL" --stream --rate "$RATE" --duration "$DURATION"
calos_load stream-calos "$CALOS_URL" --token "$TOKEN" --no-cache --stream --rate "$RATE" --duration "$DURATION"

say "memory per idle open stream ($STREAMS streams held open after their first token)"
measure_idle_streams "$STREAMS" "$TOKEN"

say "resident memory over 2 × $CHATS chats"
sleep 2
rss_a=$(rss_kb "$CALOS_PID")
"$BIN" load --json --api openai --model mock-gpt --url "$CALOS_URL" --token "$TOKEN" --no-cache \
  -c "$CONC" -n "$((CHATS / CONC))" >"$TMP/chats-1.json"
rss_b=$(rss_kb "$CALOS_PID")
"$BIN" load --json --api openai --model mock-gpt --url "$CALOS_URL" --token "$TOKEN" --no-cache \
  -c "$CONC" -n "$((CHATS / CONC))" >"$TMP/chats-2.json"
rss_c=$(rss_kb "$CALOS_PID")
printf '{"streams": %s, "rssBeforeKb": %s, "rssDuringKb": %s, "rssStartKb": %s, "rssChatsKb": [%s, %s, %s], "chats": %s}\n' \
  "$OPEN_STREAMS" "$RSS_BEFORE" "$RSS_DURING" "$RSS_START" "$rss_a" "$rss_b" "$rss_c" "$CHATS" >"$TMP/memory.json"

if [ "$PEERS" = peers ]; then
  . bench/peers.sh
  start_litellm "$MOCK_URL"
  oha_run_peer() { # like oha_run, without calos's CPU
    local saved=$CALOS_PID; CALOS_PID=$LITELLM_PID; oha_run "$@"; CALOS_PID=$saved
  }
  oha_run closed-direct-2 "$MOCK_CHAT" "${closed[@]}" "${chat[@]}"
  oha_run_peer closed-litellm "$LITELLM_URL/v1/chat/completions" "${closed[@]}" "${chat[@]}" \
    -H "Authorization: Bearer $LITELLM_KEY"
  oha_run closed-calos-2 "$CALOS_CHAT" "${closed[@]}" "${chat[@]}" "${fresh[@]}"
fi

python3 bench/report.py hotpath "$TMP" "$DURATION" "$CONC" "$RATE"
