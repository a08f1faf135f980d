"""The HTML reader: the article without boilerplate, all visible text on request, decoding."""

from __future__ import annotations

import pytest

from nerflow.etl.extraction import ExtractedDocument, ExtractionError
from nerflow.etl.extraction.html import extract_html
from nerflow.etl.normal_form import normalise_text
from tests.samples_office import (
    ARTICLE_PARAGRAPHS,
    ARTICLE_TITLE,
    BOILERPLATE,
    article_html,
    boilerplate_only_html,
)


def _blocks(doc: ExtractedDocument) -> list[tuple[str, str | None, str]]:
    return [(s.kind, s.block, doc.text[s.start : s.end]) for s in doc.segments]


def _assert_well_formed(doc: ExtractedDocument) -> None:
    assert normalise_text(doc.text) == doc.text
    ends = [0] + [s.end for s in doc.segments]
    assert all(s.start >= end for s, end in zip(doc.segments, ends, strict=False))


def test_article_keeps_the_main_text_and_drops_the_boilerplate() -> None:
    doc = extract_html(article_html())
    _assert_well_formed(doc)
    for paragraph in ARTICLE_PARAGRAPHS:
        assert paragraph in doc.text
    for phrase in BOILERPLATE:
        assert phrase not in doc.text
    assert "window.analytics" not in doc.text
    assert doc.info.format == "html"
    assert doc.info.title == f"{ARTICLE_TITLE} | Example Daily News"
    assert doc.info.declared_lang == "en-GB"
    assert (doc.info.encoding, doc.info.encoding_confidence) == ("utf-8", 1.0)


def test_article_segments_are_the_extracted_tree_in_order() -> None:
    blocks = _blocks(extract_html(article_html()))
    assert blocks[:4] == [
        ("title", "main/head[1]", ARTICLE_TITLE),
        ("paragraph", "main/p[1]", ARTICLE_PARAGRAPHS[0]),
        ("paragraph", "main/p[2]", ARTICLE_PARAGRAPHS[1]),
        ("heading", "main/head[2]", "A long negotiation"),
    ]
    assert ("list_item", "main/list[1]/item[2]", "Northwind Shipping signed in June.") in blocks
    cells = [(block, text) for kind, block, text in blocks if kind == "table_cell"]
    assert cells == [
        ("main/table[1]/row[1]/cell[1]", "Route"),
        ("main/table[1]/row[1]/cell[2]", "Operator"),
        ("main/table[1]/row[2]/cell[1]", "Port Aldren to Veska"),
        ("main/table[1]/row[2]/cell[2]", "Northwind Shipping"),
    ]
    assert blocks[-1] == ("paragraph", "main/p[5]", ARTICLE_PARAGRAPHS[4])


def test_boilerplate_only_page_has_no_main_content() -> None:
    with pytest.raises(ExtractionError) as caught:
        extract_html(boilerplate_only_html())
    assert caught.value.reason.startswith("no main content: ")
    assert "all_text" in caught.value.reason


def test_all_text_reads_every_visible_block_with_its_dom_path() -> None:
    doc = extract_html(article_html(), all_text=True)
    _assert_well_formed(doc)
    blocks = _blocks(doc)
    assert blocks[0] == ("title", "html/head/title", f"{ARTICLE_TITLE} | Example Daily News")
    assert ("list_item", "html/body/nav[1]/ul[1]/li[2]", "World") in blocks
    assert ("heading", "html/body/main[1]/article[1]/h1[1]", ARTICLE_TITLE) in blocks
    assert ("table_cell", "html/body/main[1]/article[1]/table[1]/tr[2]/td[1]", "Port Aldren to Veska") in blocks
    for phrase in BOILERPLATE:
        assert phrase in doc.text
    assert "window.analytics" not in doc.text
    assert "font-family" not in doc.text


def test_all_text_of_a_boilerplate_page_is_its_menu() -> None:
    doc = extract_html(boilerplate_only_html(), all_text=True)
    assert doc.text.split("\n\n")[:3] == ["Example Daily News", "Home", "World"]
    assert doc.info.declared_lang == "de"


def test_all_text_drops_invisible_elements_and_keeps_line_breaks() -> None:
    page = (
        b"<html><head><title>T</title><style>p{}</style></head><body>"
        b"<div>Anna Berg<br>Port Aldren\n   harbour <span>office</span></div>"
        b"<noscript>Enable scripts</noscript><template><p>Later</p></template>"
        b"<p hidden>Secret</p><p style='display: none'>Gone</p>"
        b"<pre>line one\n  line two</pre><script>var x = 1;</script>"
        + "<p>本社は<ruby>東京<rp>(</rp><rt>とうきょう</rt><rp>)</rp></ruby>にある。</p></body></html>".encode()
    )
    doc = extract_html(page, all_text=True)
    assert _blocks(doc) == [
        ("title", "html/head/title", "T"),
        ("text", "html/body/div[1]", "Anna Berg\nPort Aldren harbour office"),
        ("code", "html/body/pre[1]", "line one\nline two"),
        # A ruby's pronunciation guide is shown above its base text, not in the sentence.
        ("paragraph", "html/body/p[3]", "本社は東京にある。"),
    ]


@pytest.mark.parametrize(
    "page",
    [b"", b"   ", b"<html><body><script>x()</script></body></html>"],
    ids=["empty", "blank", "script-only"],
)
def test_no_visible_text(page: bytes) -> None:
    with pytest.raises(ExtractionError, match=r"^no visible text$"):
        extract_html(page, all_text=True)


def test_og_title_when_there_is_no_title_element() -> None:
    page = b'<html><head><meta property="og:title" content="Ferry news"></head><body><p>x</p></body></html>'
    doc = extract_html(page, all_text=True)
    assert doc.info.title == "Ferry news"
    assert doc.info.declared_lang is None


def test_meta_charset_decides_the_encoding() -> None:
    text = "Zażółć gęślą jaźń, powiedział Łukasz Wróbel z Gdańska."
    page = f'<html><head><meta charset="windows-1250"></head><body><p>{text}</p></body></html>'
    doc = extract_html(page.encode("cp1250"), all_text=True)
    assert doc.text == text
    assert doc.info.encoding == "cp1250"


def test_latin1_label_is_read_as_windows_1252() -> None:
    page = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1"></head>'
    page += "<body><p>\u201cJosé Núñez\u201d</p></body></html>"
    doc = extract_html(page.encode("cp1252"), all_text=True)
    assert doc.text == "\u201cJosé Núñez\u201d"
    assert doc.info.encoding == "cp1252"


def test_bom_wins_over_a_wrong_declaration() -> None:
    page = '<html><head><meta charset="iso-8859-2"></head><body><p>Søren Ødegård</p></body></html>'
    doc = extract_html(page.encode("utf-16"), all_text=True)
    assert doc.text == "Søren Ødegård"
    assert (doc.info.encoding, doc.info.encoding_confidence) == ("utf-16", 1.0)


def test_undeclared_non_utf8_bytes_are_detected() -> None:
    text = "Die Bürgermeisterin von Müllheim traf den Präsidenten der Größten Reederei Österreichs."
    page = f"<html><body><p>{text}</p></body></html>".encode("cp1252")
    doc = extract_html(page, all_text=True)
    assert doc.text == text
    assert doc.info.encoding is not None
    assert doc.info.encoding_confidence is not None and doc.info.encoding_confidence < 1.0
