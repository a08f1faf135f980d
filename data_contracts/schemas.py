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

Changing a column (name, type, nullability, meaning) means a new version: a new ``*_V2``
contract beside the old one, :data:`CONTRACTS` pointing at it, and its fingerprint recorded
in ``fingerprints.json`` (``python -m data_contracts.render_docs --write``, which refuses to
overwrite the fingerprint of a version that exists: a schema that changed under an old
version number fails ``tests/data_contracts``). Old versions stay here, so files they wrote
can still be checked.

Row-level rules (offsets, labels, scores, uniqueness) are in :mod:`data_contracts.suites`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from ner_core.errors import TerminalError

__all__ = [
    "TableContract",
    "SchemaMismatchError",
    "ENTITIES_V1",
    "ENTITIES_V2",
    "DOCUMENTS_V1",
    "DOCUMENTS_V2",
    "SEGMENTS_V1",
    "SEGMENTS",
    "DOCUMENT_FORMATS",
    "QUARANTINE_V1",
    "QUARANTINE_V2",
    "MANIFEST_OBJECTS_V1",
    "MANIFEST_RUNS_V1",
    "MANIFEST_RUNS_V2",
    "MANIFEST_RUNS_V3",
    "ENTITIES",
    "DOCUMENTS",
    "QUARANTINE",
    "MANIFEST_OBJECTS",
    "MANIFEST_RUNS",
    "EMBEDDINGS_VERSION",
    "entity_embeddings_v1",
    "entity_embeddings",
    "CONTRACTS",
    "ALL_VERSIONS",
    "contract_version",
    "DOC_STATUSES",
    "QUARANTINE_STAGES",
    "RUN_STATUSES",
    "UNKNOWN_LANG",
]

DOC_STATUSES = ("ok", "empty")

DOCUMENT_FORMATS = (
    "jsonl",
    "parquet",
    "text",
    "pdf",
    "html",
    "docx",
    "xlsx",
    "pptx",
    "odt",
    "ods",
    "odp",
    "markdown",
    "email",
)
"""Values of ``documents.format``: the reader that extracted a document's text (an mbox's
messages are ``email``)."""
"""``documents.status``: annotated, or empty after normalisation (kept, never dropped)."""

QUARANTINE_STAGES = ("read", "normalise", "annotate", "validate")
"""``quarantine.stage``: where a record was set aside (``"validate"`` since quarantine v2)."""

