import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from ner_core.metrics import score_spans, spans_from_iob2

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
sentences = st.lists(st.lists(st.sampled_from(TAGS), min_size=1, max_size=12), min_size=1, max_size=8)


# seqeval averages empty arrays when a label has no support; its NumPy warnings are noise here.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_agrees_exactly_with_seqeval_strict_iob2(data):
    gold = data.draw(sentences)
    pred = [data.draw(st.lists(st.sampled_from(TAGS), min_size=len(g), max_size=len(g))) for g in gold]
    ours = score_spans([spans_from_iob2(g) for g in gold], [spans_from_iob2(p) for p in pred])
    theirs = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    for label, s in ours.per_label.items():
        if s.support == 0:
            continue  # seqeval reports only labels present in gold or predictions
        assert theirs[label]["precision"] == pytest.approx(s.precision)
        assert theirs[label]["recall"] == pytest.approx(s.recall)
        assert theirs[label]["f1-score"] == pytest.approx(s.f1)
        assert theirs[label]["support"] == s.support
    if ours.micro.support:
        assert theirs["micro avg"]["f1-score"] == pytest.approx(ours.micro.f1)
        assert theirs["micro avg"]["precision"] == pytest.approx(ours.micro.precision)
        assert theirs["micro avg"]["recall"] == pytest.approx(ours.micro.recall)


def test_strict_iob2_decoding():
    assert spans_from_iob2(["B-PER", "I-PER", "O", "I-LOC", "B-ORG", "I-LOC"]) == [(0, 2, "PER"), (4, 5, "ORG")]


def test_label_maps_ignore_and_rename():
    gold = [[(0, 2, "PER"), (3, 4, "MISC")]]
    pred = [[(0, 2, "person"), (5, 6, "MISC")]]
    s = score_spans(gold, pred, label_map={"person": "PER", "MISC": None}, gold_label_map={"MISC": None})
    assert (s.micro.tp, s.micro.fp, s.micro.fn) == (1, 0, 0)
    assert s.micro.f1 == 1.0 and set(s.per_label) == {"PER"}


def test_samples_must_pair_up():
    with pytest.raises(ValueError):
        score_spans([[]], [[], []])
