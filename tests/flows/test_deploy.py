"""Deployments of extract-entities: ``prefect.yaml``, ``flows/deploy.py`` and ``nerflow serve``.

The fast tests check the deployment definitions; the slow ones start a real Prefect server
(SQLite in a temporary PREFECT_HOME, loopback only), serve the deployment with ``nerflow serve``,
start a flow run through the API as the UI's "Run" button does, and register prefect.yaml's
deployment for a work pool with ``prefect deploy``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml
from pydantic import ValidationError

from flows.deploy import (
    DEFAULT_CRON,
    DEPLOYMENT_NAME,
    DeploymentSettings,
    build_deployment,
    deployment_parameters,
)
from flows.extract_entities import ExtractParams, extract_entities
from nerflow.cli import main
from tests.flows.test_extract_entities import DOC_IDS, check_output, read_table, write_corpus

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO_ROOT / "prefect.yaml"
ENTRYPOINT = "flows.extract_entities.extract_entities"
NERFLOW_ENV = ("NERFLOW_INPUT_URI", "NERFLOW_OUTPUT_URI", "NERFLOW_MODEL", "NERFLOW_CRON", "NERFLOW_TIMEZONE")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in NERFLOW_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _yaml_deployments() -> tuple[dict, list[dict]]:
    """prefect.yaml with environment placeholders filled in, as ``prefect deploy`` does."""
    from prefect.utilities.templating import apply_values

    config = yaml.safe_load(PREFECT_YAML.read_text())
    return config, [apply_values(d, os.environ, remove_notset=False) for d in config["deployments"]]


def test_prefect_yaml_entrypoint_is_the_flow_and_its_parameters_validate(clean_env):
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.flows import load_flow_from_entrypoint

    clean_env.setenv("NERFLOW_INPUT_URI", "s3://docs/in/")
    clean_env.setenv("NERFLOW_OUTPUT_URI", "s3://docs/out/")
    clean_env.setenv("NERFLOW_MODEL", "s3://models/ner")
    config, deployments = _yaml_deployments()
    assert config["pull"] == [], "no code to pull: the entrypoint is a module of the installed package"
    (d,) = deployments
    assert d["name"] == DEPLOYMENT_NAME
    assert load_flow_from_entrypoint(d["entrypoint"]) is extract_entities
    validated = extract_entities.validate_parameters(d["parameters"])
    assert validated["params"] == ExtractParams(
        input_uri="s3://docs/in/", output_uri="s3://docs/out/", model="s3://models/ner"
    )
    (schedule,) = d["schedules"]
    assert CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"]).cron == DEFAULT_CRON
    assert d["work_pool"]["name"] == "nerflow"
    # The yaml and `nerflow serve` read the same variables.
    assert set(d["parameters"]["params"]) <= set(DeploymentSettings.model_fields)
    raw = yaml.safe_load(PREFECT_YAML.read_text())["deployments"][0]["parameters"]["params"]
    assert raw == {
        "input_uri": "{{ $NERFLOW_INPUT_URI }}",
        "output_uri": "{{ $NERFLOW_OUTPUT_URI }}",
        "model": "{{ $NERFLOW_MODEL }}",
    }


def test_deployment_parameters_come_from_the_environment_then_the_overrides(clean_env):
    clean_env.setenv("NERFLOW_INPUT_URI", "s3://docs/in/")
    clean_env.setenv("NERFLOW_OUTPUT_URI", "s3://docs/out/")
    assert deployment_parameters() == {"params": {"input_uri": "s3://docs/in/", "output_uri": "s3://docs/out/"}}
    assert deployment_parameters({"output_uri": "/tmp/x", "device": "cpu", "languages": ["en", "de"]}) == {
        "params": {"input_uri": "s3://docs/in/", "output_uri": "/tmp/x", "device": "cpu", "languages": ["en", "de"]}
    }
    # Local paths are made absolute where the deployment is made: a worker runs elsewhere.
    clean_env.chdir("/tmp")
    assert deployment_parameters({"output_uri": "rel/out"})["params"]["output_uri"] == "/tmp/rel/out"
    clean_env.delenv("NERFLOW_OUTPUT_URI")
    with pytest.raises(ValidationError, match="output_uri"):
        deployment_parameters()
    with pytest.raises(ValidationError, match="batch_docs"):
        deployment_parameters({"output_uri": "/tmp/x", "batch_docs": 0})


def test_build_deployment_schedules_the_installed_flow():
    parameters = {"params": {"input_uri": "/in", "output_uri": "/out"}}
    d = build_deployment(parameters, name="nightly", cron="30 1 * * *", timezone="Europe/Berlin")
    assert (d.name, d.flow_name, d.entrypoint) == ("nightly", "extract-entities", ENTRYPOINT)
    assert [(s.schedule.cron, s.schedule.timezone) for s in d.schedules] == [("30 1 * * *", "Europe/Berlin")]
    assert d.parameters == parameters and d.tags == ["nerflow"]
    assert (d.concurrency_limit, d.concurrency_options.collision_strategy) == (1, "ENQUEUE")
    assert not build_deployment(parameters, cron=None).schedules
    with pytest.raises(ValueError, match="cron"):
        build_deployment(parameters, cron="not a cron")


def test_nerflow_serve_builds_the_deployment_from_its_options(clean_env, capsys):
    served = []
    clean_env.setattr("flows.deploy.serve", lambda deployment, limit: served.append((deployment, limit)))
    clean_env.setenv("NERFLOW_MODEL", "/models/env")
    clean_env.setenv("NERFLOW_CRON", "0 5 * * *")
    status = main(
        [
            "serve",
            "--input",
            "/in",
            "--output",
            "/out",
            "--param",
            "device=cpu",
            "--param",
            "batch_docs=2",
            "--param",
            "run_label=nightly",
            "--endpoint-url",
            "http://minio:9000",
            "--name",
            "t",
            "--limit",
            "0",
        ]
    )
    assert status == 0
    ((deployment, limit),) = served
    assert limit is None and deployment.name == "t"
    assert deployment.parameters == {
        "params": {
            "input_uri": "/in",
            "output_uri": "/out",
            "model": "/models/env",
            "device": "cpu",
            "batch_docs": 2,
            "run_label": "nightly",
            "storage_options": {"client_kwargs": {"endpoint_url": "http://minio:9000"}},
        }
    }
    assert [s.schedule.cron for s in deployment.schedules] == ["0 5 * * *"]

    served.clear()
    assert main(["serve", "--input", "/in", "--output", "/out", "--no-schedule"]) == 0
    assert not served[0][0].schedules and served[0][1] == 1

    served.clear()
    assert main(["serve", "--input", "/in"]) == 2
    assert not served
    err = capsys.readouterr().err
    assert "output_uri" in err and "NERFLOW_OUTPUT_URI" in err
    assert main(["serve", "--input", "/in", "--output", "/out", "--param", "device"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err

    # A text field takes the text as it is; --param storage options merge with --endpoint-url.
    served.clear()
    assert (
        main(
            [
                "serve",
                "--input",
                "/in",
                "--output",
                "/out",
                "--param",
                "run_label=2026",
                "--param",
                'storage_options={"anon": true}',
                "--endpoint-url",
                "http://minio:9000",
            ]
        )
        == 0
    )
    params = served[0][0].parameters["params"]
    assert params["run_label"] == "2026"
    assert params["storage_options"] == {"anon": True, "client_kwargs": {"endpoint_url": "http://minio:9000"}}
    with pytest.raises(SystemExit):
        main(["serve", "--input", "/in", "--output", "/out", "--limit", "-1"])
    assert "must be 0 or more" in capsys.readouterr().err


# A real server, `nerflow serve` and `prefect deploy` (slow: three Prefect processes start).


@dataclass(frozen=True)
class Server:
    api_url: str
    env: dict[str, str]  # for subprocesses that talk to this server
    home: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, chars: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _start(cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        # A session of its own: the whole process group is stopped at the end.
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Stop ``proc``, its process group and every descendant (some start sessions of their own)."""
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    proc.wait(timeout)


