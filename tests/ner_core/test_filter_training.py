"""Training a span filter on a frozen encoder and choosing its operating point."""

import numpy as np
import pytest
import torch

from ner_core import EngineConfig, NerEngine
from ner_core.filter_training import (
    CURVE_THRESHOLDS,
    FilterTrainConfig,
    choose_operating_point,
    encode_windows,
    model_windows,
    probabilities,
    recall_curve,
    train_span_filter,
)
from ner_core.labelled import LabelledText
from tests.ner_core.test_engine import SENTENCES


def _labelled_by_the_model(model, texts):
    """Texts labelled with the tiny model's own entities: something its states can predict."""
    engine = NerEngine(model, EngineConfig(span_filter="off", space_punctuation=False, trim_unpaired_quotes=False))
    return [
        LabelledText(id=str(i), text=r_text, entities=tuple((e.start, e.end, e.label) for e in r.entities))
        for i, (r_text, r) in enumerate(zip(texts, engine.predict(texts)))
    ]


def test_the_operating_point_keeps_the_target_share_of_the_models_entities(tiny_model):
    records = _labelled_by_the_model(tiny_model, SENTENCES * 3)
    windows = model_windows(tiny_model, records)
    train = encode_windows(tiny_model, windows, source="train")
    dev = encode_windows(tiny_model, windows[:14], source="a")
    with pytest.raises(ValueError, match="model_entities"):
        encode_windows(tiny_model, windows[14:28], source="b", into=dev, model_entities=True)
    with pytest.raises(ValueError, match="model_entities"):
        choose_operating_point(probabilities(_trained(tiny_model, train, train).head, dev), dev, 0.9)

    dev = encode_windows(tiny_model, windows[:14], source="a", model_entities=True)
    dev = encode_windows(tiny_model, windows[14:28], source="b", into=dev, model_entities=True)
    assert sum(int(p.sum()) for p in dev.predicted) > 5
    span_filter = _trained(tiny_model, train, dev, target_recall=0.9, round_to_grid=False)
    point = span_filter.operating_point
    probs = probabilities(span_filter.head, dev)
    row = recall_curve(probs, dev, [point.threshold])[0]
    assert row["model_min_recall"] >= 0.9
    assert point.recall == row["model_min_recall"]
    assert point.spans_per_word == pytest.approx(row["spans_per_word"])
    # The highest such threshold: a hair above it loses a model entity somewhere.
    above = recall_curve(probs, dev, [np.nextafter(point.threshold, 1.0)])[0]
    assert above["model_min_recall"] < 0.9 or point.threshold == 1.0
    curve = span_filter.info["curve"]
    kept = [r["spans_per_word"] for r in curve]
    assert kept == sorted(kept), "lower thresholds keep more spans"
    assert span_filter.info["operating_point_on"] == "model entities"


def test_the_operating_point_rounds_down_to_the_grid_and_keeps_every_entity_by_default(tiny_model):
    records = _labelled_by_the_model(tiny_model, SENTENCES * 3)
    windows = model_windows(tiny_model, records)
    train = encode_windows(tiny_model, windows, source="train")
    dev = encode_windows(tiny_model, windows[:20], source="a", model_entities=True)
    exact = _trained(tiny_model, train, dev, round_to_grid=False)
    grid = (0.5, 0.2, 0.05, 0.01, 0.001)
    probs = probabilities(exact.head, dev)
    rounded = choose_operating_point(probs, dev, 1.0, grid=grid)
    assert exact.operating_point.recall == 1.0 == rounded.recall
    below = [t for t in grid if t <= exact.operating_point.threshold]
    assert rounded.threshold == (max(below) if below else exact.operating_point.threshold)
    assert rounded.spans_per_word >= exact.operating_point.spans_per_word
    # A grid with nothing at or below the exact point keeps the exact point.
    assert choose_operating_point(probs, dev, 1.0, grid=(2.0,)).threshold == exact.operating_point.threshold

    by_default = _trained(tiny_model, train, dev)
    assert by_default.info["operating_point_rule"] == {"target_recall": 1.0, "round_to_grid": True}
    assert "target_recall" not in by_default.info["config"], "the rule is recorded once"
    assert by_default.operating_point.recall == 1.0
    assert by_default.operating_point.threshold in CURVE_THRESHOLDS or all(
        t > by_default.operating_point.threshold for t in CURVE_THRESHOLDS
    )


