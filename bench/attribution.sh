#!/usr/bin/env bash
# How often the differential verdict names the right component: a baseline,
# then +50 ms in one component at a time (the network in front of calos,
# PostgreSQL behind it, the model's first token, calos's own code) and a
# control with nothing changed; each row is TRIALS runs of
# `calos perf --runs RUNS --baseline`, and the table counts what each named.
#
#   bench/attribution.sh                    # TRIALS=20 RUNS=5 BASE_RUNS=20
#   TRIALS=50 bench/attribution.sh
#
# Every delay is real: `calos mock-net` in front of calos (25 ms each way) and
# in front of PostgreSQL (1.25 ms each way on each of a chat's ~20 database
# round trips, about 50 ms in all; the table prints what it measured), the mock
# model's TTFT (5 → 55 ms), and the debug build's CALOS_DEBUG_DELAY_MS. A debug
# build, because release builds do not have the debug delay at all.
set -euo pipefail
cd "$(dirname "$0")/.."
CALOS_BIN=${CALOS_BIN:-target/debug/calos}
. bench/lib.sh
TRIALS=${TRIALS:-20} RUNS=${RUNS:-5} BASE_RUNS=${BASE_RUNS:-20}
PG_ADMIN=${CALOS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
DB="calos_bench_attribution_$$"

if [ ! -x "$CALOS_BIN" ] || [ "${CALOS_BIN}" = target/debug/calos ]; then
  say "building calos (debug: the code delay exists only there)"
  cargo build -p server --bin calos >&2
fi
psql -q "$PG_ADMIN" -c "CREATE DATABASE $DB" >/dev/null
drop_database() {
  cleanup
  psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap drop_database EXIT

# start NAME READY_REGEX CMD...: runs CMD in the background, waits for its
# ready line, and sets NAME_PID and NAME_ADDR (host:port from the line).
start() {
  local name=$1 regex=$2; shift 2
  "$@" >"$TMP/$name.log" 2>"$TMP/$name.err" &
  local pid=$!
  PIDS+=("$pid")
  local line
  line=$(wait_for_line "$TMP/$name.log" "$regex")
  printf -v "${name}_PID" '%s' "$pid"
  printf -v "${name}_ADDR" '%s' "$(grep -oE '127\.0\.0\.1:[0-9]+' <<<"$line" | head -1)"
}

# stop NAME: stops it and waits, so its port is free for the next start.
stop() {
  local pid_var="${1}_PID"
  kill "${!pid_var}" 2>/dev/null || true
  wait "${!pid_var}" 2>/dev/null || true
}

port_of() { echo "${1##*:}"; }

start_model() { # TTFT_MS [PORT]
  start MODEL 'listening on http://127\.0\.0\.1:[0-9]+' \
    "$CALOS_BIN" mock-llm --port "${2:-0}" --ttft-ms "$1" --tokens-per-sec 0 --tokens 3
}
start_db_link() { # DELAY_MS [PORT]
  start DBLINK 'mock-net listening on 127\.0\.0\.1:[0-9]+' \
    "$CALOS_BIN" mock-net --listen "${2:-0}" --target 127.0.0.1:5432 --delay-ms "$1"
}
start_calos_at() { # CODE_DELAY_MS [PORT]
  mkdir -p "$TMP/calos-data"
  start CALOS 'listening on http://127\.0\.0\.1:[0-9]+' \
    env CALOS_DATA_DIR="$TMP/calos-data" LOG_LEVEL=warn \
    DATABASE_URL="postgres://postgres@$DBLINK_ADDR/$DB" \
    CALOS_COMPAT_URL="http://$MODEL_ADDR/v1" CALOS_MODEL_ROUTES='mock-*=compat' \
    OLLAMA_URL=http://127.0.0.1:9 CALOS_DEBUG_DELAY_MS="$1" \
    "$CALOS_BIN" serve --local --port "${2:-0}" --dashboard-port 0
}
start_front() { # DELAY_MS [PORT]
  start FRONT 'mock-net listening on 127\.0\.0\.1:[0-9]+' \
    "$CALOS_BIN" mock-net --listen "${2:-0}" --target "$CALOS_ADDR" --delay-ms "$1"
}

start_model 5
start_db_link 0
start_calos_at 0
start_front 0
TOKEN=$(register_user "http://$CALOS_ADDR")
say "model $MODEL_ADDR, PostgreSQL via $DBLINK_ADDR, calos $CALOS_ADDR, clients via $FRONT_ADDR"

perf() { # perf FLAGS...: one `calos perf` series through the front proxy, as JSON
  "$CALOS_BIN" perf --url "http://$FRONT_ADDR" --token "$TOKEN" --model mock-gpt \
    --conversation --json "$@"
}

say "baseline: $BASE_RUNS runs"
perf --runs "$BASE_RUNS" --warmup 5 --save "$TMP/baseline.json" >"$TMP/baseline-report.json"

trials() { # ROW: TRIALS comparisons into $TMP/ROW.jsonl
  say "$1: $TRIALS trials of $RUNS runs"
  : >"$TMP/$1.jsonl"
  for _ in $(seq 1 "$TRIALS"); do
    perf --runs "$RUNS" --baseline "$TMP/baseline.json" |
      python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["change"]))' >>"$TMP/$1.jsonl"
  done
}

