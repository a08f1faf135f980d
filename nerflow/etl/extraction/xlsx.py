"""Excel workbooks (.xlsx, .xlsm): the text of every cell and cell comment, sheet by sheet.

The worksheets are streamed with lxml rather than read by a spreadsheet library, because the
libraries at hand hold a sheet as a dense grid from its first cell to its last: python-calamine
aborts the whole process (Rust's allocation failure) on a 6 KB file with one cell in A1 and one
in XFD1048576, asking for 550 GB, and openpyxl's read-only rows are padded to the widest row, a
loop over 17 billion empty cells for the same file. Here a cell costs what its XML costs, so
the archive check (:mod:`nerflow.etl.extraction.office_archive`) bounds the work.

What is text: cells holding a string (shared, inline, or a formula's cached string result),
as Excel shows them, with ``_xHHHH_`` escapes decoded and phonetic guides (``rPh``, the
furigana Excel keeps over Japanese text) left out. Numbers, dates, booleans and errors are
values, not text: they are left out, since Excel shows them through number formats this
reader does not apply. Every worksheet is read, hidden ones too (their text is the file's,
only out of sight); chart sheets hold no cells and are skipped, and text boxes drawn over a
sheet (its drawing part) are not read.

Layout of the text: sheets in the workbook's order, each row's cells one per line in column
order, rows and sheets apart by a blank line, then the sheet's cell comments. Each cell is a
segment of kind ``"table_cell"`` whose ``block`` is its reference as Excel writes it
(``'Q3 Sales'!C3``); a comment is ``"comment"`` at ``'Q3 Sales'!C3/comment``.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator

from lxml import etree

from nerflow.etl.extraction.document import DocumentInfo, ExtractedDocument, ExtractionError, TextBuilder
from nerflow.etl.extraction.office_archive import (
    check_office_archive,
    core_properties,
    iterparse_part,
    parse_part,
    part_relationships,
    release,
)

__all__ = ["cell_reference", "extract_xlsx", "quoted_sheet_name"]

_WORKBOOK = "xl/workbook.xml"
_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
# Cell types whose value is text: a shared string's index, an inline string, a formula's string.
_TEXT_TYPES = frozenset({"s", "inlineStr", "str"})
_PLAIN_SHEET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def extract_xlsx(data: bytes) -> ExtractedDocument:
    """Read an Excel workbook.

    Returns:
        The document: one ``"table_cell"`` segment per text cell, one ``"comment"`` segment
        per cell comment (see the module's description). ``info.title`` and
        ``info.declared_lang`` come from the core properties.

    Raises:
        ExtractionError: Not a zip, a zip bomb, a zip without ``xl/workbook.xml``, a
            password-protected or legacy (.xls) Office file, or malformed workbook XML.
    """
    check_office_archive(data, main_part=_WORKBOOK, what="an XLSX")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            builder = TextBuilder()
            relationships = part_relationships(archive, _WORKBOOK)
            strings = _shared_strings(archive, relationships)
            for name, part in _worksheets(archive, relationships):
                sheet = quoted_sheet_name(name)
                _read_cells(archive, part, sheet, strings, builder)
                _read_comments(archive, part, sheet, builder)
            title, lang = core_properties(archive)
    except ExtractionError:
        raise
    # lxml, zipfile and int() raise many kinds of error on a malformed part; each means the
    # same to the pipeline.
    except Exception as exc:
        raise ExtractionError(f"not a readable XLSX: {type(exc).__name__}: {exc}") from exc
    return builder.build(DocumentInfo(format="xlsx", title=title, declared_lang=lang))


def cell_reference(row: int, column: int) -> str:
    """``C3`` for row 3, column 3 (both 1-based)."""
    letters = ""
    while column:
        column, rest = divmod(column - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return f"{letters}{row}"


def _column_number(reference: str) -> int:
    """3 for ``C3``."""
    number = 0
    for char in reference:
        if not char.isalpha():
            break
        number = number * 26 + ord(char.upper()) - ord("A") + 1
    return number


def quoted_sheet_name(name: str) -> str:
    """The sheet as a reference names it: ``Sales``, ``'Q3 Sales'``, ``'Bob''s'``."""
    if _PLAIN_SHEET_NAME.fullmatch(name):
        return name
    return "'" + name.replace("'", "''") + "'"


def _local(element: etree._Element) -> str:
    # An XML comment or processing instruction has no name: it is no part of the text.
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _xstring(text: str) -> str:
    """A string as Excel shows it: ``_x000D_`` is a carriage return, ``_x005F_`` an underscore."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text) if "_x" in text else text


def _rich_text(element: etree._Element) -> str:
    """The text of a shared string, inline string or comment: its ``t`` and its runs' ``t``,
    without the phonetic guide runs (``rPh``)."""
    parts = []
    for child in element:
        local = _local(child)
        if local == "t":
            parts.append(child.text or "")
        elif local == "r":
            parts.extend(t.text or "" for t in child if _local(t) == "t")
    return _xstring("".join(parts))


def _shared_strings(archive: zipfile.ZipFile, relationships: dict[str, tuple[str, str]]) -> list[str]:
    part = next((target for kind, target in relationships.values() if kind == "sharedStrings"), None)
    if part is None:
        return []
    strings = []
    for _, element in iterparse_part(archive, part, ("end",)):
        if _local(element) == "si":
            strings.append(_rich_text(element))
            element.clear()
    return strings


def _worksheets(archive: zipfile.ZipFile, relationships: dict[str, tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """``(name, part)`` of each worksheet in the workbook's order (chart sheets have no cells)."""
    for sheet in parse_part(archive, _WORKBOOK).iter("{*}sheet"):
        rid = next((value for key, value in sheet.attrib.items() if etree.QName(key).localname == "id"), None)
        kind, target = relationships.get(rid or "", ("", ""))
        if kind == "worksheet":
            yield sheet.get("name", ""), target


def _read_cells(archive: zipfile.ZipFile, part: str, sheet: str, strings: list[str], builder: TextBuilder) -> None:
    row = column = 0
    new_row = True
    for event, element in iterparse_part(archive, part, ("start", "end")):
        local = _local(element)
        if event == "start":
            if local == "row":
                row = int(element.get("r") or row + 1)
                column = 0
                new_row = True
            continue
        if local == "c":
            reference = element.get("r")
            column = _column_number(reference) if reference else column + 1
            text = _cell_text(element, strings, sheet, row, column)
            if text and builder.add(
                text,
                kind="table_cell",
                separator="\n\n" if new_row else "\n",
                block=f"{sheet}!{cell_reference(row, column)}",
            ):
                new_row = False
            element.clear()
        elif local == "row":
            release(element)  # a sheet's size costs no memory


def _cell_text(cell: etree._Element, strings: list[str], sheet: str, row: int, column: int) -> str | None:
    kind = cell.get("t", "n")
    if kind not in _TEXT_TYPES:
        return None
    if kind == "inlineStr":
        inline = next((child for child in cell if _local(child) == "is"), None)
        return _rich_text(inline) if inline is not None else None
    value = next((child.text for child in cell if _local(child) == "v"), None)
    if value is None:
        return None
    if kind == "str":
        return _xstring(value)
    index = int(value)
    if not 0 <= index < len(strings):
        raise ExtractionError(
            f"not a readable XLSX: cell {sheet}!{cell_reference(row, column)} names shared string {index}, "
            f"of {len(strings)}"
        )
    return strings[index]


def _read_comments(archive: zipfile.ZipFile, sheet_part: str, sheet: str, builder: TextBuilder) -> None:
    for kind, part in part_relationships(archive, sheet_part).values():
        if kind != "comments":
            continue
        for _, element in iterparse_part(archive, part, ("end",)):
            if _local(element) != "comment":
                continue
            text_element = next((child for child in element if _local(child) == "text"), None)
            if text_element is not None:
                reference = element.get("ref", "")
                builder.add(_rich_text(text_element), kind="comment", block=f"{sheet}!{reference}/comment")
            element.clear()
