"""The ``extract-entities`` flow: documents in object storage in, partitioned Parquet tables out.

    take the output's writer lease (a second run on the same output is refused)
    ->  recover the output (roll back batches a killed run left uncommitted, finish its
        retractions)
    ->  plan: list the input, skip what the manifest holds, cut the rest into batches
        (a progress artifact follows the batches as they commit)
    ->  load the model (fail fast on a bad reference)
    ->  retract the old rows of input objects that changed since they were processed
    ->  per batch: read -> normalise -> annotate -> validate (contracts; failing documents to
        quarantine, too many failures reject the batch) -> write tables -> write manifest entry
    ->  write the run record (with the contract results), publish the contract report artifact
    ->  report: draw the entity chart next to the outputs, publish the summary page and the
        top entities per label

Batches go through in rounds of one batch per device (one on CPU, N on N GPUs): the
annotate task is mapped over a round, one device each, while the next round is read and
normalised and the previous round is written, so I/O overlaps inference and at most three
rounds are held in memory. With ``task_runner="ray"`` the annotate tasks go to a Ray cluster
instead (``flows/ner_runners.py``), a round being one batch per NER task the cluster runs at
once (per GPU, or per ``ray_cpus_per_task`` CPUs); everything else stays here. Validation
runs in the flow, batch after batch in plan order, so that of two records with one ``doc_id``
the first in input order is always the one kept.

A batch rejected by its contracts (more failing documents than ``max_failure_rate``, or a
count that does not add up) is not written; the batches validated before it are committed,
the run record is written with status ``"failed"`` and the error is raised again. Any other
failure after planning (a model that does not load, a device lost, a storage error past its
retries) ends the same way: run record, reports and progress bar say "failed".
"""

from __future__ import annotations

import contextvars
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from data_contracts.schemas import CONTRACTS, EMBEDDINGS_VERSION
from flows.ner_runners import RayNerRunner, ThreadNerRunner
from ner_core import EngineConfig
from ner_core.span_filter import parse_span_filter
from nerflow.errors import describe_error
from nerflow.etl.annotating import (
    AnnotateConfig,
    Annotation,
    DevicePolicy,
    ModelInfo,
    failure_reason,
    merge_annotations,
    resolve_devices,
    split_documents,
)
from nerflow.etl.errors import BatchRejectedError, ContractViolationError, ReconciliationError
from nerflow.etl.formats import InputFormat
from nerflow.etl.listing import Batch, BatchingConfig, Plan
from nerflow.etl.normalising import REFERENCE_LANGUAGES, NormaliseConfig, NormalisedBatch
from nerflow.etl.ray_runner import RaySettings
from nerflow.etl.reading import FieldMapping, ReadConfig
from nerflow.etl.report import BatchReport, RunSummary, summarise
from nerflow.etl.tables import EmbeddingDtype, RunContext
from nerflow.etl.validating import BatchValidation, ValidateConfig, contract_results
from nerflow.storage import Location, check_protocol
from tasks.annotating import prepare_model
from tasks.listing import plan_batches
from tasks.normalising import normalise_batch
from tasks.reading import read_batch
from tasks.reporting import (
    RunProgress,
    advance_progress,
    finish_progress,
    publish_run_summary,
    publish_top_entities,
    start_progress,
    write_entity_chart,
)
from tasks.validating import publish_contract_report, validate_batch
from tasks.writing import hold_output, recover_output, retract_changed, write_batch, write_run_record

__all__ = ["ExtractParams", "ProgressEvent", "extract_entities", "progress_listener"]


