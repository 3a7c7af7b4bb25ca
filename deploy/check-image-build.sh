#!/usr/bin/env bash
# What `docker build` would do for the Dockerfile's build stage, without Docker:
# copy exactly the files its COPY lines name (refusing any that .dockerignore
# would drop) into an empty directory, run deploy/build.sh there, and run the
# binary. CI calls this, so the image's build cannot break unnoticed.
#
# Usage: deploy/check-image-build.sh [TARGET_DIR]   (default: ./target, shared
# with local builds so a second run only rebuilds wxretain itself)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
target="${1:-$repo/target}"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cd "$repo"

ignored() {
  local path="$1" pattern
  while read -r pattern; do
    pattern="${pattern%/}"
    [[ -z "$pattern" || "$pattern" == \#* ]] && continue
    # shellcheck disable=SC2053 # the pattern is a glob on purpose
    [[ "$path" == $pattern || "$path" == $pattern/* ]] && return 0
  done < .dockerignore
  return 1
}

copied=0
# The build stage is everything before the second FROM; COPY --from is not ours.
while read -r -a words; do
  dest="${words[-1]}"
  for src in "${words[@]:1:${#words[@]}-2}"; do
    if [[ "$dest" != "./" && "$dest" != "./$src" ]]; then
      echo "Dockerfile: COPY $src $dest does not mirror its path under WORKDIR; teach $0 about it" >&2
      exit 1
    fi
    if ignored "$src"; then
      echo "Dockerfile copies $src, but .dockerignore leaves it out of the build context" >&2
      exit 1
    fi
    mkdir -p "$stage/$(dirname "$src")"
    cp -a "$src" "$stage/$src"
    copied=$((copied + 1))
  done
done < <(awk '/^FROM /{stage++} stage == 1 && /^COPY / && !/--from/' Dockerfile)
[[ $copied -gt 0 ]] || { echo "no COPY found in the Dockerfile's build stage" >&2; exit 1; }

echo "building the image's binary from $copied copied paths (like docker build)"
(cd "$stage" && CARGO_TARGET_DIR="$target" deploy/build.sh)
"$target/release/wxretain" --version
