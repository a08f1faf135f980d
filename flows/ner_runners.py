"""Where the extract-entities flow runs its NER tasks: its own thread pool, or a Ray cluster.

Either runner tells the flow how to cut its batches into rounds (one batch per NER slot: a
device of this machine, or a Ray task's worth of the cluster) and annotates a round of
normalised batches. Reading, normalising, validating and writing stay in the flow's process
whichever runner annotates, so a round in flight is all the cluster holds of a run.

With Ray the flow process loads the model on its CPU only to describe it (labels, window,
vector width) and to fail fast on a bad reference; each Ray worker process loads its own copy
once and keeps it for every batch it is given (:mod:`nerflow.etl.ray_runner`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any, Protocol, TypeVar

from prefect import get_run_logger, unmapped
from prefect.client.schemas.objects import TaskRunResult
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.settings import PREFECT_API_URL, temporary_settings

from nerflow.etl import ray_runner
from nerflow.etl.annotating import (
    AnnotateConfig,
    Annotation,
    DevicePolicy,
    ModelInfo,
    annotate_one_by_one,
    merge_annotations,
    resolve_devices,
    split_documents,
)
from nerflow.etl.normalising import NormalisedBatch
from nerflow.etl.ray_runner import RaySettings
from tasks.annotating import annotate_batch

__all__ = ["NerRunner", "ThreadNerRunner", "RayNerRunner", "ner_runner", "annotate_round"]

T = TypeVar("T")


class NerRunner(Protocol):
    """Where a run's NER tasks go. Entered for the run (``with runner:``); it cuts the plan's
    batches into rounds of one batch per NER slot and annotates a round at a time."""

    devices: tuple[str, ...]
    model_device: str

    def __enter__(self) -> NerRunner: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def rounds(self, batches: Sequence[T]) -> list[Sequence[T]]: ...

    def annotate(
        self, batches: Sequence[PrefectFuture[NormalisedBatch]], config: AnnotateConfig
    ) -> Sequence[PrefectFuture[Annotation]]: ...

    def annotate_each(
        self, batches: Sequence[NormalisedBatch], config: AnnotateConfig
    ) -> list[PrefectFuture[Annotation]]: ...


def ner_runner(task_runner: str, device: DevicePolicy, ray: RaySettings) -> NerRunner:
    """The runner a run's parameters ask for: ``"threads"`` or ``"ray"``."""
    if task_runner == "ray":
        return RayNerRunner(device, ray)
    return ThreadNerRunner(resolve_devices(device))


def annotate_round(
    ner: NerRunner,
    normalised: Sequence[PrefectFuture[NormalisedBatch]],
    config: AnnotateConfig,
    model: ModelInfo | None,
) -> list[Annotation]:
    """Annotate a round of batches and wait for every device.

    A batch whose annotation failed (its worker killed for memory, an error the engine does
    not own) is annotated again document by document, under the failure policy of
    :func:`nerflow.etl.annotating.annotate_one_by_one`: one bad document must not stop this
    run and every later one.
    """
    outcomes: list[Annotation | Exception] = []
    for future in ner.annotate(normalised, config):  # every device done before any retry
        try:
            outcomes.append(future.result())
        except Exception as e:  # noqa: BLE001 (the batch failed as a whole: its documents one by one)
            outcomes.append(e)
    return [
        outcome if isinstance(outcome, Annotation) else _annotate_documents(ner, batch.result(), outcome, config, model)
        for batch, outcome in zip(normalised, outcomes)
    ]


def _annotate_documents(
    ner: NerRunner, batch: NormalisedBatch, error: Exception, config: AnnotateConfig, model: ModelInfo | None
) -> Annotation:
    docs = split_documents(batch)
    get_run_logger().warning(
        "annotating batch %s failed (%s: %s): annotating its %d documents one by one",
        batch.batch_id,
        type(error).__name__,
        error,
        len(docs),
    )
    submitted = list(zip(docs, ner.annotate_each(docs, config)))  # all at once: spread over the devices
    parts, failures = annotate_one_by_one(
        submitted,
        lambda pair: pair[1].result(),
        lambda pair: pair[0].documents.get_column("doc_id")[0],
    )
    return merge_annotations(
        batch,
        parts,
        failures,
        model_id=model.model_id if model else "",
        device=ner.devices[0],
        with_vectors=config.engine.embeddings != "none",
    )


class ThreadNerRunner:
    """NER in the flow's thread pool: one batch per device of this machine at a time
    (``devices`` from :func:`nerflow.etl.annotating.resolve_devices`)."""

    def __init__(self, devices: Sequence[str]) -> None:
        self.devices = tuple(devices)
        self.model_device = self.devices[0]

    def __enter__(self) -> ThreadNerRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def rounds(self, batches: Sequence[T]) -> list[Sequence[T]]:
        n = len(self.devices)
        return [batches[i : i + n] for i in range(0, len(batches), n)]

    def annotate(
        self, batches: Sequence[PrefectFuture[NormalisedBatch]], config: AnnotateConfig
    ) -> Sequence[PrefectFuture[Annotation]]:
        return annotate_batch.map(batches, config=unmapped(config), device=list(self.devices[: len(batches)]))

    def annotate_each(
        self, batches: Sequence[NormalisedBatch], config: AnnotateConfig
    ) -> list[PrefectFuture[Annotation]]:
        """Annotate small batches of a batch that failed (its documents one by one), spread
        over the devices."""
        return [annotate_batch.submit(b, config, self.devices[i % len(self.devices)]) for i, b in enumerate(batches)]


