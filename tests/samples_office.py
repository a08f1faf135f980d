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
    "oversized_zip_docx",
    "not_a_zip_docx",
    "encrypted_office",
    "legacy_doc",
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
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name in ("[Content_Types].xml", "word/document.xml"):
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


def legacy_doc() -> bytes:
    """The minimum of an old Word .doc: the OLE magic and a "WordDocument" stream entry."""
    name = "WordDocument".encode("utf-16-le") + b"\x00\x00"
    entry = name + bytes(64 - len(name)) + (len(name)).to_bytes(2, "little") + bytes(128 - 66)
    return _ole_header() + entry
