"""HTML pages: the article's text by default, or all visible text on request.

A web page is mostly not its article: menus, headers, sidebars, footers and cookie banners are
full of names (sections, partners, people in "most read" lists) that a NER model would tag
and that nobody asked about. So the default is trafilatura's main-content extraction, tuned
for precision (``favor_precision=True``): a page whose only text is boilerplate yields no
article and raises :class:`ExtractionError` rather than a document of menu entries; a caller
that wants everything asks for ``all_text=True``, which reads every visible text node with
lxml and keeps each block's path in the original DOM.

Decoding happens here, once, before either path, so that both see the same string and
:class:`DocumentInfo` can say which encoding was used. The order is the browser's, minus
the network: a byte-order mark; else the ``<meta charset>`` (or ``http-equiv`` content type)
in the first 1024 bytes, if it decodes the bytes without error; else UTF-8 if the bytes are
valid UTF-8; else charset-normalizer's best guess; else UTF-8 with replacement characters.
Trafilatura given bytes would skip the ``<meta>`` declaration and guess, which misreads
pages declared as, say, windows-1250 whose text is also plausible in another code page.

Whitespace follows HTML's rendering: runs of ASCII whitespace in text collapse to one space
(a line break in the source is not one on screen), ``<br>`` is a line break, and ``<pre>``
(trafilatura's ``<code>``) keeps its lines.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import lxml.etree
import lxml.html
import trafilatura

from nerflow.etl.extraction.document import DocumentInfo, ExtractedDocument, ExtractionError, TextBuilder

__all__ = ["extract_html"]

_NO_MAIN_CONTENT = "no main content: the page has no article text (use all_text to read all visible text)"

# Never rendered as text, or not as part of the running text: a ruby's pronunciation guide
# (<rt>, shown above "東京") and the parentheses around it for browsers without ruby (<rp>).
# <head> is dropped as a whole; its <title> is read separately.
_INVISIBLE = frozenset(
    {"script", "style", "noscript", "template", "head", "iframe", "object", "embed", "canvas", "svg", "rt", "rp"}
)
# Elements that start a block of their own in the rendered page; anything else is inline.
_BLOCK_LEVEL = frozenset(
    {
        "html", "body", "address", "article", "aside", "blockquote", "caption", "center", "dd",
        "details", "dialog", "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure",
        "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "legend",
        "li", "main", "menu", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody",
        "td", "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
_DOM_KIND = {
    **{f"h{n}": "heading" for n in range(1, 7)},
    "p": "paragraph",
    "li": "list_item",
    "dt": "list_item",
    "dd": "list_item",
    "td": "table_cell",
    "th": "table_cell",
    "caption": "table_cell",
    "pre": "code",
    "blockquote": "quote",
}
# Children of these take their kind: a <p> inside a <td> is still part of the cell.
_DOM_KIND_CONTAINERS = frozenset({"li", "dt", "dd", "td", "th", "blockquote", "pre"})

# Trafilatura's output vocabulary (its XML-TEI-like tree). Everything else in it (hi, ref,
# del, span) is inline formatting, and <lb/> a line break.
_TRAF_BLOCKS = frozenset({"head", "p", "list", "item", "table", "row", "cell", "quote", "code", "div", "main"})
_TRAF_KIND = {
    "head": "heading",
    "p": "paragraph",
    "item": "list_item",
    "cell": "table_cell",
    "quote": "quote",
    "code": "code",
}
_TRAF_KIND_CONTAINERS = frozenset({"item", "cell", "quote", "code"})

# One per page: their paths carry no index (html/body/div[2], as people write them).
_UNIQUE = frozenset({"html", "head", "body"})
_HIDING_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
# lxml refuses strings holding these (they are not XML characters); none is visible text.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_META_CHARSET = re.compile(
    rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""",
    re.IGNORECASE,
)
# WHATWG's encoding labels: browsers read these declarations as windows-1252, and pages rely
# on it (curly quotes in 0x80..0x9F); Python's latin-1 would turn them into control characters.
_WINDOWS_1252_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii"})
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def extract_html(data: bytes, *, all_text: bool = False) -> ExtractedDocument:
    """Read an HTML page.

    Args:
        data: The page's bytes, in any encoding (see the module docstring for the order in
            which it is decided).
        all_text: Read every visible text block instead of the article alone.

    Returns:
        The document. Segments' ``block`` is an element path: in trafilatura's article tree
        (``main/p[3]``, ``main/list[1]/item[2]``, ``main/table[1]/row[2]/cell[1]``) by
        default, in the page's DOM (``html/body/div[2]/p[1]``) with ``all_text``. Indices are
        1-based among siblings of the same tag.

    Raises:
        ExtractionError: No article text (default), no visible text (``all_text``), or
            markup lxml cannot parse.
    """
    text, encoding, confidence = _decode(data)
    root = _parse(text)
    info = DocumentInfo(
        format="html",
        title=_title(root),
        declared_lang=_declared_lang(root),
        encoding=encoding,
        encoding_confidence=confidence,
    )
    builder = TextBuilder()
    if all_text:
        _visible_blocks(root, builder)
        if not builder.segments:
            raise ExtractionError("no visible text")
        return builder.build(info)
    # Trafilatura copies a tree it is given, so the caller's tree (and ours) is untouched.
    extracted = trafilatura.bare_extraction(
        root,
        favor_precision=True,
        include_comments=False,
        include_tables=True,
        include_images=False,
        include_formatting=False,
        include_links=False,
        with_metadata=False,
    )
    body = getattr(extracted, "body", None)
    if body is None:
        raise ExtractionError(_NO_MAIN_CONTENT)
    for child, path in _children_with_paths(body, "main"):
        _block(_ARTICLE, child, path, builder, None)
    if not builder.segments:
        raise ExtractionError(_NO_MAIN_CONTENT)
    return builder.build(info)