class RayNerRunner:
    """NER tasks on a Ray cluster through ``prefect_ray``, one batch per task.

    The cluster is reached when the first round is cut, so a run with nothing to do starts
    no Ray; a local instance started for the run is shut down when the runner exits.
    """

    model_device = "cpu"  # the flow's machine may have no GPU; the cluster's workers do the work

    def __init__(self, device_policy: str, settings: RaySettings) -> None:
        """``device_policy`` is applied to the cluster when it is reached: ``"cuda"`` on a
        cluster without GPUs raises ``DeviceUnavailableError`` then."""
        self.device_policy = device_policy
        self.settings = settings
        self.devices: tuple[str, ...] = ("ray",)
        self._stack: ExitStack | None = None
        self._runner: Any = None
        self._slots = 0
        self._gpu = False

    def __enter__(self) -> RayNerRunner:
        self._stack = ExitStack()
        return self

    def __exit__(self, *exc_info: object) -> None:
        stack, self._stack, self._runner = self._stack, None, None
        if stack is not None:
            stack.close()

    def _connect(self) -> None:
        if self._runner is not None:
            return
        if self._stack is None:
            raise RuntimeError("enter the runner (`with runner:`) before annotating")
        import ray
        from prefect_ray import RayTaskRunner

        address, init_kwargs = ray_runner.runner_arguments(self.settings.address)
        if address is not None and not PREFECT_API_URL.value():
            get_run_logger().warning(
                "Ray at %s with Prefect in ephemeral mode: workers on other machines cannot reach its API on "
                "127.0.0.1 and their tasks will fail; set PREFECT_API_URL to a server they can reach",
                address,
            )
        self._runner = self._stack.enter_context(RayTaskRunner(address=address, init_kwargs=init_kwargs))
        resources = ray.cluster_resources()
        cpus = self.settings.cpus_per_task
        self._gpu = ray_runner.uses_gpus(self.device_policy, resources)
        self._slots = ray_runner.ner_slots(
            resources,
            gpu=self._gpu,
            cpus_per_task=cpus,
            # the instance started for this run has this machine's CPUs
            can_grow=address is not None or "address" in init_kwargs,
        )
        self.devices = ray_runner.describe_slots(self._slots, gpu=self._gpu)
        get_run_logger().info(
            "NER on Ray (%d nodes, %g CPUs, %g GPUs): %d tasks at a time, each of %s",
            len([n for n in ray.nodes() if n.get("Alive")]),
            resources.get("CPU", 0),
            resources.get("GPU", 0),
            self._slots,
            f"1 GPU and {cpus:g} CPUs" if self._gpu else f"{cpus:g} CPUs",
        )

    def rounds(self, batches: Sequence[T]) -> list[Sequence[T]]:
        if not batches:
            return []
        self._connect()
        n = self._slots
        return [batches[i : i + n] for i in range(0, len(batches), n)]

    def annotate(
        self, batches: Sequence[PrefectFuture[NormalisedBatch]], config: AnnotateConfig
    ) -> Sequence[PrefectFuture[Annotation]]:
        from prefect_ray.context import remote_options

        self._connect()
        device = ray_runner.task_device(self._gpu)
        options = ray_runner.ner_task_options(gpu=self._gpu, cpus_per_task=self.settings.cpus_per_task)
        futures = []
        # The task runs in a Ray worker: it gets the normalised batch itself (a future of the
        # flow's thread pool means nothing there) and the API the flow reports to, which in
        # ephemeral mode is a server of this process that no setting names.
        with temporary_settings({PREFECT_API_URL: _api_url()}), remote_options(**options):
            for normalised in batches:
                futures.append(
                    self._runner.submit(
                        annotate_batch,
                        parameters={"batch": normalised.result(), "config": config, "device": device},
                        dependencies={"batch": {TaskRunResult(id=normalised.task_run_id)}},
                    )
                )
        return futures

    def annotate_each(
        self, batches: Sequence[NormalisedBatch], config: AnnotateConfig
    ) -> list[PrefectFuture[Annotation]]:
        """Annotate small batches of a batch that failed (its documents one by one), one Ray
        task each: a document that kills its worker (memory) takes only its own task down."""
        from prefect_ray.context import remote_options

        self._connect()
        device = ray_runner.task_device(self._gpu)
        options = ray_runner.ner_task_options(gpu=self._gpu, cpus_per_task=self.settings.cpus_per_task)
        with temporary_settings({PREFECT_API_URL: _api_url()}), remote_options(**options):
            return [
                self._runner.submit(annotate_batch, parameters={"batch": b, "config": config, "device": device})
                for b in batches
            ]


def _api_url() -> str:
    configured = PREFECT_API_URL.value()
    if configured:
        return configured
    context = FlowRunContext.get()
    if context is None:
        raise RuntimeError("Ray NER tasks are submitted from inside a flow run")
    return str(context.client.api_url).rstrip("/")
