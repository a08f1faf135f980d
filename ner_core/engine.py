"""The NER engine: documents in, entities out, as a stream.

``NerEngine(model).predict(docs)`` tokenises each document once, cuts it into windows,
packs windows of many documents into length-sorted batches under a token budget, scores
every candidate span, decodes each window as SpanMarker does and merges the windows of a
document back into character offsets of its text. Documents are read in chunks of about
``lookahead_tokens`` window tokens, and the windows of a longer document are scored a
lookahead at a time, so the model inputs in memory are bounded by that budget, never by the
corpus or a document's length (up to about 1.5 times the budget; a document's tokens and
entities are held whole).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import TypeVar

import numpy as np

from ner_core.batching import pack_by_budget
from ner_core.decoding import Candidate, entity_char_range, merge_candidates, select_spans, without_unpaired_quotes
from ner_core.documents import Doc, DocResult, Entity
from ner_core.errors import InferenceError
from ner_core.inference import (
    PRECISIONS,
    SpanScorer,
    WindowInput,
    WindowScores,
    make_scorer,
    special_tokens,
    window_input,
)
from ner_core.loading import NerModel
from ner_core.memory import HeapGuard
from ner_core.span_filter import parse_span_filter
from ner_core.windowing import TokenizedDoc, Window, WindowingConfig, cut_windows, enumerate_spans, tokenize_document

__all__ = ["EngineConfig", "EngineStats", "NerEngine"]

logger = logging.getLogger(__name__)

EMBEDDINGS = ("none", "marker", "mean")
_NO_EDGE = 1 << 30

_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """How the engine runs a model.

    Attributes:
        window_tokens: Tokens per window with special tokens; ``None`` uses the model's
            ``model_max_length`` (a larger value is refused: the model never saw it).
        overlap_tokens: Tokens shared by consecutive windows; ``None`` is an eighth of the
            window (32 tokens for 256-token windows).
        batch_tokens: Token budget of one forward pass (text plus markers, padded).
        max_batch_windows: Most windows in one forward pass.
        lookahead_tokens: Window tokens gathered before sorting into batches, and the size
            of the parts a longer document is scored in; bounds memory.
        precision: ``"exact"`` (float32, identical to SpanMarker) or ``"fast"`` (bf16
            autocast on CPUs with AMX/AVX-512-BF16, int8 dynamic quantisation on other CPUs,
            bf16/fp16 on CUDA; see ``ner_core.inference.cpu_fast_kind``).
        strategy: ``"auto"``, ``"text_once"`` or ``"padded"`` (see ``ner_core.inference``).
        embeddings: ``"none"``, ``"marker"`` (concatenated start/end marker states, what the
            classifier sees) or ``"mean"`` (mean of the span's text-token states).
        min_context_words: When windows disagree about overlapping entities, one with at
            least this many words of context on each side counts as fully seen.
        space_punctuation: Read text with a space between each word and the punctuation
            around it, as in the tokenised corpora models are trained on ("«Газпром»," as
            "« Газпром » ,"; ``ner_core.windowing.spaced_punctuation``). Entities keep the
            original characters. ``False`` reads the text as it is, as SpanMarker does.
        trim_unpaired_quotes: Take a quotation mark off an entity's edge when it pairs with
            none inside ("Газпром»" becomes "Газпром"; ``ner_core.decoding``).
        span_filter: Which candidate spans get marker pairs (``ner_core.span_filter``):
            ``"auto"`` (the default) the model's span filter at its stored operating point when
            it carries one, else every span; ``"off"`` every span (exact mode's work,
            identical to SpanMarker); ``"stored"``; ``"threshold=P"``; ``"budget=K"`` spans per word.
    """

    window_tokens: int | None = None
    overlap_tokens: int | None = None
    batch_tokens: int = 2048
    max_batch_windows: int = 64
    lookahead_tokens: int = 65536
    precision: str = "exact"
    strategy: str = "auto"
    embeddings: str = "none"
    min_context_words: int = 8
    space_punctuation: bool = True
    trim_unpaired_quotes: bool = True
    # "auto": a model's filter is used when it carries one, since with the default model's
    # filter every dev set kept strict F1 within 0.3 points of exact mode on held-out dev
    # sentences (docs/performance.md, "Span filter"). "off" is exact mode's work.
    span_filter: str = "auto"

    def __post_init__(self) -> None:
        parse_span_filter(self.span_filter)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.embeddings not in EMBEDDINGS:
            raise ValueError(f"embeddings must be one of {EMBEDDINGS}, got {self.embeddings!r}")
        if self.strategy not in ("auto", "text_once", "padded"):
            raise ValueError(f"strategy must be 'auto', 'text_once' or 'padded', got {self.strategy!r}")
        for name in ("batch_tokens", "max_batch_windows", "lookahead_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.min_context_words < 0:
            raise ValueError(f"min_context_words must not be negative, got {self.min_context_words}")


@dataclass
class EngineStats:
    """Counters of one engine, cumulative over its ``predict`` calls."""

    documents: int = 0
    words: int = 0
    tokens: int = 0
    windows: int = 0
    spans: int = 0
    spans_scored: int = 0
    encoder_tokens: int = 0
    batches: int = 0
    split_words: int = 0
    window_duplicates: int = 0
    dropped_invisible: int = 0
    seconds_tokenising: float = 0.0
    seconds_scoring: float = 0.0
    seconds_decoding: float = 0.0

    def __add__(self, other: EngineStats) -> EngineStats:
        """Counters of both, field by field (the stats of several batches or engines)."""
        return EngineStats(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def __sub__(self, other: EngineStats) -> EngineStats:
        """Counters since ``other``, an earlier copy of the same engine's stats."""
        return EngineStats(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})