def _wait_healthy(server: Server, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with opener.open(f"{server.api_url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"prefect server not healthy after {timeout:.0f} s:\n{_tail(log)}")


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_CLI_PROMPT": "false",
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "DO_NOT_TRACK": "1",
            "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"])),
            # The flow's modules from this checkout, whatever the subprocess's directory.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
    )
    server = Server(api_url=api_url, env=env, home=home)
    log = home / "server.log"
    prefect = [sys.executable, "-m", "prefect"]
    proc = _start([*prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=home, log=log)
    try:
        _wait_healthy(server, proc, log)
        yield server
    finally:
        _stop(proc)


@pytest.fixture
def client(prefect_server: Server):
    """A synchronous Prefect client of the test server (whatever else this session set up)."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}), get_client(sync_client=True) as c:
        yield c


def _wait_for_deployment(client, name: str, proc: subprocess.Popen, log: Path, timeout: float = 240):
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nerflow serve exited with {proc.returncode}:\n{_tail(log)}")
        try:
            return client.read_deployment_by_name(name)
        except ObjectNotFound:
            time.sleep(1)
    raise TimeoutError(f"deployment {name} not registered after {timeout:.0f} s:\n{_tail(log)}")


def _wait_for_final_state(client, flow_run_id, proc: subprocess.Popen, log: Path, timeout: float = 400):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.read_flow_run(flow_run_id)
        if run.state is not None and run.state.is_final():
            return run
        if proc.poll() is not None:
            raise RuntimeError(f"nerflow serve exited with {proc.returncode} during the run:\n{_tail(log)}")
        time.sleep(1)
    raise TimeoutError(f"flow run {flow_run_id} not finished after {timeout:.0f} s ({run.state}):\n{_tail(log)}")


@pytest.mark.slow
def test_a_served_deployment_runs_a_flow_run_started_as_the_ui_does(
    prefect_server, client, tiny_wordpiece_model_dir, tmp_path
):
    inp, default_out, out = write_corpus(tmp_path / "in"), tmp_path / "default-out", tmp_path / "out"
    log = tmp_path / "serve.log"
    cron = "0 3 29 2 *"  # 29 February: no scheduled run joins the one this test starts
    serve = _start(
        [
            sys.executable,
            "-m",
            "nerflow.cli",
            "serve",
            "--name",
            "ui-test",
            "--cron",
            cron,
            "--input",
            str(inp),
            "--output",
            str(default_out),
            "--model",
            str(tiny_wordpiece_model_dir),
            "--param",
            "device=cpu",
            "--param",
            "batch_docs=1",
        ],
        env=prefect_server.env,
        cwd=tmp_path,
        log=log,
    )
    try:
        deployment = _wait_for_deployment(client, "extract-entities/ui-test", serve, log)
        assert deployment.entrypoint == ENTRYPOINT
        assert [s.schedule.cron for s in deployment.schedules] == [cron]
        assert deployment.parameters == {
            "params": {
                "input_uri": str(inp),
                "output_uri": str(default_out),
                "model": str(tiny_wordpiece_model_dir),
                "device": "cpu",
                "batch_docs": 1,
            }
        }
        # The UI's form starts from the deployment's parameters; the user edits two fields and
        # clicks "Run": POST /deployments/{id}/create_flow_run with the whole form.
        form = {**deployment.parameters["params"], "output_uri": str(out), "run_label": "from the UI"}
        created = client.create_flow_run_from_deployment(deployment.id, parameters={"params": form})
        run = _wait_for_final_state(client, created.id, serve, log)
        assert run.state.is_completed(), f"{run.state}\n{_tail(log)}"
    finally:
        _stop(serve)

    check_output(str(out), DOC_IDS)
    (record,) = read_table(str(out), "_manifest/runs").to_pylist()
    assert (record["run_id"], record["run_label"], record["status"]) == (str(created.id), "from the UI", "completed")
    assert record["model_ref"] == str(tiny_wordpiece_model_dir), "the deployment's default model"
    assert not default_out.exists(), "the run's own output_uri, not the deployment's default"


@pytest.mark.slow
def test_prefect_deploy_registers_the_prefect_yaml_deployment_for_a_work_pool(prefect_server, client, tmp_path):
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    client.create_work_pool(
        WorkPoolCreate(name="nerflow", type="process", base_job_template=ProcessWorker.get_default_base_job_template())
    )
    env = {
        **prefect_server.env,
        "NERFLOW_INPUT_URI": "s3://docs/in/",
        "NERFLOW_OUTPUT_URI": "s3://docs/out/",
        "NERFLOW_MODEL": "s3://models/ner",
    }
    (tmp_path / "prefect.yaml").write_bytes(PREFECT_YAML.read_bytes())  # nothing written into the checkout
    log = tmp_path / "deploy.log"
    proc = _start(
        [sys.executable, "-m", "prefect", "deploy", "--name", DEPLOYMENT_NAME], env=env, cwd=tmp_path, log=log
    )
    try:
        proc.wait(300)
    finally:
        _stop(proc)
    assert proc.returncode == 0, _tail(log)

    deployment = client.read_deployment_by_name(f"extract-entities/{DEPLOYMENT_NAME}")
    assert (deployment.entrypoint, deployment.work_pool_name) == (ENTRYPOINT, "nerflow")
    assert deployment.parameters == {
        "params": {"input_uri": "s3://docs/in/", "output_uri": "s3://docs/out/", "model": "s3://models/ner"}
    }
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in deployment.schedules] == [
        (DEFAULT_CRON, "UTC", True)
    ]
    assert not deployment.pull_steps
    assert deployment.enforce_parameter_schema
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options.collision_strategy == "ENQUEUE"


def test_a_deployment_refuses_credentials_in_its_storage_options():
    from pydantic import ValidationError

    from flows import deploy

    with pytest.raises(ValidationError, match="'key' is a credential") as info:
        deploy.deployment_parameters(
            {"input_uri": "s3://b/in", "output_uri": "s3://b/out", "storage_options": {"key": "AKIAEXAMPLESECRET"}},
            deploy.DeploymentSettings(),
        )
    assert "EXAMPLESECRET" not in str(info.value)
