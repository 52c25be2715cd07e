#!/usr/bin/env bash
# What routing costs, side by side in one run (same tool, `calos load`, same
# concurrency and request count): calos mock-llm directly; through calos to
# one deployment (a provider set by environment); to two deployments of one
# model behind the balancer; and to two of which one is dead, after its
# breaker has opened (a dead deployment should cost nothing).
#
#   bench/routing.sh                 # CONC=10 N=3000
#   CONC=20 N=5000 bench/routing.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
CONC=${CONC:-10} N=${N:-3000}

build_release
start_mock a --ttft-ms 0 --tokens-per-sec 0 --tokens 20
A_URL=$MOCK_URL
start_mock b --ttft-ms 0 --tokens-per-sec 0 --tokens 20
B_URL=$MOCK_URL
cat >"$TMP/calos.toml" <<TOML
[[deployment]]
model = "pair"
provider = "compat"
url = "$A_URL/v1"
upstream_model = "mock-gpt"

[[deployment]]
model = "pair"
provider = "compat"
url = "$B_URL/v1"
upstream_model = "mock-gpt"

[[deployment]]
model = "half-dead"
provider = "compat"
url = "http://127.0.0.1:9/v1"
upstream_model = "mock-gpt"

[[deployment]]
model = "half-dead"
provider = "compat"
url = "$B_URL/v1"
upstream_model = "mock-gpt"
TOML
start_calos calos "$A_URL" CALOS_CONFIG="$TMP/calos.toml" CALOS_BREAKER_COOLDOWN_SECS=600
TOKEN=$(register_user "$CALOS_URL")
say "mocks at $A_URL and $B_URL, calos at $CALOS_URL"

load() { # NAME URL MODEL [flags]: one closed-loop `calos load --json` run into $TMP/NAME.json
  local name=$1 url=$2 model=$3; shift 3
  say "$name"
  "$BIN" load --json --api openai --model "$model" --url "$url" --warmup 200 -c "$CONC" -n "$N" "$@" >"$TMP/$name.json"
}
load direct "$A_URL" mock-gpt
load one-deployment "$CALOS_URL" mock-gpt --token "$TOKEN" --no-cache
load two-deployments "$CALOS_URL" pair --token "$TOKEN" --no-cache
load one-dead "$CALOS_URL" half-dead --token "$TOKEN" --no-cache
curl -s "$(sed -n 's/.*dashboard \(http[^)]*\)).*/\1/p' "$TMP/calos.log")/metrics" |
  grep -E '^calos_deployment_(attempts_total|breaker_state)\{deployment="(pair|half-dead)' >"$TMP/metrics.txt" || true

python3 - "$TMP" "$CONC" "$N" <<'PY'
import json, pathlib, sys
tmp, conc, n = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
runs = ["direct", "one-deployment", "two-deployments", "one-dead"]
base = json.loads((tmp / "direct.json").read_text())
print()
print(f"routing cost, closed loop: {conc} users x {n} requests each, whole answers (ms)")
print(f"{'run':<18}{'req/s':>9}{'p50':>9}{'p99':>9}{'p50 added':>11}{'failed':>8}")
for run in runs:
    r = json.loads((tmp / f"{run}.json").read_text())
    lat = r["latency"] or {}
    added = lat.get("p50", 0) - (base["latency"] or {}).get("p50", 0)
    print(f"{run:<18}{r['requestsPerSec']:>9.0f}{lat.get('p50', 0):>9.3f}{lat.get('p99', 0):>9.3f}"
          f"{added:>+11.3f}{r['requests']['failed']:>8}")
print()
print((tmp / "metrics.txt").read_text().strip() or "(no deployment metrics read)")
PY
