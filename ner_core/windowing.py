"""Tokenise a document once and cut it into model windows at word boundaries.

A window holds at most ``model_max_length`` tokens with its special tokens. Consecutive
windows overlap by about ``overlap`` tokens and prefer to start and end at sentence
boundaries. Nothing is truncated: a single "word" longer than a window (a URL, a base64
blob) is cut into window-sized pieces, and the pieces are
counted so the caller can report them.
"""

from __future__ import annotations

import bisect
import logging
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

__all__ = [
    "TokenizedDoc",
    "Window",
    "WindowingConfig",
    "tokenize_document",
    "cut_windows",
    "enumerate_spans",
    "spaced_punctuation",
    "CJK_RANGES",
]

logger = logging.getLogger(__name__)

# Characters after which a new sentence may begin (Latin, CJK, Arabic, Devanagari, ellipsis).
_SENTENCE_END = frozenset(".!?;。！？；…؟۔।")
# Full-width terminators: Chinese and Japanese put no space after them, where a Latin "."
# without one is a decimal point or an abbreviation ("3.5", "e.g.x").
_SENTENCE_END_UNSPACED = frozenset("。！？；")
# Closing quotes and brackets a sentence may end with after its terminator: 「……。」 "Go."
_CLOSERS = frozenset("\"'”’»」』）)]】")
# Of those, the ones that only ever close (ASCII quotes open sentences too).
_CLOSING_ONLY = _CLOSERS - frozenset("\"'")
# Scripts written without spaces between words (kana, CJK ideographs and their extensions).
CJK_RANGES = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F))
_SPACE_CODES = np.array([ord(c) for c in " \t\n\r\x0b\x0c\u00a0\u3000\u2028\u2029"], dtype=np.uint32)
# Tokenise long texts in blocks so the tokenizer's intermediate buffers stay small.
_BLOCK_CHARS = 200_000


@dataclass(frozen=True, kw_only=True)
class WindowingConfig:
    """How documents are cut into windows.

    Attributes:
        window_tokens: Tokens per window including special tokens (the model's
            ``model_max_length`` unless smaller).
        overlap_tokens: Tokens shared by consecutive windows, so an entity near a cut is
            seen whole, with context, by at least one window.
    """

    window_tokens: int
    overlap_tokens: int = 32

    def __post_init__(self) -> None:
        if self.window_tokens < 8:
            raise ValueError(f"window_tokens must be at least 8, got {self.window_tokens}")
        if not 0 <= self.overlap_tokens < self.window_tokens // 2:
            raise ValueError(
                f"overlap_tokens must satisfy 0 <= overlap_tokens < window_tokens // 2 "
                f"({self.window_tokens // 2}), got {self.overlap_tokens}"
            )


@dataclass(frozen=True, eq=False, kw_only=True)
class TokenizedDoc:
    """A document tokenised once, with its words.

    Attributes:
        doc_id: Identifier of the document.
        text: The text; all character offsets refer to it.
        input_ids: ``int64[n_tokens]`` subword ids, no special tokens.
        word_token_start: ``int64[n_words]`` first token of each word.
        word_token_end: ``int64[n_words]`` one past the last token of each word.
        word_char_start: ``int64[n_words]`` first character, leading whitespace stripped.
        word_char_end: ``int64[n_words]`` one past the last character, trailing whitespace
            stripped; equal to ``word_char_start`` for a word that covers no visible text.
        sentence_start: ``bool[n_words]`` whether a sentence may start at this word.
        after_break: ``bool[n_words]`` whether the word is the first after a break
            (``Doc.breaks``): windows never reach across it. All False without breaks.
        n_split_words: Words longer than a window that were cut into pieces.
    """

    doc_id: str
    text: str
    input_ids: np.ndarray
    word_token_start: np.ndarray
    word_token_end: np.ndarray
    word_char_start: np.ndarray
    word_char_end: np.ndarray
    sentence_start: np.ndarray
    after_break: np.ndarray
    n_split_words: int = 0

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def n_words(self) -> int:
        return len(self.word_token_start)


