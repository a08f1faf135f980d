"""The span filter: which candidate spans can be entities, judged from the text alone.

SpanMarker gives every candidate span (up to ``entity_max_length`` words from each word)
a pair of marker tokens that runs through every encoder layer, and about 99% of those
pairs end up "O". Text tokens never attend to markers, so a window's final text states
are known before any marker is encoded. A small head on those states scores each
candidate span's chance of being an entity; only spans at or above the operating point
get marker pairs (``ner_core.inference.TextOnceScorer``). A pruned span counts as "O";
a kept span is scored exactly as without the filter.

The head is stored beside the checkpoint, ``span_filter.safetensors`` (weights) and
``span_filter.json`` (design, sizes, the operating point chosen on dev data, and how it was
measured). SpanMarker's loader ignores both files, so the checkpoint still loads there.

Two designs (compared in ``docs/performance.md``, "Span filter"):

* ``"mlp"``: one hidden layer over the start token state, the end token state and a
  width embedding. The first layer is split per part, so each token is projected once
  and a span costs a gather, an add and the output product.
* ``"biaffine"``: start and end projections joined by a bilinear product plus a linear
  term and a width bias, as biaffine NER scores spans.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ner_core.errors import ModelConfigError

__all__ = [
    "FILTER_WEIGHTS",
    "FILTER_CONFIG",
    "DESIGNS",
    "SpanFilterHead",
    "OperatingPoint",
    "SpanFilter",
    "SpanSelection",
    "FilterSetting",
    "parse_span_filter",
    "span_selection",
    "save_span_filter",
    "load_span_filter",
    "has_span_filter",
]

FILTER_WEIGHTS = "span_filter.safetensors"
FILTER_CONFIG = "span_filter.json"
FILTER_FORMAT = "nerflow-span-filter-1"
DESIGNS = ("mlp", "biaffine")
# Span widths in tokens get their own embedding up to this many; longer spans share the last.
MAX_WIDTH_TOKENS = 32
# The engine settings of ``EngineConfig.span_filter`` that take no value.
SETTINGS = ("auto", "off", "stored")


class SpanFilterHead(nn.Module):
    """Scores candidate spans from text states: a logit per span, high for entities.

    Args:
        hidden_size: Width of the encoder's hidden states.
        design: ``"mlp"`` or ``"biaffine"`` (see the module docstring).
        inner: Width of the hidden layer (mlp) or of the projections (biaffine).
        width_dim: Width of the span-width embedding.
    """

    def __init__(self, hidden_size: int, *, design: str = "mlp", inner: int = 256, width_dim: int = 32) -> None:
        super().__init__()
        if design not in DESIGNS:
            raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
        self.design = design
        self.sizes = {"hidden_size": hidden_size, "inner": inner, "width_dim": width_dim}
        self.norm = nn.LayerNorm(hidden_size)
        self.width = nn.Embedding(MAX_WIDTH_TOKENS, width_dim)
        self.start = nn.Linear(hidden_size, inner)
        self.end = nn.Linear(hidden_size, inner, bias=design == "biaffine")
        if design == "mlp":
            self.width_proj = nn.Linear(width_dim, inner, bias=False)
            self.out = nn.Linear(inner, 1)
        else:
            self.bilinear = nn.Parameter(torch.zeros(inner, inner))
            self.width_proj = nn.Linear(width_dim, 1)
            self.out = nn.Linear(2 * inner, 1)

    def forward(self, states: torch.Tensor, start_idx: torch.Tensor, end_idx: torch.Tensor) -> torch.Tensor:
        """Logits ``[n_spans]`` of spans whose first and last tokens are rows ``start_idx``
        and ``end_idx`` of ``states`` ``[n_tokens, hidden]``."""
        h = self.norm(states.float())
        widths = self.width((end_idx - start_idx).clamp(0, MAX_WIDTH_TOKENS - 1))
        if self.design == "mlp":
            z = self.start(h)[start_idx] + self.end(h)[end_idx] + self.width_proj(widths)
            # Module calls give Any: this is the logits tensor.
            return cast(torch.Tensor, self.out(nn.functional.gelu(z)).squeeze(-1))
        s = nn.functional.gelu(self.start(h))[start_idx]
        e = nn.functional.gelu(self.end(h))[end_idx]
        bilinear = ((s @ self.bilinear) * e).sum(-1)
        return cast(
            torch.Tensor, bilinear + self.out(torch.cat((s, e), -1)).squeeze(-1) + self.width_proj(widths).squeeze(-1)
        )


@dataclass(frozen=True, kw_only=True)
class OperatingPoint:
    """Where the filter cuts, chosen on dev data and stored with it.

    Attributes:
        threshold: Spans whose entity probability is at least this get marker pairs.
        spans_per_word: Candidate spans kept per word on the dev data at that threshold
            (also the engine's estimate for packing batches).
        recall: The lowest recall of gold entities over the dev sets at that threshold.
    """

    threshold: float
    spans_per_word: float
    recall: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {self.threshold}")


@dataclass(frozen=True, eq=False, kw_only=True)
class SpanFilter:
    """A trained filter and what is known about it.

    Attributes:
        head: The scoring head.
        operating_point: The stored operating point.
        info: How it was trained and measured (data, steps, dev recall per set, the curve).
    """

    head: SpanFilterHead
    operating_point: OperatingPoint
    info: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device) -> SpanFilter:
        self.head.to(device)
        return self


def batch_span_positions(
    token_counts: Sequence[int], start_pos: Sequence[np.ndarray], end_pos: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Every window's span start and end token positions in the concatenation of the
    windows' text states, the layout the filter head reads."""
    if not len(token_counts):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    offsets = np.cumsum([0, *token_counts])[:-1]
    starts = np.concatenate([s + o for s, o in zip(start_pos, offsets)])
    ends = np.concatenate([e + o for e, o in zip(end_pos, offsets)])
    return starts, ends


@dataclass(frozen=True, kw_only=True)
class FilterSetting:
    """A parsed ``EngineConfig.span_filter``: ``mode`` is ``"auto"``, ``"off"``,
    ``"stored"``, ``"threshold"`` or ``"budget"``; ``value`` the number of the last two."""

    mode: str
    value: float | None = None


def parse_span_filter(setting: str) -> FilterSetting:
    """Read an ``EngineConfig.span_filter`` value.

    ``"auto"`` (the model's filter at its stored operating point when it carries one, else
    every span), ``"off"`` (every span, exact mode's work), ``"stored"`` (the stored
    operating point; an error for a model without a filter), ``"threshold=P"`` (spans with
    entity probability at least P) or ``"budget=K"`` (the K·words most probable spans of
    each window).
    """
    text = str(setting).strip().lower()
    if text in SETTINGS:
        return FilterSetting(mode=text)
    mode, sep, number = text.partition("=")
    if sep and mode in ("threshold", "budget"):
        try:
            value = float(number)
        except ValueError:
            value = math.nan
        if mode == "threshold" and 0.0 <= value <= 1.0:
            return FilterSetting(mode=mode, value=value)
        if mode == "budget" and 0.0 < value < math.inf:
            return FilterSetting(mode=mode, value=value)
    raise ValueError(
        f"span_filter must be 'auto', 'off', 'stored', 'threshold=P' (0 <= P <= 1) or 'budget=K' (K > 0 spans per word), "
        f"got {setting!r}"
    )


@dataclass(frozen=True, eq=False, kw_only=True)
class SpanSelection:
    """How the engine uses a filter: the head and the rule that keeps spans.

    Attributes:
        head: The filter's head, on the model's device.
        threshold: Keep spans whose probability is at least this (threshold rule).
        budget: Keep the ``ceil(budget * words)`` most probable spans (budget rule).
        spans_per_word: Expected spans kept per word, to estimate a window's cost before
            it is scored.
        describe: The rule in words, for run records and reports.
    """

    head: SpanFilterHead
    threshold: float | None
    budget: float | None
    spans_per_word: float
    describe: str

    def expected_spans(self, n_spans: int, n_words: int) -> int:
        if math.isinf(self.spans_per_word):
            return n_spans
        return min(n_spans, math.ceil(self.spans_per_word * n_words))

    def keep(self, probs: np.ndarray, n_words: int) -> np.ndarray:
        """Indices (ascending) of the spans that get marker pairs."""
        if self.budget is not None:
            k = min(len(probs), math.ceil(self.budget * n_words))
            # A stable sort: ties keep SpanMarker's span order, so the choice is deterministic.
            return np.sort(np.argsort(-probs, kind="stable")[:k])
        return np.flatnonzero(probs >= self.threshold)


def span_selection(span_filter: SpanFilter | None, setting: FilterSetting) -> SpanSelection | None:
    """The selection rule a setting asks for, or ``None`` for every span.

    Raises:
        ValueError: The setting needs a filter and the model has none.
    """
    if setting.mode == "off" or (setting.mode == "auto" and span_filter is None):
        return None
    if span_filter is None:
        raise ValueError(
            f"span_filter {setting.mode!r} needs a model with a span filter; this one has none "
            "(add one with 'nerflow train-filter', or use span_filter 'off')"
        )
    point = span_filter.operating_point
    if setting.mode == "budget":
        assert setting.value is not None  # parse_span_filter gives a budget its value
        return SpanSelection(
            head=span_filter.head,
            threshold=None,
            budget=setting.value,
            spans_per_word=float(setting.value),
            describe=f"budget={setting.value:g}",
        )
    threshold = point.threshold if setting.value is None else setting.value
    expected = _spans_per_word_at_most(span_filter, threshold)
    label = f"stored (threshold={threshold:g})" if setting.value is None else f"threshold={threshold:g}"
    return SpanSelection(
        head=span_filter.head, threshold=threshold, budget=None, spans_per_word=expected, describe=label
    )


def _spans_per_word_at_most(span_filter: SpanFilter, threshold: float) -> float:
    """A bound on the spans per word kept at ``threshold``, from the filter's dev data: a
    lower threshold keeps at least as many spans, so the stored point's figure bounds any
    threshold above it, and the recall curve's figure at the nearest threshold at or below
    it bounds the rest. Below both, the share is unknown: plan for every span.

    Planning for every span packs batches for the marker pass as if nothing were pruned,
    which halved pruned+fast's words/s at a threshold just under the stored one
    (docs/model-card.md, "Span filter")."""
    point = span_filter.operating_point
    if threshold >= point.threshold:
        return point.spans_per_word
    curve = span_filter.info.get("curve", [])
    below = [row["spans_per_word"] for row in curve if row["threshold"] <= threshold]
    return min(below, default=float("inf"))


def has_span_filter(directory: Path) -> bool:
    directory = Path(directory)
    return (directory / FILTER_WEIGHTS).is_file() and (directory / FILTER_CONFIG).is_file()


def save_span_filter(directory: Path, span_filter: SpanFilter) -> Path:
    """Write ``span_filter.safetensors`` and ``span_filter.json`` into a checkpoint directory."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    head = span_filter.head
    state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(directory / FILTER_WEIGHTS), metadata={"format": FILTER_FORMAT})
    config = {
        "format": FILTER_FORMAT,
        "design": head.design,
        **head.sizes,
        "operating_point": {
            "threshold": span_filter.operating_point.threshold,
            "spans_per_word": span_filter.operating_point.spans_per_word,
            "recall": span_filter.operating_point.recall,
        },
        "info": span_filter.info,
    }
    (directory / FILTER_CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return directory


def load_span_filter(directory: Path, *, hidden_size: int | None = None) -> SpanFilter | None:
    """The filter stored in a checkpoint directory, or ``None`` when it has none.

    Raises:
        ModelConfigError: The files exist but do not make a filter for this encoder.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    if not has_span_filter(directory):
        return None
    try:
        config = json.loads((directory / FILTER_CONFIG).read_text())
        if config.get("format") != FILTER_FORMAT:
            raise ValueError(f"format {config.get('format')!r}, expected {FILTER_FORMAT!r}")
        if hidden_size is not None and config["hidden_size"] != hidden_size:
            raise ValueError(f"hidden size {config['hidden_size']}, the encoder's is {hidden_size}")
        head = SpanFilterHead(
            config["hidden_size"], design=config["design"], inner=config["inner"], width_dim=config["width_dim"]
        )
        head.load_state_dict(load_file(str(directory / FILTER_WEIGHTS)))
        point = OperatingPoint(**config["operating_point"])
    except (KeyError, TypeError, ValueError, RuntimeError, OSError) as e:
        raise ModelConfigError(f"unusable span filter ({FILTER_CONFIG}): {e}", ref=str(directory)) from e
    head.eval()
    return SpanFilter(head=head, operating_point=point, info=config.get("info", {}))
