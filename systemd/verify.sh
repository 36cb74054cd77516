#!/usr/bin/env bash
# Runs `systemd-analyze verify` on every unit in this directory. The units name the installed
# binaries (/usr/local/bin/…), which systemd-analyze requires to exist; this script verifies
# copies whose ExecStart points at the built binaries in BIN_DIR instead, all else unchanged.
# Usage: systemd/verify.sh [BIN_DIR]   (default: target/debug)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin_dir="$(cd "${1:-$here/../target/debug}" && pwd)"
for b in runseald runseal-agent; do
    [ -x "$bin_dir/$b" ] || { echo "verify.sh: $bin_dir/$b is missing: build first" >&2; exit 1; }
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for unit in "$here"/*.service "$here"/*.socket; do
    sed "s#/usr/local/bin/#$bin_dir/#g" "$unit" > "$work/$(basename "$unit")"
done
cd "$work"
systemd-analyze verify ./*.service ./*.socket
echo "systemd-analyze verify: all units pass"
