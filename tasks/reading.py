"""Reading stage: a batch's objects into one frame of records."""

from __future__ import annotations

from collections import Counter

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from nerflow.etl import reading
from nerflow.etl.listing import Batch
from nerflow.etl.reading import ReadBatch, ReadConfig
from nerflow.storage import Location
from tasks._retry import IO_RETRIES, IO_RETRY_DELAYS, retry_if_transient

__all__ = ["read_batch"]


@task(
    name="read-batch",
    cache_policy=NO_CACHE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
    task_run_name="read-batch-{batch.index}",
)
def read_batch(source: Location, batch: Batch, config: ReadConfig) -> ReadBatch:
    """Read the batch's objects; bad records go to its quarantine frame."""
    fs, _ = source.open()
    read = reading.read_batch(fs, batch, config)
    if read.quarantine.height:
        reasons = Counter(r.split(":", 1)[0] for r in read.quarantine.get_column("reason").to_list())
        get_run_logger().warning(
            "batch %s: %d of %d records quarantined and kept out of annotation (%s)",
            batch.batch_id,
            read.quarantine.height,
            read.docs_in,
            ", ".join(f"{k}: {v}" for k, v in reasons.most_common()),
        )
    return read
