"""The DOCX reader: reading order, kinds and cell paths, and every file it must refuse."""

from __future__ import annotations

import io
import zipfile

import pytest

from nerflow.etl.extraction import ExtractedDocument, ExtractionError
from nerflow.etl.extraction.docx import extract_docx
from nerflow.etl.normal_form import normalise_text
from tests.samples_office import (
    MARKED_UP_PARAGRAPHS,
    REPORT_TITLE,
    annotated_docx,
    encrypted_office,
    legacy_doc,
    marked_up_docx,
    not_a_zip_docx,
    oversized_zip_docx,
    report_docx,
    zip_bomb_docx,
)


def _blocks(doc: ExtractedDocument) -> list[tuple[str, str | None, str]]:
    return [(s.kind, s.block, doc.text[s.start : s.end]) for s in doc.segments]


def test_report_in_reading_order() -> None:
    doc = extract_docx(report_docx())
    assert normalise_text(doc.text) == doc.text
    assert _blocks(doc) == [
        ("header", "header[1]/p[1]", "Lindqvist Harbour Authority, internal"),
        ("title", "body/p[1]", REPORT_TITLE),
        ("heading", "body/p[2]", "Summary"),
        (
            "paragraph",
            "body/p[3]",
            "The ferry link between Port Aldren and Veska carried its first passengers in April. "
            "Maren Holloway opened the terminal.",
        ),
        ("heading", "body/p[4]", "People"),
        ("table_cell", "body/table[1]/tr[1]/tc[1]", "Name"),
        ("table_cell", "body/table[1]/tr[1]/tc[2]", "Organisation"),
        ("table_cell", "body/table[1]/tr[1]/tc[3]", "City"),
        ("table_cell", "body/table[1]/tr[2]/tc[1]", "Maren Holloway"),
        ("table_cell", "body/table[1]/tr[2]/tc[2]", "Lindqvist Harbour Authority"),
        ("table_cell", "body/table[1]/tr[2]/tc[3]", "Port Aldren"),
        ("table_cell", "body/table[1]/tr[3]/tc[1]", "Tomas Eriksen"),
        ("table_cell", "body/table[1]/tr[3]/tc[2]", "Regional Council"),
        ("table_cell", "body/table[1]/tr[3]/tc[3]", "Veska"),
        # One cell merged across the row: read once.
        ("table_cell", "body/table[1]/tr[4]/tc[1]", "Anna Berg, Coastal Heritage Society, Veska"),
        ("paragraph", "body/p[5]", "Tomas Eriksen thanked the crew of Northwind Shipping."),
        # One cell merged down two rows: read once, in its first row.
        ("table_cell", "body/table[2]/tr[1]/tc[1]", "Port Aldren"),
        ("table_cell", "body/table[2]/tr[1]/tc[2]", "Morning crossing"),
        ("table_cell", "body/table[2]/tr[2]/tc[2]", "Evening crossing"),
        ("footer", "footer[1]/p[1]", "Page footer: prepared by Northwind Shipping"),
    ]


def test_footnotes_endnotes_and_comments_after_the_body() -> None:
    # Word's separator notes are left out; a note's reference mark in the body adds no text.
    doc = extract_docx(annotated_docx())
    assert _blocks(doc) == [
        ("paragraph", "body/p[1]", "The ferry link to Veska opened in April."),
        ("paragraph", "body/p[2]", "Northwind Shipping runs the crossings."),
        ("footnote", "footnotes/footnote[1]/p[1]", "Interview with Tomas Eriksen in Port Aldren."),
        ("footnote", "footnotes/footnote[2]/p[1]", "Minutes of the Lindqvist Harbour Authority."),
        ("endnote", "endnotes/endnote[1]/p[1]", "Photographs by Anna Berg."),
        ("comment", "comments/comment[1]/p[1]", "Ask Maren Holloway for the date."),
    ]


def test_text_as_shown_with_changes_accepted_and_text_boxes_once() -> None:
    data = marked_up_docx()
    doc = extract_docx(data)
    expected = [("paragraph", f"body/p[{n}]", text) for n, (_, text) in enumerate(MARKED_UP_PARAGRAPHS, start=1)]
    expected.append(("text_box", "body/p[5]/text_box[1]/p[1]", "Ilse Marchetti runs the Velden office."))
    assert _blocks(doc) == expected
    # What python-docx's Paragraph.text gives: the inserted name, the form field's and the
    # simple field's text are lost.
    import docx

    assert [p.text for p in docx.Document(io.BytesIO(data)).paragraphs][:3] == [
        "Signed by  for the authority.",
        "Client: , see Veska Ferries",
        "Place: , contact: Anna Berg",
    ]


def test_title_and_language_from_core_properties() -> None:
    info = extract_docx(report_docx()).info
    assert (info.format, info.title, info.declared_lang) == ("docx", REPORT_TITLE, "en-GB")


def test_sample_bytes_are_deterministic() -> None:
    assert report_docx() == report_docx()


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (not_a_zip_docx, r"^not a DOCX: not a zip archive$"),
        (zip_bomb_docx, r"^zip bomb: word/document\.xml expands from \d+ to 2097152 bytes, ratio \d+ over 200$"),
        (oversized_zip_docx, r"^zip bomb: members expand to 629145600 bytes in all, over the limit of 536870912$"),
        (encrypted_office, r"^password-protected Office file: encrypted, no text can be read$"),
        (legacy_doc, r"^legacy Word \.doc \(OLE\) file: not supported; save as \.docx$"),
    ],
    ids=["not-a-zip", "ratio-bomb", "size-bomb", "encrypted", "legacy-doc"],
)
def test_refused_files(build, reason: str) -> None:
    with pytest.raises(ExtractionError, match=reason):
        extract_docx(build())


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_zip_without_a_document_part() -> None:
    with pytest.raises(ExtractionError, match=r"^not a DOCX: no word/document\.xml$"):
        extract_docx(_zip({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"}))


def test_broken_package_is_not_readable() -> None:
    with pytest.raises(ExtractionError, match=r"^not a readable DOCX: "):
        extract_docx(_zip({"word/document.xml": b"<w:document"}))


def test_broken_document_xml_is_not_readable() -> None:
    good = report_docx()
    with zipfile.ZipFile(io.BytesIO(good)) as src:
        members = {info.filename: src.read(info.filename) for info in src.infolist()}
    members["word/document.xml"] = b"<w:document xmlns:w='x'><unclosed>"
    with pytest.raises(ExtractionError, match=r"^not a readable DOCX: "):
        extract_docx(_zip(members))
