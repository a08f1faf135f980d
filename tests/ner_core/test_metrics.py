import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from ner_core.metrics import PRF, bootstrap_interval, pooled, score_spans, spans_from_iob2

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


def test_pooled_adds_counts():
    assert pooled([PRF(1, 2, 3), PRF(4, 0, 1)]) == PRF(5, 2, 4)
    assert pooled([]) == PRF(0, 0, 0)


def _texts(seed: int, n: int) -> list[PRF]:
    import random

    rng = random.Random(seed)
    return [PRF(rng.randint(5, 40), rng.randint(0, 10), rng.randint(0, 12)) for _ in range(n)]


def test_bootstrap_interval_holds_the_figure_and_narrows_with_more_texts():
    def f1(texts):
        return lambda idx: 100 * pooled(texts[i] for i in idx).f1

    few, many = _texts(1, 20), _texts(1, 400)
    low, high = bootstrap_interval(f1(few), len(few))
    assert low < f1(few)(range(20)) < high
    low_many, high_many = bootstrap_interval(f1(many), len(many))
    assert high_many - low_many < (high - low) / 2
    # Seeded: the same call gives the same interval.
    assert bootstrap_interval(f1(few), len(few)) == (low, high)


def test_a_paired_difference_is_resampled_in_pairs():
    """Two scorings of the same texts that differ a little on each: their difference's interval
    is far narrower than either score's, which it would not be if they were drawn apart."""
    first = _texts(2, 20)
    second = [PRF(c.tp - (i % 3 == 0), c.fp + (i % 3 == 0), c.fn + (i % 3 == 0)) for i, c in enumerate(first)]

    def f1(texts, idx):
        return 100 * pooled(texts[i] for i in idx).f1

    low, high = bootstrap_interval(lambda idx: f1(first, idx), 20)
    d_low, d_high = bootstrap_interval(lambda idx: f1(first, idx) - f1(second, idx), 20)
    assert 0 < d_low < f1(first, range(20)) - f1(second, range(20)) < d_high
    assert d_high - d_low < (high - low) / 3
