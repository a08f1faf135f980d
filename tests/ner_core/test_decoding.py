import numpy as np
import pytest

from ner_core.decoding import Candidate, entity_char_range, merge_candidates, select_spans, without_unpaired_quotes
from ner_core.windowing import enumerate_spans


def test_select_spans_is_greedy_by_score_and_skips_outside():
    starts, ends = enumerate_spans(4, 2)  # (0,1) (0,2) (1,2) (1,3) (2,3) (2,4) (3,4)
    scores = np.array([0.5, 0.9, 0.8, 0.7, 0.99, 0.6, 0.95], dtype=np.float32)
    labels = np.array([1, 1, 2, 1, 0, 2, 3])
    kept = select_spans(scores, labels, starts, ends, 4, outside_id=0)
    # (3,4) 0.95 first; (0,2) 0.9; (1,2) overlaps; (1,3) overlaps; (2,4) overlaps (3,4); (0,1) overlaps.
    assert kept == [6, 1]


def test_select_spans_ties_keep_span_order():
    starts, ends = enumerate_spans(2, 2)  # (0,1) (0,2) (1,2)
    scores = np.array([0.5, 0.5, 0.5], dtype=np.float32)
    assert select_spans(scores, np.array([1, 1, 1]), starts, ends, 2, outside_id=0) == [0, 2]


def test_merge_keeps_the_copy_with_most_context_and_counts_duplicates():
    a = Candidate(10, 12, 1, 0.6, context=2)
    b = Candidate(10, 12, 2, 0.9, context=1)
    c = Candidate(10, 12, 1, 0.7, context=9)
    merged, dup = merge_candidates([a, b, c], 20, min_context=4)
    assert merged == [c] and dup == 2


def test_merge_resolves_overlaps_by_context_then_score():
    close_to_edge = Candidate(5, 9, 1, 0.99, context=0)
    well_seen = Candidate(6, 9, 2, 0.70, context=6)
    also_well_seen = Candidate(8, 10, 3, 0.80, context=5)
    merged, _ = merge_candidates([close_to_edge, well_seen, also_well_seen], 20, min_context=4)
    # Both well-seen entities have enough context: score decides between them.
    assert merged == [also_well_seen]
    merged, _ = merge_candidates([close_to_edge, well_seen], 20, min_context=4)
    assert merged == [well_seen]


def test_entity_char_range_ignores_invisible_edge_words():
    cs = np.array([0, 5, 5, 9])
    ce = np.array([4, 5, 8, 9])  # words 1 and 3 are invisible
    assert entity_char_range(cs, ce, 0, 3) == (0, 8)
    assert entity_char_range(cs, ce, 1, 2) is None
    assert entity_char_range(cs, ce, 1, 4) == (5, 8)


@pytest.mark.parametrize(
    ("entity", "kept"),
    [
        ("Газпром»", "Газпром"),
        ("« Газпром", "Газпром"),
        ('"Apple', "Apple"),
        ("«Газпром»", "«Газпром»"),  # a name between quotes keeps both (BSNLP annotates them so)
        ("„Die Zeit“", "„Die Zeit“"),
        ('Café "Bauer" Wien"', 'Café "Bauer" Wien'),
        ("Smith’s", "Smith’s"),  # apostrophes are not quotation marks
        ("»", ""),
    ],
)
def test_unpaired_quotes_come_off_entity_edges(entity, kept):
    text = f"x {entity} y"
    start, end = without_unpaired_quotes(text, 2, 2 + len(entity))
    assert text[start:end] == kept
