#!/usr/bin/env bash
# `make kind-setup`: what the kind suite needs, idempotent and cached like `make setup`.
#
#   1. a Docker engine: the one that answers `docker info`, else Debian's docker.io started here;
#      on a host whose capability bounding set lacks CAP_SYS_RESOURCE, dockerd's default runtime
#      is hack/kind/runc-without-sys-resource (privileged containers fail otherwise);
#   2. kind, pinned (hack/versions.env), built from the Go module proxy;
#   3. the images, by one of two paths:
#      - stock: Docker Hub answers, so kind's own `kindest/node` and `python:3.11-slim` are pulled;
#      - local: no registry answers, so everything is built here from the package registries:
#        Debian rootfs by debootstrap, Kubernetes and its add-ons from the Go module proxy, a kind
#        base image, `kind build node-image --type file`, and a Python base for the edgeroll image.
#
# EDGEROLL_KIND_IMAGES=stock|local forces a path (default: auto). Writes $KIND_ENV (print it with
# --print-env) for the Makefile: which path ran, the node image, the Python base image, the kind binary.
# Facts behind the local path: ../shared/KIND-NOTES.md, summarised in docs/development.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=versions.env
source hack/versions.env

CACHE_ROOT="${EDGEROLL_CACHE:-$HOME/.cache/edgeroll}"
KIND_DIR="$CACHE_ROOT/kind-${KIND_VERSION}_k8s-${K8S_VERSION}"
KIND_ENV="$KIND_DIR/kind.env"
if [[ "${1:-}" == "--print-env" ]]; then echo "$KIND_ENV"; exit 0; fi
K8S_BIN="$(hack/build-binaries.sh --print-bin)"
BIN="$KIND_DIR/bin"
KIND="$BIN/kind"
mkdir -p "$BIN"
T0=$SECONDS

