#!/usr/bin/env bash
# Checks deploy/systemd/wxretain.service the way systemd would read it:
#   - `systemd-analyze verify`, which must print nothing (it exits 0 on
#     unknown keys and only warns, so any output fails here);
#   - `systemd-analyze security --offline=true`: the sandbox's exposure must
#     stay at or below THRESHOLD tenths ("1.2 OK" today; 15 = 1.5).
# verify insists that ExecStart's program exists, and /usr/local/bin/wxretain
# is not installed where CI runs: a copy of the unit runs /bin/true instead.
# CI (.ci/run) and tests/it/deploy_host.rs run it. Usage: deploy/systemd/check.sh [THRESHOLD]
set -euo pipefail
threshold="${1:-15}"
unit="$(cd "$(dirname "$0")" && pwd)/wxretain.service"
binary=/usr/local/bin/wxretain
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

grep -q "^ExecStart=$binary " "$unit" || {
  echo "$unit: ExecStart no longer runs $binary; update $0" >&2
  exit 1
}
sed "s|^ExecStart=$binary |ExecStart=/bin/true |" "$unit" >"$tmp/wxretain.service"
if ! out="$(systemd-analyze verify "$tmp/wxretain.service" 2>&1)" || [[ -n "$out" ]]; then
  echo "systemd-analyze verify $unit:" >&2
  echo "${out//$tmp\//}" >&2
  exit 1
fi
if ! out="$(systemd-analyze security --offline=true --threshold="$threshold" "$unit" 2>&1)"; then
  echo "$out" >&2
  echo "systemd-analyze security: $unit is more exposed than $((threshold / 10)).$((threshold % 10))" >&2
  exit 1
fi
echo "${out##*$'\n'}"
