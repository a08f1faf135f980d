"""The XLSX reader: which cells are text, their references, sheets and comments, and what it
refuses."""

from __future__ import annotations

import io
import zipfile

import pytest

from nerflow.etl.extraction import ExtractedDocument, ExtractionError
from nerflow.etl.extraction.xlsx import cell_reference, extract_xlsx
from tests.samples_office import (
    WORKBOOK_COMMENT,
    WORKBOOK_NOTE,
    WORKBOOK_ROWS,
    WORKBOOK_TITLE,
    contacts_xlsx,
    encrypted_office,
    far_apart_xlsx,
    legacy_xls,
)


def _blocks(doc: ExtractedDocument) -> list[tuple[str, str | None, str]]:
    return [(s.kind, s.block, doc.text[s.start : s.end]) for s in doc.segments]


def test_every_text_cell_and_comment_in_sheet_order_with_its_reference() -> None:
    doc = extract_xlsx(contacts_xlsx())
    expected = [
        ("table_cell", f"Contacts!{column}{r}", value)
        for r, row in enumerate(WORKBOOK_ROWS, start=1)
        for column, value in zip("ABC", row)
    ]
    expected += [
        ("table_cell", "Contacts!A5", "Maren Holloway (chair)"),  # a formula's cached string
        ("table_cell", "'Q3 Notes'!B2", WORKBOOK_NOTE),
        ("table_cell", "'Q3 Notes'!B4", "Signed by Maren Holloway"),  # rich text, runs joined
        ("table_cell", "'Q3 Notes'!B5", "東京"),  # without its phonetic guide
        ("table_cell", "'Q3 Notes'!C6", "Veska\nharbour"),  # inline string, _x000D_ decoded
        ("comment", "'Q3 Notes'!B2/comment", WORKBOOK_COMMENT),
        ("table_cell", "Archive!A1", "Former operator: Baltic Ferries"),  # a hidden sheet
    ]
    assert _blocks(doc) == expected
    assert doc.info.format == "xlsx" and doc.info.title == WORKBOOK_TITLE


def test_numbers_dates_and_flags_are_values_not_text() -> None:
    text = extract_xlsx(contacts_xlsx()).text
    assert "400" not in text and "TRUE" not in text.upper() and "2024" not in text and "45413" not in text


def test_cells_of_a_row_are_lines_and_rows_are_paragraphs() -> None:
    text = extract_xlsx(contacts_xlsx()).text
    assert text.startswith("Name\nOrganisation\nCity\n\nMaren Holloway\nLindqvist Harbour Authority\nPort Aldren\n\n")


def test_far_apart_cells_are_read_without_the_grid_between_them() -> None:
    # A reader holding the grid densely aborts the process here (550 GB for 17 billion cells).
    doc = extract_xlsx(far_apart_xlsx())
    assert _blocks(doc) == [("table_cell", "Far!A1", "Port Aldren"), ("table_cell", "Far!XFD1048576", "Veska")]


@pytest.mark.parametrize(
    ("row", "column", "reference"),
    [(1, 1, "A1"), (3, 26, "Z3"), (7, 27, "AA7"), (2, 702, "ZZ2"), (1, 703, "AAA1"), (1048576, 16384, "XFD1048576")],
)
def test_cell_reference(row: int, column: int, reference: str) -> None:
    assert cell_reference(row, column) == reference


def _with_member(data: bytes, name: str, edit) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            dst.writestr(info.filename, edit(content) if info.filename == name else content)
    return out.getvalue()


def test_cells_without_references_follow_their_row_and_column() -> None:
    # References are optional in the file format: a row's cells then count from column A.
    data = _with_member(contacts_xlsx(), "xl/worksheets/sheet1.xml", lambda x: x.replace(b' r="B2"', b""))
    doc = extract_xlsx(data)
    assert ("table_cell", "Contacts!B2", "Lindqvist Harbour Authority") in _blocks(doc)


def test_a_shared_string_index_past_the_table_is_refused() -> None:
    def break_index(content: bytes) -> bytes:
        start = content.index(b'<c r="A1" t="s"><v>') + len(b'<c r="A1" t="s"><v>')
        return content[:start] + b"9999" + content[content.index(b"</v>", start) :]

    data = _with_member(contacts_xlsx(), "xl/worksheets/sheet1.xml", break_index)
    with pytest.raises(
        ExtractionError, match=r"^not a readable XLSX: cell Contacts!A1 names shared string 9999, of \d+$"
    ):
        extract_xlsx(data)


def test_entities_in_the_xml_are_not_expanded() -> None:
    # An entity a DTD defines is a billion-laughs door: left unexpanded, it is no text.
    def declare_entity(content: bytes) -> bytes:
        declaration, rest = content.split(b"?>", 1)
        dtd = b'<!DOCTYPE sst [<!ENTITY a "Baltic Baltic Baltic">]>'
        return declaration + b"?>" + dtd + rest.replace(b"<t>Name</t>", b"<t>&a;</t>", 1)

    doc = extract_xlsx(_with_member(contacts_xlsx(), "xl/sharedStrings.xml", declare_entity))
    assert "Baltic Baltic" not in doc.text
    assert _blocks(doc)[0] == ("table_cell", "Contacts!B1", "Organisation")


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: b"Name,City\nMaren,Veska\n", r"^not an XLSX: not a zip archive$"),
        (encrypted_office, r"^password-protected Office file: encrypted, no text can be read$"),
        (legacy_xls, r"^legacy Excel \.xls \(OLE\) file: not supported; save as \.xlsx$"),
        (
            lambda: _with_member(contacts_xlsx(), "xl/workbook.xml", lambda x: x[: len(x) // 2]),
            r"^not a readable XLSX: XMLSyntaxError",
        ),
    ],
    ids=["not-a-zip", "encrypted", "legacy-xls", "truncated-workbook"],
)
def test_refused_files(build, reason: str) -> None:
    with pytest.raises(ExtractionError, match=reason):
        extract_xlsx(build())


def test_xml_comments_inside_a_string_are_no_text() -> None:
    data = _with_member(
        contacts_xlsx(), "xl/sharedStrings.xml", lambda x: x.replace(b"<t>Name</t>", b"<!-- header --><t>Name</t>", 1)
    )
    assert _blocks(extract_xlsx(data))[0] == ("table_cell", "Contacts!A1", "Name")