step() { local name="$1"; shift; local t=$SECONDS; "$@"; printf 'kind-setup: %-44s %4ds\n' "$name" "$((SECONDS - t))"; }
log() { echo "kind-setup: $*"; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# CAP_SYS_RESOURCE is bit 24 of the bounding set.
lacks_sys_resource() { local bnd; bnd=$(awk '/^CapBnd/ {print $2}' /proc/self/status); (( (0x$bnd >> 24 & 1) == 0 )); }
RUNC_WRAPPER=/usr/local/sbin/runc-without-sys-resource

# ---- 1. Docker engine ----------------------------------------------------------------------------

docker_engine() {
  if docker info >/dev/null 2>&1; then log "docker engine answers"; return; fi
  command -v dockerd >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io jq >/dev/null
  if lacks_sys_resource; then
    log "capability bounding set lacks CAP_SYS_RESOURCE: dockerd runs containers through $RUNC_WRAPPER"
    command -v jq >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq >/dev/null
    as_root install -m 0755 hack/kind/runc-without-sys-resource "$RUNC_WRAPPER"
    as_root mkdir -p /etc/docker
    printf '{\n  "runtimes": {"runc-without-sys-resource": {"path": "%s"}},\n  "default-runtime": "runc-without-sys-resource"\n}\n' \
      "$RUNC_WRAPPER" | as_root tee /etc/docker/daemon.json >/dev/null
  fi
  # A dockerd that died with the previous session leaves its pid file, which blocks a new one.
  local pid; pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then as_root rm -f /var/run/docker.pid; fi
  # The daemon outlives this script: it must not inherit its open files (a caller's `flock` lock on
  # fd 3 would be held for as long as dockerd runs).
  # shellcheck disable=SC2016
  as_root bash -c 'for fd in $(ls /proc/$$/fd); do ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null; done
    nohup dockerd >"$1" 2>&1 </dev/null &' _ "$KIND_DIR/dockerd.log"
  local deadline=$((SECONDS + 90))
  until docker info >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { tail -n 20 "$KIND_DIR/dockerd.log" >&2; echo "kind-setup: dockerd did not answer in 90 s" >&2; exit 1; }
    sleep 1
  done
}

# Each kind node's systemd, kubelet and containerd take inotify instances; four nodes use about
# 105 of the default 128, and a fifth user (kubectl logs -f, a lab) then fails with "too many open
# files". kind's known-issues page advises 512.
inotify_instances() {
  local now; now=$(cat /proc/sys/fs/inotify/max_user_instances)
  ((now >= 512)) && return
  as_root sysctl -q -w fs.inotify.max_user_instances=512 || log "could not raise fs.inotify.max_user_instances from $now"
}

# ---- 2. kind -------------------------------------------------------------------------------------

kind_binary() {
  [[ -x $KIND ]] && "$KIND" version | grep -q "${KIND_VERSION}" && return
  CGO_ENABLED=0 GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@${KIND_VERSION}"
}

# ---- 3a. stock path ------------------------------------------------------------------------------

STOCK_NODE_IMAGE="kindest/node:${K8S_VERSION}"
STOCK_BASE_IMAGE="python:3.11-slim-bookworm"

registry_answers() { # a pull that succeeds is the only proof
  [[ ${EDGEROLL_KIND_IMAGES:-auto} == local ]] && return 1
  [[ ${EDGEROLL_KIND_IMAGES:-auto} == stock ]] && return 0
  timeout 120 docker pull -q "$STOCK_BASE_IMAGE" >/dev/null 2>&1
}

stock_images() {
  docker pull -q "$STOCK_BASE_IMAGE" >/dev/null
  docker pull -q "$STOCK_NODE_IMAGE" >/dev/null
}

# ---- 3b. local path: binaries --------------------------------------------------------------------

LOCAL_BIN="$KIND_DIR/node-bin"

go_install_to() { # go_install_to <binary> <package@version>
  [[ -x "$LOCAL_BIN/$1" ]] && return
  mkdir -p "$LOCAL_BIN"
  CGO_ENABLED=0 GOBIN="$LOCAL_BIN" go install -trimpath -ldflags "-s -w" "$2"
}

pause_binary() {
  [[ -x "$LOCAL_BIN/pause" ]] && return
  # The pause container's source ships in the k8s.io/kubernetes module.
  local src; src="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  mkdir -p "$LOCAL_BIN"
  gcc -Os -static -DVERSION="${K8S_VERSION}" -o "$LOCAL_BIN/pause" "$src/build/pause/linux/pause.c"
}

# ---- 3b. local path: root filesystems and images -------------------------------------------------

DEBIAN_MIRROR="${EDGEROLL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ROOTFS="$KIND_DIR/rootfs-bookworm"
REPO=localhost:5000 # any pull of these names stays on loopback and fails at once
DEBIAN_IMAGE="$REPO/debian:bookworm"
PYTHON_IMAGE="$REPO/python:3.11-slim-bookworm"
IPTABLES_IMAGE="$REPO/debian-iptables:bookworm"
# The node image's tag carries a hash of the files that shape it, so a change rebuilds it.
SHAPE="$(cat hack/kind-setup.sh hack/kind/* hack/versions.env | sha256sum | cut -c1-10)"
NODE_BASE_IMAGE="$REPO/kind-base:${KIND_VERSION}-${SHAPE}"
LOCAL_NODE_IMAGE="$REPO/kind-node:${K8S_VERSION}-${SHAPE}"

debian_rootfs() {
  [[ -f $ROOTFS/.complete ]] && return
  command -v debootstrap >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
  as_root rm -rf "$ROOTFS.tmp"
  as_root debootstrap --variant=minbase bookworm "$ROOTFS.tmp" "$DEBIAN_MIRROR" >"$KIND_DIR/debootstrap.log"
  as_root rm -rf "$ROOTFS" && as_root mv "$ROOTFS.tmp" "$ROOTFS" && as_root touch "$ROOTFS/.complete"
}

chroot_install() { # chroot_install <dir> <packages...>: apt inside a copy of the rootfs, services never started
  local dir="$1"; shift
  as_root cp /etc/resolv.conf "$dir/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$dir/usr/sbin/policy-rc.d" >/dev/null
  as_root chmod +x "$dir/usr/sbin/policy-rc.d"
  as_root chroot "$dir" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  as_root chroot "$dir" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
  as_root chroot "$dir" apt-get clean
  as_root rm -rf "$dir/var/lib/apt/lists"/* "$dir/usr/sbin/policy-rc.d" "$dir/usr/share/doc" "$dir/usr/share/man"
  as_root mkdir -p "$dir/usr/share/doc"
}

import_dir() { # import_dir <dir> <image> [docker import --change ...]
  local dir="$1" image="$2"; shift 2
  as_root tar -C "$dir" --exclude=./.complete -c . | docker import "$@" - "$image" >/dev/null
}

with_rootfs_copy() { # with_rootfs_copy <fn> <args...>: run fn on a fresh copy of the Debian rootfs
  local work; work="$(mktemp -d "$KIND_DIR/rootfs-work.XXXX")"
  as_root cp -a "$ROOTFS/." "$work/"
  "$@" "$work"
  as_root rm -rf "$work"
}

debian_image() { have_image "$DEBIAN_IMAGE" || import_dir "$ROOTFS" "$DEBIAN_IMAGE" --change 'CMD ["bash"]'; }

python_image() {
  have_image "$PYTHON_IMAGE" && return
  _python() {
    chroot_install "$1" python3 python3-venv ca-certificates
    import_dir "$1" "$PYTHON_IMAGE" --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]'
  }
  with_rootfs_copy _python
}

iptables_image() { # kube-proxy's base: it runs iptables and conntrack
  have_image "$IPTABLES_IMAGE" && return
  _iptables() { chroot_install "$1" iptables conntrack; import_dir "$1" "$IPTABLES_IMAGE"; }
  with_rootfs_copy _iptables
}

node_base_image() {
  have_image "$NODE_BASE_IMAGE" && return
  local kind_src; kind_src="$(go env GOMODCACHE)/sigs.k8s.io/kind@${KIND_VERSION}/images/base/files"
  [[ -d $kind_src ]] || (cd "$KIND_DIR" && go mod download "sigs.k8s.io/kind@${KIND_VERSION}")
  _node_base() {
    local dir="$1" runc=/usr/sbin/runc restrict=false
    # kind's base image packages, from Debian (containerd, runc and the CNI plugins included).
    chroot_install "$dir" systemd conntrack iptables nftables iproute2 ethtool util-linux mount kmod \
      libseccomp2 pigz e2fsprogs bash ca-certificates curl jq procps \
      containerd runc containernetworking-plugins
    # kind's support files: entrypoint, systemd units, kubelet drop-ins, sysctls.
    as_root install -m 0755 "$kind_src"/usr/local/bin/* "$dir/usr/local/bin/"
    as_root mkdir -p "$dir/kind/bin" "$dir/etc/systemd/system/kubelet.service.d" "$dir/etc/kubernetes/manifests"
    as_root install -m 0755 "$kind_src"/kind/bin/* "$dir/kind/bin/"
    as_root install -m 0644 "$kind_src"/etc/crictl.yaml "$dir/etc/"
    as_root install -m 0644 "$kind_src"/etc/default/kubelet "$dir/etc/default/"
    as_root install -m 0644 "$kind_src"/etc/sysctl.d/* "$dir/etc/sysctl.d/"
    as_root install -m 0644 "$kind_src"/etc/systemd/system/*.service "$kind_src"/etc/systemd/system/*.slice "$dir/etc/systemd/system/"
    as_root install -m 0644 "$kind_src"/etc/systemd/system/kubelet.service.d/* "$dir/etc/systemd/system/kubelet.service.d/"
    as_root ln -sf /usr/bin/containerd "$dir/usr/local/bin/containerd"
    as_root install -m 0755 "$LOCAL_BIN/crictl" "$dir/usr/local/bin/crictl"
    as_root install -m 0755 hack/kind/ctr "$dir/usr/local/bin/ctr"
    as_root mkdir -p "$dir/opt/cni/bin" "$dir/etc/cni/net.d"
    local plugin
    for plugin in "$dir"/usr/lib/cni/*; do as_root ln -sf "/usr/lib/cni/${plugin##*/}" "$dir/opt/cni/bin/"; done
    as_root install -m 0644 hack/kind/10-bridge.conflist "$dir/etc/cni/net.d/"
    if lacks_sys_resource; then
      runc=$RUNC_WRAPPER restrict=true
      as_root install -m 0755 hack/kind/runc-without-sys-resource "$dir$RUNC_WRAPPER"
    fi
    sed -e "s|@PAUSE_IMAGE@|$(pause_image_name)|" -e "s|@RESTRICT_OOM@|$restrict|" -e "s|@RUNC@|$runc|" \
      hack/kind/containerd-config.toml | as_root tee "$dir/etc/containerd/config.toml" >/dev/null
    # As kind's base Dockerfile: the OCI base spec with kind's mount hook, no rlimits.
    as_root chroot "$dir" bash -c 'ctr oci spec | jq ".hooks.createContainer[.hooks.createContainer | length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}" | jq "del(.process.rlimits)" > /etc/containerd/cri-base.json'
    as_root chroot "$dir" bash -c '
      find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
      rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
        /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
        /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*
      echo ReadKMsg=no >> /etc/systemd/journald.conf
      ln -sf /usr/lib/systemd/systemd /sbin/init
      systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
      systemctl mask systemd-binfmt.service >/dev/null 2>&1'
    # `docker import --change` takes no STOPSIGNAL, so the image metadata is a build on top.
    import_dir "$dir" "$NODE_BASE_IMAGE-rootfs"
    printf '%s\n' "FROM $NODE_BASE_IMAGE-rootfs" 'ENV container=docker' 'STOPSIGNAL SIGRTMIN+3' \
      'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' | docker build -q -t "$NODE_BASE_IMAGE" - >/dev/null
    docker rmi "$NODE_BASE_IMAGE-rootfs" >/dev/null
  }
  with_rootfs_copy _node_base
}

