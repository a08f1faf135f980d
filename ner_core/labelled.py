"""Labelled data for training and evaluation, in one shape: a text and its entities.

Two input formats are read (gzip or plain JSON Lines, from any fsspec URI):

* sentences: ``{"tokens": [...], "ner_tags": ["B-PER", ...]}`` (IOB2), optionally with
  ``id`` and ``lang``. The tokens are joined into a text as the sentence is written: one
  space between them, except in a sentence written in Chinese or Japanese, where only two
  Latin or digit tokens keep one ("2004年", "北京，上海", "Secondary School"), and the tags
  become character spans.
* documents: ``{"text": "...", "entities": [{"start": 0, "end": 5, "label": "PER"}]}``
  (``end`` exclusive; ``spans`` as ``[start, end, label]`` triples is accepted too).

Everything downstream (training windows, evaluation) works in character offsets, so a
sentence and a long document go through exactly the path the engine takes at inference.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ner_core.errors import NerflowError
from ner_core.metrics import spans_from_iob2
from ner_core.windowing import CJK_RANGES

__all__ = [
    "LabelledText",
    "LabelledDataError",
    "read_labelled",
    "expand_uri",
    "sentence_to_text",
    "is_cjk",
    "join_texts",
    "written_without_spaces",
    "split_lines",
    "as_written",
    "trim_entity_quotes",
]

CharSpan = tuple[int, int, str]

# Scripts written without spaces between words; SpanMarker models see each such character
# as a word of its own (mBERT's tokenizer does the same).
_CJK = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in CJK_RANGES) + "]")


class LabelledDataError(NerflowError, ValueError):
    """A labelled record that cannot be read; names the file and line."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelledText:
    """A text and its gold entities.

    Attributes:
        id: Record identifier (``<file>:<line>`` when the record has none).
        text: The text.
        entities: ``(start, end, label)`` character spans, ``end`` exclusive, sorted.
        lang: Language code when known, else ``""``.
        tokens: For sentence records, each token's ``(start, end)`` in ``text``; lets
            evaluation report word-level scores that agree with seqeval.
        negative_weight: Weight of the text's easy negatives (spans that touch no entity) in
            the training loss: 1 for gold data, below 1 for silver data whose annotator
            misses entities (``DataSource.negative_weight``).
    """

    id: str
    text: str
    entities: tuple[CharSpan, ...]
    lang: str = ""
    tokens: tuple[tuple[int, int], ...] | None = None
    negative_weight: float = 1.0


def is_cjk(ch: str) -> bool:
    """Whether ``ch`` belongs to a script written without spaces (Han, kana)."""
    return bool(_CJK.match(ch))


def written_without_spaces(tokens: Sequence[str]) -> bool:
    """Whether a tokenised sentence is mostly Chinese or Japanese script: more CJK characters
    than words of other scripts (a Han character is about a word; an English sentence
    quoting a Chinese name is not written without spaces)."""
    cjk = other = 0
    for token in tokens:
        cjk += sum(1 for ch in token if is_cjk(ch))
        other += any(ch.isalpha() and not is_cjk(ch) for ch in token)
    return cjk > other


def _latin_or_digit(ch: str) -> bool:
    return ch.isalnum() and not is_cjk(ch)


def sentence_to_text(
    tokens: Sequence[str], tags: Sequence[str]
) -> tuple[str, tuple[tuple[int, int], ...], list[CharSpan]]:
    """Join a tokenised, IOB2-tagged sentence into text and character spans.

    The text is what the engine meets in real documents. Chinese puts no space around its
    punctuation or between Han and digits ("2004年，"); joining those tokens with spaces
    instead gives XLM-R's tokenizer a lone "▁" token before every "，", so a model trained
    or scored on such text sees inputs that production Chinese never has.

    Returns:
        ``(text, token_offsets, entities)``.
    """
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags")
    unspaced = written_without_spaces(tokens)
    parts: list[str] = []
    offsets: list[tuple[int, int]] = []
    at = 0
    for i, token in enumerate(tokens):
        left, right = tokens[i - 1][-1:], token[:1]
        if unspaced:
            space = _latin_or_digit(left) and _latin_or_digit(right)
        else:
            space = not (is_cjk(left) and is_cjk(right))
        if i and space:
            parts.append(" ")
            at += 1
        parts.append(token)
        offsets.append((at, at + len(token)))
        at += len(token)
    entities = [(offsets[s][0], offsets[e - 1][1], label) for s, e, label in spans_from_iob2(tags)]
    return "".join(parts), tuple(offsets), entities


# How punctuation sits against its neighbours in running text (European typography):
# closing marks lean left ("Москва,"), opening marks lean right ("(EFE", "«Газпром").
_CLOSING = set(",.;:!?)]}»%…") | {"”", "’", "...", "''"}
_OPENING = set("([{«„¿¡") | {"“", "‘", "``"}
# Marks that toggle between opening and closing inside one sentence.
_TOGGLING = {'"', "'"}
# French keeps a (thin) space inside guillemets and before ; : ! ? (« Bonjour ! »).
_FRENCH_SPACED = set(";:!?»")
_CLITICS = ("n't", "'s", "'re", "'ll", "'m", "'ve", "'d")


