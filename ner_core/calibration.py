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

Choosing it needs many decodings of the same data; :func:`sweep_outside_offsets` runs the
encoder once, keeps every span's logits, and decodes each offset from them through the
engine's own decoding and window merging.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ner_core.engine import EngineConfig, NerEngine
from ner_core.evaluation import predict_spans
from ner_core.inference import TextOnceScorer, WindowInput, WindowScores
from ner_core.labelled import LabelledText
from ner_core.loading import NerModel
from ner_core.metrics import EntityScores, score_spans

__all__ = ["OffsetScores", "apply_outside_offset", "best_offset", "sweep_outside_offsets"]


@dataclass(frozen=True)
class OffsetScores:
    """Scores of every data set, and of all pooled, at one offset."""

    offset: float
    pooled: EntityScores
    per_set: dict[str, EntityScores]


def apply_outside_offset(model: torch.nn.Module, outside_id: int, offset: float) -> None:
    """Lower the "O" logit of a SpanMarker model's classifier by ``offset``, in place."""
    classifier = model.classifier
    if not isinstance(classifier, torch.nn.Linear):
        raise TypeError(f"expected a linear span classifier, got {type(classifier).__name__}")
    with torch.no_grad():
        classifier.bias[outside_id] -= offset


def sweep_outside_offsets(
    model: NerModel,
    data: Mapping[str, Sequence[LabelledText]],
    offsets: Sequence[float],
    *,
    label_map: Mapping[str, str | None] | None = None,
    gold_label_map: Mapping[str, str | None] | None = None,
    engine_config: EngineConfig | None = None,
) -> list[OffsetScores]:
    """Strict scores of ``model`` with each "O" offset on each data set (exact mode);
    ``label_map`` and ``gold_label_map`` as ``ner_core.metrics.score_spans`` takes them
    (``{"MISC": None}`` in both leaves MISC out of the scores).

    The result at each offset is what the model with that offset applied computes, to the
    rounding of one addition (``tests/ner_core/test_calibration.py``).
    """
    config = engine_config or EngineConfig()
    if config.precision != "exact" or config.span_filter not in ("off", None):
        raise ValueError("the sweep scores exact mode with every span: precision 'exact', span_filter 'off'")
    engine = NerEngine(model, config)
    if not isinstance(engine.scorer, TextOnceScorer):
        raise ValueError("the sweep needs a model the text-once scorer runs (SpanMarker on a BERT-like encoder)")
    gold = {name: [list(r.entities) for r in records] for name, records in data.items()}
    out = []
    with _cached_logits(engine.scorer, model.outside_id) as set_offset:
        for offset in offsets:
            set_offset(offset)
            per_set = {
                name: score_spans(
                    gold[name], predict_spans(engine, records), label_map=label_map, gold_label_map=gold_label_map
                )
                for name, records in data.items()
            }
            out.append(OffsetScores(float(offset), _pooled(per_set), per_set))
    return out


def best_offset(sweep: Sequence[OffsetScores]) -> OffsetScores:
    """The offset with the highest pooled micro F1 (the smaller offset on a tie)."""
    return max(sweep, key=lambda s: (round(s.pooled.micro.f1, 6), -s.offset))


def _pooled(per_set: Mapping[str, EntityScores]) -> EntityScores:
    from ner_core.metrics import PRF

    labels = sorted({label for s in per_set.values() for label in s.per_label})

    def total(get: str) -> PRF:
        parts = [s.micro if get == "" else s.per_label.get(get, PRF(0, 0, 0)) for s in per_set.values()]
        return PRF(sum(p.tp for p in parts), sum(p.fp for p in parts), sum(p.fn for p in parts))

    return EntityScores(total(""), {label: total(label) for label in labels})


@contextmanager
def _cached_logits(scorer: TextOnceScorer, outside_id: int) -> Iterator[Callable[[float], None]]:
    """Replace the scorer's scoring by one that encodes each batch once, keeps its logits,
    and decodes them with the current offset; the scorer is restored afterwards."""
    cache: dict[bytes, torch.Tensor] = {}
    state = {"offset": 0.0}
    classifier = scorer._sm.classifier

    def score(windows: list[WindowInput]) -> list[WindowScores]:
        key = _fingerprint(windows)
        logits = cache.get(key)
        if logits is None:
            starts, ends, _ = scorer.encode(windows)
            logits = classifier(torch.cat((starts, ends), dim=-1)).float()
            cache[key] = logits
        shifted = logits.clone()
        shifted[:, outside_id] -= state["offset"]
        scores, labels = shifted.softmax(-1).max(-1)
        s, lab = scores.cpu().numpy(), labels.cpu().numpy()
        out, at = [], 0
        for w in windows:
            out.append(WindowScores(scores=s[at : at + w.n_spans], label_ids=lab[at : at + w.n_spans]))
            at += w.n_spans
        return out

    def set_offset(offset: float) -> None:
        state["offset"] = float(offset)

    scorer._score = score  # type: ignore[method-assign]
    try:
        yield set_offset
    finally:
        del scorer._score


def _fingerprint(windows: list[WindowInput]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for w in windows:
        for a in (w.input_ids, w.start_pos, w.end_pos):
            h.update(np.ascontiguousarray(a).tobytes())
            h.update(b"|")
    return h.digest()
