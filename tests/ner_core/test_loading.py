import logging
import pickle
import shutil
from pathlib import Path

import fsspec
import pytest

from ner_core.errors import ModelConfigError, ModelNotFoundError, TransientError, UnsafeCheckpointError
from ner_core.loading import clear_model_cache, load_model
from tests.fixtures_models import build_tiny_model


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NERFLOW_CACHE_DIR", str(tmp_path / "cache"))
    clear_model_cache()
    yield
    clear_model_cache()


def test_exposes_checkpoint_settings(tiny_wordpiece_model_dir):
    model = load_model(tiny_wordpiece_model_dir, device="cpu")
    assert model.labels[model.outside_id] == "O"
    assert set(model.entity_labels) == {"PER", "ORG", "LOC", "MISC"}
    assert model.model_max_length == 64
    assert model.entity_max_length == 4
    assert model.marker_max_length == 32
    assert str(model.device) == "cpu"
    assert model.name == Path(tiny_wordpiece_model_dir).name
    assert model.model_id.startswith("spanmarker-")


def test_one_model_per_process_and_device(tiny_wordpiece_model_dir):
    assert load_model(tiny_wordpiece_model_dir) is load_model(str(tiny_wordpiece_model_dir), device="auto")


def test_model_id_is_stable_across_loads(tiny_wordpiece_model_dir):
    first = load_model(tiny_wordpiece_model_dir).model_id
    clear_model_cache()
    assert load_model(tiny_wordpiece_model_dir).model_id == first


def test_pickle_only_checkpoint_is_refused(tiny_pickle_model_dir):
    with pytest.raises(
        UnsafeCheckpointError, match=r"only pickle weights .*pytorch_model\.bin.*nerflow convert-checkpoint"
    ):
        load_model(tiny_pickle_model_dir)
    model = load_model(tiny_pickle_model_dir, allow_pickle=True)
    assert model.labels[model.outside_id] == "O"
    with pytest.raises(UnsafeCheckpointError):
        load_model(tiny_pickle_model_dir)  # the cached copy is not handed out either


def test_missing_and_wrong_references(tmp_path, tiny_wordpiece_model_dir):
    with pytest.raises(ModelNotFoundError, match="no model directory"):
        load_model(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ModelNotFoundError, match="must be a directory"):
        load_model(tmp_path / "file.txt")
    with pytest.raises(ModelNotFoundError, match="no weights"):
        load_model(tmp_path)
    encoder_only = tmp_path / "encoder"
    shutil.copytree(tiny_wordpiece_model_dir, encoder_only)
    cfg = (encoder_only / "config.json").read_text().replace('"span-marker"', '"bert"')
    (encoder_only / "config.json").write_text(cfg)
    with pytest.raises(ModelConfigError):
        load_model(encoder_only)


def test_fsspec_uri_is_downloaded_once_into_the_cache(tiny_wordpiece_model_dir, tmp_path):
    fs = fsspec.filesystem("memory")
    for file in Path(tiny_wordpiece_model_dir).iterdir():
        fs.pipe(f"/models/tiny/{file.name}", file.read_bytes())
    try:
        model = load_model("memory://models/tiny")
        assert str(model.path).startswith(str(tmp_path / "cache"))
        assert (model.path / "model.safetensors").exists()
        clear_model_cache()
        cached_mtime = (model.path / "model.safetensors").stat().st_mtime_ns
        again = load_model("memory://models/tiny")
        assert again.path == model.path
        assert (again.path / "model.safetensors").stat().st_mtime_ns == cached_mtime
        assert again.model_id == load_model(tiny_wordpiece_model_dir).model_id
        with pytest.raises(ModelNotFoundError, match="no objects under this URI"):
            load_model("memory://models/absent")
    finally:
        fs.rm("/models", recursive=True)


def test_an_adapter_directory_loads_as_its_merged_checkpoint(tmp_path, tiny_wordpiece_encoder_dir):
    import torch
    from safetensors.torch import load_file

    from ner_core.adapters import add_lora, materialise_adapter, new_span_marker, save_adapter

    trained = new_span_marker(
        str(tiny_wordpiece_encoder_dir), ["PER", "LOC"], model_max_length=32, entity_max_length=3, marker_max_length=16
    )
    add_lora(trained, rank=2, alpha=4.0)
    updates = [param for name, param in trained.named_parameters() if name.endswith("lora_B")]
    assert updates
    with torch.no_grad():  # a LoRA update that changes the merged weights
        for param in updates:
            param.normal_()
    adapter = save_adapter(trained, tmp_path / "run" / "adapter", encoder=str(tiny_wordpiece_encoder_dir))
    merged = materialise_adapter(adapter, tmp_path / "merged")

    model = load_model(adapter, device="cpu")
    assert model.path.is_relative_to(tmp_path / "cache")
    got, expected = (load_file(str(path / "model.safetensors")) for path in (model.path, merged))
    assert got.keys() == expected.keys()
    # The embedding matrix is padded with rows no token uses, random in each build.
    used = len(model.tokenizer)
    for key, tensor in expected.items():
        rows = slice(None, used) if "word_embeddings" in key else slice(None)
        torch.testing.assert_close(got[key][rows], tensor[rows], msg=key)
    assert model.entity_max_length == 3 and set(model.entity_labels) == {"PER", "LOC"}
    built = model.path.stat().st_mtime_ns
    clear_model_cache()
    assert load_model(str(adapter)).path == model.path
    assert model.path.stat().st_mtime_ns == built  # built once, then read from the cache

    (adapter / "adapter_config.json").write_text('{"format": "something-else"}')
    clear_model_cache()
    with pytest.raises(ModelConfigError, match="not a nerflow adapter"):
        load_model(tmp_path / "run" / "adapter")


