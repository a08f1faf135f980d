#!/usr/bin/env bash
# The test command.
#
#   bash scripts/test.sh [PYTEST_ARGS...]          default suite: everything not marked slow
#   bash scripts/test.sh --slow [PYTEST_ARGS...]   the slow tests only
#
# Needs only python3.11 (or newer) with pip and venv: scripts/setup-env.sh creates the
# virtual environment .venv in the repository (or $NERFLOW_VENV) and installs the project
# into it when needed. Works from any directory.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(realpath -m "${NERFLOW_VENV:-$repo/.venv}")"
# pytest runs from the repository root (its configuration is pyproject.toml): relative paths
# among PYTEST_ARGS are taken from there.
cd "$repo"

mode=default
if [[ "${1:-}" == "--slow" ]]; then
    mode=slow
    shift
fi

source "$repo/scripts/setup-env.sh"

if [[ "$mode" == slow ]]; then
    # pytest exits 5 and closes on "no tests ran" when nothing is marked slow: collect first
    # so that an empty slow suite is reported as such. Any other failure (a collection
    # error) falls through to the real run, which reports it.
    collected=0
    "$py" -m pytest -q -m slow --collect-only -p no:cacheprovider "$@" >/dev/null 2>&1 || collected=$?
    if [[ "$collected" == 5 ]]; then
        echo "scripts/test.sh: no slow tests selected"
        exit 0
    fi
    exec "$py" -m pytest -m slow "$@"
fi
exec "$py" -m pytest -m "not slow" "$@"