@dataclass(frozen=True, slots=True)
class Window:
    """A slice ``[word_start, word_end)`` of a document's words that fits the model.

    ``at_doc_start`` / ``at_doc_end`` say whether an edge of the window is an edge of the
    document: an entity there lacks no context, so it is not penalised when windows merge.
    """

    word_start: int
    word_end: int
    token_start: int
    token_end: int
    at_doc_start: bool
    at_doc_end: bool

    @property
    def n_tokens(self) -> int:
        return self.token_end - self.token_start

    @property
    def n_words(self) -> int:
        return self.word_end - self.word_start


def tokenize_document(
    tokenizer: PreTrainedTokenizerFast,
    doc_id: str,
    text: str,
    *,
    max_word_tokens: int,
    cjk_pieces: bool = False,
    space_punctuation: bool = False,
    breaks: Sequence[int] = (),
) -> TokenizedDoc:
    """Tokenise ``text`` once with the fast tokenizer and group subwords into words.

    Args:
        tokenizer: A transformers fast tokenizer (its backend must give word ids and
            character offsets).
        doc_id: Identifier carried into the result.
        text: The document.
        max_word_tokens: Longest word in tokens; longer words are cut into pieces.
        cjk_pieces: Make each token that holds a CJK character a word (a model trained with
            ``cjk_words="pieces"``). Otherwise words are the tokenizer's own, as in SpanMarker.
        space_punctuation: Encode the text with a space between a word and the punctuation
            around it ("«Газпром»," is read as "« Газпром » ,"), the form of the tokenised
            corpora NER models are trained on (``spaced_punctuation``). Offsets, words and
            entities stay on the original characters.
        breaks: Character offsets no window may reach across (``Doc.breaks``).

    Returns:
        The tokenised document; empty arrays for an empty or whitespace-only text.
    """
    backend = _document_backend(tokenizer)
    ids_parts, word_parts, offset_parts, cjk_parts, bare_parts = [], [], [], [], []
    next_word = 0
    for block_start, block in _blocks(text):
        encoded, to_original = spaced_punctuation(block) if space_punctuation else (block, None)
        enc = backend.encode(encoded, add_special_tokens=False)
        if not enc.ids:
            continue
        words = np.array([-1 if w is None else w for w in enc.word_ids], dtype=np.int64)
        keep = words >= 0
        words = words[keep]
        ids_parts.append(np.asarray(enc.ids, dtype=np.int64)[keep])
        block_offsets = np.asarray(enc.offsets, dtype=np.int64)[keep]
        if cjk_pieces:
            cjk, bare = _cjk_and_bare_tokens(encoded, block_offsets)
            cjk_parts.append(cjk)
            bare_parts.append(bare)
        if to_original is not None:
            block_offsets = to_original(block_offsets)
        offset_parts.append(block_offsets + block_start)
        # Word ids restart in every block; make them unique across the document.
        word_parts.append(words - words.min() + next_word if len(words) else words)
        next_word = int(word_parts[-1].max()) + 1 if len(words) else next_word
    if not ids_parts:
        return _empty(doc_id, text)

    input_ids = np.concatenate(ids_parts)
    word_ids = np.concatenate(word_parts)
    offsets = np.concatenate(offset_parts)
    word_start = np.r_[True, word_ids[1:] != word_ids[:-1]]
    if cjk_pieces:
        word_start |= _cjk_token_starts(np.concatenate(cjk_parts), np.concatenate(bare_parts), word_ids)
    starts = _join_words_sharing_characters(np.flatnonzero(word_start), offsets)
    ends = np.r_[starts[1:], len(word_ids)]
    tok_start, tok_end, n_split = _split_long_words(starts, ends, max_word_tokens)
    char_start = np.minimum.reduceat(offsets[:, 0], tok_start)
    char_end = np.maximum.reduceat(offsets[:, 1], tok_start)
    # reduceat reads up to the next start; pieces are contiguous so this is exact.
    char_start, char_end = _disjoint(*_strip_whitespace(text, char_start, char_end))
    if n_split:
        logger.info(
            "doc %s: %d word(s) longer than %d tokens were cut into pieces; entities inside them "
            "can only be found piecewise",
            doc_id,
            n_split,
            max_word_tokens,
        )
    return TokenizedDoc(
        doc_id=doc_id,
        text=text,
        input_ids=input_ids,
        word_token_start=tok_start,
        word_token_end=tok_end,
        word_char_start=char_start,
        word_char_end=char_end,
        sentence_start=_sentence_starts(text, char_start, char_end),
        after_break=_after_breaks(char_start, breaks),
        n_split_words=n_split,
    )


