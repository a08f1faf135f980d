"""The "O" offset: how much less the model trusts "nothing here", chosen on dev data.

SpanMarker gives each span its most probable label, so "O" wins a span whenever it is even
slightly more likely than the best entity label. A model trained on silver data whose
annotator missed entities learns to give "O" too much (it was taught that many entities are
"O"): precise, but it misses entities. Lowering the "O" logit by an offset trades precision
for recall openly.

The offset is folded into the classifier's bias, so it is a property of the checkpoint:
every path applies it the same way (exact, fast and pruned scoring, and SpanMarker's own
``predict``), and a model with offset 0 is the model as trained. The adapter's config
records the offset that was applied (``outside_offset``).

One offset for "O" moves every label the same way. Labels are not equally under-predicted
(the shipped model misses organisations far more often than places), so an offset per
entity label (:meth:`OffsetSweep.tune`) can trade where one global offset cannot; it is
recorded as ``label_offsets`` and folded into the bias the same way.

Choosing offsets needs many decodings of the same data; an :class:`OffsetSweep` runs the
encoder once, keeps every span's logits, and decodes each setting from them through the
engine's own decoding and window merging.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from ner_core.engine import EngineConfig, NerEngine
from ner_core.evaluation import predict_spans
from ner_core.inference import TextOnceScorer, WindowInput, WindowScores
from ner_core.labelled import LabelledText
from ner_core.loading import NerModel
from ner_core.metrics import EntityScores, score_spans

__all__ = [
    "OffsetScores",
    "OffsetSweep",
    "apply_label_offsets",
    "apply_outside_offset",
    "best_offset",
    "logit_shift",
]


@dataclass(frozen=True)
class OffsetScores:
    """Scores of every data set, and of all pooled, at one offset: the "O" offset, and the
    amount added to each entity label's logit on top of it (empty for "O" alone)."""

    offset: float
    pooled: EntityScores
    per_set: dict[str, EntityScores]
    label_offsets: dict[str, float] = field(default_factory=dict)


def apply_outside_offset(model: torch.nn.Module, outside_id: int, offset: float) -> None:
    """Lower the "O" logit of a SpanMarker model's classifier by ``offset``, in place."""
    with torch.no_grad():
        _classifier(model).bias[outside_id] -= offset


def apply_label_offsets(model: torch.nn.Module, label_ids: Mapping[str, int], offsets: Mapping[str, float]) -> None:
    """Raise each named label's logit in a SpanMarker model's classifier by its offset, in place."""
    bias = _classifier(model).bias
    with torch.no_grad():
        for label, offset in offsets.items():
            bias[label_ids[label]] += offset


def logit_shift(
    labels: Sequence[str], outside_id: int, offset: float, label_offsets: Mapping[str, float] | None = None
) -> torch.Tensor:
    """What a setting adds to the classifier's logits (and so to its bias): ``-offset`` for
    "O", each named label's amount for that label, 0 elsewhere."""
    shift = torch.zeros(len(labels))
    shift[outside_id] -= offset
    for label, amount in (label_offsets or {}).items():
        shift[list(labels).index(label)] += amount
    return shift


def _classifier(model: torch.nn.Module) -> torch.nn.Linear:
    classifier = model.classifier
    if not isinstance(classifier, torch.nn.Linear):
        raise TypeError(f"expected a linear span classifier, got {type(classifier).__name__}")
    return classifier


