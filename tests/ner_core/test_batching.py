import pytest

from ner_core.batching import pack_by_budget, round_up


def test_round_up():
    assert [round_up(n, 8) for n in (1, 8, 9, 16)] == [8, 8, 16, 16]


@pytest.mark.parametrize("budget,max_items", [(100, 64), (40, 3), (10, 2)])
def test_pack_by_budget_respects_budget_and_keeps_every_item(budget, max_items):
    lengths = [5, 30, 7, 12, 50, 1, 9, 9, 22]
    batches = pack_by_budget(lengths, budget, max_items=max_items)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= max_items
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= budget


def test_pack_by_budget_sorts_by_length():
    batches = pack_by_budget([9, 1, 5], 100, max_items=2)
    assert batches == [[1, 2], [0]]
