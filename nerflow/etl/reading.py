"""Read a batch of input objects into one frame of document records.

Three formats: JSONL (one JSON object per line, ``.jsonl``/``.ndjson``, gzip allowed), Parquet
(one row per document) and plain text (one file is one document; ``.txt``, gzip allowed). Field
names are configurable (:class:`FieldMapping`). Nothing is dropped silently: a record that is not
JSON (or nested too deeply to parse), not UTF-8 (a Parquet string column may hold any bytes), not
an object, holds a lone surrogate escape ("\\ud83d", which no UTF-8 table can store), or has no
string text becomes a quarantine row with its reason,
and an object that cannot be opened at all (a broken gzip stream, a corrupt Parquet footer)
becomes one quarantine row for the whole object (``record`` null). So does an object of zero
bytes (of any format: an interrupted upload, not an empty document), an object whose name no
reader takes (not even fetched), and an object deleted between listing and reading (not
retried: it will not come back by itself; if it is written again it is a new version and the
next run reads it). Blank lines of a JSONL file are not records. An object a reader fails on in
a way no rule here foresaw is one quarantine row too ("could not be read: …"), so that one
object never fails its batch.

Records frame (:data:`RECORD_SCHEMA`):

    ========== ======= ==========================================================
    doc_id     String  the id field as a string; ``<relpath>#<record>`` when absent,
                       the path without its suffix for text files
    text       String  as read (normalising comes next)
    lang       String  the lang field, null when absent
    metadata   String  the metadata field as JSON, null when absent
    source_uri String  the object's URI
    record     Int64   1-based line (JSONL) or row (Parquet); null for text files
    ========== ======= ==========================================================

Quarantine frame: :data:`nerflow.etl.quarantine.QUARANTINE_SCHEMA`, stage ``"read"``.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import zlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from nerflow import storage
from nerflow.errors import describe_error
from nerflow.etl.errors import StorageError
from nerflow.etl.formats import FORMATS, detect_format, strip_suffix
from nerflow.etl.listing import Batch
from nerflow.etl.quarantine import EXCERPT_CHARS, QUARANTINE_SCHEMA, READ, quarantine_rows
from nerflow.storage import StoredObject

__all__ = [
    "FORMATS",
    "FieldMapping",
    "ReadConfig",
    "ReadBatch",
    "MAX_DOCUMENT_CHARS",
    "RECORD_SCHEMA",
    "detect_format",
    "read_batch",
    "read_object",
    "text_doc_id",
]

_GZIP_MAGIC = b"\x1f\x8b"

MAX_DOCUMENT_CHARS = 10_000_000
"""The default longest document, in characters: about 10 MB of text, a 4,000-page book. Its
engine memory stays bounded (windows are scored in batches); docs/operating.md has the peak."""

logger = logging.getLogger(__name__)

RECORD_SCHEMA = pl.Schema(
    {
        "doc_id": pl.String,
        "text": pl.String,
        "lang": pl.String,
        "metadata": pl.String,
        "source_uri": pl.String,
        "record": pl.Int64,
    }
)

# A bad record as the reader collects it; quarantine_rows adds the stage.
_BAD_RECORD_SCHEMA = pl.Schema({name: dtype for name, dtype in QUARANTINE_SCHEMA.items() if name != "stage"})


# Also the flow's ``fields`` parameter (ExtractParams): pydantic validates it from a dict, runs
# __post_init__ and shows the docstring and each field's "description" in the Prefect UI's form.
@dataclass(frozen=True, kw_only=True)
class FieldMapping:
    """Names of the input fields (JSONL keys, Parquet columns) that hold each part of a document."""

    # Read by pydantic only: a misspelt key in the flow's parameters is an error, not ignored.
    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    id: str = field(default="id", metadata={"description": "Document id; absent ids become '<path>#<line>'"})
    text: str = field(default="text", metadata={"description": "Document text (records without it are quarantined)"})
    lang: str = field(default="lang", metadata={"description": "Language tag; detected when absent"})
    metadata: str = field(
        default="metadata", metadata={"description": "Any JSON value, kept as JSON in documents.metadata"}
    )

    def __post_init__(self) -> None:
        names = [self.id, self.text, self.lang, self.metadata]
        if any(not n for n in names):
            raise ValueError(f"field names must not be empty, got {names}")
        if len(set(names)) != len(names):
            raise ValueError(f"field names must differ from each other, got {names}")


@dataclass(frozen=True, kw_only=True)
class ReadConfig:
    """How to read input objects.

    Attributes:
        input_format: One of :data:`FORMATS`; ``"auto"`` decides by suffix.
        fields: Field names.
        excerpt_chars: Characters of a bad record kept in ``quarantine.raw_excerpt``.
        max_document_chars: Longest text a document may have; a longer one is quarantined
            with its size (annotating one of 50 MB took 10 minutes and 7 GB of memory).
    """

    input_format: str = "auto"
    fields: FieldMapping = field(default_factory=FieldMapping)
    excerpt_chars: int = EXCERPT_CHARS
    max_document_chars: int = MAX_DOCUMENT_CHARS

    def __post_init__(self) -> None:
        if self.input_format not in FORMATS:
            raise ValueError(f"input_format must be one of {FORMATS}, got {self.input_format!r}")
        if self.excerpt_chars < 0:
            raise ValueError(f"excerpt_chars must not be negative, got {self.excerpt_chars}")
        if self.max_document_chars < 1:
            raise ValueError(f"max_document_chars must be positive, got {self.max_document_chars}")


@dataclass(frozen=True, eq=False)
class ReadBatch:
    """A batch as read.

    Attributes:
        batch_id: The batch's id.
        records: Documents, :data:`RECORD_SCHEMA`, in object then record order.
        quarantine: Bad records, :data:`nerflow.etl.quarantine.QUARANTINE_SCHEMA`.
    """

    batch_id: str
    records: pl.DataFrame
    quarantine: pl.DataFrame

    @property
    def docs_in(self) -> int:
        """Records seen: documents plus quarantined records."""
        return self.records.height + self.quarantine.height


def read_batch(fs: AbstractFileSystem, batch: Batch, config: ReadConfig) -> ReadBatch:
    """Read every object of a batch.

    Args:
        fs: The input filesystem.
        batch: The objects to read.
        config: Format and field names.

    Returns:
        The batch's records and quarantine rows.

    Raises:
        StorageError: An object could not be fetched (retryable; bad *content* is quarantined).
    """
    records, quarantine = [], []
    for obj in batch.objects:
        recs, bad = read_object(fs, obj, config)
        records.append(recs)
        quarantine.append(bad)
    return ReadBatch(
        batch_id=batch.batch_id,
        records=pl.concat(records) if records else RECORD_SCHEMA.to_frame(),
        quarantine=pl.concat(quarantine) if quarantine else QUARANTINE_SCHEMA.to_frame(),
    )


def read_object(fs: AbstractFileSystem, obj: StoredObject, config: ReadConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read one object into ``(records, quarantine)`` frames (see the module docstring).

    Raises:
        StorageError: The object could not be fetched for a reason that may pass; an object
            that no longer exists is quarantined instead (see the module docstring).
    """
    out = _Collector(obj, config)
    problem = storage.unreadable_object(fs, obj.path)  # before the name: a loop named x.jsonl is no JSONL
    if problem is not None:
        out.bad(None, None, problem, None)
        return out.frames()
    fmt = detect_format(obj.relpath, config.input_format)
    if fmt is None:
        # Not fetched: an unsupported object may be large (a video, an archive) and no
        # excerpt of it would help.
        out.bad(
            None,
            None,
            "unsupported file type: no reader for this file name (input_format='auto'); "
            "use .jsonl, .ndjson, .parquet or .txt (optionally .gz)",
            None,
        )
        return out.frames()
    try:
        data = storage.read_bytes(fs, obj.path)
    except StorageError as e:
        if not isinstance(e.__cause__, FileNotFoundError):
            raise
        out.bad(None, None, "object vanished: listed, then deleted before it was read", None)
        return out.frames()
    if not data:
        out.bad(None, None, "empty object: 0 bytes (an interrupted upload?)", None)
        return out.frames()
    if data[:2] == _GZIP_MAGIC:
        # Sniffed rather than trusted to the suffix: "x.jsonl" that is gzipped still reads.
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            out.bad(None, None, f"not a valid gzip stream: {e}", data)
            return out.frames()
    reader = {"jsonl": _read_jsonl, "parquet": _read_parquet}.get(fmt, _read_text)
    try:
        reader(data, out)
        return out.frames()
    except Exception as e:  # noqa: BLE001
        # A reader bug or an input no rule above foresaw must not fail the batch and take its
        # other objects with it: the object is kept as one quarantine row that says why.
        logger.warning("could not read %s: %s: %s", obj.uri, type(e).__name__, e)
        whole = _Collector(obj, config)
        whole.bad(None, None, f"could not be read: {describe_error(e)}", data[:64] if fmt == "parquet" else data)
        return whole.frames()