def _trained(model, train, dev, **settings):
    small = {"epochs": 2, "batch_windows": 8, "inner": 16, "width_dim": 4}
    return train_span_filter(model, train, dev, FilterTrainConfig(**{**small, **settings}))


def test_training_data_without_entities_is_refused(tiny_model):
    records = [LabelledText(id="0", text="nothing to see here", entities=())]
    data = encode_windows(tiny_model, model_windows(tiny_model, records), source="x")
    with pytest.raises(ValueError, match="no entity span"):
        train_span_filter(tiny_model, data, data)


def test_config_refuses_unknown_keys():
    with pytest.raises(ValueError):
        FilterTrainConfig(epoch=3)


def test_encoded_windows_keep_the_order_they_were_given_in(tiny_model):
    # Batches are packed by length; callers zip the result with their own windows.
    from ner_core.inference import TextOnceScorer

    records = _labelled_by_the_model(tiny_model, sorted(SENTENCES, key=len, reverse=True))
    windows = model_windows(tiny_model, records)
    assert len({w.input.n_tokens for w in windows}) > 1
    data = encode_windows(tiny_model, windows, source="x", batch_tokens=64)
    alone = TextOnceScorer(tiny_model)
    for w, states, positive in zip(windows, data.states, data.positive, strict=True):
        assert np.array_equal(positive, w.labels != tiny_model.outside_id)
        own = alone.encode_text([w.input]).states.float()
        assert torch.allclose(states.float(), own.to(torch.float16).float(), atol=1e-2)
    assert data.words == [w.input.n_words for w in windows]


def test_the_model_entities_kept_for_dev_data_are_exact_modes(tiny_model):
    # encode_windows scores the markers against its own text pass; the entities must be those
    # of exact mode's ordinary scoring, text and markers together.
    from ner_core.decoding import select_spans
    from ner_core.inference import TextOnceScorer
    from ner_core.windowing import enumerate_spans

    records = _labelled_by_the_model(tiny_model, SENTENCES)
    windows = model_windows(tiny_model, records)
    data = encode_windows(tiny_model, windows, source="dev", model_entities=True)
    scored = TextOnceScorer(tiny_model).score([w.input for w in windows])
    assert sum(int(p.sum()) for p in data.predicted) > 0
    for w, kept, s in zip(windows, data.predicted, scored, strict=True):
        n_words = w.input.n_words
        starts, ends = enumerate_spans(n_words, tiny_model.entity_max_length)
        chosen = select_spans(s.scores, s.label_ids, starts, ends, n_words, tiny_model.outside_id)
        assert sorted(np.flatnonzero(kept)) == sorted(chosen)


def test_a_head_taught_the_models_entities_learns_them_where_gold_leaves_them_out(tiny_model):
    # Gold that holds only each text's first word, never what the model finds: a head taught
    # gold alone learns the model's entities as negatives, one taught both as positives.
    found = _labelled_by_the_model(tiny_model, [t for t in SENTENCES if " " in t] * 2)
    records = []
    for r in found:
        first_word = (0, r.text.index(" "), tiny_model.labels[1])
        records.append(LabelledText(id=r.id, text=r.text, entities=(first_word,)))
    windows = model_windows(tiny_model, records)
    plain = encode_windows(tiny_model, windows, source="train")
    with pytest.raises(ValueError, match="model_entities"):
        _trained(tiny_model, plain, plain, positives="gold+model")

    train = encode_windows(tiny_model, windows, source="train", model_entities=True)
    gold = [p & ~m for p, m in zip(train.positive, train.predicted)]
    assert sum(int(m.sum()) for m in train.predicted) > 5 and any(g.any() for g in gold)
    union = sum(int((p | m).sum()) for p, m in zip(train.positive, train.predicted))

    def mean_probability_of_model_entities(span_filter):
        probs = probabilities(span_filter.head, train)
        return float(np.concatenate([p[m] for p, m in zip(probs, train.predicted)]).mean())

    both = _trained(tiny_model, train, train, positives="gold+model", epochs=20)
    gold_only = _trained(tiny_model, train, train, epochs=20)
    assert both.info["train_positive_spans"] == union
    assert gold_only.info["train_positive_spans"] == sum(int(p.sum()) for p in train.positive)
    assert both.info["config"]["positives"] == "gold+model"
    assert mean_probability_of_model_entities(both) > mean_probability_of_model_entities(gold_only) + 0.1
