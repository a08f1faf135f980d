"""The NER step on a Ray cluster: where the flow connects, and what each NER task asks Ray for.

Plain functions of plain values, no Prefect and no Ray import: ``flows/ner_runners.py`` turns
them into ``prefect_ray`` calls.

- Where the cluster has GPUs (device policy ``"auto"`` or ``"cuda"``), each NER task asks for
  one GPU and ``cpus_per_task`` CPUs (tokenisation and decoding run on the CPU); without GPUs,
  for ``cpus_per_task`` CPUs alone.
- Ray makes the GPU it assigned to a task the only one the task's process sees
  (``CUDA_VISIBLE_DEVICES``), so a GPU task runs on ``cuda:0``.
- Worker processes serve one NER task after another (``max_calls=0``), so each loads the model
  once (``ner_core.load_model`` keeps one per process and device). Ray's default for GPU tasks,
  a new process for every call, would load the model again for every batch. CUDA reads
  ``CUDA_VISIBLE_DEVICES`` once per process, so a reused worker stays on the GPU it started
  on even when Ray assigns its next task another one (untested on GPUs so far: with one
  worker per GPU alive, every GPU still has one worker).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nerflow.etl.errors import DeviceUnavailableError

__all__ = [
    "LOCAL",
    "GPU_TASK_DEVICE",
    "RaySettings",
    "runner_arguments",
    "uses_gpus",
    "ner_task_options",
    "ner_slots",
    "task_device",
    "describe_slots",
]

LOCAL = "local"
"""The address that starts a Ray instance on this machine for the run (as does no address)."""

GPU_TASK_DEVICE = "cuda:0"
"""The device of a Ray GPU task: the one GPU Ray left visible to it."""


@dataclass(frozen=True, kw_only=True)
class RaySettings:
    """Which Ray cluster runs the NER tasks, and how big a task is.

    Attributes:
        address: ``None``, empty or ``"local"`` (start a Ray instance on this machine for the run),
            ``"auto"`` (the cluster already running on this machine), ``"host:6379"`` (a
            cluster's head) or ``"ray://host:10001"`` (Ray Client).
        cpus_per_task: CPUs one NER task takes, beside its GPU where there are GPUs.
    """

    address: str | None = None
    cpus_per_task: float = 1.0

    def __post_init__(self) -> None:
        if not (self.cpus_per_task > 0 and math.isfinite(self.cpus_per_task)):
            raise ValueError(f"cpus_per_task must be a positive number, got {self.cpus_per_task!r}")


def runner_arguments(address: str | None) -> tuple[str | None, dict[str, Any]]:
    """``address`` and ``init_kwargs`` for ``prefect_ray.RayTaskRunner``.

    Returns:
        ``(None, {...})`` to start a local instance (no dashboard: it lives for one run),
        ``(None, {"address": "auto"})`` for the cluster running on this machine (the runner
        itself would start a new instance for ``"auto"``), else ``(address, {})``.
    """
    if address is None or address.strip() in ("", LOCAL):
        return None, {"include_dashboard": False}
    address = address.strip()
    if address == "auto":
        return None, {"address": "auto"}
    return address, {}


def uses_gpus(policy: str, resources: Mapping[str, float]) -> bool:
    """Whether NER tasks ask for GPUs, given the device policy and the cluster's resources.

    Raises:
        DeviceUnavailableError: ``"cuda"`` on a cluster without GPUs.
    """
    if policy not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device policy must be 'auto', 'cpu' or 'cuda', got {policy!r}")
    if policy == "cpu":
        return False
    if resources.get("GPU", 0) >= 1:
        return True
    if policy == "cuda":
        raise DeviceUnavailableError("the Ray cluster has no GPU", device=policy)
    return False


def ner_task_options(*, gpu: bool, cpus_per_task: float) -> dict[str, Any]:
    """Ray ``remote`` options of one NER task (for ``prefect_ray.context.remote_options``)."""
    options: dict[str, Any] = {"num_cpus": cpus_per_task}
    if gpu:
        # 0 = no limit: a worker keeps its model across tasks (Ray's GPU default is 1 call).
        options.update(num_gpus=1, max_calls=0)
    return options


def ner_slots(resources: Mapping[str, float], *, gpu: bool, cpus_per_task: float, can_grow: bool = True) -> int:
    """NER tasks the cluster runs at once: one per GPU (as far as the CPUs go), or as many
    as ``cpus_per_task`` fits into its CPUs; at least one where the cluster ``can_grow`` (an
    autoscaling cluster may start with nothing, and Ray queues the tasks until it grows).

    Raises:
        DeviceUnavailableError: A task needs more CPUs than a cluster that cannot grow has
            (the instance started for the run): Ray would queue it for ever.
    """
    by_cpu = int(resources.get("CPU", 0) // cpus_per_task)
    if by_cpu == 0 and not can_grow:
        raise DeviceUnavailableError(
            f"a NER task asks for {cpus_per_task:g} CPUs and this machine's Ray has {resources.get('CPU', 0):g}: "
            "lower ray_cpus_per_task (--ray-cpus-per-task)",
            device="ray",
        )
    if gpu:
        return max(1, min(int(resources.get("GPU", 0)), by_cpu))
    return max(1, by_cpu)


def task_device(gpu: bool) -> str:
    """The device string a Ray NER task runs on."""
    return GPU_TASK_DEVICE if gpu else "cpu"


def describe_slots(slots: int, *, gpu: bool) -> tuple[str, ...]:
    """What a run records as its devices: one entry per NER slot, e.g. ``ray:gpu``."""
    return tuple("ray:gpu" if gpu else "ray:cpu" for _ in range(slots))
