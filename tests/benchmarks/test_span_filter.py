"""benchmarks/span_filter.py: the gold entities the filter drops, and phases measured again."""

from __future__ import annotations

import json
from argparse import Namespace

import numpy as np
import pytest

from ner_core.labelled import LabelledText


@pytest.fixture
def bench(benchmark_module):
    return benchmark_module("span_filter")


def test_the_gold_spans_under_the_threshold_are_listed_with_their_text(bench, tiny_wordpiece_model_dir):
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

    out = bench.gold_by_label_and_dropped(model, windows, data, [probs], threshold=0.01)

    assert out["gold_recall_by_label"] == {per: 1.0, org: 0.0}
    assert out["gold_dropped"] == [{"set": "news", "label": org, "probability": 0.001, "text": "oslo"}]


def test_a_name_with_its_quotation_marks_is_told_apart(bench):
    assert bench.in_quotation_marks('" Daily News "')
    assert bench.in_quotation_marks("«Газпром»")
    assert not bench.in_quotation_marks("Daily News")
    assert not bench.in_quotation_marks('"')
    assert not bench.in_quotation_marks("l'ONU'")  # apostrophes are not quotation marks


def _measured_again(bench, monkeypatch, tmp_path, **changed):
    """The shipped result in a file, and ``measure`` replaced by a run that measures the flow
    anew (with ``changed`` settings). Returns the file, the old result, what the new run
    records of itself, its flow phase and the phases it was asked for."""
    old = json.loads((bench.RESULTS / "span_filter.json").read_text())
    path = tmp_path / "span_filter.json"
    path.write_text(json.dumps(old))
    flow = {**old["end_to_end"], "docs": 7}
    fresh = {key: old[key] for key in bench.SHARED_SETTINGS}
    fresh |= {"command": "python benchmarks/span_filter.py --only flow", "date": "2030-01-01", "cpu": old["cpu"]}
    fresh |= {"seconds": 12.0, **changed}
    phases_measured = []

    def measure(args, phases):
        phases_measured.append(phases)
        return {**fresh, "end_to_end": flow}

    monkeypatch.setattr(bench, "measure", measure)
    return path, old, fresh, flow, phases_measured


def test_only_the_phases_named_are_measured_again_and_marked(bench, tmp_path, monkeypatch):
    path, old, fresh, flow, phases_measured = _measured_again(bench, monkeypatch, tmp_path)

    result = bench.remeasure(Namespace(only=["flow"]), path)

    assert phases_measured == [("flow",)]
    assert result["end_to_end"] == flow
    assert result["speed"] == old["speed"] and result["command"] == old["command"]
    about = {key: fresh[key] for key in ("command", "date", "cpu", "model_id", "seconds")}
    assert result["remeasured"] == {**old.get("remeasured", {}), "end_to_end": about}
    report = bench.render(result)
    assert "same 7 documents" in report
    assert "`end_to_end` was measured again on 2030-01-01" in report


def test_a_phase_measured_with_other_settings_is_refused(bench, tmp_path, monkeypatch):
    path, *_ = _measured_again(bench, monkeypatch, tmp_path, model_id="spanmarker-other", dev_skipped_per_set=0)

    with pytest.raises(SystemExit, match="model_id, dev_skipped_per_set differ"):
        bench.remeasure(Namespace(only=["flow"]), path)


def test_only_refuses_the_options_that_would_be_ignored(bench, capsys):
    for other in ("--recall-only", "--report-only", "--skip-flow"):
        with pytest.raises(SystemExit):
            bench.main(["--only", "flow", other])
        assert "--only names the phases" in capsys.readouterr().err
