#!/usr/bin/env bash
# `make demo` / `make demo-down`: the whole job on the local lab.
#   up:   lab -> chart (CRDs, RBAC, ServiceAccount) -> operator as a local process under the
#         chart's ServiceAccount token, watching every namespace as a default install does ->
#         example EdgeClusters and RouterConfigs -> Ready -> fetch from a real edge cache process per edge.
#   down: stop the demo operator, then the lab.
# Idempotent: a second `up` reuses what runs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=$ROOT/.demo
WGC=${EDGEROLL_NPM_BIN:-$HOME/.cache/edgeroll/npm/node_modules/.bin}/wgc
EDGEROLL=$ROOT/.venv/bin/edgeroll
PY=$ROOT/.venv/bin/python
SYSTEM_NS=edgeroll-system
TEAM_NS=storefront
mkdir -p "$DEMO"

operator_running() { [[ -f $DEMO/operator.pid ]] && kill -0 "$(cat "$DEMO/operator.pid")" 2>/dev/null; }
# The operator's source, so that a second `up` after a code change restarts it instead of reusing it.
source_hash() { find operator/edgeroll -name '*.py' -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16; }
stop_operator() {
  local pid
  pid=$(cat "$DEMO/operator.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$DEMO/operator.pid"
}

down() {
  if operator_running; then
    stop_operator && echo "demo: operator stopped"
  fi
  rm -f "$DEMO/operator.pid"
  "$EDGEROLL" lab down
}

up() {
  local t0=$SECONDS
  "$EDGEROLL" lab up
  # shellcheck disable=SC1091
  source .lab/env
  export KUBECONFIG=$EDGEROLL_HUB_KUBECONFIG
  local kubectl="$EDGEROLL_BIN_DIR/kubectl" helm="$EDGEROLL_BIN_DIR/helm"

  echo "demo: installing the chart's CRDs, RBAC and ServiceAccount into the hub"
  "$kubectl" create namespace "$TEAM_NS" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
  # Signing Secrets are readable in secretNamespaces only: storefront, plus any namespace added since
  # with `helm upgrade --reuse-values` (see the hint at the end), which a second `up` keeps.
  local secret_ns
  secret_ns=$({ HELM_CACHE_HOME=$DEMO/helm "$helm" get values edgeroll -n "$SYSTEM_NS" -o json 2>/dev/null || true; } \
    | "$PY" -c 'import json, sys; t = sys.stdin.read().strip(); v = (json.loads(t) if t else None) or {}
print(",".join(dict.fromkeys([sys.argv[1], *(v.get("secretNamespaces") or [])])))' "$TEAM_NS")
  HELM_CACHE_HOME=$DEMO/helm "$helm" upgrade --install edgeroll charts/edgeroll -n "$SYSTEM_NS" --create-namespace \
    --set deployOperator=false --set s3.bucket="$EDGEROLL_S3_BUCKET" --set s3.endpoint="$EDGEROLL_S3_ENDPOINT" \
    --set "secretNamespaces={$secret_ns}" --wait >/dev/null

  # The operator runs here as a process, but with exactly the chart's permissions: a kubeconfig
  # that carries a token of the chart's ServiceAccount, not the lab's admin certificate.
  local token server ca
  token=$("$kubectl" -n "$SYSTEM_NS" create token edgeroll --duration=24h)
  server=$("$kubectl" config view --raw --minify --flatten -o jsonpath='{.clusters[0].cluster.server}')
  ca=$("$kubectl" config view --raw --minify --flatten -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  umask 077
  cat > "$DEMO/operator.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: hub, cluster: {server: "$server", certificate-authority-data: "$ca"}}]
users: [{name: edgeroll, user: {token: "$token"}}]
contexts: [{name: edgeroll, context: {cluster: hub, user: edgeroll}}]
current-context: edgeroll
YAML
  umask 022

  echo "demo: registering edge-eu, edge-us, edge-ap"
  for pair in $EDGEROLL_EDGE_KUBECONFIGS; do
    local name=${pair%%=*} path=${pair#*=}
    # Flattened: a Secret must carry the certificates themselves, not paths on this machine.
    "$kubectl" config view --raw --flatten --kubeconfig "$path" > "$DEMO/$name.kubeconfig"
    "$kubectl" -n "$SYSTEM_NS" create secret generic "$name-kubeconfig" --from-file=kubeconfig="$DEMO/$name.kubeconfig" \
      --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
  done
  "$kubectl" apply -f examples/edgeclusters.yaml >/dev/null

  [[ -f $DEMO/signing-key ]] || "$PY" -c 'import secrets; print(secrets.token_hex(16), end="")' > "$DEMO/signing-key"
  "$kubectl" -n "$TEAM_NS" create secret generic storefront-signing --from-file=key="$DEMO/signing-key" \
    --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null

  echo "demo: composing the storefront graph with wgc"
  (cd examples/graph && "$WGC" router compose -i graph.yaml -o "$DEMO/storefront.json" >/dev/null)
  "$kubectl" -n "$TEAM_NS" create configmap storefront-graph --from-file=config.json="$DEMO/storefront.json" \
    --dry-run=client -o yaml | "$kubectl" apply --server-side --force-conflicts -f - >/dev/null

  if operator_running && [[ $(cat "$DEMO/operator.source" 2>/dev/null) != "$(source_hash)" ]]; then
    echo "demo: the operator's code changed since it started: restarting it"
    stop_operator
  fi
  if ! operator_running; then
    echo "demo: starting the operator (log: .demo/operator.log)"
    source_hash > "$DEMO/operator.source"
    local port metrics_port
    # Two free ports (liveness, metrics), both held until printed so that they differ.
    read -r port metrics_port < <("$PY" -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
    # .lab/env gives the caches the lab's read-only edge key (EDGEROLL_EDGE_S3_*), as in production.
    EDGEROLL_HUB_KUBECONFIG=$DEMO/operator.kubeconfig KUBECONFIG=$DEMO/operator.kubeconfig \
      nohup "$EDGEROLL" operator --all-namespaces --liveness "http://127.0.0.1:$port/healthz" \
      --metrics-addr "127.0.0.1:$metrics_port" >>"$DEMO/operator.log" 2>&1 &
    echo $! > "$DEMO/operator.pid"
    echo "$port" > "$DEMO/operator.port"
    echo "$metrics_port" > "$DEMO/operator.metrics-port"
  fi
  # A second `up` reuses the running operator, and its port.
  [[ -f $DEMO/operator.metrics-port ]] && echo "operator metrics: http://127.0.0.1:$(cat "$DEMO/operator.metrics-port")/metrics"

  "$kubectl" apply -f examples/persisted-operations.yaml >/dev/null
  "$kubectl" apply -f examples/routerconfig-storefront.yaml -f examples/routerconfig-json.yaml >/dev/null
  echo "demo: waiting for the RouterConfigs to be Ready"
  "$kubectl" -n "$TEAM_NS" wait --for=condition=Ready rtc/storefront rtc/edge-flags --timeout=300s
  echo
  "$kubectl" get rtc -A
  echo
  "$kubectl" get ec
  echo
  echo "demo: fetching storefront from a real edge cache per edge (started from the pod spec in that cluster)"
  "$PY" -m edgeroll.lab.pod_runner "$TEAM_NS" storefront
  echo
  cat <<TXT
demo: done in $((SECONDS - t0))s. Try an update:
  source .lab/env && export PATH=\$EDGEROLL_BIN_DIR:\$PATH
  kubectl -n $TEAM_NS patch rtc edge-flags --type merge -p '{"spec":{"config":{"banner":"Flash sale"}}}'
  kubectl -n $TEAM_NS wait --for=condition=Ready rtc/edge-flags && kubectl get rtc -A
  .venv/bin/python -m edgeroll.lab.pod_runner $TEAM_NS edge-flags
The operator watches every namespace, but reads signing Secrets only in secretNamespaces
($secret_ns). For a RouterConfig in your own namespace, say team-a (until then it is Stalled, SecretForbidden):
  kubectl create namespace team-a
  helm upgrade edgeroll charts/edgeroll -n $SYSTEM_NS --reuse-values --set 'secretNamespaces={$secret_ns,team-a}'
Stop everything with: make demo-down
TXT
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
