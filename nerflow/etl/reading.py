"""Read a batch of input objects into one frame of document records and one of segments.

Record formats: JSONL (one JSON object per line, ``.jsonl``/``.ndjson``, gzip allowed; UTF-8,
or UTF-16/32 with a byte-order mark) and Parquet (one row per document), whose field names are
configurable (:class:`FieldMapping`). File formats, one document per file: plain text in any
encoding it can be told apart in (:mod:`nerflow.etl.extraction.text_encoding`), PDF, HTML,
DOCX, XLSX, PPTX, OpenDocument (ODT, ODS, ODP), Markdown and e-mail; an mbox gives one
document per message. The format is decided by content first
(:func:`nerflow.etl.extraction.sniffing.sniff_format`), the name second, unless
``input_format`` forces one. File formats come with segments (where each part of the text came
from: page, block, PDF boxes) and what the file declares (title, page count, language,
encoding). Nothing is dropped silently: a record that is not
JSON (or nested too deeply to parse), not UTF-8 (a Parquet string column may hold any bytes), not
an object, holds a lone surrogate escape ("\\ud83d", which no UTF-8 table can store), or has no
string text becomes a quarantine row with its reason,
and an object that cannot be opened at all (a broken gzip stream, a corrupt Parquet footer, an
encrypted or scanned PDF, a zip bomb, an e-mail with only attachments, text whose encoding
cannot be told with confidence) becomes one quarantine row for the whole object (``record``
null) with the reader's reason. So does an object of zero
bytes (of any format: an interrupted upload, not an empty document), an object whose name no
reader takes (not even fetched), and an object deleted between listing and reading (not
retried: it will not come back by itself; if it is written again it is a new version and the
next run reads it). Blank lines of a JSONL file are not records. An object a reader fails on in
a way no rule here foresaw is one quarantine row too ("could not be read: …"), so that one
object never fails its batch.

Records frame (:data:`RECORD_SCHEMA`):

    =================== ======= ==================================================
    doc_id              String  the id field as a string; ``<relpath>#<record>`` when
                                absent (an mbox's messages too); the path without its
                                suffix for text files, the path for other files
    text                String  as read (normalising comes next; file formats are
                                read in the normal form already)
    lang                String  the lang field, null when absent
    metadata            String  the metadata field as JSON, null when absent
    source_uri          String  the object's URI
    record              Int64   1-based line (JSONL), row (Parquet) or message (mbox);
                                null for other files
    format              String  the reader (``documents.format``)
    page_count          Int32   pages (PDF)
    title               String  the title the file declares
    declared_lang       String  the language the file declares
    encoding            String  the text encoding the bytes were decoded with
    encoding_confidence Float32 how sure its detection was
    =================== ======= ==================================================

Segments frame (:data:`SEGMENT_SCHEMA`): per document (``doc_id``, ``source_uri``,
``record``), its segments in order, with the PDF characters' boxes flattened
(``char_boxes``, four values per character of the segment).

Quarantine frame: :data:`nerflow.etl.quarantine.QUARANTINE_SCHEMA`, stage ``"read"``.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import field as dataclasses_field
from typing import Any, ClassVar, Literal, get_args

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from nerflow import storage
from nerflow.errors import describe_error
from nerflow.etl.errors import StorageError
from nerflow.etl.extraction import DocumentInfo, ExtractedDocument, ExtractionError
from nerflow.etl.extraction.docx import extract_docx
from nerflow.etl.extraction.html import extract_html
from nerflow.etl.extraction.mail import extract_email, extract_mbox
from nerflow.etl.extraction.markdown_text import extract_markdown
from nerflow.etl.extraction.office_archive import ole_reason
from nerflow.etl.extraction.opendocument import extract_opendocument
from nerflow.etl.extraction.pdf_process import PAGE_TIME_LIMIT_S, read_pdf
from nerflow.etl.extraction.pptx import extract_pptx
from nerflow.etl.extraction.sniffing import describe_mismatch, sniff_format
from nerflow.etl.extraction.text_encoding import bom_encoding, decode_text, extract_text
from nerflow.etl.extraction.xlsx import extract_xlsx
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
    "HTML_TEXT",
    "HtmlText",
    "FILE_INFO_SCHEMA",
    "RECORD_SCHEMA",
    "SEGMENT_SCHEMA",
    "detect_format",
    "read_batch",
    "read_object",
    "text_doc_id",
]

_GZIP_MAGIC = b"\x1f\x8b"

# Bytes of an object read to decide its format by content when its name names none.
_SNIFF_BYTES = 8192

MAX_DOCUMENT_CHARS = 10_000_000
"""The default longest document, in characters: about 10 MB of text, a 4,000-page book. Its
engine memory stays bounded (windows are scored in batches); docs/operating.md has the peak."""

logger = logging.getLogger(__name__)

FILE_INFO_SCHEMA = pl.Schema(
    {
        "format": pl.String,
        "page_count": pl.Int32,
        "title": pl.String,
        "declared_lang": pl.String,
        "encoding": pl.String,
        "encoding_confidence": pl.Float32,
    }
)
"""A :class:`DocumentInfo` as columns: what a file declares about itself, carried from the
records read to the documents table."""

RECORD_SCHEMA = pl.Schema(
    {  # type: ignore[arg-type]  # mypy joins the spread Schema's values to object
        "doc_id": pl.String,
        "text": pl.String,
        "lang": pl.String,
        "metadata": pl.String,
        "source_uri": pl.String,
        "record": pl.Int64,
        **FILE_INFO_SCHEMA,
    }
)

SEGMENT_SCHEMA = pl.Schema(
    {  # type: ignore[arg-type]  # pl.List(...) is a DataType instance; mypy infers the dict as object
        "doc_id": pl.String,
        "source_uri": pl.String,
        "record": pl.Int64,
        "segment": pl.Int32,
        "start": pl.Int32,
        "end": pl.Int32,
        "kind": pl.String,
        "page": pl.Int32,
        "block": pl.String,
        "left": pl.Float32,
        "bottom": pl.Float32,
        "right": pl.Float32,
        "top": pl.Float32,
        "page_width": pl.Float32,
        "page_height": pl.Float32,
        "char_boxes": pl.List(pl.Float32),
    }
)

HtmlText = Literal["main", "all"]
"""What of an HTML page is read: the main content with boilerplate removed (trafilatura), or
all visible text."""
HTML_TEXT: tuple[str, ...] = get_args(HtmlText)

_RECORD_INFO = DocumentInfo(format="jsonl")
_JSONL_INFO = DocumentInfo(format="jsonl", encoding="utf-8", encoding_confidence=1.0)
_PARQUET_INFO = DocumentInfo(format="parquet")

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
        html_text: One of :data:`HTML_TEXT`.
        pdf_page_time_limit_s: Seconds a PDF's page may take to read (PDFs are read in a
            child process that is killed past it); the file is quarantined with the page.
    """

    input_format: str = "auto"
    fields: FieldMapping = field(default_factory=FieldMapping)
    excerpt_chars: int = EXCERPT_CHARS
    max_document_chars: int = MAX_DOCUMENT_CHARS
    html_text: str = "main"
    pdf_page_time_limit_s: float = PAGE_TIME_LIMIT_S

    def __post_init__(self) -> None:
        if self.input_format not in FORMATS:
            raise ValueError(f"input_format must be one of {FORMATS}, got {self.input_format!r}")
        if self.excerpt_chars < 0:
            raise ValueError(f"excerpt_chars must not be negative, got {self.excerpt_chars}")
        if self.max_document_chars < 1:
            raise ValueError(f"max_document_chars must be positive, got {self.max_document_chars}")
        if self.html_text not in HTML_TEXT:
            raise ValueError(f"html_text must be one of {HTML_TEXT}, got {self.html_text!r}")
        if self.pdf_page_time_limit_s <= 0:
            raise ValueError(f"pdf_page_time_limit_s must be positive, got {self.pdf_page_time_limit_s}")


