"""The files under infra/, loaded the way their tools load them, and compose's interpolation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
COMPOSE_FILES = ("compose.yaml", "compose.gpu-worker.yaml")

# Compose's interpolation syntax: "$$" (a literal "$"), ${VAR}, ${VAR:-default}, ${VAR-default},
# ${VAR:?message}, ${VAR?message}, ${VAR:+replacement}, ${VAR+replacement}, and bare $VAR.
_TOKEN = re.compile(
    r"\$\$"
    r"|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


class MissingVariable(ValueError):
    """A ``${VAR:?message}`` whose variable is unset or empty."""


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a compose ``.env`` file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        values[key.strip()] = value.strip()
    return values


def variables_used(node: Any) -> tuple[set[str], set[str]]:
    """``(braced, bare)``: names of the variables interpolated anywhere in a loaded yaml tree."""
    braced: set[str] = set()
    bare: set[str] = set()
    for text in _strings(node):
        for m in _TOKEN.finditer(text):
            if m["braced"]:
                braced.add(m["braced"])
            elif m["bare"]:
                bare.add(m["bare"])
    return braced, bare


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """The yaml tree with variables replaced as docker compose replaces them from ``env``."""
    if isinstance(node, dict):
        return {interpolate(k, env): interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if not isinstance(node, str):
        return node

    def replace(m: re.Match) -> str:
        if m[0] == "$$":
            return "$"
        name = m["braced"] or m["bare"]
        value, op, arg = env.get(name), m["op"], m["arg"]
        unset_or_empty = not value
        missing = unset_or_empty if (op or "").startswith(":") else value is None
        if op in (":-", "-"):
            return arg if missing else value
        if op in (":?", "?"):
            if missing:
                raise MissingVariable(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            return "" if missing else arg
        return value or ""

    return _TOKEN.sub(replace, node)


def _strings(node: Any):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


@pytest.fixture(scope="session")
def env_example() -> dict[str, str]:
    """infra/.env.example, as compose reads an .env file."""
    return read_env_file(INFRA / ".env.example")


@pytest.fixture(scope="session")
def compose_raw() -> dict[str, dict]:
    """Each compose file as written (merge keys resolved, variables not interpolated)."""
    return {name: yaml.safe_load((INFRA / name).read_text()) for name in COMPOSE_FILES}


@pytest.fixture(scope="session")
def compose(compose_raw: dict[str, dict], env_example: dict[str, str]) -> dict[str, dict]:
    """Each compose file interpolated with infra/.env.example, as ``docker compose config`` would."""
    return {name: interpolate(doc, env_example) for name, doc in compose_raw.items()}


@pytest.fixture(scope="session")
def prefect_yaml() -> dict:
    """The repository's prefect.yaml (deployments for `prefect deploy`)."""
    return yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
