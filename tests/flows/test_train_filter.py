"""The train-span-filter flow through ``nerflow train-filter``, and a run that uses the filter."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from ner_core import EngineConfig, NerEngine, load_model
from nerflow.cli import main
from tests.flows.test_extract_entities import write_corpus
from tests.ner_core.test_engine import SENTENCES


def _labelled_by_the_model(model_dir, path):
    """The tiny random model's own entities as the labels: what its text states can tell."""
    engine = NerEngine(load_model(model_dir, device="cpu"), EngineConfig(span_filter="off"))
    with open(path, "w", encoding="utf-8") as f:
        for i, (text, result) in enumerate(zip(SENTENCES * 2, engine.predict(SENTENCES * 2))):
            entities = [{"start": e.start, "end": e.end, "label": e.label} for e in result.entities]
            f.write(json.dumps({"id": f"s{i}", "text": text, "entities": entities}, ensure_ascii=False) + "\n")
    return path


def _train_filter(model, *args: str) -> int:
    return main(["train-filter", "--model", str(model), *args])


def test_train_filter_then_run_with_it(prefect_harness, tiny_wordpiece_model_dir, tmp_path, capsys):
    data = _labelled_by_the_model(tiny_wordpiece_model_dir, tmp_path / "labelled.jsonl")
    out = tmp_path / "filtered"
    files = ["--data", str(data), "--dev", str(data), "--output", str(out)]
    settings = ["--epochs", "2", "--target-recall", "0.9", "--positives", "gold+model"]
    assert _train_filter(tiny_wordpiece_model_dir, *files, *settings) == 0
    assert "span filter written to" in capsys.readouterr().out
    model = load_model(out, device="cpu")
    assert model.span_filter is not None
    assert model.span_filter.operating_point.recall >= 0.9
    # The flow ran the marker pass over the training data for the model's own entities.
    assert model.span_filter.info["config"]["positives"] == "gold+model"
    assert model.span_filter.info["operating_point_on"] == "model entities"
    assert model.model_id != load_model(tiny_wordpiece_model_dir, device="cpu").model_id

    # A non-empty output is refused before anything runs.
    assert _train_filter(tiny_wordpiece_model_dir, *files) == 2
    assert "not empty" in capsys.readouterr().err

    inp, tables = write_corpus(tmp_path / "in"), tmp_path / "tables"
    assert (
        main(
            [
                "run",
                str(inp),
                str(tables),
                "--model",
                str(out),
                "--device",
                "cpu",
                "--no-progress",
                "--span-filter",
                "stored",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "span filter stored (threshold=" in printed and "candidate spans scored" in printed
    runs = pq.read_table(next((tables / "_manifest" / "runs").rglob("*.parquet"))).to_pylist()
    assert runs[0]["span_filter"].startswith("stored (threshold=")
    assert 0 < runs[0]["spans_scored"] <= runs[0]["spans"]
    assert json.loads(runs[0]["parameters"])["span_filter"] == "stored"
    assert main(["validate", str(tables)]) == 0


def test_keep_head_chooses_the_operating_point_again_without_training(
    prefect_harness, tiny_wordpiece_model_dir, tmp_path, capsys
):
    data = str(_labelled_by_the_model(tiny_wordpiece_model_dir, tmp_path / "labelled.jsonl"))
    trained, repointed = tmp_path / "trained", tmp_path / "repointed"
    dev = ["--dev", data, "--epochs", "2"]
    assert (
        _train_filter(
            tiny_wordpiece_model_dir, "--data", data, "--target-recall", "0.5", "--output", str(trained), *dev
        )
        == 0
    )
    assert _train_filter(trained, "--keep-head", "--output", str(repointed), *dev) == 0
    before, after = load_model(trained, device="cpu").span_filter, load_model(repointed, device="cpu").span_filter
    assert before is not None and after is not None
    for name, tensor in before.head.state_dict().items():
        assert after.head.state_dict()[name].equal(tensor), f"{name} changed: the head must be kept"
    assert after.operating_point.recall == 1.0
    assert after.operating_point.threshold <= before.operating_point.threshold
    assert after.info["operating_point_rule"]["target_recall"] == 1.0
    assert after.info["train_windows"] == before.info["train_windows"], "how the head was trained is kept"

    # Training data and --keep-head together, or neither, is refused before anything runs.
    capsys.readouterr()
    for extra in (["--data", data, "--keep-head"], []):
        assert _train_filter(trained, "--dev", data, "--output", str(tmp_path / "other"), *extra) == 2
        assert "--keep-head" in capsys.readouterr().err
    # A model without a filter has no head to keep.
    assert _train_filter(tiny_wordpiece_model_dir, "--keep-head", "--dev", data, "--output", str(tmp_path / "no")) == 1
    assert "no span filter to keep" in capsys.readouterr().err


def test_a_bad_span_filter_setting_is_one_line(capsys):
    assert main(["run", "in", "out", "--no-progress", "--span-filter", "sometimes"]) == 2
    err = capsys.readouterr().err
    assert "span_filter must be 'auto', 'off', 'stored'" in err and "Traceback" not in err
