"""OpenDocument files (.odt, .ods, .odp): LibreOffice's and the EU administrations' formats.

One reader for the three: each is a zip whose ``mimetype`` member names the kind and whose
``content.xml`` holds the text, read with lxml (no DTDs, no entities, no network). The archive
is checked first as every Office file is (:mod:`nerflow.etl.extraction.office_archive`); a
password-protected file (its manifest declares encryption) is refused with that reason.

Text is what LibreOffice shows: inline text with its spaces (``text:s``), tabs and line breaks,
fields' shown values, ruby base text without its reading; deleted tracked changes, notes'
citations and comments are not part of a paragraph. ODF collapses runs of white space in the
XML, as HTML does, and so does this reader.

- **Text documents** (``odt``): paragraphs, headings, list items, tables (one segment per cell,
  a covered cell of a merge skipped) and sections in order, a text box after the paragraph it
  is anchored in (in place when it is anchored to the page), then footnotes and endnotes, then
  comments; blocks as in DOCX (``body/p[3]``, ``body/table[1]/tr[2]/tc[1]``,
  ``footnotes/footnote[1]/p[1]``).
- **Spreadsheets** (``ods``): streamed, as XLSX is: text cells (``office:value-type``
  ``string``; numbers, dates and booleans are values, left out) with their reference
  (``'Q3 Sales'!C3``) and comments (``…!C3/comment``). ODF stores a run of identical adjacent
  cells or rows once, with a repeat count; such a run is one segment whose block is the range
  (``Sheet1!A1:C1``), so a repeat count cannot multiply the text.
- **Presentations** (``odp``): slide by slide, the title first, then the other shapes in the
  slide's order (groups opened), tables cell by cell, then the speaker notes; ``page`` is the
  slide and ``page_count`` the number of slides, as for PPTX.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from lxml import etree

from nerflow.etl.extraction.document import DocumentInfo, ExtractedDocument, ExtractionError, TextBuilder
from nerflow.etl.extraction.office_archive import (
    check_office_archive,
    declared_title_and_language,
    iterparse_part,
    parse_part,
    release,
)
from nerflow.etl.extraction.xlsx import cell_reference, quoted_sheet_name
from nerflow.etl.formats import OPENDOCUMENT_MIMETYPES

__all__ = ["extract_opendocument"]

_NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
}


def _q(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{_NS[prefix]}}}{local}"


_P, _H, _LIST, _ITEM, _HEADER = (
    _q("text:p"),
    _q("text:h"),
    _q("text:list"),
    _q("text:list-item"),
    _q("text:list-header"),
)
_S, _TAB, _BREAK = _q("text:s"), _q("text:tab"), _q("text:line-break")
_NOTE, _NOTE_BODY, _ANNOTATION = _q("text:note"), _q("text:note-body"), _q("office:annotation")
_TABLE, _ROW, _CELL, _COVERED = (
    _q("table:table"),
    _q("table:table-row"),
    _q("table:table-cell"),
    _q("table:covered-table-cell"),
)
_ROW_CONTAINERS = frozenset({_q("table:table-header-rows"), _q("table:table-rows"), _q("table:table-row-group")})
_FRAME, _TEXT_BOX, _GROUP = _q("draw:frame"), _q("draw:text-box"), _q("draw:g")
_PAGE, _NOTES = _q("draw:page"), _q("presentation:notes")
_SPREADSHEET = _q("office:spreadsheet")
_CLASS = _q("presentation:class")
# Containers of paragraphs in a text document, read in place as the body is.
_SECTIONS = frozenset(
    {
        _q("text:section"),
        _q("text:index-body"),
        _q("text:table-of-content"),
        _q("text:alphabetical-index"),
        _q("text:illustration-index"),
        _q("text:table-index"),
        _q("text:object-index"),
        _q("text:user-index"),
        _q("text:bibliography"),
    }
)
# Inline elements that are not the paragraph's text: comments, notes (read on their own),
# frames (text boxes, read after the paragraph; images), ruby readings, deleted changes.
_NOT_INLINE = frozenset(
    {
        _ANNOTATION,
        _q("office:annotation-end"),
        _NOTE,
        _FRAME,
        _q("draw:a"),
        _q("text:ruby-text"),
        _q("text:tracked-changes"),
    }
)
_WHITE_SPACE = re.compile(r"[ \t\r\n]+")
_TITLES = frozenset({"title"})


def extract_opendocument(data: bytes) -> ExtractedDocument:
    """Read an OpenDocument text document, spreadsheet or presentation.

    Returns:
        The document (see the module's description); ``info.format`` is ``"odt"``, ``"ods"``
        or ``"odp"``, ``info.title`` and ``info.declared_lang`` come from ``meta.xml``.

    Raises:
        ExtractionError: Not a zip, a zip bomb, a zip without ``content.xml`` or with a
            ``mimetype`` of no OpenDocument kind nerflow reads, a password-protected file, or
            malformed XML.
    """
    check_office_archive(data, main_part="content.xml", what="an OpenDocument file")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            fmt = _format(archive)
            builder = TextBuilder()
            slides = None
            if fmt == "ods":
                _read_spreadsheet(archive, builder)
            else:
                body = parse_part(archive, "content.xml").find(_q("office:body"))
                if body is None:
                    raise ExtractionError("not a readable OpenDocument file: content.xml has no office:body")
                if fmt == "odt":
                    _read_text_document(body.find(_q("office:text")), builder)
                else:
                    slides = _read_presentation(body.find(_q("office:presentation")), builder)
            title, lang = _meta(archive)
    except ExtractionError:
        raise
    # lxml, zipfile and int() raise many kinds of error on a malformed part; each means the
    # same to the pipeline.
    except Exception as exc:
        raise ExtractionError(f"not a readable OpenDocument file: {type(exc).__name__}: {exc}") from exc
    return builder.build(DocumentInfo(format=fmt, page_count=slides, title=title, declared_lang=lang))


def _format(archive: zipfile.ZipFile) -> str:
    if "META-INF/manifest.xml" in archive.NameToInfo and b"encryption-data" in archive.read("META-INF/manifest.xml"):
        raise ExtractionError("password-protected OpenDocument file: encrypted, no text can be read")
    mimetype = archive.read("mimetype").decode("ascii", "replace").strip() if "mimetype" in archive.NameToInfo else ""
    fmt = OPENDOCUMENT_MIMETYPES.get(mimetype)
    if fmt is None:
        raise ExtractionError(f"not an OpenDocument file nerflow reads: mimetype {mimetype or 'missing'!r}")
    return fmt


def _meta(archive: zipfile.ZipFile) -> tuple[str | None, str | None]:
    if "meta.xml" not in archive.NameToInfo:
        return None, None
    return declared_title_and_language(parse_part(archive, "meta.xml"))


def _inline_text(paragraph: etree._Element) -> str:
    """A paragraph's text as shown: white space collapsed, ``text:s``/tab/line break kept."""
    parts: list[str] = []

    def walk(element: etree._Element) -> None:
        if element.text:
            parts.append(_WHITE_SPACE.sub(" ", element.text))
        for child in element:
            if child.tag == _S:
                parts.append(" " * int(child.get(_q("text:c"), "1")))
            elif child.tag == _TAB:
                parts.append("\t")
            elif child.tag == _BREAK:
                parts.append("\n")
            elif child.tag not in _NOT_INLINE and isinstance(child.tag, str):
                walk(child)
            if child.tail:
                parts.append(_WHITE_SPACE.sub(" ", child.tail))

    walk(paragraph)
    return "".join(parts)


def _lines(container: etree._Element) -> str:
    """The paragraphs and headings right under ``container`` (a cell, a comment), one per line."""
    return "\n".join(_inline_text(p) for p in container if p.tag in (_P, _H))


def _own(element: etree._Element, paragraph: etree._Element) -> bool:
    """Whether ``element`` sits in ``paragraph`` itself, not in a paragraph nested in it (a
    text box's, a note's)."""
    for ancestor in element.iterancestors():
        if ancestor is paragraph:
            return True
        if ancestor.tag in (_P, _H):
            return False
    return False


@dataclass
class _Later:
    """Notes and comments met in the body, read after it, in order."""

    notes: dict[str, list[etree._Element]] = field(default_factory=lambda: {"footnote": [], "endnote": []})
    comments: list[etree._Element] = field(default_factory=list)


def _read_text_document(text: etree._Element | None, builder: TextBuilder) -> None:
    if text is None:
        raise ExtractionError("not a readable OpenDocument file: a text document without office:text")
    later = _Later()
    _read_blocks(text, "body", None, None, builder, later)
    for kind, notes in later.notes.items():
        for n, note in enumerate(notes, start=1):
            body = note.find(_NOTE_BODY)
            if body is not None:
                _read_blocks(body, f"{kind}s/{kind}[{n}]", kind, None, builder, later)
    # Comments may hold no further comments; reading them cannot add to the list.
    for n, comment in enumerate(later.comments, start=1):
        _read_blocks(comment, f"comments/comment[{n}]", "comment", None, builder, _Later())


def _read_blocks(
    container: etree._Element, path: str, kind: str | None, page: int | None, builder: TextBuilder, later: _Later
) -> None:
    """Paragraphs, headings, lists, tables and sections of ``container`` in order. ``kind``
    overrides the blocks' own (everything in a note is ``"footnote"``)."""
    paragraphs = lists = tables = sections = frames = 0
    for child in container:
        if child.tag in (_P, _H):
            paragraphs += 1
            block = f"{path}/p[{paragraphs}]"
            own = kind or ("heading" if child.tag == _H else "paragraph")
            builder.add(_inline_text(child), kind=own, page=page, block=block)
            _read_anchored(child, block, kind, page, builder, later)
        elif child.tag == _LIST:
            lists += 1
            items = [item for item in child if item.tag in (_ITEM, _HEADER)]
            for i, item in enumerate(items, start=1):
                _read_blocks(item, f"{path}/list[{lists}]/item[{i}]", kind or "list_item", page, builder, later)
        elif child.tag == _TABLE:
            tables += 1
            _read_table(child, f"{path}/table[{tables}]", kind, page, builder, later)
        elif child.tag in _SECTIONS:
            sections += 1
            _read_blocks(child, f"{path}/section[{sections}]", kind, page, builder, later)
        elif child.tag == _FRAME:
            # A frame anchored to the page rather than to a paragraph: its text boxes in place.
            frames += 1
            for n, box in enumerate(child.iter(_TEXT_BOX), start=1):
                _read_blocks(box, f"{path}/frame[{frames}]/text_box[{n}]", kind or "text_box", page, builder, later)


def _read_anchored(
    paragraph: etree._Element, path: str, kind: str | None, page: int | None, builder: TextBuilder, later: _Later
) -> None:
    """What a paragraph anchors: text boxes, read now, notes and comments, kept for later."""
    for note in paragraph.iter(_NOTE):
        if _own(note, paragraph):
            later.notes.get(note.get(_q("text:note-class"), "footnote"), later.notes["footnote"]).append(note)
    for comment in paragraph.iter(_ANNOTATION):
        if _own(comment, paragraph):
            later.comments.append(comment)
    boxes = [box for frame in paragraph.iter(_FRAME) if _own(frame, paragraph) for box in frame.iter(_TEXT_BOX)]
    for n, box in enumerate(boxes, start=1):
        _read_blocks(box, f"{path}/text_box[{n}]", kind or "text_box", page, builder, later)


def _rows(table: etree._Element) -> Iterator[etree._Element]:
    for child in table:
        if child.tag == _ROW:
            yield child
        elif child.tag in _ROW_CONTAINERS:
            yield from _rows(child)


def _read_table(
    table: etree._Element, path: str, kind: str | None, page: int | None, builder: TextBuilder, later: _Later
) -> None:
    for r, row in enumerate(_rows(table), start=1):
        cells = [cell for cell in row if cell.tag in (_CELL, _COVERED)]
        for c, cell in enumerate(cells, start=1):
            if cell.tag == _COVERED:
                continue  # covered by a merged cell, which holds the text
            cell_path = f"{path}/tr[{r}]/tc[{c}]"
            builder.add(_lines(cell), kind=kind or "table_cell", page=page, block=cell_path)
            for n, p in enumerate(p for p in cell if p.tag in (_P, _H)):
                _read_anchored(p, f"{cell_path}/p[{n + 1}]", kind, page, builder, later)
            for n, nested in enumerate((t for t in cell if t.tag == _TABLE), start=1):
                _read_table(nested, f"{cell_path}/table[{n}]", kind, page, builder, later)


def _read_presentation(presentation: etree._Element | None, builder: TextBuilder) -> int:
    if presentation is None:
        raise ExtractionError("not a readable OpenDocument file: a presentation without office:presentation")
    slides = [page for page in presentation if page.tag == _PAGE]
    later = _Later()
    for number, slide in enumerate(slides, start=1):
        shapes = [child for child in slide if child.tag != _NOTES and _is_shape(child)]
        ordered = sorted(enumerate(shapes, start=1), key=lambda item: item[1].get(_CLASS) not in _TITLES)
        _read_shapes(ordered, f"slide[{number}]", number, builder, later)
        notes = slide.find(_NOTES)
        if notes is not None:
            for frame in notes.iter(_FRAME):
                if frame.get(_CLASS) == "notes":
                    for box in frame.iter(_TEXT_BOX):
                        _read_blocks(box, f"slide[{number}]/notes", "notes", number, builder, later)
    return len(slides)


def _is_shape(element: etree._Element) -> bool:
    return isinstance(element.tag, str) and element.tag.startswith(f"{{{_NS['draw']}}}")


def _read_shapes(
    shapes: list[tuple[int, etree._Element]], path: str, slide: int, builder: TextBuilder, later: _Later
) -> None:
    for position, shape in shapes:
        shape_path = f"{path}/shape[{position}]"
        if shape.tag == _GROUP:
            members = [child for child in shape if _is_shape(child)]
            _read_shapes(list(enumerate(members, start=1)), shape_path, slide, builder, later)
            continue
        table = shape.find(_TABLE)
        if table is not None:
            _read_table(table, shape_path, None, slide, builder, later)
            continue
        kind = "title" if shape.get(_CLASS) in _TITLES else "paragraph"
        # A frame holds its text in a text box; other shapes (a rectangle, a custom shape)
        # hold their paragraphs themselves.
        for box in shape.findall(_TEXT_BOX) or [shape]:
            _read_blocks(box, shape_path, kind, slide, builder, later)


def _read_spreadsheet(archive: zipfile.ZipFile, builder: TextBuilder) -> None:
    """Every sheet's text cells, streamed: a row's cells are dropped once read."""
    sheet, row, column, rows_repeated = "", 0, 0, 1
    new_row, spreadsheet = True, False
    for event, element in iterparse_part(archive, "content.xml", ("start", "end")):
        tag = element.tag
        if event == "start":
            if tag == _SPREADSHEET:
                spreadsheet = True
            elif tag == _TABLE:
                sheet, row = quoted_sheet_name(element.get(_q("table:name"), "")), 0
            elif tag == _ROW:
                rows_repeated, column, new_row = int(element.get(_q("table:number-rows-repeated"), "1")), 0, True
            continue
        if tag in (_CELL, _COVERED):
            columns = int(element.get(_q("table:number-columns-repeated"), "1"))
            first = column + 1
            column += columns
            if tag == _CELL:
                reference = _range(sheet, row + 1, first, row + rows_repeated, column)
                text = _cell_text(element)
                if text and builder.add(
                    text, kind="table_cell", separator="\n\n" if new_row else "\n", block=reference
                ):
                    new_row = False
                for comment in element.iter(_ANNOTATION):
                    builder.add(_lines(comment), kind="comment", block=f"{reference}/comment")
            element.clear()
        elif tag == _ROW:
            row += rows_repeated
            release(element)
    if not spreadsheet:
        raise ExtractionError("not a readable OpenDocument file: a spreadsheet without office:spreadsheet")


def _cell_text(cell: etree._Element) -> str | None:
    if cell.get(_q("office:value-type"), "string") != "string":
        return None  # a number, date, percentage, currency, boolean or time: a value, not text
    return _lines(cell) or None


def _range(sheet: str, top: int, left: int, bottom: int, right: int) -> str:
    first = cell_reference(top, left)
    if (top, left) == (bottom, right):
        return f"{sheet}!{first}"
    return f"{sheet}!{first}:{cell_reference(bottom, right)}"