# ---- 3b. local path: the node's images and the release tarball kind reads ------------------------

kubeadm_images() { "$K8S_BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null; }
pause_image_name() { kubeadm_images | grep /pause:; }
kind_const() { # the image kind v0.33 wants for a name (kindnetd, local-path-provisioner, local-path-helper)
  grep -rhoE "docker.io/kindest/$1:[^\"\`]+" "$(go env GOMODCACHE)/sigs.k8s.io/kind@${KIND_VERSION}/pkg/build/nodeimage/" | head -n1
}

binary_image() { # binary_image <image> <base> <binary path> [entrypoint]: one static binary on a base
  have_image "$1" && return
  local ctx; ctx="$(mktemp -d)"
  cp "$3" "$ctx/"
  {
    echo "FROM $2"
    echo "COPY $(basename "$3") /usr/local/bin/$(basename "$3")"
    echo "ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    [[ -n ${4:-} ]] && echo "ENTRYPOINT [\"/usr/local/bin/$4\"]"
  } >"$ctx/Dockerfile"
  docker build -q -t "$1" "$ctx" >/dev/null
  rm -rf "$ctx"
}

node_images() {
  local image name
  while read -r image; do
    name="${image##*/}"; name="${name%%:*}"
    case "$name" in
      kube-apiserver | kube-controller-manager | kube-scheduler) binary_image "$image" scratch "$K8S_BIN/$name" ;;
      kube-proxy) binary_image "$image" "$IPTABLES_IMAGE" "$LOCAL_BIN/kube-proxy" ;;
      etcd) binary_image "$image" scratch "$K8S_BIN/etcd" ;;  # the lab's etcd, under the tag kubeadm asks for
      coredns) binary_image "$image" scratch "$LOCAL_BIN/coredns" coredns ;;
      pause) binary_image "$image" scratch "$LOCAL_BIN/pause" pause ;;
      *) echo "kind-setup: no recipe for $image" >&2; exit 1 ;;
    esac
  done < <(kubeadm_images)
  binary_image "$(kind_const local-path-provisioner)" "$DEBIAN_IMAGE" "$LOCAL_BIN/local-path-provisioner"
  # The helper runs kind's setup/teardown shell scripts, so it is the Debian base itself.
  have_image "$(kind_const local-path-helper)" || docker tag "$DEBIAN_IMAGE" "$(kind_const local-path-helper)"
  # kindnetd is not on the Go module proxy; clusters use the bridge CNI instead
  # (networking.disableDefaultCNI), but the build wants the image present: the pause binary stands in.
  binary_image "$(kind_const kindnetd)" scratch "$LOCAL_BIN/pause" pause
}

