#!/usr/bin/env bash
# `make e2e-kind`: the scenario and rollout suites on a hub and three edge kind clusters with real
# pods (docs/e2e.md), in one pytest session: one provider, one chart install and one operator serve
# both. Tests marked `lab_only` (they need the lab's local operator processes) are deselected here and
# run in `make test`. `make kind-setup` and `make image` ran first. Whatever happens to pytest, the
# clusters and the S3 container that this run created are deleted afterwards, by name, unless
# EDGEROLL_E2E_KIND_KEEP=1; clusters that existed before the run are left as they were.
set -euo pipefail
cd "$(dirname "$0")/.."
KIND_ENV="$(hack/kind-setup.sh --print-env)"
[[ -f $KIND_ENV ]] || { echo "e2e-kind: $KIND_ENV is missing: run make kind-setup" >&2; exit 1; }
set -a; source "$KIND_ENV"; set +a
export EDGEROLL_E2E_PROVIDER=kind
PREFIX="${EDGEROLL_E2E_KIND_PREFIX:-edgeroll-e2e}"
KIND_KUBECONFIG="${TMPDIR:-/tmp}/$PREFIX-kind.kubeconfig" # as the provider: never ~/.kube/config
CLUSTERS=("$PREFIX-hub" "$PREFIX-eu" "$PREFIX-us" "$PREFIX-ap")
mapfile -t BEFORE < <("$EDGEROLL_KIND" get clusters 2>/dev/null)

cleanup() {
  local rc=$? name
  if [[ ${EDGEROLL_E2E_KIND_KEEP:-0} != 0 ]]; then echo "e2e-kind: kept ${CLUSTERS[*]} and $PREFIX-s3"; exit "$rc"; fi
  for name in "${CLUSTERS[@]}"; do
    if [[ " ${BEFORE[*]} " != *" $name "* ]] && "$EDGEROLL_KIND" get clusters 2>/dev/null | grep -qx "$name"; then
      "$EDGEROLL_KIND" delete cluster --name "$name" --kubeconfig "$KIND_KUBECONFIG" >/dev/null 2>&1 || true
    fi
  done
  docker rm -f "$PREFIX-s3" "$PREFIX-s3-edge" "$PREFIX-prometheus" >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
echo "e2e-kind: path=$EDGEROLL_KIND_PATH node image=$EDGEROLL_KIND_NODE_IMAGE"
T0=$SECONDS
.venv/bin/python -m pytest tests/e2e/scenarios tests/e2e/rollout -m "e2e and not lab_only" "$@"
echo "e2e-kind: pytest took $((SECONDS - T0))s"
