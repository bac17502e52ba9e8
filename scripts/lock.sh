#!/usr/bin/env bash
# Re-resolve every dependency, transitive ones included, from pyproject.toml into the hashed
# lock files that scripts/setup.sh installs (pip --require-hashes):
#
#   scripts/requirements.lock        runtime + test extra: setup.sh, setup.sh --test, CI
#   scripts/requirements-bench.lock  the same pins + the bench extra: setup.sh --bench
#
#   scripts/lock.sh                       after editing pyproject.toml: keeps every pin that
#                                         still fits, resolves only what changed
#   scripts/lock.sh --upgrade             everything to the newest allowed versions
#   scripts/lock.sh --upgrade-package typer   just one package (repeatable)
#
# Then run the tests and commit the lock files with the change. Pins that must hold whatever
# the resolver prefers (the CPU torch build, litellm, xllamacpp) live in scripts/constraints.txt.
# The locks are resolved for CPython 3.11 on Linux x86_64, from the indexes pip is configured
# with (`pip config list`; torch 2.13.0+cpu comes from a find-links folder or the PyTorch CPU
# index, https://download.pytorch.org/whl/cpu, not from PyPI). Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

pip_compile=${ECOCASCADE_PIP_COMPILE:-.venv/bin/pip-compile}
if [ ! -x "$pip_compile" ] && ! command -v "$pip_compile" >/dev/null 2>&1; then
  echo "lock: no pip-compile; run scripts/setup.sh --test (or set ECOCASCADE_PIP_COMPILE)" >&2
  exit 1
fi

# The header names this script, not the pip-compile line, as the way to refresh.
export CUSTOM_COMPILE_COMMAND="scripts/lock.sh"
compile() {
  "$pip_compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
    --no-emit-index-url --no-emit-find-links --constraint scripts/constraints.txt "$@" \
    pyproject.toml 2> >(grep -v "is ignored: it is neither a file" >&2)
}

# The bench lock first, the main lock within it: the two never pin a shared package apart, so
# the benchmarks measure the versions the tests ran (the bench extra may hold pins back).
compile --extra test --extra bench --output-file scripts/requirements-bench.lock "$@"
compile --extra test --constraint scripts/requirements-bench.lock \
  --output-file scripts/requirements.lock "$@"
echo "lock: wrote scripts/requirements.lock and scripts/requirements-bench.lock" >&2