class ExtractParams(BaseModel):
    """Parameters of the extract-entities flow (one form in the Prefect UI)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_uri: str = Field(
        min_length=1, description="Documents: s3://bucket/prefix, a local directory or a single file"
    )
    output_uri: str = Field(min_length=1, description="Where the tables go: s3://bucket/prefix or a local directory")
    model: str = Field("default", min_length=1, description="Model: 'default', a directory, an fsspec URI or a hub id")
    batch_docs: int = Field(1000, ge=1, description="Most documents per batch (text files count one each)")
    batch_bytes: int = Field(64 << 20, ge=1, description="Most input bytes per batch")
    window_tokens: int | None = Field(None, ge=8, description="Tokens per window; empty = the model's maximum")
    overlap_tokens: int | None = Field(None, ge=0, description="Tokens shared by neighbouring windows; empty = 1/8")
    batch_tokens: int = Field(
        EngineConfig.batch_tokens,
        ge=1,
        description="Tokens (text and span markers) in one forward pass; raise it on a GPU with memory to spare",
    )
    lookahead_tokens: int = Field(
        EngineConfig.lookahead_tokens,
        ge=1,
        description="Window tokens gathered before they are sorted into batches; lower it to cap NER memory, "
        "raise it for fuller batches",
    )
    device: DevicePolicy = Field("auto", description="'auto' uses every GPU when there is one")
    embeddings: Literal["none", "marker", "mean"] = Field("none", description="Write entity_embeddings")
    embedding_dtype: EmbeddingDtype = Field("float32", description="Type of embedding values")
    precision: Literal["exact", "fast"] = Field("exact", description="'fast': bf16/fp16 or int8 where supported")
    span_filter: str = Field(
        EngineConfig.span_filter,
        description="Which candidate spans get the model's full scoring: 'off' all (exact mode's work, identical to "
        "SpanMarker); 'auto' the model's span filter at its stored operating point when it has one (about 5x faster "
        "with the default model); 'stored'; 'threshold=P'; 'budget=K' (spans per word)",
    )
    space_punctuation: bool = Field(
        True,
        description="Read text with punctuation set apart from words ('«Газпром»,' as '« Газпром » ,'), the "
        "form models are trained on; entities keep the original characters. Off: the text as it is, as SpanMarker",
    )
    trim_unpaired_quotes: bool = Field(
        True,
        description="Take a quotation mark off an entity's edge when it pairs with none inside ('Газпром»' "
        "becomes 'Газпром'). Off, with space_punctuation off: entities exactly as SpanMarker returns them",
    )
    input_format: InputFormat = Field("auto", description="'auto' goes by suffix")
    fields: FieldMapping = Field(default_factory=FieldMapping, description="Input field names")
    languages: tuple[str, ...] = Field(
        REFERENCE_LANGUAGES, min_length=1, description="ISO 639-1 codes language detection chooses from"
    )
    max_failure_rate: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Largest share of a batch's documents that may break the data contracts (they go to quarantine) "
        "before the batch is rejected, unwritten, and the run fails; 0 rejects any failure",
    )
    modified_after: datetime | None = Field(
        None,
        description="Only input objects last written at or after this time (UTC when no zone is given)",
    )
    modified_before: datetime | None = Field(
        None,
        description="Only input objects last written before this time (UTC when no zone is given)",
    )
    task_runner: Literal["threads", "ray"] = Field(
        "threads",
        description="Where NER runs: 'threads' in the flow's process, 'ray' as Ray tasks on a cluster "
        "(one per GPU where it has GPUs); the other stages stay in the flow's process",
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster for task_runner 'ray': empty or 'local' starts one on this "
        "machine for the run, 'auto' joins the one running here, else host:6379 or ray://host:10001",
    )
    ray_cpus_per_task: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="CPUs a Ray NER task takes (beside its GPU, if any)"
    )
    run_label: str | None = Field(None, description="Free text recorded with the run")
    # Parameters are stored with the flow run: credentials belong in the environment
    # (AWS_* variables, an instance role), not here.
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options for the input (and the output unless set below), e.g. "
        '{"client_kwargs": {"endpoint_url": "http://minio:9000"}}; keep credentials in the environment',
    )
    output_storage_options: dict[str, Any] | None = Field(None, description="fsspec options for the output")

    @field_validator("input_uri", "output_uri")
    @classmethod
    def _openable_uri(cls, value: str) -> str:
        # Here, not when the first task lists the input: an unknown protocol then fails only
        # after Prefect has started its server and the model has loaded.
        check_protocol(value)
        return value

    @field_validator("span_filter")
    @classmethod
    def _known_span_filter(cls, value: str) -> str:
        parse_span_filter(value)
        return value.strip().lower()

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return NormaliseConfig(languages=tuple(code.strip().lower() for code in value)).languages

    @field_validator(
        "modified_after",
        "modified_before",
        "window_tokens",
        "overlap_tokens",
        "ray_address",
        "run_label",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # The UI's form and the API send an emptied optional field as "".
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _overlap_below_window(self) -> ExtractParams:
        # The engine's own rule (ner_core.windowing): windows advance by more than half.
        if (
            self.window_tokens is not None
            and self.overlap_tokens is not None
            and self.overlap_tokens >= self.window_tokens // 2
        ):
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be below half of window_tokens ({self.window_tokens})"
            )
        return self

    @model_validator(mode="after")
    def _time_range_in_order(self) -> ExtractParams:
        self.batching()  # raises when modified_after is not before modified_before
        return self

    # Conversions to the stages' frozen configs, done once at the flow's edge.

    def source(self) -> Location:
        return Location(uri=self.input_uri, storage_options=self.storage_options)

    def output(self) -> Location:
        options = self.output_storage_options if self.output_storage_options is not None else self.storage_options
        return Location(uri=self.output_uri, storage_options=options)

    def batching(self) -> BatchingConfig:
        return BatchingConfig(
            batch_docs=self.batch_docs,
            batch_bytes=self.batch_bytes,
            input_format=self.input_format,
            modified_after=self.modified_after,
            modified_before=self.modified_before,
        )

    def reading(self) -> ReadConfig:
        return ReadConfig(input_format=self.input_format, fields=self.fields)

    def normalising(self) -> NormaliseConfig:
        return NormaliseConfig(languages=tuple(self.languages))

    def annotating(self) -> AnnotateConfig:
        engine = EngineConfig(
            window_tokens=self.window_tokens,
            overlap_tokens=self.overlap_tokens,
            batch_tokens=self.batch_tokens,
            lookahead_tokens=self.lookahead_tokens,
            precision=self.precision,
            embeddings=self.embeddings,
            space_punctuation=self.space_punctuation,
            trim_unpaired_quotes=self.trim_unpaired_quotes,
            span_filter=self.span_filter,
        )
        # A local model path names a place on this machine: absolute, so that Ray workers
        # (another working directory) load the same files instead of taking it for a hub id.
        model = os.path.abspath(self.model) if os.path.exists(self.model) else self.model
        return AnnotateConfig(model=model, engine=engine)

    def ray_settings(self) -> RaySettings:
        return RaySettings(address=self.ray_address, cpus_per_task=self.ray_cpus_per_task)

    def validating(self, model: ModelInfo | None) -> ValidateConfig:
        """The contracts' settings: labels and vector width from the loaded model."""
        return ValidateConfig(
            labels=model.labels if model is not None else None,
            embedding_dim=model.embedding_dim if model is not None and self.embeddings != "none" else 0,
            max_failure_rate=self.max_failure_rate,
        )

    def recorded(self) -> str:
        """The parameters as recorded with the run: JSON, storage options left out (credentials)."""
        return self.model_dump_json(exclude={"storage_options", "output_storage_options"})


