"""Read a batch of input objects into one frame of document records.

Three formats: JSONL (one JSON object per line, ``.jsonl``/``.ndjson``, gzip allowed), Parquet
(one row per document) and plain text (one file is one document; ``.txt``, gzip allowed). Field
names are configurable (:class:`FieldMapping`). Nothing is dropped silently: a record that is not
JSON, not UTF-8, not an object, or has no string text becomes a quarantine row with its reason,
and an object that cannot be opened at all (a broken gzip stream, a corrupt Parquet footer)
becomes one quarantine row for the whole object (``record`` null). So does an object of zero
bytes (of any format: an interrupted upload, not an empty document), an object whose name no
reader takes (not even fetched), and an object deleted between listing and reading (not
retried: it will not come back by itself; if it is written again it is a new version and the
next run reads it). Blank lines of a JSONL file are not records.

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

Quarantine frame (:data:`QUARANTINE_SCHEMA`): source_uri, doc_id (null when unknown), record,
stage (``"read"``), reason, raw_excerpt.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from nerflow import storage
from nerflow.etl.errors import StorageError
from nerflow.etl.formats import FORMATS, detect_format, strip_suffix
from nerflow.etl.listing import Batch
from nerflow.storage import StoredObject

__all__ = [
    "FORMATS",
    "FieldMapping",
    "ReadConfig",
    "ReadBatch",
    "RECORD_SCHEMA",
    "QUARANTINE_SCHEMA",
    "detect_format",
    "read_batch",
    "read_object",
    "text_doc_id",
]

_GZIP_MAGIC = b"\x1f\x8b"

RECORD_SCHEMA = pl.Schema({
    "doc_id": pl.String,
    "text": pl.String,
    "lang": pl.String,
    "metadata": pl.String,
    "source_uri": pl.String,
    "record": pl.Int64,
})

QUARANTINE_SCHEMA = pl.Schema({
    "source_uri": pl.String,
    "doc_id": pl.String,
    "record": pl.Int64,
    "stage": pl.String,
    "reason": pl.String,
    "raw_excerpt": pl.String,
})


@dataclass(frozen=True, kw_only=True)
class FieldMapping:
    """Names of the input fields (JSONL keys, Parquet columns) that hold each part of a document."""

    id: str = "id"
    text: str = "text"
    lang: str = "lang"
    metadata: str = "metadata"

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
    """

    input_format: str = "auto"
    fields: FieldMapping = field(default_factory=FieldMapping)
    excerpt_chars: int = 500

    def __post_init__(self) -> None:
        if self.input_format not in FORMATS:
            raise ValueError(f"input_format must be one of {FORMATS}, got {self.input_format!r}")
        if self.excerpt_chars < 0:
            raise ValueError(f"excerpt_chars must not be negative, got {self.excerpt_chars}")


@dataclass(frozen=True, eq=False)
class ReadBatch:
    """A batch as read.

    Attributes:
        batch_id: The batch's id.
        records: Documents, :data:`RECORD_SCHEMA`, in object then record order.
        quarantine: Bad records, :data:`QUARANTINE_SCHEMA`.
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
    fmt = detect_format(obj.relpath, config.input_format)
    if fmt is None:
        # Not fetched: an unsupported object may be large (a video, an archive) and no
        # excerpt of it would help.
        out.bad(None, None, "unsupported file type: no reader for this file name (input_format='auto'); "
                "use .jsonl, .ndjson, .parquet or .txt (optionally .gz)", None)
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
    if fmt == "jsonl":
        _read_jsonl(data, out)
    elif fmt == "parquet":
        _read_parquet(data, out)
    else:
        _read_text(data, out)
    return out.frames()


class _Collector:
    """Column lists of one object's records and quarantine rows."""

    def __init__(self, obj: StoredObject, config: ReadConfig) -> None:
        self.obj = obj
        self.config = config
        self.fields = config.fields
        self.rows: dict[str, list] = {name: [] for name in RECORD_SCHEMA}
        self.quarantine: dict[str, list] = {name: [] for name in QUARANTINE_SCHEMA}

    def add(self, doc_id: str | None, text: str, lang: Any, metadata: Any, record: int | None) -> None:
        self.rows["doc_id"].append(doc_id if doc_id is not None else self.default_id(record))
        self.rows["text"].append(text)
        self.rows["lang"].append(lang if isinstance(lang, str) else None)
        self.rows["metadata"].append(_metadata_json(metadata))
        self.rows["source_uri"].append(self.obj.uri)
        self.rows["record"].append(record)

    def bad(self, doc_id: str | None, record: int | None, reason: str, raw: bytes | str | None) -> None:
        if isinstance(raw, bytes):
            raw = raw[: self.config.excerpt_chars * 4].decode("utf-8", errors="replace")
        q = self.quarantine
        q["source_uri"].append(self.obj.uri)
        q["doc_id"].append(doc_id)
        q["record"].append(record)
        q["stage"].append("read")
        q["reason"].append(reason)
        q["raw_excerpt"].append(raw[: self.config.excerpt_chars] if raw is not None else None)

    def default_id(self, record: int | None) -> str:
        if record is None:
            return text_doc_id(self.obj.relpath)
        return f"{self.obj.relpath}#{record}"

    def frames(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        return pl.DataFrame(self.rows, schema=RECORD_SCHEMA), pl.DataFrame(self.quarantine, schema=QUARANTINE_SCHEMA)


def text_doc_id(relpath: str) -> str:
    """The ``doc_id`` of a text file: its path below the input root without the suffix."""
    return strip_suffix(relpath)


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
            out.add(doc_id, text, value.get(f.lang), value.get(f.metadata), number)


def _read_parquet(data: bytes, out: _Collector) -> None:
    f = out.fields
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as e:
        out.bad(None, None, f"not a readable Parquet file: {e}", data[:64])
        return
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    n = frame.height
    ids = frame.get_column(f.id).cast(pl.String).to_list() if f.id in frame.columns else [None] * n
    if f.text not in frame.columns or frame.schema[f.text] != pl.String:
        reason = (
            f"missing text field {f.text!r}" if f.text not in frame.columns
            else f"text field {f.text!r} is not a string (a {frame.schema[f.text]})"
        )
        # Row by row, so that docs_in counts the documents the file meant to hold.
        for row, (doc_id, raw) in enumerate(zip(ids, frame.iter_rows(named=True)), start=1):
            out.bad(doc_id, row, reason, json.dumps(raw, ensure_ascii=False, default=str))
        return
    texts = frame.get_column(f.text).to_list()
    langs = frame.get_column(f.lang).cast(pl.String).to_list() if f.lang in frame.columns else [None] * n
    metas = frame.get_column(f.metadata).to_list() if f.metadata in frame.columns else [None] * n
    for row, (doc_id, text, lang, meta) in enumerate(zip(ids, texts, langs, metas), start=1):
        if text is None:
            out.bad(doc_id, row, f"text field {f.text!r} is null", None)
        else:
            out.add(doc_id, text, lang, meta, row)


def _read_text(data: bytes, out: _Collector) -> None:
    doc_id = text_doc_id(out.obj.relpath)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        out.bad(doc_id, None, f"not UTF-8: invalid byte at offset {e.start}", data)
        return
    out.add(doc_id, text, None, None, None)
