"""Text files in any encoding: decode them, or say why not, but never guess into mojibake.

Text arrives in more than UTF-8: Windows code pages from old office machines (cp1251 for
Russian, cp1252 for Western Europe), GB18030 and Shift-JIS from Chinese and Japanese systems,
UTF-16 from PowerShell exports. A wrong guess is worse than no guess: mojibake ("Ð’Ñ‡ÐµÑ€Ð°")
flows into the model and the ``documents`` table as if it were text, and its entities are
garbage nobody notices. So :func:`decode_text` decides in order of certainty and refuses
when it is not sure enough:

1. A byte order mark decides (confidence 1.0). UTF-32 LE is tested before UTF-16 LE because
   its mark, ``FF FE 00 00``, starts with UTF-16 LE's ``FF FE``.
2. NUL bytes: only UTF-16/32 text has them, so UTF-16/32 without a mark if charset-normalizer
   finds it with enough confidence, else "binary content: not text" (ASCII control bytes are
   valid UTF-8, so this comes before step 4).
3. ISO-2022-JP (7-bit, escape sequences; older Japanese mail): it is valid ASCII, so step 4
   would otherwise keep its escape codes as text.
4. Bytes that are valid UTF-8 are UTF-8 (1.0): a legacy code page rarely yields valid UTF-8
   by chance once it has a few non-ASCII letters, and pure ASCII is the same in both.
5. charset-normalizer over the legacy code pages of :data:`CANDIDATE_ENCODINGS` (and
   UTF-16/32), with the confidence below; under ``min_confidence`` the file is refused.

Confidence of a charset-normalizer match, in [0, 1]::

    confidence   = cleanliness × (0.5 + 0.5 × evidence) × plainness × ambiguity
    cleanliness  = max(0, 1 − chaos / 0.2)
    evidence     = min(1, coherence / 0.25), or for a CJK multi-byte code page, if larger,
                   min(1, core / 80) × (core / wide)²
    plainness    = max(0, 1 − 5 × odd / length)
    ambiguity    = 0.8 if the pick had to be broken by preference among equally good
                   candidates that decode to different text, else 1.0

``chaos`` is charset-normalizer's mess ratio (0 clean; it drops a candidate at 0.2, its own
threshold, so cleanliness falls from 1 to 0 over the range it keeps). ``coherence`` is how
well the letter frequencies fit the language it recognises (it reports none under 0.1, so a
recognised language gives at least 0.7 of the middle factor; Chinese and Japanese score low,
0.12–0.2, hence the divisor 0.25). Its frequency tables know no Traditional Chinese and little
Korean, so for CJK code pages the decoded characters are evidence too: ``wide`` are the
non-ASCII characters, ``core`` those in the code page's strict core (GB2312 for GB18030,
KS X 1001 for cp949), because GB18030 and cp949 accept almost any pair of high bytes and random
data decodes in them. ``odd`` counts characters that are neither letters, marks, digits,
spaces nor common punctuation: prose has next to none, random bytes read by a single-byte code
page one in six or more, and charset-normalizer's mess ratio lets such samples pass when short.

``min_confidence`` defaults to 0.6: above the 0.5 of clean text in no recognised language (a
few accented letters among names and digits: every Latin code page decodes them without a
mess, and which one is right is a coin toss), below the 0.7 that clean text in a recognised
language gets. On the samples of ``tests/samples_text.py`` cp1251, cp1252, GB18030 and
Shift-JIS all score 1.0 (a short Korean EUC-KR text 0.79, Big5 0.72). Of 600 random byte
strings without NULs (16, 64 and 512 bytes), 516 get no match at all and the best of the
others scores 0.50 (UTF-16 LE on 16 bytes).

Ties: charset-normalizer ranks code pages of one script (cp1250, cp1252, cp1257, …) equal when
they decode the sample without a mess and to one language's letters, then keeps the first it
tried, which can be wrong (French "è" read as cp1250's "č"). Among such tied candidates, the
one whose encoding is the usual code page of the language recognised in its own decoding
wins (Czech in cp1250, French in cp1252), then the order of :data:`CANDIDATE_ENCODINGS`.
"""

