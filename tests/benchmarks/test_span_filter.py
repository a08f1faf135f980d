"""benchmarks/span_filter.py: the gold entities the filter drops, and phases measured again."""

from __future__ import annotations

import json
from argparse import Namespace

import numpy as np
import pytest

from ner_core.labelled import LabelledText
from tests.benchmarks.conftest import BENCHMARKS


@pytest.fixture
def bench(benchmark_module):
    return benchmark_module("span_filter")


def test_dropped_gold_lists_the_gold_spans_under_the_threshold_with_their_text(bench, tiny_wordpiece_model_dir):
    from ner_core import load_model
    from ner_core.filter_training import encode_windows, model_windows

    model = load_model(tiny_wordpiece_model_dir, device="cpu")
    per, org = model.labels[1], model.labels[2]
    record = LabelledText(id="a", text="anna lives in oslo today", entities=((0, 4, per), (14, 18, org)))
    windows = model_windows(model, [record])
    data = encode_windows(model, windows, source="news")
    (positive,) = data.positive
    first, second = np.flatnonzero(positive)
    probs = np.full(len(positive), 0.5)
    probs[first], probs[second] = 0.9, 0.001

    out = bench.dropped_gold(model, windows, data, [probs], threshold=0.01)

    assert out["gold_recall_by_label"] == {per: 1.0, org: 0.0}
    assert out["gold_dropped"] == [{"set": "news", "label": org, "probability": 0.001, "text": "oslo"}]


def test_a_name_with_its_quotation_marks_is_told_apart(bench):
    assert bench.in_quotation_marks('" Daily News "')
    assert bench.in_quotation_marks("«Газпром»")
    assert not bench.in_quotation_marks("Daily News")
    assert not bench.in_quotation_marks('"')
    assert not bench.in_quotation_marks("l'ONU'")  # apostrophes are not quotation marks


def test_only_the_phases_named_are_measured_again_and_marked(bench, tmp_path, monkeypatch):
    old = json.loads((BENCHMARKS / "results" / "span_filter.json").read_text())
    path = tmp_path / "span_filter.json"
    path.write_text(json.dumps(old))
    flow = {**old["end_to_end"], "docs": 7}
    fresh = {"command": "python benchmarks/span_filter.py --only flow", "date": "2030-01-01", "cpu": old["cpu"]}
    measured = []

    def fake_measure(args, phases):
        measured.append(phases)
        return {**fresh, "model_id": "spanmarker-new", "end_to_end": flow}

    monkeypatch.setattr(bench, "measure", fake_measure)
    result = bench.remeasure(Namespace(only=["flow"]), path)

    assert measured == [("flow",)]
    assert result["end_to_end"] == flow
    assert result["speed"] == old["speed"] and result["command"] == old["command"]
    marked = {**old.get("remeasured", {}), "end_to_end": {**fresh, "model_id": "spanmarker-new"}}
    assert result["remeasured"] == marked
    report = bench.render(result)
    assert "same 7 documents" in report
    assert "`end_to_end` was measured again on 2030-01-01" in report
