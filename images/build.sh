#!/usr/bin/env bash
# Build the testbed images with no container registry (`make images`):
#   1. tb/base:bookworm  from Debian packages (images/base/build.sh, mmdebstrap)
#   2. images/.wheelhouse (images/wheels.sh)
#   3. tb/host:latest, tb/tmedia:latest, tb/sipp:latest (legacy docker builder)
# A run with nothing changed takes seconds: the base and the wheelhouse carry
# hashes of their inputs, the rest is Docker's layer cache.
#
# Environment:
#   BASE=<image>   base for the three images instead of building tb/base:bookworm,
#                  e.g. BASE=debian:bookworm-slim where a registry is reachable
#                  (the Dockerfiles then apt-install the packages they need).
#   TAG=<tag>      tag of the three images (default latest)
#   FORCE=1        rebuild the base and the wheelhouse even when up to date
#   VERBOSE=1      stream docker build output (default: to images/.cache/logs/)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
cd "$root"

TAG=${TAG:-latest}
log_dir="$here/.cache/logs"
mkdir -p "$log_dir"

# One build at a time on this checkout (the harness calls this script before
# every bring-up): a second run waits, then finds everything up to date.
exec 9>"$here/.cache/build.lock"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
    printf '==> another images/build.sh is running; waiting for it ...\n'
    flock 9
fi

t0=$EPOCHREALTIME
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '==> %s\n' "$*"; }

# step NAME CMD...: run CMD, print its duration.
step() {
    local name=$1 start=$EPOCHREALTIME
    shift
    say "$name ..."
    if ! "$@"; then
        say "$name FAILED after $(elapsed "$start") s"
        exit 1
    fi
    say "$name done in $(elapsed "$start") s"
}

command -v docker >/dev/null 2>&1 || { echo "docker is not installed" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "cannot talk to the Docker daemon" >&2; exit 1; }

ensure_mmdebstrap() {
    command -v mmdebstrap >/dev/null 2>&1 && return 0
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "mmdebstrap is missing: install it with  apt-get install mmdebstrap  (as root)," >&2
        echo "or build on another base: BASE=debian:bookworm-slim $0" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends mmdebstrap >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends mmdebstrap; }
}

# docker_build NAME DOCKERFILE: build tb/NAME:TAG from the repo root.
docker_build() {
    local name=$1 dockerfile=$2 log="$log_dir/$1.log"
    local args=(-f "$dockerfile" -t "tb/$name:$TAG" --label "org.hatestbed.tag=$TAG" --build-arg "BASE=$BASE" .)
    if [[ "${VERBOSE:-0}" == 1 ]]; then
        DOCKER_BUILDKIT=0 docker build "${args[@]}" 2>&1 | tee "$log"
        return "${PIPESTATUS[0]}"
    fi
    if ! DOCKER_BUILDKIT=0 docker build "${args[@]}" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "(full log: $log)" >&2
        return 1
    fi
    # ARG and FROM steps never say "Using cache"; everything else either does or ran.
    local steps cached fixed
    steps=$(grep -c '^Step ' "$log" || true)
    fixed=$(grep -c -E '^Step [0-9]+/[0-9]+ : (ARG|FROM) ' "$log" || true)
    cached=$(grep -c 'Using cache' "$log" || true)
    printf '    tb/%s:%s  %s  (%s of %s steps rebuilt)\n' "$name" "$TAG" \
        "$(docker image inspect "tb/$name:$TAG" --format '{{.Id}}' | cut -c8-19)" \
        "$((steps - fixed - cached))" "$((steps - fixed))"
}

if [[ -n "${BASE:-}" ]]; then
    say "using BASE=$BASE (not building tb/base:bookworm)"
else
    BASE=tb/base:bookworm
    command -v mmdebstrap >/dev/null 2>&1 || step "install mmdebstrap" ensure_mmdebstrap
    step "base image $BASE" bash "$here/base/build.sh"
fi
step "wheelhouse" bash "$here/wheels.sh"
step "image tb/host:$TAG" docker_build host images/host/Dockerfile
step "image tb/tmedia:$TAG" docker_build tmedia images/tmedia/Dockerfile
step "image tb/sipp:$TAG" docker_build sipp images/sipp/Dockerfile

# Superseded builds of this tag would pile up with every code change: drop them
# (only this tag's: another testbed's images are never touched).
bash "$here/prune.sh" "$TAG" || true

say "all images built in $(elapsed "$t0") s"
docker images --filter label=org.hatestbed=1 --filter dangling=false --format '    {{.Repository}}:{{.Tag}}\t{{.Size}}' | sort
