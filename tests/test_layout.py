"""The package layout's rules: what ner_core may import, and the installed entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# The engine must run without an orchestrator, an object store or the contract machinery.
FORBIDDEN_IN_NER_CORE = ("prefect", "s3fs", "polars", "great_expectations")

_IMPORT_ALL_OF_NER_CORE = """
import importlib, json, pkgutil, sys
import ner_core
modules = sorted(m.name for m in pkgutil.walk_packages(ner_core.__path__, "ner_core."))
for name in modules:
    importlib.import_module(name)
forbidden = set(json.loads(sys.argv[1]))
print(json.dumps({
    "modules": modules,
    "forbidden": sorted(m for m in sys.modules if m.split(".")[0] in forbidden),
}))
"""


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=os.environ.copy()
    )


def test_ner_core_imports_no_orchestration_storage_or_contract_libraries():
    proc = _run("-c", _IMPORT_ALL_OF_NER_CORE, json.dumps(FORBIDDEN_IN_NER_CORE))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "ner_core.errors" in report["modules"]
    assert report["forbidden"] == [], f"ner_core pulled in {report['forbidden']}"


def test_version_command_names_the_versions_that_decide_results():
    from nerflow import __version__

    proc = _run("-m", "nerflow.cli", "version")
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    assert lines["nerflow"] == __version__
    assert lines["torch"].startswith("2.13.0")
    assert lines["span_marker"] == "1.8.1"
    assert lines["transformers"].startswith("4.")


def test_command_line_keeps_prefect_telemetry_off_unless_asked(monkeypatch):
    from nerflow.cli import main

    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED", raising=False)
    assert main(["version"]) == 0
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "true")
    assert main(["version"]) == 0
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "true"


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "nerflow"
    assert script.exists() or shutil.which("nerflow"), "run `pip install -e .` (scripts/test.sh does)"
    proc = subprocess.run(
        [str(script if script.exists() else shutil.which("nerflow")), "version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("nerflow ")


def test_setup_refuses_to_install_into_a_python_that_is_not_a_virtual_environment(tmp_path):
    # A $NERFLOW_VENV whose bin/python is a bare symlink to the base interpreter runs as the
    # system's Python: installing there would rewrite the system's packages.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to(Path(sys._base_executable).resolve())
    # Should the guard ever break, pip must still change nothing.
    env = {**os.environ, "NERFLOW_VENV": str(tmp_path), "PIP_NO_INDEX": "1", "PIP_DRY_RUN": "1"}
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "test.sh"), "--collect-only"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 1
    assert "is not a virtual environment's Python; refusing to install into it" in proc.stderr
    assert not (tmp_path / ".nerflow-install-stamp").exists()


def test_tests_mirror_the_packages():
    # tests/<package>/<subpackage>/test_<module>.py tests <package>/<subpackage>/<module>.py;
    # a test folder with no package of its path means a test that lives in the wrong place.
    # (infra/, scripts/ and benchmarks/ are folders of the repository, not packages.)
    folders = [p.parent for p in (REPO_ROOT / "tests").rglob("test_*.py") if p.parent != REPO_ROOT / "tests"]
    for folder in sorted(set(folders)):
        package = REPO_ROOT / folder.relative_to(REPO_ROOT / "tests")
        assert package.is_dir(), f"tests/{package.relative_to(REPO_ROOT)} tests no package of that path"
        if package.name not in ("infra", "scripts", "benchmarks"):
            assert (package / "__init__.py").exists(), f"{package.relative_to(REPO_ROOT)} is not a package"