def spaced_punctuation(text: str) -> tuple[str, Callable[[np.ndarray], np.ndarray] | None]:
    """``text`` with a space between each word and the punctuation next to it, and a function
    that maps ``(start, end)`` offsets in the result back to ``text`` (``None`` when nothing
    was inserted).

    Punctuation inside a word stays ("Нью-Йорк", "3.5", "U.S.", "l'ONU", "km/h"), as do a
    run of one mark ("..."), numbers with their marks, URLs, Chinese and Japanese text
    (written without spaces), hyphens and apostrophes, which are elisions and possessives
    more often than quotes. An inserted space maps to an empty range at the next original
    character. Linear in the length of the text.
    """
    n = len(text)
    if n == 0:
        return text, None
    # Only boundaries next to a character that is neither a letter, a digit nor a space.
    candidates = sorted({j for m in _NOT_WORD.finditer(text) for j in (m.start(), m.start() + 1) if 0 < j < n})
    if not candidates:
        return text, None
    cjk = _CJK_CHAR.search(text) is not None
    addresses = [
        (m.start(), m.end()) for m in _CHUNK.finditer(text) if any(marker in m.group() for marker in _ADDRESS_MARKERS)
    ]
    gaps = [i for i in candidates if not _inside(addresses, i) and _separable(text, i, cjk=cjk)]
    if not gaps:
        return text, None
    parts, prev = [], 0
    for i in gaps:
        parts.append(text[prev:i])
        prev = i
    parts.append(text[prev:])
    spaced = " ".join(parts)
    inserted = np.zeros(len(spaced), dtype=bool)
    inserted[np.asarray(gaps) + np.arange(len(gaps))] = True
    # Original index of each character of ``spaced`` (inserted spaces excluded); then for each
    # spaced position the first original index at or after it, and one past the last before it.
    origin = np.arange(len(spaced), dtype=np.int64) - np.cumsum(inserted)
    next_start = np.minimum.accumulate(np.r_[np.where(inserted, n, origin), n][::-1])[::-1]
    prev_end = np.r_[0, np.maximum.accumulate(np.where(inserted, 0, origin + 1))]

    def to_original(offsets: np.ndarray) -> np.ndarray:
        start = next_start[offsets[:, 0]]
        end = np.maximum(prev_end[offsets[:, 1]], start)
        return np.stack([start, end], axis=1)

    return spaced, to_original


# Marks never set apart: hyphens join words and word parts ("Нью-Йорк", "aan- en verkoop"),
# apostrophes are elisions and possessives more often than quotes.
_KEPT_MARKS = frozenset("-‐‑'’")
_NOT_WORD = re.compile(r"[^\w\s]")
# Chunks without spaces that are URLs or e-mail addresses are left as they are.
_CHUNK = re.compile(r"\S+")
_ADDRESS_MARKERS = ("://", "www.", "@")
# Marks looked at on either side of a boundary: longer runs ("=====") are not punctuation.
_MAX_RUN = 8


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "P" and ch not in _KEPT_MARKS


# CJK script, and the CJK and full-width punctuation written with it ("。", "（").
_CJK_CHAR = re.compile(
    "[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in (*CJK_RANGES, (0x3000, 0x303F), (0xFF00, 0xFFEF))) + "]"
)


def _is_enclosing(ch: str) -> bool:
    """Quotes and brackets: set apart even between two letters ("word(s)", 'a"b"')."""
    return ch == '"' or unicodedata.category(ch) in ("Ps", "Pe", "Pi", "Pf")