RUN_STATUSES = ("completed", "failed")
"""``_manifest/runs.status`` (``"failed"``: a batch broke the contracts beyond the threshold,
since runs v2)."""

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
        description: What one row is (for ``docs/tables.md``).
        column_docs: Meaning of each column (for ``docs/tables.md``); not part of the schema,
            so rewording one needs no new version.
        changes: What this version changed from the one before (for ``docs/tables.md``).
    """

    name: str
    version: int
    schema: pa.Schema
    partition_by: tuple[str, ...] = ()
    description: str = ""
    column_docs: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    changes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        missing = [c for c in self.partition_by if c not in self.schema.names]
        if missing:
            raise ValueError(f"partition columns {missing} are not in the {self.name} schema")
        for column in self.partition_by:
            if self.schema.field(column).type != pa.string():
                raise ValueError(f"partition column {column!r} of {self.name} must be a string")
        unknown = sorted(set(self.column_docs) - set(self.schema.names))
        if unknown:
            raise ValueError(f"column_docs name columns {unknown} that are not in the {self.name} schema")

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
        for field_ in self.schema:
            column = table.column(field_.name)
            if not field_.nullable and column.null_count:
                raise SchemaMismatchError(
                    f"{column.null_count} nulls in non-nullable column {field_.name!r}", table=self.name
                )
            try:
                columns.append(column.cast(field_.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise SchemaMismatchError(
                    f"column {field_.name!r} does not cast to {field_.type}: {e}", table=self.name
                ) from e
        return pa.Table.from_arrays(columns, schema=self.schema.with_metadata(self.metadata))


@dataclass(frozen=True)
class _Col:
    name: str
    type: pa.DataType
    doc: str
    nullable: bool = False


def _contract(
    name: str,
    version: int,
    description: str,
    columns: Sequence[_Col],
    partition_by: tuple[str, ...] = (),
    changes: str = "",
) -> TableContract:
    return TableContract(
        name=name,
        version=version,
        schema=pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in columns]),
        partition_by=partition_by,
        description=description,
        column_docs={c.name: c.doc for c in columns},
        changes=changes,
    )


_INGEST_DATE = _Col("ingest_date", pa.string(), "UTC date (YYYY-MM-DD) the run started; partition")
_RUN_ID = _Col("run_id", pa.string(), "The Prefect flow run that wrote the row")
_MODEL_ID = _Col("model_id", pa.string(), "Content digest of the model (weights, config, tokenizer)")

# Nested fields are nullable: warehouses (DuckDB) do not keep nullability inside lists and
# structs, and the contract's checks hold every box to its page (entities.boxes_inside_page).
_BOX = pa.struct(
    [
        pa.field("page", pa.int32()),
        pa.field("left", pa.float32()),
        pa.field("bottom", pa.float32()),
        pa.field("right", pa.float32()),
        pa.field("top", pa.float32()),
    ]
)

_ENTITIES_V1_COLUMNS = [
    _Col("doc_id", pa.string(), "The document (documents.doc_id)"),
    _Col(
        "entity_id",
        pa.string(),
        "sha256(doc_id, start, end, label, model_id)[:32], hex: stable across runs and stores",
    ),
    _Col("start", pa.int32(), "First character (code point) of the span in documents.text, inclusive"),
    _Col("end", pa.int32(), "Character after the span, exclusive: documents.text[start:end] == text"),
    _Col("text", pa.string(), "The span's text"),
    _Col("label", pa.string(), "Entity type, one of the model's labels"),
    _Col("score", pa.float32(), "The model's probability of the label, in [0, 1]"),
    _MODEL_ID,
    _RUN_ID,
    _Col("source_uri", pa.string(), "The input object the document came from"),
    _INGEST_DATE,
    _Col("lang", pa.string(), "The document's language (documents.lang); partition"),
]

ENTITIES_V1 = _contract(
    "entities",
    1,
    "One entity found in one document: a span of the document's normalised text with a label.",
    _ENTITIES_V1_COLUMNS,
    partition_by=("ingest_date", "lang"),
)

ENTITIES_V2 = _contract(
    "entities",
    2,
    "One entity found in one document: a span of the document's normalised text with a label, "
    "and where it sits in the original file.",
    [
        *_ENTITIES_V1_COLUMNS[:7],
        _Col(
            "page",
            pa.int32(),
            "1-based page of the source file the entity starts on (PDF page, PPTX or ODP slide); null where the format "
            "has no pages",
            nullable=True,
        ),
        _Col(
            "boxes",
            pa.list_(_BOX),
            "PDF only: one box per text line the entity covers, in PDF points with the origin at the page's "
            "lower left corner (page, left, bottom, right, top), for highlighting it in the original file; "
            "null for other formats",
            nullable=True,
        ),
        *_ENTITIES_V1_COLUMNS[7:],
    ],
    partition_by=("ingest_date", "lang"),
    changes="adds page and boxes (where the entity sits in the source file)",
)

DOCUMENTS_V1 = _contract(
    "documents",
    1,
    "One input document that passed reading, normalisation and the contracts, with its "
    "normalised text (every entity offset refers to it).",
    [
        _Col(
            "doc_id",
            pa.string(),
            "The input's id field as a string; '<path>#<line>' when absent, the path without its suffix for text files",
        ),
        _Col("source_uri", pa.string(), "The input object"),
        _Col("record", pa.int64(), "1-based line (JSONL) or row (Parquet); null for text files", nullable=True),
        _Col("lang_detected", pa.bool_(), "lang came from language detection, not the input"),
        _Col("n_chars", pa.int32(), "Characters (code points) of text"),
        _Col("n_tokens", pa.int32(), "Model tokens of text (0 when empty)"),
        _Col("n_windows", pa.int32(), "Model windows the text was cut into (0 when empty)"),
        _Col("n_entities", pa.int32(), "Rows of this document in entities"),
        _Col("text_sha256", pa.string(), "Hex sha256 of the UTF-8 text"),
        _Col("text", pa.large_string(), "Normalised text: NFC, control characters removed, whitespace collapsed"),
        _Col("status", pa.string(), "'ok' (annotated) or 'empty' (nothing left after normalisation; not annotated)"),
        _Col("metadata", pa.large_string(), "The input's metadata field, as JSON", nullable=True),
        _MODEL_ID,
        _RUN_ID,
        _INGEST_DATE,
        _Col("lang", pa.string(), "Given (lower-cased BCP 47) or detected language, 'und' when unknown; partition"),
    ],
    partition_by=("ingest_date", "lang"),
)

_DOCUMENTS_V1_COLUMNS = [
    _Col(f.name, f.type, DOCUMENTS_V1.column_docs[f.name], f.nullable) for f in DOCUMENTS_V1.schema
]
_AFTER_METADATA = _DOCUMENTS_V1_COLUMNS.index(next(c for c in _DOCUMENTS_V1_COLUMNS if c.name == "metadata")) + 1

DOCUMENTS_V2 = _contract(
    "documents",
    2,
    DOCUMENTS_V1.description + " Rich files (PDF, HTML, Office, OpenDocument, e-mail) are read into text first; "
    "where each part of the text came from is in segments.",
    [
        *_DOCUMENTS_V1_COLUMNS[:_AFTER_METADATA],
        _Col("format", pa.string(), "The reader that extracted the text: " + ", ".join(DOCUMENT_FORMATS)),
        _Col(
            "page_count",
            pa.int32(),
            "Pages of the source file (PDF pages, PPTX or ODP slides), else null",
            nullable=True,
        ),
        _Col(
            "title",
            pa.string(),
            "The title the file declares (PDF, HTML, Office or OpenDocument properties, e-mail subject)",
            nullable=True,
        ),
        _Col(
            "declared_lang",
            pa.string(),
            "The language the file declares, as written (HTML lang, Office, PDF /Lang); lang is still detected",
            nullable=True,
        ),
        _Col(
            "encoding",
            pa.string(),
            "The text encoding the bytes were decoded with (text, JSONL, e-mail), else null",
            nullable=True,
        ),
        _Col(
            "encoding_confidence",
            pa.float32(),
            "How sure encoding detection was, in [0, 1] (1 for a byte-order mark or valid UTF-8)",
            nullable=True,
        ),
        *_DOCUMENTS_V1_COLUMNS[_AFTER_METADATA:],
    ],
    partition_by=("ingest_date", "lang"),
    changes="adds format, page_count, title, declared_lang, encoding and encoding_confidence",
)

SEGMENTS_V1 = _contract(
    "segments",
    1,
    "One part of a document's text and where it came from in the source file: a text line of a PDF "
    "page, a block of an HTML page or a DOCX file, a spreadsheet cell, a slide's paragraph, an "
    "e-mail's subject or body. Segments of a "
    "document are ordered and do not overlap; text between them is separators.",
    [
        _Col("doc_id", pa.string(), "The document (documents.doc_id)"),
        _Col("segment", pa.int32(), "0-based position of the segment in its document"),
        _Col("start", pa.int32(), "First character of the part in documents.text, inclusive"),
        _Col("end", pa.int32(), "Character after it, exclusive"),
        _Col(
            "kind",
            pa.string(),
            "line, line_part, title, heading, paragraph, list_item, table_cell, text_box, code, quote, header, footer, footnote, "
            "endnote, comment, notes, subject, body, text",
        ),
        _Col("page", pa.int32(), "1-based page (PDF) or slide (PPTX, ODP), else null", nullable=True),
        _Col(
            "block",
            pa.string(),
            "Where in the file: an element path (HTML), a paragraph or cell path (DOCX), a cell reference "
            "('Q3 Sales'!C3, XLSX and ODS), a slide's shape path (PPTX, ODP), a MIME part (e-mail)",
            nullable=True,
        ),
        _Col("left", pa.float32(), "PDF: the part's box on its page, in points from the lower left", nullable=True),
        _Col("bottom", pa.float32(), "PDF: see left", nullable=True),
        _Col("right", pa.float32(), "PDF: see left", nullable=True),
        _Col("top", pa.float32(), "PDF: see left", nullable=True),
        _Col("page_width", pa.float32(), "PDF: width of the page in points", nullable=True),
        _Col("page_height", pa.float32(), "PDF: height of the page in points", nullable=True),
        _MODEL_ID,
        _RUN_ID,
        _Col("source_uri", pa.string(), "The input object"),
        _INGEST_DATE,
        _Col("lang", pa.string(), "The document's language (documents.lang); partition"),
    ],
    partition_by=("ingest_date", "lang"),
)

_QUARANTINE_V1_COLUMNS = [
    _Col("source_uri", pa.string(), "The input object"),
    _Col("doc_id", pa.string(), "The document's id, when the record got far enough to have one", nullable=True),
    _Col("record", pa.int64(), "1-based line (JSONL) or row (Parquet); null for a whole object", nullable=True),
    _Col("stage", pa.string(), "Where it was set aside: " + ", ".join(QUARANTINE_STAGES[:3])),
    _Col("reason", pa.string(), "Why, starting with a short cause before the first ':'"),
    _Col("raw_excerpt", pa.large_string(), "The first characters, undecodable bytes replaced", nullable=True),
    _RUN_ID,
    _INGEST_DATE,
]

QUARANTINE_V1 = _contract(
    "quarantine",
    1,
    "One input record (or whole object) set aside, with the reason.",
    _QUARANTINE_V1_COLUMNS,
    partition_by=("ingest_date",),
)

QUARANTINE_V2 = _contract(
    "quarantine",
    2,
    "One input record (or whole object) set aside, with the reason: unreadable input, a duplicate "
    "id, an engine failure, or a document whose rows broke a contract (then the whole document: "
    "its documents, entities and embeddings rows are all withheld, so the tables stay consistent).",
    [
        *_QUARANTINE_V1_COLUMNS[:3],
        _Col("stage", pa.string(), "Where it was set aside: " + ", ".join(QUARANTINE_STAGES)),
        _QUARANTINE_V1_COLUMNS[4],
        _Col(
            "check",
            pa.string(),
            "For stage 'validate': the failed check, '<table>.<check>' (see the table's checks); null otherwise",
            nullable=True,
        ),
        *_QUARANTINE_V1_COLUMNS[5:],
    ],
    partition_by=("ingest_date",),
    changes="adds the column check; stage 'validate' (documents withheld by the contracts)",
)

MANIFEST_OBJECTS_V1 = _contract(
    "_manifest/objects",
    1,
    "One input object of a committed batch; the batch's manifest file is written last, so its presence is the commit.",
    [
        _Col("source_uri", pa.string(), "The input object"),
        _Col("object_version", pa.string(), "ETag, or size and mtime, when it was read"),
        _Col("size", pa.int64(), "Bytes"),
        _Col("batch_id", pa.string(), "The batch that wrote its rows (names the batch's files)"),
        _RUN_ID,
        _MODEL_ID,
        _Col("docs_in", pa.int64(), "Records read: docs_ok + docs_empty + docs_quarantined"),
        _Col("docs_ok", pa.int64(), "Rows in documents with status 'ok'"),
        _Col("docs_empty", pa.int64(), "Rows in documents with status 'empty'"),
        _Col("docs_quarantined", pa.int64(), "Rows in quarantine"),
        _Col("entities", pa.int64(), "Rows in entities"),
        _Col("files", pa.list_(pa.string()), "The batch's data files, relative to the output root"),
        _Col("committed_at", pa.timestamp("us", tz="UTC"), "When the batch committed"),
    ],
)

_RUNS_HEAD = [
    _Col("run_id", pa.string(), "The Prefect flow run"),
    _Col("run_label", pa.string(), "Free text given with the run", nullable=True),
]
_RUNS_SOURCES = [
    _Col("input_uri", pa.string(), "Where documents came from"),
    _Col("output_uri", pa.string(), "Where the tables are"),
    _Col("model_ref", pa.string(), "The model as named in the parameters"),
    _MODEL_ID,
]
_RUNS_COUNTS = [
    _Col("devices", pa.list_(pa.string()), "Devices used"),
    _Col("parameters", pa.string(), "The flow's parameters as JSON (storage options left out)"),
    _Col("objects_listed", pa.int64(), "Objects under the input URI"),
    _Col("objects_skipped", pa.int64(), "Already in the manifest with the same version"),
    _Col(
        "objects_ignored", pa.int64(), "No reader for their name (from v2 on also processed: one quarantine row each)"
    ),
    _Col("objects_processed", pa.int64(), "Committed by this run"),
    _Col("objects_superseded", pa.int64(), "Changed since an earlier run: old rows retracted"),
    _Col("batches", pa.int64(), "Batches committed"),
    _Col("docs_in", pa.int64(), "Records read: docs_ok + docs_empty + docs_quarantined"),
    _Col("docs_ok", pa.int64(), "Documents annotated"),
    _Col("docs_empty", pa.int64(), "Documents empty after normalisation"),
    _Col("docs_quarantined", pa.int64(), "Records in quarantine"),
    _Col("entities", pa.int64(), "Entities written"),
    _Col("chars", pa.int64(), "Characters annotated"),
    _Col("entities_by_label", pa.map_(pa.string(), pa.int64()), "Entities per label"),
]
_RUNS_TAIL = [
    _Col("started_at", pa.timestamp("us", tz="UTC"), "When the run started"),
    _Col("finished_at", pa.timestamp("us", tz="UTC"), "When the run record was written"),
    _Col("seconds", pa.float64(), "Wall time"),
]

MANIFEST_RUNS_V1 = _contract(
    "_manifest/runs",
    1,
    "One run of the extract-entities flow.",
    [
        *_RUNS_HEAD,
        _Col("status", pa.string(), "'completed'"),
        *_RUNS_SOURCES,
        *_RUNS_COUNTS,
        _Col("contract_results", pa.string(), "Reserved for the contract results (JSON)", nullable=True),
        *_RUNS_TAIL,
    ],
)

_RUNS_STATUS = _Col(
    "status", pa.string(), "'completed', or 'failed' (a batch broke the contracts beyond max_failure_rate)"
)
_RUNS_MODEL = [
    _Col("model_labels", pa.list_(pa.string()), "The model's entity labels: the allowed entities.label values"),
    _Col("embedding_dim", pa.int32(), "Width of entity_embeddings.vector; 0 when none were written"),
]
_RUNS_CONTRACT_RESULTS = _Col(
    "contract_results",
    pa.string(),
    "JSON: contract versions, per table and check the rows checked and failed, documents "
    "quarantined per check, the run's reconciliation (see data_contracts.results)",
    nullable=True,
)

MANIFEST_RUNS_V2 = _contract(
    "_manifest/runs",
    2,
    "One run of the extract-entities flow, with what its contracts found (written also when a "
    "batch broke the contracts beyond the threshold and the run failed).",
    [*_RUNS_HEAD, _RUNS_STATUS, *_RUNS_SOURCES, *_RUNS_MODEL, *_RUNS_COUNTS, _RUNS_CONTRACT_RESULTS, *_RUNS_TAIL],
    changes="adds model_labels and embedding_dim; status 'failed'; contract_results filled; unsupported objects "
    "(objects_ignored) are processed and quarantined",
)

MANIFEST_RUNS_V3 = _contract(
    "_manifest/runs",
    3,
    "One run of the extract-entities flow, with what its contracts found and the share of "
    "candidate spans its model scored.",
    [
        *_RUNS_HEAD,
        _RUNS_STATUS,
        *_RUNS_SOURCES,
        *_RUNS_MODEL,
        *_RUNS_COUNTS,
        _Col("span_filter", pa.string(), "Which candidate spans were scored: 'off' (all) or the span filter's rule"),
        _Col("spans", pa.int64(), "Candidate spans of the run's windows"),
        _Col("spans_scored", pa.int64(), "Of those, the spans the model scored; a span filter counted the rest as 'O'"),
        _RUNS_CONTRACT_RESULTS,
        *_RUNS_TAIL,
    ],
    changes="adds span_filter, spans and spans_scored (the share of candidate spans the model scored)",
)

EMBEDDINGS_VERSION = 1
"""Version of the ``entity_embeddings`` contract (its vector width depends on the model)."""


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
    return _contract(
        "entity_embeddings",
        1,
        "One vector per row of entities (when the run asked for embeddings); the width is the model's.",
        [
            _Col("entity_id", pa.string(), "The entity (entities.entity_id)"),
            _Col("doc_id", pa.string(), "Its document"),
            _MODEL_ID,
            _Col(
                "vector",
                pa.list_(pa.field("item", types[dtype], nullable=False), dim),
                "The entity's vector: finite values, as many as the model and the embeddings mode give",
            ),
            _Col("source_uri", pa.string(), "The input object (lets a changed object's rows be retracted)"),
            _RUN_ID,
            _INGEST_DATE,
        ],
        partition_by=("ingest_date",),
    )


entity_embeddings = entity_embeddings_v1
"""The current ``entity_embeddings`` contract (see :data:`EMBEDDINGS_VERSION`)."""

ENTITIES = ENTITIES_V2
DOCUMENTS = DOCUMENTS_V2
SEGMENTS = SEGMENTS_V1
QUARANTINE = QUARANTINE_V2
MANIFEST_OBJECTS = MANIFEST_OBJECTS_V1
MANIFEST_RUNS = MANIFEST_RUNS_V3

CONTRACTS: dict[str, TableContract] = {
    c.name: c for c in (ENTITIES, DOCUMENTS, SEGMENTS, QUARANTINE, MANIFEST_OBJECTS, MANIFEST_RUNS)
}
"""The current contract of every table with a fixed schema (embeddings depend on the model:
see :func:`entity_embeddings`)."""

ALL_VERSIONS: dict[str, dict[int, TableContract]] = {}
"""Every contract ever released, by table and version (embeddings at width 1, float32), for
reading files older versions wrote and for the fingerprint check."""
for _c in (
    ENTITIES_V1,
    ENTITIES_V2,
    DOCUMENTS_V1,
    DOCUMENTS_V2,
    SEGMENTS_V1,
    QUARANTINE_V1,
    QUARANTINE_V2,
    MANIFEST_OBJECTS_V1,
    MANIFEST_RUNS_V1,
    MANIFEST_RUNS_V2,
    MANIFEST_RUNS_V3,
    entity_embeddings_v1(1),
):
    ALL_VERSIONS.setdefault(_c.name, {})[_c.version] = _c
del _c


def contract_version(name: str, version: int, *, dim: int = 1, dtype: str = "float32") -> TableContract | None:
    """The contract of table ``name`` at ``version`` (embeddings at ``dim`` and ``dtype``), or
    ``None`` when no such version was ever released."""
    if name == "entity_embeddings":
        return entity_embeddings_v1(dim, dtype) if version == 1 else None
    return ALL_VERSIONS.get(name, {}).get(version)
