#!/usr/bin/env bash
# Fill images/.wheelhouse/ with every wheel the host and tmedia images install
# (images/requirements.txt, a fully pinned closure), for CPython 3.11 on
# x86_64 glibc <= 2.36 (Debian 12). The Dockerfiles then install offline with
#   pip install --no-index --find-links /tmp/wheels -r requirements.txt
#
# 1. Binary wheels are downloaded for the target platform (not the build
#    machine's), with --no-deps: requirements.txt already lists everything.
# 2. Requirements marked "# sdist" in requirements.txt, and any other without a
#    matching wheel, are built with `pip wheel` on this machine. A pure-Python
#    sdist builds anywhere; one with C code needs CPython 3.11, gcc and the
#    Python headers here (the host's glibc must not be newer than Debian 12's).
# 3. The result is checked: the whole set must resolve offline for the target.
#
# Skips in milliseconds when .wheelhouse/.stamp holds the hash of
# requirements.txt and this script. FORCE=1 rebuilds. PYTHON picks the
# interpreter (default: python3.11 if present, else python3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
req="$here/requirements.txt"
wheelhouse="$here/.wheelhouse"
stamp="$wheelhouse/.stamp"
cache_dir="$here/.cache"

log() { printf '[wheels] %s\n' "$*" >&2; }
die() { printf '[wheels] ERROR: %s\n' "$*" >&2; exit 1; }

[[ -f "$req" ]] || die "missing $req"
hash=$(cat "$req" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)

if [[ "${FORCE:-0}" != 1 && -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
    log "$wheelhouse is up to date ($(ls "$wheelhouse"/*.whl 2>/dev/null | wc -l) wheels, hash $hash)"
    exit 0
fi

if [[ -n "${PYTHON:-}" ]]; then
    py=$PYTHON
elif command -v python3.11 >/dev/null 2>&1; then
    py=python3.11
else
    py=python3
fi
command -v "$py" >/dev/null 2>&1 || die "no Python interpreter '$py' (set PYTHON=...)"
"$py" -m pip --version >/dev/null 2>&1 \
    || die "'$py -m pip' does not work: install pip for it (e.g. apt-get install python3-pip) or set PYTHON=..."
py_tag=$("$py" -c 'import sys; print(f"{sys.implementation.name}{sys.version_info[0]}{sys.version_info[1]}")')

# Target: CPython 3.11, manylinux up to glibc 2.36 (Debian 12), x86_64.
target=(--python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none)
for ((g = 36; g >= 5; g--)); do target+=(--platform "manylinux_2_${g}_x86_64"); done
target+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)

pip_q=(-q)
[[ "${VERBOSE:-0}" == 1 ]] && pip_q=()
export PIP_DISABLE_PIP_VERSION_CHECK=1
unset PIP_FIND_LINKS PIP_NO_INDEX  # resolve from the index only, not a local dir

mkdir -p "$cache_dir"
new=$(mktemp -d "$cache_dir/wheelhouse.XXXXXX")
trap 'rm -rf "$new"' EXIT

# Split requirements: "name==version" lines, the "# sdist" ones apart.
binary=() source=()
while IFS= read -r line; do
    spec=${line%%#*}
    spec=${spec//[[:space:]]/}
    [[ -z "$spec" ]] && continue
    if [[ "$line" == *"# sdist"* ]]; then source+=("$spec"); else binary+=("$spec"); fi
done <"$req"
log "${#binary[@]} binary wheels to fetch, ${#source[@]} to build from sdist (python: $py, $py_tag)"

if ((${#binary[@]})); then
    if ! "$py" -m pip download "${pip_q[@]}" --no-deps --only-binary=:all: "${target[@]}" \
            -d "$new" "${binary[@]}" 2>"$new/.download.err"; then
        # Find out which ones have no wheel for the target; build those.
        log "bulk download failed; retrying one by one:"
        sed 's/^/[wheels]   /' "$new/.download.err" | tail -n 3 >&2
        for spec in "${binary[@]}"; do
            if ! "$py" -m pip download -q --no-deps --only-binary=:all: "${target[@]}" \
                    -d "$new" "$spec" 2>/dev/null; then
                log "no cp311 manylinux wheel for $spec: will build it from its sdist"
                source+=("$spec")
            fi
        done
    fi
    rm -f "$new/.download.err"
fi

for spec in "${source[@]}"; do
    name=${spec%%[=<>!~;]*}
    log "building $spec from sdist"
    if ! "$py" -m pip wheel "${pip_q[@]}" --no-deps --no-binary="$name" -w "$new" "$spec"; then
        die "no wheel and no buildable sdist for $spec (is it on the index?). Sdists with C code
        need CPython 3.11 here (found $py_tag), gcc and the Python headers: apt-get install build-essential python3-dev"
    fi
done

# Everything must resolve offline for the target (a built wheel may be tagged
# linux_x86_64, which the image's pip accepts).
if ! "$py" -m pip install "${pip_q[@]}" --dry-run --ignore-installed --no-index --find-links "$new" \
        --only-binary=:all: "${target[@]}" --platform linux_x86_64 \
        --target "$new/.dry-run" -r "$req" >"$new/.check.log" 2>&1; then
    cat "$new/.check.log" >&2
    die "the wheelhouse does not install offline for cp311/x86_64 (see above); missing pins in $req?"
fi
rm -rf "$new/.check.log" "$new/.dry-run"

echo "$hash" >"$new/.stamp"
rm -rf "$wheelhouse"
mv "$new" "$wheelhouse"
chmod 755 "$wheelhouse"
trap - EXIT
log "$wheelhouse: $(ls "$wheelhouse"/*.whl | wc -l) wheels, $(du -sh "$wheelhouse" | cut -f1) (hash $hash)"
