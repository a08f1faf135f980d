"""Listing stage: what this run has to do."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from nerflow.etl import listing
from nerflow.etl.listing import BatchingConfig, Plan
from nerflow.storage import Location
from tasks._retry import IO_RETRIES, IO_RETRY_DELAYS, retry_if_transient

__all__ = ["plan_batches"]


@task(
    name="plan-batches",
    cache_policy=NO_CACHE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
)
def plan_batches(source: Location, output: Location, config: BatchingConfig) -> Plan:
    """List the input, skip objects the output's manifest holds, cut the rest into batches."""
    in_fs, in_root = source.open()
    out_fs, out_root = output.open()
    plan = listing.plan_batches(in_fs, in_root, out_fs, out_root, config, prefix=source.uri.endswith("/"))
    logger = get_run_logger()
    logger.info(
        "%d objects listed: %d to process in %d batches (%.1f MB), %d already done, %d changed since done "
        "(old rows will be retracted), %d of an unsupported type (quarantined unread%s)",
        plan.listed,
        plan.objects,
        len(plan.batches),
        plan.bytes / 1e6,
        len(plan.skipped),
        len(plan.changed),
        len(plan.ignored),
        f", e.g. {plan.ignored[0].relpath}" if plan.ignored else "",
    )
    if plan.out_of_range:
        logger.info(
            "%d objects last written outside [%s, %s) left for other runs",
            len(plan.out_of_range),
            config.modified_after or "-",
            config.modified_before or "-",
        )
    return plan
