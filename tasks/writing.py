"""Writing stage: commit batches and the run record; recover from killed runs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypedDict
from uuid import UUID

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE, CachePolicy

from nerflow.etl import writing
from nerflow.etl.lease import OutputLease
from nerflow.etl.listing import Changed
from nerflow.etl.report import BatchReport
from nerflow.etl.validating import ValidatedBatch
from nerflow.etl.writing import RecoveryReport
from nerflow.storage import Location
from tasks._retry import IO_RETRIES, IO_RETRY_DELAYS, retry_if_transient

if TYPE_CHECKING:
    from prefect.tasks import RetryConditionCallable

__all__ = ["hold_output", "mark_crashed", "recover_output", "retract_changed", "write_batch", "write_run_record"]


class _IOOptions(TypedDict):
    """The Prefect options of the I/O tasks: no cache, transient failures retried."""

    cache_policy: CachePolicy
    retries: int
    retry_delay_seconds: list[float]
    retry_condition_fn: RetryConditionCallable


_IO: _IOOptions = dict(
    cache_policy=NO_CACHE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
)


@contextmanager
def hold_output(output: Location, run_id: str) -> Iterator[None]:
    """Hold the output's writer lease for the run: a second run on it is refused
    (:mod:`nerflow.etl.lease`)."""
    fs, root = output.open()
    with OutputLease(fs, root, holder=f"flow run {run_id}", run_id=run_id) as lease:
        dead = (lease.taken_over or {}).get("run_id")
        if dead:
            mark_crashed(dead, f"its writer lease on {output.display()} was taken over by flow run {run_id}")
        yield


def mark_crashed(flow_run_id: str, why: str) -> None:
    """Set a dead run's flow run to Crashed, so that the UI stops showing it as Running.

    Best effort: the run may belong to another Prefect server, or be gone; a run that reached
    a final state (it ended, but its lease was left behind) keeps it.
    """
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    now = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(flow_run_id)).state
            if state is not None and state.is_final():
                return
            client.set_flow_run_state(
                UUID(flow_run_id), Crashed(message=f"{why}, at {now}: the run had died"), force=True
            )
        get_run_logger().warning("flow run %s marked Crashed: %s", flow_run_id, why)
    except Exception as e:  # noqa: BLE001 (best effort: this run goes on whatever the old one's state)
        get_run_logger().warning("could not mark flow run %s as Crashed: %s", flow_run_id, e)


@task(name="recover-output", **_IO)
def recover_output(output: Location) -> RecoveryReport:
    """Delete the files of batches a killed run wrote but never committed; finish its retractions."""
    fs, root = output.open()
    report = writing.recover(fs, root)
    if report.rolled_back or report.temporaries_removed:
        get_run_logger().warning(
            "an earlier run was interrupted: %d uncommitted batches rolled back (%d files deleted, their objects "
            "will be processed again), %d temporary files removed",
            len(report.rolled_back),
            report.files_removed,
            report.temporaries_removed,
        )
    if report.retractions_finished:
        get_run_logger().warning(
            "an earlier run was interrupted while retracting: the old rows of %d input objects are now removed "
            "(the objects will be processed again)",
            report.retractions_finished,
        )
    return report


@task(name="retract-changed", **_IO)
def retract_changed(output: Location, changed: Sequence[Changed]) -> int:
    """Remove the committed rows of input objects that changed since."""
    fs, root = output.open()
    removed = writing.retract(fs, root, [c.previous for c in changed])
    get_run_logger().info(
        "%d input objects changed since they were processed: %d old rows retracted before processing them again",
        len(changed),
        removed,
    )
    return removed


@task(name="write-batch", task_run_name="write-batch-{validated.tables.batch.index}", **_IO)
def write_batch(output: Location, validated: ValidatedBatch) -> BatchReport:
    """Write the validated batch's tables, then its manifest entry."""
    fs, root = output.open()
    return writing.write_batch(fs, root, validated)


@task(name="write-run-record", **_IO)
def write_run_record(output: Location, record: dict) -> str:
    """Record the run in ``_manifest/runs/``."""
    fs, root = output.open()
    return writing.write_run_record(fs, root, record)