def _separable(text: str, i: int, *, cjk: bool) -> bool:
    """Whether a space belongs between ``text[i - 1]`` and ``text[i]``: between a word's letters
    and the punctuation before or after it, and between two different marks ("»,").

    What tokenised corpora keep together stays together: numbers with their marks ("20.",
    "3.000", "90%"), marks inside a word ("AT&T", "3.5"), abbreviations ("U.S.", "m.in.",
    "Mr.", "ecc."), URLs and e-mail addresses, and Chinese or Japanese text.
    """
    a, b = text[i - 1], text[i]
    if a.isspace() or b.isspace():
        return False
    mark_a, mark_b = _is_mark(a), _is_mark(b)
    if not (mark_a or mark_b):
        return False
    lo, hi = i - 1, i
    while lo > 0 and i - lo < _MAX_RUN and _is_mark(text[lo - 1]):
        lo -= 1
    while hi < len(text) - 1 and hi - i < _MAX_RUN and _is_mark(text[hi + 1]):
        hi += 1
    # text[lo:hi + 1] spans the marks around the boundary; ``before``/``after`` are their neighbours.
    start = lo if mark_a else i
    end = hi if mark_b else i - 1
    before = text[start - 1] if start > 0 else " "
    after = text[end + 1] if end + 1 < len(text) else " "
    if cjk and (_CJK_CHAR.match(before) or _CJK_CHAR.match(after) or _CJK_CHAR.search(text, lo, hi + 1)):
        return False
    if mark_a and mark_b:
        return a != b
    word = a if mark_b else b
    if word.isdigit():
        return False
    run = text[start : end + 1]
    if before.isalnum() and after.isalnum() and not any(_is_enclosing(c) for c in run):
        return False
    if mark_b and b == ".":
        return not _abbreviation(text, i)
    return True


def _abbreviation(text: str, i: int) -> bool:
    """Whether the full stop at ``text[i]`` ends an abbreviation: one letter ("J."), a short
    word not in capitals ("Mr.", "гг.", "ecc."), or a word after another full stop ("U.S.")."""
    j = i
    while j > 0 and i - j <= 5 and text[j - 1].isalpha():
        j -= 1
    letters = text[j:i]
    if j > 0 and text[j - 1] == ".":
        return True
    return len(letters) == 1 or (len(letters) <= 4 and not letters.isupper())


def _inside(intervals: list[tuple[int, int]], i: int) -> bool:
    """Whether the boundary before ``text[i]`` lies within one of the sorted ``intervals``."""
    k = bisect.bisect_right(intervals, (i, float("inf"))) - 1
    return k >= 0 and intervals[k][0] < i < intervals[k][1]


def cut_windows(doc: TokenizedDoc, config: WindowingConfig, *, n_special: int) -> list[Window]:
    """Cut a tokenised document into overlapping windows at word boundaries.

    Args:
        doc: The tokenised document; its words must be at most ``window_tokens - n_special``
            tokens long (``tokenize_document`` guarantees it).
        config: Window size and overlap.
        n_special: Special tokens the model adds around each window.

    Returns:
        Windows covering every word at least once, in document order. Between two breaks
        (``doc.after_break``) the words are cut on their own: no window holds words of both
        sides, and a window's edge at a break counts as an edge of the document.
    """
    n = doc.n_words
    if n == 0:
        return []
    words = _WordTokens(doc.word_token_start.tolist(), doc.word_token_end.tolist(), doc.sentence_start.tolist())
    bounds = [0, *np.flatnonzero(doc.after_break).tolist(), n]
    windows: list[Window] = []
    for first, end in zip(bounds[:-1], bounds[1:]):
        _cut_run(words, config.window_tokens - n_special, config.overlap_tokens, first, end, windows)
    return windows


@dataclass(frozen=True, slots=True)
class _WordTokens:
    """A document's words as lists (``TokenizedDoc``'s arrays), for cutting in Python."""

    tok_start: list[int]
    tok_end: list[int]
    sentence: list[bool]


def _cut_run(words: _WordTokens, capacity: int, overlap: int, first: int, n: int, out: list[Window]) -> None:
    """Append the windows of words ``[first, n)``, which no break divides."""
    tok_start, tok_end, sentence = words.tok_start, words.tok_end, words.sentence
    s = first
    while True:
        e = bisect.bisect_right(tok_end, tok_start[s] + capacity, lo=s, hi=n)
        if e >= n:
            out.append(Window(s, n, tok_start[s], tok_end[n - 1], s == first, True))
            return
        # End at the last sentence start that still leaves the window at least half full.
        half = tok_start[s] + capacity // 2
        for b in range(e, s, -1):
            if tok_start[b] < half:
                break
            if sentence[b]:
                e = b
                break
        out.append(Window(s, e, tok_start[s], tok_end[e - 1], s == first, False))
        # The next window starts about overlap tokens before this one ends, at a sentence
        # start inside the overlap when there is one, and always moves forward.
        ns = bisect.bisect_left(tok_start, tok_start[e] - overlap, lo=s + 1, hi=e)
        for b in range(ns, e):
            if sentence[b]:
                ns = b
                break
        s = ns


