"""infra/: the local stack script, the compose files, the image, the Ray cluster, the work pool.

What can be checked without Docker, GPUs or other machines is checked with the tools' own
validators: the compose files against the Compose Specification's JSON schema (vendored in
tests/infra/schemas/), the Ray cluster config with Ray's ``prepare_config``/``validate_config``,
the work-pool template with the Prefect server's and worker's own checks. The slow test starts
the local stack (a Prefect server and moto on loopback), looks at both and stops them.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import jsonschema
import psutil
import pytest
import yaml

from tests.infra.conftest import (
    COMPOSE_FILES,
    INFRA,
    REPO_ROOT,
    MissingVariable,
    interpolate,
    variables_used,
)

LOCAL_STACK = INFRA / "local-stack.sh"
WORK_POOL_TEMPLATE = INFRA / "prefect" / "process-work-pool.json"
RAY_CLUSTER = INFRA / "ray" / "cluster.yaml"
COMPOSE_SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"

SERVER_SERVICES = {"postgres", "prefect-server", "minio", "minio-init", "nerflow-deploy", "prefect-worker", "ray-head"}
GPU_SERVICES = {"prefect-worker", "ray-worker"}
# The images built from this repository; the others are pulled.
NERFLOW_SERVICES = {
    "compose.yaml": {"nerflow-deploy", "prefect-worker", "ray-head"},
    "compose.gpu-worker.yaml": {"prefect-worker", "ray-worker"},
}


def _pool_name(prefect_yaml: dict) -> str:
    (pool,) = {d["work_pool"]["name"] for d in prefect_yaml["deployments"]}
    return pool


def _option(command: list[str], flag: str) -> str:
    """The value of ``--flag VALUE`` or ``--flag=VALUE`` in an argument list."""
    for i, arg in enumerate(command):
        if arg == flag:
            return command[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{flag} not in {command}")


# --- compose files ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_is_valid_against_the_compose_specification(compose, name):
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose[name])]
    assert not errors, "\n".join(errors)

    # The schema does refuse what compose refuses: a misspelt key of a service.
    broken = copy.deepcopy(compose[name])
    service = next(iter(broken["services"].values()))
    service["depend_on"] = ["postgres"]
    assert any("depend_on" in e.message for e in validator.iter_errors(broken))


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_every_variable_a_compose_file_uses_is_documented_in_env_example(compose_raw, env_example, name):
    braced, bare = variables_used(compose_raw[name])
    assert not bare, f"write ${{VAR}}, not $VAR (or $$ for the container's shell): {sorted(bare)}"
    assert braced, "the compose files take their settings from infra/.env"
    undocumented = braced - set(env_example)
    assert not undocumented, f"add to infra/.env.example: {sorted(undocumented)}"


def test_env_example_documents_only_what_the_compose_files_use(compose_raw, env_example):
    used = set().union(*(variables_used(doc)[0] for doc in compose_raw.values()))
    assert set(env_example) <= used, f"not used by any compose file: {sorted(set(env_example) - used)}"


def test_required_settings_stop_compose_with_a_message_when_missing(compose_raw, env_example):
    for name in COMPOSE_FILES:
        without = {k: v for k, v in env_example.items() if k != "PREFECT_AUTH_STRING"}
        with pytest.raises(MissingVariable, match=r"PREFECT_AUTH_STRING: set PREFECT_AUTH_STRING in infra/\.env"):
            interpolate(compose_raw[name], without)


def test_env_example_holds_placeholders_only(env_example):
    secrets = {k: v for k, v in env_example.items() if re.search(r"PASSWORD|SECRET|TOKEN|AUTH", k)}
    assert secrets and all("change-me" in v for v in secrets.values()), secrets
    if shutil.which("git") and (REPO_ROOT / ".git").exists():
        ignored = subprocess.run(["git", "check-ignore", "-q", "infra/.env"], cwd=REPO_ROOT)
        assert ignored.returncode == 0, "infra/.env (the real secrets) must be ignored by git"


def test_server_compose_wires_database_server_storage_deployment_and_ray_head(compose, prefect_yaml):
    doc = compose["compose.yaml"]
    services = doc["services"]
    assert set(services) == SERVER_SERVICES
    for name, service in services.items():
        assert service.get("image"), f"{name}: no image"
        for target, condition in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            assert condition["condition"] in {"service_healthy", "service_completed_successfully"}
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target}'s health, which it never reports"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (INFRA / source).exists(), f"{name} mounts {source}, which is missing"
            else:
                assert source in doc["volumes"], f"{name} uses undeclared volume {source}"

    ports = {name: [p.split(":")[-1] for p in s.get("ports", [])] for name, s in services.items()}
    assert ports["prefect-server"] == ["4200"] and ports["minio"] == ["9000", "9001"]
    assert not ports["postgres"], "the database stays on the compose network"
    assert services["prefect-server"]["image"].startswith("prefecthq/prefect:3.9.1-python3.11")
    db_url = services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert db_url.startswith("postgresql+asyncpg://prefect:") and db_url.endswith("@postgres:5432/prefect")

    pool = _pool_name(prefect_yaml)
    deploy = "\n".join(services["nerflow-deploy"]["command"])
    assert (
        f"prefect work-pool create {pool} --type process --base-job-template /etc/nerflow/process-work-pool.json"
        in deploy
    )
    assert "prefect --no-prompt deploy --name scheduled" in deploy
    assert {d["name"] for d in prefect_yaml["deployments"]} == {"scheduled"}
    assert services["nerflow-deploy"]["volumes"] == [
        "./prefect/process-work-pool.json:/etc/nerflow/process-work-pool.json:ro"
    ]
    worker = services["prefect-worker"]
    assert worker["profiles"] == ["cpu-worker"], "flow runs belong on the GPU machines unless asked for"
    assert _option(worker["command"], "--pool") == pool

    head = services["ray-head"]
    assert head["network_mode"] == "host" and "ports" not in head
    assert head["command"][:4] == ["ray", "start", "--head", "--block"]
    assert _option(head["command"], "--port") == "6379"
    assert _option(head["command"], "--num-gpus") == "0"
    assert head["environment"]["RAY_AUTH_MODE"] == "token"


def test_gpu_worker_compose_reserves_every_gpu_and_joins_the_server(compose, prefect_yaml, env_example):
    services = compose["compose.gpu-worker.yaml"]["services"]
    assert set(services) == GPU_SERVICES
    for name, service in services.items():
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}, name

    worker = services["prefect-worker"]
    assert _option(worker["command"], "--pool") == _pool_name(prefect_yaml)
    server = env_example["NERFLOW_SERVER_HOST"]
    assert worker["environment"]["PREFECT_API_URL"] == f"http://{server}:{env_example['PREFECT_PORT']}/api"
    assert worker["environment"]["AWS_ENDPOINT_URL_S3"] == f"http://{server}:{env_example['MINIO_PORT']}"

    # Both kinds of nerflow process see the same settings as the server machine's containers.
    client_env = set(compose["compose.yaml"]["services"]["nerflow-deploy"]["environment"]) - {
        "NERFLOW_INPUT_URI",
        "NERFLOW_OUTPUT_URI",
        "NERFLOW_MODEL",
    }
    for name, service in services.items():
        assert client_env <= set(service["environment"]), f"{name} lacks {client_env - set(service['environment'])}"

    ray = services["ray-worker"]
    head = compose["compose.yaml"]["services"]["ray-head"]["command"]
    assert ray["network_mode"] == "host"
    assert _option(ray["command"], "--address") == f"{_option(head, '--node-ip-address')}:{_option(head, '--port')}"
    assert (
        ray["environment"]["RAY_AUTH_TOKEN"]
        == compose["compose.yaml"]["services"]["ray-head"]["environment"]["RAY_AUTH_TOKEN"]
    )


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_nerflow_services_build_the_repository_image(compose_raw, name):
    for service_name in NERFLOW_SERVICES[name]:
        build = compose_raw[name]["services"][service_name]["build"]
        assert (INFRA / build["context"]).resolve() == REPO_ROOT
        assert build["dockerfile"] == "infra/Dockerfile"
        assert "TORCH_VARIANT" in build["args"]
    others = set(compose_raw[name]["services"]) - NERFLOW_SERVICES[name]
    assert not [s for s in others if "build" in compose_raw[name]["services"][s]]


@pytest.mark.skipif(not (shutil.which("docker-compose") or shutil.which("docker")), reason="no docker compose here")
@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_docker_compose_accepts_the_file(name):
    """Where a Compose v2 binary is installed, its own parser and validator too."""
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if not shutil.which(cmd[0]):
            continue
        version = subprocess.run([*cmd, "version", "--short"], capture_output=True, text=True)
        if version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2"):
            break
    else:
        pytest.skip("no docker compose v2 here")
    proc = subprocess.run(
        [*cmd, "-f", str(INFRA / name), "--env-file", str(INFRA / ".env.example"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


# --- the image -------------------------------------------------------------------------------


def _dockerfile() -> str:
    # Continuation lines joined, as Docker reads them.
    return re.sub(r"\\\n", " ", (INFRA / "Dockerfile").read_text())


def test_dockerfile_installs_the_pinned_torch_then_the_project_with_the_constraints():
    text = _dockerfile()
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    (torch_pin,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("torch==")]
    assert f"ARG TORCH_VERSION={torch_pin.removeprefix('torch==')}" in text
    assert "torch==2.13.0" in (REPO_ROOT / "constraints.txt").read_text().splitlines()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-", text, re.M)
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", text, re.M)
    torch_install = text.index('"torch==$TORCH_VERSION"')
    project_install = text.index("pip install -c constraints.txt . && pip check")
    assert torch_install < project_install
    assert "https://download.pytorch.org/whl/$TORCH_VARIANT" in text


def test_dockerfile_copies_every_package_and_the_context_lets_it():
    text = _dockerfile()
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    packages = {p for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"] if "." not in p}
    copied = {src for line in re.findall(r"^COPY (.+)$", text, re.M) for src in line.split()[:-1]}
    assert packages <= copied, f"not copied into the image: {packages - copied}"
    for src in copied:
        assert (REPO_ROOT / src).exists(), src
    # The dockerignore leaves out everything but what is copied.
    lines = [
        line
        for line in (INFRA / "Dockerfile.dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    kept = {line[1:] for line in lines if line.startswith("!")}
    assert copied <= kept, f"copied but ignored: {copied - kept}"


# --- Ray ----------------------------------------------------------------------------------------


def test_ray_cluster_config_passes_rays_own_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load(RAY_CLUSTER.read_text())
    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    assert config["provider"]["type"] == "local"
    assert config["max_workers"] == len(raw["provider"]["worker_ips"])
    (node_type,) = config["available_node_types"].values()
    assert node_type["min_workers"] == node_type["max_workers"] == len(raw["provider"]["worker_ips"])
    assert "--gpus all" in config["docker"]["worker_run_options"]
    assert "--gpus all" not in config["docker"].get("run_options", [])
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--num-gpus=0" in head_start and "--port=6379" in head_start

    misspelt = copy.deepcopy(raw)
    misspelt["docker"]["worker_run_option"] = misspelt["docker"].pop("worker_run_options")
    with pytest.raises(jsonschema.ValidationError, match="worker_run_option"):
        validate_config(prepare_config(misspelt))


def test_ray_in_the_image_is_the_ray_that_validated_the_config():
    import ray

    assert f"ray=={ray.__version__}" in (REPO_ROOT / "constraints.txt").read_text().splitlines()


# --- Prefect ------------------------------------------------------------------------------------


class _NoServer:
    """A Prefect client stand-in that fails if the template needed the API (blocks, variables)."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the job template needed the Prefect API ({name})")