@dataclass(frozen=True, kw_only=True)
class ProgressEvent:
    """What a progress listener hears: the plan once, then each committed batch.

    Attributes:
        kind: ``"planned"`` or ``"batch"``.
        plan: The run's plan (``"planned"``).
        report: The batch just committed (``"batch"``).
    """

    kind: Literal["planned", "batch"]
    plan: Plan | None = None
    report: BatchReport | None = None


# Context-local, not global: set by the caller around one flow call (the command line's
# progress bar); Prefect runs a synchronous flow in the caller's thread and context.
_listener: contextvars.ContextVar[Callable[[ProgressEvent], None] | None] = contextvars.ContextVar(
    "nerflow_progress_listener", default=None
)


@contextmanager
def progress_listener(callback: Callable[[ProgressEvent], None]) -> Iterator[None]:
    """Call ``callback`` with :class:`ProgressEvent` s of flow runs started inside the block."""
    token = _listener.set(callback)
    try:
        yield
    finally:
        _listener.reset(token)


def _emit(event: ProgressEvent) -> None:
    callback = _listener.get()
    if callback is not None:
        try:
            callback(event)
        except Exception:  # noqa: BLE001 (a broken progress bar must not fail a run)
            get_run_logger().debug("progress listener failed", exc_info=True)


_CONTRACT_ERRORS = (BatchRejectedError, ReconciliationError, ContractViolationError)


@dataclass
class _Progress:
    """What the run has committed so far (kept when a batch is rejected half-way)."""

    artifact: RunProgress
    reports: list[BatchReport] = field(default_factory=list)
    validations: list[BatchValidation] = field(default_factory=list)


