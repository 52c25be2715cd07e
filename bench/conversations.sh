#!/usr/bin/env bash
# What keeping a conversation costs a chat, side by side in one run: Apache
# Bench sends whole (non-streamed) chats to calos over `calos mock-llm`, one at
# a time (a conversation's turns follow each other), first stateless (the
# seed's way), then as turns of one conversation in blocks of TURNS, so the
# stored history grows from 0 to 8 × TURNS messages and each block shows
# what a longer history adds.
#
#   bench/conversations.sh               # TURNS=100
#   TURNS=50 CALOS_BIN=target/debug/calos bench/conversations.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
TURNS=${TURNS:-100}
command -v ab >/dev/null || { echo "ab is in Debian's apache2-utils" >&2; exit 1; }

build_release
start_mock mock --ttft-ms 0 --tokens-per-sec 0 --tokens 20
start_calos calos "$MOCK_URL"
TOKEN=$(register_user "$CALOS_URL")
say "mock-llm at $MOCK_URL, calos at $CALOS_URL"

# run NAME BODY: one ab run of TURNS chats; prints "NAME mean p50 p99 (ms)".
run() {
  local name=$1 body=$2 out
  printf '%s' "$body" >"$TMP/$name.json"
  out=$(ab -q -n "$TURNS" -c 1 -p "$TMP/$name.json" -T application/json \
    -H "Authorization: Bearer $TOKEN" -H 'Cache-Control: no-cache' "$CALOS_URL/api/llm/complete")
  if grep -q '^Non-2xx responses' <<<"$out"; then
    echo "$name: $(grep '^Non-2xx responses' <<<"$out")" >&2
    exit 1
  fi
  printf '%-32s %8s %8s %8s\n' "$name" \
    "$(awk '/^Time per request:/ { print $4; exit }' <<<"$out")" \
    "$(awk '$1 == "50%" { print $2 }' <<<"$out")" \
    "$(awk '$1 == "99%" { print $2 }' <<<"$out")"
}

chat='"model":"mock-gpt","stream":false,"messages":[{"role":"user","content":"Plan a trip to Lisbon"}]'
printf '%-32s %8s %8s %8s\n' "$TURNS chats, one at a time" "mean ms" "p50 ms" "p99 ms"
run warmup "{$chat}" >/dev/null
run stateless "{$chat}"
id=$(curl -sf -X POST "$CALOS_URL/api/conversations" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d '{}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for block in 1 2 3 4; do
  from=$(( (block - 1) * TURNS * 2 ))
  run "turns, history $from-$(( from + TURNS * 2 - 2 )) msgs" "{\"conversationId\":\"$id\",$chat}"
done
