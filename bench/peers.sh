# Peers on the same mock, for `bench/hotpath.sh peers`: LiteLLM's proxy (from
# PyPI, run offline) with the mock as an OpenAI-compatible model.
# shellcheck shell=bash

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_litellm MOCK_URL: sets LITELLM_URL, LITELLM_PID and LITELLM_KEY.
start_litellm() {
  local mock=$1 port
  if ! command -v litellm >/dev/null; then
    say "installing LiteLLM's proxy from PyPI (once, a few minutes)"
    pip install -q 'litellm[proxy]' >&2
  fi
  port=$(free_port)
  # A key of the bench's own making, valid only for this run's local proxy.
  LITELLM_KEY="sk-bench-$RANDOM$RANDOM"
  cat >"$TMP/litellm.yaml" <<YAML
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: openai/mock-gpt
      api_base: $mock/v1
      api_key: not-needed-by-the-mock
general_settings:
  master_key: $LITELLM_KEY
litellm_settings:
  telemetry: false
YAML
  say "starting LiteLLM's proxy (${LITELLM_WORKERS:-2} workers) on 127.0.0.1:$port"
  LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
    litellm --config "$TMP/litellm.yaml" --host 127.0.0.1 --port "$port" \
    --num_workers "${LITELLM_WORKERS:-2}" >"$TMP/litellm.log" 2>&1 &
  LITELLM_PID=$!
  PIDS+=("$LITELLM_PID")
  LITELLM_URL=http://127.0.0.1:$port
  for _ in $(seq 1 300); do
    curl -sf "$LITELLM_URL/health/liveliness" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "LiteLLM did not start:" >&2
  tail -20 "$TMP/litellm.log" >&2
  return 1
}
