#!/usr/bin/env bash
# `make image`: the edgeroll container image, one image with two entrypoints (`edgeroll operator` in
# the hub, `edgeroll cache` at the edges).
#
#   1. the edgeroll wheel, built on the host from a clean copy of the sources (the lab is excluded
#      by pyproject.toml), into build/image/app; rebuilt only when its sources changed;
#   2. the dependency wheels, downloaded on the host from PyPI, into build/image/wheels; fetched
#      again only when edgeroll's declared dependencies changed (`rm -rf build/image` re-resolves);
#   3. `docker build`, which installs those wheels with no network (`pip install --no-index`).
#
# The host's Python must match the image's (CPython 3.11, glibc ≥ the wheels' manylinux tag):
# true for this repository's hosts (Debian 12) and both bases below.
# EDGEROLL_IMAGE names the image (default localhost:5000/edgeroll:dev). EDGEROLL_IMAGE_BASE is the
# base; unset, it is read from hack/kind-setup.sh's env file when that exists (the local path builds
# localhost:5000/python:3.11-slim-bookworm from Debian packages), else python:3.11-slim-bookworm.
# Idempotent; prints each step's time and, at the end, the image's size.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

IMAGE="${EDGEROLL_IMAGE:-localhost:5000/edgeroll:dev}"
OUT=build/image
PY=.venv/bin/python
[[ -x $PY ]] || PY=python3
export PIP_DISABLE_PIP_VERSION_CHECK=1
T0=$SECONDS

step() { local name="$1"; shift; local t=$SECONDS; "$@"; printf 'image: %-30s %4ds\n' "$name" "$((SECONDS - t))"; }
log() { echo "image: $*"; }

logged() { # logged <name> <command...>: output to $OUT/logs/<name>.log, shown only on failure
  mkdir -p "$OUT/logs"
  "${@:2}" >"$OUT/logs/$1.log" 2>&1 || { tail -n 40 "$OUT/logs/$1.log" >&2; log "$1 failed (log: $OUT/logs/$1.log)" >&2; exit 1; }
}

base_image() {
  if [[ -n ${EDGEROLL_IMAGE_BASE:-} ]]; then echo "$EDGEROLL_IMAGE_BASE"; return; fi
  local env_file; env_file="$(hack/kind-setup.sh --print-env)"
  local base; base="$([[ -f $env_file ]] && sed -n 's/^EDGEROLL_IMAGE_BASE=//p' "$env_file" | tail -n1 || true)"
  echo "${base:-python:3.11-slim-bookworm}"
}

# What goes into the wheel: its metadata files and the package sources, without caches.
SOURCES=(pyproject.toml README.md operator)
source_files() { find "${SOURCES[@]}" -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' | LC_ALL=C sort; }

app_wheel() {
  local key; key="$(source_files | xargs -d '\n' sha256sum | sha256sum | cut -c1-16)"
  [[ -f $OUT/app.key && $(cat "$OUT/app.key") == "$key" ]] && ls "$OUT"/app/edgeroll-*.whl >/dev/null 2>&1 && return
  # A clean copy: setuptools would otherwise write into the tree (egg-info) and could pick up stale
  # files from an old build/lib.
  rm -rf "$OUT/src" "$OUT/app.tmp" && mkdir -p "$OUT/src"
  source_files | tar -c -T - | tar -x -C "$OUT/src"
  # A fixed date makes the wheel byte-identical for identical sources, so docker's cache holds.
  logged app-wheel env SOURCE_DATE_EPOCH=315532800 "$PY" -m pip wheel --no-deps --wheel-dir "$OUT/app.tmp" "./$OUT/src"
  rm -rf "$OUT/app" && mv "$OUT/app.tmp" "$OUT/app" && rm -rf "$OUT/src"
  echo "$key" >"$OUT/app.key"
}

requires_dist() { # the wheel's runtime requirements (extras left out), one a line
  "$PY" - "$1" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl:
    meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
    lines = whl.read(meta).decode().splitlines()
print("\n".join(sorted(l for l in lines if l.startswith("Requires-Dist:") and "extra ==" not in l)))
EOF
}

dependency_wheels() {
  local app; app="$(ls "$OUT"/app/edgeroll-*.whl)"
  local key; key="$( { requires_dist "$app"; "$PY" -c 'import sys; print(sys.version_info[:2])'; } | sha256sum | cut -c1-16)"
  [[ -f $OUT/wheels.key && $(cat "$OUT/wheels.key") == "$key" && -d $OUT/wheels ]] && return
  rm -rf "$OUT/wheels.tmp"
  logged dependency-wheels "$PY" -m pip wheel --wheel-dir "$OUT/wheels.tmp" "$app"
  rm -f "$OUT"/wheels.tmp/edgeroll-*.whl
  rm -rf "$OUT/wheels" && mv "$OUT/wheels.tmp" "$OUT/wheels"
  echo "$key" >"$OUT/wheels.key"
}

docker_build() {
  local base="$1" before after
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    # localhost:5000/ names are built here, never pulled.
    [[ $base == localhost:5000/* ]] && { log "base image $base is not here: make kind-setup builds it" >&2; exit 1; }
    log "base image $base is not here, docker will pull it (when no registry answers, make kind-setup builds one)"
  fi
  before="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
  logged docker-build docker build --build-arg "BASE_IMAGE=$base" -t "$IMAGE" .
  log "docker build: $(grep -c '^Step ' "$OUT/logs/docker-build.log" || true) steps, $(grep -c 'Using cache' "$OUT/logs/docker-build.log" || true) from cache"
  after="$(docker image inspect -f '{{.Id}}' "$IMAGE")"
  # The image this build replaced, if nothing else names it, would only take disk space.
  if [[ -n $before && $before != "$after" && $(docker image inspect -f '{{len .RepoTags}}' "$before" 2>/dev/null) == 0 ]]; then
    docker image rm "$before" >/dev/null 2>&1 || true
  fi
}

main() {
  local base; base="$(base_image)"
  log "$IMAGE from $base"
  step "edgeroll wheel" app_wheel
  step "dependency wheels" dependency_wheels
  step "docker build" docker_build "$base"
  local bytes; bytes="$(docker image inspect -f '{{.Size}}' "$IMAGE")"
  log "done in $((SECONDS - T0))s"
  echo "image: $IMAGE $((bytes / 1000000)) MB"
}

main "$@"
