"""The state of one extract-entities run, and how it ends.

:class:`ExtractionRun` keeps what the flow body would otherwise pass from helper to helper:
the plan, the model, what has been validated and committed so far, the first error. The
flow tells it what happened (``planned``, ``loaded``, ``validated``, ``writing``,
``failed``); :meth:`ExtractionRun.finish` writes the run record and the reports from it,
also when the run failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from prefect import get_run_logger
from prefect.futures import PrefectFuture

from data_contracts.schemas import CONTRACTS, EMBEDDINGS_VERSION
from flows.extract_params import ExtractParams
from flows.ner_runners import NerRunner
from flows.progress import ProgressEvent, emit
from nerflow.errors import describe_error
from nerflow.etl.annotating import ModelInfo
from nerflow.etl.errors import BatchRejectedError, ContractViolationError, ReconciliationError
from nerflow.etl.listing import Plan
from nerflow.etl.report import BatchReport, RunSummary, summarise
from nerflow.etl.run_record import run_record
from nerflow.etl.tables import RunContext
from nerflow.etl.validating import BatchValidation, ValidateConfig, ValidatedBatch, contract_results
from nerflow.storage import Location
from tasks.reporting import (
    RunProgress,
    advance_progress,
    finish_progress,
    publish_run_summary,
    publish_top_entities,
    start_progress,
    write_entity_chart,
)
from tasks.writing import write_run_record

__all__ = ["ExtractionRun", "prefetched"]

B = TypeVar("B")
F = TypeVar("F")

# A batch broke the contracts: the batches validated before it are still committed.
_CONTRACT_ERRORS = (BatchRejectedError, ReconciliationError, ContractViolationError)


@dataclass
class ExtractionRun:
    """One run of the extract-entities flow, from its plan to its record."""

    params: ExtractParams
    context: RunContext
    started: datetime
    source: Location
    output: Location
    plan: Plan = field(default_factory=lambda: Plan(batches=(), listed=0, skipped=(), ignored=(), changed=()))
    model: ModelInfo | None = None
    ner: NerRunner | None = None
    error: Exception | None = None
    claimed: set[str] = field(default_factory=set)
    """doc_ids of this run so far: the first readable record of an id wins."""
    _t0: float = field(default_factory=time.perf_counter)
    _progress: RunProgress | None = None
    _validations: list[BatchValidation] = field(default_factory=list)
    _reports: list[BatchReport] = field(default_factory=list)
    _writing: list[PrefectFuture[BatchReport]] = field(default_factory=list)

    @classmethod
    def begin(cls, params: ExtractParams, run_id: str, *, source: Location, output: Location) -> ExtractionRun:
        started = datetime.now(UTC)
        context = RunContext(
            run_id=run_id, ingest_date=started.date().isoformat(), embedding_dtype=params.embedding_dtype
        )
        return cls(params=params, context=context, started=started, source=source, output=output)

    @property
    def validate_config(self) -> ValidateConfig:
        """The contracts' settings: labels and vector width from the model, once loaded."""
        return self.params.validating(self.model)

    def planned(self, plan: Plan) -> None:
        self.plan = plan
        emit(ProgressEvent(kind="planned", plan=plan))
        self._progress = start_progress(plan)

    def loaded(self, ner: NerRunner, model: ModelInfo | None) -> None:
        self.ner, self.model = ner, model

    def validated(self, validated: ValidatedBatch) -> ValidatedBatch:
        """Count the batch's contract results; its doc_ids are taken for the batches after it."""
        self.claimed |= validated.claimed_doc_ids
        self._validations.append(validated.validation)
        return validated

    def writing(self, future: PrefectFuture[BatchReport]) -> None:
        self._writing.append(future)

    def collect_writes(self) -> None:
        """Wait for the batches being written; count each one committed."""
        writing, self._writing = self._writing, []
        for future in writing:
            report = future.result()
            self._reports.append(report)
            if self._progress is not None:
                advance_progress(self._progress, report)
            emit(ProgressEvent(kind="batch", report=report))

    def failed(self, error: Exception) -> None:
        """Whatever stopped the run, it leaves a run record, its reports and a finished
        progress bar; the batches committed before are kept."""
        self.error = error
        if isinstance(error, _CONTRACT_ERRORS):
            self.collect_writes()  # those validated before the rejected batch are committed

    def finish(self) -> RunSummary:
        """Write the run record and publish the reports; raise the run's error, if any."""
        summary = self._summary()
        results = contract_results(self._validations, self.validate_config, versions=self._contract_versions())
        status = "completed" if self.error is None else "failed"
        failure = None if self.error is None else describe_error(self.error)
        write_run_record(self.output, self._record(summary, results, status))
        if self._progress is not None:
            finish_progress(self._progress, status)
        chart = write_entity_chart(self.output, summary)
        publish_run_summary(summary, results, status, failure, chart)
        publish_top_entities(summary)
        self._log(summary)
        if self.error is not None:
            raise self.error
        return summary

    def _summary(self) -> RunSummary:
        root = self.output.display().rstrip("/")
        tables = ["documents", "entities", "segments", "quarantine", "_manifest"]
        if self.params.embeddings != "none":
            tables.append("entity_embeddings")
        return summarise(
            self._reports,
            run_id=self.context.run_id,
            run_label=self.params.run_label,
            input_uri=self.source.display(),
            output_uri=self.output.display(),
            model_id=self.model.model_id if self.model else "",
            # Read at the end: a Ray runner knows its devices once it reached the cluster.
            devices=self.ner.devices if self.ner else (),
            listed=self.plan.listed,
            skipped=len(self.plan.skipped),
            ignored=len(self.plan.ignored),
            superseded=len(self.plan.changed),
            seconds=time.perf_counter() - self._t0,
            tables={name: f"{root}/{name}/" for name in tables},
            span_filter=self.model.span_filter if self.model else "off",
        )

    def _contract_versions(self) -> dict[str, int]:
        versions = {name: c.version for name, c in CONTRACTS.items()}
        if self.params.embeddings != "none":
            versions["entity_embeddings"] = EMBEDDINGS_VERSION
        return versions

    def _record(self, summary: RunSummary, results: dict, status: str) -> dict:
        return run_record(
            summary,
            status=status,
            model_ref=self.params.model,
            model_labels=list(self.model.labels) if self.model else [],
            embedding_dim=self.validate_config.embedding_dim,
            parameters=self.params.recorded(),
            contract_results=json.dumps(results, sort_keys=True),
            started_at=self.started,
            finished_at=datetime.now(UTC),
        )

    def _log(self, summary: RunSummary) -> None:
        logger = get_run_logger()
        logger.info(
            "%d documents in (%d annotated, %d empty, %d quarantined), %d entities, %.1f documents/s; tables under %s",
            summary.docs_in,
            summary.docs_ok,
            summary.docs_empty,
            summary.docs_quarantined,
            summary.entities,
            summary.docs_per_second,
            summary.output_uri,
        )
        if self.error is not None:
            logger.error("run failed after %d committed batches: %s", summary.batches, self.error)


def prefetched(rounds: Sequence[Sequence[B]], prepare: Callable[[B], F]) -> Iterator[tuple[Sequence[B], list[F]]]:
    """Each round with its batches prepared, the next round's preparation already submitted:
    reading and normalising round k+1 overlaps annotating round k."""
    ready = [prepare(b) for b in rounds[0]] if rounds else []
    for k, round_ in enumerate(rounds):
        current = ready
        ready = [prepare(b) for b in rounds[k + 1]] if k + 1 < len(rounds) else []
        yield round_, current
