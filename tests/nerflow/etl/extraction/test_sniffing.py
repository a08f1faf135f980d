"""Format sniffing: content decides before the name, and a name that claims a binary format
the content is not gets a reason."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nerflow.etl.extraction.sniffing import SUFFIX_FORMATS, describe_mismatch, sniff_format
from tests import samples_text as samples
from tests.samples_office import contacts_ods, contacts_xlsx, report_docx, report_odt, slides_odp, slides_pptx

_HTML = b"<!DOCTYPE html>\n<html><body><p>Anna Berg of ACME</p></body></html>"
_PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 200
_DOCX = b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 22 + b"[Content_Types].xml" + b"\x00" * 40 + b"word/document.xml"


def _parquet() -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"id": ["1"], "text": ["Anna"]}), out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("head", "name", "expected"),
    [
        (_PDF, "scan.txt", "pdf"),
        (b"\r\n" + _PDF, "scan", "pdf"),
        (_parquet()[:4096], "data.jsonl", "parquet"),
        (_DOCX, "letter.bin", "docx"),
        (contacts_xlsx()[:4096], "contacts.bin", "xlsx"),
        (slides_pptx()[:4096], "slides", "pptx"),
        # The content names the format, whatever the name says.
        (slides_pptx()[:4096], "slides.docx", "pptx"),
        (report_docx()[:4096], "report.xlsx", "docx"),
        (_OLE, "legacy.xls", "ole"),
        (report_odt(), "report.bin", "odt"),
        (contacts_ods(), "contacts.xlsx", "ods"),
        (slides_odp(), "slides", "odp"),
        (b"PK\x03\x04" + b"\x00" * 60 + b"photos/a.jpg", "archive.txt", None),
        (_OLE, "letter.docx", "ole"),
        (_HTML, "page.txt", "html"),
        (b"\xef\xbb\xbf  <HTML lang='de'>", "x.md", "html"),
        (b"<?xml version='1.0'?>\n<!-- x -->\n<html xmlns='http://www.w3.org/1999/xhtml'>", "x", "html"),
        (samples.plain_email(), "mail.txt", "email"),
        (samples.mbox_of(2), "archive.txt", "mbox"),
        (samples.utf16_jsonl(), "export.txt", "jsonl"),
        (samples.JAPANESE_TEXT.encode("utf-32"), "x.txt", "text"),
        (b'\n{"id": 1, "text": "Anna"}\n', "records.txt", "jsonl"),
        (b"{\\rtf1\\ansi Anna}", "letter.txt", "text"),
        (b"{not json at all}\nsecond line\n", "notes.txt", "text"),
        (b"# Title\n\nSome *text*.", "readme.md", "markdown"),
        (b"# Title\n\nSome *text*.", "readme.markdown", "markdown"),
        (b"Just words.", "notes.text", "text"),
        (b"<p>fragment</p>", "frag.htm", "html"),
        (b"Hello", "msg.eml", "email"),
        (b"Hello", "box.mbox", "mbox"),
        (b"Hello", "records.ndjson", "jsonl"),
        (samples.cp1251_text(), "notes", "text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image.png", None),
        (_HTML, "report.pdf", "html"),
        (b"Just words.", "report.pdf", None),
        (b"Just words.", "book.docx", None),
        (b"Just words.", "data.jsonl.gz", "jsonl"),
    ],
)
def test_content_first_then_suffix(head: bytes, name: str, expected: str | None) -> None:
    assert sniff_format(head, name) == expected


def test_describe_mismatch() -> None:
    assert describe_mismatch("report.pdf", sniff_format(_HTML, "report.pdf")) == (
        "content is not a PDF: the name says .pdf but the bytes look like html"
    )
    assert describe_mismatch("Report.PDF", None) == (
        "content is not a PDF: the name says .pdf but the bytes are of no format nerflow reads"
    )
    assert describe_mismatch("data.parquet", "jsonl") == (
        "content is not Parquet: the name says .parquet but the bytes look like jsonl"
    )
    assert describe_mismatch("report.pdf", "pdf") is None
    assert describe_mismatch("scan.txt", "pdf") is None  # .txt names no binary format
    assert describe_mismatch("letter.docx", "ole") is None  # the DOCX reader says which
    assert describe_mismatch("contacts.xlsx", "ole") is None
    assert describe_mismatch("contacts.xlsx", "text") == (
        "content is not an XLSX: the name says .xlsx but the bytes look like text"
    )
    assert describe_mismatch("slides.pptx", "docx") == (
        "content is not a PPTX: the name says .pptx but the bytes look like docx"
    )


def test_suffix_table() -> None:
    assert SUFFIX_FORMATS[".ndjson"] == "jsonl"
    assert SUFFIX_FORMATS[".eml"] == "email"
    assert all(suffix.startswith(".") and suffix == suffix.lower() for suffix in SUFFIX_FORMATS)


def test_a_video_whose_first_bytes_have_nuls_like_utf32_is_not_text() -> None:
    # MP4 starts 00 00 00 18 "ftyp": one UTF-32 BE code unit, then binary.
    assert sniff_format(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4, "clip.mp4") is None