def as_written(record: LabelledText) -> LabelledText:
    """A tokenised sentence rejoined as running text is written: no space before a comma,
    a full stop or a closing bracket or quote, none after an opening one ("сообщает
    «Интерфакс» (Москва).", against the tokens' "сообщает « Интерфакс » ( Москва ) .").

    Real documents are written so, while the sentence files join tokens with spaces: a model
    that only ever saw spaced punctuation meets token sequences at inference it was never
    trained on (XLM-R's tokenizer gives "«Газпром»" other pieces than "« Газпром »").
    Entities keep their tokens; only the spaces between tokens change. Sentences written
    without spaces (Chinese) and records without token offsets are returned unchanged.
    """
    if record.tokens is None or len(record.tokens) < 2:
        return record
    tokens = [record.text[s:e] for s, e in record.tokens]
    if written_without_spaces(tokens):
        return record
    french = record.lang == "fr"
    parts, offsets, at = [], [], 0
    glue_next = False
    open_toggles: set[str] = set()
    for i, token in enumerate(tokens):
        space = i > 0 and not glue_next
        glue_next = False
        if token == "“" and "„" in open_toggles:  # German and Slavic „…“: here “ closes
            open_toggles.discard("„")
            space = False
        elif token in _TOGGLING:
            if token in open_toggles:
                open_toggles.discard(token)
                space = False
            else:
                open_toggles.add(token)
                glue_next = True
        elif token in _CLOSING:
            if not (french and token in _FRENCH_SPACED):
                space = False
        elif token in _OPENING:
            glue_next = not (french and token == "«")
            if token == "„":
                open_toggles.add(token)
        elif len(token) > 1 and token[-1] in "'’" and record.lang in ("fr", "it"):
            glue_next = True  # elision: "l'ONU", "dell'Europa"
        elif token.lower() in _CLITICS and record.lang == "en":
            space = False
        if space:
            parts.append(" ")
            at += 1
        parts.append(token)
        offsets.append((at, at + len(token)))
        at += len(token)
    starts = {s: k for k, (s, _) in enumerate(record.tokens)}
    ends = {e: k for k, (_, e) in enumerate(record.tokens)}
    entities = []
    for s, e, label in record.entities:
        if s not in starts or e not in ends:
            return record  # an entity inside a token: keep the text as it was
        entities.append((offsets[starts[s]][0], offsets[ends[e]][1], label))
    return LabelledText(
        id=record.id, text="".join(parts), entities=tuple(entities), lang=record.lang, tokens=tuple(offsets)
    )


# Unlike the decoder's QUOTATION_MARKS (ner_core.decoding), apostrophes too: sources also
# quote with them ('Газпром').
_QUOTES_AND_APOSTROPHES = set("\"«»„“”‘’‚'")


def trim_entity_quotes(record: LabelledText) -> LabelledText:
    """Entities that begin or end with a quotation mark (or the space after one) without
    it: UNER and CoNLL-02 mostly leave quotes outside names (no UNER pt/en ORG begins with
    one; CoNLL-02 es keeps them around about 1% of its entities, titles and some
    organisations), while WikiNEuRal Russian puts them inside about 9% of its ORG spans
    ("« Газпром »"), which teaches a model to end names on a quote. An entity of quotes
    alone is dropped."""
    text = record.text
    entities = []
    for s, e, label in record.entities:
        while s < e and (text[s] in _QUOTES_AND_APOSTROPHES or text[s].isspace()):
            s += 1
        while e > s and (text[e - 1] in _QUOTES_AND_APOSTROPHES or text[e - 1].isspace()):
            e -= 1
        if s < e:
            entities.append((s, e, label))
    if tuple(entities) == record.entities:
        return record
    return LabelledText(id=record.id, text=text, entities=tuple(entities), lang=record.lang, tokens=record.tokens)


def join_texts(records: Sequence[LabelledText], *, separator: str = "\n") -> LabelledText:
    """Consecutive labelled texts as one pseudo-document (what ``docs/`` in the team's data
    is made of): texts joined by ``separator``, every offset shifted to the joined text.

    Training on these lets a model see windows that hold several sentences and entities
    near a window's edge, as it does on long documents at inference.
    """
    if not records:
        raise ValueError("nothing to join")
    texts: list[str] = []
    entities: list[CharSpan] = []
    tokens: list[tuple[int, int]] | None = []
    at = 0
    for rec in records:
        texts.append(rec.text)
        entities.extend((s + at, e + at, label) for s, e, label in rec.entities)
        if tokens is not None and rec.tokens is not None:
            tokens.extend((s + at, e + at) for s, e in rec.tokens)
        else:
            tokens = None
        at += len(rec.text) + len(separator)
    first = records[0]
    return LabelledText(
        id=first.id if len(records) == 1 else f"{first.id}+{len(records) - 1}",
        text=separator.join(texts),
        entities=tuple(entities),
        lang=first.lang,
        tokens=tuple(tokens) if tokens is not None else None,
    )


