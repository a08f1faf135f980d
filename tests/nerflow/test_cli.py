"""nerflow's command line: what a user gets wrong is reported in one line, before any flow starts."""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import subprocess
import sys
import typing
from typing import Literal

import pytest
from pydantic import Field, ValidationError

from nerflow import cli
from nerflow.cli import build_parser, main


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


def _one_sentence_file(path):
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"tokens": ["Anna"], "ner_tags": ["B-PER"]}) + "\n")
    return path


def test_train_options_override_the_config(tmp_path, monkeypatch, capsys):
    import flows.train

    data = _one_sentence_file(tmp_path / "train.jsonl.gz")
    config = tmp_path / "config.toml"
    config.write_text(f'train = ["{data}"]\nseed = 41\nmax_steps = 800\n')
    given = []
    monkeypatch.setattr(flows.train, "train_model", lambda c: given.append(c) or {"model_dir": "m"})
    assert main(["train", "--config", str(config), "--seed", "7", "--max-steps", "3", "--output-dir", "o"]) == 0
    assert (given[0].seed, given[0].max_steps, given[0].output_dir) == (7, 3, "o")
    assert main(["train", "--config", str(config)]) == 0
    assert (given[1].seed, given[1].max_steps) == (41, 800)


def test_train_reports_a_missing_data_file_before_the_flow_starts(tmp_path, capsys, flows_never_start):
    present = _one_sentence_file(tmp_path / "train.jsonl.gz")
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


# --- the flow's parameters as options: one definition, ExtractParams --------------------------


def _command(name: str) -> argparse.ArgumentParser:
    """The parser of subcommand ``name`` with every option added (some are added on first use)."""
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices[name].complete()


def _shown(default: object) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    return " ".join(default) if isinstance(default, tuple) else str(default)


@pytest.mark.parametrize("command", ["run", "backfill", "serve"])
def test_every_flow_parameter_is_an_option_with_the_models_default_and_choices(command):
    from flows.extract_entities import ExtractParams

    actions = {action.dest: action for action in _command(command)._actions}
    for name, info in ExtractParams.model_fields.items():
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        if dataclasses.is_dataclass(default):  # fields: --id-field, --text-field, …
            for sub in dataclasses.fields(default):
                action = actions[f"{name}.{sub.name}"]
                assert action.default is None and f"(default: {sub.default})" in action.help
            continue
        action = actions[name]
        assert action.default is None, f"--{name}: unset must mean the model's default"
        if default not in (None, {}):
            # serve: a deployment variable may set it ("(default: $NERFLOW_MODEL, else default)").
            assert any(f"{lead} {_shown(default)})" in action.help for lead in ("(default:", "else")), name
        choices = typing.get_args(info.annotation) if typing.get_origin(info.annotation) is Literal else None
        assert action.choices == choices, name


@pytest.mark.parametrize("command", ["run", "backfill"])
def test_unset_options_leave_the_parameters_to_the_model(monkeypatch, command):
    import nerflow.run_command
    from flows.extract_entities import ExtractParams

    seen = []
    monkeypatch.setattr(nerflow.run_command, "run_extract", lambda params, **kwargs: seen.append(params) or 0)
    assert main([command, "in", "out", "--no-progress"]) == 0
    assert seen[-1] == {"input_uri": "in", "output_uri": "out"}
    assert main([command, "in", "out", "--no-progress", "--text-field", "body", "--languages", "en", "de"]) == 0
    params = ExtractParams(**seen[-1])
    assert (params.fields.text, params.fields.id, params.languages) == ("body", "id", ("en", "de"))
    assert main([command, "in", "out", "--no-progress", "--output-storage-options", '{"anon": true}']) == 0
    assert seen[-1]["output_storage_options"] == {"anon": True}


def test_a_field_added_to_the_parameters_gets_its_option():
    from flows.extract_entities import ExtractParams

    class ShardedParams(ExtractParams):
        shard: Literal["a", "b"] = Field("a", description="Which shard to read")

    options = cli._param_options(ShardedParams, positional=True)
    parser = argparse.ArgumentParser()
    cli._add_param_options(parser, options)
    assert "Which shard to read (default: a)" in parser.format_help()
    params = ShardedParams(**cli._param_values(parser.parse_args(["in", "out", "--shard", "b"]), options))
    assert params.shard == "b"
    with pytest.raises(SystemExit):
        parser.parse_args(["in", "out", "--shard", "c"])


