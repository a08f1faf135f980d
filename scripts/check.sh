#!/usr/bin/env bash
# The static checks CI runs before the tests, the same as .pre-commit-config.yaml:
# ruff (lint and format), mypy, and the import contracts of pyproject.toml. Any finding
# fails. Uses the environment scripts/test.sh makes (created here when missing).
#
#   bash scripts/check.sh
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(realpath -m "${NERFLOW_VENV:-$repo/.venv}")"
cd "$repo"
source "$repo/scripts/setup-env.sh"
bin="$venv/bin"

status=0
check() {
    echo "== $*" >&2
    "$@" || status=1
}
check "$bin/ruff" check .
check "$bin/ruff" format --check .
check "$bin/mypy"
check "$bin/lint-imports"
exit "$status"