def test_errors_pickle_with_their_fields():
    err = UnsafeCheckpointError("only pickle", ref="s3://b/m")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is UnsafeCheckpointError and back.ref == "s3://b/m" and str(back) == str(err)
    assert not isinstance(err, TransientError)


def test_loading_reads_only_the_checkpoint_directory(tiny_sentencepiece_model_dir, tmp_path):
    # SpanMarker's own loader reloads tokenizer and encoder config from the encoder's original
    # name (usually a hub id); ours must not, or offline loading of real checkpoints fails.
    import json

    copy = tmp_path / "copy"
    shutil.copytree(tiny_sentencepiece_model_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["_name_or_path"] = config["encoder"]["_name_or_path"] = "some-org/not-on-any-hub"
    (copy / "config.json").write_text(json.dumps(config))
    model = load_model(copy)
    assert model.model_id == load_model(tiny_sentencepiece_model_dir).model_id
    assert type(model.tokenizer).__name__ == "XLMRobertaTokenizerFast"


@pytest.fixture(scope="module")
def large_vocab_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model("wordpiece-large-vocab", tmp_path_factory.mktemp("tiny-large-vocab"))


@pytest.fixture
def transformers_log():
    """Messages logged by transformers during the test.

    transformers' own handler writes to the ``sys.stderr`` it saw at import, which neither
    capfd nor capsys sees, and its loggers do not propagate to the root one (caplog).
    """
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    library_log = logging.getLogger("transformers")
    library_log.addHandler(handler)
    yield lambda: "\n".join(record.getMessage() for record in records)
    library_log.removeHandler(handler)


def test_transformers_warns_about_mistral_regex_in_large_vocabularies(large_vocab_model_dir, transformers_log):
    # The control for the test below: without nerflow's care this tokenizer draws the warning.
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(large_vocab_model_dir)
    assert "fix_mistral_regex" in transformers_log()


def test_loading_does_not_warn_about_mistral_regex(large_vocab_model_dir, transformers_log):
    # transformers 4.57.3+ says every local tokenizer it saved with a vocabulary over 100,000
    # pieces (e5's has 250k) has Mistral's regex bug: noise in every flow run's log, and a
    # false alarm for WordPiece and Unigram tokenizers.
    model = load_model(large_vocab_model_dir)
    assert len(model.tokenizer) > 100_000
    assert "fix_mistral_regex" not in transformers_log()


def test_new_training_model_does_not_warn_about_mistral_regex(large_vocab_model_dir, transformers_log):
    from ner_core.adapters import new_span_marker

    new_span_marker(
        str(large_vocab_model_dir.parent / "encoder"),
        ["PER", "ORG"],
        model_max_length=64,
        entity_max_length=4,
        marker_max_length=32,
    )
    assert "fix_mistral_regex" not in transformers_log()


def test_a_pickle_checkpoint_converted_to_safetensors_loads_and_predicts_the_same(tiny_pickle_model_dir, tmp_path):
    import shutil

    from ner_core import NerEngine
    from ner_core.loading import convert_to_safetensors
    from nerflow.cli import main

    folder = tmp_path / "converted"
    shutil.copytree(tiny_pickle_model_dir, folder)
    assert main(["convert-checkpoint", str(folder)]) == 0
    assert (folder / "model.safetensors").exists()
    text = "Angela Merkel visited Paris with Siemens."
    trusted = NerEngine(load_model(tiny_pickle_model_dir, allow_pickle=True)).predict_text(text, doc_id="d")
    converted = NerEngine(load_model(folder)).predict_text(text, doc_id="d")
    assert [(e.start, e.end, e.label, round(e.score, 5)) for e in converted.entities] == [
        (e.start, e.end, e.label, round(e.score, 5)) for e in trusted.entities
    ]
    # Anything but a state dict of tensors is refused, without running it.
    evil = tmp_path / "evil"
    evil.mkdir()
    import torch

    torch.save({"w": torch.zeros(1), "code": print}, evil / "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError, match="more than tensors"):
        convert_to_safetensors(evil)
