#!/usr/bin/env bash
# Where calos spends its CPU under load: calos's own flamegraph endpoint
# (`/api/monitor/profile`) sampled while oha drives one endpoint, then the
# heaviest frames (inclusive share of all samples) printed from the SVG.
#
#   bench/profile.sh                 # uncached chats, -c 20, 10 s
#   TARGET=cached bench/profile.sh   # cache hits; also: health, me, stream
#   SECONDS_=5 CONC=50 bench/profile.sh
# The SVG is kept as profile-TARGET.svg in the current directory.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
TARGET=${TARGET:-chat} CONC=${CONC:-20} SAMPLE=${SECONDS_:-10}

command -v oha >/dev/null || { say "installing oha from crates.io (once, ~5 min)"; cargo install oha --locked >&2; }
build_release
start_mock mock --ttft-ms 0 --tokens-per-sec 0 --tokens 5
start_calos calos "$MOCK_URL"
TOKEN=$(register_user "$CALOS_URL")
ADMIN=bench-admin-$RANDOM
echo "bench-admin-password" | CALOS_DATA_DIR="$TMP/calos-data" "$BIN" users create --username "$ADMIN" --admin --password-stdin >/dev/null
ADMIN_TOKEN=$(curl -sf -X POST "$CALOS_URL/api/auth/login" -H 'Content-Type: application/json' \
  -d "{\"username\":\"$ADMIN\",\"password\":\"bench-admin-password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
DASHBOARD=$(grep -oE 'dashboard http://127\.0\.0\.1:[0-9]+' "$TMP/calos.log" | head -1)
DASHBOARD=${DASHBOARD#dashboard }

BODY=$TMP/body.json
echo '{"model":"mock-gpt","messages":[{"role":"user","content":"Hello"}],"stream":false}' >"$BODY"
case $TARGET in
  chat) load=(-m POST -T application/json -D "$BODY" -H "Authorization: Bearer $TOKEN" -H 'Cache-Control: no-cache' "$CALOS_URL/v1/chat/completions") ;;
  cached) load=(-m POST -T application/json -D "$BODY" -H "Authorization: Bearer $TOKEN" "$CALOS_URL/v1/chat/completions") ;;
  stream) sed -i 's/"stream":false/"stream":true/' "$BODY"
    load=(-m POST -T application/json -D "$BODY" -H "Authorization: Bearer $TOKEN" -H 'Cache-Control: no-cache' "$CALOS_URL/v1/chat/completions") ;;
  health) load=("$CALOS_URL/api/health") ;;
  me) load=(-H "Authorization: Bearer $TOKEN" "$CALOS_URL/api/auth/me") ;;
  *) echo "TARGET is chat, cached, stream, health or me" >&2; exit 2 ;;
esac
say "profiling calos for ${SAMPLE}s under oha -c $CONC ($TARGET)"
oha --no-tui -c "$CONC" -z "$((SAMPLE + 4))s" "${load[@]}" >"$TMP/oha.txt" &
oha_pid=$!
sleep 2
curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" "$DASHBOARD/api/monitor/profile?seconds=$SAMPLE" -o "profile-$TARGET.svg"
wait "$oha_pid"
grep -E 'Requests/sec|Success rate' "$TMP/oha.txt" >&2 || true
python3 - "profile-$TARGET.svg" <<'PY'
import html, re, sys
from collections import defaultdict
svg = open(sys.argv[1]).read()
frames = re.findall(r"<title>(.*?) \(([\d,]+) samples?, ([\d.]+)%\)</title>", svg)
share = defaultdict(float)
for name, _, pct in frames:
    share[html.unescape(name)] += float(pct)
print(f"{len(frames)} frames; heaviest by inclusive share, summed over the stacks a frame appears in:")
for name, pct in sorted(share.items(), key=lambda kv: -kv[1])[:45]:
    print(f"{pct:6.2f}%  {name[:150]}")
PY
