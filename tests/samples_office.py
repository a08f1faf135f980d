"""Small sample files for the HTML, Markdown and DOCX readers, built on the fly, offline.

Every sample is invented (news-like sentences with made-up people, organisations and places),
so no copyrighted text lands in the repository, and every builder is deterministic: the same
call gives the same bytes, which keeps test failures reproducible. The bad files (a zip bomb,
an encrypted Office file, a file that is no zip at all) are the smallest byte strings that
trigger each of the DOCX reader's checks, so the tests stay fast.

Importable from tests and benchmarks as ``tests.samples_office`` when the repository root is on
``sys.path``.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Callable
from typing import Any

__all__ = [
    "ARTICLE_TITLE",
    "ARTICLE_PARAGRAPHS",
    "BOILERPLATE",
    "REPORT_TITLE",
    "REPORT_TABLE",
    "article_html",
    "boilerplate_only_html",
    "notes_markdown",
    "report_docx",
    "annotated_docx",
    "MARKED_UP_PARAGRAPHS",
    "marked_up_docx",
    "zip_bomb_docx",
    "zip_bomb_xlsx",
    "oversized_zip_docx",
    "not_a_zip_docx",
    "encrypted_office",
    "legacy_doc",
    "legacy_xls",
    "legacy_ppt",
    "WORKBOOK_TITLE",
    "WORKBOOK_ROWS",
    "WORKBOOK_NOTE",
    "WORKBOOK_COMMENT",
    "contacts_xlsx",
    "far_apart_xlsx",
    "ledger_xlsx",
    "SLIDES_TITLE",
    "slides_pptx",
    "ODT_TITLE",
    "report_odt",
    "contacts_ods",
    "slides_odp",
    "encrypted_odt",
]

ARTICLE_TITLE = "Harbour Authority Approves New Ferry Link"
ARTICLE_PARAGRAPHS = (
    "The Lindqvist Harbour Authority approved a new ferry link between Port Aldren and the "
    "island of Veska on Tuesday, ending two years of talks with the regional council.",
    "Chief executive Maren Holloway said the first crossings would start in the spring and "
    "that Northwind Shipping had agreed to operate the route for at least five years.",
    "Residents of Veska have waited a long time for a reliable crossing, said council member "
    "Tomas Eriksen, who chaired the transport committee during the negotiations.",
    "The authority expects about four hundred passengers a day in the first season, rising "
    "as the new terminal at Port Aldren opens its second berth in the following autumn.",
    "Critics from the Coastal Heritage Society warned that the terminal would change the "
    "old harbour front, and asked the authority to publish its traffic studies in full.",
)
ARTICLE_HEADINGS = ("A long negotiation", "What happens next")
BOILERPLATE = (
    "Subscribe to our newsletter",
    "We use cookies to improve your experience",
    "Copyright Example Daily News",
    "Most read this week",
    "Home",
    "Sports",
)
"""Phrases that appear only in the boilerplate around the article, never in it."""


def article_html() -> bytes:
    """A news page: nav menu, site header, sidebar, footer and cookie banner around one
    article (a title, two headings, paragraphs, a list and a small table)."""
    p = ARTICLE_PARAGRAPHS
    page = f"""<!DOCTYPE html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<title>{ARTICLE_TITLE} | Example Daily News</title>
<meta property="og:title" content="{ARTICLE_TITLE}">
<style>body {{ font-family: serif; }}</style>
<script>window.analytics = {{ "page": "article" }};</script>
</head>
<body>
<div class="cookie-banner" id="cookie-consent"><p>We use cookies to improve your experience.
<button>Accept all</button></p></div>
<header class="site-header"><a href="/">Example Daily News</a>
<p>Subscribe to our newsletter for daily updates.</p></header>
<nav class="menu"><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li>
<li><a href="/sports">Sports</a></li><li><a href="/culture">Culture</a></li></ul></nav>
<main>
<article>
<h1>{ARTICLE_TITLE}</h1>
<p>{p[0]}</p>
<p>{p[1]}</p>
<h2>{ARTICLE_HEADINGS[0]}</h2>
<p>{p[2]}</p>
<ul><li>The council voted in favour in March.</li><li>Northwind Shipping signed in June.</li></ul>
<h2>{ARTICLE_HEADINGS[1]}</h2>
<p>{p[3]}</p>
<table><tr><th>Route</th><th>Operator</th></tr>
<tr><td>Port Aldren to Veska</td><td>Northwind Shipping</td></tr></table>
<p>{p[4]}</p>
</article>
</main>
<aside class="sidebar"><h3>Most read this week</h3><ul><li><a href="/a">Storm closes the
coastal road</a></li><li><a href="/b">Market hall reopens</a></li></ul></aside>
<footer class="site-footer"><p>Copyright Example Daily News. All rights reserved.</p>
<p><a href="/privacy">Privacy</a> <a href="/contact">Contact</a></p></footer>
</body>
</html>
"""
    return page.encode("utf-8")


def boilerplate_only_html() -> bytes:
    """A page with a nav menu and a footer and nothing else: no article to find."""
    page = """<!DOCTYPE html>
