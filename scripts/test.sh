#!/usr/bin/env bash
# The test command.
#
#   bash scripts/test.sh [PYTEST_ARGS...]          default suite: everything not marked slow
#   bash scripts/test.sh --slow [PYTEST_ARGS...]   the slow tests only
#
# Needs only python3.11 (or newer) with pip and venv. Creates the virtual environment
# .venv in the repository (or $NERFLOW_VENV) when missing and installs the project into it:
# torch==2.13.0 first (pip takes the CPU wheel on disk here; a looser request for torch
# would fetch a CUDA build of several GB), then the project with the exact versions of
# constraints.txt. The install is skipped when the environment already matches the current
# pyproject.toml and constraints.txt. Works from any directory.
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

py="$venv/bin/python"

if [[ ! -x "$py" ]]; then
    base="${NERFLOW_PYTHON:-}"
    if [[ -z "$base" ]]; then
        for candidate in python3.11 python3; do
            if command -v "$candidate" >/dev/null 2>&1; then
                base="$candidate"
                break
            fi
        done
    fi
    [[ -n "$base" ]] || { echo "scripts/test.sh: no python3.11 or python3 on PATH" >&2; exit 1; }
    echo "scripts/test.sh: creating $venv with $base" >&2
    "$base" -m venv "$venv"
fi

"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "scripts/test.sh: $venv has $("$py" --version), nerflow needs Python >= 3.11" >&2
    exit 1
}

stamp="$venv/.nerflow-install-stamp"
want="$({ "$py" -c 'import sys; print(sys.version)'; cat pyproject.toml constraints.txt; } | sha256sum | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
# An editable install of another checkout (a shared $NERFLOW_VENV) also needs reinstalling.
installed_here() {
    "$py" -c 'import sys, nerflow; sys.exit(not nerflow.__file__.startswith(sys.argv[1]))' "$repo/" >/dev/null 2>&1
}
if [[ "$have" != "$want" ]] || ! installed_here; then
    echo "scripts/test.sh: installing nerflow and its dependencies into $venv" >&2
    start=$SECONDS
    rm -f "$stamp"
    "$py" -m pip install --quiet --upgrade pip
    "$py" -m pip install --quiet -c constraints.txt "torch==2.13.0"
    "$py" -m pip install --quiet -c constraints.txt -e ".[dev]"
    "$py" -m pip check
    echo "$want" >"$stamp"
    echo "scripts/test.sh: installed in $((SECONDS - start)) s ($("$py" -m nerflow.cli version | tr '\n' ' '))" >&2
fi

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