from __future__ import annotations

import codecs
import unicodedata
from dataclasses import dataclass

from charset_normalizer import from_bytes
from charset_normalizer.models import CharsetMatch

from nerflow.etl.extraction.document import DocumentInfo, ExtractedDocument, ExtractionError, TextBuilder
from nerflow.etl.normal_form import normalise_text

__all__ = [
    "bom_encoding",
    "CANDIDATE_ENCODINGS",
    "DEFAULT_MIN_CONFIDENCE",
    "DecodedText",
    "decode_text",
    "extract_text",
]

DEFAULT_MIN_CONFIDENCE = 0.6
"""See the module docstring: above text in no recognised language, below recognised text."""

# Longest mark first: UTF-32 LE's FF FE 00 00 starts with UTF-16 LE's FF FE.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

_UTF_16_32 = ("utf_16", "utf_16_le", "utf_16_be", "utf_32", "utf_32_le", "utf_32_be")

CANDIDATE_ENCODINGS: tuple[str, ...] = (
    "cp1252",
    "cp1251",
    "gb18030",
    "shift_jis",
    "cp932",
    "euc_jp",
    "big5",
    "euc_kr",
    "cp949",
    "cp1250",
    "cp1253",
    "cp1254",
    "cp1255",
    "cp1256",
    "cp1257",
    "cp874",
    "koi8_r",
    "koi8_u",
    "cp866",
    "iso8859_2",
    "iso8859_5",
    "iso8859_7",
    "latin_1",
)
"""Legacy encodings charset-normalizer may pick, in order of preference for ties. Files come in
these; rarer code pages (Mac, DOS Western, cp1258, ISO 8859-10, …) are left out on purpose:
they decode short samples as cleanly as the right one and would win ties they should not."""

# The usual legacy code page per language charset-normalizer recognises in Latin script;
# unlisted Latin languages are taken to be cp1252's.
_LATIN_CODE_PAGE = {
    "Czech": "cp1250",
    "Slovak": "cp1250",
    "Polish": "cp1250",
    "Hungarian": "cp1250",
    "Slovene": "cp1250",
    "Croatian": "cp1250",
    "Romanian": "cp1250",
    "Lithuanian": "cp1257",
    "Latvian": "cp1257",
    "Estonian": "cp1257",
    "Turkish": "cp1254",
}
_LATIN_PAGES = frozenset({"cp1250", "cp1252", "cp1254", "cp1257", "iso8859_2", "latin_1"})

# charset-normalizer's own ceiling on mess: it drops candidates at or above it.
_CHAOS_LIMIT = 0.2
_COHERENCE_FULL = 0.25
_AMBIGUITY_FACTOR = 0.8
# Within these margins charset-normalizer's ranking is a coin toss (its own tie band is
# 0.005 chaos and 0.02 coherence; coherence of different decodings varies a little more).
_TIE_CHAOS = 0.01
_TIE_COHERENCE = 0.05

# CJK code pages whose byte sequences are checked strictly by the decoder: many characters
# decoded without error are evidence of their own, which charset-normalizer's coherence does
# not give (it knows no Traditional Chinese frequencies at all, and few Korean).
# GB18030 and cp949 accept almost any pair of high bytes, so only characters of their strict
# cores (GB2312, KS X 1001) count, weighted by their share squared: real text is nearly all
# core characters, random bytes a quarter to two fifths.
_MULTI_BYTE_CORE = {
    "gb18030": "gb2312",
    "cp949": "euc_kr",
    "euc_kr": "euc_kr",
    "big5": "big5",
    "shift_jis": "shift_jis",
    "cp932": "shift_jis",
    "euc_jp": "euc_jp",
}
_MULTI_BYTE_FULL = 80

