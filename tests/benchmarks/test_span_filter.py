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


def test_each_kind_of_cpu_is_told_apart_by_what_it_multiplies_bf16_with(bench):
    assert bench.cpu_kind({"amx_bf16": True, "avx512_bf16": True}) == "amx_bf16"
    assert bench.cpu_kind({"amx_bf16": False, "avx512_bf16": True}) == "avx512_bf16"
    assert bench.cpu_kind({"amx_bf16": False, "avx512_bf16": False}) == "no_bf16"
    assert bench.cpu_kind({}) == "no_bf16"  # a record from before the flags were kept


def _shipped_result(bench) -> dict:
    return json.loads((bench.RESULTS / "span_filter.json").read_text())


def test_the_speed_of_a_phase_measured_again_carries_that_run_s_cpu(bench):
    result = _shipped_result(bench)
    result.pop("remeasured", None)
    assert bench.speed_record(result)["command"] == result["command"]
    other_cpu = {**result["cpu"], "model_name": "AMD EPYC", "amx_bf16": False}
    result["remeasured"] = {
        "speed": {
            "command": "python x --only speed",
            "date": "2030-01-01",
            "cpu": other_cpu,
            "model_id": result["model_id"],
            "seconds": 1.0,
        }
    }

    record = bench.speed_record(result)

    assert record["command"] == "python x --only speed" and record["cpu"] == other_cpu
    assert record["speed"] == result["speed"]
    assert record["operating_point"] == result["operating_point"]


def test_each_kind_of_cpu_keeps_its_latest_speed_and_the_report_sets_them_side_by_side(bench, tmp_path):
    result = _shipped_result(bench)
    result.pop("remeasured", None)
    amx = bench.speed_record(result)
    amx["cpu"] = {**amx["cpu"], "amx_bf16": True}
    older = {
        **amx,
        "date": "2020-01-01",
        "cpu": {**amx["cpu"], "model_name": "AMD EPYC", "amx_bf16": False, "avx512_bf16": False, "fast_kind": "int8"},
    }
    newer = {**older, "date": "2030-01-01"}

    bench.record_cpu_speed(older, tmp_path)
    bench.record_cpu_speed(amx, tmp_path)
    bench.record_cpu_speed(newer, tmp_path)  # the same kind again: it replaces the older run

    records = bench.cpu_speeds(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["amx_bf16.json", "no_bf16.json"]
    assert [r["date"] for r in records] == [amx["date"], "2030-01-01"]  # AMX first
    report = bench.render_cpu_speeds(records)
    rows = [line for line in report.splitlines() if line.startswith("| ") and "×" in line]
    assert len(rows) == 2 * len(result["speed"])
    sentences = result["speed"]["sentences"]
    ratio = sentences["pruned+fast"]["words_per_s"] / sentences["predict_best_words_per_s"]
    assert f"| sentences | {sentences['predict_best_words_per_s']:.0f} |" in rows[0]
    assert rows[0].endswith(f" {ratio:.2f}× |")
    assert "neither AMX nor AVX-512-BF16; fast mode int8 | 2030-01-01" in rows[-1]


def test_cpu_speed_measures_the_speed_phase_alone_and_leaves_the_results_file(bench, tmp_path, monkeypatch):
    result = _shipped_result(bench)
    out = tmp_path / "span_filter.json"
    out.write_text("untouched")
    report = tmp_path / "performance.md"
    report.write_text("# Performance\n")
    phases_measured = []

    def measure(args, phases):
        phases_measured.append(phases)
        return {key: result[key] for key in ("command", "date", "cpu", "model_id", "operating_point", "speed")}

    monkeypatch.setattr(bench, "measure", measure)
    monkeypatch.setattr(bench, "CPU_SPEEDS", tmp_path / "speeds")
    monkeypatch.setattr(bench, "REPORT", report)

    assert bench.main(["--cpu-speed", "--out", str(out)]) == 0

    assert phases_measured == [("speed",)]
    assert out.read_text() == "untouched"
    assert [p.name for p in (tmp_path / "speeds").iterdir()] == [f"{bench.cpu_kind(result['cpu'])}.json"]
    assert "### Span filter: speed on each kind of CPU" in report.read_text()
    with pytest.raises(SystemExit):
        bench.main(["--cpu-speed", "--only", "speed"])


def test_a_run_into_another_results_file_does_not_replace_the_cpu_s_speed(bench, tmp_path, monkeypatch):
    result = _shipped_result(bench)
    monkeypatch.setattr(bench, "measure", lambda args, phases: result)
    monkeypatch.setattr(bench, "CPU_SPEEDS", tmp_path / "speeds")
    monkeypatch.setattr(bench, "REPORT", tmp_path / "performance.md")

    assert bench.main(["--out", str(tmp_path / "candidate.json")]) == 0

    assert json.loads((tmp_path / "candidate.json").read_text())["speed"] == result["speed"]
    assert not (tmp_path / "speeds").exists()