def test_work_pool_template_is_a_valid_process_pool_template():
    from prefect.server.schemas.actions import WorkPoolCreate
    from prefect.utilities.schema_tools import is_valid_schema, validate
    from prefect.workers.process import ProcessJobConfiguration, ProcessWorker

    template = json.loads(WORK_POOL_TEMPLATE.read_text())
    # What the server checks on `prefect work-pool create --base-job-template`.
    WorkPoolCreate(name="nerflow", type="process", base_job_template=template)
    is_valid_schema(template["variables"], preprocess=False)

    default = ProcessWorker.get_default_base_job_template()
    assert template["job_configuration"] == default["job_configuration"], "a Prefect upgrade changed the template"
    assert set(template["variables"]["properties"]) == set(default["variables"]["properties"])

    variables = template["variables"]
    defaults = {k: v["default"] for k, v in variables["properties"].items() if v.get("default") is not None}
    assert defaults["env"]["HF_HUB_OFFLINE"] == "1"
    validate(
        defaults, variables, raise_on_error=True, preprocess=True, ignore_required=True, allow_none_with_default=True
    )
    with pytest.raises(Exception, match="stream_output"):
        validate(
            {**defaults, "stream_output": "maybe"},
            variables,
            raise_on_error=True,
            preprocess=True,
            ignore_required=True,
            allow_none_with_default=True,
        )

    # What a worker builds for a flow run: the pool's defaults under the run's own variables.
    config = asyncio.run(
        ProcessJobConfiguration.from_template_and_values(template, {"env": {"NERFLOW_EXTRA": "x"}}, client=_NoServer())
    )
    assert config.env == {**defaults["env"], "NERFLOW_EXTRA": "x"}
    assert config.stream_output is True and config.working_dir is None


