"""Normalising stage: clean text, fill languages, digest."""

from __future__ import annotations

import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from nerflow.etl import normalising
from nerflow.etl.normalising import NormaliseConfig, NormalisedBatch
from nerflow.etl.reading import ReadBatch

__all__ = ["normalise_batch"]


@task(name="normalise-batch", cache_policy=NO_CACHE)
def normalise_batch(read: ReadBatch, config: NormaliseConfig) -> NormalisedBatch:
    """Normalise the batch's text with Polars and detect missing languages."""
    out = normalising.normalise_batch(read, config)
    docs = out.documents
    empty = docs.filter(pl.col("status") == "empty").height
    duplicates = out.quarantine.height - read.quarantine.height
    if empty or duplicates:
        get_run_logger().info(
            "batch %s: %d documents empty after normalisation (kept with status 'empty', not annotated); "
            "%d repeated doc_ids quarantined (the first record of each id is kept)",
            read.batch_id,
            empty,
            duplicates,
        )
    return out