class _Collector:
    """Column lists of one object's records and quarantine rows."""

    def __init__(self, obj: StoredObject, config: ReadConfig) -> None:
        self.obj = obj
        self.config = config
        self.fields = config.fields
        self.rows: dict[str, list] = {name: [] for name in RECORD_SCHEMA}
        self.quarantine: dict[str, list] = {name: [] for name in _BAD_RECORD_SCHEMA}

    def add(
        self,
        doc_id: str | None,
        text: str,
        lang: Any,
        metadata: Any,
        record: int | None,
        raw: bytes | str | None = None,
    ) -> None:
        if len(text) > self.config.max_document_chars:
            self.bad(
                doc_id,
                record,
                f"document too long: {len(text):,} characters, more than max_document_chars "
                f"({self.config.max_document_chars:,})",
                text[: self.config.excerpt_chars],
            )
            return
        lang = lang if isinstance(lang, str) else None
        metadata = _metadata_json(metadata)
        # JSON's "\ud83d" escape decodes to a lone surrogate, which no UTF-8 table can hold.
        for name, value in (("id", doc_id), ("text", text), ("lang", lang), ("metadata", metadata)):
            at = _surrogate_at(value)
            if at is not None:
                field_name = getattr(self.fields, name)
                self.bad(
                    doc_id if name != "id" else None,
                    record,
                    f"not valid Unicode: field {field_name!r} has a lone surrogate at character {at}",
                    raw,
                )
                return
        self.rows["doc_id"].append(doc_id if doc_id is not None else self.default_id(record))
        self.rows["text"].append(text)
        self.rows["lang"].append(lang)
        self.rows["metadata"].append(metadata)
        self.rows["source_uri"].append(self.obj.uri)
        self.rows["record"].append(record)

    def bad(self, doc_id: str | None, record: int | None, reason: str, raw: bytes | str | None) -> None:
        if isinstance(raw, bytes):
            raw = raw[: self.config.excerpt_chars * 4].decode("utf-8", errors="replace")
        q = self.quarantine
        q["source_uri"].append(self.obj.uri)
        q["doc_id"].append(_storable(doc_id))
        q["record"].append(record)
        q["reason"].append(_storable(reason))
        q["raw_excerpt"].append(_storable(raw[: self.config.excerpt_chars]) if raw is not None else None)

    def default_id(self, record: int | None) -> str:
        if record is None:
            return text_doc_id(self.obj.relpath)
        return f"{self.obj.relpath}#{record}"

    def frames(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        bad = pl.DataFrame(self.quarantine, schema=_BAD_RECORD_SCHEMA)
        # The excerpt is cut already: from bytes, and before lone surrogates are escaped.
        quarantine = quarantine_rows(bad, stage=READ, reason=pl.col("reason"), raw_excerpt=pl.col("raw_excerpt"))
        return pl.DataFrame(self.rows, schema=RECORD_SCHEMA), quarantine


def text_doc_id(relpath: str) -> str:
    """The ``doc_id`` of a text file: its path below the input root without the suffix."""
    return strip_suffix(relpath)


def _surrogate_at(value: str | None) -> int | None:
    """The index of the first lone surrogate in ``value``, or None."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


def _storable(value: str | None) -> str | None:
    """``value`` with lone surrogates written as escapes ("\\ud83d"), so that it can be stored."""
    if value is None or _surrogate_at(value) is None:
        return value
    return value.encode("utf-8", errors="backslashreplace").decode("utf-8")


def _metadata_json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _id_string(value: Any) -> str | None:
    # Ids are strings in every table; numbers are common in JSON exports and read as such.
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _read_jsonl(data: bytes, out: _Collector) -> None:
    f = out.fields
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError as e:
            out.bad(None, number, f"not UTF-8: invalid byte at offset {e.start} of the line", line)
            continue
        if number == 1:
            decoded = decoded.lstrip("\ufeff")
        try:
            value = json.loads(decoded)
        except json.JSONDecodeError as e:
            out.bad(None, number, f"not JSON: {e.msg} at column {e.colno}", decoded)
            continue
        except RecursionError:
            out.bad(None, number, "not JSON this reader can take: nested too deeply", decoded)
            continue
        except ValueError as e:  # an integer of more digits than Python converts
            out.bad(None, number, f"not JSON this reader can take: {e}", decoded)
            continue
        if not isinstance(value, dict):
            out.bad(None, number, f"not a JSON object (a {type(value).__name__})", decoded)
            continue
        doc_id = _id_string(value.get(f.id))
        text = value.get(f.text)
        if f.text not in value:
            out.bad(doc_id, number, f"missing text field {f.text!r}", decoded)
        elif not isinstance(text, str):
            out.bad(doc_id, number, f"text field {f.text!r} is not a string (a {type(text).__name__})", decoded)
        else:
            out.add(doc_id, text, value.get(f.lang), value.get(f.metadata), number, decoded)


def _read_parquet(data: bytes, out: _Collector) -> None:
    f = out.fields
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as e:
        out.bad(None, None, f"not a readable Parquet file: {e}", data[:64])
        return
    names = table.column_names
    # Column by column through pyarrow, not polars: a string column may hold bytes that are
    # not UTF-8 (pyarrow does not check on read), and those rows, not the file, are bad.
    columns = {name: _column_values(table.column(name)) for name in names}
    n = table.num_rows

    def column(name: str) -> tuple[list, list[str | None]]:
        return columns.get(name, ([None] * n, [None] * n))

    ids, id_problems = column(f.id)
    texts, text_problems = column(f.text)
    langs, _ = column(f.lang)
    metas, _ = column(f.metadata)
    text_type = table.schema.field(f.text).type if f.text in names else None
    is_text = text_type is not None and _is_string(text_type)

    def excerpt(row: int) -> str:
        return json.dumps({name: values[row] for name, (values, _) in columns.items()}, ensure_ascii=False, default=str)

    for row in range(n):
        doc_id = _id_string(ids[row]) if id_problems[row] is None else None
        if f.text not in names:
            out.bad(doc_id, row + 1, f"missing text field {f.text!r}", excerpt(row))
        elif not is_text:
            out.bad(doc_id, row + 1, f"text field {f.text!r} is not a string (a {text_type})", excerpt(row))
        elif text_problems[row] is not None:
            out.bad(doc_id, row + 1, f"text field {f.text!r} is {text_problems[row]}", excerpt(row))
        elif texts[row] is None:
            out.bad(doc_id, row + 1, f"text field {f.text!r} is null", None)
        else:
            out.add(doc_id, texts[row], _id_string(langs[row]), metas[row], row + 1)


def _is_string(type_: pa.DataType) -> bool:
    if pa.types.is_dictionary(type_):
        type_ = type_.value_type
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def _column_values(column: pa.ChunkedArray) -> tuple[list, list[str | None]]:
    """A column's values as Python objects, and for each row why its value is unusable (None: it is not).

    String columns (plain, large or dictionary-encoded) are decoded row by row, so that bytes
    that are not UTF-8 spoil one row ("not UTF-8 …"), not the file; binary values that are
    UTF-8 become strings.
    """
    type_ = column.type
    if pa.types.is_dictionary(type_):
        column = column.cast(type_.value_type)
        type_ = type_.value_type
    if _is_string(type_) or pa.types.is_binary(type_) or pa.types.is_large_binary(type_):
        values: list[Any] = []
        problems: list[str | None] = []
        for raw in column.cast(pa.large_binary()).to_pylist():
            if raw is None:
                values.append(None)
                problems.append(None)
                continue
            try:
                values.append(raw.decode("utf-8"))
                problems.append(None)
            except UnicodeDecodeError as e:
                values.append(raw[:200].decode("utf-8", errors="replace"))
                problems.append(f"not UTF-8: invalid byte at offset {e.start}")
        return values, problems
    return column.to_pylist(), [None] * len(column)


def _read_text(data: bytes, out: _Collector) -> None:
    doc_id = text_doc_id(out.obj.relpath)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        out.bad(doc_id, None, f"not UTF-8: invalid byte at offset {e.start}", data)
        return
    out.add(doc_id, text, None, None, None)
