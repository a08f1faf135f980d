"""PDF, HTML, DOCX, XLSX, PPTX, OpenDocument, Markdown, e-mail and legacy-encoded text through the whole flow,
on local files and on the S3 test server: every format's text, its segments, its pages, and
for the PDF the text under each entity's boxes read back from the original file."""

from __future__ import annotations

import re
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from flows.extract_entities import extract_entities
from nerflow import storage
from tests import samples_office, samples_pdf, samples_text
from tests.flows.test_extract_entities import check_output, params, read_table

FILES = {
    "reports/quarterly.pdf": samples_pdf.report_pdf(),
    "web/article.html": samples_office.article_html(),
    "office/annual.docx": samples_office.report_docx(),
    "office/annotated.docx": samples_office.annotated_docx(),
    "office/marked-up.docx": samples_office.marked_up_docx(),
    "office/contacts.xlsx": samples_office.contacts_xlsx(),
    "office/slides.pptx": samples_office.slides_pptx(),
    "office/report.odt": samples_office.report_odt(),
    "office/contacts.ods": samples_office.contacts_ods(),
    "office/slides.odp": samples_office.slides_odp(),
    "notes/meeting.md": samples_office.notes_markdown().encode(),
    "mail/update.eml": samples_text.plain_email(),
    "mail/archive.mbox": samples_text.mbox_of(2),
    "letters/letter-cp1251.txt": samples_text.cp1251_text(),
    "exports/powershell.jsonl": samples_text.utf16_jsonl(),
}
FORMATS = {
    "reports/quarterly.pdf": "pdf",
    "web/article.html": "html",
    "office/annual.docx": "docx",
    "office/annotated.docx": "docx",
    "office/marked-up.docx": "docx",
    "office/contacts.xlsx": "xlsx",
    "office/slides.pptx": "pptx",
    "office/report.odt": "odt",
    "office/contacts.ods": "ods",
    "office/slides.odp": "odp",
    "notes/meeting.md": "markdown",
    "mail/update.eml": "email",
    "mail/archive.mbox#1": "email",
    "mail/archive.mbox#2": "email",
    "letters/letter-cp1251": "text",
}


def _write(root: Path) -> Path:
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _same_words(a: str, b: str) -> bool:
    return re.sub(r"\s+", "", a) == re.sub(r"\s+", "", b)


def _check(out: str, storage_options: dict | None = None) -> None:
    docs = {d["doc_id"]: d for d in read_table(out, "documents", storage_options).to_pylist()}
    jsonl_ids = {d for d, row in docs.items() if row["format"] == "jsonl"}
    assert {d: docs[d]["format"] for d in FORMATS} == FORMATS
    assert len(jsonl_ids) == 3 and {docs[d]["encoding"] for d in jsonl_ids} == {"utf-16-le"}
    check_output(out, set(docs), storage_options)

    pdf = docs["reports/quarterly.pdf"]
    assert pdf["page_count"] == 3 and pdf["title"] == "Quarterly Regional Report"
    assert docs["letters/letter-cp1251"]["encoding"] == "cp1251"
    assert docs["web/article.html"]["declared_lang"] == "en-GB"
    assert "Cookie" not in docs["web/article.html"]["text"]  # boilerplate removed

    segments = read_table(out, "segments", storage_options).to_pylist()
    by_doc: dict[str, list[dict]] = {}
    for s in segments:
        by_doc.setdefault(s["doc_id"], []).append(s)
    assert set(by_doc) >= set(FORMATS)
    assert {s["kind"] for s in by_doc["office/annual.docx"]} >= {"header", "title", "table_cell"}
    assert {s["kind"] for s in by_doc["office/annotated.docx"]} == {"paragraph", "footnote", "endnote", "comment"}
    assert [s["kind"] for s in by_doc["office/marked-up.docx"]] == ["paragraph"] * 5 + ["text_box"]
    assert docs["office/marked-up.docx"]["text"].startswith("Signed by Maren Holloway for the authority.")
    assert {s["kind"] for s in by_doc["office/contacts.xlsx"]} == {"table_cell", "comment"}
    assert by_doc["office/contacts.xlsx"][0]["block"] == "Contacts!A1"
    assert docs["office/slides.pptx"]["page_count"] == 3
    assert [s["page"] for s in by_doc["office/slides.pptx"]] == [1] * 2 + [2] * 7 + [3] * 6
    assert [s["page"] for s in by_doc["office/slides.odp"]] == [1] * 2 + [2] * 6 + [3] * 2
    assert by_doc["office/contacts.ods"][-1]["block"] == "'Q3 Notes'!B1"
    assert {s["kind"] for s in by_doc["office/report.odt"]} >= {"heading", "list_item", "footnote", "comment"}
    assert [s["kind"] for s in by_doc["mail/update.eml"]] == ["subject", "body"]
    for doc_id, segs in by_doc.items():
        text = docs[doc_id]["text"]
        for s in segs:
            assert 0 <= s["start"] < s["end"] <= len(text)
    pdf_segments = by_doc["reports/quarterly.pdf"]
    assert {s["page"] for s in pdf_segments} == {1, 2, 3}
    assert all(s["page_width"] and s["left"] is not None for s in pdf_segments)

    entities = read_table(out, "entities", storage_options).to_pylist()
    assert all(e["boxes"] is None for e in entities if docs[e["doc_id"]]["format"] != "pdf")
    assert all(e["page"] is None for e in entities if docs[e["doc_id"]]["format"] not in ("pdf", "pptx", "odp"))
    # A slide's entities are on it: the page is the slide whose segment holds the entity.
    for deck in ("office/slides.pptx", "office/slides.odp"):
        for e in (e for e in entities if e["doc_id"] == deck):
            (holder,) = [s for s in by_doc[deck] if s["start"] <= e["start"] < s["end"]]
            assert e["page"] == holder["page"]
    in_pdf = [e for e in entities if e["doc_id"] == "reports/quarterly.pdf"]
    assert in_pdf and all(e["page"] in (1, 2, 3) and e["boxes"] for e in in_pdf)
    # The text under an entity's boxes, read back from the original PDF, is the entity's text.
    document = pdfium.PdfDocument(FILES["reports/quarterly.pdf"])
    try:
        for e in in_pdf:
            read_back = ""
            for box in e["boxes"]:
                page = document[box["page"] - 1]
                textpage = page.get_textpage()
                read_back += textpage.get_text_bounded(box["left"], box["bottom"], box["right"], box["top"])
                textpage.close()
                page.close()
            assert _same_words(read_back, e["text"]), (e["text"], read_back)
    finally:
        document.close()


def test_rich_files_on_local_storage(prefect_harness, tiny_wordpiece_model_dir, tmp_path):
    inp, out = _write(tmp_path / "in"), tmp_path / "out"
    summary = extract_entities(params(str(inp), str(out), tiny_wordpiece_model_dir))
    assert summary.docs_quarantined == 0 and summary.docs_ok == len(FORMATS) + 3
    _check(str(out))


@pytest.mark.slow
def test_rich_files_on_the_s3_test_server(prefect_harness, tiny_wordpiece_model_dir, s3):
    fs, root = storage.filesystem("s3://nerflow/rich-in", s3)
    for rel, data in FILES.items():
        fs.pipe_file(storage.join(root, rel), data)
    summary = extract_entities(
        params("s3://nerflow/rich-in", "s3://nerflow/rich-out", tiny_wordpiece_model_dir, storage_options=s3)
    )
    assert summary.docs_quarantined == 0
    _check("s3://nerflow/rich-out", s3)
