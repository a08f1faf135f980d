"""Which reader an object needs, decided from its first bytes before its name.

Names lie: a PDF saved as ``scan.txt``, an HTML error page a crawler stored as
``report.pdf``, a ``.txt`` export that is really an e-mail. Reading by suffix alone turns the
first into garbage text and the second into a confusing "broken PDF". So the content decides
first (magic bytes, then the first characters of text), the suffix only where content is
silent (Markdown and plain text look alike; an HTML fragment has no ``<html>``), and a suffix
that names a binary format the bytes are not is reported as such (:func:`describe_mismatch`).

The caller gunzips before sniffing; ``head`` is the first few KB of the object as read.
"""

from __future__ import annotations

import codecs
import json
import re

from nerflow.etl.formats import FORMATS, OPENDOCUMENT_MIMETYPES, SUFFIXES

__all__ = ["SNIFFED_FORMATS", "SUFFIX_FORMATS", "describe_mismatch", "sniff_format"]

SNIFFED_FORMATS = (*(fmt for fmt in FORMATS if fmt != "auto"), "ole")
"""What :func:`sniff_format` returns (or None). ``"ole"`` is an OLE compound file: an
encrypted Office file or a legacy ``.doc``, ``.xls`` or ``.ppt``, refused with the reason."""

SUFFIX_FORMATS: dict[str, str] = {
    suffix: fmt for suffix, fmt in SUFFIXES if suffix.count(".") == 1 and not suffix.endswith(".gz")
}
"""Suffix (lower case, with the dot) → the format it names."""

# Formats with magic bytes: a suffix naming one is a claim about the content, checked by it.
_BINARY_FORMATS = {
    "pdf": "a PDF",
    "docx": "a DOCX",
    "xlsx": "an XLSX",
    "pptx": "a PPTX",
    "odt": "an ODT",
    "ods": "an ODS",
    "odp": "an ODP",
    "parquet": "Parquet",
}
# Office Open XML formats, each told by the folder of its main part in the zip.
_OOXML_FOLDERS = {"docx": b"word/", "xlsx": b"xl/", "pptx": b"ppt/"}

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

_HTML_START = re.compile(r"<(?:!doctype\s+html|html|head|body)[\s>/]", re.IGNORECASE)
# An XML declaration and comments may precede an (X)HTML document's first tag.
_HTML_PREAMBLE = re.compile(r"(?:<\?xml[^>]*\?>|<!--.*?-->|\s)*", re.DOTALL)
_HEADER_LINE = re.compile(r"^([!-9;-~]+):[ \t]?(.*)$")
_MAIL_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "received",
        "return-path",
        "delivered-to",
        "reply-to",
        "in-reply-to",
        "references",
    }
)
# Control bytes other than tab, line breaks, form feed and ESC (ISO-2022-JP): text has almost
# none; binary formats without NULs in their first KB still have plenty.
_CONTROL_BYTES = re.compile(rb"[\x01-\x08\x0e-\x1a\x1c-\x1f\x7f]")


def sniff_format(head: bytes, name: str) -> str | None:
    """The format of an object whose first bytes are ``head`` and whose name is ``name``:
    one of :data:`SNIFFED_FORMATS`, or None for content no reader takes (an image, an
    archive, a ``.pdf`` that is no PDF)."""
    suffix_format = _suffix_format(name)
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(_ZIP_MAGIC):
        return _office_format(head, suffix_format)
    if head.startswith(_OLE_MAGIC):
        return "ole"
    text = _text_view(head)
    if text is not None:
        by_content = _sniff_text(text.lstrip("\ufeff \t\r\n\f\v"))
        if by_content is not None:
            return by_content
    if suffix_format is not None:
        # A binary format's suffix is a claim the magic bytes above did not confirm.
        return None if suffix_format in _BINARY_FORMATS else suffix_format
    return "text" if text is not None else None


def describe_mismatch(name: str, sniffed: str | None) -> str | None:
    """Why an object cannot be read as its suffix says, when the suffix names a binary format
    (PDF, an Office or OpenDocument format, Parquet) and the content is another or none; None when there is no mismatch.

    An OLE file named ``.docx``, ``.xlsx`` or ``.pptx`` is no mismatch here: its reader tells
    an encrypted file from a legacy one and says which.
    """
    claimed = _suffix_format(name)
    if claimed not in _BINARY_FORMATS or sniffed == claimed or (claimed in _OOXML_FOLDERS and sniffed == "ole"):
        return None
    suffix = _suffix(name)
    what = f"look like {sniffed}" if sniffed is not None else "are of no format nerflow reads"
    return f"content is not {_BINARY_FORMATS[claimed]}: the name says {suffix} but the bytes {what}"