release_tarball() { # the layout `kind build node-image --type file` reads
  local out="$KIND_DIR/kubernetes-server-${K8S_VERSION}-${SHAPE}.tar.gz"
  [[ -f $out ]] && { echo "$out"; return; }
  local work; work="$(mktemp -d)"
  mkdir -p "$work/kubernetes/server/bin"
  echo "$K8S_VERSION" >"$work/kubernetes/version"
  cp "$K8S_BIN/kubeadm" "$K8S_BIN/kubelet" "$K8S_BIN/kubectl" "$work/kubernetes/server/bin/"
  local extra=() image name
  while read -r image; do
    name="${image##*/}"; name="${name%%:*}"
    case "$name" in
      kube-apiserver | kube-controller-manager | kube-scheduler) hack/kind/image-tar.py "$work/kubernetes/server/bin/$name.tar" "$image" ;;
      *) extra+=("$image") ;;
    esac
  done < <(kubeadm_images)
  # kind pulls every image it needs that is not in these four tars; nothing can be pulled here,
  # so kube-proxy.tar carries all the others too.
  extra+=("$(kind_const local-path-provisioner)" "$(kind_const local-path-helper)" "$(kind_const kindnetd)")
  hack/kind/image-tar.py "$work/kubernetes/server/bin/kube-proxy.tar" "${extra[@]}"
  tar -C "$work" -czf "$out.tmp" kubernetes && mv "$out.tmp" "$out"
  rm -rf "$work"
  echo "$out"
}

