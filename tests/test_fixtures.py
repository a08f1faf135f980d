"""The tiny models that every model test builds on: offline, safetensors only, predicting."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.fixtures_models import (
    ENTITY_MAX_LENGTH,
    LABELS,
    MARKER_MAX_LENGTH,
    MODEL_MAX_LENGTH,
    SAMPLE_SENTENCE,
    build_tiny_model,
    weight_files,
)


@pytest.fixture(scope="module")
def span_marker_model(tiny_model_dir):
    from span_marker import SpanMarkerModel

    return SpanMarkerModel.from_pretrained(str(tiny_model_dir)).eval()


def test_checkpoint_holds_safetensors_and_its_tokenizer(tiny_model_dir):
    assert weight_files(tiny_model_dir) == ["model.safetensors"]
    files = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= files
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "span-marker"
    assert [config["encoder"]["id2label"][str(i)] for i in range(len(LABELS))] == list(LABELS)
    assert (config["model_max_length"], config["entity_max_length"], config["marker_max_length"]) == (
        MODEL_MAX_LENGTH,
        ENTITY_MAX_LENGTH,
        MARKER_MAX_LENGTH,
    )


def test_span_marker_loads_offline_and_predicts_entities(span_marker_model):
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    entities = span_marker_model.predict(SAMPLE_SENTENCE)
    assert entities, "a tiny model that predicts nothing makes parity tests vacuous"
    for entity in entities:
        assert entity["label"] in LABELS[1:]
        assert SAMPLE_SENTENCE[entity["char_start_index"] : entity["char_end_index"]] == entity["span"]


def test_predictions_vary_in_label_and_score(span_marker_model):
    sentences = [
        SAMPLE_SENTENCE,
        "Peter Smith works for Microsoft in London and Paris .",
        "Die Bundeskanzlerin Angela Merkel besuchte Москва und Αθήνα .",
    ]
    entities = [e for row in span_marker_model.predict(sentences) for e in row]
    assert len({e["label"] for e in entities}) >= 2
    assert len({round(e["score"], 3) for e in entities}) >= 3


def test_position_table_covers_the_window(span_marker_model):
    # SpanMarker numbers text tokens from 2 and markers as their word's token + 2.
    positions = span_marker_model.encoder.config.max_position_embeddings
    assert positions >= span_marker_model.tokenizer.model_max_length + 4


def test_tokenizers_cover_the_scripts_without_unk(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "Müller besuchte Москва , Αθήνα und 北京 ; São Paulo , Łódź ."
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in ids


def test_sentencepiece_tokenizer_has_xlm_r_special_ids(tiny_sentencepiece_model_dir):
    from transformers import AutoTokenizer, XLMRobertaTokenizerFast

    tokenizer = AutoTokenizer.from_pretrained(tiny_sentencepiece_model_dir)
    assert isinstance(tokenizer, XLMRobertaTokenizerFast)
    assert [tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id] == [
        0,
        1,
        2,
        3,
    ]
    encoding = tokenizer("Angela  Merkel", return_offsets_mapping=True)
    assert encoding["input_ids"][0] == 0 and encoding["input_ids"][-1] == 2
    # Spaces stay out of the offsets, as with the hub's XLM-R tokenizer.
    assert [o for o in encoding["offset_mapping"] if o != (0, 0)] == [(0, 6), (8, 14)]


def test_wordpiece_tokenizer_is_cased_and_keeps_accents(tiny_wordpiece_model_dir):
    from transformers import AutoTokenizer, BertTokenizerFast

    tokenizer = AutoTokenizer.from_pretrained(tiny_wordpiece_model_dir)
    assert isinstance(tokenizer, BertTokenizerFast)
    assert tokenizer.tokenize("Müller 北京") == ["Müller", "北", "京"]


def test_pickle_fixture_has_only_pickle_weights(tiny_pickle_model_dir):
    assert weight_files(tiny_pickle_model_dir) == ["pytorch_model.bin"]


def test_builds_are_deterministic(tiny_wordpiece_model_dir, tmp_path):
    again = build_tiny_model("wordpiece", tmp_path)
    assert (again / "model.safetensors").read_bytes() == (tiny_wordpiece_model_dir / "model.safetensors").read_bytes()


def test_checkpoint_is_usable_without_the_encoder_directory(tiny_wordpiece_model_dir, tmp_path):
    # Everything a loader that reads only the checkpoint needs is inside it (SpanMarker's own
    # from_pretrained would still read config.encoder["_name_or_path"]).
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    copy = shutil.copytree(tiny_wordpiece_model_dir, tmp_path / "moved")
    assert Path(json.loads((copy / "config.json").read_text())["encoder"]["_name_or_path"]) != copy
    assert AutoTokenizer.from_pretrained(copy).tokenize("Paris") == ["Paris"]
    assert any(k.startswith("classifier.") for k in load_file(copy / "model.safetensors"))