def enumerate_spans(n_words: int, entity_max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """All candidate spans of a window, in SpanMarker's order.

    Returns:
        ``(start, end)``: ``int64[n_spans]`` word indices, ``end`` exclusive, ordered by start
        then length, exactly as ``SpanMarkerTokenizer.get_all_valid_spans``.
    """
    if n_words <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    lengths = np.minimum(entity_max_length, n_words - np.arange(n_words))
    starts = np.repeat(np.arange(n_words), lengths)
    group_begin = np.repeat(np.cumsum(lengths) - lengths, lengths)
    ends = starts + (np.arange(len(starts)) - group_begin) + 1
    return starts, ends


def _document_backend(tokenizer: PreTrainedTokenizerFast) -> Tokenizer:
    # A document that contains "[SEP]" or "<start>" is text, not a control token: encode
    # special tokens like any other characters.
    backend = getattr(tokenizer, "_nerflow_document_backend", None)
    if backend is None:
        from tokenizers import Tokenizer

        backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        backend.encode_special_tokens = True
        backend.no_truncation()
        backend.no_padding()
        tokenizer._nerflow_document_backend = backend
    return backend


def _blocks(text: str) -> Iterator[tuple[int, str]]:
    """Yield ``(offset, block)`` pieces of ``text`` cut at whitespace, each a few 100k chars."""
    start, n = 0, len(text)
    while start < n:
        end = min(start + _BLOCK_CHARS, n)
        if end < n:
            cut = max(text.rfind("\n", start, end), text.rfind(" ", start, end))
            if cut > start:
                end = cut
        yield start, text[start:end]
        start = end


def _cjk_and_bare_tokens(block: str, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per token of ``block``: whether it holds a CJK character, and whether it holds no
    visible character at all (a bare "▁")."""
    codes = np.frombuffer(block.encode("utf-32-le"), dtype=np.uint32)
    cjk_chars = np.zeros(len(codes) + 1, dtype=np.int64)
    for lo, hi in CJK_RANGES:
        cjk_chars[1:] += (codes >= lo) & (codes <= hi)
    visible = np.zeros(len(codes) + 1, dtype=np.int64)
    visible[1:] = ~np.isin(codes, _SPACE_CODES)
    cjk_chars, visible = np.cumsum(cjk_chars), np.cumsum(visible)
    a, b = offsets[:, 0], offsets[:, 1]
    return cjk_chars[b] > cjk_chars[a], visible[b] == visible[a]


def _cjk_token_starts(cjk: np.ndarray, bare: np.ndarray, word_ids: np.ndarray) -> np.ndarray:
    """Tokens that begin a word because of Chinese or Japanese script.

    Those scripts put no space between words, so a tokenizer's pre-tokenizer leaves a whole
    clause as one "word". Here every token with a CJK character is a word of its own, and so
    is the token after one: for SentencePiece that is the encoder's own pieces ("日本" stays
    one piece, one word). A bare "▁" before a CJK token stays with it.
    """
    if len(cjk) == 0:
        return np.zeros(0, dtype=bool)
    start: np.ndarray = cjk | np.r_[False, cjk[:-1]]
    same_word = np.r_[False, word_ids[1:] == word_ids[:-1]]
    start[1:] &= ~(cjk[1:] & bare[:-1] & same_word[1:])
    return start


def _join_words_sharing_characters(starts: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Word starts (token indices) after joining each word that begins inside the characters
    of the words before it to them.

    Normalisation can turn one character into several words: NFKC maps U+FDFA (an Arabic
    honorific ligature) to four space-separated words, U+00A8 to a space and a combining mark,
    and every piece reports the offsets of the one original character. Entities on two of
    those words would be two entities with the same characters.
    """
    if len(starts) < 2:
        return starts
    word_char_start = offsets[starts, 0]
    word_char_end = np.maximum.reduceat(offsets[:, 1], starts)
    inside = word_char_start[1:] < np.maximum.accumulate(word_char_end)[:-1]
    return starts[np.r_[True, ~inside]] if inside.any() else starts


def _disjoint(char_start: np.ndarray, char_end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Pieces of a word cut at a window's length can still share a character that became
    # several tokens; a piece keeps only what the pieces before it did not cover (possibly
    # nothing), so entities on different words never share a character.
    if len(char_start) < 2:
        return char_start, char_end
    covered = np.r_[0, np.maximum.accumulate(char_end)[:-1]]
    start = np.maximum(char_start, covered)
    return start, np.maximum(char_end, start)


def _split_long_words(starts: np.ndarray, ends: np.ndarray, max_tokens: int) -> tuple[np.ndarray, np.ndarray, int]:
    lengths = ends - starts
    too_long = lengths > max_tokens
    if not too_long.any():
        return starts, ends, 0
    pieces = np.where(too_long, -(-lengths // max_tokens), 1)
    new_starts = (
        np.repeat(starts, pieces)
        + (np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces)) * max_tokens
    )
    new_ends = np.minimum(new_starts + max_tokens, np.repeat(ends, pieces))
    return new_starts, new_ends, int(too_long.sum())


def _invisible(ch: str) -> bool:
    """Whitespace, control and format characters (zero-width space, BOM, soft hyphen)."""
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf")


def _strip_whitespace(text: str, char_start: np.ndarray, char_end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # SentencePiece tokens carry the word-boundary space; an entity must never start or end
    # with whitespace or a zero-width character, so each word's range is trimmed to its
    # visible characters (a word of only invisible characters becomes empty).
    cs, ce = char_start.tolist(), char_end.tolist()
    for i in range(len(cs)):
        a, b = cs[i], ce[i]
        if a < b and (_invisible(text[a]) or _invisible(text[b - 1])):
            while a < b and _invisible(text[a]):
                a += 1
            while b > a and _invisible(text[b - 1]):
                b -= 1
            cs[i], ce[i] = a, b
    return np.asarray(cs, dtype=np.int64), np.asarray(ce, dtype=np.int64)


def _after_breaks(char_start: np.ndarray, breaks: Sequence[int]) -> np.ndarray:
    """Per word, whether it is the first word at or after one of ``breaks`` (never word 0: a
    break before the first word ends no context)."""
    out = np.zeros(len(char_start), dtype=bool)
    if len(breaks) and len(char_start):
        first = np.searchsorted(char_start, np.asarray(breaks, dtype=np.int64), side="left")
        out[first[(first > 0) & (first < len(char_start))]] = True
    return out


def _sentence_starts(text: str, char_start: np.ndarray, char_end: np.ndarray) -> np.ndarray:
    n = len(char_start)
    out = np.zeros(n, dtype=bool)
    if n:
        out[0] = True
    cs, ce = char_start.tolist(), char_end.tolist()
    prev_end = ce[0] if n else 0
    for i in range(1, n):
        if cs[i] == ce[i]:
            continue
        gap = text[prev_end : cs[i]]
        # A closing bracket or quote ends the sentence before it; it never starts one.
        out[i] = "\n" in gap or (text[cs[i]] not in _CLOSING_ONLY and _ends_sentence(text, prev_end, spaced=gap != ""))
        prev_end = ce[i]
    return out


def _ends_sentence(text: str, end: int, *, spaced: bool) -> bool:
    """Whether the text before ``end`` closes a sentence (a terminator, then at most two closers)."""
    j = end
    while j > 0 and end - j < 2 and text[j - 1] in _CLOSERS:
        j -= 1
    if j == 0:
        return False
    c = text[j - 1]
    return c in _SENTENCE_END_UNSPACED or (spaced and c in _SENTENCE_END)


def _empty(doc_id: str, text: str) -> TokenizedDoc:
    z = np.zeros(0, dtype=np.int64)
    return TokenizedDoc(
        doc_id=doc_id,
        text=text,
        input_ids=z,
        word_token_start=z,
        word_token_end=z,
        word_char_start=z,
        word_char_end=z,
        sentence_start=np.zeros(0, dtype=bool),
        after_break=np.zeros(0, dtype=bool),
    )
