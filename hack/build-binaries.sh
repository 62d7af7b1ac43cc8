#!/usr/bin/env bash
# Builds the lab's Kubernetes toolchain from the Go module proxy with the
# machine's Go, and caches it under ~/.cache/edgeroll/<versions>/bin.
# The lab runs the real control-plane binaries as processes under
# `kwokctl --runtime binary`; `--node` adds kubelet, kubeadm and kube-proxy for the
# kind node image that hack/kind-setup.sh builds.
# Idempotent: a binary that already exists in the cache is not rebuilt.
set -euo pipefail

# shellcheck source=versions.env
source "$(dirname "$0")/versions.env"

CACHE_ROOT="${EDGEROLL_CACHE:-$HOME/.cache/edgeroll}"
STAMP="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}"
BIN="${CACHE_ROOT}/${STAMP}/bin"
WORK="${CACHE_ROOT}/${STAMP}/build"
if [[ "${1:-}" == "--print-bin" ]]; then echo "$BIN"; exit 0; fi
# --node adds what a kind node image needs on top of the lab's binaries (hack/kind-setup.sh).
NODE=0; [[ "${1:-}" == "--node" ]] && NODE=1
mkdir -p "$BIN" "$WORK"

export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"

step() { # step <name> <command...>: run, time and report one build step
  local name="$1"; shift
  local t0=$SECONDS
  "$@"
  printf 'setup: %-28s %4ds\n' "$name" "$((SECONDS - t0))"
}

have() { for b in "$@"; do [[ -x "$BIN/$b" ]] || return 1; done; }

K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
((NODE)) && K8S_CMDS+=(kubelet kubeadm kube-proxy)

build_kubernetes() {
  have "${K8S_CMDS[@]}" && { echo "setup: kubernetes ${K8S_VERSION} cached"; return; }
  local dir="$WORK/kubernetes" minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local staging_version="v0.${K8S_VERSION#v1.}"
  mkdir -p "$dir"
  # k8s.io/kubernetes replaces its staging modules with local paths, so
  # `go install` refuses it. Read the staging list from its own go.mod and
  # pin every one to the matching published v0.Y.Z instead.
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  {
    echo "module edgeroll.local/k8sbuild"
    echo
    echo "go 1.24.0"
    echo
    echo "require k8s.io/kubernetes ${K8S_VERSION}"
    echo
    grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
  } > "$dir/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for cmd in "${K8S_CMDS[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$cmd"; done
    printf ')\n'
  } > "$dir/tools.go"
  (cd "$dir" && go mod tidy >/dev/null)
  local ld="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
    ld+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$dir" && go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "-s -w${ld}" -o "$BIN/" \
    "${K8S_CMDS[@]/#/k8s.io/kubernetes/cmd/}")
}

build_etcd() {
  have etcd && { echo "setup: etcd ${ETCD_VERSION} cached"; return; }
  local dir="$WORK/etcd"
  mkdir -p "$dir"
  printf 'module edgeroll.local/etcdbuild\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$dir/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > "$dir/tools.go"
  (cd "$dir" && go mod tidy >/dev/null && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
}

go_install() { # go_install <binary> <package@version>
  have "$1" && { echo "setup: $1 cached"; return; }
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "$2"
}

step "kubernetes ${K8S_VERSION}" build_kubernetes
((NODE)) && exit 0
step "etcd ${ETCD_VERSION}" build_etcd
step "kwok ${KWOK_VERSION}" go_install kwok "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
step "kwokctl ${KWOK_VERSION}" go_install kwokctl "sigs.k8s.io/kwok/cmd/kwokctl@${KWOK_VERSION}"
step "helm ${HELM_VERSION}" go_install helm "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
step "kubeconform ${KUBECONFORM_VERSION}" go_install kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}"
