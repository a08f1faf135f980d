"""Reporting stage: what a run shows in the Prefect UI while it runs and once it ends.

- a progress artifact (``extract-entities-progress``), moved after each committed batch;
- the chart of entity counts by label and language, a PNG with the run's outputs
  (``_manifest/reports/run-<run_id>/entities.png``);
- the summary page, a markdown artifact (``extract-entities-summary``) that links the chart
  and includes the contract report's sections;
- the most frequent entity texts per label, a table artifact (``extract-entities-top-entities``).

The contract report keeps its own artifact (:mod:`tasks.validating`): its key is the one
``docs/tables.md`` names, and under one key the UI compares one kind of page across runs.
The rendering is :mod:`nerflow.etl.run_report`'s; this module only publishes and writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.settings import PREFECT_UI_URL

from nerflow import storage
from nerflow.etl import run_report
from nerflow.etl.listing import Plan
from nerflow.etl.markdown import plural
from nerflow.etl.report import BatchReport, RunSummary
from nerflow.storage import Location
from tasks._retry import IO_RETRIES, IO_RETRY_DELAYS, retry_if_transient

__all__ = [
    "SUMMARY_KEY",
    "TOP_ENTITIES_KEY",
    "PROGRESS_KEY",
    "RunProgress",
    "EntityChart",
    "start_progress",
    "advance_progress",
    "finish_progress",
    "write_entity_chart",
    "publish_run_summary",
    "publish_top_entities",
]

SUMMARY_KEY = "extract-entities-summary"
TOP_ENTITIES_KEY = "extract-entities-top-entities"
PROGRESS_KEY = "extract-entities-progress"


@dataclass(frozen=True)
class EntityChart:
    """The run's chart: the PNG, and where it was written beside the outputs."""

    uri: str
    png: bytes


@dataclass
class RunProgress:
    """The run's progress artifact and what it has counted so far.

    Attributes:
        artifact_id: The progress artifact.
        total_bytes: Input bytes the plan holds.
        total_batches: Batches the plan holds.
        done_bytes: Input bytes of the batches committed.
        done_batches: Batches committed.
    """

    artifact_id: UUID
    total_bytes: int
    total_batches: int
    done_bytes: int = 0
    done_batches: int = 0

    @property
    def percent(self) -> float:
        """Committed share of the plan, in percent."""
        return run_report.progress_percent(self.done_bytes, self.total_bytes, self.done_batches, self.total_batches)

    def describe(self, status: str = "running") -> str:
        batches = plural(self.total_batches, "batch", "batches")
        return f"extract-entities {status}: {self.done_batches} of {batches} committed"


# The progress functions are not tasks: a task run per batch only to move a bar would double
# the task runs a run shows. Called in the flow, the artifact belongs to the flow run.


def start_progress(plan: Plan) -> RunProgress:
    """Create the run's progress artifact: 0 %, or 100 % when the plan is empty."""
    total_bytes, total_batches = plan.bytes, len(plan.batches)
    status = "running" if plan.batches else "completed (nothing new to process)"
    # Prefect's async_dispatch types the result as UUID | Coroutine; called from sync code
    # (a task, or the flow) it runs synchronously and returns the UUID.
    artifact_id = cast(
        UUID,
        create_progress_artifact(
            progress=run_report.progress_percent(0, total_bytes, 0, total_batches),
            key=PROGRESS_KEY,
            description=f"extract-entities {status}: 0 of {plural(total_batches, 'batch', 'batches')} committed",
        ),
    )
    return RunProgress(artifact_id=artifact_id, total_bytes=total_bytes, total_batches=total_batches)


def advance_progress(progress: RunProgress, report: BatchReport) -> float:
    """Count a committed batch and move the progress artifact; returns the new percentage."""
    progress.done_bytes += report.bytes
    progress.done_batches += 1
    update_progress_artifact(progress.artifact_id, progress.percent, description=progress.describe())
    return progress.percent


def finish_progress(progress: RunProgress, status: str) -> float:
    """Say how the run ended; a completed run is at 100 %, a failed one where it stopped."""
    if status == "completed":
        progress.done_bytes, progress.done_batches = progress.total_bytes, progress.total_batches
    update_progress_artifact(progress.artifact_id, progress.percent, description=progress.describe(status))
    return progress.percent


@task(
    name="write-entity-chart",
    cache_policy=NO_CACHE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
)
def write_entity_chart(output: Location, summary: RunSummary) -> EntityChart | None:
    """Draw entity counts by label and language and write the PNG with the run's outputs.

    Returns:
        The PNG and where it was written, or ``None`` when the run wrote no entities (nothing
        to draw).
    """
    png = run_report.entity_chart_png(summary)
    if png is None:
        get_run_logger().info("no entity chart: the run wrote no entities")
        return None
    fs, root = output.open()
    path = storage.join(run_report.report_dir(root, summary.run_id), run_report.CHART_NAME)
    storage.write_bytes_atomic(fs, path, png)
    return EntityChart(uri=path if storage.is_local(fs) else fs.unstrip_protocol(path), png=png)


@task(name="publish-run-summary", cache_policy=NO_CACHE)
def publish_run_summary(
    summary: RunSummary,
    contract_results: dict,
    status: str,
    error: str | None = None,
    chart: EntityChart | None = None,
) -> UUID:
    """Publish the run's summary page as a markdown artifact, the chart embedded (the UI
    renders a data URI; it would not open the file's own URI)."""
    ui = PREFECT_UI_URL.value()
    markdown = run_report.render_run_summary(
        summary,
        contract_results,
        status=status,
        error=error,
        chart_uri=chart.uri if chart else None,
        chart_png=chart.png if chart else None,
        top_entities_key=TOP_ENTITIES_KEY,
        top_entities_url=f"{ui.rstrip('/')}/artifacts/key/{TOP_ENTITIES_KEY}" if ui else None,
    )
    # Prefect's async_dispatch types the result as UUID | Coroutine; called from sync code
    # (a task, or the flow) it runs synchronously and returns the UUID.
    return cast(
        UUID,
        create_markdown_artifact(
            markdown=markdown,
            key=SUMMARY_KEY,
            description=f"extract-entities {status}: documents, entities by label and language, throughput, contracts",
        ),
    )


@task(name="publish-top-entities", cache_policy=NO_CACHE)
def publish_top_entities(summary: RunSummary) -> UUID | None:
    """Publish the most frequent entity texts per label as a table artifact (none without entities)."""
    rows = run_report.top_entity_rows(summary.top_entities)
    if not rows:
        return None
    # Prefect's async_dispatch types the result as UUID | Coroutine; called from sync code
    # (a task, or the flow) it runs synchronously and returns the UUID.
    return cast(
        UUID,
        create_table_artifact(
            table=rows,
            key=TOP_ENTITIES_KEY,
            description=f"extract-entities: the most frequent entity texts per label (entities and documents), "
            f"from the {plural(summary.batches, 'batch', 'batches')} committed",
        ),
    )
