#!/usr/bin/env bash
# 2 × 3,000 chats naming models that do not exist (one signed-in user, calos mock-llm
# upstream): resident memory and /metrics size after each round stay flat.
# Usage: CALOS_BIN=target/release/calos bench/metrics-flood.sh (ports 18801-18803).
set -euo pipefail
BIN=${CALOS_BIN:-target/release/calos}
D=$(mktemp -d)
$BIN mock-llm --port 18801 >/dev/null 2>&1 & M=$!
CALOS_DATA_DIR=$D OLLAMA_URL=http://127.0.0.1:18801 CALOS_CHAT_RATE_PER_SEC=100000 CALOS_CHAT_BURST=100000 CALOS_UPSTREAM_RETRIES=0 LOG_LEVEL=warn \
  $BIN serve --local --port 18802 --dashboard-port 18803 >/dev/null 2>&1 & S=$!
trap 'kill $M $S 2>/dev/null; rm -rf $D' EXIT
for i in $(seq 50); do curl -fs http://127.0.0.1:18802/api/health >/dev/null && break; sleep 0.3; done
TOKEN=$(curl -s -X POST http://127.0.0.1:18802/api/auth/register -H 'Content-Type: application/json' -d '{"username":"flood-user","password":"flood-password"}' | grep -o '"token":"[^"]*"' | cut -d'"' -f4)
rss() { awk '/VmRSS/{print $2}' /proc/$S/status; }
echo "before: rss $(rss) KiB, /metrics $(curl -s http://127.0.0.1:18803/metrics | wc -l) lines"
for R in 1 2; do
python3 - "$TOKEN" "$R" <<'PY'
import sys, json, http.client
tok=sys.argv[1]
c=http.client.HTTPConnection("127.0.0.1",18802)
codes={}
for i in range(3000):
    body=json.dumps({"model":f"no-such-model-{sys.argv[2]}-{i}","messages":[{"role":"user","content":"hi"}]})
    c.request("POST","/api/llm/complete",body,{"Authorization":"Bearer "+tok,"Content-Type":"application/json"})
    r=c.getresponse(); r.read(); codes[r.status]=codes.get(r.status,0)+1
print("statuses", codes)
PY
echo "after $R: rss $(rss) KiB, /metrics $(curl -s http://127.0.0.1:18803/metrics | wc -l) lines, model labels: $(curl -s http://127.0.0.1:18803/metrics | grep -o 'model="[^"]*"' | sort -u | tr '\n' ' ')"
done