@flow(name="extract-entities", task_runner=ThreadPoolTaskRunner(max_workers=8))
def extract_entities(params: ExtractParams) -> RunSummary:
    """Extract entities from every new input object and commit them batch by batch.

    Returns:
        The run's counts (documents, entities by label and language, throughput, tables).

    Raises:
        BatchRejectedError: A batch broke the contracts beyond ``max_failure_rate``.
        ReconciliationError: A batch's counts did not add up.
        ContractViolationError: A table broke its contract in a way quarantine cannot fix.
    """
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    source, output = params.source(), params.output()
    run = RunContext(
        run_id=str(flow_run.id), ingest_date=started.date().isoformat(), embedding_dtype=params.embedding_dtype
    )

    with hold_output(output, run.run_id):
        recover_output(output)
        plan = plan_batches(source, output, params.batching())
        _emit(ProgressEvent(kind="planned", plan=plan))
        progress = _Progress(artifact=start_progress(plan))
        model: ModelInfo | None = None
        validate_config = params.validating(None)
        ner: ThreadNerRunner | RayNerRunner | None = None
        error: Exception | None = None
        try:
            ner = (
                RayNerRunner(params.device, params.ray_settings())
                if params.task_runner == "ray"
                else ThreadNerRunner(resolve_devices(params.device))
            )
            model = prepare_model(params.annotating(), ner.model_device) if plan.batches else None
            if plan.changed:
                retract_changed(output, plan.changed)
            validate_config = params.validating(model)
            with ner:
                _process(plan.batches, params, run, ner, source, output, validate_config, progress, model)
        except Exception as e:  # noqa: BLE001 (recorded as the run's failure below, then raised)
            # Whatever stopped the run, it leaves a run record, its reports and a finished
            # progress bar; the batches committed before are kept.
            error = e
        return _finish(params, run, plan, progress, model, validate_config, ner, started, t0, error)


def _finish(
    params: ExtractParams,
    run: RunContext,
    plan: Plan,
    progress: _Progress,
    model: ModelInfo | None,
    validate_config: ValidateConfig,
    ner: ThreadNerRunner | RayNerRunner | None,
    started: datetime,
    t0: float,
    error: Exception | None,
) -> RunSummary:
    source, output = params.source(), params.output()

    root = output.display()
    tables = {name: f"{root.rstrip('/')}/{name}/" for name in ("documents", "entities", "quarantine", "_manifest")}
    if params.embeddings != "none":
        tables["entity_embeddings"] = f"{root.rstrip('/')}/entity_embeddings/"
    summary = summarise(
        progress.reports,
        run_id=run.run_id,
        run_label=params.run_label,
        input_uri=source.display(),
        output_uri=root,
        model_id=model.model_id if model else "",
        devices=ner.devices if ner else (),
        listed=plan.listed,
        skipped=len(plan.skipped),
        ignored=len(plan.ignored),
        superseded=len(plan.changed),
        seconds=time.perf_counter() - t0,
        tables=tables,
        span_filter=model.span_filter if model else "off",
    )
    versions = {name: c.version for name, c in CONTRACTS.items()}
    if params.embeddings != "none":
        versions["entity_embeddings"] = EMBEDDINGS_VERSION
    results = contract_results(progress.validations, validate_config, versions=versions)
    status = "completed" if error is None else "failed"
    failure = None if error is None else describe_error(error)
    write_run_record(output, _run_record(summary, params, started, model, validate_config, results, status))
    publish_contract_report(summary, results, status, failure)
    finish_progress(progress.artifact, status)
    chart = write_entity_chart(output, summary)
    publish_run_summary(summary, results, status, failure, chart)
    publish_top_entities(summary)
    logger = get_run_logger()
    logger.info(
        "%d documents in (%d annotated, %d empty, %d quarantined), %d entities, %.1f documents/s; tables under %s",
        summary.docs_in,
        summary.docs_ok,
        summary.docs_empty,
        summary.docs_quarantined,
        summary.entities,
        summary.docs_per_second,
        root,
    )
    if error is not None:
        logger.error("run failed after %d committed batches: %s", summary.batches, error)
        raise error
    return summary


