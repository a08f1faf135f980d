"""What the flow benchmarks share: an offline, quiet environment and access to sibling scripts."""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
# The labelled NER data (../shared/data/ner, described by its DATA.md), or NERFLOW_NER_DATA.
NER_DATA = Path(os.environ.get("NERFLOW_NER_DATA", ROOT.parent / "shared" / "data" / "ner"))


def offline_environment() -> None:
    """Never reach a hub, keep Prefect's and Ray's logs and telemetry quiet, import the project."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def sibling(name: str) -> ModuleType:
    """A module of benchmarks/ (not a package) by file name."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def labelled_sets(folder: str, limit: int | None = None, *, skip: int = 0) -> dict[str, list]:
    """Every labelled set of one folder of the NER data (``"dev"``, ``"docs"``, ...) by its
    name: the ``limit`` records after the first ``skip`` of each (all of them without a limit)."""
    from ner_core.labelled import read_labelled

    return {
        path.name.split(".", 1)[0]: list(read_labelled(str(path), limit=None if limit is None else skip + limit))[skip:]
        for path in sorted((NER_DATA / folder).glob("*.jsonl.gz"))
    }


def proc_status_kb(field: str) -> int:
    """A memory line of ``/proc/self/status`` in kB: ``"VmRSS"`` now, ``"VmHWM"`` the peak.

    VmHWM, not getrusage, for a peak: Linux carries ru_maxrss over from the parent across fork
    and exec.
    """
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(f"{field}:"))


# The instruction sets that decide the engine's fast paths (ner_core.inference.cpu_fast_kind).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_facts() -> dict:
    """The CPU's model name, core count and whether it has each of :data:`CPU_FLAGS`, from
    /proc/cpuinfo: the CPU changes between machines, and speeds compare only on one."""
    name, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not name:
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {
        "model_name": name or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        **{f: f in flags for f in CPU_FLAGS},
    }


def cpu_description() -> str:
    """:func:`cpu_facts` in one line, for a report: "AMD EPYC, 2 cores (avx2)"."""
    facts = cpu_facts()
    have = [f for f in CPU_FLAGS if facts[f]]
    return f"{facts['model_name']}, {facts['cores']} cores ({', '.join(have) or 'no AVX2'})"