def split_lines(doc: LabelledText) -> list[LabelledText]:
    """A document's lines as texts of their own, with the entities inside each (the inverse
    of ``join_texts`` with ``"\\n"``): the same sentences, character for character, that
    the document holds, for scoring a model on them one by one.

    Raises:
        ValueError: An entity spans a line break.
    """
    out, at = [], 0
    entities = list(doc.entities)
    k = 0
    for n, line in enumerate(doc.text.split("\n")):
        end = at + len(line)
        inside = []
        while k < len(entities) and entities[k][0] < end + 1:
            s, e, label = entities[k]
            if e > end:
                raise ValueError(f"{doc.id}: entity {s}:{e} spans a line break")
            inside.append((s - at, e - at, label))
            k += 1
        out.append(LabelledText(id=f"{doc.id}:line{n}", text=line, entities=tuple(inside), lang=doc.lang))
        at = end + 1
    return out


def expand_uri(uri: str, *, storage_options: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """The files a URI or glob names, sorted, as ``(path, uri)`` pairs (``path`` without the
    protocol, as the filesystem spells it).

    Raises:
        FileNotFoundError: Nothing matches.
    """
    import fsspec

    fs, _, paths = fsspec.get_fs_token_paths(uri, storage_options=storage_options or {})
    if not any(c in uri for c in "*?[") and not all(fs.exists(p) for p in paths):
        paths = []  # a plain path comes back from fsspec whether or not it exists
    if not paths:
        raise FileNotFoundError(f"no labelled file matches {uri}")
    return [(p, fs.unstrip_protocol(p) if "://" in uri else p) for p in sorted(paths)]


def read_labelled(
    uri: str, *, storage_options: dict[str, Any] | None = None, limit: int | None = None
) -> Iterator[LabelledText]:
    """Read sentence or document records from a JSON Lines file (``.gz`` is decompressed).

    Args:
        uri: Local path or fsspec URI.
        storage_options: Passed to fsspec (credentials, endpoint).
        limit: Stop after this many records.

    Raises:
        LabelledDataError: A record is not JSON, has neither ``tokens`` nor ``text``, or an
            entity lies outside its text.
    """
    import fsspec

    name = uri.rsplit("/", 1)[-1]
    stem = name.split(".", 1)[0]
    with fsspec.open(uri, "rb", **(storage_options or {})) as raw:
        data = raw.read()
    if uri.endswith(".gz") or data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    for n, line in enumerate(io.StringIO(data.decode("utf-8")), start=1):
        if limit is not None and n > limit:
            return
        if not line.strip():
            continue
        where = f"{uri}:{n}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise LabelledDataError(f"{where}: not JSON ({e.msg})") from e
        yield _parse(record, where, default_id=f"{stem}:{n}")


def _parse(record: dict[str, Any], where: str, *, default_id: str) -> LabelledText:
    rid = str(record.get("id", default_id))
    lang = str(record.get("lang") or "")
    if "tokens" in record and "ner_tags" in record:
        try:
            text, offsets, entities = sentence_to_text(record["tokens"], record["ner_tags"])
        except (ValueError, TypeError) as e:
            raise LabelledDataError(f"{where}: {e}") from e
        except KeyError as e:  # seqeval on a tag that is neither O nor B-/I-X
            raise LabelledDataError(f"{where}: ner_tags must be IOB2 ('O', 'B-X', 'I-X'): {e} is not") from e
        return LabelledText(id=rid, text=text, entities=tuple(entities), lang=lang, tokens=offsets)
    if "text" in record:
        text = record["text"]
        raw = record.get("entities", record.get("spans", []))
        entities = []
        # Not ``e``: that name is the exception of the ``except`` above.
        for item in raw:
            try:
                start, end, label = (item["start"], item["end"], item["label"]) if isinstance(item, dict) else item
            except (KeyError, TypeError, ValueError):
                raise LabelledDataError(
                    f"{where}: an entity is {{'start', 'end', 'label'}} or [start, end, label], not {item!r}"
                ) from None
            if not all(type(x) is int for x in (start, end)):
                raise LabelledDataError(f"{where}: entity offsets must be integers, not {start!r}:{end!r}")
            if not (0 <= start < end <= len(text)):
                raise LabelledDataError(f"{where}: entity {start}:{end} outside a text of {len(text)} characters")
            entities.append((start, end, str(label)))
        return LabelledText(id=rid, text=text, entities=tuple(sorted(entities)), lang=lang)
    raise LabelledDataError(f"{where}: a record needs 'tokens' and 'ner_tags', or 'text' (and 'entities')")
