"""Small PDFs made on the fly with fpdf2, for the PDF reader's tests.

Real-world sample files would be copyrighted, large, or both; these are generated from short
invented news sentences (people, organisations and places that do not exist), so tests can
check exact text and know where each name is. The output is deterministic: the creation
date is fixed, fpdf2 derives the file ID from the content and that date, and RC4 encryption
(unlike AES, which draws random IVs) involves no randomness, so two calls give the same bytes.

Importable as ``tests.samples_pdf`` when the repository root is on ``sys.path``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime

from fpdf import FPDF

from nerflow.etl.extraction import ExtractedDocument

__all__ = [
    "CRASH_ON_PAGE_1",
    "GERMAN_PAGE",
    "ENGLISH_PAGES",
    "HANG_ON_PAGE_2",
    "HANG_OPENING",
    "MISBEHAVING_READER",
    "READER_BUG",
    "REPORT_TITLE",
    "USER_PASSWORD",
    "corrupt_pdf",
    "encrypted_pdf",
    "many_page_text",
    "many_pages_pdf",
    "misbehaving_reader",
    "missing_page_pdf",
    "no_pages_pdf",
    "report_pdf",
    "scanned_pdf",
    "TABLE_ROWS",
    "table_pdf",
    "table_of",
]

FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
REPORT_TITLE = "Quarterly Regional Report"
USER_PASSWORD = "s3cret"

# Each page is a list of lines, written one per `cell` so the line breaks are known exactly.
ENGLISH_PAGES: list[list[str]] = [
    [
        "Marta Okonkwo, chief executive of Helvetor Logistics,",
        "opened a new depot in Port Ellery on Monday.",
        "The depot will employ 140 people, said Daniel",
        "Fairweather, mayor of Port Ellery.",
    ],
    [
        "Brightwater Analytics reported record orders from",
        "customers in Lower Tamsin and Kestrel Bay.",
        "Its founder, Priya Lindqvist, expects growth to slow.",
    ],
]
GERMAN_PAGE: list[str] = [
    "Jürgen Weißmüller, Vorstand der Südharz Energie AG,",
    "eröffnete in Großkötzingen ein neues Büro.",
    "Die Bürgermeisterin Änne Schröder begrüßte die",
    "Entscheidung der Gesellschaft.",
]

_FIXED_DATE = datetime(2026, 1, 1, tzinfo=UTC)


def _new_pdf() -> FPDF:
    pdf = FPDF(unit="pt", format="A4")
    pdf.set_creation_date(_FIXED_DATE)
    pdf.set_auto_page_break(False)
    pdf.add_font("DejaVu", fname=FONT_PATH)
    pdf.set_font("DejaVu", size=12)
    return pdf


def _write_lines(pdf: FPDF, lines: list[str]) -> None:
    pdf.add_page()
    pdf.set_xy(72, 72)
    for line in lines:
        # 1.5 line spacing: at 1.0 an "Ä" reaches into the line above's descenders, and a box
        # around one line would read a character of the other back.
        pdf.cell(h=18, text=line, new_x="LMARGIN", new_y="NEXT")
        pdf.set_x(72)


def report_pdf() -> bytes:
    """Three A4 pages: two English, then one German; title and language in the metadata."""
    pdf = _new_pdf()
    pdf.set_title(REPORT_TITLE)
    pdf.set_lang("en-GB")
    for lines in [*ENGLISH_PAGES, GERMAN_PAGE]:
        _write_lines(pdf, lines)
    return bytes(pdf.output())


TABLE_ROWS: list[tuple[str, ...]] = [
    ("Name", "Organisation", "City"),
    ("Marta Okonkwo", "Helvetor Logistics", "Port Ellery"),
    ("Daniel Fairweather", "Port Ellery Council", "Kestrel Bay"),
]
# Justified on purpose: its stretched spaces must not read as a table's gaps.
TABLE_PROSE = (
    "Marta Okonkwo said the depot in Port Ellery would open in the spring and that Brightwater "
    "Analytics had agreed to supply its planning software for at least five years."
)


def table_of(rows: list[tuple[str, ...]], *, prose: str | None = None, size: float = 12) -> bytes:
    """One landscape A4 page per 30 rows: each row's cells at fixed columns 250 pt apart, as
    a report's table is set, then ``prose`` as a justified paragraph."""
    pdf = _new_pdf()
    pdf.set_font("DejaVu", size=size)
    for first in range(0, max(len(rows), 1), 30):
        pdf.add_page(orientation="L")
        y = 48.0
        for row in rows[first : first + 30]:
            for column, cell in enumerate(row):
                pdf.set_xy(48 + 250 * column, y)
                pdf.cell(h=1.5 * size, text=cell)
            y += 1.5 * size
    if prose:
        pdf.set_xy(48, y + 1.5 * size)
        pdf.multi_cell(w=450, h=1.5 * size, text=prose, align="J")
    return bytes(pdf.output())


