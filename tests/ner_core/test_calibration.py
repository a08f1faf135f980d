"""The "O" offset: the sweep's cached decoding equals the model with the offset applied."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from ner_core import EngineConfig, NerEngine
from ner_core.calibration import (
    OffsetSweep,
    apply_label_offsets,
    apply_outside_offset,
    best_offset,
    logit_shift,
)
from ner_core.evaluation import predict_spans
from ner_core.inference import TextOnceScorer
from ner_core.labelled import LabelledText, sentence_to_text
from ner_core.metrics import score_spans

WORDS = ["Angela", "Merkel", "visited", "Paris", "the", "United", "Nations", "in", "New", "York", "."]
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG"]


def _records(n: int, seed: int = 5) -> list[LabelledText]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        tokens = [rng.choice(WORDS) for _ in range(rng.randint(3, 14))]
        tags = [rng.choice(TAGS) if not t.startswith("I-") else "O" for t in [rng.choice(TAGS) for _ in tokens]]
        text, offsets, entities = sentence_to_text(tokens, tags)
        out.append(LabelledText(id=str(i), text=text, entities=tuple(entities), tokens=offsets))
    return out


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_each_offset_scores_what_the_model_with_that_offset_predicts(tiny_model):
    data = {"a": _records(25, 1), "b": _records(15, 2)}
    offsets = [0.0, 1.5, 4.0]
    with OffsetSweep(tiny_model, data) as offset_sweep:
        sweep = [offset_sweep.score(offset) for offset in offsets]
    assert [s.offset for s in sweep] == offsets
    for s in sweep:
        shifted = copy.deepcopy(tiny_model)
        apply_outside_offset(shifted.span_marker, shifted.outside_id, s.offset)
        engine = NerEngine(shifted, EngineConfig())
        for name, records in data.items():
            predicted = predict_spans(engine, records)
            assert score_spans([list(r.entities) for r in records], predicted) == s.per_set[name]
        assert s.pooled.micro.tp == sum(p.micro.tp for p in s.per_set.values())
    # A lower "O" logit never predicts fewer entities in total on these data.
    found = [s.pooled.micro.tp + s.pooled.micro.fp for s in sweep]
    assert found[0] < found[-1]
    assert best_offset(sweep) in sweep


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_label_left_out_is_left_out_of_gold_and_predictions(tiny_model):
    data = {"a": _records(20, 3)}
    with OffsetSweep(tiny_model, data) as sweep:
        kept = sweep.score(0.0)
    with OffsetSweep(tiny_model, data, label_map={"PER": None}, gold_label_map={"PER": None}) as sweep:
        left_out = sweep.score(0.0)
    assert "PER" in kept.pooled.per_label and "PER" not in left_out.pooled.per_label
    gold_per = sum(1 for r in data["a"] for *_, label in r.entities if label == "PER")
    assert gold_per and left_out.pooled.micro.support == kept.pooled.micro.support - gold_per


def test_the_offset_lowers_the_outside_bias_only(tiny_model):
    shifted = copy.deepcopy(tiny_model)
    before = shifted.span_marker.classifier.bias.detach().clone()
    apply_outside_offset(shifted.span_marker, shifted.outside_id, 0.75)
    after = shifted.span_marker.classifier.bias.detach()
    delta = (before - after).tolist()
    assert delta[shifted.outside_id] == pytest.approx(0.75)
    assert [d for i, d in enumerate(delta) if i != shifted.outside_id] == [0.0] * (len(delta) - 1)


def _with_offsets(model, offset: float, label_offsets: dict[str, float]):
    shifted = copy.deepcopy(model)
    apply_outside_offset(shifted.span_marker, shifted.outside_id, offset)
    apply_label_offsets(shifted.span_marker, {label: i for i, label in enumerate(shifted.labels)}, label_offsets)
    return shifted


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_each_label_setting_scores_what_the_model_with_those_offsets_predicts(tiny_model):
    data = {"a": _records(25, 4)}
    settings = [(0.0, {}), (0.5, {"PER": 2.0}), (0.0, {"LOC": -3.0, "ORG": 1.0})]
    with OffsetSweep(tiny_model, data) as offset_sweep:
        sweep = [offset_sweep.score(offset, label_offsets) for offset, label_offsets in settings]
    for (offset, label_offsets), s in zip(settings, sweep, strict=True):
        assert (s.offset, s.label_offsets) == (offset, label_offsets)
        engine = NerEngine(_with_offsets(tiny_model, offset, label_offsets), EngineConfig())
        predicted = predict_spans(engine, data["a"])
        assert score_spans([list(r.entities) for r in data["a"]], predicted) == s.per_set["a"]
    # Raising one label's logit predicts more of that label.
    predicted_per = [s.pooled.per_label["PER"].tp + s.pooled.per_label["PER"].fp for s in sweep[:2]]
    assert predicted_per[0] < predicted_per[1]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_tuning_keeps_the_best_setting_it_scored_and_never_loses_to_no_offsets(tiny_model):
    data = {"a": _records(30, 6), "b": _records(20, 7)}
    with OffsetSweep(tiny_model, data) as sweep:
        tuned = sweep.tune(["PER", "LOC", "ORG"], [-2.0, 0.0, 2.0, 4.0], rounds=2)
    untouched = next(s for s in tuned if not s.label_offsets)
    best = best_offset(tuned)
    assert best.pooled.micro.f1 >= untouched.pooled.micro.f1
    assert len({tuple(sorted(s.label_offsets.items())) for s in tuned}) == len(tuned)  # each setting scored once
    with OffsetSweep(tiny_model, data) as sweep:  # a sweep of its own: nothing carried over
        again = sweep.score(0.0, best.label_offsets)
    assert again.pooled == best.pooled


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_one_sweep_encodes_once_for_every_offset_and_label_setting(tiny_model):
    data = {"a": _records(12, 8)}
    with OffsetSweep(tiny_model, data) as sweep:
        scorer = sweep.engine.scorer
        assert isinstance(scorer, TextOnceScorer)
        encode = scorer.encode
        calls = []

        def counted(windows):
            calls.append(len(windows))
            return encode(windows)

        scorer.encode = counted  # type: ignore[method-assign,assignment]
        sweep.score(0.0)
        first = len(calls)
        sweep.score(1.0)
        tuned = sweep.tune(["PER", "ORG"], [-1.0, 1.0], rounds=1)
    assert first > 0 and len(calls) == first
    assert len(tuned) == 5  # no offsets, then two amounts for each label


def test_a_label_offset_raises_that_labels_bias_only(tiny_model):
    shifted = copy.deepcopy(tiny_model)
    before = shifted.span_marker.classifier.bias.detach().clone()
    label_ids = {label: i for i, label in enumerate(shifted.labels)}
    apply_label_offsets(shifted.span_marker, label_ids, {"ORG": 0.5})
    delta = (shifted.span_marker.classifier.bias.detach() - before).tolist()
    assert delta[label_ids["ORG"]] == pytest.approx(0.5)
    assert sum(abs(d) for i, d in enumerate(delta) if i != label_ids["ORG"]) == 0.0


def test_the_logit_shift_is_what_applying_the_offsets_adds_to_the_bias(tiny_model):
    before = tiny_model.span_marker.classifier.bias.detach().clone()
    shifted = _with_offsets(tiny_model, 0.75, {"ORG": 0.5, "PER": -1.0})
    added = shifted.span_marker.classifier.bias.detach() - before
    expected = logit_shift(tiny_model.labels, tiny_model.outside_id, 0.75, {"ORG": 0.5, "PER": -1.0})
    assert torch.allclose(added, expected)


def test_the_sweep_refuses_modes_it_does_not_decode(tiny_model):
    with pytest.raises(ValueError, match="exact"):
        OffsetSweep(tiny_model, {"a": _records(2)}, engine_config=EngineConfig(precision="fast"))
