"""Score every candidate span of a batch of windows with a SpanMarker model.

Two ways to run the same model, with the same result:

* :class:`PaddedScorer` builds exactly the inputs of SpanMarker's data collator (markers
  after the text, position ids shifted by 2, the 2-D attention mask per sample, at most
  ``marker_max_length`` marker pairs per sample) but pads each batch only to its longest
  sample. It works with any encoder SpanMarker supports.
* :class:`TextOnceScorer` uses what that attention mask implies: text tokens never attend
  to markers, and a marker pair sees only the text and itself. So a window's text is
  encoded once, however many samples its spans would need, and all of its marker pairs
  attend to the text's keys in one pass. It runs the encoder's own BERT-family layers
  (BERT, RoBERTa, XLM-R) module by module; dense layers see only real tokens, no padding.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypedDict, Unpack, cast

import numpy as np
import torch
import torch.nn.functional as F

from ner_core.batching import round_up
from ner_core.loading import NerModel
from ner_core.span_filter import (
    SpanSelection,
    batch_span_positions,
    parse_span_filter,
    span_selection,
)
from ner_core.windowing import TokenizedDoc, Window

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "WindowInput",
    "WindowScores",
    "SpanScorer",
    "PaddedScorer",
    "TextOnceScorer",
    "make_scorer",
    "collate_samples",
    "special_tokens",
    "window_input",
    "supports_text_once",
    "cpu_fast_kind",
    "PRECISIONS",
]

logger = logging.getLogger(__name__)

PRECISIONS = ("exact", "fast")
# The half types of fast precision, by ``SpanScorer.fast_kind`` (``None`` in exact mode).
HALF_DTYPES: dict[str | None, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


class _ScorerOptions(TypedDict, total=False):
    """The keyword arguments every :class:`SpanScorer` takes."""

    precision: str
    marker_states: bool
    token_states: bool


class _SpanMarkerModel(Protocol):
    """What the scorers use of a ``SpanMarkerModel`` (``NerModel.span_marker``)."""

    encoder: torch.nn.Module
    classifier: torch.nn.Module


class _BertSelfAttention(Protocol):
    query: torch.nn.Module
    key: torch.nn.Module
    value: torch.nn.Module
    num_attention_heads: int
    attention_head_size: int


class _BertAddNorm(Protocol):
    """``BertSelfOutput``/``BertOutput``: a dense map, then residual and LayerNorm."""

    dense: torch.nn.Module
    LayerNorm: torch.nn.Module

    def __call__(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor: ...


class _BertAttention(Protocol):
    self: _BertSelfAttention
    output: _BertAddNorm


class _BertIntermediate(Protocol):
    dense: torch.nn.Module
    intermediate_act_fn: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, hidden_states: torch.Tensor) -> torch.Tensor: ...


class _BertLayer(Protocol):
    """A BERT-family encoder layer, as :func:`supports_text_once` checks it."""

    attention: _BertAttention
    intermediate: _BertIntermediate
    output: _BertAddNorm


class _BertLayerStack(Protocol):
    layer: torch.nn.ModuleList


class _BertEncoder(Protocol):
    """A BERT-family encoder (BERT, RoBERTa, XLM-R) with the parts :class:`TextOnceScorer` runs."""

    embeddings: torch.nn.Module
    encoder: _BertLayerStack


def cpu_fast_kind() -> str:
    """How "fast" precision runs on this CPU.

    ``"bf16"`` where the CPU multiplies bfloat16 in hardware (AMX or AVX-512-BF16): there
    bf16 matmuls run several times faster than float32. Elsewhere (AVX2-only CPUs) bf16 is
    emulated and about 9x slower than float32 (``benchmarks/cpu_matmul.py``), so ``"int8"``: the encoder's linear layers
    are quantised dynamically (int8 weights, activations quantised per batch).
    """
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        check = getattr(cpu, probe, None)
        if check is not None and check():
            return "bf16"
    return "int8"


@dataclass(frozen=True, eq=False, kw_only=True)
class WindowInput:
    """What the model needs for one window.

    Attributes:
        input_ids: ``int64[T]`` the window's tokens with the model's special tokens.
        start_pos: ``int64[n_spans]`` index in ``input_ids`` of each span's first token.
        end_pos: ``int64[n_spans]`` index in ``input_ids`` of each span's last token.
    """

    input_ids: np.ndarray
    start_pos: np.ndarray
    end_pos: np.ndarray

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def n_spans(self) -> int:
        return len(self.start_pos)

    @functools.cached_property
    def n_words(self) -> int:
        """Words of the window, from its candidate spans: every word starts at least one span.
        Cached: a span filter's cost estimate and its selection both ask."""
        return len(np.unique(self.start_pos))


