"""PDF reader: the text layer of a PDF, line by line, with every character's box.

pdfium (through pypdfium2) reads the text layer as the viewer lays it out, which keeps the
reading order of ordinary documents and knows where each character sits on its page. The
boxes are what makes PDF entities useful downstream: a reviewer sees the name highlighted on
the page, so each line keeps its characters' boxes and :func:`entity_boxes` cuts an entity's
boxes out of them.

A text line with a gap much wider than a space (a table row, a form's label and value, a
running header's left and right parts) is cut at the gap into ``"line_part"`` segments: the
model reads each part apart (``RUNNING_TEXT_KINDS``), where a table row read as one line ran
its names together.

Pages are read one at a time and their pdfium objects closed before the next, so native
memory stays flat however many pages a file has; only the extracted text and boxes grow.
A file that cannot be read raises :class:`ExtractionError` with the quarantine reason; there
is no OCR, so a scan without a text layer is refused rather than stored as an empty document.
"""

from __future__ import annotations

import bisect
import ctypes
import re
import threading
from collections.abc import Callable, Sequence

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from nerflow.etl.extraction.document import (
    DocumentInfo,
    ExtractedDocument,
    ExtractionError,
    Segment,
    TextBuilder,
    _union,
)

__all__ = ["entity_boxes", "extract_pdf"]

# pdfium is not thread-safe (its error code is process state), and the flow reads batches on
# threads: one PDF at a time per process.
_PDFIUM_LOCK = threading.Lock()

# Every character the normal form turns into a line break, so a line segment never holds one.
_LINE = re.compile(r"[^\r\n\x0b\x0c\x1c-\x1f\x85\u2028\u2029]+")

_ERROR_NAMES = {
    pdfium_c.FPDF_ERR_UNKNOWN: "unknown error",
    pdfium_c.FPDF_ERR_FILE: "file access error",
    pdfium_c.FPDF_ERR_FORMAT: "data format error",
    pdfium_c.FPDF_ERR_PASSWORD: "incorrect password",
    pdfium_c.FPDF_ERR_SECURITY: "unsupported security scheme",
    pdfium_c.FPDF_ERR_PAGE: "page not found or content error",
}


def extract_pdf(data: bytes, progress: Callable[[int, int], None] | None = None) -> ExtractedDocument:
    """The text of a PDF: one ``"line"`` segment per text line, with its page, the page's
    size and its characters' boxes (PDF points, origin at the page's lower left corner).

    Lines of a page are joined by ``"\\n"``, pages by ``"\\n\\n"``; pages without text add
    nothing. Raises :class:`ExtractionError` for an encrypted, unreadable or empty file, a
    page that does not load (``page`` set), or a file without any text.

    ``progress(pages_read, page_count)`` is called once the file is open (0 pages read) and
    after each page: what a caller that watches the time per page needs
    (``nerflow.etl.extraction.pdf_process``).
    """
    with _PDFIUM_LOCK:
        return _extract(data, progress)


def _extract(data: bytes, progress: Callable[[int, int], None] | None) -> ExtractedDocument:
    pdf = _open(data)
    try:
        page_count = len(pdf)
        if page_count == 0:
            raise ExtractionError("PDF with no pages")
        if progress is not None:
            progress(0, page_count)
        builder = TextBuilder()
        for index in range(page_count):
            _read_page(pdf, index, builder)
            if progress is not None:
                progress(index + 1, page_count)
        if not builder.segments:
            raise ExtractionError("no text layer (scanned); OCR not enabled")
        info = DocumentInfo(
            format="pdf",
            page_count=page_count,
            title=pdf.get_metadata_value("Title").strip() or None,
            declared_lang=_declared_lang(pdf),
        )
    finally:
        pdf.close()
    return builder.build(info)


def entity_boxes(segments: Sequence[Segment], start: int, end: int) -> list[tuple[int, float, float, float, float]]:
    """The boxes of the text range ``[start, end)``: one ``(page, left, bottom, right, top)``
    per segment with character boxes that the range touches, the union of the boxes of its
    characters inside the range. A name broken over two lines gets two boxes. Empty where
    the segments carry no character boxes (formats other than PDF).

    ``segments`` are a document's, ordered by ``start`` as readers produce them.
    """
    boxes: list[tuple[int, float, float, float, float]] = []
    # The last segment starting at or before `start` may already hold it; earlier ones end before.
    first = max(0, bisect.bisect_right(segments, start, key=lambda s: s.start) - 1)
    for segment in segments[first:]:
        if segment.start >= end:
            break
        if segment.end <= start or segment.char_boxes is None or segment.page is None:
            continue
        lo = max(start, segment.start) - segment.start
        hi = min(end, segment.end) - segment.start
        box = _union(segment.char_boxes[lo:hi])
        if box is not None:
            boxes.append((segment.page, *box))
    return boxes