def _suffix(name: str) -> str:
    lower = name.lower()
    # Gunzipped by the caller already: "x.jsonl.gz" is a JSONL file.
    lower = lower.removesuffix(".gz")
    dot = lower.rfind(".")
    slash = max(lower.rfind("/"), lower.rfind("\\"))
    return lower[dot:] if dot > slash + 1 else ""


def _suffix_format(name: str) -> str | None:
    return SUFFIX_FORMATS.get(_suffix(name))


def _office_format(head: bytes, suffix_format: str | None) -> str | None:
    """Which Office format a zip is: an OpenDocument file by its ``mimetype`` member, an Office
    Open XML one by the first part names in its head, else by its suffix; None for other zips
    (an archive is no document)."""
    # An OpenDocument file's first member is "mimetype", stored uncompressed: its name and
    # content follow the 30-byte local header ("mimetypeapplication/vnd.oasis...").
    if head[30:38] == b"mimetype":
        kind = head[38:120].split(b"PK", 1)[0].decode("ascii", "replace")
        return OPENDOCUMENT_MIMETYPES.get(kind.strip())
    for fmt, folder in _OOXML_FOLDERS.items():
        if folder in head:
            return fmt
    if suffix_format in _OOXML_FOLDERS:
        return suffix_format
    # Every OOXML package has [Content_Types].xml: read as a DOCX, whose reader says what is missing.
    return "docx" if b"[Content_Types].xml" in head else None


def _text_view(head: bytes) -> str | None:
    """``head`` as text for sniffing, or None when it is binary. Legacy code pages are read as
    Latin-1: only ASCII patterns are looked for, and Latin-1 never fails."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return head[len(bom) :].decode(encoding, errors="ignore")
    unit = _utf16_32_without_bom(head)
    if unit is not None:
        return head.decode(unit, errors="ignore")
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start >= len(head) - 3 and e.reason == "unexpected end of data":
            return head[: e.start].decode("utf-8")  # a character cut by the end of the head
    if len(_CONTROL_BYTES.findall(head)) > max(1, len(head) // 100):
        return None
    return head.decode("latin-1")


def _utf16_32_without_bom(head: bytes) -> str | None:
    """UTF-16/32 of mostly ASCII text by its NUL pattern (PowerShell without BOM, Java)."""
    sample = head[:256]
    if len(sample) < 8:
        return None
    # Every code unit, not just the first: an MP4 starts 00 00 00 18 "ftyp".
    units = [sample[i : i + 4] for i in range(0, len(sample) - 3, 4)]
    if sum(u[1:] == b"\x00\x00\x00" and u[0] != 0 for u in units) >= 0.9 * len(units):
        return "utf-32-le"
    if sum(u[:3] == b"\x00\x00\x00" and u[3] != 0 for u in units) >= 0.9 * len(units):
        return "utf-32-be"
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > len(odd) * 0.6 and even.count(0) < len(even) * 0.1:
        return "utf-16-le"
    if even.count(0) > len(even) * 0.6 and odd.count(0) < len(odd) * 0.1:
        return "utf-16-be"
    return None


def _sniff_text(text: str) -> str | None:
    preamble = _HTML_PREAMBLE.match(text)
    after_preamble = text[preamble.end() :] if preamble else text
    if _HTML_START.match(after_preamble):
        return "html"
    lines = text.splitlines()
    if lines and not text.endswith(("\n", "\r")):
        lines.pop()  # cut by the end of the head: not a whole line to judge
    if text.startswith("From ") and len(lines) > 1 and _HEADER_LINE.match(lines[1]):
        return "mbox"
    if _looks_like_mail_headers(lines):
        return "email"
    if text.startswith("{\\rtf"):
        return None  # RTF: no reader, and not JSON
    if text.startswith("{") and _first_line_is_object(text):
        return "jsonl"
    return None


def _looks_like_mail_headers(lines: list[str]) -> bool:
    """Whether the text starts with RFC 5322 header lines naming two or more mail headers."""
    known: set[str] = set()
    for line in lines[:60]:
        if not line:
            break
        if line[0] in " \t":
            continue  # a folded header's continuation
        match = _HEADER_LINE.match(line)
        if match is None:
            return False
        if match.group(1).lower() in _MAIL_HEADERS:
            known.add(match.group(1).lower())
    return len(known) >= 2


def _first_line_is_object(text: str) -> bool:
    end = text.find("\n")
    if end < 0:
        return True  # the first line runs past the head: trust its "{"
    try:
        return isinstance(json.loads(text[:end]), dict)
    except ValueError:
        return False