def special_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[np.ndarray, np.ndarray]:
    """The ids the tokenizer puts before and after a sequence (``[CLS]``/``[SEP]``, ``<s>``/``</s>``)."""
    specials = tokenizer.build_inputs_with_special_tokens([-1])
    at = specials.index(-1)
    return np.asarray(specials[:at], dtype=np.int64), np.asarray(specials[at + 1 :], dtype=np.int64)


def window_input(
    doc: TokenizedDoc, w: Window, spans: tuple[np.ndarray, np.ndarray], prefix: np.ndarray, suffix: np.ndarray
) -> WindowInput:
    """The model input of one window of a tokenised document.

    Args:
        spans: ``(starts, ends)`` word indices of the candidate spans within the window
            (``ner_core.windowing.enumerate_spans``), ``ends`` exclusive.
        prefix: Special tokens before the text.
        suffix: Special tokens after the text.
    """
    starts, ends = spans
    offset = len(prefix) - w.token_start
    word_tok_start = doc.word_token_start[w.word_start : w.word_end] + offset
    word_tok_end = doc.word_token_end[w.word_start : w.word_end] + offset
    return WindowInput(
        input_ids=np.concatenate((prefix, doc.input_ids[w.token_start : w.token_end], suffix)),
        start_pos=word_tok_start[starts],
        end_pos=word_tok_end[ends - 1] - 1,
    )


@dataclass(frozen=True, eq=False, kw_only=True)
class WindowScores:
    """The model's verdict on every span of a window.

    Attributes:
        scores: ``float32[n_spans]`` probability of the best label.
        label_ids: ``int64[n_spans]`` the best label.
        marker_states: ``float32[n_spans, 2*hidden]`` the start/end marker states the
            classifier saw, when asked for.
        token_states: ``float32[T, hidden]`` final text-token states, when asked for.
        scored: Indices of the spans that were given marker pairs when a span filter ran
            (``None``: every span). The others carry the "O" label and, as their score,
            the filter's probability that they are not an entity.
    """

    scores: np.ndarray
    label_ids: np.ndarray
    marker_states: np.ndarray | None = None
    token_states: np.ndarray | None = None
    scored: np.ndarray | None = None

    @property
    def n_scored(self) -> int:
        return len(self.scores) if self.scored is None else len(self.scored)


class SpanScorer:
    """Turns windows into span scores. Subclasses define how the encoder is run."""

    def __init__(
        self, model: NerModel, *, precision: str = "exact", marker_states: bool = False, token_states: bool = False
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.model = model
        self.precision = precision
        self.want_marker_states = marker_states
        self.want_token_states = token_states
        # NerModel types the model as a plain Module (attributes Tensor | Module) and the
        # tokenizer as object: they are a SpanMarkerModel and a transformers fast tokenizer.
        self._sm = cast(_SpanMarkerModel, model.span_marker)
        tok = cast("PreTrainedTokenizerBase", model.tokenizer)
        self.pad_id = int(tok.pad_token_id)
        # A list of tokens gives a list of ids (transformers annotates int | list[int]).
        marker_ids = cast("list[int]", tok.convert_tokens_to_ids(["<start>", "<end>"]))
        self.start_marker_id, self.end_marker_id = (int(i) for i in marker_ids)

    def cost(self, window: WindowInput) -> int:
        """Tokens the encoder processes for this window (the batching unit)."""
        raise NotImplementedError

    def score(self, windows: list[WindowInput]) -> list[WindowScores]:
        """Score every span of every window of one batch."""
        with torch.inference_mode(), self._autocast():
            return self._score(windows)

    def _score(self, windows: list[WindowInput]) -> list[WindowScores]:
        raise NotImplementedError

    @property
    def fast_kind(self) -> str | None:
        """``None`` in exact mode, else ``"bf16"``, ``"fp16"`` or ``"int8"``."""
        if self.precision == "exact":
            return None
        if self.model.device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return cpu_fast_kind()

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        dtype = HALF_DTYPES.get(self.fast_kind)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.model.device.type, dtype=dtype)

    def _classify(self, start_states: torch.Tensor, end_states: torch.Tensor, splits: list[int]) -> list[WindowScores]:
        features = torch.cat((start_states, end_states), dim=-1)
        probs = self._sm.classifier(features).float().softmax(-1)
        scores, labels = probs.max(-1)
        scores = scores.cpu().numpy()
        labels = labels.cpu().numpy()
        feats = features.float().cpu().numpy() if self.want_marker_states else None
        out, at = [], 0
        for n in splits:
            out.append(
                WindowScores(
                    scores=scores[at : at + n],
                    label_ids=labels[at : at + n],
                    marker_states=feats[at : at + n] if feats is not None else None,
                )
            )
            at += n
        return out