def _open(data: bytes) -> pdfium.PdfDocument:
    # The raw loader, because pypdfium2's own constructor reports a file with no pages as a
    # load failure with whatever error an earlier call left behind.
    handle = pdfium_c.FPDF_LoadMemDocument64(data, len(data), None)
    if not handle:
        code = pdfium_c.FPDF_GetLastError()
        if code == pdfium_c.FPDF_ERR_PASSWORD:
            raise ExtractionError("encrypted PDF: a password is needed to read it")
        if code == pdfium_c.FPDF_ERR_SECURITY:
            raise ExtractionError("encrypted PDF: unsupported security scheme")
        raise ExtractionError(f"not a readable PDF: {_ERROR_NAMES.get(code, f'pdfium error {code}')}")
    # pdfium reads from `data` without copying it; `extract_pdf` holds it until it closes.
    return pdfium.PdfDocument(handle)


def _read_page(pdf: pdfium.PdfDocument, index: int, builder: TextBuilder) -> None:
    page_number = index + 1
    try:
        page = pdf[index]
    except pdfium.PdfiumError as error:
        raise ExtractionError(f"page {page_number} cannot be read: {error}", page=page_number) from error
    try:
        page_size = page.get_size()
        try:
            textpage = page.get_textpage()
        except pdfium.PdfiumError as error:
            raise ExtractionError(f"page {page_number}: no text page: {error}", page=page_number) from error
        try:
            text, boxes = _page_text(textpage)
        finally:
            textpage.close()
    finally:
        page.close()
    separator = "\n\n"
    for match in _LINE.finditer(text):
        parts = _parts(boxes[match.start() : match.end()])
        for a, b in parts:
            segment = builder.add(
                match.group()[a:b],
                kind="line" if len(parts) == 1 else "line_part",
                separator=separator,
                page=page_number,
                page_size=page_size,
                char_boxes=boxes[match.start() + a : match.start() + b],
            )
            if segment is not None:
                separator = "\n"


def _parts(boxes: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of a line's characters between gaps wider than a word space
    could be: wider than the line's tallest glyph (about an em) and three times its middle
    gap. A justified line's widest spaces stay well under an em; a table's columns are
    further apart."""
    visible = np.flatnonzero((boxes[:, 2] > boxes[:, 0]) | (boxes[:, 3] > boxes[:, 1]))
    if len(visible) < 2:
        return [(0, len(boxes))]
    gaps = boxes[visible[1:], 0] - boxes[visible[:-1], 2]
    em = float((boxes[visible, 3] - boxes[visible, 1]).max())
    wide = np.flatnonzero(gaps > max(em, 3 * float(np.median(gaps))))
    if len(wide) == 0:
        return [(0, len(boxes))]
    # A part ends after the visible character before the gap and the next starts at the one after it.
    cuts = [(int(visible[i]) + 1, int(visible[i + 1])) for i in wide]
    starts = [0, *(b for _, b in cuts)]
    ends = [*(a for a, _ in cuts), len(boxes)]
    return list(zip(starts, ends))


def _page_text(textpage: pdfium.PdfTextPage) -> tuple[str, np.ndarray]:
    """The page's text and ``float64[len(text), 4]`` boxes; zeros for a character without
    one (pdfium's generated line breaks)."""
    count = textpage.count_chars()
    if count <= 0:
        return "", np.zeros((0, 4))
    text = textpage.get_text_range()
    if len(text) == count:
        indices: Sequence[int] = range(count)
    else:
        # pdfium inserted or dropped characters, or one is outside UCS-2: rebuild the text
        # from the character list so each character still has its own box.
        text, indices = _text_from_chars(textpage, count)
    boxes = np.zeros((len(text), 4))
    # PdfTextPage.get_charbox's raw call, with its four doubles made once per page rather
    # than per character: a third of the reading time otherwise.
    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    for row, char in enumerate(indices):
        if pdfium_c.FPDFText_GetCharBox(textpage, char, left, right, bottom, top):
            boxes[row] = (left.value, bottom.value, right.value, top.value)
        # else no box: the row stays zero, which `_union` skips
    return text, boxes


def _text_from_chars(textpage: pdfium.PdfTextPage, count: int) -> tuple[str, list[int]]:
    chars: list[str] = []
    indices: list[int] = []
    pending_high: int | None = None
    for char in range(count):
        code = pdfium_c.FPDFText_GetUnicode(textpage, char)
        if 0xD800 <= code <= 0xDBFF:
            pending_high = code
            indices.append(char)
            continue
        if 0xDC00 <= code <= 0xDFFF and pending_high is not None:
            chars.append(chr(0x10000 + ((pending_high - 0xD800) << 10) + (code - 0xDC00)))
            pending_high = None
            continue
        if pending_high is not None:  # a lone high surrogate: drop it and its index
            indices.pop()
            pending_high = None
        if code == 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            continue
        chars.append(chr(code))
        indices.append(char)
    if pending_high is not None:
        indices.pop()
    return "".join(chars), indices


def _declared_lang(pdf: pdfium.PdfDocument) -> str | None:
    """The catalog's ``/Lang``, as written, or None."""
    get_language = getattr(pdfium_c, "FPDFCatalog_GetLanguage", None)
    if get_language is None:  # an older pdfium build without the experimental API
        return None
    size = get_language(pdf, None, 0)  # bytes of UTF-16LE, with the terminating NUL
    if size <= 2:
        return None
    buffer = (ctypes.c_ushort * (size // 2))()
    get_language(pdf, buffer, size)
    lang = bytes(buffer)[: size - 2].decode("utf-16-le", errors="replace").strip()
    return lang or None