def _decode(data: bytes) -> tuple[str, str, float]:
    """The page as text, the encoding used and how sure that choice is (1.0: a BOM, a
    declaration that decodes the bytes, or valid UTF-8)."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec), codec.removesuffix("-sig"), 1.0
            except UnicodeDecodeError:
                break
    declared = _declared_charset(data[:1024])
    if declared is not None:
        try:
            return data.decode(declared), declared, 1.0
        except UnicodeDecodeError:
            pass  # a wrong declaration is common; the bytes decide below
    try:
        return data.decode("utf-8"), "utf-8", 1.0
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is not None:
        try:
            # A guess is never certain: 1.0 stays for a BOM, a declaration or valid UTF-8.
            return data.decode(best.encoding), best.encoding, round(min(1.0 - best.chaos, 0.99), 3)
        except (LookupError, UnicodeDecodeError):
            pass
    return data.decode("utf-8", errors="replace"), "utf-8", 0.0


def _declared_charset(head: bytes) -> str | None:
    """The Python codec for the ``<meta>`` charset declaration, if there is a known one."""
    match = _META_CHARSET.search(head)
    if match is None:
        return None
    label = match.group(1).decode("ascii").lower()
    if label in _WINDOWS_1252_LABELS:
        return "cp1252"
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    # A page that was readable as ASCII bytes to find this tag is not UTF-16 (HTML's rule).
    return "utf-8" if name.startswith(("utf-16", "utf-32")) else name


def _parse(text: str) -> lxml.html.HtmlElement:
    text = _NOT_XML.sub(" ", _XML_DECLARATION.sub("", text, count=1))
    if not text.strip():
        raise ExtractionError("no visible text")
    parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, collect_ids=False)
    try:
        return lxml.html.document_fromstring(text, parser=parser)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise ExtractionError(f"not readable HTML: {exc}") from exc


def _title(root: lxml.html.HtmlElement) -> str | None:
    for title in root.iter("title"):
        text = _HTML_SPACE.sub(" ", title.text_content()).strip()
        if text:
            return text
    for meta in root.iter("meta"):
        if meta.get("property", "").lower() == "og:title":
            text = _HTML_SPACE.sub(" ", meta.get("content", "")).strip()
            if text:
                return text
    return None


def _declared_lang(root: lxml.html.HtmlElement) -> str | None:
    # XHTML pages may declare xml:lang alone.
    lang = root.get("lang") or root.get("xml:lang") or root.get("{http://www.w3.org/XML/1998/namespace}lang")
    return lang.strip() or None if lang else None


def _tag(element: lxml.etree._Element) -> str | None:
    """The lower-case tag, or None for comments and processing instructions."""
    return element.tag.lower() if isinstance(element.tag, str) else None


def _children_with_paths(
    parent: lxml.etree._Element, parent_path: str, unique: frozenset[str] = frozenset()
) -> Iterator[tuple[lxml.etree._Element, str]]:
    """Each child with its path; tags in ``unique`` get no index."""
    counts: dict[str, int] = {}
    for child in parent:
        tag = _tag(child)
        if tag is None:
            yield child, parent_path
            continue
        if tag in unique:
            yield child, f"{parent_path}/{tag}"
            continue
        counts[tag] = counts.get(tag, 0) + 1
        yield child, f"{parent_path}/{tag}[{counts[tag]}]"


class _Run:
    """The inline text of one block between two nested blocks."""

    def __init__(self, preformatted: bool) -> None:
        self.parts: list[str] = []
        self.preformatted = preformatted

    def text(self, value: str | None) -> None:
        if value:
            self.parts.append(value if self.preformatted else _HTML_SPACE.sub(" ", value))

    def line_break(self) -> None:
        self.parts.append("\n")

    def flush(self, builder: TextBuilder, kind: str, block: str) -> None:
        if self.parts:
            builder.add("".join(self.parts), kind=kind, block=block)
            self.parts = []


def _opening_h1(element: lxml.etree._Element) -> bool:
    return _tag(element) == "head" and element.get("rend") == "h1"


@dataclass(frozen=True, kw_only=True)
class _Vocabulary:
    """How the elements of one kind of tree become segments.

    Attributes:
        blocks: Tags that start a block (a segment of their own); anything else is inline.
        kinds: The segment kind of a block's tag; others get ``default_kind``.
        kind_containers: Tags whose kind their nested blocks take.
        line_break: The tag of a line break; ``preformatted``: of text whose spaces stay.
        unique: Tags whose paths carry no index.
        rendered: The page's own DOM, where invisible and hidden elements are skipped.
        title: Whether a block, the first of the text, is the document's title.
    """

    blocks: frozenset[str]
    kinds: dict[str, str]
    default_kind: str
    kind_containers: frozenset[str]
    line_break: str
    preformatted: str
    unique: frozenset[str] = frozenset()
    rendered: bool = False
    title: Callable[[lxml.etree._Element], bool] | None = None

    def skips(self, element: lxml.etree._Element) -> bool:
        tag = _tag(element)
        return tag is None or (self.rendered and (tag in _INVISIBLE or _hidden(element)))


# Trafilatura's article tree: the level-1 heading that opens the article is its title.
_ARTICLE = _Vocabulary(
    blocks=_TRAF_BLOCKS,
    kinds=_TRAF_KIND,
    default_kind="paragraph",
    kind_containers=_TRAF_KIND_CONTAINERS,
    line_break="lb",
    preformatted="code",
    title=_opening_h1,
)
_DOM = _Vocabulary(
    blocks=_BLOCK_LEVEL,
    kinds=_DOM_KIND,
    default_kind="text",
    kind_containers=_DOM_KIND_CONTAINERS,
    line_break="br",
    preformatted="pre",
    unique=_UNIQUE,
    rendered=True,
)


def _block(
    words: _Vocabulary, element: lxml.etree._Element, path: str, builder: TextBuilder, inherited: str | None
) -> None:
    """One block element: its inline text as a segment, nested blocks after, in document
    order (text after a nested list is a segment of its own, after the list's)."""
    if words.skips(element):
        return
    tag = _tag(element)
    kind = inherited or words.kinds.get(tag or "", words.default_kind)
    if words.title is not None and words.title(element) and not builder.segments:
        kind = "title"
    run = _Run(preformatted=tag == words.preformatted or inherited == "code")
    run.text(element.text)
    child_kind = kind if tag in words.kind_containers else inherited
    for child, child_path in _children_with_paths(element, path, words.unique):
        child_tag = _tag(child)
        if child_tag in words.blocks:
            run.flush(builder, kind, path)
            _block(words, child, child_path, builder, child_kind)
        elif child_tag is not None:
            _inline(words, child, run)
        run.text(child.tail)
    run.flush(builder, kind, path)


def _inline(words: _Vocabulary, element: lxml.etree._Element, run: _Run) -> None:
    if words.skips(element):
        return
    if _tag(element) == words.line_break:
        run.line_break()
        return
    run.text(element.text)
    for child in element:
        _inline(words, child, run)
        run.text(child.tail)


def _visible_blocks(root: lxml.html.HtmlElement, builder: TextBuilder) -> None:
    """Every visible text block of the page, the ``<title>`` first, in document order."""
    for title in root.iter("title"):
        builder.add(_HTML_SPACE.sub(" ", title.text_content()), kind="title", block="html/head/title")
        break
    _block(_DOM, root, _tag(root) or "html", builder, None)


def _hidden(element: lxml.etree._Element) -> bool:
    if element.get("hidden") is not None:
        return True
    style = element.get("style")
    return style is not None and _HIDING_STYLE.search(style) is not None