def _process(
    batches: Sequence[Batch],
    params: ExtractParams,
    run: RunContext,
    ner: ThreadNerRunner | RayNerRunner,
    source: Location,
    output: Location,
    validate_config: ValidateConfig,
    progress: _Progress,
    model: ModelInfo | None,
) -> None:
    read_config, normalise_config, annotate_config = params.reading(), params.normalising(), params.annotating()

    def prepare(batch: Batch) -> PrefectFuture[NormalisedBatch]:
        return normalise_batch.submit(read_batch.submit(source, batch, read_config), normalise_config)

    rounds = ner.rounds(batches)
    claimed: set[str] = set()  # doc_ids of this run so far: the first readable record of an id wins
    writing: list[PrefectFuture[BatchReport]] = []
    ready = [prepare(b) for b in rounds[0]] if rounds else []
    try:
        for k, round_ in enumerate(rounds):
            current = ready
            ready = [prepare(b) for b in rounds[k + 1]] if k + 1 < len(rounds) else []
            annotations = _annotated(ner, current, ner.annotate(current, annotate_config), annotate_config, model)
            _collect(writing, progress)
            writing = []
            # In plan order, one batch after the other: each sees the ids of those before it.
            for batch, normalised, annotation in zip(round_, current, annotations):
                validated = validate_batch(batch, normalised.result(), annotation, run, validate_config, quote(claimed))
                claimed |= validated.claimed_doc_ids
                progress.validations.append(validated.validation)
                writing.append(write_batch.submit(output, validated))
    except _CONTRACT_ERRORS:
        # The batches validated before the rejected one are committed; nothing of it is.
        _collect(writing, progress)
        raise
    _collect(writing, progress)


def _annotated(
    ner: ThreadNerRunner | RayNerRunner,
    normalised: Sequence[PrefectFuture[NormalisedBatch]],
    futures: Sequence[PrefectFuture[Annotation]],
    config: AnnotateConfig,
    model: ModelInfo | None,
) -> list[Annotation]:
    """The round's annotations, once every device is done. A batch whose annotation failed
    (its worker killed for memory, an error the engine does not own) is annotated again
    document by document, and the documents that fail alone are quarantined with the error:
    one bad document must not stop this run and every later one."""
    out: list[Annotation | None] = []
    failed: list[tuple[int, BaseException]] = []
    for i, future in enumerate(futures):
        try:
            out.append(future.result())
        except Exception as e:  # noqa: BLE001 (isolated below; raised again if no document is to blame)
            out.append(None)
            failed.append((i, e))
    for i, error in failed:
        batch = normalised[i].result()
        docs = split_documents(batch)
        get_run_logger().warning(
            "annotating batch %s failed (%s: %s): annotating its %d documents one by one",
            batch.batch_id,
            type(error).__name__,
            error,
            len(docs),
        )
        parts, failures = [], {}
        for doc, future in zip(docs, ner.annotate_each(docs, config)):
            try:
                parts.append(future.result())
            except Exception as e:  # noqa: BLE001
                failures[doc.documents.get_column("doc_id")[0]] = failure_reason(e)
        if len(docs) > 1 and not parts:
            raise error  # every document fails: the engine or its workers are broken, not a document
        out[i] = merge_annotations(
            batch,
            parts,
            failures,
            model_id=model.model_id if model else "",
            device=ner.devices[0],
            with_vectors=config.engine.embeddings != "none",
        )
    return [a for a in out if a is not None]


def _collect(futures: Sequence[PrefectFuture[BatchReport]], progress: _Progress) -> None:
    """Wait for batches being written; count each one committed."""
    for future in futures:
        report = future.result()
        progress.reports.append(report)
        advance_progress(progress.artifact, report)
        _emit(ProgressEvent(kind="batch", report=report))


def _run_record(
    summary: RunSummary,
    params: ExtractParams,
    started: datetime,
    model: ModelInfo | None,
    validate_config: ValidateConfig,
    results: dict,
    status: str,
) -> dict:
    return {
        "run_id": summary.run_id,
        "run_label": summary.run_label,
        "status": status,
        "input_uri": summary.input_uri,
        "output_uri": summary.output_uri,
        "model_ref": params.model,
        "model_id": summary.model_id,
        "model_labels": list(model.labels) if model else [],
        "embedding_dim": validate_config.embedding_dim,
        "devices": list(summary.devices),
        "parameters": params.recorded(),
        "objects_listed": summary.objects_listed,
        "objects_skipped": summary.objects_skipped,
        "objects_ignored": summary.objects_ignored,
        "objects_processed": summary.objects_processed,
        "objects_superseded": summary.objects_superseded,
        "batches": summary.batches,
        "docs_in": summary.docs_in,
        "docs_ok": summary.docs_ok,
        "docs_empty": summary.docs_empty,
        "docs_quarantined": summary.docs_quarantined,
        "entities": summary.entities,
        "chars": summary.chars,
        "entities_by_label": list(summary.entities_by_label.items()),
        "span_filter": summary.span_filter,
        "spans": summary.spans,
        "spans_scored": summary.spans_scored,
        "contract_results": json.dumps(results, sort_keys=True),
        "started_at": started,
        "finished_at": datetime.now(UTC),
        "seconds": summary.seconds,
    }