# Prose is letters, digits, spaces and a little punctuation; bytes that are no text, read by a
# code page that maps every byte, are one part in six or more symbols and control characters
# ("}#+\\®‚§‡˛"), which charset-normalizer's mess ratio lets pass on short samples.
_TEXT_PUNCTUATION = frozenset("\t\n\r\x0b\x0c.,;:!?'\"()[]-/%&«»„“”‘’‚…–—·、。，：；！？（）「」『』《》【】・")
_ODD_WEIGHT = 5

_ISO2022_JP_ESCAPES = (b"\x1b$B", b"\x1b$@", b"\x1b(J")


@dataclass(frozen=True)
class DecodedText:
    """Decoded text and how it was decoded.

    Attributes:
        text: The text, without a byte order mark, not yet normalised.
        encoding: Python's codec name (``"utf-8"``, ``"utf-16-le"``, ``"cp1251"``, …).
        confidence: How sure the detection is, in [0, 1]: 1.0 for a byte order mark or valid
            UTF-8, else the formula of the module docstring.
    """

    text: str
    encoding: str
    confidence: float


def bom_encoding(data: bytes) -> str | None:
    """The encoding a byte-order mark at the start of ``data`` names (``"utf-8"``,
    ``"utf-16-le"``, …), or None."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding.removesuffix("-sig")
    return None


def decode_text(data: bytes, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> DecodedText:
    """Decode ``data`` by the steps of the module docstring.

    Raises:
        ExtractionError: ``"binary content: not text"`` (NUL bytes and not UTF-16/32), or
            ``"encoding not determined with confidence: best guess <enc> at <conf>"``.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return DecodedText(data[len(bom) :].decode(encoding.removesuffix("-sig")), encoding, 1.0)
            except UnicodeDecodeError as e:
                raise ExtractionError(
                    f"not valid {encoding}: it starts with a {encoding} byte order mark, "
                    f"but has an invalid byte at offset {e.start + len(bom)}"
                ) from None
    if b"\x00" in data:
        # Only UTF-16/32 hold NULs in text; charset-normalizer limited to them, else binary.
        best = _best_match(data, _UTF_16_32)
        if best is None or best[1] < min_confidence:
            raise ExtractionError("binary content: not text")
        return _decoded(data, *best)
    if data.isascii() and any(escape in data for escape in _ISO2022_JP_ESCAPES):
        try:
            return DecodedText(data.decode("iso2022_jp"), "iso2022-jp", 1.0)
        except UnicodeDecodeError:
            pass
    try:
        return DecodedText(data.decode("utf-8"), "utf-8", 1.0)
    except UnicodeDecodeError:
        pass
    best = _best_match(data, (*CANDIDATE_ENCODINGS, *_UTF_16_32))
    return _checked(data, best, min_confidence)


def _checked(data: bytes, best: tuple[str, float] | None, min_confidence: float) -> DecodedText:
    if best is None:
        raise ExtractionError("encoding not determined with confidence: best guess none at 0.00")
    encoding, confidence = best
    if confidence < min_confidence:
        raise ExtractionError(
            f"encoding not determined with confidence: best guess {_codec_name(encoding)} at {confidence:.2f}"
        )
    return _decoded(data, encoding, confidence)


def extract_text(data: bytes) -> ExtractedDocument:
    """A text file as a document: one ``"paragraph"`` segment (block ``p[N]``, 1-based) per
    paragraph, paragraphs being separated by blank lines.

    Raises:
        ExtractionError: The bytes are not text or their encoding is uncertain
            (:func:`decode_text`).
    """
    decoded = decode_text(data)
    # In the normal form a blank line is exactly "\n\n", whatever the file's line ends and
    # whitespace-only lines were, so splitting the normalised text finds every paragraph.
    # The Polars rules: no source map is needed here, and the Python one holds a list entry
    # per character (1.3 GB and 15 s for a 20 MB file).
    text = normalise_text(decoded.text)
    builder = TextBuilder()
    for number, paragraph in enumerate(text.split("\n\n") if text else [], start=1):
        builder.add(paragraph, kind="paragraph", block=f"p[{number}]")
    info = DocumentInfo(format="text", encoding=decoded.encoding, encoding_confidence=decoded.confidence)
    return builder.build(info)


