#!/usr/bin/env bash
# `make setup`: everything edgeroll needs on a fresh machine of this kind.
# Idempotent; a warm re-run only checks what is there. Prints each step's time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
T0=$SECONDS

step() { local name="$1"; shift; local t=$SECONDS; "$@"; printf 'setup: %-28s %4ds\n' "$name" "$((SECONDS - t))"; }

venv() {
  [[ -x .venv/bin/python ]] || "$PY" -m venv .venv
  # Re-install only when the project metadata changed since the last install.
  local stamp=.venv/.edgeroll-installed
  if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    .venv/bin/pip install -q -U pip
    .venv/bin/pip install -q -e '.[dev]'
    touch "$stamp"
  fi
}

debian_tools() {
  # nginx and wrk are the benchmark baseline and load generator (bench/); prometheus is the lab's
  # metrics server (operator/edgeroll/lab/prometheus.py), which rollout analysis queries.
  local missing=()
  command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
  command -v wrk >/dev/null || missing+=(wrk)
  [[ -x /usr/bin/prometheus ]] || missing+=(prometheus)
  if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]]; then
      # --no-install-recommends: prometheus recommends prometheus-node-exporter, which the lab never uses.
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || {
        apt-get update -q >/dev/null &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
      # Debian starts nginx on :80 and prometheus on :9090 after install; the benchmarks and the lab
      # run their own, on loopback ports of their choosing.
      service nginx stop >/dev/null 2>&1 || true
      service prometheus stop >/dev/null 2>&1 || true
    else
      echo "setup: missing ${missing[*]} (install with: sudo apt-get install ${missing[*]})" >&2
    fi
  fi
}

wgc() {
  # wgc composes Cosmo execution configs for the examples and e2e tests.
  local prefix="${EDGEROLL_CACHE:-$HOME/.cache/edgeroll}/npm"
  [[ -x $prefix/node_modules/.bin/wgc ]] || npm install --no-audit --no-fund --silent --prefix "$prefix" wgc@0.112.7 >/dev/null
}

step "python venv + project" venv
step "go toolchain (k8s, etcd...)" hack/build-binaries.sh
step "debian: nginx wrk prometheus" debian_tools
step "npm: wgc" wgc
echo "setup: binaries in $(hack/build-binaries.sh --print-bin)"
echo "setup: done in $((SECONDS - T0))s"
