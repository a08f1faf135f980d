"""Session-wide test setup: offline environment, markers, tiny models, the shared NER data.

The environment variables are set at import time, before any test module imports
transformers, huggingface_hub or prefect, which read them once.
"""

from __future__ import annotations

import os
import socket
import uuid

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)

from pathlib import Path  # noqa: E402

import fsspec  # noqa: E402
import pytest  # noqa: E402

from nerflow import storage  # noqa: E402
from tests.fixtures_models import build_tiny_model, build_tiny_span_marker  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent


def ner_data_path() -> Path:
    """Where the shared NER data is expected: ``$NERFLOW_NER_DATA`` or ``../shared/data/ner``."""
    configured = os.environ.get("NERFLOW_NER_DATA")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "data" / "ner"


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if gpu_items and not _cuda_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in gpu_items:
            item.add_marker(skip)
    data_items = [item for item in items if item.get_closest_marker("data")]
    if data_items and not ner_data_path().is_dir():
        skip = pytest.mark.skip(reason=f"NER data not found at {ner_data_path()} (set NERFLOW_NER_DATA)")
        for item in data_items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ner_data_dir() -> Path:
    """The shared NER data folder (``train/``, ``dev/``, ``test/``, ``docs/``); skips without it."""
    path = ner_data_path()
    if not path.is_dir():
        pytest.skip(f"NER data not found at {path} (set NERFLOW_NER_DATA)")
    return path


# The tiny models are built once per session and shared: treat their directories as read-only
# and copy them (shutil.copytree) into tmp_path before changing anything.


@pytest.fixture(scope="session")
def tiny_wordpiece_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SpanMarker checkpoint (safetensors) on a tiny random BERT with a WordPiece tokenizer."""
    return build_tiny_model("wordpiece", tmp_path_factory.mktemp("tiny-wordpiece"))


@pytest.fixture(scope="session")
def tiny_sentencepiece_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SpanMarker checkpoint (safetensors) on a tiny random XLM-R with a Unigram tokenizer."""
    return build_tiny_model("sentencepiece", tmp_path_factory.mktemp("tiny-sentencepiece"))


@pytest.fixture(scope="session", params=["wordpiece", "sentencepiece"])
def tiny_model_dir(request: pytest.FixtureRequest) -> Path:
    """Each tiny SpanMarker checkpoint in turn (ids ``wordpiece``, ``sentencepiece``)."""
    return request.getfixturevalue(f"tiny_{request.param}_model_dir")


@pytest.fixture(scope="session")
def tiny_wordpiece_encoder_dir(tiny_wordpiece_model_dir: Path) -> Path:
    """The tiny random BERT (WordPiece) encoder folder the wordpiece checkpoint was built on."""
    return tiny_wordpiece_model_dir.parent / "encoder"


@pytest.fixture(scope="session")
def tiny_sentencepiece_encoder_dir(tiny_sentencepiece_model_dir: Path) -> Path:
    """The tiny random XLM-R (Unigram) encoder folder the sentencepiece checkpoint was built on."""
    return tiny_sentencepiece_model_dir.parent / "encoder"


@pytest.fixture(scope="session")
def tiny_pickle_model_dir(tiny_wordpiece_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wordpiece model's weights saved as ``pytorch_model.bin`` (pickle) only."""
    encoder_dir = tiny_wordpiece_model_dir.parent / "encoder"
    return build_tiny_span_marker(
        encoder_dir, tmp_path_factory.mktemp("tiny-pickle") / "span-marker", safe_serialization=False
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(monkeypatch):
    """A moto S3 server on localhost with a bucket ``nerflow``; yields the storage options."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="nerflow")
        yield {"client_kwargs": {"endpoint_url": endpoint}, "skip_instance_cache": True}
    finally:
        server.stop()


# --- stage tests (tests/nerflow/etl, tests/tasks) run on fsspec's in-memory filesystem, each under its own root


@pytest.fixture
def memfs():
    """``(fs, root)``: the in-memory filesystem and a fresh directory on it, removed afterwards."""
    fs = fsspec.filesystem("memory")
    root = f"/t-{uuid.uuid4().hex}"
    fs.mkdir(root)
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def put(fs, path: str, data: bytes | str) -> str:
    """Write ``data`` at ``path`` and return the path."""
    fs.pipe_file(path, data.encode() if isinstance(data, str) else data)
    return path


@pytest.fixture
def make_batch(memfs):
    """Write ``{relpath: data}`` under ``<root>/in`` and return them as one batch."""
    from nerflow.etl.listing import Batch, batch_id

    fs, root = memfs

    def make(files: dict[str, bytes | str]):
        for rel, data in files.items():
            put(fs, storage.join(root, "in", rel), data)
        objects = tuple(storage.list_objects(fs, storage.join(root, "in")))
        return Batch(batch_id=batch_id(objects), index=0, objects=objects)

    return make
