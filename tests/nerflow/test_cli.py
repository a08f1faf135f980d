"""nerflow's command line: what a user gets wrong is reported in one line, before any flow starts."""

from __future__ import annotations

import gzip
import json

import pytest
from pydantic import ValidationError

from nerflow.cli import main


@pytest.fixture
def flows_never_start(monkeypatch):
    """Fail the test if a command gets as far as starting a flow."""
    import flows.evaluate
    import flows.train

    def started(*args, **kwargs):
        raise AssertionError("the flow was started")

    monkeypatch.setattr(flows.train, "train_model", started)
    monkeypatch.setattr(flows.evaluate, "evaluate_model", started)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


def test_train_reports_a_missing_config_file(tmp_path, capsys, flows_never_start):
    assert main(["train", "--config", str(tmp_path / "nope.toml")]) == 1
    err = _one_line(capsys)
    assert err.startswith("nerflow train: FileNotFoundError") and "nope.toml" in err


def test_train_reports_malformed_toml(tmp_path, capsys, flows_never_start):
    config = tmp_path / "bad.toml"
    config.write_text("train = [\n")
    assert main(["train", "--config", str(config)]) == 2
    assert _one_line(capsys).startswith("nerflow train: invalid TOML:")


@pytest.mark.parametrize(
    "text, key",
    [
        ('train = ["x.jsonl"]\nmax_step = 10\n', "max_step"),
        ('train = [{ uri = "x.jsonl", max_record = 5 }]\n', "max_record"),
    ],
)
def test_train_refuses_a_misspelt_config_key(tmp_path, capsys, flows_never_start, text, key):
    # Silently ignored, "max_record" would train on the whole file.
    config = tmp_path / "typo.toml"
    config.write_text(text)
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nerflow train: invalid configuration:") and key in err and "Extra inputs" in err


def test_train_reports_a_missing_data_file_before_the_flow_starts(tmp_path, capsys, flows_never_start):
    present = tmp_path / "train.jsonl.gz"
    with gzip.open(present, "wt") as f:
        f.write(json.dumps({"tokens": ["Anna"], "ner_tags": ["B-PER"]}) + "\n")
    config = tmp_path / "config.toml"
    config.write_text(f'train = ["{present}"]\ndev = ["{tmp_path / "dev.jsonl.gz"}"]\n')
    assert main(["train", "--config", str(config)]) == 1
    err = _one_line(capsys)
    assert err.startswith("nerflow train: FileNotFoundError") and "dev.jsonl.gz" in err


def test_evaluate_reports_missing_data_and_unknown_protocols(tmp_path, capsys, flows_never_start):
    assert main(["evaluate", "--data", str(tmp_path / "test.jsonl")]) == 1
    assert "test.jsonl" in _one_line(capsys)
    assert main(["evaluate", "--data", "bogus://bucket/test.jsonl"]) == 1
    assert _one_line(capsys).startswith("nerflow evaluate: InvalidURIError: no filesystem for protocol 'bogus'")


def test_validate_and_warehouse_report_an_unknown_protocol(tmp_path, capsys):
    assert main(["validate", "bogus://bucket/out"]) == 1
    assert _one_line(capsys).startswith("nerflow validate: InvalidURIError")
    assert main(["warehouse", "--duckdb", str(tmp_path / "w.duckdb"), "bogus://bucket/out"]) == 1
    assert _one_line(capsys).startswith("nerflow warehouse: InvalidURIError")


def test_malformed_storage_options_are_a_usage_error(tmp_path, capsys):
    assert main(["validate", str(tmp_path), "--storage-options", "{bad"]) == 2
    assert _one_line(capsys).startswith("nerflow validate: invalid JSON:")


def test_run_refuses_an_unknown_protocol_before_the_flow_starts(monkeypatch, capsys):
    import flows.extract_entities
    from flows.extract_entities import ExtractParams

    with pytest.raises(ValidationError, match="no filesystem for protocol 'bogus'"):
        ExtractParams(input_uri="in", output_uri="bogus://bucket/out")
    monkeypatch.setattr(flows.extract_entities, "extract_entities", lambda params: pytest.fail("flow started"))
    assert main(["run", "bogus://bucket/in", "out", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nerflow run: invalid arguments:") and "input_uri" in err


def test_run_reports_a_missing_input_before_the_flow_starts(monkeypatch, tmp_path, capsys):
    import flows.extract_entities

    monkeypatch.setattr(flows.extract_entities, "extract_entities", lambda params: pytest.fail("flow started"))
    assert main(["run", str(tmp_path / "nothing"), str(tmp_path / "out"), "--no-progress"]) == 1
    err = _one_line(capsys)
    assert err.startswith("nerflow run: InputNotFoundError: no file or prefix at the input URI") and "nothing" in err
    assert not (tmp_path / "out").exists()