@dataclass(eq=False)
class _PendingDoc:
    tokens: TokenizedDoc
    windows: list[Window]
    candidates: list[Candidate] = field(default_factory=list)


class NerEngine:
    """Runs a SpanMarker model over documents of any length.

    Example:
        >>> engine = NerEngine(load_model("path/to/model"))
        >>> for result in engine.predict(["Angela Merkel visited Paris."]):
        ...     print([(e.text, e.label) for e in result.entities])
    """

    def __init__(
        self, model: NerModel, config: EngineConfig | None = None, *, scorer: SpanScorer | None = None
    ) -> None:
        self.model = model
        self.config = config or EngineConfig()
        window_tokens = self.config.window_tokens or model.model_max_length
        if window_tokens > model.model_max_length:
            raise ValueError(
                f"window_tokens {window_tokens} exceeds the model's model_max_length {model.model_max_length}"
            )
        overlap = self.config.overlap_tokens if self.config.overlap_tokens is not None else window_tokens // 8
        self.windowing = WindowingConfig(window_tokens=window_tokens, overlap_tokens=overlap)
        self.scorer = scorer or make_scorer(
            model,
            strategy=self.config.strategy,
            precision=self.config.precision,
            embeddings=self.config.embeddings,
            span_filter=self.config.span_filter,
        )
        self._prefix, self._suffix = special_tokens(model.tokenizer)
        self._capacity = window_tokens - len(self._prefix) - len(self._suffix)
        self.stats = EngineStats()
        self.heap_guard = HeapGuard()

    def predict(self, docs: Iterable[str | Doc]) -> Iterator[DocResult]:
        """Annotate documents, yielding one result per document in input order.

        Args:
            docs: Strings (given ids ``"0"``, ``"1"``, … in order) or :class:`Doc` records.

        Yields:
            A :class:`DocResult` per document, as soon as its chunk is done.
        """
        chunk: list[_PendingDoc] = []
        chunk_tokens = 0
        for i, doc in enumerate(docs):
            if isinstance(doc, str):
                doc = Doc(doc_id=str(i), text=doc)
            pending = self._prepare(doc)
            chunk.append(pending)
            chunk_tokens += sum(w.n_tokens for w in pending.windows)
            if chunk_tokens >= self.config.lookahead_tokens:
                yield from self._run(chunk)
                chunk, chunk_tokens = [], 0
        if chunk:
            yield from self._run(chunk)

    @property
    def span_filter_rule(self) -> str:
        """The span filter as run: ``"off"`` (every span scored) or its rule."""
        selection = getattr(self.scorer, "selection", None)
        return "off" if selection is None else selection.describe

    def predict_text(self, text: str, doc_id: str = "0") -> DocResult:
        """Annotate a single text."""
        return next(self.predict([Doc(doc_id=doc_id, text=text)]))

    def window_inputs(self, doc: Doc) -> list[WindowInput]:
        """The model inputs of a document's windows, as the scorer receives them (for
        measuring or comparing scorers on exactly what the engine would run)."""
        pending = self._prepare(doc)
        return [
            self._window_input(pending.tokens, w, enumerate_spans(w.n_words, self.model.entity_max_length))
            for w in pending.windows
        ]

    def _prepare(self, doc: Doc) -> _PendingDoc:
        t0 = time.perf_counter()
        tokens = tokenize_document(
            self.model.tokenizer,
            doc.doc_id,
            doc.text,
            max_word_tokens=self._capacity,
            cjk_pieces=self.model.cjk_words == "pieces",
            space_punctuation=self.config.space_punctuation,
            breaks=doc.breaks,
        )
        windows = cut_windows(tokens, self.windowing, n_special=len(self._prefix) + len(self._suffix))
        self.stats.seconds_tokenising += time.perf_counter() - t0
        return _PendingDoc(tokens, windows)

    def _run(self, chunk: list[_PendingDoc]) -> Iterator[DocResult]:
        items = [(d, w) for d in chunk for w in d.windows]
        # A chunk is about lookahead_tokens of windows, unless one document is longer: its
        # windows' model inputs are then built and scored about a lookahead at a time, so that
        # the memory they take is bounded by the lookahead, not by the document's length.
        for part in _parts(items, [w.n_tokens for _, w in items], self.config.lookahead_tokens):
            self._score(part)
        for pending in chunk:
            yield self._finish(pending)

    def _score(self, items: list[tuple[_PendingDoc, Window]]) -> None:
        """Score the windows of ``items`` and add their candidates to their documents."""
        # Candidate spans are enumerated once per window, for the model input and the decoding.
        spans = [enumerate_spans(w.n_words, self.model.entity_max_length) for _, w in items]
        inputs = [self._window_input(d.tokens, w, s) for (d, w), s in zip(items, spans)]
        costs = [self.scorer.cost(x) for x in inputs]
        batches = pack_by_budget(costs, self.config.batch_tokens, max_items=self.config.max_batch_windows)
        for batch in batches:
            t0 = time.perf_counter()
            try:
                scored = self.scorer.score([inputs[i] for i in batch])
            except RuntimeError as e:
                ids = tuple(sorted({items[i][0].tokens.doc_id for i in batch}))
                raise InferenceError(f"model failed on a batch of {len(batch)} windows: {e}", doc_ids=ids) from e
            # Freed activations stay in malloc's heap, which grows with every new batch shape
            # unless trimmed now and then (ner_core.memory).
            self.heap_guard.check()
            t1 = time.perf_counter()
            for i, scores in zip(batch, scored):
                pending, window = items[i]
                pending.candidates.extend(self._decode_window(window, spans[i], inputs[i], scores))
            self.stats.seconds_scoring += t1 - t0
            self.stats.seconds_decoding += time.perf_counter() - t1
            self.stats.batches += 1
            for i, scores in zip(batch, scored):
                self.stats.spans += inputs[i].n_spans
                self.stats.spans_scored += scores.n_scored
                # With a span filter the cost was an estimate: count the markers it kept.
                self.stats.encoder_tokens += (
                    costs[i] if scores.scored is None else inputs[i].n_tokens + 2 * scores.n_scored
                )

    def _window_input(self, doc: TokenizedDoc, w: Window, spans: tuple[np.ndarray, np.ndarray]) -> WindowInput:
        return window_input(doc, w, spans, self._prefix, self._suffix)

    def _decode_window(
        self, w: Window, spans: tuple[np.ndarray, np.ndarray], x: WindowInput, s: WindowScores
    ) -> list[Candidate]:
        starts, ends = spans
        kept = select_spans(s.scores, s.label_ids, starts, ends, w.n_words, self.model.outside_id)
        out = []
        for i in kept:
            a, b = int(starts[i]), int(ends[i])
            left = _NO_EDGE if w.at_doc_start else a
            right = _NO_EDGE if w.at_doc_end else w.n_words - b
            out.append(
                Candidate(
                    word_start=w.word_start + a,
                    word_end=w.word_start + b,
                    label_id=int(s.label_ids[i]),
                    score=float(s.scores[i]),
                    context=min(left, right),
                    embedding=self._embedding(x, s, i),
                )
            )
        return out

    def _embedding(self, x: WindowInput, s: WindowScores, i: int) -> np.ndarray | None:
        if self.config.embeddings == "marker":
            # The scorer was made with marker_states=True for these embeddings (make_scorer).
            assert s.marker_states is not None
            return np.array(s.marker_states[i], dtype=np.float32)
        if self.config.embeddings == "mean":
            # The scorer was made with token_states=True for these embeddings (make_scorer).
            assert s.token_states is not None
            mean: np.ndarray = s.token_states[x.start_pos[i] : x.end_pos[i] + 1].mean(axis=0)
            return mean.astype(np.float32)
        return None

    def _finish(self, pending: _PendingDoc) -> DocResult:
        doc = pending.tokens
        merged, duplicates = merge_candidates(
            pending.candidates, doc.n_words, min_context=self.config.min_context_words
        )
        entities = []
        labels = self.model.labels
        for c in merged:
            span = entity_char_range(doc.word_char_start, doc.word_char_end, c.word_start, c.word_end)
            if span is None:
                # Words of only whitespace or zero-width characters: no text to report.
                logger.debug("doc %s: dropped a %s span with no visible characters", doc.doc_id, labels[c.label_id])
                self.stats.dropped_invisible += 1
                continue
            start, end = span
            if self.config.trim_unpaired_quotes:
                start, end = without_unpaired_quotes(doc.text, start, end)
                if start == end:
                    logger.debug("doc %s: dropped a %s span of only a quotation mark", doc.doc_id, labels[c.label_id])
                    continue
            entities.append(
                Entity(
                    doc_id=doc.doc_id,
                    start=start,
                    end=end,
                    text=doc.text[start:end],
                    label=labels[c.label_id],
                    score=c.score,
                    embedding=c.embedding,
                )
            )
        st = self.stats
        st.documents += 1
        st.words += doc.n_words
        st.tokens += doc.n_tokens
        st.windows += len(pending.windows)
        st.split_words += doc.n_split_words
        st.window_duplicates += duplicates
        return DocResult(
            doc_id=doc.doc_id,
            entities=tuple(entities),
            n_chars=len(doc.text),
            n_tokens=doc.n_tokens,
            n_words=doc.n_words,
            n_windows=len(pending.windows),
            n_split_words=doc.n_split_words,
            n_window_duplicates=duplicates,
        )


def _parts(items: list[_T], tokens: list[int], budget: int) -> list[list[_T]]:
    """``items`` cut into consecutive parts of about ``budget`` tokens each.

    The number of parts is ``sum(tokens) / budget`` rounded, so a chunk that its last document
    took a little over the budget stays whole (its batches are sorted across all of it), and
    the parts of a longer one are of even size, at most about 1.5 times the budget.
    """
    total = sum(tokens)
    n = max(1, round(total / budget))
    parts: list[list[_T]] = []
    current: list[_T] = []
    filled = 0
    for item, t in zip(items, tokens):
        current.append(item)
        filled += t
        if len(parts) < n - 1 and filled * n >= total * (len(parts) + 1):
            parts.append(current)
            current = []
    if current:
        parts.append(current)
    return parts
