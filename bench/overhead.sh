#!/usr/bin/env bash
# calos's own cost, side by side in one run: the same load tool (`calos load`),
# rate and concurrency against `calos mock-llm` directly and through calos, whole
# and streamed; then resident memory per idle open stream at STREAMS streams.
#
#   bench/overhead.sh                      # RATE=1000 DURATION=10s CONC=10 N=300 STREAMS=1000
#   RATE=500 DURATION=5s bench/overhead.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RATE=${RATE:-1000} DURATION=${DURATION:-10s} CONC=${CONC:-10} N=${N:-300} STREAMS=${STREAMS:-1000}

build_release
start_mock mock --ttft-ms 0 --tokens-per-sec 0 --tokens 20
start_calos calos "$MOCK_URL"
TOKEN=$(register_user "$CALOS_URL")
say "mock-llm at $MOCK_URL, calos at $CALOS_URL"

load() { # NAME URL [flags]: one `calos load --json` run into $TMP/NAME.json
  local name=$1 url=$2; shift 2
  say "$name"
  "$BIN" load --json --api openai --model mock-gpt --url "$url" --warmup 200 "$@" >"$TMP/$name.json"
}
through=(--token "$TOKEN" --no-cache)
load open-whole-direct "$MOCK_URL" --rate "$RATE" --duration "$DURATION"
load open-whole-calos "$CALOS_URL" "${through[@]}" --rate "$RATE" --duration "$DURATION"
load open-stream-direct "$MOCK_URL" --stream --rate "$RATE" --duration "$DURATION"
load open-stream-calos "$CALOS_URL" "${through[@]}" --stream --rate "$RATE" --duration "$DURATION"
load closed-whole-direct "$MOCK_URL" -c "$CONC" -n "$N"
load closed-whole-calos "$CALOS_URL" "${through[@]}" -c "$CONC" -n "$N"
load closed-stream-direct "$MOCK_URL" --stream -c "$CONC" -n "$N"
load closed-stream-calos "$CALOS_URL" "${through[@]}" --stream -c "$CONC" -n "$N"

say "memory per idle open stream ($STREAMS streams held open after their first token)"
measure_idle_streams "$STREAMS" "$TOKEN"
printf '{"streams": %s, "rssBeforeKb": %s, "rssDuringKb": %s}\n' "$OPEN_STREAMS" "$RSS_BEFORE" "$RSS_DURING" >"$TMP/memory.json"

python3 bench/report.py overhead "$TMP" "$RATE" "$DURATION" "$CONC" "$N"
