"""E-mail and mbox reading: subject and body segments point into the text, charsets are
honoured or detected, and one bad message of a mailbox does not fail the others."""

from __future__ import annotations

import pytest

from nerflow.etl.extraction import ExtractedDocument, ExtractionError
from nerflow.etl.extraction.mail import extract_email, extract_mbox
from tests import samples_text as samples


def _segment_texts(doc: ExtractedDocument) -> list[str]:
    return [doc.text[s.start : s.end] for s in doc.segments]


def test_plain_email_has_subject_then_body() -> None:
    doc = extract_email(samples.plain_email())
    assert doc.info.format == "email"
    assert doc.info.title == samples.PLAIN_SUBJECT
    assert [(s.kind, s.block) for s in doc.segments] == [("subject", "subject"), ("body", "body/1")]
    assert _segment_texts(doc) == [samples.PLAIN_SUBJECT, samples.PLAIN_BODY]
    assert doc.text == samples.PLAIN_SUBJECT + "\n\n" + samples.PLAIN_BODY


def test_undeclared_charset_falls_back_to_detection() -> None:
    body = samples.RUSSIAN_TEXT.encode("cp1251")
    raw = b"From: a@example.org\nTo: b@example.org\nSubject: Report\nContent-Type: text/plain\n\n" + body
    doc = extract_email(raw)
    assert _segment_texts(doc) == ["Report", samples.RUSSIAN_TEXT]
    assert doc.info.encoding == "cp1251"


def test_wrong_declared_charset_falls_back_to_detection() -> None:
    body = samples.CHINESE_TEXT.encode("gb18030")
    raw = b"Subject: x\nContent-Type: text/plain; charset=utf-8\n\n" + body
    assert extract_email(raw).text.endswith(samples.CHINESE_TEXT.split("\n\n")[-1])


def test_html_part_goes_through_the_html_reader() -> None:
    pytest.importorskip("nerflow.etl.extraction.html")
    doc = extract_email(samples.html_email())
    assert doc.info.title == samples.HTML_SUBJECT
    assert doc.segments[0].kind == "subject"
    body = doc.segments[1:]
    assert body
    assert all(s.block is not None and s.block.startswith("body/1") for s in body)
    assert "Sofia Almeida" in doc.text
    assert "<p>" not in doc.text
    for seg in doc.segments:
        assert doc.text[seg.start : seg.end].strip()


def test_attachments_only_is_refused_with_the_names() -> None:
    with pytest.raises(ExtractionError) as caught:
        extract_email(samples.attachments_only_email())
    assert caught.value.reason == "e-mail with no text body: only attachments (report.pdf, photo.jpg)"


def test_mbox_gives_one_document_per_message() -> None:
    docs = extract_mbox(samples.mbox_of(3))
    assert [d.part for d in docs] == [1, 2, 3]
    for k, doc in enumerate(docs, start=1):
        assert isinstance(doc, ExtractedDocument)
        assert doc.info.title == f"Message {k} from Harbour Logistics"
        body = _segment_texts(doc)[1]
        assert body.startswith(f"Line {k}.")
        assert "\nFrom the desk of Clara Jensen" in body  # mboxrd quoting undone


def test_a_bad_message_does_not_fail_the_others() -> None:
    good = samples.mbox_of(2)
    bad = b"From scanner@example.org Mon Jan  5 11:00:00 2026\n" + samples.attachments_only_email().replace(
        b"\r\n", b"\n"
    )
    results = extract_mbox(good + bad + b"\n" + samples.mbox_of(1))
    assert [type(r).__name__ for r in results] == [
        "ExtractedDocument",
        "ExtractedDocument",
        "ExtractionError",
        "ExtractedDocument",
    ]
    error = results[2]
    assert isinstance(error, ExtractionError)
    assert error.part == 3
    assert error.reason.startswith("e-mail with no text body: only attachments (report.pdf")
    assert [r.part for r in results] == [1, 2, 3, 4]


def test_not_an_mbox_is_refused() -> None:
    with pytest.raises(ExtractionError, match="not an mbox"):
        extract_mbox(samples.plain_email())


def test_html_blocks_are_re_added_under_the_part_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real HTML reader may be absent here; a stand-in with its signature checks the wiring.
    import sys
    import types

    from nerflow.etl.extraction import DocumentInfo, TextBuilder

    received: list[bytes] = []

    def extract_html(data: bytes, *, all_text: bool = False) -> ExtractedDocument:
        received.append(data)
        b = TextBuilder()
        b.add("Quarterly meeting", kind="heading", block="body/h1")
        b.add("Sofia Almeida hosts.", kind="paragraph", block="body/p[1]")
        b.add("Daniel Okafor attends.", kind="paragraph", separator="\n", block="body/p[2]")
        return b.build(DocumentInfo(format="html"))

    fake = types.ModuleType("nerflow.etl.extraction.html")
    fake.extract_html = extract_html  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nerflow.etl.extraction.html", fake)
    doc = extract_email(samples.html_email())
    assert received[0].startswith(b"\xef\xbb\xbf<!DOCTYPE html>")
    assert (
        doc.text == "Quarterly meeting in Lisbon\n\nQuarterly meeting\n\nSofia Almeida hosts.\nDaniel Okafor attends."
    )
    assert [(s.kind, s.block) for s in doc.segments] == [
        ("subject", "subject"),
        ("heading", "body/1/body/h1"),
        ("paragraph", "body/1/body/p[1]"),
        ("paragraph", "body/1/body/p[2]"),
    ]