<html lang="de">
<head><meta charset="utf-8"><title>Example Daily News</title></head>
<body>
<nav class="menu"><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li>
<li><a href="/sports">Sports</a></li></ul></nav>
<footer class="site-footer"><p>Copyright Example Daily News.</p>
<p><a href="/privacy">Privacy</a></p></footer>
</body>
</html>
"""
    return page.encode("utf-8")


def notes_markdown() -> str:
    """Meeting notes: a title, headings, emphasis, links, an image, a list, a table, a code
    block, a block quote and inline HTML."""
    return """# Meeting notes: Veska ferry

Present: **Maren Holloway** (Lindqvist Harbour Authority) and
*Tomas Eriksen* from the [regional council](https://example.org/council).

## Decisions

- Northwind Shipping operates the route from `Port Aldren`.
- The terminal opens in spring.<br>Dates follow.
  1. First berth
  2. Second berth

![Map of Port Aldren harbour](map.png)

| Name | Organisation |
| --- | --- |
| Maren Holloway | Lindqvist Harbour Authority |
| Tomas Eriksen | Regional Council |

> Anna Berg of the Coastal Heritage Society\\
> asked for the traffic studies.

```python
route = "Port Aldren -> Veska"
```

## Next steps

Publish the studies before <span>June</span>.
"""


REPORT_TITLE = "Annual Report of the Veska Ferry Link"
REPORT_TABLE = (
    ("Name", "Organisation", "City"),
    ("Maren Holloway", "Lindqvist Harbour Authority", "Port Aldren"),
    ("Tomas Eriksen", "Regional Council", "Veska"),
)
_FIXED_TIME = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def report_docx() -> bytes:
    """A report: a page header and footer, a title, two headings, paragraphs, a table of
    names whose last row is one merged cell, a paragraph after the table, and a second table
    whose first column is one cell merged down two rows. Deterministic bytes: the core
    properties' dates are fixed and the zip is rewritten with fixed timestamps."""
    import docx

    document = docx.Document()
    section = document.sections[0]
    section.header.paragraphs[0].text = "Lindqvist Harbour Authority, internal"
    section.footer.paragraphs[0].text = "Page footer: prepared by Northwind Shipping"
    document.add_heading(REPORT_TITLE, level=0)
    document.add_heading("Summary", level=1)
    document.add_paragraph(
        "The ferry link between Port Aldren and Veska carried its first passengers in April. "
        "Maren Holloway opened the terminal."
    )
    document.add_heading("People", level=2)
    table = document.add_table(rows=4, cols=3)
    for r, row in enumerate(REPORT_TABLE):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    merged = table.cell(3, 0).merge(table.cell(3, 2))
    merged.text = "Anna Berg, Coastal Heritage Society, Veska"
    document.add_paragraph("Tomas Eriksen thanked the crew of Northwind Shipping.")
    crossings = document.add_table(rows=2, cols=2)
    crossings.cell(0, 0).merge(crossings.cell(1, 0)).text = "Port Aldren"
    crossings.cell(0, 1).text = "Morning crossing"
    crossings.cell(1, 1).text = "Evening crossing"
    props = document.core_properties
    props.title = REPORT_TITLE
    props.language = "en-GB"
    props.author = "Example Author"
    props.last_modified_by = "Example Author"
    return _saved_docx(document)


def _saved_docx(
    document: Any, *, edit: Callable[[str, bytes], bytes] | None = None, added: dict[str, bytes] | None = None
) -> bytes:
    """``document``'s bytes, the same on every call: its core properties' dates fixed, its zip
    rewritten by :func:`_fixed_zip` (members passed through ``edit``, ``added`` appended)."""
    props = document.core_properties
    props.created = _FIXED_TIME.replace(tzinfo=None)
    props.modified = _FIXED_TIME.replace(tzinfo=None)
    props.revision = 1
    buffer = io.BytesIO()
    document.save(buffer)
    return _fixed_zip(buffer.getvalue(), edit=edit, added=added)


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _notes_xml(kind: str, texts: list[str]) -> bytes:
    # Word's separator notes first (ids -1 and 0), then the notes, each opening with its mark.
    notes = [
        f'<w:{kind} w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:{kind}>',
        f'<w:{kind} w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/></w:r></w:p></w:{kind}>',
    ]
    notes += [
        f'<w:{kind} w:id="{n}"><w:p><w:r><w:{kind}Ref/></w:r><w:r><w:t xml:space="preserve"> {text}</w:t></w:r></w:p></w:{kind}>'
        for n, text in enumerate(texts, start=1)
    ]
    return f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:{kind}s xmlns:w="{_W}">{"".join(notes)}</w:{kind}s>'.encode()


def annotated_docx() -> bytes:
    """A short report whose names sit in its notes and comments as well: a paragraph with a
    footnote reference and a reviewer's comment, two footnotes and an endnote (python-docx
    writes no notes, so their parts, relationships and content types are added to the zip)."""
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    paragraph = document.add_paragraph("The ferry link to Veska opened in April.")
    paragraph._p.append(parse_xml(f'<w:r xmlns:w="{_W}"><w:footnoteReference w:id="1"/></w:r>'))
    document.add_comment(paragraph.runs, text="Ask Maren Holloway for the date.", author="Reviewer")
    document.add_paragraph("Northwind Shipping runs the crossings.")
    kinds = ("footnote", "endnote")

    def declare_notes(name: str, data: bytes) -> bytes:
        if name == "[Content_Types].xml":
            overrides = "".join(
                f'<Override PartName="/word/{kind}s.xml" '
                f'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.{kind}s+xml"/>'
                for kind in kinds
            )
            return data.replace(b"</Types>", overrides.encode() + b"</Types>")
        if name == "word/_rels/document.xml.rels":
            rels = "".join(
                f'<Relationship Id="rIdNotes{kind}" Type="{_REL}/{kind}s" Target="{kind}s.xml"/>' for kind in kinds
            )
            return data.replace(b"</Relationships>", rels.encode() + b"</Relationships>")
        return data

    notes = {
        "word/footnotes.xml": _notes_xml(
            "footnote",
            ["Interview with Tomas Eriksen in Port Aldren.", "Minutes of the Lindqvist Harbour Authority."],
        ),
        "word/endnotes.xml": _notes_xml("endnote", ["Photographs by Anna Berg."]),
    }
    return _saved_docx(document, edit=declare_notes, added=notes)


_NAMESPACES = (
    f'xmlns:w="{_W}" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
    'xmlns:v="urn:schemas-microsoft-com:vml" '
    f'xmlns:r="{_REL}"'
)


def _t(text: str) -> str:
    return f'<w:r><w:t xml:space="preserve">{text}</w:t></w:r>'


def _text_box(text: str) -> str:
    # What Word writes: the box as a drawing shape, and a VML copy of it for older readers.
    content = f"<w:txbxContent><w:p>{_t(text)}</w:p></w:txbxContent>"
    return (
        "<w:r><mc:AlternateContent>"
        '<mc:Choice Requires="wps"><w:drawing><wp:anchor><a:graphic><a:graphicData>'
        f"<wps:wsp><wps:txbx>{content}</wps:txbx></wps:wsp>"
        "</a:graphicData></a:graphic></wp:anchor></w:drawing></mc:Choice>"
        f"<mc:Fallback><w:pict><v:shape><v:textbox>{content}</v:textbox></v:shape></w:pict></mc:Fallback>"
        "</mc:AlternateContent></w:r>"
    )


# Paragraphs whose text python-docx's Paragraph.text would not give whole, and the text Word
# shows with tracked changes accepted.
MARKED_UP_PARAGRAPHS: tuple[tuple[str, str], ...] = (
    (
        # A tracked insertion and a tracked deletion.
        _t("Signed by ")
        + f'<w:ins w:id="1" w:author="QA">{_t("Maren Holloway")}</w:ins>'
        + '<w:del w:id="2" w:author="QA"><w:r><w:delText>Tomas Eriksen</w:delText></w:r></w:del>'
        + _t(" for the authority."),
        "Signed by Maren Holloway for the authority.",
    ),
    (
        # An inline content control (a form field) and a hyperlink.
        _t("Client: ")
        + f"<w:sdt><w:sdtPr/><w:sdtContent>{_t('Northwind Shipping')}</w:sdtContent></w:sdt>"
        + _t(", see ")
        + f'<w:hyperlink r:id="rIdNone">{_t("Veska Ferries")}</w:hyperlink>',
        "Client: Northwind Shipping, see Veska Ferries",
    ),
    (
        # A simple field's result, a complex field's result (not its code), moved text.
        _t("Place: ")
        + f'<w:fldSimple w:instr=" DOCPROPERTY City ">{_t("Port Aldren")}</w:fldSimple>'
        + _t(", contact: ")
        + '<w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText> MERGEFIELD Name </w:instrText></w:r>'
        + '<w:r><w:fldChar w:fldCharType="separate"/></w:r>'
        + _t("Anna Berg")
        + '<w:r><w:fldChar w:fldCharType="end"/></w:r>'
        + f'<w:moveFrom w:id="3" w:author="QA">{_t(" (Lindqvist)")}</w:moveFrom>'
        + f'<w:moveTo w:id="4" w:author="QA">{_t(".")}</w:moveTo>',
        "Place: Port Aldren, contact: Anna Berg.",
    ),
    (
        # A ruby: its pronunciation guide is shown above the base text, not in the sentence.
        _t("本社は")
        + f"<w:r><w:ruby><w:rubyPr/><w:rt>{_t('とうきょう')}</w:rt><w:rubyBase>{_t('東京')}</w:rubyBase></w:ruby></w:r>"
        + _t("にある。"),
        "本社は東京にある。",
    ),
    (
        _t("Sidebar:") + _text_box("Ilse Marchetti runs the Velden office."),
        "Sidebar:",
    ),
)


def marked_up_docx() -> bytes:
    """:data:`MARKED_UP_PARAGRAPHS` as a document's body (the last one holds a text box)."""
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    body = document.element.body
    for xml, _ in MARKED_UP_PARAGRAPHS:
        body.insert(len(body) - 1, parse_xml(f"<w:p {_NAMESPACES}>{xml}</w:p>"))  # before w:sectPr
    return _saved_docx(document)


def _fixed_zip(
    data: bytes, *, edit: Callable[[str, bytes], bytes] | None = None, added: dict[str, bytes] | None = None
) -> bytes:
    """The same members in the same order (each through ``edit``, then ``added`` after them),
    with a fixed timestamp, so the bytes repeat."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        members = [(info.filename, src.read(info.filename)) for info in src.infolist()]
        if edit is not None:
            members = [(name, edit(name, content)) for name, content in members]
        for name, content in [*members, *(added or {}).items()]:
            fixed = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, content)
    return out.getvalue()


def zip_bomb_docx() -> bytes:
    """A zip that looks like a DOCX and holds a 2 MiB member of zeros that deflates about a
    thousandfold: the ratio check catches it without anything being decompressed."""
    return _zip_bomb("word/document.xml")


def zip_bomb_xlsx() -> bytes:
    """The same bomb as a workbook's main part."""
    return _zip_bomb("xl/workbook.xml")


def _zip_bomb(main_part: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name in ("[Content_Types].xml", main_part):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, b"<x/>" if name.startswith("[") else bytes(2 * 1024 * 1024))
    return out.getvalue()


def oversized_zip_docx() -> bytes:
    """A zip whose directory says its document expands to 600 MiB: the sizes are patched
    into the central directory, so nothing that large is ever written (or read)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr(zipfile.ZipInfo("word/document.xml", date_time=(2024, 1, 2, 3, 4, 6)), b"<w:document/>")
    data = bytearray(out.getvalue())
    central = data.index(b"PK\x01\x02")
    # Central directory entry: compressed size at +20, uncompressed size at +24.
    data[central + 24 : central + 28] = (600 * 1024 * 1024).to_bytes(4, "little")
    return bytes(data)


def not_a_zip_docx() -> bytes:
    """Plain text with a .docx name, as an upload might be."""
    return b"Maren Holloway\nLindqvist Harbour Authority\n"


def _ole_header() -> bytes:
    # The compound file magic, then zeros for the rest of the 512-byte header.
    return bytes.fromhex("D0CF11E0A1B11AE1") + bytes(504)


def encrypted_office() -> bytes:
    """The minimum of a password-protected Office file for the reader's check: the OLE magic
    and a directory entry named "EncryptedPackage" (UTF-16LE), as Office writes it."""
    name = "EncryptedPackage".encode("utf-16-le") + b"\x00\x00"
    entry = name + bytes(64 - len(name)) + (len(name)).to_bytes(2, "little") + bytes(128 - 66)
    return _ole_header() + entry


def _legacy_office(stream: str) -> bytes:
    """The minimum of a legacy binary Office file: the OLE magic and a directory entry for the
    stream its application writes."""
    name = stream.encode("utf-16-le") + b"\x00\x00"
    entry = name + bytes(64 - len(name)) + (len(name)).to_bytes(2, "little") + bytes(128 - 66)
    return _ole_header() + entry


def legacy_doc() -> bytes:
    """An old Word .doc: a "WordDocument" stream."""
    return _legacy_office("WordDocument")


def legacy_xls() -> bytes:
    """An old Excel .xls: a "Workbook" stream."""
    return _legacy_office("Workbook")


def legacy_ppt() -> bytes:
    """An old PowerPoint .ppt: a "PowerPoint Document" stream."""
    return _legacy_office("PowerPoint Document")


WORKBOOK_TITLE = "Ferry Link Contacts"
WORKBOOK_ROWS = (
    ("Name", "Organisation", "City"),
    ("Maren Holloway", "Lindqvist Harbour Authority", "Port Aldren"),
    ("Tomas Eriksen", "Regional Council", "Veska"),
)
WORKBOOK_NOTE = "Anna Berg of the Coastal Heritage Society asked for the traffic studies."
WORKBOOK_COMMENT = "Check the spelling with Northwind Shipping."


def contacts_xlsx() -> bytes:
    """A workbook as an office would keep one: a "Contacts" sheet with a header row, names and
    numbers (a passenger count, a date, a flag: values, not text), a sheet whose name needs
    quoting ("Q3 Notes") with a note, a comment and a cell with a phonetic guide, a hidden
    sheet, and a chart sheet (no cells). Excel's rich text, inline strings and ``_x000D_``
    escapes are in it too: the shared strings and one cell are edited after xlsxwriter, which
    writes neither phonetic runs nor inline strings."""
    import xlsxwriter

    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    workbook.set_properties({"title": WORKBOOK_TITLE, "created": _FIXED_TIME.replace(tzinfo=None)})
    contacts = workbook.add_worksheet("Contacts")
    for r, row in enumerate(WORKBOOK_ROWS):
        contacts.write_row(r, 0, row)
    contacts.write_row(1, 3, (400, True))
    contacts.write_datetime(2, 3, dt.datetime(2024, 5, 1), workbook.add_format({"num_format": "yyyy-mm-dd"}))
    contacts.write_formula("A5", '=A2&" (chair)"', None, "Maren Holloway (chair)")
    notes = workbook.add_worksheet("Q3 Notes")
    notes.write("B2", WORKBOOK_NOTE)
    notes.write_comment("B2", WORKBOOK_COMMENT, {"author": "Reviewer"})
    notes.write_rich_string("B4", "Signed by ", workbook.add_format({"bold": True}), "Maren Holloway")
    notes.write("B5", "東京")
    notes.write("C6", "INLINE")
    hidden = workbook.add_worksheet("Archive")
    hidden.write("A1", "Former operator: Baltic Ferries")
    hidden.hide()
    chart = workbook.add_chart({"type": "line"})
    chart.add_series({"values": "=Contacts!$D$2:$D$3"})
    workbook.add_chartsheet("Chart").set_chart(chart)
    workbook.close()

    def edit(name: str, content: bytes) -> bytes:
        if name == "xl/sharedStrings.xml":
            # The ruby reading Excel keeps over Japanese text; not part of the cell's text.
            content = content.replace(
                "<si><t>東京</t></si>".encode(),
                '<si><t>東京</t><rPh sb="0" eb="2"><t>トウキョウ</t></rPh></si>'.encode(),
            )
        if name == "xl/worksheets/sheet2.xml":
            content = re.sub(
                rb'<c r="C6" t="s"><v>\d+</v></c>',
                b'<c r="C6" t="inlineStr"><is><t>Veska_x000D_</t><r><t xml:space="preserve"> harbour</t></r></is></c>',
                content,
            )
        return content

    return _fixed_zip(buffer.getvalue(), edit=edit)


def far_apart_xlsx() -> bytes:
    """Two text cells, in the sheet's first cell and in its last (A1, XFD1048576): a 6 KB file
    whose grid, held densely, has 17 billion cells."""
    import xlsxwriter

    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    workbook.set_properties({"created": _FIXED_TIME.replace(tzinfo=None)})
    sheet = workbook.add_worksheet("Far")
    sheet.write("A1", "Port Aldren")
    sheet.write("XFD1048576", "Veska")
    workbook.close()
    return _fixed_zip(buffer.getvalue())


def ledger_xlsx(rows: int) -> bytes:
    """A workbook of ``rows`` rows for the reading benchmark: a name, an organisation, a city
    and a note per row, with a count beside them (a number: not text)."""
    import xlsxwriter

    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    workbook.set_properties({"created": _FIXED_TIME.replace(tzinfo=None)})
    sheet = workbook.add_worksheet("Ledger")
    people = REPORT_TABLE[1:]
    for r in range(rows):
        name, organisation, city = people[r % len(people)]
        note = f"{name} met {ARTICLE_PARAGRAPHS[r % len(ARTICLE_PARAGRAPHS)][:60]} (entry {r})"
        sheet.write_row(r, 0, (name, organisation, city, note, r))
    workbook.close()
    return _fixed_zip(buffer.getvalue())


SLIDES_TITLE = "Veska Ferry Link"


def slides_pptx() -> bytes:
    """A presentation: a title slide, a slide with bullets (one with a line break), a text box,
    a group of two shapes and speaker notes, a hidden slide with a table (one merged cell)."""
    from pptx import Presentation
    from pptx.util import Inches

    presentation = Presentation()
    presentation.core_properties.title = SLIDES_TITLE
    presentation.core_properties.created = _FIXED_TIME.replace(tzinfo=None)
    presentation.core_properties.modified = _FIXED_TIME.replace(tzinfo=None)
    presentation.core_properties.last_modified_by = "nerflow tests"
    first = presentation.slides.add_slide(presentation.slide_layouts[0])
    first.shapes.title.text = SLIDES_TITLE
    first.placeholders[1].text = "Lindqvist Harbour Authority"

    second = presentation.slides.add_slide(presentation.slide_layouts[1])
    body = second.placeholders[1].text_frame
    body.text = "Maren Holloway opened the terminal at Port Aldren."
    bullet = body.add_paragraph()
    bullet.text = "Northwind Shipping runs the route"
    bullet.add_line_break()
    bullet.add_run().text = "from the spring."
    box = second.shapes.add_textbox(Inches(1), Inches(6), Inches(4), Inches(1))
    box.text_frame.text = "Source: Regional Council"
    group = second.shapes.add_group_shape()
    group.shapes.add_textbox(Inches(5), Inches(6), Inches(2), Inches(1)).text_frame.text = "Veska"
    group.shapes.add_textbox(Inches(7), Inches(6), Inches(2), Inches(1)).text_frame.text = "Tomas Eriksen"
    # The title is set last: it is still read first.
    second.shapes.title.text = "Opening"
    second.notes_slide.notes_text_frame.text = "Thank Anna Berg of the Coastal Heritage Society."

    third = presentation.slides.add_slide(presentation.slide_layouts[5])
    third.shapes.title.text = "Operators"
    table = third.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, (name, organisation, _) in enumerate(REPORT_TABLE[:2]):
        table.cell(r, 0).text, table.cell(r, 1).text = name, organisation
    table.cell(2, 0).merge(table.cell(2, 1))
    table.cell(2, 0).text = "Baltic Ferries until 2023"
    third._element.set("show", "0")  # hidden: left out of the show, still the file's text
    buffer = io.BytesIO()
    presentation.save(buffer)
    return _fixed_zip(buffer.getvalue())


_ODF_NAMESPACES = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
    'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
    'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" '
    'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
    'office:version="1.3"'
)


def _odf(kind: str, body: str, *, title: str | None = None, manifest_extra: str = "") -> bytes:
    """An OpenDocument package as LibreOffice writes one: ``mimetype`` first and stored, then
    the manifest, ``meta.xml`` and ``content.xml`` (``body`` inside ``office:body``)."""
    mimetype = f"application/vnd.oasis.opendocument.{kind}"
    content = f'<?xml version="1.0" encoding="UTF-8"?>\n<office:document-content {_ODF_NAMESPACES}><office:body>{body}</office:body></office:document-content>'
    meta = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<office:document-meta {_ODF_NAMESPACES}><office:meta>'
        + (f"<dc:title>{title}</dc:title>" if title else "")
        + "<dc:language>en-GB</dc:language></office:meta></office:document-meta>"
    )
    manifest = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<manifest:manifest {_ODF_NAMESPACES}>'
        f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{mimetype}"/>'
        f'<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">{manifest_extra}'
        "</manifest:file-entry></manifest:manifest>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        members = [
            ("mimetype", mimetype, zipfile.ZIP_STORED),
            ("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED),
        ]
        members += [("meta.xml", meta, zipfile.ZIP_DEFLATED), ("content.xml", content, zipfile.ZIP_DEFLATED)]
        for name, text, method in members:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
            info.compress_type = method
            z.writestr(info, text.encode("utf-8"))
    return out.getvalue()


ODT_TITLE = "Veska Ferry Link: Annual Report"


def report_odt() -> bytes:
    """A text document with what LibreOffice writes: a heading, a paragraph with spaces,
    a tab, a line break, a span and a field, a footnote, a comment, a deleted tracked change,
    a ruby, a list, a table with a merged cell, text boxes anchored to the page and to a
    paragraph, and a section."""
    body = (
        "<office:text>"
        '<draw:frame text:anchor-type="page"><draw:text-box><text:p>Veska Ferry Link</text:p></draw:text-box></draw:frame>'
        '<text:tracked-changes><text:changed-region text:id="c1"><text:deletion>'
        "<text:p>Baltic Ferries</text:p></text:deletion></text:changed-region></text:tracked-changes>"
        '<text:h text:outline-level="1">Annual   Report</text:h>'
        '<text:p>Chief executive <text:span>Maren Holloway</text:span> met<text:s text:c="2"/>the'
        "<text:tab/>council<text:line-break/>in Port Aldren"
        '<text:note text:note-class="footnote"><text:note-citation>1</text:note-citation>'
        "<text:note-body><text:p>Minutes kept by Tomas Eriksen.</text:p></text:note-body></text:note>."
        '<text:change text:change-id="c1"/>'
        "<office:annotation><dc:creator>Reviewer</dc:creator><text:p>Ask Northwind Shipping.</text:p></office:annotation>"
        "</text:p>"
        "<text:p><text:ruby><text:ruby-base>東京</text:ruby-base><text:ruby-text>とうきょう</text:ruby-text></text:ruby>"
        "にある。</text:p>"
        "<text:list><text:list-item><text:p>Lindqvist Harbour Authority</text:p></text:list-item>"
        "<text:list-item><text:p>Regional Council</text:p></text:list-item></text:list>"
        '<table:table table:name="Table1"><table:table-header-rows><table:table-row>'
        "<table:table-cell><text:p>Name</text:p></table:table-cell><table:table-cell><text:p>City</text:p></table:table-cell>"
        "</table:table-row></table:table-header-rows><table:table-row>"
        '<table:table-cell table:number-columns-spanned="2"><text:p>Anna Berg</text:p><text:p>Veska</text:p></table:table-cell>'
        "<table:covered-table-cell/></table:table-row></table:table>"
        '<text:p>See the map.<draw:frame draw:name="Box"><draw:text-box><text:p>Coastal Heritage Society</text:p>'
        "</draw:text-box></draw:frame></text:p>"
        '<text:section text:name="Annex"><text:p>Annex by the Regional Council.</text:p></text:section>'
        "</office:text>"
    )
    return _odf("text", body, title=ODT_TITLE)


def contacts_ods() -> bytes:
    """A spreadsheet: a header row, names, a number and a date (values, not text), a cell
    repeated over three columns, a row repeated twice, a comment, a second sheet whose name
    needs quoting, and the million empty rows LibreOffice writes after the last one."""

    def cell(text: str, extra: str = "") -> str:
        return f'<table:table-cell office:value-type="string"{extra}><text:p>{text}</text:p></table:table-cell>'

    body = (
        '<office:spreadsheet><table:table table:name="Contacts">'
        '<table:table-column table:number-columns-repeated="3"/>'
        f"<table:table-row>{cell('Name')}{cell('Organisation')}{cell('City')}</table:table-row>"
        f"<table:table-row>{cell('Maren Holloway')}{cell('Lindqvist Harbour Authority')}"
        '<table:table-cell office:value-type="string"><text:p>Port Aldren</text:p>'
        "<office:annotation><text:p>Check with Northwind Shipping.</text:p></office:annotation></table:table-cell>"
        '<table:table-cell office:value-type="float" office:value="400"><text:p>400</text:p></table:table-cell>'
        '<table:table-cell office:value-type="date" office:date-value="2024-05-01"><text:p>2024-05-01</text:p></table:table-cell>'
        "</table:table-row>"
        f'<table:table-row><table:table-cell table:number-columns-repeated="2"/>{cell("Veska", chr(32) + "table:number-columns-repeated=" + chr(34) + "3" + chr(34))}</table:table-row>'
        f'<table:table-row table:number-rows-repeated="2">{cell("Tomas Eriksen")}</table:table-row>'
        '<table:table-row table:number-rows-repeated="1048570"><table:table-cell table:number-columns-repeated="1024"/></table:table-row>'
        "</table:table>"
        f'<table:table table:name="Q3 Notes"><table:table-row><table:table-cell/>{cell(WORKBOOK_NOTE)}</table:table-row></table:table>'
        "</office:spreadsheet>"
    )
    return _odf("spreadsheet", body, title=WORKBOOK_TITLE)


def slides_odp() -> bytes:
    """A presentation: a slide whose title frame comes after its subtitle in the file, a slide
    with an outline list, a custom shape, a group and notes, and a slide with a table."""

    def frame(cls: str, paragraphs: str) -> str:
        return f'<draw:frame presentation:class="{cls}"><draw:text-box>{paragraphs}</draw:text-box></draw:frame>'

    body = (
        "<office:presentation>"
        '<draw:page draw:name="Cover">'
        + frame("subtitle", "<text:p>Lindqvist Harbour Authority</text:p>")
        + frame("title", f"<text:p>{SLIDES_TITLE}</text:p>")
        + "</draw:page>"
        '<draw:page draw:name="Opening">'
        + frame("title", "<text:p>Opening</text:p>")
        + frame(
            "outline",
            "<text:list><text:list-item><text:p>Maren Holloway opened the terminal at Port Aldren.</text:p>"
            "</text:list-item></text:list>",
        )
        + "<draw:custom-shape><text:p>Source: Regional Council</text:p></draw:custom-shape>"
        + "<draw:g>"
        + frame("text", "<text:p>Veska</text:p>")
        + frame("text", "<text:p>Tomas Eriksen</text:p>")
        + "</draw:g>"
        + "<presentation:notes>"
        + frame("notes", "<text:p>Thank Anna Berg of the Coastal Heritage Society.</text:p>")
        + "</presentation:notes></draw:page>"
        '<draw:page draw:name="Operators">'
        + "<draw:frame><table:table><table:table-row><table:table-cell><text:p>Maren Holloway</text:p></table:table-cell>"
        + "<table:table-cell><text:p>Lindqvist Harbour Authority</text:p></table:table-cell></table:table-row></table:table>"
        + "</draw:frame></draw:page>"
        "</office:presentation>"
    )
    return _odf("presentation", body, title=SLIDES_TITLE)


def encrypted_odt() -> bytes:
    """A text document whose manifest declares content.xml encrypted, as a password makes it."""
    return _odf(
        "text",
        "<office:text><text:p>unreadable</text:p></office:text>",
        manifest_extra='<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="x"/>',
    )
