#!/usr/bin/env bash
# The API contract, fuzzed: schemathesis generates requests from calos's own
# OpenAPI documents (`/api/openapi.json` on each listener) and checks every
# answer against them: no server error, no undocumented status, content type,
# header or body shape, valid input accepted and invalid input refused.
#
#   server/tests/contract.sh                  # both databases, both listeners
#   BACKENDS=sqlite MAX_TIME=30 server/tests/contract.sh
#
# calos runs as the real binary (CALOS_BIN, default target/debug/calos) against
# `calos mock-llm`, with its own SQLite directory or a throwaway PostgreSQL
# database. Time-bounded: MAX_TIME seconds per listener and database.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CALOS_BIN=${CALOS_BIN:-target/debug/calos}
export CALOS_BIN
. bench/lib.sh
BACKENDS=${BACKENDS:-sqlite postgres}
MAX_TIME=${MAX_TIME:-60}
SCHEMATHESIS_VERSION=4.32.5
PG_ADMIN_URL=${CALOS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}

# schemathesis from PyPI, in a virtualenv of its own under target/ (once).
VENV=$ROOT/target/tools/schemathesis
if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  say "installing schemathesis $SCHEMATHESIS_VERSION from PyPI (once)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

# fuzz NAME DOCUMENT_URL TOKEN [schemathesis flags]: one time-bounded run.
fuzz() {
  local name=$1 document=$2 token=$3; shift 3
  say "schemathesis: $name"
  # Every check, bar two that do not fit a gateway:
  # - use_after_free and ensure_resource_availability infer resources from
  #   paths (DELETE /api/auth/me then GET /api/auth/me), and calos answers 401
  #   on purpose for a closed account's token;
  # - positive_data_acceptance cannot know that a username is taken or a
  #   challenge expired, which the schema cannot say.
  "$VENV/bin/schemathesis" --config-file server/tests/schemathesis.toml run "$document" \
    --header "Authorization: Bearer $token" \
    --checks all \
    --exclude-checks use_after_free,ensure_resource_availability,positive_data_acceptance \
    --max-time "$MAX_TIME" --workers 2 --seed 1 \
    --request-timeout 30 --max-redirects 0 \
    --suppress-health-check too_slow,filter_too_much \
    --report junit --report-dir "$TMP/report-$name" \
    "$@"
}

for backend in $BACKENDS; do
  database_url=""
  pg_name=""
  if [ "$backend" = postgres ]; then
    pg_name=calos_contract_$RANDOM$RANDOM
    psql -q "$PG_ADMIN_URL" -c "create database $pg_name"
    database_url=${PG_ADMIN_URL%/*}/$pg_name
  fi
  start_mock "mock-$backend" --ttft-ms 0 --tokens-per-sec 0 --tokens 5
  # Every model name the fuzzer invents reaches a provider that answers (the
  # mock, as Ollama too): an unknown model is then the mock's 404, not a 503
  # for an Ollama that is not running, which would read as a server error.
  start_calos "calos-$backend" "$MOCK_URL" DATABASE_URL="$database_url" \
    OLLAMA_URL="$MOCK_URL" CALOS_CHAT_RATE_PER_SEC=1000 CALOS_CHAT_BURST=1000
  DASHBOARD_URL=$(wait_for_line "$TMP/calos-$backend.log" 'dashboard http://127\.0\.0\.1:[0-9]+')
  DASHBOARD_URL=${DASHBOARD_URL#dashboard }
  TOKEN=$(register_user "$CALOS_URL")
  # An administrator for Mission Control's routes, made as an operator would.
  echo "contract-admin-password" | env CALOS_DATA_DIR="$TMP/calos-$backend-data" DATABASE_URL="$database_url" \
    "$BIN" users create --username contract-admin --admin --password-stdin >/dev/null
  ADMIN=$(curl -sf -X POST "$DASHBOARD_URL/api/auth/login" -H 'Content-Type: application/json' \
    -d '{"username":"contract-admin","password":"contract-admin-password"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  # Signing out would end the fuzzer's own session; the profile samples the CPU
  # for up to a minute per call and the feed is a WebSocket (both have API tests).
  # The administrators' /api/admin/* routes are in both documents: they are
  # fuzzed with the administrator's token on the dashboard run (here a member's
  # token would only ever get 403).
  fuzz "main-$backend" "$CALOS_URL/api/openapi.json" "$TOKEN" \
    --exclude-path /api/auth/logout --exclude-path-regex '^/api/admin/'
  fuzz "dashboard-$backend" "$DASHBOARD_URL/api/openapi.json" "$ADMIN" \
    --exclude-path /api/auth/logout --exclude-path /api/monitor/profile --exclude-path /api/monitor/ws
  kill "$CALOS_PID" 2>/dev/null || true
  wait "$CALOS_PID" 2>/dev/null || true
  if [ -n "$pg_name" ]; then
    psql -q "$PG_ADMIN_URL" -c "drop database if exists $pg_name with (force)"
  fi
done
say "the API contract held"
