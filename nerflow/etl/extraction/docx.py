"""Word documents (.docx): headers, body, notes, comments and footers, with python-docx.

Before python-docx opens anything, the archive is checked like every Office file's
(:mod:`nerflow.etl.extraction.office_archive`: zip bombs, encrypted and legacy files).

Reading order is the page's: the headers, then the body's paragraphs and tables as they
appear in the XML (content controls, ``w:sdt``, are opened, since cover pages and tables of
contents live in them), then the footnotes and endnotes (names and sources often sit there),
then reviewers' comments, then the footers. A table is read row by row, one segment per cell
(``w:tc``), so a merged cell is read once: a horizontal merge is one ``w:tc`` spanning grid
columns, and the continuation cells of a vertical merge hold nothing of their own.

A paragraph's text is that of all its runs, in the XML's order, as Word shows the document
with its tracked changes accepted: python-docx's ``Paragraph.text`` reads only the runs that
are direct children of the paragraph or of a hyperlink, and so drops tracked insertions
(``w:ins``), inline content controls (form fields, ``w:sdt``), simple fields (``w:fldSimple``),
smart tags and moved text. Deleted and moved-away text (``w:del``, ``w:moveFrom``), field
codes (``w:instrText``) and ruby pronunciation guides (``w:rt``) are not text. A text box
anchored in a paragraph follows it as segments of its own (``body/p[3]/text_box[1]/p[1]``),
read once: Word stores a copy of each box for older readers (``mc:Fallback``), which is
skipped.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import docx
from docx.document import Document
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.oxml import parse_xml
from docx.oxml.ns import qn
from docx.oxml.table import CT_Tbl, CT_Tc
from docx.oxml.text.paragraph import CT_P
from docx.section import _Footer, _Header
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph
from lxml import etree

from nerflow.etl.extraction.document import DocumentInfo, ExtractedDocument, ExtractionError, TextBuilder
from nerflow.etl.extraction.office_archive import check_office_archive

__all__ = ["extract_docx"]

_HEADING = re.compile(r"heading \d+", re.IGNORECASE)
_SDT = qn("w:sdt")
_SDT_CONTENT = qn("w:sdtContent")
_NOTE_PARTS = {"footnote": RT.FOOTNOTES, "endnote": RT.ENDNOTES}
_P, _R, _TEXT_BOX = qn("w:p"), qn("w:r"), qn("w:txbxContent")
# A run under one of these is not text of the document as shown: deleted or moved-away text,
# the copy of a text box kept for readers without drawing support, or a ruby's pronunciation
# guide (shown above its base text, "とうきょう" over "東京", not part of the sentence).
_NOT_SHOWN = frozenset(
    {
        qn("w:del"),
        qn("w:moveFrom"),
        qn("w:rt"),
        "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback",
    }
)


def extract_docx(data: bytes) -> ExtractedDocument:
    """Read a Word document.

    Returns:
        The document. Segments' ``block`` is ``header[1]/p[1]``, ``body/p[12]``,
        ``body/table[1]/tr[2]/tc[3]``, ``body/p[3]/text_box[1]/p[1]``,
        ``footnotes/footnote[2]/p[1]``, ``endnotes/endnote[1]/p[1]``,
        ``comments/comment[1]/p[1]`` or ``footer[1]/p[1]`` (1-based; ``p`` and ``table``
        counted separately within their container, ``tc`` being the cell's position among
        its row's ``w:tc`` elements); kinds are ``"header"``, ``"title"``, ``"heading"``,
        ``"paragraph"``, ``"table_cell"``, ``"text_box"``, ``"footnote"``, ``"endnote"``,
        ``"comment"``, ``"footer"``. ``info.title`` and ``info.declared_lang`` come from the
        core properties.

    Raises:
        ExtractionError: Not a zip, a zip bomb, a zip without ``word/document.xml``, a
            password-protected or legacy (.doc) Office file, or a DOCX python-docx cannot
            read.
    """
    check_office_archive(data, main_part="word/document.xml", what="a DOCX")
    try:
        document = docx.Document(io.BytesIO(data))
        builder = TextBuilder()
        _read(document, builder)
        props = document.core_properties
        info = DocumentInfo(
            format="docx",
            title=(props.title or "").strip() or None,
            declared_lang=(props.language or "").strip() or None,
        )
    # python-docx and lxml raise many kinds of error on a malformed part (KeyError,
    # XMLSyntaxError, ValueError, AttributeError); each means the same to the pipeline.
    except Exception as exc:
        raise ExtractionError(f"not a readable DOCX: {type(exc).__name__}: {exc}") from exc
    return builder.build(info)


def _read(document: Document, builder: TextBuilder) -> None:
    headers = list(_distinct(document, header=True))
    for n, header in enumerate(headers, start=1):
        _read_container(header._element, header, f"header[{n}]", "header", builder)
    body = document.element.body
    _read_container(body, document._body, "body", None, builder)
    for kind in _NOTE_PARTS:
        _read_notes(document, kind, builder)
    _read_comments(document, builder)
    for n, footer in enumerate(_distinct(document, header=False), start=1):
        _read_container(footer._element, footer, f"footer[{n}]", "footer", builder)


def _related_blob(document: Document, reltype: str) -> bytes | None:
    for rel in document.part.rels.values():
        if rel.reltype == reltype and not rel.is_external:
            blob: bytes = rel.target_part.blob
            return blob
    return None


def _read_notes(document: Document, kind: str, builder: TextBuilder) -> None:
    """Footnotes or endnotes, ``footnotes/footnote[n]/p[k]``: n counts the notes as Word
    numbers them, leaving out the separator lines Word keeps among them. python-docx has no
    API for notes; their paragraphs and tables are the body's elements."""
    blob = _related_blob(document, _NOTE_PARTS[kind])
    if blob is None:
        return
    notes = [
        note for note in parse_xml(blob).iterchildren(qn(f"w:{kind}")) if note.get(qn("w:type"), "normal") == "normal"
    ]
    for n, note in enumerate(notes, start=1):
        _read_container(note, document._body, f"{kind}s/{kind}[{n}]", kind, builder)


def _read_comments(document: Document, builder: TextBuilder) -> None:
    """Reviewers' comments, ``comments/comment[n]/p[k]``, in the order of the comments part."""
    # Asked for first: python-docx's `Document.comments` adds an empty part when there is none.
    if _related_blob(document, RT.COMMENTS) is None:
        return
    for n, comment in enumerate(document.comments, start=1):
        _read_container(comment._comment_elm, comment, f"comments/comment[{n}]", "comment", builder)


def _distinct(document: Document, *, header: bool) -> Iterator[_Header | _Footer]:
    """Each section's own header (or footer) definitions, first-page, default and even-page,
    each part once: a section linked to the previous one has none of its own."""
    seen: set[str] = set()
    for section in document.sections:
        candidates: tuple[_Header | _Footer, ...]
        if header:
            candidates = (section.first_page_header, section.header, section.even_page_header)
        else:
            candidates = (section.first_page_footer, section.footer, section.even_page_footer)
        for item in candidates:
            # is_linked_to_previous is checked first: reading a linked one's content would
            # make python-docx add a definition to the document.
            if item.is_linked_to_previous:
                continue
            name = str(item.part.partname)
            if name not in seen:
                seen.add(name)
                yield item


def _read_container(
    element: etree._Element,
    parent: object,
    path: str,
    kind: str | None,
    builder: TextBuilder,
) -> None:
    """Paragraphs and tables of a body, header, footer or cell, in XML order. ``kind``
    overrides the paragraph's own (everything in a header is ``"header"``)."""
    paragraphs = tables = 0
    for child in _block_elements(element):
        if isinstance(child, CT_P):
            paragraphs += 1
            paragraph = Paragraph(child, parent)  # type: ignore[arg-type]
            block = f"{path}/p[{paragraphs}]"
            builder.add(_paragraph_text(child), kind=kind or _paragraph_kind(paragraph), block=block)
            _read_text_boxes(child, parent, block, kind, builder)
        else:
            tables += 1
            _read_table(Table(child, parent), f"{path}/table[{tables}]", kind, builder)  # type: ignore[arg-type]


def _block_elements(element: etree._Element) -> Iterator[CT_P | CT_Tbl]:
    for child in element:
        if isinstance(child, CT_P | CT_Tbl):
            yield child
        elif child.tag == _SDT:
            for content in child.iterchildren(_SDT_CONTENT):
                yield from _block_elements(content)


def _read_table(table: Table, path: str, kind: str | None, builder: TextBuilder) -> None:
    for r, tr in enumerate(table._tbl.tr_lst, start=1):
        for c, tc in enumerate(tr.tc_lst, start=1):
            if tc.vMerge == "continue":
                continue
            _read_cell(_Cell(tc, table), tc, f"{path}/tr[{r}]/tc[{c}]", kind, builder)


def _read_cell(cell: _Cell, tc: CT_Tc, path: str, kind: str | None, builder: TextBuilder) -> None:
    """A cell's paragraphs are one segment, lines apart; a nested table follows as cells of
    its own (the rare paragraph after a nested table is read with those before it)."""
    lines = [_paragraph_text(p) for p in tc.p_lst]
    builder.add("\n".join(lines), kind=kind or "table_cell", block=path)
    for n, p in enumerate(tc.p_lst, start=1):
        _read_text_boxes(p, cell, f"{path}/p[{n}]", kind, builder)
    for n, tbl in enumerate(tc.tbl_lst, start=1):
        _read_table(Table(tbl, cell), f"{path}/table[{n}]", kind, builder)


def _paragraph_text(p: etree._Element) -> str:
    """The text of paragraph ``p`` as shown with tracked changes accepted: every run of its
    own (not a text box's, which is a paragraph of its own), unless it is not shown."""
    return "".join(run.text for run in p.iter(_R) if _shown_in(run, p))


def _shown_in(element: etree._Element, p: etree._Element) -> bool:
    """Whether ``element`` belongs to paragraph ``p``'s own text (no nested paragraph, text
    box or hidden revision between them)."""
    for ancestor in element.iterancestors():
        if ancestor is p:
            return True
        if ancestor.tag in _NOT_SHOWN or ancestor.tag == _P or ancestor.tag == _TEXT_BOX:
            return False
    return False


def _read_text_boxes(p: etree._Element, parent: object, path: str, kind: str | None, builder: TextBuilder) -> None:
    boxes = [box for box in p.iter(_TEXT_BOX) if _shown_in(box, p)]
    for n, box in enumerate(boxes, start=1):
        _read_container(box, parent, f"{path}/text_box[{n}]", kind or "text_box", builder)


def _paragraph_kind(paragraph: Paragraph) -> str:
    style = paragraph.style
    name = (style.name or "") if style is not None else ""
    if name.lower() == "title":
        return "title"
    if _HEADING.fullmatch(name):
        return "heading"
    return "paragraph"