def table_pdf() -> bytes:
    """A table of names (a header row and two rows of three cells) above a justified paragraph."""
    return table_of(TABLE_ROWS, prose=TABLE_PROSE)


def scanned_pdf() -> bytes:
    """One page holding only an image (a grey gradient), as a scan without OCR would."""
    from PIL import Image

    image = Image.new("L", (200, 100))
    image.putdata([(x + y) % 256 for y in range(100) for x in range(200)])
    pdf = _new_pdf()
    pdf.add_page()
    pdf.image(image, x=72, y=72, w=400)
    return bytes(pdf.output())


def encrypted_pdf() -> bytes:
    """The report, encrypted (RC4) with user password :data:`USER_PASSWORD`."""
    pdf = _new_pdf()
    pdf.set_encryption(owner_password="owner-" + USER_PASSWORD, user_password=USER_PASSWORD)
    _write_lines(pdf, ENGLISH_PAGES[0])
    return bytes(pdf.output())


def corrupt_pdf() -> bytes:
    """A PDF header followed by a garbled, truncated body: nothing pdfium can recover."""
    body = report_pdf()[9:400]
    garbled = bytes(b ^ 0x5A for b in body)
    return b"%PDF-1.7\n" + garbled


def no_pages_pdf() -> bytes:
    """A well-formed PDF whose page tree is empty (fpdf2 will not write one)."""
    return _handmade_pdf(b"<< /Type /Pages /Kids [] /Count 0 >>")


def missing_page_pdf() -> bytes:
    """A PDF whose page tree counts one page that points at an object that does not exist:
    the file opens, its page does not load."""
    return _handmade_pdf(b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")


def _handmade_pdf(pages: bytes) -> bytes:
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", pages]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def many_page_text(page: int) -> list[str]:
    """The lines of page ``page`` (1-based) of :func:`many_pages_pdf`."""
    return [f"Page {page} of the ledger kept by Ilse Marchetti", f"in Velden for Norrholm Shipping, entry {page * 7}."]


def many_pages_pdf(n: int) -> bytes:
    """``n`` pages of two short lines each (:func:`many_page_text`)."""
    pdf = _new_pdf()
    # Core font: a 2,000-page file builds in seconds instead of subsetting DejaVu per page.
    pdf.set_font("Helvetica", size=12)
    for page in range(1, n + 1):
        _write_lines(pdf, many_page_text(page))
    return bytes(pdf.output())


# A small generated file cannot make pdfium hang or crash on demand, so the tests of the
# child-process reader (nerflow.etl.extraction.pdf_process) name this stand-in: it reads real
# PDFs with the real reader, and misbehaves as pdfium would on a hostile file when the bytes
# are one of these.
HANG_OPENING = b"%PDF-1.7 nerflow test: hangs while opening"
HANG_ON_PAGE_2 = b"%PDF-1.7 nerflow test: hangs on page 2 of 3"
CRASH_ON_PAGE_1 = b"%PDF-1.7 nerflow test: segfaults on page 1 of 2"
READER_BUG = b"%PDF-1.7 nerflow test: the reader raises ValueError"
MISBEHAVING_READER = "tests.samples_pdf:misbehaving_reader"


def misbehaving_reader(data: bytes, progress: Callable[[int, int], None]) -> ExtractedDocument:
    """:func:`~nerflow.etl.extraction.pdf.extract_pdf`, except for the bytes above."""
    if data == HANG_OPENING:
        time.sleep(3600)
    elif data == HANG_ON_PAGE_2:
        progress(0, 3)
        progress(1, 3)
        time.sleep(3600)
    elif data == CRASH_ON_PAGE_1:
        progress(0, 2)
        os.kill(os.getpid(), signal.SIGSEGV)
    elif data == READER_BUG:
        raise ValueError("a reader bug")
    from nerflow.etl.extraction.pdf import extract_pdf

    return extract_pdf(data, progress)