class OffsetSweep:
    """An exact-mode engine over fixed data that encodes each batch once and decodes every
    setting of offsets from the kept logits; use it as a context manager (the engine's
    scorer is restored on leaving), and score "O" offsets and tune label offsets in one sweep
    so that the encoder runs once for all of them.

    ``label_map`` and ``gold_label_map`` are as ``ner_core.metrics.score_spans`` takes them
    (``{"MISC": None}`` in both leaves MISC out of the scores). The scores of each setting are
    what the model with those offsets applied computes, to the rounding of one addition
    (``tests/ner_core/test_calibration.py``).
    """

    def __init__(
        self,
        model: NerModel,
        data: Mapping[str, Sequence[LabelledText]],
        *,
        label_map: Mapping[str, str | None] | None = None,
        gold_label_map: Mapping[str, str | None] | None = None,
        engine_config: EngineConfig | None = None,
    ) -> None:
        config = engine_config or EngineConfig(span_filter="off")
        if config.precision != "exact" or config.span_filter not in ("off", None):
            raise ValueError("the sweep scores exact mode with every span: precision 'exact', span_filter 'off'")
        self.engine = NerEngine(model, config)
        if not isinstance(self.engine.scorer, TextOnceScorer):
            raise ValueError("the sweep needs a model the text-once scorer runs (SpanMarker on a BERT-like encoder)")
        self.labels, self.outside_id = model.labels, model.outside_id
        self.data = data
        self.gold = {name: [list(r.entities) for r in records] for name, records in data.items()}
        self.maps = {"label_map": label_map, "gold_label_map": gold_label_map}

    def __enter__(self) -> OffsetSweep:
        assert isinstance(self.engine.scorer, TextOnceScorer)
        self._restore = ExitStack()
        self._set_shift = self._restore.enter_context(_cached_logits(self.engine.scorer))
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore.close()

    def score(self, offset: float, label_offsets: Mapping[str, float] | None = None) -> OffsetScores:
        """Scores with the "O" logit lowered by ``offset`` and each named label's raised by its amount."""
        label_offsets = label_offsets or {}
        self._set_shift(logit_shift(self.labels, self.outside_id, offset, label_offsets))
        per_set = {
            name: score_spans(self.gold[name], predict_spans(self.engine, records), **self.maps)
            for name, records in self.data.items()
        }
        kept = {label: float(amount) for label, amount in label_offsets.items() if amount}
        return OffsetScores(float(offset), _pooled(per_set), per_set, kept)

    def tune(
        self, labels: Sequence[str], grid: Sequence[float], *, outside_offset: float = 0.0, rounds: int = 2
    ) -> list[OffsetScores]:
        """Coordinate ascent on pooled micro F1: for each label in turn, try each amount of
        ``grid`` on its logit with the others held, keep the best (0 on a tie), ``rounds``
        times. Returns every setting scored, once each, in order; :func:`best_offset` picks
        from them."""
        scored: dict[tuple[float, ...], OffsetScores] = {}

        def score(setting: dict[str, float]) -> OffsetScores:
            key = tuple(setting[label] for label in labels)
            if key not in scored:
                scored[key] = self.score(outside_offset, setting)
            return scored[key]

        current = dict.fromkeys(labels, 0.0)
        best = score(current)
        for _ in range(rounds):
            for label in labels:
                for amount in grid:
                    candidate = score({**current, label: float(amount)})
                    if _f1_key(candidate) > _f1_key(best):
                        best, current = candidate, {**dict.fromkeys(labels, 0.0), **candidate.label_offsets}
        return list(scored.values())


def _f1_key(scores: OffsetScores) -> float:
    return round(scores.pooled.micro.f1, 6)


def best_offset(sweep: Sequence[OffsetScores]) -> OffsetScores:
    """The setting with the highest pooled micro F1 (on a tie, the smaller total change)."""
    return max(sweep, key=lambda s: (_f1_key(s), -s.offset - sum(abs(v) for v in s.label_offsets.values())))


def _pooled(per_set: Mapping[str, EntityScores]) -> EntityScores:
    from ner_core.metrics import PRF, pooled

    labels = sorted({label for s in per_set.values() for label in s.per_label})

    def total(get: str) -> PRF:
        return pooled(s.micro if get == "" else s.per_label.get(get, PRF(0, 0, 0)) for s in per_set.values())

    return EntityScores(total(""), {label: total(label) for label in labels})


@contextmanager
def _cached_logits(scorer: TextOnceScorer) -> Iterator[Callable[[torch.Tensor], None]]:
    """Replace the scorer's scoring by one that encodes each batch once, keeps its logits,
    and decodes them with the current shift added (one amount per label); the scorer is
    restored afterwards."""
    cache: dict[bytes, torch.Tensor] = {}
    state: dict[str, torch.Tensor | None] = {"shift": None}
    classifier = scorer._sm.classifier

    def score(windows: list[WindowInput]) -> list[WindowScores]:
        key = _fingerprint(windows)
        logits = cache.get(key)
        if logits is None:
            starts, ends, _ = scorer.encode(windows)
            logits = classifier(torch.cat((starts, ends), dim=-1)).float()
            cache[key] = logits
        shift = state["shift"]
        shifted = logits if shift is None else logits + shift
        scores, labels = shifted.softmax(-1).max(-1)
        s, lab = scores.cpu().numpy(), labels.cpu().numpy()
        out, at = [], 0
        for w in windows:
            out.append(WindowScores(scores=s[at : at + w.n_spans], label_ids=lab[at : at + w.n_spans]))
            at += w.n_spans
        return out

    def set_shift(shift: torch.Tensor) -> None:
        state["shift"] = shift

    scorer._score = score  # type: ignore[method-assign]
    try:
        yield set_shift
    finally:
        del scorer._score


def _fingerprint(windows: list[WindowInput]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for w in windows:
        for a in (w.input_ids, w.start_pos, w.end_pos):
            h.update(np.ascontiguousarray(a).tobytes())
            h.update(b"|")
    return h.digest()
