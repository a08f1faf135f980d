# Sourced by scripts/test.sh and scripts/quickstart.sh: makes the virtual environment and
# installs nerflow into it when needed. Expects $repo and $venv; sets $py.
#
# Needs only python3.11 (or newer) with pip and venv. Creates $venv when missing and installs
# the project into it: torch==2.13.0 first (pip takes the CPU wheel on disk here; a looser
# request for torch would fetch a CUDA build of several GB), then the project with the exact
# versions of constraints.txt. The install is skipped when the environment already matches
# the current pyproject.toml and constraints.txt.

# Unset, `python -m venv ""` would turn the current directory into a virtual environment.
: "${repo:?scripts/setup-env.sh: set repo (the checkout) before sourcing it}"
: "${venv:?scripts/setup-env.sh: set venv (the virtual environment) before sourcing it}"
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
    [[ -n "$base" ]] || { echo "nerflow setup: no python3.11 or python3 on PATH" >&2; exit 1; }
    echo "nerflow setup: creating $venv with $base" >&2
    "$base" -m venv "$venv"
fi

"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "nerflow setup: $venv has $("$py" --version), nerflow needs Python >= 3.11" >&2
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
    # Never install into a Python that is not a virtual environment (a $NERFLOW_VENV whose
    # bin/python is a bare symlink to the system's): that would rewrite the system's packages.
    "$py" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' || {
        echo "nerflow setup: $py is not a virtual environment's Python; refusing to install into it" >&2
        exit 1
    }
    echo "nerflow setup: installing nerflow and its dependencies into $venv (minutes the first time)" >&2
    start=$SECONDS
    rm -f "$stamp"
    # pip runs quietly (no download bars, no lines per package) and says nothing about newer
    # pips; one line per step instead. Its warnings and errors still show.
    pip_install() { "$py" -m pip install --quiet --disable-pip-version-check "$@"; }
    echo "nerflow setup: [1/4] pip" >&2
    pip_install --upgrade pip
    echo "nerflow setup: [2/4] torch 2.13.0 (the CPU wheel)" >&2
    pip_install -c constraints.txt "torch==2.13.0"
    echo "nerflow setup: [3/4] nerflow (editable) and its dependencies, at the versions of constraints.txt" >&2
    # setuptools reports how it made the editable install ("Editable installation. Please be
    # careful with folders in your working directory with the same name as your package")
    # as a warning, which pip shows even when quiet. It asks nothing of the user, so that one
    # message is filtered by its text (in pip and in the build backend it starts); any other
    # warning still shows.
    PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Editable installation" \
        "$py" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
    echo "nerflow setup: [4/4] pip check" >&2
    # Quiet when the environment is consistent ("No broken requirements found."); the
    # conflicts otherwise, and the script stops.
    if ! problems="$("$py" -m pip check --disable-pip-version-check 2>&1)"; then
        echo "$problems" >&2
        echo "nerflow setup: pip check found conflicting requirements in $venv" >&2
        exit 1
    fi
    echo "$want" >"$stamp"
    echo "nerflow setup: installed in $((SECONDS - start)) s ($("$py" -m nerflow.cli version | paste -sd ' ' -))" >&2
fi
