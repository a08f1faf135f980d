"""The OpenDocument reader: text documents, spreadsheets and presentations, and what it refuses."""

from __future__ import annotations

import io
import zipfile

import pytest

from nerflow.etl.extraction import ExtractedDocument, ExtractionError
from nerflow.etl.extraction.opendocument import extract_opendocument
from tests.samples_office import (
    ODT_TITLE,
    SLIDES_TITLE,
    WORKBOOK_NOTE,
    WORKBOOK_TITLE,
    contacts_ods,
    encrypted_odt,
    legacy_doc,
    report_odt,
    slides_odp,
)


def _blocks(doc: ExtractedDocument) -> list[tuple[str, int | None, str | None, str]]:
    return [(s.kind, s.page, s.block, doc.text[s.start : s.end]) for s in doc.segments]


def test_a_text_document_reads_as_shown_in_order_then_notes_and_comments() -> None:
    doc = extract_opendocument(report_odt())
    assert [(kind, block, text) for kind, _, block, text in _blocks(doc)] == [
        ("text_box", "body/frame[1]/text_box[1]/p[1]", "Veska Ferry Link"),  # anchored to the page
        ("heading", "body/p[1]", "Annual Report"),  # white space in the XML collapses
        # Spaces, a tab and a line break as written; the note's number, the comment and the
        # deleted "Baltic Ferries" are not the paragraph's text.
        ("paragraph", "body/p[2]", "Chief executive Maren Holloway met the\tcouncil\nin Port Aldren."),
        ("paragraph", "body/p[3]", "東京にある。"),  # the ruby's reading left out
        ("list_item", "body/list[1]/item[1]/p[1]", "Lindqvist Harbour Authority"),
        ("list_item", "body/list[1]/item[2]/p[1]", "Regional Council"),
        ("table_cell", "body/table[1]/tr[1]/tc[1]", "Name"),
        ("table_cell", "body/table[1]/tr[1]/tc[2]", "City"),
        ("table_cell", "body/table[1]/tr[2]/tc[1]", "Anna Berg\nVeska"),  # merged: read once
        ("paragraph", "body/p[4]", "See the map."),
        ("text_box", "body/p[4]/text_box[1]/p[1]", "Coastal Heritage Society"),
        ("paragraph", "body/section[1]/p[1]", "Annex by the Regional Council."),
        ("footnote", "footnotes/footnote[1]/p[1]", "Minutes kept by Tomas Eriksen."),
        ("comment", "comments/comment[1]/p[1]", "Ask Northwind Shipping."),
    ]
    assert (doc.info.format, doc.info.title, doc.info.declared_lang) == ("odt", ODT_TITLE, "en-GB")
    assert "Baltic" not in doc.text and "とうきょう" not in doc.text


def test_a_spreadsheet_reads_text_cells_with_their_references_and_runs_once() -> None:
    doc = extract_opendocument(contacts_ods())
    assert [(kind, block, text) for kind, _, block, text in _blocks(doc)] == [
        ("table_cell", "Contacts!A1", "Name"),
        ("table_cell", "Contacts!B1", "Organisation"),
        ("table_cell", "Contacts!C1", "City"),
        ("table_cell", "Contacts!A2", "Maren Holloway"),
        ("table_cell", "Contacts!B2", "Lindqvist Harbour Authority"),
        ("table_cell", "Contacts!C2", "Port Aldren"),
        ("comment", "Contacts!C2/comment", "Check with Northwind Shipping."),
        # A cell repeated over three columns, a row repeated twice: one segment, its range.
        ("table_cell", "Contacts!C3:E3", "Veska"),
        ("table_cell", "Contacts!A4:A5", "Tomas Eriksen"),
        ("table_cell", "'Q3 Notes'!B1", WORKBOOK_NOTE),
    ]
    assert "400" not in doc.text and "2024" not in doc.text  # values, not text
    assert (doc.info.format, doc.info.title) == ("ods", WORKBOOK_TITLE)


def test_a_presentation_reads_slides_title_first_with_groups_tables_and_notes() -> None:
    doc = extract_opendocument(slides_odp())
    assert _blocks(doc) == [
        ("title", 1, "slide[1]/shape[2]/p[1]", SLIDES_TITLE),  # stored after the subtitle
        ("paragraph", 1, "slide[1]/shape[1]/p[1]", "Lindqvist Harbour Authority"),
        ("title", 2, "slide[2]/shape[1]/p[1]", "Opening"),
        (
            "paragraph",
            2,
            "slide[2]/shape[2]/list[1]/item[1]/p[1]",
            "Maren Holloway opened the terminal at Port Aldren.",
        ),
        ("paragraph", 2, "slide[2]/shape[3]/p[1]", "Source: Regional Council"),
        ("paragraph", 2, "slide[2]/shape[4]/shape[1]/p[1]", "Veska"),
        ("paragraph", 2, "slide[2]/shape[4]/shape[2]/p[1]", "Tomas Eriksen"),
        ("notes", 2, "slide[2]/notes/p[1]", "Thank Anna Berg of the Coastal Heritage Society."),
        ("table_cell", 3, "slide[3]/shape[1]/tr[1]/tc[1]", "Maren Holloway"),
        ("table_cell", 3, "slide[3]/shape[1]/tr[1]/tc[2]", "Lindqvist Harbour Authority"),
    ]
    assert (doc.info.format, doc.info.page_count, doc.info.title) == ("odp", 3, SLIDES_TITLE)


def _with_mimetype(data: bytes, mimetype: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, mimetype if info.filename == "mimetype" else src.read(info.filename))
    return out.getvalue()


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: b"Maren Holloway, Veska", r"^not an OpenDocument file: not a zip archive$"),
        (encrypted_odt, r"^password-protected OpenDocument file: encrypted, no text can be read$"),
        (legacy_doc, r"^legacy Word \.doc \(OLE\) file: not supported; save as \.docx$"),
        (
            lambda: _with_mimetype(report_odt(), b"application/vnd.oasis.opendocument.graphics"),
            r"^not an OpenDocument file nerflow reads: mimetype 'application/vnd\.oasis\.opendocument\.graphics'$",
        ),
        (
            lambda: _with_mimetype(report_odt(), b"application/vnd.oasis.opendocument.spreadsheet"),
            r"^not a readable OpenDocument file: a spreadsheet without office:spreadsheet$",
        ),
        (
            lambda: _with_mimetype(contacts_ods(), b"application/vnd.oasis.opendocument.text"),
            r"^not a readable OpenDocument file: a text document without office:text$",
        ),
    ],
    ids=["not-a-zip", "encrypted", "legacy", "a-drawing", "text-called-spreadsheet", "spreadsheet-called-text"],
)
def test_refused_files(build, reason: str) -> None:
    with pytest.raises(ExtractionError, match=reason):
        extract_opendocument(build())
