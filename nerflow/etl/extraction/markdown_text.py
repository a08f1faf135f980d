"""Markdown: the text a reader sees, without the markup.

Markdown's markup (``**``, ``#``, ``[text](url)``, table pipes) is noise to a NER model and
would shift every offset away from what a person reads, so the text is rebuilt from
markdown-it-py's token stream (CommonMark plus GFM tables): inline text, the content of code
spans, link text (not the URL, which is not prose), image alt text (the only text an image
has). Inline HTML is dropped, except ``<br>``, which is a line break: dropping it would glue
the words on either side together. Raw HTML blocks are dropped too.

A soft line break (a single newline inside a paragraph) stays a line break rather than
becoming a space: the text then keeps the file's lines, so a line of the source is a line of
the text, and for the model either one is whitespace.

Each block (heading, paragraph, list item, table cell, code block) is a segment whose
``block`` is its path in the HTML the Markdown renders to, as HTML's reader writes paths:
``h2[1]``, ``p[4]``, ``ul[1]/li[2]``, ``blockquote[1]/p[1]``, ``table[1]/tr[2]/td[1]`` (rows
counted through the whole table, header row first), ``pre[1]``; indices are 1-based among
siblings of the same tag. Paragraphs of a tight list are not in the rendered HTML, so not in
the path either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.token import Token

from nerflow.etl.extraction.document import DocumentInfo, ExtractedDocument, TextBuilder
from nerflow.etl.normal_form import normalise_text

__all__ = ["extract_markdown"]

_KIND = {
    "h1": "heading",
    "h2": "heading",
    "h3": "heading",
    "h4": "heading",
    "h5": "heading",
    "h6": "heading",
    "p": "paragraph",
    "li": "list_item",
    "th": "table_cell",
    "td": "table_cell",
    "blockquote": "quote",
}
# Everything inside these takes their kind: a paragraph in a list item is the item's text.
_KIND_CONTAINERS = frozenset({"li", "th", "td", "blockquote"})
# Table sections are not in paths: a row is tr[n] of its table, whichever section holds it.
_TRANSPARENT = frozenset({"thead", "tbody"})
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


@dataclass
class _Open:
    """One open block: its path, the counts of its children's tags, its kind for children."""

    path: str
    kind: str | None
    counts: dict[str, int] = field(default_factory=dict)

    def child_path(self, tag: str) -> str:
        self.counts[tag] = self.counts.get(tag, 0) + 1
        name = f"{tag}[{self.counts[tag]}]"
        return f"{self.path}/{name}" if self.path else name


def extract_markdown(text: str) -> ExtractedDocument:
    """Read a Markdown document (CommonMark with tables).

    Returns:
        The document; ``info.title`` is the text of the first level-1 heading, if any.
    """
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    builder = TextBuilder()
    title: str | None = None
    stack = [_Open("", None)]
    # The path and kind of the block an inline token belongs to, set by the block's opening.
    current = ("", "paragraph")
    for token in tokens:
        top = stack[-1]
        if token.nesting == 1:
            if token.tag in _TRANSPARENT:
                stack.append(_Open(top.path, top.kind, top.counts))
                continue
            if token.hidden:
                # A tight list's paragraph: its text belongs to the list item itself.
                stack.append(_Open(top.path, top.kind, top.counts))
                current = (top.path, top.kind or "paragraph")
                continue
            path = top.child_path(token.tag)
            kind = top.kind or _KIND.get(token.tag, "paragraph")
            stack.append(_Open(path, kind if token.tag in _KIND_CONTAINERS else top.kind))
            current = (path, kind)
        elif token.nesting == -1:
            stack.pop()
        elif token.type == "inline":
            raw = _inline_text(token.children or [])
            segment = builder.add(raw, kind=current[1], block=current[0])
            if title is None and segment is not None and current[0].startswith("h1["):
                title = normalise_text(raw)
        elif token.type in ("fence", "code_block"):
            builder.add(token.content, kind="code", block=top.child_path("pre"))
        # html_block and hr carry no prose.
    return builder.build(DocumentInfo(format="markdown", title=title))


def _inline_text(children: list[Token]) -> str:
    parts: list[str] = []
    for child in children:
        if child.type in ("text", "text_special", "code_inline"):
            parts.append(child.content)
        elif child.type == "image":
            # The alt text is the image's own children; content holds them rendered as text.
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak") or (
            child.type == "html_inline" and _BR.fullmatch(child.content.strip())
        ):
            parts.append("\n")
        # Link, emphasis and other markers carry no text of their own; html_inline is dropped.
    return "".join(parts)
