"""The ``backfill`` flow: reprocess earlier input with another model, beside the old results.

    load the model (its id names the partition)
    ->  extract-entities, as a subflow, from the input prefix (optionally only objects last
        written in a time range) into ``<output>/backfill/model_id=<model id>/``

The tables directly under ``<output>`` (what scheduled runs write and warehouses read) are
never touched: a new model's results land in their own partition, a complete set of tables
with its own manifest, so a backfill is incremental and resumable like any run, and the two
models can be compared row for row (``docs/warehouse.md``). Backfilling the same period
again with the same model finds everything done and writes nothing.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.extract_entities import ExtractParams, extract_entities
from nerflow import storage
from nerflow.etl.annotating import resolve_devices
from nerflow.etl.report import RunSummary
from tasks.annotating import prepare_model

__all__ = ["BACKFILL_DIR", "backfill_uri", "backfill"]

BACKFILL_DIR = "backfill"
"""Directory under an output root that holds one table set per backfilled model."""


def backfill_uri(output_uri: str, model_id: str) -> str:
    """Where a backfill with ``model_id`` writes: ``<output>/backfill/model_id=<model_id>``."""
    return storage.join(output_uri.rstrip("/"), BACKFILL_DIR, f"model_id={model_id}")


@flow(name="backfill")
def backfill(params: ExtractParams) -> RunSummary:
    """Reprocess ``params.input_uri`` (within ``modified_after``/``modified_before`` when set)
    with ``params.model`` into the model's own partition under ``params.output_uri``.

    Returns:
        The summary of the extract-entities subflow (its tables are the partition's).
    """
    # With Ray the cluster's workers annotate; this process only needs the model's id.
    device = "cpu" if params.task_runner == "ray" else resolve_devices(params.device)[0]
    model = prepare_model(params.annotating(), device)
    target = backfill_uri(params.output_uri, model.model_id)
    get_run_logger().info(
        "backfill of %s (last written in [%s, %s)) with model %s into %s",
        params.input_uri,
        params.modified_after or "-",
        params.modified_before or "-",
        model.model_id,
        target,
    )
    return extract_entities(params.model_copy(update={"output_uri": target}))
