"""Quarantine rows: the one shape in which every stage sets a record aside.

Reading (bad input), normalising (a repeated ``doc_id``), annotating (a document the engine
failed on) and validating (a document whose rows broke a contract) all build their rows with
:func:`quarantine_rows`, so the columns, the stage names and the excerpt length cannot drift
apart. The stage names are the ``quarantine`` table contract's
(:data:`data_contracts.schemas.QUARANTINE_STAGES`); :mod:`nerflow.etl.tables` adds ``run_id``
and ``ingest_date`` and fits the rows to that contract.

Quarantine frame (:data:`QUARANTINE_SCHEMA`):

    =========== ====== ===========================================================
    source_uri  String the input object
    doc_id      String null when the record got no id (not JSON, a whole object)
    record      Int64  1-based line or row; null for a text file or a whole object
    stage       String one of :data:`~data_contracts.schemas.QUARANTINE_STAGES`
    reason      String why, a short cause before the first ':'
    raw_excerpt String the first :data:`EXCERPT_CHARS` characters of the record
    =========== ====== ===========================================================

Validation adds ``check`` (String), the contract check the document failed.
"""

from __future__ import annotations

import polars as pl

from data_contracts.schemas import QUARANTINE_STAGES

__all__ = [
    "QUARANTINE_SCHEMA",
    "EXCERPT_CHARS",
    "READ",
    "NORMALISE",
    "ANNOTATE",
    "VALIDATE",
    "quarantine_rows",
]

READ, NORMALISE, ANNOTATE, VALIDATE = QUARANTINE_STAGES
"""The stages, in the order a batch meets them, as the contract names them."""

EXCERPT_CHARS = 500
"""Characters of a record kept in ``raw_excerpt``: enough to see what is wrong with it,
little enough that a batch of bad records stays small."""

QUARANTINE_SCHEMA = pl.Schema(
    {
        "source_uri": pl.String,
        "doc_id": pl.String,
        "record": pl.Int64,
        "stage": pl.String,
        "reason": pl.String,
        "raw_excerpt": pl.String,
    }
)


def quarantine_rows(
    records: pl.DataFrame,
    *,
    stage: str,
    reason: str | pl.Expr | pl.Series,
    raw_excerpt: pl.Expr | None = None,
    check: pl.Series | None = None,
) -> pl.DataFrame:
    """One quarantine row per row of ``records``.

    Args:
        records: ``source_uri``, ``doc_id``, ``record`` and, unless ``raw_excerpt`` is given,
            ``text``.
        stage: Where the records were set aside (:data:`READ` ... :data:`VALIDATE`).
        reason: Why: one text for every row, or one per row (an expression over ``records``
            or a series as long as it).
        raw_excerpt: The excerpt of each row; by default the first :data:`EXCERPT_CHARS`
            characters of ``text``.
        check: For :data:`VALIDATE`, the check each row failed; adds the column ``check``.

    Returns:
        :data:`QUARANTINE_SCHEMA`, plus ``check`` when given.
    """
    if stage not in QUARANTINE_STAGES:
        raise ValueError(f"stage must be one of {QUARANTINE_STAGES}, got {stage!r}")
    columns = {
        "stage": pl.lit(stage),
        "reason": pl.lit(reason) if isinstance(reason, str) else reason,
        "raw_excerpt": raw_excerpt if raw_excerpt is not None else pl.col("text").str.slice(0, EXCERPT_CHARS),
    }
    schema = pl.Schema(QUARANTINE_SCHEMA)  # a copy; DataFrame.cast is typed for a Schema, not a dict[str, ...]
    if check is not None:
        columns["check"] = check
        schema["check"] = pl.String
    return records.select("source_uri", "doc_id", "record", **columns).cast(schema)
