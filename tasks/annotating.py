"""Annotating stage: the NER engine over a batch, on one device."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from nerflow.etl import annotating
from nerflow.etl.annotating import AnnotateConfig, Annotation, ModelInfo
from nerflow.etl.normalising import NormalisedBatch

__all__ = ["prepare_model", "annotate_batch"]


@task(name="load-model", cache_policy=NO_CACHE)
def prepare_model(config: AnnotateConfig, device: str) -> ModelInfo:
    """Load the model once up front, so a bad reference fails the run before any reading."""
    info = annotating.describe_model(config, device)
    get_run_logger().info(
        "model %s (%s) on %s: labels %s, windows of %d tokens",
        info.model_id,
        info.ref,
        device,
        ", ".join(info.labels),
        info.window_tokens,
    )
    return info


@task(name="annotate-batch", cache_policy=NO_CACHE, task_run_name="annotate-batch-{device}")
def annotate_batch(batch: NormalisedBatch, config: AnnotateConfig, device: str) -> Annotation:
    """Annotate the batch's non-empty documents on ``device``."""
    out = annotating.annotate_batch(batch, config, device)
    s = out.stats
    logger = get_run_logger()
    logger.info(
        "batch %s on %s: %d documents, %d windows, %d entities in %.1f s",
        batch.batch_id,
        device,
        s.documents,
        s.windows,
        out.entities.num_rows,
        out.seconds,
    )
    if s.split_words or s.window_duplicates or s.dropped_invisible:
        logger.info(
            "batch %s: %d words longer than a window were split (an entity across the cut is missed); "
            "%d entities seen by two windows merged into one; %d spans of only invisible characters dropped",
            batch.batch_id,
            s.split_words,
            s.window_duplicates,
            s.dropped_invisible,
        )
    if out.failed.height:
        logger.warning(
            "batch %s: the engine failed on %d documents, quarantined: %s",
            batch.batch_id,
            out.failed.height,
            out.failed.get_column("reason").to_list()[:3],
        )
    return out
