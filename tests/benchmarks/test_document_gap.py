"""benchmarks/document_gap.py: the documents-against-sentences difference and its interval,
from per-document counts."""

from __future__ import annotations

import pytest

from ner_core.metrics import PRF


@pytest.fixture
def document_gap(benchmark_module):
    return benchmark_module("document_gap")


def _document(i: int, docs: tuple[int, int, int], sentences: tuple[int, int, int]) -> dict:
    return {
        "id": f"doc:de:{i:02d}",
        "documents": dict(zip(("tp", "fp", "fn"), docs, strict=True)),
        "sentences": dict(zip(("tp", "fp", "fn"), sentences, strict=True)),
    }


def test_each_document_pools_its_own_sentences(document_gap):
    documents = [PRF(8, 2, 2), PRF(10, 0, 0)]
    sentences = [PRF(4, 1, 0), PRF(5, 0, 1), PRF(6, 0, 0), PRF(4, 0, 0)]
    counts = document_gap.per_document(["a", "b"], documents, sentences, [2, 4])
    assert counts == [
        _document(0, (8, 2, 2), (9, 1, 1)) | {"id": "a"},
        _document(1, (10, 0, 0), (10, 0, 0)) | {"id": "b"},
    ]
    # documents 18/2/2 (F1 0.9), sentences 19/1/1 (F1 0.95)
    assert document_gap.gap(counts, range(2)) == pytest.approx(-5.0)
    assert document_gap.gap(counts, [1, 1]) == 0.0


def test_the_interval_holds_the_gap_and_compare_pairs_the_documents(document_gap):
    worse = [_document(i, (20 - i % 4, 3 + i % 4, 4 + i % 4), (20, 3, 4)) for i in range(20)]
    same = [_document(i, (20, 3, 4), (20, 3, 4)) for i in range(20)]
    gap = document_gap.gap(worse, range(20))
    low, high = document_gap.gap_interval(worse)
    assert low <= gap <= high < 0
    assert document_gap.gap_interval(same) == [0.0, 0.0]

    compared = document_gap.compare({"de": worse}, {"de": same, "zh": same})["de"]
    assert compared["documents"] == 20
    assert compared["difference"] == pytest.approx(gap)
    assert compared["difference_interval"][1] < 0
    # worse's documents lose entities that same's find: its windowed F1 is lower.
    assert compared["windowed_difference"] == pytest.approx(
        document_gap.windowed_f1(worse, range(20)) - document_gap.windowed_f1(same, range(20))
    )
    assert compared["windowed_difference_interval"][1] < 0


def test_runs_of_either_script_give_their_documents(document_gap):
    counts = [_document(0, (1, 0, 0), (1, 0, 0))]
    assert document_gap.documents_of({"docs": {"de": {"per_document": counts}}}) == {"de": counts}
    assert document_gap.documents_of({"sets": {"germeval": {"per_document": counts}, "old": {}}}) == {
        "germeval": counts
    }


def test_runs_pool_into_one_gap(document_gap):
    german = {"docs": {"de": {"per_document": [_document(0, (8, 2, 2), (9, 1, 1))]}}}
    chinese = {"docs": {"zh": {"per_document": [_document(1, (10, 0, 0), (10, 0, 0))]}}}
    pooled = document_gap.pooled_gap([german, chinese])
    assert pooled["documents"] == 2
    assert pooled["gap"] == pytest.approx(-5.0)
    low, high = pooled["interval"]
    assert low <= -5.0 <= high <= 0.0


def test_compare_refuses_different_documents(document_gap):
    with pytest.raises(ValueError, match="different documents"):
        document_gap.compare({"de": [_document(0, (1, 0, 0), (1, 0, 0))]}, {"de": [_document(1, (1, 0, 0), (1, 0, 0))]})