@dataclass(frozen=True, eq=False)
class ReadBatch:
    """A batch as read.

    Attributes:
        batch_id: The batch's id.
        records: Documents, :data:`RECORD_SCHEMA`, in object then record order.
        quarantine: Bad records, :data:`nerflow.etl.quarantine.QUARANTINE_SCHEMA`.
        segments: :data:`SEGMENT_SCHEMA`, for documents read from files with structure.
    """

    batch_id: str
    records: pl.DataFrame
    quarantine: pl.DataFrame
    segments: pl.DataFrame = dataclasses_field(default_factory=SEGMENT_SCHEMA.to_frame)

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
    records, quarantine, segments = [], [], []
    for obj in batch.objects:
        out = _read(fs, obj, config)
        recs, bad = out.frames()
        records.append(recs)
        quarantine.append(bad)
        segments.append(out.segment_frame())
    return ReadBatch(
        batch_id=batch.batch_id,
        records=pl.concat(records) if records else RECORD_SCHEMA.to_frame(),
        quarantine=pl.concat(quarantine) if quarantine else QUARANTINE_SCHEMA.to_frame(),
        segments=pl.concat(segments) if segments else SEGMENT_SCHEMA.to_frame(),
    )


def read_object(fs: AbstractFileSystem, obj: StoredObject, config: ReadConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read one object into ``(records, quarantine)`` frames (see the module docstring).

    Raises:
        StorageError: The object could not be fetched for a reason that may pass; an object
            that no longer exists is quarantined instead (see the module docstring).
    """
    return _read(fs, obj, config).frames()


def _read(fs: AbstractFileSystem, obj: StoredObject, config: ReadConfig) -> _Collector:
    out = _Collector(obj, config)
    problem = storage.unreadable_object(fs, obj.path)  # before the name: a loop named x.jsonl is no JSONL
    if problem is not None:
        out.bad(None, None, problem, None)
        return out
    by_name = detect_format(obj.relpath, config.input_format)
    try:
        if by_name is None:
            # Only the head: an object no name vouches for may be large (a video, an archive),
            # and its first bytes tell whether any reader takes it.
            head = _gunzipped_head(storage.read_head(fs, obj.path, _SNIFF_BYTES))
            if sniff_format(head, obj.relpath) is None:
                out.bad(None, None, _UNSUPPORTED, None)
                return out
        data = storage.read_bytes(fs, obj.path)
    except StorageError as e:
        if not isinstance(e.__cause__, FileNotFoundError):
            raise
        out.bad(None, None, "object vanished: listed, then deleted before it was read", None)
        return out
    if not data:
        out.bad(None, None, "empty object: 0 bytes (an interrupted upload?)", None)
        return out
    if data[:2] == _GZIP_MAGIC:
        # Sniffed rather than trusted to the suffix: "x.jsonl" that is gzipped still reads.
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            out.bad(None, None, f"not a valid gzip stream: {e}", data)
            return out
    fmt = config.input_format
    if fmt == "auto":
        sniffed = sniff_format(data[:_SNIFF_BYTES], _without_gz(obj.relpath))
        mismatch = describe_mismatch(_without_gz(obj.relpath), sniffed)
        if mismatch is not None:
            out.bad(None, None, mismatch, data if sniffed in _TEXT_FORMATS else data[:64])
            return out
        if sniffed is None:
            out.bad(None, None, _UNSUPPORTED, None)
            return out
        fmt = sniffed
    try:
        _READERS[fmt](data, out)
        return out
    except ExtractionError as e:
        whole = _Collector(obj, config)
        whole.bad(_file_doc_id(fmt, obj), e.part, e.reason, data if fmt in _TEXT_FORMATS else None)
        return whole
    except Exception as e:  # noqa: BLE001
        # A reader bug or an input no rule above foresaw must not fail the batch and take its
        # other objects with it: the object is kept as one quarantine row that says why.
        logger.warning("could not read %s: %s: %s", obj.uri, type(e).__name__, e)
        whole = _Collector(obj, config)
        whole.bad(None, None, f"could not be read: {describe_error(e)}", data if fmt in _TEXT_FORMATS else data[:64])
        return whole


_UNSUPPORTED = (
    "unsupported file type: neither its name nor its content names a format nerflow reads "
    "(JSONL, Parquet, text, PDF, HTML, DOCX, XLSX, PPTX, ODT, ODS, ODP, Markdown, e-mail, mbox; optionally "
    "gzipped)"
)

# Formats whose bytes make a readable quarantine excerpt.
_TEXT_FORMATS = frozenset({"jsonl", "text", "html", "markdown", "email", "mbox"})


def _file_doc_id(fmt: str, obj: StoredObject) -> str | None:
    """The id a file that is one document would have had (None for files of records)."""
    if fmt in ("jsonl", "parquet", "mbox"):
        return None
    return text_doc_id(obj.relpath) if fmt == "text" else obj.relpath


def _without_gz(relpath: str) -> str:
    return relpath[:-3] if relpath.lower().endswith(".gz") else relpath


def _gunzipped_head(head: bytes) -> bytes:
    if head[:2] != _GZIP_MAGIC:
        return head
    try:
        return zlib.decompressobj(wbits=31).decompress(head, _SNIFF_BYTES)
    except zlib.error:
        return head


class _Collector:
    """Column lists of one object's records and quarantine rows."""

    def __init__(self, obj: StoredObject, config: ReadConfig) -> None:
        self.obj = obj
        self.config = config
        self.fields = config.fields
        self.rows: dict[str, list] = {name: [] for name in RECORD_SCHEMA}
        self.quarantine: dict[str, list] = {name: [] for name in _BAD_RECORD_SCHEMA}
        self.segments: dict[str, list] = {name: [] for name in SEGMENT_SCHEMA}

    def add(
        self,
        doc_id: str | None,
        text: str,
        lang: Any,
        metadata: Any,
        record: int | None,
        raw: bytes | str | None = None,
        info: DocumentInfo = _RECORD_INFO,
    ) -> bool:
        """Add a document; False when it was quarantined instead."""
        if len(text) > self.config.max_document_chars:
            self.bad(
                doc_id,
                record,
                f"document too long: {len(text):,} characters, more than max_document_chars "
                f"({self.config.max_document_chars:,})",
                text[: self.config.excerpt_chars],
            )
            return False
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
                return False
        self.rows["doc_id"].append(doc_id if doc_id is not None else self.default_id(record))
        self.rows["text"].append(text)
        self.rows["lang"].append(lang)
        self.rows["metadata"].append(metadata)
        self.rows["source_uri"].append(self.obj.uri)
        self.rows["record"].append(record)
        for name in FILE_INFO_SCHEMA:
            value = getattr(info, name)
            # A title or language is the file's own text: it may hold lone surrogates.
            self.rows[name].append(_storable(value) if isinstance(value, str) else value)
        return True

    def add_extracted(self, doc: ExtractedDocument, doc_id: str, *, record: int | None = None) -> None:
        """Add a document a file reader extracted, with its segments."""
        if not self.add(doc_id, doc.text, None, None, record, doc.text, info=doc.info):
            return
        seg = self.segments
        for i, s in enumerate(doc.segments):
            seg["doc_id"].append(doc_id)
            seg["source_uri"].append(self.obj.uri)
            seg["record"].append(record)
            seg["segment"].append(i)
            seg["start"].append(s.start)
            seg["end"].append(s.end)
            seg["kind"].append(s.kind)
            seg["page"].append(s.page)
            seg["block"].append(_storable(s.block))
            box = s.box or (None, None, None, None)
            for name, value in zip(("left", "bottom", "right", "top"), box):
                seg[name].append(value)
            size = s.page_size or (None, None)
            seg["page_width"].append(size[0])
            seg["page_height"].append(size[1])
            seg["char_boxes"].append(s.char_boxes.reshape(-1) if s.char_boxes is not None else None)

    def segment_frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.segments, schema=SEGMENT_SCHEMA)

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

    def file_id(self) -> str:
        """The id of a document that is a whole file: its path (``reports/q3.pdf``), so
        that ``q3.pdf`` and ``q3.docx`` beside it stay two documents."""
        return _file_doc_id("pdf", self.obj) or self.obj.relpath

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
    info = _JSONL_INFO
    bom = bom_encoding(data)
    if bom is not None and bom != "utf-8":
        # PowerShell writes UTF-16 with a byte-order mark by default: the whole file is that
        # encoding, so it is decoded whole and read as the UTF-8 it stands for.
        decoded_file = decode_text(data)
        data = decoded_file.text.encode("utf-8")
        info = DocumentInfo(format="jsonl", encoding=decoded_file.encoding, encoding_confidence=1.0)
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
            out.add(doc_id, text, value.get(f.lang), value.get(f.metadata), number, decoded, info=info)


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
            out.add(doc_id, texts[row], _id_string(langs[row]), metas[row], row + 1, info=_PARQUET_INFO)


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
    out.add_extracted(extract_text(data), text_doc_id(out.obj.relpath))