class PaddedScorer(SpanScorer):
    """SpanMarker's collation, padded to the longest sample of the batch instead of
    ``model_max_length + 2 * marker_max_length``.

    It runs the shared model as it is, so "fast" means autocast where the hardware has
    bf16/fp16; on a CPU without it the scorer stays in float32 (and says so).
    """

    def __init__(self, model: NerModel, **kwargs: Unpack[_ScorerOptions]) -> None:
        super().__init__(model, **kwargs)
        if self.fast_kind == "int8":
            logger.warning("fast precision on this CPU needs the text-once scorer; the padded scorer runs float32")

    def cost(self, window: WindowInput) -> int:
        samples = self._samples(window)
        return sum(window.n_tokens + window.n_tokens % 2 + 2 * (b - a) for a, b in samples)

    def _samples(self, window: WindowInput) -> list[tuple[int, int]]:
        # SpanMarker's Trainer.spread_sample: as many pairs as fit beside the text.
        cfg = self.model
        space = (cfg.model_max_length + 2 * cfg.marker_max_length - window.n_tokens) // 2
        n = window.n_spans
        return [(a, min(a + space, n)) for a in range(0, n, space)] or [(0, 0)]

    def _score(self, windows: list[WindowInput]) -> list[WindowScores]:
        samples = [(w, a, b) for w in range(len(windows)) for a, b in self._samples(windows[w])]
        ids, pos, mask, start_rows, end_rows = collate_samples(
            windows, samples, pad_id=self.pad_id, start_marker_id=self.start_marker_id, end_marker_id=self.end_marker_id
        )
        B, L = ids.shape
        dev = self.model.device
        hidden = self._sm.encoder(
            ids.to(dev),
            attention_mask=mask.to(dev),
            token_type_ids=torch.zeros_like(ids).to(dev),
            position_ids=pos.to(dev),
        )[0]
        flat = hidden.reshape(B * L, -1)
        starts = flat[start_rows.to(dev)]
        ends = flat[end_rows.to(dev)]
        per_sample = self._classify(starts, ends, [b - a for _, a, b in samples])
        samples_of: dict[int, list[int]] = {}
        for i, (w, _, _) in enumerate(samples):
            samples_of.setdefault(w, []).append(i)
        out = []
        for w, win in enumerate(windows):
            parts = [per_sample[i] for i in samples_of[w]]
            token_states = None
            if self.want_token_states:
                token_states = hidden[samples_of[w][0], : win.n_tokens].float().cpu().numpy()
            out.append(
                WindowScores(
                    scores=np.concatenate([p.scores for p in parts]),
                    label_ids=np.concatenate([p.label_ids for p in parts]),
                    marker_states=np.concatenate([p.marker_states for p in parts]) if self.want_marker_states else None,
                    token_states=token_states,
                )
            )
        return out


