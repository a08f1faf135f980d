"""Arrow schemas of the output tables, one versioned contract per table.

A contract's ``schema`` is the table as a reader of the dataset sees it, partition columns
included; the Parquet files hold :attr:`TableContract.file_schema` (the same minus the
partition columns, which live in the ``key=value`` directory names, as Hive lays them out).
Every file carries ``nerflow.table`` and ``nerflow.schema_version`` in its schema metadata, so
a reader can tell which contract wrote it.

Layout under the output root::

    entities/ingest_date=YYYY-MM-DD/lang=xx/part-<batch>.parquet
    entity_embeddings/ingest_date=YYYY-MM-DD/part-<batch>.parquet     (when asked for)
    documents/ingest_date=YYYY-MM-DD/lang=xx/part-<batch>.parquet
    quarantine/ingest_date=YYYY-MM-DD/part-<batch>.parquet
    _manifest/objects/part-<batch>.parquet                            (one row per input object)
    _manifest/runs/run-<run_id>.parquet                               (one row per run)

Changing a column (name, type, nullability, meaning) means a new version: a new
``*_V2`` contract beside the old one, and ``CONTRACTS`` pointing at it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from ner_core.errors import TerminalError

__all__ = [
    "TableContract",
    "SchemaMismatchError",
    "ENTITIES_V1",
    "DOCUMENTS_V1",
    "QUARANTINE_V1",
    "MANIFEST_OBJECTS_V1",
    "MANIFEST_RUNS_V1",
    "entity_embeddings_v1",
    "CONTRACTS",
    "DOC_STATUSES",
    "QUARANTINE_STAGES",
    "UNKNOWN_LANG",
]

DOC_STATUSES = ("ok", "empty")
"""``documents.status``: annotated, or empty after normalisation (kept, never dropped)."""

QUARANTINE_STAGES = ("read", "normalise", "annotate")
"""``quarantine.stage``: where a record was set aside."""

UNKNOWN_LANG = "und"
"""``lang`` of documents with no given language that detection could not decide (BCP 47)."""


class SchemaMismatchError(TerminalError):
    """A table does not fit its contract (a missing column or an impossible cast)."""

    def __init__(self, message: str, *, table: str) -> None:
        super().__init__(f"{message} (table={table!r})")
        self.table = table


@dataclass(frozen=True, kw_only=True)
class TableContract:
    """One table's name, version, schema and partitioning.

    Attributes:
        name: Directory under the output root (``entities``, ``_manifest/objects``).
        version: Schema version, bumped on every incompatible change.
        schema: The full table schema, partition columns included.
        partition_by: Hive partition columns, outermost first (their values become
            ``key=value`` directories, so they must be path-safe strings).
    """

    name: str
    version: int
    schema: pa.Schema
    partition_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        missing = [c for c in self.partition_by if c not in self.schema.names]
        if missing:
            raise ValueError(f"partition columns {missing} are not in the {self.name} schema")
        for column in self.partition_by:
            if self.schema.field(column).type != pa.string():
                raise ValueError(f"partition column {column!r} of {self.name} must be a string")

    @property
    def metadata(self) -> dict[bytes, bytes]:
        """Schema metadata stamped on every file of the table."""
        return {b"nerflow.table": self.name.encode(), b"nerflow.schema_version": str(self.version).encode()}

    @property
    def file_schema(self) -> pa.Schema:
        """The schema of the Parquet files: partition columns removed, metadata added."""
        fields = [f for f in self.schema if f.name not in self.partition_by]
        return pa.schema(fields, metadata=self.metadata)

    def conform(self, table: pa.Table) -> pa.Table:
        """``table`` with exactly the contract's columns, in order, cast to its types.

        Extra columns are dropped; a missing column, a cast that fails or a null in a
        non-nullable column raises.

        Raises:
            SchemaMismatchError: The table cannot be made to fit.
        """
        missing = [n for n in self.schema.names if n not in table.column_names]
        if missing:
            raise SchemaMismatchError(f"missing columns {missing}", table=self.name)
        columns = []
        for field in self.schema:
            column = table.column(field.name)
            if not field.nullable and column.null_count:
                raise SchemaMismatchError(f"{column.null_count} nulls in non-nullable column {field.name!r}", table=self.name)
            try:
                columns.append(column.cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise SchemaMismatchError(f"column {field.name!r} does not cast to {field.type}: {e}", table=self.name) from e
        return pa.Table.from_arrays(columns, schema=self.schema.with_metadata(self.metadata))


def _f(name: str, type_: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


ENTITIES_V1 = TableContract(
    name="entities",
    version=1,
    schema=pa.schema([
        _f("doc_id", pa.string()),
        # sha256(doc_id, start, end, label, model_id)[:32], hex: stable across runs and stores.
        _f("entity_id", pa.string()),
        _f("start", pa.int32()),  # characters of documents.text, inclusive
        _f("end", pa.int32()),  # exclusive: documents.text[start:end] == text
        _f("text", pa.string()),
        _f("label", pa.string()),
        _f("score", pa.float32()),
        _f("model_id", pa.string()),
        _f("run_id", pa.string()),
        _f("source_uri", pa.string()),
        _f("ingest_date", pa.string()),
        _f("lang", pa.string()),
    ]),
    partition_by=("ingest_date", "lang"),
)

DOCUMENTS_V1 = TableContract(
    name="documents",
    version=1,
    schema=pa.schema([
        _f("doc_id", pa.string()),
        _f("source_uri", pa.string()),
        _f("record", pa.int64(), nullable=True),  # 1-based line (JSONL) or row (Parquet); null for text files
        _f("lang_detected", pa.bool_()),  # lang came from language detection, not the input
        _f("n_chars", pa.int32()),
        _f("n_tokens", pa.int32()),
        _f("n_windows", pa.int32()),
        _f("n_entities", pa.int32()),
        _f("text_sha256", pa.string()),
        _f("text", pa.large_string()),  # normalised: every offset in entities refers to it
        _f("status", pa.string()),  # one of DOC_STATUSES
        _f("metadata", pa.large_string(), nullable=True),  # the input's metadata field, as JSON
        _f("model_id", pa.string()),
        _f("run_id", pa.string()),
        _f("ingest_date", pa.string()),
        _f("lang", pa.string()),
    ]),
    partition_by=("ingest_date", "lang"),
)

QUARANTINE_V1 = TableContract(
    name="quarantine",
    version=1,
    schema=pa.schema([
        _f("source_uri", pa.string()),
        _f("doc_id", pa.string(), nullable=True),  # when the record got far enough to have one
        _f("record", pa.int64(), nullable=True),  # 1-based line or row; null for a whole object
        _f("stage", pa.string()),  # one of QUARANTINE_STAGES
        _f("reason", pa.string()),
        _f("raw_excerpt", pa.large_string(), nullable=True),  # the first characters, undecodable bytes replaced
        _f("run_id", pa.string()),
        _f("ingest_date", pa.string()),
    ]),
    partition_by=("ingest_date",),
)

MANIFEST_OBJECTS_V1 = TableContract(
    name="_manifest/objects",
    version=1,
    schema=pa.schema([
        _f("source_uri", pa.string()),
        _f("object_version", pa.string()),  # ETag, or size and mtime (see nerflow.storage)
        _f("size", pa.int64()),
        _f("batch_id", pa.string()),
        _f("run_id", pa.string()),
        _f("model_id", pa.string()),
        _f("docs_in", pa.int64()),  # == docs_ok + docs_empty + docs_quarantined
        _f("docs_ok", pa.int64()),
        _f("docs_empty", pa.int64()),
        _f("docs_quarantined", pa.int64()),
        _f("entities", pa.int64()),
        _f("files", pa.list_(pa.string())),  # the batch's data files, relative to the output root
        _f("committed_at", pa.timestamp("us", tz="UTC")),
    ]),
)

MANIFEST_RUNS_V1 = TableContract(
    name="_manifest/runs",
    version=1,
    schema=pa.schema([
        _f("run_id", pa.string()),
        _f("run_label", pa.string(), nullable=True),
        _f("status", pa.string()),
        _f("input_uri", pa.string()),
        _f("output_uri", pa.string()),
        _f("model_ref", pa.string()),
        _f("model_id", pa.string()),
        _f("devices", pa.list_(pa.string())),
        _f("parameters", pa.string()),  # the flow's parameters as JSON
        _f("objects_listed", pa.int64()),
        _f("objects_skipped", pa.int64()),  # already in the manifest
        _f("objects_ignored", pa.int64()),  # not a readable format
        _f("objects_processed", pa.int64()),
        _f("objects_superseded", pa.int64()),  # changed since an earlier run: old rows retracted
        _f("batches", pa.int64()),
        _f("docs_in", pa.int64()),
        _f("docs_ok", pa.int64()),
        _f("docs_empty", pa.int64()),
        _f("docs_quarantined", pa.int64()),
        _f("entities", pa.int64()),
        _f("chars", pa.int64()),
        _f("entities_by_label", pa.map_(pa.string(), pa.int64())),
        _f("contract_results", pa.string(), nullable=True),  # JSON; filled once suites exist
        _f("started_at", pa.timestamp("us", tz="UTC")),
        _f("finished_at", pa.timestamp("us", tz="UTC")),
        _f("seconds", pa.float64()),
    ]),
)


def entity_embeddings_v1(dim: int, dtype: str = "float32") -> TableContract:
    """The ``entity_embeddings`` contract for vectors of ``dim`` values of ``dtype``.

    Args:
        dim: Vector width (the encoder's hidden size for ``"mean"``, twice it for ``"marker"``).
        dtype: ``"float32"`` or ``"float16"`` (half the bytes; enough for similarity search).
    """
    if dim < 1:
        raise ValueError(f"dim must be positive, got {dim}")
    types = {"float32": pa.float32(), "float16": pa.float16()}
    if dtype not in types:
        raise ValueError(f"dtype must be one of {sorted(types)}, got {dtype!r}")
    return TableContract(
        name="entity_embeddings",
        version=1,
        schema=pa.schema([
            _f("entity_id", pa.string()),
            _f("doc_id", pa.string()),
            _f("model_id", pa.string()),
            _f("vector", pa.list_(pa.field("item", types[dtype], nullable=False), dim)),
            _f("source_uri", pa.string()),  # lets a changed input object's rows be retracted
            _f("run_id", pa.string()),
            _f("ingest_date", pa.string()),
        ]),
        partition_by=("ingest_date",),
    )


CONTRACTS: dict[str, TableContract] = {
    c.name: c for c in (ENTITIES_V1, DOCUMENTS_V1, QUARANTINE_V1, MANIFEST_OBJECTS_V1, MANIFEST_RUNS_V1)
}
"""The current contract of every table with a fixed schema (embeddings depend on the model:
see :func:`entity_embeddings_v1`)."""
