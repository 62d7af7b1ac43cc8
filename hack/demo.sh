#!/usr/bin/env bash
# `make demo` / `make demo-down`: the whole job on the local lab.
#   up:   lab -> chart (CRDs, RBAC, ServiceAccount) -> operator as local processes under the
#         chart's ServiceAccount token, watching every namespace as a default install does ->
#         example EdgeClusters and RouterConfigs -> Ready -> fetch from a real edge cache process per edge.
#         REPLICAS (1) operator processes share SHARDS (REPLICAS) shards through Leases in the
#         release namespace, as the chart's replicas do; the demo prints which one holds which shard.
#   down: stop every demo operator, then the lab.
# Idempotent: a second `up` reuses what runs (and restarts it when the code, REPLICAS or SHARDS changed).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=$ROOT/.demo
WGC=${EDGEROLL_NPM_BIN:-$HOME/.cache/edgeroll/npm/node_modules/.bin}/wgc
EDGEROLL=$ROOT/.venv/bin/edgeroll
PY=$ROOT/.venv/bin/python
SYSTEM_NS=edgeroll-system
TEAM_NS=storefront
REPLICAS=${REPLICAS:-1}
SHARDS=${SHARDS:-$REPLICAS}
[[ $REPLICAS =~ ^[1-9][0-9]*$ && $SHARDS =~ ^[1-9][0-9]*$ ]] || {
  echo "demo: REPLICAS and SHARDS must be whole numbers from 1, got REPLICAS=$REPLICAS SHARDS=$SHARDS" >&2; exit 2
}
mkdir -p "$DEMO"

