#!/usr/bin/env bash
# Is `calos load` a fair instrument? Same endpoint, same concurrency, same
# request count: `calos load`, `oha` (crates.io) and `ab` (apache2-utils),
# interleaved twice so machine noise hits each tool alike.
#
#   0. ceiling:    mock-llm directly, answering at once, -c 50 (the generators' own limit)
#   1. throughput: calos → mock-llm answering at once, -c 50  (the generator must keep up)
#   2. agreement:  calos → mock-llm answering in 20 ms, -c 10 (p50/p99 must agree)
#
#   bench/loadgen.sh            # TOTAL=20000 requests per run (AGREE_TOTAL=3000 in part 2)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
TOTAL=${TOTAL:-20000} AGREE_TOTAL=${AGREE_TOTAL:-3000}

command -v oha >/dev/null || { say "installing oha from crates.io (once)"; cargo install oha --locked >&2 || cargo install oha >&2; }
command -v ab >/dev/null || { say "installing ab (apache2-utils)"; apt-get install -y -qq apache2-utils >&2; }
build_release
BODY=$TMP/chat-request.json
echo '{"model":"mock-gpt","messages":[{"role":"user","content":"Hello"}],"stream":false}' >"$BODY"

gen() { # TOOL LABEL URL CONC: one run, normalised to {rps,p50,p99,failed} in $TMP/gen-LABEL.json
  local tool=$1 label=$2 url=$3 conc=$4 out=$TMP/gen-$2.json
  local endpoint=$url/v1/chat/completions per=$((TOTAL / conc))
  say "$label"
  case $tool in
    calos)
      "$BIN" load --json --api openai --model mock-gpt --url "$url" --token "$TOKEN" --no-cache \
        -c "$conc" -n "$per" | python3 -c '
import json,sys; r=json.load(sys.stdin)
print(json.dumps({"rps": r["requestsPerSec"], "p50": r["latency"]["p50"], "p99": r["latency"]["p99"], "failed": r["requests"]["failed"]}))' >"$out" ;;
    oha)
      oha --no-tui --output-format json -n "$((per * conc))" -c "$conc" -m POST \
        -H "Authorization: Bearer $TOKEN" -H 'Cache-Control: no-cache' -T application/json -D "$BODY" "$endpoint" |
        python3 -c '
import json,sys; r=json.load(sys.stdin); s=r["summary"]; p=r["latencyPercentiles"]
ok=sum(v for k,v in r["statusCodeDistribution"].items() if k.startswith("2"))
print(json.dumps({"rps": s["requestsPerSec"], "p50": p["p50"]*1000, "p99": p["p99"]*1000, "failed": s.get("total",0) and (sum(r["statusCodeDistribution"].values())-ok+sum(r.get("errorDistribution",{}).values()))}))' >"$out" ;;
    ab)
      ab -q -n "$((per * conc))" -c "$conc" -H "Authorization: Bearer $TOKEN" -H 'Cache-Control: no-cache' \
        -T application/json -p "$BODY" "$endpoint" | python3 -c '
import json,re,sys; t=sys.stdin.read()
g=lambda p: float(re.search(p,t).group(1))
non2xx=re.search(r"Non-2xx responses:\s+(\d+)",t)
print(json.dumps({"rps": g(r"Requests per second:\s+([\d.]+)"), "p50": g(r"\n\s+50%\s+(\d+)"), "p99": g(r"\n\s+99%\s+(\d+)"),
 "failed": int(g(r"Failed requests:\s+(\d+)")) + (int(non2xx.group(1)) if non2xx else 0)}))' >"$out" ;;
  esac
}

start_mock fast --ttft-ms 0 --tokens-per-sec 0 --tokens 20
TOKEN=unused-by-the-mock
for round in 1 2; do
  for tool in calos oha ab; do gen "$tool" "0-ceiling-$tool-$round" "$MOCK_URL" 50; done
done
start_calos fast "$MOCK_URL"
TOKEN=$(register_user "$CALOS_URL")
for round in 1 2; do
  for tool in calos oha ab; do gen "$tool" "1-throughput-$tool-$round" "$CALOS_URL" 50; done
done
start_mock slow --ttft-ms 20 --tokens-per-sec 0 --tokens 20
start_calos slow "$MOCK_URL"
TOKEN=$(register_user "$CALOS_URL")
TOTAL=$AGREE_TOTAL
for round in 1 2; do
  for tool in calos oha ab; do gen "$tool" "2-agreement-$tool-$round" "$CALOS_URL" 10; done
done
python3 bench/report.py loadgen "$TMP"
echo "(ab reports whole milliseconds; oha and calos load 3 significant figures)"