trials control

stop FRONT; start_front 25 "$(port_of "$FRONT_ADDR")"
trials network
stop FRONT; start_front 0 "$(port_of "$FRONT_ADDR")"

stop DBLINK; start_db_link 1.25 "$(port_of "$DBLINK_ADDR")"
trials database
stop DBLINK; start_db_link 0 "$(port_of "$DBLINK_ADDR")"

stop MODEL; start_model 55 "$(port_of "$MODEL_ADDR")"
trials model
stop MODEL; start_model 5 "$(port_of "$MODEL_ADDR")"

stop FRONT; stop CALOS
start_calos_at 50 "$(port_of "$CALOS_ADDR")"
start_front 0 "$(port_of "$FRONT_ADDR")"
trials code

python3 - "$TMP" "$TRIALS" "$RUNS" "$BASE_RUNS" <<'PY'
import json, pathlib, statistics, sys
tmp, trials, runs, base_runs = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
rows = [  # (row, what was slowed, the culprit that is right, the component that grew)
    ("network", "+25 ms each way before calos", "network", "network"),
    ("database", "+1.25 ms each way to PostgreSQL", "database", "database"),
    ("model", "TTFT 5 -> 55 ms", "llm", "firstToken"),
    ("code", "CALOS_DEBUG_DELAY_MS=50", "code", "code"),
    ("control", "nothing", "none", None),
]
cols = ["network", "database", "llm", "code", "queue", "none"]
print()
print(f"attribution: a baseline of {base_runs} runs, then {trials} trials of `calos perf --runs {runs} --baseline` per row")
print(f"{'injected':<10}{'measured':>10}" + "".join(f"{c:>10}" for c in cols) + f"{'correct':>10}")
for row, what, right, grew in rows:
    changes = [json.loads(l) for l in (tmp / f"{row}.jsonl").read_text().splitlines() if l.strip()]
    named = [c["verdict"]["culprit"] for c in changes]
    counts = {c: named.count(c) for c in cols}
    shift = ""
    if grew:
        shifts = [x["shift"] for c in changes for x in c["components"] if x["component"] == grew]
        shift = f"{statistics.median(shifts):+.1f}ms"
    ok = counts[right]
    print(f"{row:<10}{shift:>10}" + "".join(f"{counts[c]:>10}" for c in cols)
          + f"{100 * ok / max(len(named), 1):>9.0f}%")
print()
print("rows: what was slowed; columns: the culprit the verdict named (none: no change beyond the noise,")
print("or faster); measured: the median shift of the slowed component across the row's trials.")
PY