# Replica 0 keeps the single operator's file names (.demo/operator.{pid,log,port,metrics-port}); the
# others are operator-1, operator-2, …
replica() { if (( $1 == 0 )); then echo operator; else echo "operator-$1"; fi; }
running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
pid_files() { compgen -G "$DEMO/operator*.pid" || true; }
any_running() { local f; for f in $(pid_files); do running "$f" && return 0; done; return 1; }
# The operators' source and how many run, so that a second `up` after a change restarts them
# instead of reusing them.
source_hash() { find operator/edgeroll -name '*.py' -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16; }
wanted() { echo "$(source_hash) replicas=$REPLICAS shards=$SHARDS"; }
# Every demo operator, also those of an earlier `up` with more REPLICAS: all are asked to stop at
# once (each hands its shard Leases back), then each gets up to 10 s.
stop_operators() {
  local f pids=()
  for f in $(pid_files); do running "$f" && pids+=("$(cat "$f")"); done
  (( ${#pids[@]} )) && kill "${pids[@]}" 2>/dev/null || true
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  for f in $(pid_files); do rm -f "$f"; done
  (( ${#pids[@]} ))
}

# One line per shard, from the shard Leases (holderIdentity `<host>/<pid>`), once every shard is held
# by one of ours and each holds its fair share (⌊SHARDS/REPLICAS⌋ or ⌈…⌉): a replica that starts later
# takes shards over from the first within a few retry periods (2 s), and after a change of SHARDS all
# stand down until the old replicas' Leases expire (15 s).
print_shards() {
  local kubectl=$1 deadline=$((SECONDS + 90)) i pid holder lines settled
  local -A name=() held=()
  for i in $(seq 0 $((REPLICAS - 1))); do name[$(cat "$DEMO/$(replica "$i").pid")]=$(replica "$i"); done
  while :; do
    lines=$("$kubectl" -n "$SYSTEM_NS" get leases -l edgeroll.io/lease=shard --no-headers \
      -o custom-columns=NAME:.metadata.name,HOLDER:.spec.holderIdentity 2>/dev/null || true)
    settled=1 held=()
    for i in $(seq 0 $((SHARDS - 1))); do
      holder=$(awk -v lease="edgeroll-shard-$i" '$1 == lease { print $2 }' <<<"$lines")
      pid=${holder##*/}
      if [[ -z $holder || -z ${name[$pid]:-} ]]; then settled=0; break; fi
      held[$pid]=$(( ${held[$pid]:-0} + 1 ))
    done
    for pid in "${!name[@]}"; do
      (( ${held[$pid]:-0} >= SHARDS / REPLICAS && ${held[$pid]:-0} <= (SHARDS + REPLICAS - 1) / REPLICAS )) || settled=0
    done
    (( settled || SECONDS >= deadline )) && break
    sleep 1
  done
  (( settled )) || echo "demo: the shards had not settled after 90 s (logs: .demo/operator*.log)"
  for i in $(seq 0 $((SHARDS - 1))); do
    holder=$(awk -v lease="edgeroll-shard-$i" '$1 == lease { print $2 }' <<<"$lines")
    pid=${holder##*/}
    if [[ -n $holder && $holder != "<none>" ]]; then
      echo "shard $i: held by $holder${name[$pid]:+ (.demo/${name[$pid]}.log)}"
    else
      echo "shard $i: not held"
    fi
  done
}

down() {
  if stop_operators; then echo "demo: operators stopped"; fi
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
  # Helm installs crds/ once and never upgrades them; a lab kept across code changes needs today's
  # (new status fields would be pruned, new printer columns missing).
  "$kubectl" apply --server-side --force-conflicts -f charts/edgeroll/crds/ >/dev/null
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

  if any_running && [[ $(cat "$DEMO/operator.source" 2>/dev/null) != "$(wanted)" ]]; then
    echo "demo: the operator's code, REPLICAS or SHARDS changed since it started: restarting"
    stop_operators || true
  fi
  local i name port metrics_port
  for i in $(seq 0 $((REPLICAS - 1))); do
    name=$(replica "$i")
    running "$DEMO/$name.pid" && continue
    echo "demo: starting $name, $SHARDS shard(s) among $REPLICAS (log: .demo/$name.log)"
    wanted > "$DEMO/operator.source"
    # Two free ports (liveness, metrics), both held until printed so that they differ.
    read -r port metrics_port < <("$PY" -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
    # .lab/env gives the caches the lab's read-only edge key (EDGEROLL_EDGE_S3_*), as in production.
    # The Leases live in the release namespace, the only one where the chart grants them (a pod gets
    # it from POD_NAMESPACE).
    EDGEROLL_HUB_KUBECONFIG=$DEMO/operator.kubeconfig KUBECONFIG=$DEMO/operator.kubeconfig \
      nohup "$EDGEROLL" operator --all-namespaces --liveness "http://127.0.0.1:$port/healthz" \
      --metrics-addr "127.0.0.1:$metrics_port" --shards "$SHARDS" --lease-namespace "$SYSTEM_NS" \
      >>"$DEMO/$name.log" 2>&1 &
    echo $! > "$DEMO/$name.pid"
    echo "$port" > "$DEMO/$name.port"
    echo "$metrics_port" > "$DEMO/$name.metrics-port"
  done
  # A second `up` reuses the running operators, and their ports.
  for i in $(seq 0 $((REPLICAS - 1))); do
    name=$(replica "$i")
    [[ -f $DEMO/$name.metrics-port ]] && echo "$name metrics: http://127.0.0.1:$(cat "$DEMO/$name.metrics-port")/metrics"
  done

  "$kubectl" apply -f examples/persisted-operations.yaml >/dev/null
  "$kubectl" apply -f examples/routerconfig-storefront.yaml -f examples/routerconfig-json.yaml >/dev/null
  echo "demo: waiting for the RouterConfigs to be Ready"
  "$kubectl" -n "$TEAM_NS" wait --for=condition=Ready rtc/storefront rtc/edge-flags --timeout=300s
  echo
  print_shards "$kubectl"
  echo
  "$kubectl" get rtc -A -o wide
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
Which operator acts on what: kubectl -n $SYSTEM_NS get leases -l edgeroll.io/lease=shard, and the SHARD and
OWNER columns above; make demo REPLICAS=2 (SHARDS=n) runs more operators that share the RouterConfigs.
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