def test_serve_options_override_the_environment_and_params(monkeypatch):
    import flows.deploy

    for name in ("NERFLOW_INPUT_URI", "NERFLOW_OUTPUT_URI", "NERFLOW_MODEL", "NERFLOW_CRON", "NERFLOW_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    served = []
    monkeypatch.setattr(flows.deploy, "serve", lambda deployment, limit: served.append(deployment))
    argv = ["serve", "--input", "/in", "--output", "/out", "--device", "cpu", "--no-trim-quotes"]
    argv += ["--param", "batch_docs=5", "--param", 'fields={"id": "uid"}', "--text-field", "body"]
    assert main([*argv, "--batch-docs", "7"]) == 0
    assert served[0].parameters["params"] == {
        "input_uri": "/in",
        "output_uri": "/out",
        "device": "cpu",
        "trim_unpaired_quotes": False,
        "batch_docs": 7,
        "fields": {"id": "uid", "text": "body", "lang": "lang", "metadata": "metadata"},
    }
    help_text = _command("serve").format_help()
    assert "$NERFLOW_MODEL, else default" in " ".join(help_text.split())


def test_the_parser_is_built_without_prefect_or_torch():
    # The flow's options come from ExtractParams, whose module imports both: they are added
    # only when run, backfill or serve is parsed, never for `nerflow version` or `nerflow --help`.
    code = (
        "import sys; from nerflow.cli import build_parser; build_parser().parse_args(['version']); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'torch', 'polars', 'pydantic'}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "options",
    [
        '{"key": "AKIAEXAMPLESECRET1", "secret": "wJalrEXAMPLESECRET2"}',
        '{"client_kwargs": {"endpoint_url": "http://minio:9000", "aws_secret_access_key": "wJalrEXAMPLESECRET2"}}',
        '{"token": "AKIAEXAMPLESECRET1"}',
    ],
)
def test_credentials_in_storage_options_are_refused_without_echoing_them(monkeypatch, capsys, options):
    import flows.extract_entities

    monkeypatch.setattr(flows.extract_entities, "extract_entities", lambda params: pytest.fail("flow started"))
    assert main(["run", "in", "out", "--no-progress", "--storage-options", options]) == 2
    err = capsys.readouterr().err
    assert "is a credential" in err and "AWS_ACCESS_KEY_ID" in err and "profile" in err
    assert "EXAMPLESECRET" not in err


def test_a_profile_and_an_endpoint_are_not_credentials():
    from flows.extract_entities import ExtractParams
    from flows.train_filter import TrainFilterParams

    options = {"profile": "prod", "client_kwargs": {"endpoint_url": "http://minio:9000"}}
    assert ExtractParams(input_uri="in", output_uri="out", storage_options=options).storage_options == options
    with pytest.raises(ValidationError, match="'secret' is a credential") as info:
        TrainFilterParams(model="m", data=["d"], dev=["d"], output="o", storage_options={"secret": "EXAMPLESECRET"})
    assert "EXAMPLESECRET" not in str(info.value)


def test_a_failed_run_ends_with_one_line_naming_its_cause(monkeypatch, tmp_path, capsys):
    import flows.extract_entities

    (tmp_path / "in.jsonl").write_text('{"id": "a", "text": "Olaf Scholz"}\n')

    def failing(params):
        raise RuntimeError("CUDA error: device lost")

    monkeypatch.setattr(flows.extract_entities, "extract_entities", failing)
    assert main(["run", str(tmp_path / "in.jsonl"), str(tmp_path / "out"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "nerflow run: RuntimeError: CUDA error: device lost"
    # --verbose: the traceback too, then the same last line.
    assert main(["run", str(tmp_path / "in.jsonl"), str(tmp_path / "out"), "--no-progress", "--verbose"]) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" in err and err.splitlines()[-1] == "nerflow run: RuntimeError: CUDA error: device lost"


def test_without_verbose_the_console_is_quiet_and_the_server_still_gets_info_logs(monkeypatch):
    from nerflow import cli

    monkeypatch.delenv("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", raising=False)
    monkeypatch.delenv("PREFECT_LOGGING_LEVEL", raising=False)
    cli.build_parser().parse_args(["run", "in", "out"])
    assert os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] == "CRITICAL"
    assert "PREFECT_LOGGING_LEVEL" not in os.environ  # INFO: the API handler sends the run's logs


def test_the_temporary_server_gets_time_to_start_on_a_busy_machine(monkeypatch):
    from nerflow import cli

    monkeypatch.delenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", raising=False)
    assert main(["version"]) == 0
    assert os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == str(cli.EPHEMERAL_STARTUP_SECONDS)
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
    assert main(["version"]) == 0
    assert os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "300"  # the operator's choice wins
