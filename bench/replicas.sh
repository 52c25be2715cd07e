#!/usr/bin/env bash
# Requests per second through HAProxy (deploy/haproxy.cfg, unchanged) with one
# calos replica behind it and with two, side by side in one run: same tool
# (`calos load`, closed loop), same concurrency, same request count, the same
# balancer config. With one replica both of HAProxy's server lines point at
# it, so the balancer does the same work in both runs. The replicas share a
# fresh PostgreSQL database and a private redis-server, as in production.
#
#   bench/replicas.sh                  # CONC=32 N=300 (per user)
#   CONC=64 N=500 bench/replicas.sh
#
# On a machine with fewer cores than replicas + balancer + load generator the
# ratio measures how much the extra replica costs, not how calos scales:
# the run prints the core count beside the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
CONC=${CONC:-32} N=${N:-300}
PG_ADMIN=${CALOS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}

command -v haproxy >/dev/null || { echo "haproxy is needed (./dev setup --browser installs it)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is needed" >&2; exit 1; }
build_release

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
DB=calos_bench_$RANDOM$RANDOM
psql -q "$PG_ADMIN" -c "create database $DB"
PG_URL="${PG_ADMIN%/*}/$DB"
drop_db() { psql -q "$PG_ADMIN" -c "drop database if exists $DB with (force)" >/dev/null 2>&1 || true; }
trap 'cleanup; drop_db' EXIT

start_mock mock --ttft-ms 0 --tokens-per-sec 0 --tokens 20
SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
replica() { # NAME: one calos replica on the shared database and Redis
  start_calos "$1" "$MOCK_URL" DATABASE_URL="$PG_URL" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
    CALOS_JWT_SECRET="$SECRET" CALOS_REPLICA_ID="$1" CALOS_TRUSTED_PROXIES=127.0.0.1
  echo "${CALOS_URL#http://}"
}
R1=$(replica r1)
R2=$(replica r2)
dashboard() { sed -n 's/.*dashboard http:\/\/\([^)]*\)).*/\1/p' "$TMP/$1.log"; }

balancer() { # NAME REPLICA_1 REPLICA_2: HAProxy on a free port; sets LB_URL
  local port; port=$(free_port)
  env CALOS_LB_BIND="127.0.0.1:$port" CALOS_LB_DASHBOARD_BIND="127.0.0.1:$(free_port)" \
    CALOS_LB_STATS_BIND="127.0.0.1:$(free_port)" \
    CALOS_REPLICA_1="$2" CALOS_REPLICA_2="$3" \
    CALOS_REPLICA_1_DASHBOARD="$(dashboard r1)" CALOS_REPLICA_2_DASHBOARD="$(dashboard r2)" \
    haproxy -db -f deploy/haproxy.cfg >"$TMP/$1.log" 2>&1 &
  PIDS+=($!)
  LB_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do curl -sf "$LB_URL/api/health" >/dev/null && return 0; sleep 0.05; done
  echo "HAProxy did not start" >&2; cat "$TMP/$1.log" >&2; return 1
}
balancer lb-one "$R1" "$R1"; ONE_URL=$LB_URL
balancer lb-two "$R1" "$R2"; TWO_URL=$LB_URL
TOKEN=$(register_user "$TWO_URL")
say "replicas at $R1 and $R2; HAProxy with one at $ONE_URL, with two at $TWO_URL"

load() { # NAME URL: one closed-loop `calos load --json` run into $TMP/NAME.json
  say "$1"
  "$BIN" load --json --api openai --model mock-gpt --url "$2" --token "$TOKEN" --no-cache \
    --warmup 200 -c "$CONC" -n "$N" >"$TMP/$1.json"
}
# Alternated, twice each: drift on a shared machine hits both sides alike.
load one-a "$ONE_URL"; load two-a "$TWO_URL"; load one-b "$ONE_URL"; load two-b "$TWO_URL"

python3 - "$TMP" "$CONC" "$N" "$(nproc)" <<'PY'
import json, pathlib, sys
tmp, conc, n, cores = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def run(name):
    return json.loads((tmp / f"{name}.json").read_text())
print()
print(f"requests/s through HAProxy, closed loop: {conc} users x {n} requests, whole answers; {cores} cores")
print(f"{'run':<10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}")
rates = {}
for name in ["one-a", "two-a", "one-b", "two-b"]:
    r = run(name)
    lat = r["latency"] or {}
    rates.setdefault(name[:3], []).append(r["requestsPerSec"])
    print(f"{name:<10}{r['requestsPerSec']:>9.0f}{lat.get('p50', 0):>9.2f}{lat.get('p99', 0):>9.2f}{r['requests']['failed']:>8}")
one, two = sum(rates["one"]) / 2, sum(rates["two"]) / 2
print(f"\ntwo replicas / one replica: {two / one:.2f}x ({two:.0f} vs {one:.0f} req/s, mean of two runs each)")
PY
