#!/usr/bin/env bash
# Creates the Python virtual environment with the real fal CLI and SDK (pinned in
# requirements.txt next to this script) that tests/it/fal_cli.rs runs against runseald.
#
#   tests/fal/venv.sh [VENV_DIR]      # default: target/fal-venv; prints the venv's path
#
# Idempotent: a venv built from the same requirements.txt is reused as it is (a stamp holds the
# file's hash); a changed requirements.txt or a half-built venv is rebuilt. Concurrent callers
# wait for each other (flock). Needs python3 with the venv module (Debian: python3-venv) and
# access to the Python package registry the first time.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/target/fal-venv}"
req="$here/requirements.txt"

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi

want="$(sha256sum "$req" | cut -d' ' -f1)"
stamp="$venv/.requirements.sha256"
if [ -x "$venv/bin/fal" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
    echo "$venv"
    exit 0
fi

python="${PYTHON:-python3}"
if ! "$python" -m venv --clear "$venv" >&2; then
    echo "venv.sh: '$python -m venv' failed; install the venv module (Debian: apt-get install python3-venv)" >&2
    exit 1
fi
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" >&2
"$venv/bin/fal" --version >&2
echo "$want" >"$stamp"
echo "$venv"
