"""Assemble a batch's output tables and fit them to their contracts.

Inputs are the normalised batch and its annotation; outputs are Arrow tables with exactly the
columns of :mod:`data_contracts.schemas` (partition columns included, the writer moves them
into directory names). Documents the engine failed on leave the ``documents`` table for the
``quarantine`` table, so that for every batch

    docs_in == docs_ok + docs_empty + docs_quarantined

where ``docs_in`` counts every record reading saw.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from data_contracts.schemas import DOCUMENTS, ENTITIES, QUARANTINE, SEGMENTS, TableContract, entity_embeddings
from nerflow.etl.annotating import Annotation
from nerflow.etl.listing import Batch
from nerflow.etl.locating import locate_entities
from nerflow.etl.normalising import NormalisedBatch

__all__ = [
    "EMBEDDING_DTYPES",
    "EmbeddingDtype",
    "RunContext",
    "BatchTables",
    "entity_id",
    "build_tables",
    "withhold_documents",
    "OBJECT_COUNTS_SCHEMA",
]

EmbeddingDtype = Literal["float32", "float16"]
"""Types of ``entity_embeddings.vector`` values."""
# The one list: the flow's parameters take the type, RunContext checks the tuple.
EMBEDDING_DTYPES: tuple[str, ...] = get_args(EmbeddingDtype)

OBJECT_COUNTS_SCHEMA = pl.Schema(
    {
        "source_uri": pl.String,
        "docs_ok": pl.Int64,
        "docs_empty": pl.Int64,
        "docs_quarantined": pl.Int64,
        "entities": pl.Int64,
    }
)


@dataclass(frozen=True, kw_only=True)
class RunContext:
    """What every row of a run carries.

    Attributes:
        run_id: The run's id (the Prefect flow run id).
        ingest_date: ``YYYY-MM-DD`` (UTC) the run started: the ``ingest_date`` partition.
        embedding_dtype: ``"float32"`` or ``"float16"`` for ``entity_embeddings.vector``.
    """

    run_id: str
    ingest_date: str
    embedding_dtype: str = "float32"

    def __post_init__(self) -> None:
        if len(self.ingest_date) != 10 or self.ingest_date[4] != "-" or self.ingest_date[7] != "-":
            raise ValueError(f"ingest_date must be YYYY-MM-DD, got {self.ingest_date!r}")
        if self.embedding_dtype not in EMBEDDING_DTYPES:
            raise ValueError(f"embedding_dtype must be one of {EMBEDDING_DTYPES}, got {self.embedding_dtype!r}")


@dataclass(frozen=True, eq=False)
class BatchTables:
    """A batch's rows for every table.

    Attributes:
        batch: The batch.
        run: The run writing it.
        model_id: The model that annotated it.
        documents: :data:`DOCUMENTS` rows.
        entities: :data:`ENTITIES` rows.
        quarantine: :data:`QUARANTINE` rows.
        segments: :data:`SEGMENTS` rows.
        embeddings: ``entity_embeddings`` rows, or ``None`` when not asked for.
        embeddings_contract: The contract ``embeddings`` fits (its width depends on the model).
        object_counts: Per input object: :data:`OBJECT_COUNTS_SCHEMA` (for the manifest).
    """

    batch: Batch
    run: RunContext
    model_id: str
    documents: pa.Table
    entities: pa.Table
    quarantine: pa.Table
    segments: pa.Table
    embeddings: pa.Table | None
    embeddings_contract: TableContract | None
    object_counts: pl.DataFrame

    def contracts(self) -> list[tuple[TableContract, pa.Table]]:
        """Each data table with its contract, in writing order."""
        out = [
            (DOCUMENTS, self.documents),
            (ENTITIES, self.entities),
            (SEGMENTS, self.segments),
            (QUARANTINE, self.quarantine),
        ]
        if self.embeddings is not None and self.embeddings_contract is not None:
            out.append((self.embeddings_contract, self.embeddings))
        return out


def entity_id(doc_id: str, start: int, end: int, label: str, model_id: str) -> str:
    """The stable id of an entity: 32 hex digits of sha256 over its document, span, label and
    model (unit separators between fields, so ``("a1", 2)`` and ``("a", 12)`` differ)."""
    key = "\x1f".join((doc_id, str(start), str(end), label, model_id))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def build_tables(batch: Batch, normalised: NormalisedBatch, annotation: Annotation, run: RunContext) -> BatchTables:
    """Build every table of one batch.

    Args:
        batch: The batch (its objects get manifest counts even when they yielded no rows).
        normalised: Documents and read/normalise quarantine.
        annotation: Entities, document statistics, embeddings, failed documents.
        run: Run id, ingest date, embedding dtype.

    Returns:
        The batch's tables, fitted to their contracts.

    Raises:
        SchemaMismatchError: A table does not fit its contract (a bug, not bad input).
    """
    model_id = annotation.model_id
    failed_ids = annotation.failed.get_column("doc_id")
    stats = pl.from_arrow(annotation.doc_stats)
    assert isinstance(stats, pl.DataFrame)
    docs = (
        normalised.documents.filter(~pl.col("doc_id").is_in(failed_ids.implode()))
        .join(stats, on="doc_id", how="left", maintain_order="left")
        .with_columns(
            pl.col("n_tokens", "n_windows", "n_entities").fill_null(0),
            model_id=pl.lit(model_id),
            run_id=pl.lit(run.run_id),
            ingest_date=pl.lit(run.ingest_date),
        )
    )
    documents = DOCUMENTS.conform(docs.to_arrow())

    lang_of = dict(zip(docs.get_column("doc_id").to_list(), docs.get_column("lang").to_list()))
    uri_of = dict(zip(docs.get_column("doc_id").to_list(), docs.get_column("source_uri").to_list()))
    ents = locate_entities(annotation.entities, normalised.segments)
    doc_ids = ents.column("doc_id").to_pylist()
    ids = [
        entity_id(d, s, e, label, model_id)
        for d, s, e, label in zip(
            doc_ids, ents.column("start").to_pylist(), ents.column("end").to_pylist(), ents.column("label").to_pylist()
        )
    ]
    n = ents.num_rows
    entities = ENTITIES.conform(
        ents.append_column("entity_id", pa.array(ids, pa.string()))
        .append_column("model_id", pa.array([model_id] * n, pa.string()))
        .append_column("run_id", pa.array([run.run_id] * n, pa.string()))
        .append_column("source_uri", pa.array([uri_of[d] for d in doc_ids], pa.string()))
        .append_column("ingest_date", pa.array([run.ingest_date] * n, pa.string()))
        .append_column("lang", pa.array([lang_of[d] for d in doc_ids], pa.string()))
    )

    kept = docs.select("doc_id", "source_uri", "record", "lang")
    segment_rows = normalised.segments.join(
        kept, on=["doc_id", "source_uri", "record"], how="inner", nulls_equal=True, maintain_order="left"
    ).with_columns(model_id=pl.lit(model_id), run_id=pl.lit(run.run_id), ingest_date=pl.lit(run.ingest_date))
    segments = SEGMENTS.conform(segment_rows.drop("char_boxes").to_arrow())

    # ``check`` names a failed contract check; only validation sets it (see withhold_documents).
    quarantine_rows = pl.concat([normalised.quarantine, annotation.failed]).with_columns(
        check=pl.lit(None, pl.String), run_id=pl.lit(run.run_id), ingest_date=pl.lit(run.ingest_date)
    )
    quarantine = QUARANTINE.conform(quarantine_rows.to_arrow())

    embeddings, contract = None, None
    if annotation.embeddings is not None:
        vectors = annotation.embeddings
        dim = int(vectors.shape[1]) if vectors.size else 1
        contract = entity_embeddings(dim, run.embedding_dtype)
        flat = pa.array(vectors.astype(np.dtype(run.embedding_dtype)).reshape(-1))
        embeddings = contract.conform(
            pa.table(
                {
                    "entity_id": pa.array(ids, pa.string()),
                    "doc_id": pa.array(doc_ids, pa.string()),
                    "model_id": pa.array([model_id] * n, pa.string()),
                    "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
                    "source_uri": pa.array([uri_of[d] for d in doc_ids], pa.string()),
                    "run_id": pa.array([run.run_id] * n, pa.string()),
                    "ingest_date": pa.array([run.ingest_date] * n, pa.string()),
                }
            )
        )

    return BatchTables(
        batch=batch,
        run=run,
        model_id=model_id,
        documents=documents,
        entities=entities,
        quarantine=quarantine,
        segments=segments,
        embeddings=embeddings,
        embeddings_contract=contract,
        object_counts=_object_counts(batch, docs, quarantine_rows, entities),
    )


def _object_counts(batch: Batch, docs: pl.DataFrame, quarantine: pl.DataFrame, entities: pa.Table) -> pl.DataFrame:
    uris = pl.DataFrame({"source_uri": [o.uri for o in batch.objects]}, schema={"source_uri": pl.String})
    by_doc = docs.group_by("source_uri").agg(
        docs_ok=(pl.col("status") == "ok").sum(), docs_empty=(pl.col("status") == "empty").sum()
    )
    by_q = quarantine.group_by("source_uri").agg(docs_quarantined=pl.len())
    ent = pl.from_arrow(entities.select(["source_uri"]))
    assert isinstance(ent, pl.DataFrame)
    by_e = ent.group_by("source_uri").agg(entities=pl.len())
    out = uris
    for part in (by_doc, by_q, by_e):
        out = out.join(part, on="source_uri", how="left", maintain_order="left")
    return out.fill_null(0).cast(OBJECT_COUNTS_SCHEMA)


def withhold_documents(tables: BatchTables, quarantine_rows: pl.DataFrame) -> BatchTables:
    """Move whole documents from the data tables to quarantine.

    Every row of the documents named in ``quarantine_rows`` leaves ``documents``,
    ``entities``, ``segments`` and ``entity_embeddings``, and ``quarantine_rows`` join ``quarantine``: one
    bad entity takes its document with it, so ``documents.n_entities`` keeps matching the
    entity rows and every document is counted once (``docs_in == ok + empty + quarantined``).

    Args:
        tables: A batch's tables.
        quarantine_rows: One row per document to withhold: ``quarantine.QUARANTINE_SCHEMA``
            columns plus ``check``; ``doc_id`` must be set.

    Returns:
        The batch's tables without those documents, with recomputed object counts.
    """
    if quarantine_rows.height == 0:
        return tables
    drop = pa.array(quarantine_rows.get_column("doc_id").unique().to_list(), pa.string())

    def keep(table: pa.Table) -> pa.Table:
        return table.filter(pc.invert(pc.is_in(table.column("doc_id"), value_set=drop)))

    run = tables.run
    rows = quarantine_rows.with_columns(run_id=pl.lit(run.run_id), ingest_date=pl.lit(run.ingest_date))
    quarantine = pa.concat_tables([tables.quarantine, QUARANTINE.conform(rows.to_arrow())])
    documents, entities, segments = keep(tables.documents), keep(tables.entities), keep(tables.segments)
    embeddings = keep(tables.embeddings) if tables.embeddings is not None else None
    docs = pl.from_arrow(documents.select(["source_uri", "status"]))
    q = pl.from_arrow(quarantine.select(["source_uri"]))
    assert isinstance(docs, pl.DataFrame) and isinstance(q, pl.DataFrame)
    return replace(
        tables,
        documents=documents,
        entities=entities,
        segments=segments,
        embeddings=embeddings,
        quarantine=quarantine,
        object_counts=_object_counts(tables.batch, docs, q, entities),
    )