def test_prefect_yaml_deployments_use_the_pool_and_fit_its_template(prefect_yaml):
    from prefect.utilities.schema_tools import validate

    template = json.loads(WORK_POOL_TEMPLATE.read_text())
    assert _pool_name(prefect_yaml) == "nerflow"
    assert prefect_yaml["prefect-version"] == "3.9.1"
    for deployment in prefect_yaml["deployments"]:
        # As the server checks a deployment's job variables against its pool.
        validate(
            deployment["work_pool"]["job_variables"] or {},
            template["variables"],
            raise_on_error=True,
            preprocess=True,
            ignore_required=True,
            allow_none_with_default=True,
        )


# --- the README ---------------------------------------------------------------------------------


def test_infra_readme_names_files_that_exist():
    text = (INFRA / "README.md").read_text()
    named = set(re.findall(r"`((?:infra|tests|scripts|examples)/[\w./-]+)`", text))
    assert {
        "infra/local-stack.sh",
        "infra/compose.yaml",
        "infra/compose.gpu-worker.yaml",
        "infra/Dockerfile",
        "infra/ray/cluster.yaml",
        "infra/prefect/process-work-pool.json",
        "infra/.env.example",
    } <= named
    # infra/.env is the operator's copy of infra/.env.example, never in the repository.
    missing = [p for p in named - {"infra/.env"} if not (REPO_ROOT / p.rstrip("/")).exists()]
    assert not missing, missing
    assert "infra/README.md" in (REPO_ROOT / "README.md").read_text()


