"""Input formats, and what a file name says about one.

A name is a hint: with ``input_format="auto"`` the reader decides by content (magic bytes,
then sniffing: :mod:`nerflow.etl.extraction.sniffing`), and the suffix only breaks ties
(Markdown looks like text) or, when it names a binary format the bytes are not, becomes the
quarantine reason. ``input_format`` set to a format forces that reader.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["FORMATS", "OPENDOCUMENT_MIMETYPES", "SUFFIXES", "InputFormat", "detect_format", "strip_suffix"]

InputFormat = Literal[
    "auto",
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
    "mbox",
]
"""``input_format`` values: ``"auto"`` decides by content and name, the others force one reader."""

# The one list of formats: the flow's parameters take the type, the stages check the tuple.
FORMATS: tuple[str, ...] = get_args(InputFormat)

# Longest suffix first: ".jsonl.gz" must win over ".gz".
SUFFIXES: tuple[tuple[str, str], ...] = (
    (".jsonl.gz", "jsonl"),
    (".ndjson.gz", "jsonl"),
    (".txt.gz", "text"),
    (".html.gz", "html"),
    (".jsonl", "jsonl"),
    (".ndjson", "jsonl"),
    (".parquet", "parquet"),
    (".pq", "parquet"),
    (".txt", "text"),
    (".text", "text"),
    (".pdf", "pdf"),
    (".html", "html"),
    (".htm", "html"),
    (".xhtml", "html"),
    (".docx", "docx"),
    (".xlsx", "xlsx"),
    (".xlsm", "xlsx"),
    (".pptx", "pptx"),
    (".odt", "odt"),
    (".ott", "odt"),
    (".ods", "ods"),
    (".ots", "ods"),
    (".odp", "odp"),
    (".otp", "odp"),
    (".md", "markdown"),
    (".markdown", "markdown"),
    (".eml", "email"),
    (".mbox", "mbox"),
)
"""``(suffix, format)`` pairs, lower case, the longest first: the one map of names to formats
(the sniffer's tie-breaks use it too)."""


OPENDOCUMENT_MIMETYPES: dict[str, str] = {
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.text-template": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.spreadsheet-template": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
    "application/vnd.oasis.opendocument.presentation-template": "odp",
}
"""An OpenDocument file's ``mimetype`` member → its format (the sniffer reads it from the
zip's first member, the reader from the archive)."""


def detect_format(relpath: str, input_format: str = "auto") -> str | None:
    """The format to read an object with by its name: ``input_format`` unless it is
    ``"auto"``, else the one its suffix names, or ``None`` when the suffix names none (the
    content then decides)."""
    if input_format not in FORMATS:
        raise ValueError(f"input_format must be one of {FORMATS}, got {input_format!r}")
    if input_format != "auto":
        return input_format
    lower = relpath.lower()
    for suffix, fmt in SUFFIXES:
        if lower.endswith(suffix):
            return fmt
    return None


def strip_suffix(relpath: str) -> str:
    """``relpath`` without a known format suffix (``news/de/1.txt.gz`` -> ``news/de/1``)."""
    lower = relpath.lower()
    for suffix, _ in SUFFIXES:
        if lower.endswith(suffix):
            return relpath[: -len(suffix)]
    return relpath