local_node_image() {
  have_image "$LOCAL_NODE_IMAGE" && return
  local tarball; tarball="$(release_tarball)"
  "$KIND" build node-image --type file --base-image "$NODE_BASE_IMAGE" --image "$LOCAL_NODE_IMAGE" "$tarball"
}

prune_stale() { # node images and tarballs of other shapes: about 1.7 GB each
  local ref repo
  for repo in "$REPO/kind-node" "$REPO/kind-base"; do # `docker images` takes one repository
    for ref in $(docker images --format '{{.Repository}}:{{.Tag}}' "$repo"); do
      [[ $ref == "$LOCAL_NODE_IMAGE" || $ref == "$NODE_BASE_IMAGE" ]] || docker rmi "$ref" >/dev/null || true
    done
  done
  find "$KIND_DIR" -maxdepth 1 -name 'kubernetes-server-*.tar.gz' ! -name "*-${SHAPE}.tar.gz" -delete
}

local_images() {
  step "debian rootfs (debootstrap)" debian_rootfs
  step "image $DEBIAN_IMAGE" debian_image
  step "image $PYTHON_IMAGE" python_image
  step "image $IPTABLES_IMAGE" iptables_image
  step "kubelet, kubeadm, kube-proxy" hack/build-binaries.sh --node
  local coredns; coredns="$(kubeadm_images | grep /coredns: | sed 's/.*://')" # the version kubeadm deploys
  step "coredns ${coredns}" go_install_to coredns "github.com/coredns/coredns@${coredns}"
  step "local-path-provisioner ${LOCAL_PATH_PROVISIONER_VERSION}" go_install_to local-path-provisioner \
    "github.com/rancher/local-path-provisioner@${LOCAL_PATH_PROVISIONER_VERSION}"
  step "crictl ${CRICTL_VERSION}" go_install_to crictl "sigs.k8s.io/cri-tools/cmd/crictl@${CRICTL_VERSION}"
  [[ -x $LOCAL_BIN/kube-proxy ]] || ln -sf "$K8S_BIN/kube-proxy" "$LOCAL_BIN/kube-proxy"
  step "pause (gcc -static)" pause_binary
  step "image kind-base" node_base_image
  step "node component images" node_images
  step "image kind-node (kind build)" local_node_image
  step "remove stale node images" prune_stale
}

# ---- main ----------------------------------------------------------------------------------------

main() {
  local path node_image base_image
  step "docker engine" docker_engine
  step "inotify instances (512)" inotify_instances
  step "kind ${KIND_VERSION}" kind_binary
  if registry_answers; then
    path=stock node_image=$STOCK_NODE_IMAGE base_image=$STOCK_BASE_IMAGE
    step "stock images (Docker Hub)" stock_images
  else
    path=local node_image=$LOCAL_NODE_IMAGE base_image=$PYTHON_IMAGE
    log "no registry answers: building every image here (local path)"
    local_images
  fi
  printf 'EDGEROLL_KIND=%s\nEDGEROLL_KIND_PATH=%s\nEDGEROLL_KIND_NODE_IMAGE=%s\nEDGEROLL_IMAGE_BASE=%s\n' \
    "$KIND" "$path" "$node_image" "$base_image" >"$KIND_ENV"
  log "path=$path node image=$node_image base image=$base_image"
  log "done in $((SECONDS - T0))s (env in $KIND_ENV)"
}

# Sourced (for one step while debugging), it only defines the steps.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