def collate_samples(
    windows: list[WindowInput],
    samples: list[tuple[int, int, int]],
    *,
    pad_id: int,
    start_marker_id: int,
    end_marker_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """SpanMarker's model inputs for samples ``(window index, first span, end span)``,
    padded to the longest sample (a multiple of 8).

    Returns:
        ``(input_ids, position_ids, attention_mask, start_rows, end_rows)``: the mask is
        ``bool[B, L, L]``; ``start_rows``/``end_rows`` index each pair's start and end marker
        in the flattened ``[B * L]`` hidden states, in sample order.
    """
    lengths = [windows[w].n_tokens + windows[w].n_tokens % 2 + 2 * (b - a) for w, a, b in samples]
    L = round_up(max(lengths), 8)
    B = len(samples)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    pos = torch.ones((B, L), dtype=torch.long)
    mask = torch.zeros((B, L, L), dtype=torch.bool)
    start_rows, end_rows = [], []
    for i, (w, a, b) in enumerate(samples):
        win = windows[w]
        T, n = win.n_tokens, b - a
        s0 = T + T % 2
        ids[i, :T] = torch.from_numpy(win.input_ids)
        ids[i, s0 : s0 + n] = start_marker_id
        ids[i, s0 + n : s0 + 2 * n] = end_marker_id
        pos[i, :T] = torch.arange(T) + 2
        pos[i, s0 : s0 + n] = torch.from_numpy(win.start_pos[a:b]) + 2
        pos[i, s0 + n : s0 + 2 * n] = torch.from_numpy(win.end_pos[a:b]) + 2
        mask[i, :T, :T] = True
        mask[i, s0 : s0 + 2 * n, :T] = True
        idx = torch.arange(s0, s0 + n)
        mask[i, idx, idx] = True
        mask[i, idx, idx + n] = True
        mask[i, idx + n, idx] = True
        mask[i, idx + n, idx + n] = True
        start_rows.append(i * L + idx)
        end_rows.append(i * L + idx + n)
    return ids, pos, mask, torch.cat(start_rows), torch.cat(end_rows)


def supports_text_once(model: NerModel) -> bool:
    """Whether the encoder is a BERT-family stack this module can run layer by layer."""
    enc = cast(_SpanMarkerModel, model.span_marker).encoder
    cfg = enc.config
    layers = getattr(getattr(enc, "encoder", None), "layer", None)
    if layers is None or not hasattr(enc, "embeddings"):
        return False
    if getattr(cfg, "position_embedding_type", "absolute") != "absolute" or getattr(cfg, "is_decoder", False):
        return False
    layer = layers[0]
    attention = getattr(layer, "attention", None)
    # Every attribute the layer-by-layer path calls directly (TextOnceScorer.encode and the
    # trainer's differentiable twin): a stack without one of them falls back to padded scoring.
    return all(
        hasattr(obj, name)
        for obj, names in (
            (layer, ("attention", "intermediate", "output")),
            (attention, ("self", "output")),
            (getattr(attention, "self", None), ("query", "key", "value", "num_attention_heads", "attention_head_size")),
            (getattr(attention, "output", None), ("dense", "LayerNorm")),
            (getattr(layer, "intermediate", None), ("dense", "intermediate_act_fn")),
            (getattr(layer, "output", None), ("dense", "LayerNorm")),
        )
        for name in names
    )


@dataclass(frozen=True, eq=False, kw_only=True)
class _Layout:
    """Rows of one kind (text or markers) of a batch: token ids and positions in flat
    order, and where each row sits in the padded per-window layout."""

    ids: np.ndarray
    pos: np.ndarray
    pad: torch.Tensor
    key_bias: torch.Tensor | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class TextPass:
    """A batch's text through every layer: what the marker pass attends to.

    Attributes:
        states: ``[n_text, H]`` final text states, windows in order.
        keys_values: Per layer, the text's keys and values ``[B, heads, Tm, head_dim]``.
        key_bias: ``[B, 1, 1, Tm]`` 0 on real tokens, -inf on padding.
    """

    states: torch.Tensor
    keys_values: list[tuple[torch.Tensor, torch.Tensor]]
    key_bias: torch.Tensor


class TextOnceScorer(SpanScorer):
    """Encode each window's text once; attend all of its marker pairs to it in one pass."""

    def __init__(
        self, model: NerModel, *, selection: SpanSelection | None = None, **kwargs: Unpack[_ScorerOptions]
    ) -> None:
        super().__init__(model, **kwargs)
        if not supports_text_once(model):
            raise ValueError(f"encoder {type(model.span_marker.encoder).__name__} is not a BERT-family stack")
        # supports_text_once checked the structure the protocols describe.
        enc = cast(_BertEncoder, self._sm.encoder)
        self._embeddings = enc.embeddings
        layers: list[torch.nn.Module] = list(enc.encoder.layer)
        attn = cast(_BertLayer, layers[0]).attention.self
        self._heads = int(attn.num_attention_heads)
        self._head_dim = int(attn.attention_head_size)
        kind = self.fast_kind
        # The hidden states' dtype between layers: float32, or the half type of fast mode.
        self._dtype = HALF_DTYPES.get(kind, torch.float32)
        if kind in HALF_DTYPES:
            layers = [_half_copy(layer, self._dtype) for layer in layers]
        elif kind == "int8":
            layers = [_quantised(layer) for layer in layers]
        self._layers = cast("list[_BertLayer]", layers)
        self.selection = selection

    def cost(self, window: WindowInput) -> int:
        """Encoder tokens of the window: its text and two markers per scored span (with a
        span filter, the spans it is expected to keep: the number is known only once the
        text is encoded)."""
        if self.selection is None:
            return window.n_tokens + 2 * window.n_spans
        return window.n_tokens + 2 * self.selection.expected_spans(window.n_spans, window.n_words)

    def _score(self, windows: list[WindowInput]) -> list[WindowScores]:
        if self.selection is not None:
            return self._score_filtered(windows)
        starts, ends, text_states = self.encode(windows)
        return self._with_token_states(self._classify(starts, ends, [w.n_spans for w in windows]), windows, text_states)

    def _with_token_states(
        self, out: list[WindowScores], windows: list[WindowInput], text_states: torch.Tensor
    ) -> list[WindowScores]:
        if not self.want_token_states:
            return out
        states = text_states.float().cpu().numpy()
        bounds = np.cumsum([0] + [w.n_tokens for w in windows])
        return [dataclasses.replace(o, token_states=states[bounds[b] : bounds[b + 1]]) for b, o in enumerate(out)]

    def _score_filtered(self, windows: list[WindowInput]) -> list[WindowScores]:
        """Text pass, span filter, then marker pairs for the kept spans only."""
        assert self.selection is not None  # _score calls this only with a selection
        text = self.encode_text(windows)
        probs = self._filter_probabilities(windows, text)
        kept = [self.selection.keep(p, w.n_words) for w, p in zip(windows, probs)]
        pruned = [
            WindowInput(input_ids=w.input_ids, start_pos=w.start_pos[k], end_pos=w.end_pos[k])
            for w, k in zip(windows, kept)
        ]
        if sum(len(k) for k in kept):
            scored = self.score_with_text(pruned, text)
        else:
            scored = [WindowScores(scores=np.zeros(0, np.float32), label_ids=np.zeros(0, np.int64)) for _ in windows]
        out = []
        for w, p, k, s in zip(windows, probs, kept, scored):
            scores = (1.0 - p).astype(np.float32)
            labels = np.full(w.n_spans, self.model.outside_id, dtype=np.int64)
            scores[k], labels[k] = s.scores, s.label_ids
            marker_states = None
            if self.want_marker_states:
                marker_states = np.zeros((w.n_spans, 2 * self.model.hidden_size), dtype=np.float32)
                marker_states[k] = s.marker_states
            out.append(WindowScores(scores=scores, label_ids=labels, marker_states=marker_states, scored=k))
        return self._with_token_states(out, windows, text.states)

    def _filter_probabilities(self, windows: list[WindowInput], text: TextPass) -> list[np.ndarray]:
        """Each window's spans' probability of being an entity, by the filter head."""
        assert self.selection is not None  # called by _score_filtered only
        dev = self.model.device
        starts, ends = batch_span_positions(
            [w.n_tokens for w in windows], [w.start_pos for w in windows], [w.end_pos for w in windows]
        )
        with torch.autocast(device_type=dev.type, enabled=False):
            logits = self.selection.head(text.states, torch.from_numpy(starts).to(dev), torch.from_numpy(ends).to(dev))
        probs = torch.sigmoid(logits).cpu().numpy()
        return np.split(probs, np.cumsum([w.n_spans for w in windows])[:-1])

    def encode(
        self, windows: list[WindowInput], *, differentiable: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Final hidden states of every span's start and end marker, and of every text token,
        text and markers through each layer together.

        Args:
            differentiable: Compute the marker attention with ordinary autograd ops instead of
                the CPU flash kernel (whose log-sum-exp output has no gradient); for training.

        Returns:
            ``(start_states [n_spans, H], end_states [n_spans, H], text_states [n_text, H])``,
            spans and tokens of all windows concatenated in order.
        """
        B = len(windows)
        T = [w.n_tokens for w in windows]
        P = [w.n_spans for w in windows]
        # A lone window with spans needs no padding at all (the padded layout is then the flat
        # one); the attention kernels need at least one marker query.
        Tm, Pm = (T[0], P[0]) if B == 1 and P[0] else (round_up(max(T), 8), round_up(max(*P, 1), 4))
        text = self._text_layout(windows, Tm)
        assert text.key_bias is not None  # a text layout always has one
        markers = self._marker_layout(windows, Pm)
        n_text, n_spans = len(text.ids), sum(P)
        h = self._embed(np.r_[text.ids, markers.ids], np.r_[text.pos, markers.pos])

        scale = 1.0 / math.sqrt(self._head_dim)
        for layer in self._layers:
            sa = layer.attention.self
            q, k, v = _dense(sa.query, h), _dense(sa.key, h), _dense(sa.value, h)
            ctx = torch.empty_like(q)
            # Text: ordinary self-attention over each window's real tokens.
            qt, kt, vt = (self._pad(x[:n_text], text.pad, B, Tm) for x in (q, k, v))
            ct = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=text.key_bias.to(qt.dtype))
            ctx[:n_text] = self._unpad(ct, text.pad)
            if differentiable:
                # Training: plain autograd ops (the flash kernel's log-sum-exp has no gradient).
                ctx[n_text:] = self._marker_attention_per_window(q, k, v, n_text, T, P, scale)
            else:
                ctx[n_text:] = self._marker_attention(
                    q[n_text:], k[n_text:], v[n_text:], kt, vt, text.key_bias, markers.pad, B, 2 * Pm, n_spans, scale
                )
            h = self._feed_forward(layer, ctx, h, differentiable=differentiable)

        return h[n_text : n_text + n_spans], h[n_text + n_spans :], h[:n_text]

    def encode_text(self, windows: list[WindowInput]) -> TextPass:
        """The text of each window through every layer, keeping each layer's keys and values
        for the marker pass (text tokens never attend to markers, so this is all of it)."""
        B = len(windows)
        T = [w.n_tokens for w in windows]
        Tm = T[0] if B == 1 else round_up(max(T), 8)
        text = self._text_layout(windows, Tm)
        assert text.key_bias is not None  # a text layout always has one
        h = self._embed(text.ids, text.pos)
        keys_values = []
        for layer in self._layers:
            sa = layer.attention.self
            qt, kt, vt = (self._pad(_dense(proj, h), text.pad, B, Tm) for proj in (sa.query, sa.key, sa.value))
            ct = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=text.key_bias.to(qt.dtype))
            keys_values.append((kt, vt))
            h = self._feed_forward(layer, self._unpad(ct, text.pad), h)
        return TextPass(states=h, keys_values=keys_values, key_bias=text.key_bias)

    def score_with_text(self, windows: list[WindowInput], text: TextPass) -> list[WindowScores]:
        """Every span of ``windows`` scored against their already encoded ``text`` (exact
        mode's scores, for a caller that also needs the text pass itself)."""
        with torch.inference_mode(), self._autocast():
            starts, ends = self.encode_markers(windows, text)
            return self._classify(starts, ends, [w.n_spans for w in windows])

    def encode_markers(self, windows: list[WindowInput], text: TextPass) -> tuple[torch.Tensor, torch.Tensor]:
        """Final states of the windows' start and end markers, attending to the cached text
        keys and values of ``text`` exactly as in :meth:`encode`."""
        B = len(windows)
        P = [w.n_spans for w in windows]
        Pm = P[0] if B == 1 and P[0] else round_up(max(*P, 1), 4)
        markers = self._marker_layout(windows, Pm)
        n_spans = sum(P)
        h = self._embed(markers.ids, markers.pos)
        scale = 1.0 / math.sqrt(self._head_dim)
        for layer, (kt, vt) in zip(self._layers, text.keys_values):
            sa = layer.attention.self
            q, k, v = _dense(sa.query, h), _dense(sa.key, h), _dense(sa.value, h)
            ctx = self._marker_attention(q, k, v, kt, vt, text.key_bias, markers.pad, B, 2 * Pm, n_spans, scale)
            h = self._feed_forward(layer, ctx, h)
        return h[:n_spans], h[n_spans:]

    def _text_layout(self, windows: list[WindowInput], Tm: int) -> _Layout:
        """Flat text rows (every real token, windows in order) and their places in the
        padded ``[B, Tm]`` layout; the key bias is 0 on real tokens, -inf on padding."""
        T = [w.n_tokens for w in windows]
        key_bias = torch.full((len(windows), 1, 1, Tm), float("-inf"))
        for b, t in enumerate(T):
            key_bias[b, ..., :t] = 0.0
        return _Layout(
            ids=np.concatenate([w.input_ids for w in windows]),
            pos=np.concatenate([np.arange(t) + 2 for t in T]),
            pad=self._to_device(np.concatenate([b * Tm + np.arange(t) for b, t in enumerate(T)])),
            key_bias=key_bias.to(self.model.device),
        )

    def _marker_layout(self, windows: list[WindowInput], Pm: int) -> _Layout:
        """Flat marker rows, every span's start marker then every span's end marker (all
        windows in order), so that a start and its end sit ``n_spans`` rows apart; in the
        padded layout window b's starts are at ``b * 2Pm + [0, P_b)``, its ends ``Pm`` later."""
        P = [w.n_spans for w in windows]
        n_spans = sum(P)
        start_pad = np.concatenate([b * 2 * Pm + np.arange(p) for b, p in enumerate(P)])
        return _Layout(
            ids=np.r_[np.full(n_spans, self.start_marker_id), np.full(n_spans, self.end_marker_id)],
            pos=np.concatenate([w.start_pos for w in windows] + [w.end_pos for w in windows]) + 2,
            pad=self._to_device(np.r_[start_pad, start_pad + Pm]),
        )

    def _to_device(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(self.model.device)

    def _embed(self, ids: np.ndarray, pos: np.ndarray) -> torch.Tensor:
        ids_t, pos_t = self._to_device(ids).long(), self._to_device(pos).long()
        h: torch.Tensor = self._embeddings(
            input_ids=ids_t[None], position_ids=pos_t[None], token_type_ids=torch.zeros_like(ids_t)[None]
        )[0]
        return h.to(self._dtype)

    @staticmethod
    def _feed_forward(
        layer: _BertLayer, ctx: torch.Tensor, h: torch.Tensor, *, differentiable: bool = False
    ) -> torch.Tensor:
        """The rest of a layer after attention: output projection, residual, feed-forward."""
        if differentiable:  # the modules themselves, dropout and all
            attn_out = layer.attention.output(ctx, h)
            return layer.output(layer.intermediate(attn_out), attn_out)
        # The same maps (dropout is the identity at inference) through _dense.
        attn_out = _add_norm(layer.attention.output, _dense(layer.attention.output.dense, ctx), h)
        up = layer.intermediate.intermediate_act_fn(_dense(layer.intermediate.dense, attn_out))
        return _add_norm(layer.output, _dense(layer.output.dense, up), attn_out)

    def _marker_attention(
        self,
        qm: torch.Tensor,
        km: torch.Tensor,
        vm: torch.Tensor,
        kt: torch.Tensor,
        vt: torch.Tensor,
        key_bias: torch.Tensor,
        marker_pad_t: torch.Tensor,
        B: int,
        Mm: int,
        n_spans: int,
        scale: float,
    ) -> torch.Tensor:
        """Each marker attends to its window's text keys plus the two keys of its own pair,
        under one softmax: the text through the flash kernel, then the pair folded in through
        its log-sum-exp. Rows: all start markers, then all end markers (``encode``'s order);
        the pair of start row i is end row i, so the fold needs no gathers, only views."""
        nh, d = self._heads, self._head_dim
        out_text, lse_text = _attend_with_lse(self._pad(qm, marker_pad_t, B, Mm), kt, vt, key_bias, scale)
        out_text = self._unpad(out_text, marker_pad_t).view(-1, nh, d)
        lse_text = lse_text.transpose(1, 2).reshape(B * Mm, nh)[marker_pad_t]
        # [2, n_spans, heads, d]: index 0 the start markers, 1 the end markers; each half's
        # pair keys/values broadcast over both halves.
        q2, k2, v2 = (x.view(2, n_spans, nh, d) for x in (qm, km, vm))
        s_start = (q2 * k2[0]).sum(-1).float() * scale
        s_end = (q2 * k2[1]).sum(-1).float() * scale
        lse_text, out_text = lse_text.view(2, n_spans, nh), out_text.view(2, n_spans, nh, d)
        total = torch.logsumexp(torch.stack((lse_text, s_start, s_end)), dim=0)
        ctx = (
            (lse_text - total).exp()[..., None] * out_text.float()
            + (s_start - total).exp()[..., None] * v2[0].float()
            + (s_end - total).exp()[..., None] * v2[1].float()
        ).to(qm.dtype)
        return ctx.view(-1, nh * d)

    def _marker_attention_per_window(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_text: int, T: list[int], P: list[int], scale: float
    ) -> torch.Tensor:
        """Marker attention with plain autograd ops, one window at a time: each marker's
        softmax runs over its window's text keys and its pair's two keys. No padding, so
        the score matrices hold only real entries (training batches mix window sizes).
        Rows in and out as in ``encode``: all start markers, then all end markers."""
        nh, d = self._heads, self._head_dim
        n_spans = sum(P)
        # split(), not slicing: the backward of a slice is a full-size zero tensor per window.
        # (torch.split, which calls Tensor.split: the method is unannotated, the function is not.)
        qs, ks, vs = (torch.split(x[n_text : n_text + n_spans], P) for x in (q, k, v))
        qe, ke, ve = (torch.split(x[n_text + n_spans :], P) for x in (q, k, v))
        kts, vts = (torch.split(x[:n_text], T) for x in (k, v))
        starts, ends = [], []
        for t, p, kt, vt, *pair in zip(T, P, kts, vts, qs, ks, vs, qe, ke, ve):
            if p == 0:
                continue
            qm, km, vm = (torch.cat((a, b)).view(2 * p, nh, d).transpose(0, 1) for a, b in zip(pair[:3], pair[3:]))
            kt, vt = (x.view(t, nh, d).transpose(0, 1) for x in (kt, vt))  # [nh, t, d]
            ka, kb = km[:, :p].repeat(1, 2, 1), km[:, p:].repeat(1, 2, 1)
            va, vb = vm[:, :p].repeat(1, 2, 1), vm[:, p:].repeat(1, 2, 1)
            logits = (
                torch.cat(
                    (qm @ kt.transpose(-1, -2), (qm * ka).sum(-1, keepdim=True), (qm * kb).sum(-1, keepdim=True)),
                    dim=-1,
                )
                * scale
            )
            probs = logits.float().softmax(-1).to(q.dtype)
            ctx = (probs[..., :t] @ vt + probs[..., t : t + 1] * va + probs[..., t + 1 :] * vb).transpose(0, 1)
            ctx = ctx.reshape(2 * p, nh * d)
            starts.append(ctx[:p])
            ends.append(ctx[p:])
        return torch.cat(starts + ends) if starts else q.new_zeros((0, nh * d))

    def _pad(self, flat: torch.Tensor, index: torch.Tensor, B: int, L: int) -> torch.Tensor:
        """Scatter flat rows ``[N, H]`` into ``[B, heads, L, head_dim]``."""
        if B == 1 and len(flat) == L:  # nothing to pad: a view
            return flat.view(1, L, self._heads, self._head_dim).transpose(1, 2)
        padded = flat.new_zeros((B * L, flat.shape[-1]))
        padded[index] = flat
        return padded.view(B, L, self._heads, self._head_dim).transpose(1, 2)

    def _unpad(self, padded: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        B, _, L, _ = padded.shape
        flat = padded.transpose(1, 2).reshape(B * L, -1)
        return flat if B == 1 and len(index) == L else flat[index]


_flash_with_lse = getattr(getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None), "default", None)


def _attend_with_lse(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention of ``q`` over ``k``/``v`` and the log-sum-exp of its logits.

    Args:
        q: ``[B, heads, M, d]``; k, v: ``[B, heads, T, d]``; bias: ``[B, 1, 1, T]`` additive
            mask (``-inf`` on padding).

    Returns:
        ``(out [B, heads, M, d], lse float32[B, heads, M])``. On the CPU this is PyTorch's
        flash kernel, which never materialises the ``M x T`` score matrix.
    """
    if q.device.type == "cpu" and _flash_with_lse is not None:
        out, lse = _flash_with_lse(q, k, v, attn_mask=bias.to(q.dtype), scale=scale)
        return out, lse.float()
    logits = torch.matmul(q, k.transpose(-1, -2)).float() * scale + bias
    lse = torch.logsumexp(logits, dim=-1)
    return torch.matmul((logits - lse[..., None]).exp().to(v.dtype), v), lse


_onednn_linear = getattr(getattr(torch.ops.mkldnn, "_linear_pointwise", None), "default", None)


def _dense(linear: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``linear(x)``; for a plain float32 ``nn.Linear`` at inference on the CPU, through
    oneDNN's inner product instead of ``F.linear``'s BLAS call.

    The two differ only in float32 rounding (largest difference about 1e-6 of the output's
    scale), but on a 2-core AMD EPYC (AVX-512) oneDNN's product ran at 191 GFLOP/s against
    121 for MKL's (``benchmarks/cpu_matmul.py``); in exploratory runs on 300 sentences and 8
    long windows, exact mode gained 6-16% end to end.
    Anything else (gradients, autocast, bf16 or int8 copies, LoRA parametrizations) takes
    the module.
    """
    if (
        _onednn_linear is not None
        and type(linear) is torch.nn.Linear
        and x.dtype is torch.float32
        and linear.weight.dtype is torch.float32
        and x.device.type == "cpu"
        and x.dim() == 2
        and torch.is_inference_mode_enabled()
        and not torch.is_autocast_enabled("cpu")
    ):
        # Module calls and torch.ops give Any: both are the layer's output tensor.
        return cast(torch.Tensor, _onednn_linear(x, linear.weight, linear.bias, "none", [], ""))
    return cast(torch.Tensor, linear(x))


def _add_norm(block: _BertAddNorm, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """A BERT block's residual connection and LayerNorm, as its ``forward`` applies them."""
    return cast(torch.Tensor, block.LayerNorm(x + residual))


def _half_copy(layer: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A bf16/fp16 copy of a layer; the shared model is left untouched.

    Autocast would cast every weight again on every call: with the weights converted once,
    fast mode on 8 long windows went from 216 to 286 words/s on a 2-core AVX-512-BF16 CPU in
    an exploratory side-by-side run (the bf16 products themselves ran at about 300-400 GFLOP/s
    either way).
    """
    return copy.deepcopy(layer).to(dtype)


def _quantised(layer: torch.nn.Module) -> torch.nn.Module:
    """An int8 copy of a layer's linear maps; the shared model is left untouched."""
    with warnings.catch_warnings():
        # Eager dynamic quantisation is deprecated in favour of torchao, which is not a
        # dependency; torch 2.13 (pinned) still ships it.
        warnings.simplefilter("ignore")
        # torch leaves quantize_dynamic unannotated; it returns the (copied) module.
        return cast(
            torch.nn.Module,
            torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                copy.deepcopy(layer), {torch.nn.Linear}, dtype=torch.qint8
            ),
        )


def make_scorer(
    model: NerModel,
    *,
    strategy: str = "auto",
    precision: str = "exact",
    embeddings: str = "none",
    span_filter: str = "off",
) -> SpanScorer:
    """The scorer for a model: text-once where the encoder allows it, else padded.

    Args:
        model: The loaded model.
        strategy: ``"auto"``, ``"text_once"`` or ``"padded"``.
        precision: ``"exact"`` (float32) or ``"fast"`` (bf16/fp16 autocast on CUDA and on CPUs
            with bf16 hardware, int8 dynamic quantisation on other CPUs).
        embeddings: ``"none"``, ``"marker"`` or ``"mean"``: which states the scorer returns.
        span_filter: Which spans get marker pairs (``ner_core.span_filter.parse_span_filter``);
            the filter needs the text-once scorer, so ``"auto"`` is off with the padded one.
    """
    kwargs: _ScorerOptions = dict(
        precision=precision, marker_states=embeddings == "marker", token_states=embeddings == "mean"
    )
    setting = parse_span_filter(span_filter)
    padded = strategy == "padded" or (strategy == "auto" and not supports_text_once(model))
    if padded:
        if setting.mode not in ("auto", "off"):
            raise ValueError(
                f"span_filter {span_filter!r} needs the text-once scorer (a BERT-family encoder, strategy 'auto' or 'text_once')"
            )
        return PaddedScorer(model, **kwargs)
    if strategy in ("auto", "text_once"):
        return TextOnceScorer(model, selection=span_selection(model.span_filter, setting), **kwargs)
    raise ValueError(f"strategy must be 'auto', 'text_once' or 'padded', got {strategy!r}")
