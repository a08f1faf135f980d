"""Evaluation through the engine agrees with seqeval's strict IOB2 mode on sentence data."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from ner_core.evaluation import evaluate_records
from ner_core.labelled import LabelledText, sentence_to_text
from ner_core.metrics import score_spans, spans_from_iob2

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
WORDS = ["Angela", "Merkel", "visited", "Paris", "the", "United", "Nations", "in", "New", "York", "北京", "中国", "."]


def _assert_same_as_seqeval(ours, gold_tags, pred_tags):
    theirs = classification_report(gold_tags, pred_tags, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    for label, s in ours.per_label.items():
        if s.support == 0:
            continue
        assert theirs[label]["f1-score"] == pytest.approx(s.f1)
        assert theirs[label]["precision"] == pytest.approx(s.precision)
        assert theirs[label]["support"] == s.support
    if ours.micro.support:
        assert theirs["micro avg"]["f1-score"] == pytest.approx(ours.micro.f1)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
# Hypothesis flags any change of the global `random` state while it draws; in the full run the
# change comes from threads that earlier flow tests left in this process (Prefect's clients
# jitter their retries with `random`), not from this test, which draws only from Hypothesis.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_character_spans_of_joined_sentences_score_as_seqeval_scores_the_tags(data):
    n = data.draw(st.integers(1, 6))
    sentences = [data.draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=10)) for _ in range(n)]
    gold = [data.draw(st.lists(st.sampled_from(TAGS), min_size=len(s), max_size=len(s))) for s in sentences]
    pred = [data.draw(st.lists(st.sampled_from(TAGS), min_size=len(s), max_size=len(s))) for s in sentences]
    gold_chars, pred_chars = [], []
    for tokens, g, p in zip(sentences, gold, pred):
        _, offsets, entities = sentence_to_text(tokens, g)
        gold_chars.append(entities)
        pred_chars.append([(offsets[a][0], offsets[b - 1][1], label) for a, b, label in spans_from_iob2(p)])
    _assert_same_as_seqeval(score_spans(gold_chars, pred_chars), gold, pred)


def _tags_from_char_spans(offsets, spans):
    starts = {a: i for i, (a, _) in enumerate(offsets)}
    ends = {b: i for i, (_, b) in enumerate(offsets)}
    tags = ["O"] * len(offsets)
    for a, b, label in spans:
        i, j = starts[a], ends[b]  # KeyError: the prediction does not fall on token boundaries
        tags[i] = f"B-{label}"
        for k in range(i + 1, j + 1):
            tags[k] = f"I-{label}"
    return tags


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_engine_evaluation_of_sentences_agrees_with_seqeval(tiny_model):
    rng = random.Random(7)
    latin = [w for w in WORDS if w.isascii() and w != "."]
    records, gold_tags = [], []
    for i in range(60):
        tokens = [rng.choice(latin) for _ in range(rng.randint(2, 12))]
        tags = [rng.choice(TAGS) for _ in tokens]
        text, offsets, entities = sentence_to_text(tokens, tags)
        records.append(LabelledText(id=str(i), text=text, entities=tuple(entities), lang="en", tokens=offsets))
        gold_tags.append(tags)
    report = evaluate_records(tiny_model, records, name="random")

    from ner_core import NerEngine
    from ner_core.evaluation import predict_spans

    predicted = predict_spans(NerEngine(tiny_model), records)
    assert sum(map(len, predicted)) > 20, "the tiny model should predict entities for the comparison to mean anything"
    pred_tags = [_tags_from_char_spans(r.tokens, p) for r, p in zip(records, predicted)]
    _assert_same_as_seqeval(report.scores, gold_tags, pred_tags)
    assert report.texts == 60 and set(report.per_language) == {"en"}
    # Each text's counts, in order, add up to the data set's: what a bootstrap resamples.
    from ner_core.metrics import pooled

    assert len(report.per_text) == 60
    assert pooled(report.per_text) == report.scores.micro
    assert [c.tp + c.fn for c in report.per_text] == [len(r.entities) for r in records]


def test_a_label_map_ignores_labels_on_both_sides(tiny_model):
    text = "Angela Merkel visited Paris ."
    from ner_core import NerEngine

    predicted = NerEngine(tiny_model).predict_text(text).entities
    gold = tuple((e.start, e.end, e.label) for e in predicted)
    record = LabelledText(id="x", text=text, entities=gold + ((0, 6, "MISC"),))
    perfect = evaluate_records(tiny_model, [record], gold_label_map={"MISC": None})
    assert perfect.scores.micro.f1 == 1.0 or not gold
    dropped = evaluate_records(
        tiny_model,
        [record],
        label_map=dict.fromkeys(tiny_model.entity_labels),
        gold_label_map=dict.fromkeys(tiny_model.entity_labels),
    )
    assert dropped.scores.micro.support == 0
