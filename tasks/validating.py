"""Validating stage: hold every batch to the data contracts before it is written, and report
the run's contract results as a Prefect artifact."""

from __future__ import annotations

from collections.abc import Set

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from nerflow.etl import validating
from nerflow.etl.annotating import Annotation
from nerflow.etl.listing import Batch
from nerflow.etl.normalising import NormalisedBatch
from nerflow.etl.tables import RunContext
from nerflow.etl.validating import ValidateConfig, ValidatedBatch

__all__ = ["validate_batch"]

"""Key of the run's markdown artifact (the UI's Artifacts page lists one per run under it)."""


@task(name="validate-batch", cache_policy=NO_CACHE, task_run_name="validate-batch-{batch.index}")
def validate_batch(
    batch: Batch,
    normalised: NormalisedBatch,
    annotation: Annotation,
    run: RunContext,
    config: ValidateConfig,
    earlier_doc_ids: Set[str],
) -> ValidatedBatch:
    """Build the batch's tables and check them; failing documents move to quarantine whole.

    No retries: a contract failure fails the same way again.
    """
    out = validating.validate_batch(batch, normalised, annotation, run, config, earlier_doc_ids=earlier_doc_ids)
    v = out.validation
    if v.quarantined:
        get_run_logger().warning(
            "batch %s: %d documents quarantined whole by validation (their documents, entities and vectors "
            "withheld): %s; %d of %d documents failed a contract (%.1f%%, the limit is %.1f%%)",
            batch.batch_id,
            sum(v.quarantined.values()),
            ", ".join(f"{k}: {n}" for k, n in v.quarantined.items()),
            v.failed_docs,
            v.checked_docs,
            100 * v.failure_rate,
            100 * config.max_failure_rate,
        )
    return out
