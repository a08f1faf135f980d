"""The Markdown reader: text without markup, one segment per rendered block."""

from __future__ import annotations

from nerflow.etl.extraction import ExtractedDocument
from nerflow.etl.extraction.markdown_text import extract_markdown
from nerflow.etl.normal_form import normalise_text
from tests.samples_office import notes_markdown


def _blocks(doc: ExtractedDocument) -> list[tuple[str, str | None, str]]:
    return [(s.kind, s.block, doc.text[s.start : s.end]) for s in doc.segments]


def test_notes_lose_their_markup_and_keep_their_text() -> None:
    doc = extract_markdown(notes_markdown())
    assert normalise_text(doc.text) == doc.text
    for markup in ("**", "](", "https://", "map.png", "|", "```", "<span>", "# "):
        assert markup not in doc.text
    assert "Present: Maren Holloway (Lindqvist Harbour Authority) and\nTomas Eriksen from the regional council." in (
        doc.text
    )
    assert doc.info.format == "markdown"
    assert doc.info.title == "Meeting notes: Veska ferry"


def test_blocks_kinds_and_paths() -> None:
    assert _blocks(extract_markdown(notes_markdown())) == [
        ("heading", "h1[1]", "Meeting notes: Veska ferry"),
        (
            "paragraph",
            "p[1]",
            "Present: Maren Holloway (Lindqvist Harbour Authority) and\nTomas Eriksen from the regional council.",
        ),
        ("heading", "h2[1]", "Decisions"),
        ("list_item", "ul[1]/li[1]", "Northwind Shipping operates the route from Port Aldren."),
        ("list_item", "ul[1]/li[2]", "The terminal opens in spring.\nDates follow."),
        ("list_item", "ul[1]/li[2]/ol[1]/li[1]", "First berth"),
        ("list_item", "ul[1]/li[2]/ol[1]/li[2]", "Second berth"),
        ("paragraph", "p[2]", "Map of Port Aldren harbour"),
        ("table_cell", "table[1]/tr[1]/th[1]", "Name"),
        ("table_cell", "table[1]/tr[1]/th[2]", "Organisation"),
        ("table_cell", "table[1]/tr[2]/td[1]", "Maren Holloway"),
        ("table_cell", "table[1]/tr[2]/td[2]", "Lindqvist Harbour Authority"),
        ("table_cell", "table[1]/tr[3]/td[1]", "Tomas Eriksen"),
        ("table_cell", "table[1]/tr[3]/td[2]", "Regional Council"),
        ("quote", "blockquote[1]/p[1]", "Anna Berg of the Coastal Heritage Society\nasked for the traffic studies."),
        ("code", "pre[1]", 'route = "Port Aldren -> Veska"'),
        ("heading", "h2[2]", "Next steps"),
        ("paragraph", "p[3]", "Publish the studies before June."),
    ]


def test_loose_list_paragraphs_are_in_the_path() -> None:
    doc = extract_markdown("- Anna Berg\n\n  works in Veska.\n\n- Tomas Eriksen\n")
    assert _blocks(doc) == [
        ("list_item", "ul[1]/li[1]/p[1]", "Anna Berg"),
        ("list_item", "ul[1]/li[1]/p[2]", "works in Veska."),
        ("list_item", "ul[1]/li[2]/p[1]", "Tomas Eriksen"),
    ]


def test_html_blocks_are_dropped_and_entities_decoded() -> None:
    doc = extract_markdown("<div>\nraw html\n</div>\n\nSmith &amp; Jones \\*Ltd\\*\n\n    indented code\n")
    assert _blocks(doc) == [("paragraph", "p[1]", "Smith & Jones *Ltd*"), ("code", "pre[1]", "indented code")]
    assert doc.info.title is None


def test_title_is_the_first_level_one_heading() -> None:
    doc = extract_markdown("Intro line\n\n## Second\n\nFirst Title\n===\n\n# Later\n")
    assert doc.info.title == "First Title"


def test_empty_markdown_is_an_empty_document() -> None:
    doc = extract_markdown("  \n\n")
    assert (doc.text, doc.segments) == ("", [])
