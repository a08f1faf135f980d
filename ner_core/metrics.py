"""Strict entity-level precision, recall and F1.

An entity counts as correct only if its span and its label both match a gold entity exactly
(seqeval's ``mode="strict"``). Spans are ``(start, end, label)`` triples in any coordinate
system (word indices for sentence data, character offsets for documents), so the same scorer
serves sentence-level and windowed document evaluation. IOB2 tags are decoded by seqeval's
own strict IOB2 scheme, so sentence scores agree with ``seqeval.metrics.classification_report``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

__all__ = ["Span", "PRF", "EntityScores", "spans_from_iob2", "score_spans", "pooled", "bootstrap_interval"]

Span = tuple[int, int, str]


@dataclass(frozen=True, slots=True)
class PRF:
    """Counts and the derived strict scores of one label (or of all labels, micro-averaged)."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def support(self) -> int:
        return self.tp + self.fn

    def as_dict(self) -> dict[str, float]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


@dataclass(frozen=True)
class EntityScores:
    """Strict scores of a data set: micro-averaged and per label."""

    micro: PRF
    per_label: Mapping[str, PRF] = field(default_factory=dict)

    @property
    def macro_f1(self) -> float:
        return sum(s.f1 for s in self.per_label.values()) / len(self.per_label) if self.per_label else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "micro": self.micro.as_dict(),
            "macro_f1": self.macro_f1,
            "per_label": {label: s.as_dict() for label, s in sorted(self.per_label.items())},
        }


def spans_from_iob2(tags: Sequence[str]) -> list[Span]:
    """Entities of one IOB2-tagged sentence, decoded as seqeval's strict IOB2 mode does
    (an ``I-X`` that does not continue a ``B-X``/``I-X`` starts no entity).

    Returns:
        ``(start, end, label)`` word spans, ``end`` exclusive.
    """
    from seqeval.scheme import IOB2, Entities

    return [(e.start, e.end, e.tag) for e in Entities([list(tags)], IOB2).entities[0]]


def score_spans(
    gold: Iterable[Iterable[Span]],
    predicted: Iterable[Iterable[Span]],
    *,
    label_map: Mapping[str, str | None] | None = None,
    gold_label_map: Mapping[str, str | None] | None = None,
) -> EntityScores:
    """Strict scores of predicted against gold spans, sample by sample.

    Args:
        gold: Per sample (sentence or document), its gold spans.
        predicted: Per sample, the predicted spans, in the same order.
        label_map: Renames predicted labels before scoring; a label mapped to ``None`` is
            ignored (e.g. a model's ``MISC`` against a data set that has none).
        gold_label_map: The same for gold labels.

    Returns:
        Micro-averaged and per-label counts and scores; labels are those seen in gold or
        predictions after mapping.
    """
    counts: dict[str, Counter[str]] = {}
    for g, p in zip(gold, predicted, strict=True):
        gs = _mapped(g, gold_label_map)
        ps = _mapped(p, label_map)
        for span in gs & ps:
            counts.setdefault(span[2], Counter())["tp"] += 1
        for span in ps - gs:
            counts.setdefault(span[2], Counter())["fp"] += 1
        for span in gs - ps:
            counts.setdefault(span[2], Counter())["fn"] += 1
    per_label = {label: PRF(c["tp"], c["fp"], c["fn"]) for label, c in counts.items()}
    return EntityScores(micro=pooled(per_label.values()), per_label=per_label)


def _mapped(spans: Iterable[Span], mapping: Mapping[str, str | None] | None) -> set[Span]:
    if mapping is None:
        # tuple() also takes spans read as lists; typeshed's tuple() drops the field types.
        return {cast(Span, tuple(s)) for s in spans}
    out = set()
    for start, end, label in spans:
        new = mapping.get(label, label)
        if new is not None:
            out.add((start, end, new))
    return out


def pooled(counts: Iterable[PRF]) -> PRF:
    """The micro counts of several samples together (their F1 is the pooled micro F1)."""
    tp = fp = fn = 0
    for c in counts:
        tp, fp, fn = tp + c.tp, fp + c.fp, fn + c.fn
    return PRF(tp, fp, fn)


def bootstrap_interval(
    statistic: Callable[[Sequence[int]], float],
    samples: int,
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile bootstrap interval of a statistic of ``samples`` texts.

    ``statistic`` takes the indices of one resample of ``range(samples)`` (drawn with
    replacement) and computes its figure from them. Every score inside one statistic is
    computed from the same indices, so a difference between two scorings of the same texts
    (windowed documents and their sentences, two models) is resampled in pairs, which is
    what makes its interval narrower than either score's.
    """
    import numpy as np
    from scipy.stats import bootstrap

    result = bootstrap(
        (np.arange(samples),),
        statistic,
        vectorized=False,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)