def _read_file(extract: Callable[[bytes], ExtractedDocument]) -> Callable[[bytes, _Collector], None]:
    def read(data: bytes, out: _Collector) -> None:
        out.add_extracted(extract(data), out.file_id())

    return read


def _read_pdf(data: bytes, out: _Collector) -> None:
    out.add_extracted(read_pdf(data, page_time_limit_s=out.config.pdf_page_time_limit_s), out.file_id())


def _read_html(data: bytes, out: _Collector) -> None:
    out.add_extracted(extract_html(data, all_text=out.config.html_text == "all"), out.file_id())


def _read_markdown(data: bytes, out: _Collector) -> None:
    decoded = decode_text(data)
    doc = extract_markdown(decoded.text)
    info = dataclasses.replace(doc.info, encoding=decoded.encoding, encoding_confidence=decoded.confidence)
    out.add_extracted(dataclasses.replace(doc, info=info), out.file_id())


def _read_ole(data: bytes, out: _Collector) -> None:
    # An OLE compound file is an encrypted Office file or a legacy binary one (.doc, .xls,
    # .ppt): none holds text nerflow can read, and the reason says which it is.
    raise ExtractionError(ole_reason(data))


def _read_mbox(data: bytes, out: _Collector) -> None:
    for n, message in enumerate(extract_mbox(data), start=1):
        if isinstance(message, ExtractionError):
            out.bad(None, message.part or n, message.reason, None)
        else:
            out.add_extracted(message, f"{out.obj.relpath}#{message.part or n}", record=message.part or n)


_READERS: dict[str, Callable[[bytes, _Collector], None]] = {
    "jsonl": _read_jsonl,
    "parquet": _read_parquet,
    "text": _read_text,
    "pdf": _read_pdf,
    "html": _read_html,
    "docx": _read_file(extract_docx),
    "xlsx": _read_file(extract_xlsx),
    "pptx": _read_file(extract_pptx),
    "odt": _read_file(extract_opendocument),
    "ods": _read_file(extract_opendocument),
    "odp": _read_file(extract_opendocument),
    "ole": _read_ole,
    "markdown": _read_markdown,
    "email": _read_file(extract_email),
    "mbox": _read_mbox,
}