# --- the local stack ----------------------------------------------------------------------------


def test_local_stack_script_is_valid_bash():
    proc = subprocess.run(["bash", "-n", str(LOCAL_STACK)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert os.access(LOCAL_STACK, os.X_OK)


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck not installed (apt-get install shellcheck)")
def test_local_stack_script_passes_shellcheck():
    proc = subprocess.run(["shellcheck", "-x", str(LOCAL_STACK)], capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout


def _stack_env(state: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NERFLOW_STACK_", "AWS_"))}
    env.update({"NERFLOW_VENV": sys.prefix, "NERFLOW_STACK_DIR": str(state), **extra})
    return env


def _stack(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LOCAL_STACK), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )


def test_local_stack_status_help_and_unknown_commands(tmp_path):
    env = _stack_env(tmp_path / "state")
    status = _stack("status", env=env)
    assert status.returncode == 3, status.stderr
    assert status.stdout.splitlines() == ["s3: stopped", "prefect: stopped"]
    assert "start" in _stack("help", env=env).stdout
    unknown = _stack("launch", env=env)
    assert unknown.returncode == 1 and "unknown command 'launch'" in unknown.stderr
    assert _stack("env", env=env).returncode == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    with opener.open(url, timeout=10) as response:
        assert response.status == 200
        return response.read()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _fake_venv(root: Path, moto_server: str) -> Path:
    """A venv whose python is the test's own and whose services are scripts of our own."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    # A wrapper, not a symlink: a symlinked python outside its venv would be the system's.
    scripts = {"python": f'exec "{sys.executable}" "$@"\n', "moto_server": moto_server, "prefect": "exec sleep 300\n"}
    for name, body in scripts.items():
        script = bin_dir / name
        script.write_text(f"#!/usr/bin/env bash\n{body}")
        script.chmod(0o755)
    return root


def test_local_stack_reports_a_service_that_dies_during_start_up(tmp_path):
    # A service that takes a while, then fails: start must wait for it, not give up early,
    # then say which one died, show its log and leave nothing running.
    venv = _fake_venv(tmp_path / "venv", "sleep 2\necho 'moto: cannot bind' >&2\nexit 1\n")
    state = tmp_path / "state"
    env = _stack_env(
        state,
        NERFLOW_VENV=str(venv),
        NERFLOW_STACK_PREFECT_PORT=str(_free_port()),
        NERFLOW_STACK_S3_PORT=str(_free_port()),
        NERFLOW_STACK_TIMEOUT="60",
    )
    started = time.monotonic()
    proc = _stack("start", env=env, timeout=120)
    assert proc.returncode == 1
    assert time.monotonic() - started >= 2
    assert "s3 exited during start-up" in proc.stderr
    assert "moto: cannot bind" in proc.stderr
    assert not list(state.glob("*.pid"))
    assert not (state / "stack.env").exists()


@pytest.mark.slow
def test_local_stack_starts_seeds_the_bucket_and_stops(tmp_path):
    import s3fs

    state = tmp_path / "state"
    prefect_port, s3_port = _free_port(), _free_port()
    env = _stack_env(
        state,
        NERFLOW_STACK_PREFECT_PORT=str(prefect_port),
        NERFLOW_STACK_S3_PORT=str(s3_port),
        NERFLOW_STACK_BUCKET="seeded",
    )
    try:
        started = _stack("start", env=env, timeout=400)
        logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in state.glob("*.log"))
        assert started.returncode == 0, f"{started.stdout}\n{started.stderr}\n{logs}"
        assert f"http://127.0.0.1:{prefect_port}/api" in started.stdout
        assert "nerflow run s3://seeded/documents s3://seeded/output" in started.stdout
        pids = {name: int((state / f"{name}.pid").read_text()) for name in ("prefect", "s3")}
        assert all(psutil.pid_exists(pid) for pid in pids.values())
        assert (state / ".gitignore").read_text() == "*\n"

        assert json.loads(_get(f"http://127.0.0.1:{prefect_port}/api/health")) is True
        exported = dict(re.findall(r"^export (\w+)=(\S+)$", (state / "stack.env").read_text(), re.M))
        assert exported["PREFECT_API_URL"] == f"http://127.0.0.1:{prefect_port}/api"
        assert exported["AWS_ENDPOINT_URL_S3"] == f"http://127.0.0.1:{s3_port}"
        fs = s3fs.S3FileSystem(
            key=exported["AWS_ACCESS_KEY_ID"],
            secret=exported["AWS_SECRET_ACCESS_KEY"],
            client_kwargs={"endpoint_url": exported["AWS_ENDPOINT_URL_S3"], "region_name": "us-east-1"},
            skip_instance_cache=True,
        )
        source = REPO_ROOT / "examples" / "documents"
        expected = {p.relative_to(source).as_posix(): p.stat().st_size for p in source.rglob("*") if p.is_file()}
        listed = {
            path.removeprefix("seeded/documents/"): info["size"]
            for path, info in fs.find("seeded/documents", detail=True).items()
        }
        assert listed == expected

        status = _stack("status", env=env, timeout=120)
        assert status.returncode == 0, status.stdout
        again = _stack("start", env=env, timeout=120)
        assert again.returncode == 0 and "already running" in again.stdout
        assert {name: int((state / f"{name}.pid").read_text()) for name in pids} == pids

        stopped = _stack("stop", env=env, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        deadline = time.monotonic() + 10
        while not all(_gone(pid) for pid in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(_gone(pid) for pid in pids.values())
        assert not list(state.glob("*.pid")) and not (state / "stack.env").exists()
        for port in (prefect_port, s3_port):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        if (state / "prefect.pid").exists() or (state / "s3.pid").exists():
            _stack("stop", env=env, timeout=120)