def _decoded(data: bytes, encoding: str, confidence: float) -> DecodedText:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        # charset-normalizer reads samples of long files; a bad byte outside them is found here.
        raise ExtractionError(
            f"encoding not determined with confidence: best guess {_codec_name(encoding)} "
            f"at {confidence:.2f} does not decode the whole file"
        ) from None
    return DecodedText(text, _codec_name(encoding), confidence)


def _best_match(data: bytes, encodings: tuple[str, ...]) -> tuple[str, float] | None:
    """The encoding to decode ``data`` with and its confidence, or None when
    charset-normalizer finds none (random bytes, binary)."""
    matches = list(from_bytes(data, cp_isolation=list(encodings)))
    if not matches:
        return None
    best = matches[0]
    tied = [m for m in matches if m.chaos <= best.chaos + _TIE_CHAOS and m.coherence >= best.coherence - _TIE_COHERENCE]
    consistent = [m for m in tied if _fits_language(m)]
    pool = consistent or tied
    chosen = min(pool, key=lambda m: _preference(_reported(m, encodings)))
    ambiguous = any(str(m) != str(chosen) for m in pool if m is not chosen)
    confidence = _confidence(chosen) * (_AMBIGUITY_FACTOR if ambiguous else 1.0)
    return _reported(chosen, encodings), round(confidence, 4)


def _confidence(match: CharsetMatch) -> float:
    """The module docstring's formula."""
    cleanliness = max(0.0, 1.0 - match.chaos / _CHAOS_LIMIT)
    evidence = min(1.0, match.coherence / _COHERENCE_FULL)
    core = _MULTI_BYTE_CORE.get(match.encoding)
    if core is not None:
        wide = [ch for ch in str(match) if ord(ch) > 0x7F]
        in_core = sum(1 for ch in wide if _encodable(ch, core))
        if in_core:
            share = in_core / len(wide)
            evidence = max(evidence, min(1.0, in_core / _MULTI_BYTE_FULL) * share * share)
    text = str(match)
    odd = sum(1 for ch in text if ch not in _TEXT_PUNCTUATION and unicodedata.category(ch)[0] not in "LMNZ")
    plainness = max(0.0, 1.0 - _ODD_WEIGHT * odd / max(1, len(text)))
    return cleanliness * (0.5 + 0.5 * evidence) * plainness


def _encodable(ch: str, encoding: str) -> bool:
    try:
        ch.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def _fits_language(match: CharsetMatch) -> bool:
    """Whether the match's encoding is the usual one for the language recognised in its
    decoding (for Latin code pages; other scripts' encodings are told apart by charset-
    normalizer already)."""
    if match.encoding not in _LATIN_PAGES:
        return True
    if match.coherence <= 0:
        return False
    return _LATIN_CODE_PAGE.get(match.language, "cp1252") == match.encoding


def _reported(match: CharsetMatch, encodings: tuple[str, ...]) -> str:
    """Of the encodings that give the very same text, the preferred one: the sample decodes
    identically in cp1252 and cp1250 when it has only "ü" and "ß", and cp1252 is the usual one."""
    same = [e for e in match.could_be_from_charset if e in encodings]
    return min(same or [match.encoding], key=_preference)


def _preference(encoding: str) -> int:
    try:
        return CANDIDATE_ENCODINGS.index(encoding)
    except ValueError:
        return len(CANDIDATE_ENCODINGS)


def _codec_name(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        return encoding
