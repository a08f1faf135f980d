"""Strict entity-level evaluation of a model through the full engine.

Every labelled text (a sentence or a long document) goes through ``NerEngine`` exactly as a
production document would: tokenised once, windowed, scored, decoded and merged. Gold and
predicted entities are compared as character spans with their labels (``ner_core.metrics``);
for sentence data whose predictions fall on token boundaries this is the same count as
seqeval's strict IOB2 mode over the tokens.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ner_core.documents import Doc
from ner_core.engine import EngineConfig, NerEngine
from ner_core.labelled import LabelledText
from ner_core.loading import NerModel
from ner_core.metrics import PRF, EntityScores, score_spans

__all__ = ["DatasetReport", "evaluate_records", "predict_spans"]


@dataclass
class DatasetReport:
    """Scores of one data set: overall, per label and per language."""

    name: str
    scores: EntityScores
    per_language: dict[str, EntityScores] = field(default_factory=dict)
    texts: int = 0
    words: int = 0
    seconds: float = 0.0
    # Micro counts of each text, in input order: what a bootstrap over texts resamples.
    per_text: list[PRF] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "texts": self.texts,
            "words": self.words,
            "seconds": round(self.seconds, 2),
            **self.scores.as_dict(),
            "per_language": {lang: s.as_dict() for lang, s in sorted(self.per_language.items())},
        }


def predict_spans(engine: NerEngine, records: Sequence[LabelledText]) -> list[list[tuple[int, int, str]]]:
    """The engine's entities for each record, as ``(start, end, label)`` character spans."""
    results = engine.predict(Doc(doc_id=str(i), text=r.text) for i, r in enumerate(records))
    return [[(e.start, e.end, e.label) for e in res.entities] for res in results]


def evaluate_records(
    model: NerModel,
    records: Sequence[LabelledText],
    *,
    name: str = "data",
    label_map: Mapping[str, str | None] | None = None,
    gold_label_map: Mapping[str, str | None] | None = None,
    engine_config: EngineConfig | None = None,
) -> DatasetReport:
    """Score a model on labelled texts through the engine.

    Args:
        model: The model.
        records: Labelled texts (sentences or documents).
        name: Name of the data set in the report.
        label_map: Renames the model's labels before scoring; ``None`` values drop a label
            (e.g. ``{"MISC": None}`` against a data set without MISC).
        gold_label_map: The same for the data set's labels.
        engine_config: How the engine runs (window size, precision...).
    """
    engine = NerEngine(model, engine_config or EngineConfig())
    t0 = time.perf_counter()
    predicted = predict_spans(engine, records)
    seconds = time.perf_counter() - t0
    gold = [list(r.entities) for r in records]
    scores = score_spans(gold, predicted, label_map=label_map, gold_label_map=gold_label_map)
    by_lang: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_lang[r.lang or "unknown"].append(i)
    per_language = {
        lang: score_spans(
            [gold[i] for i in idx], [predicted[i] for i in idx], label_map=label_map, gold_label_map=gold_label_map
        )
        for lang, idx in by_lang.items()
    }
    per_text = [
        score_spans([g], [p], label_map=label_map, gold_label_map=gold_label_map).micro
        for g, p in zip(gold, predicted, strict=True)
    ]
    return DatasetReport(
        name=name,
        scores=scores,
        per_language=per_language,
        per_text=per_text,
        texts=len(records),
        words=engine.stats.words,
        seconds=seconds,
    )
