"""The train-model and evaluate-model flows, through the command line, on a tiny encoder."""

from __future__ import annotations

import gzip
import json

import pytest

from nerflow.cli import main
from tests.fixtures_models import weight_files

SENTENCES = [
    (["Angela", "Merkel", "visited", "Paris", "."], ["B-PER", "I-PER", "O", "B-LOC", "O"]),
    (
        ["the", "United", "Nations", "met", "in", "New", "York", "."],
        ["O", "B-ORG", "I-ORG", "O", "O", "B-LOC", "I-LOC", "O"],
    ),
    (["John", "Smith", "is", "at", "Google", "."], ["B-PER", "I-PER", "O", "O", "B-ORG", "O"]),
]


@pytest.fixture
def labelled_files(tmp_path):
    sentences = tmp_path / "data" / "train.jsonl.gz"
    sentences.parent.mkdir()
    lines = [
        json.dumps({"id": f"s{i}", "lang": "en", "tokens": t, "ner_tags": g}) for i, (t, g) in enumerate(SENTENCES)
    ]
    sentences.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    text = " ".join(" ".join(t) for t, _ in SENTENCES)
    docs = tmp_path / "data" / "docs.jsonl"
    docs.write_text(
        json.dumps({"id": "d1", "lang": "en", "text": text, "entities": [{"start": 0, "end": 13, "label": "PER"}]})
        + "\n"
    )
    return sentences, docs


def test_train_then_evaluate_from_the_command_line(
    tmp_path, labelled_files, tiny_wordpiece_encoder_dir, prefect_harness, capsys
):
    sentences, docs = labelled_files
    config = tmp_path / "train.toml"
    config.write_text(f"""
encoder = "{tiny_wordpiece_encoder_dir}"
labels = ["PER", "ORG", "LOC"]
model_max_length = 64
entity_max_length = 4
marker_max_length = 32
lora_rank = 4
lora_alpha = 8.0
max_steps = 4
checkpoint_every = 2
eval_every = 2
batch_tokens = 400
output_dir = "{tmp_path / "run"}"
train = [{{ uri = "{sentences}" }}]
dev = [{{ uri = "{sentences}", max_records = 2 }}]
""")
    assert main(["train", "--config", str(config)]) == 0
    model_dir = tmp_path / "run" / "model"
    assert weight_files(model_dir) == ["model.safetensors", "span_filter.safetensors"]
    card = (model_dir / "README.md").read_text()
    assert "Dev evaluation" in card and "lora" in card
    assert (tmp_path / "run" / "adapter" / "adapter.safetensors").exists()
    # The span filter is trained with the model and travels with the checkpoint and the adapter.
    from ner_core import load_model
    from ner_core.adapters import materialise_adapter

    assert load_model(model_dir, device="cpu").span_filter is not None
    rebuilt = materialise_adapter(tmp_path / "run" / "adapter", tmp_path / "rebuilt")
    assert load_model(rebuilt, device="cpu").span_filter is not None

    out = tmp_path / "eval" / "scores"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(model_dir),
                "--data",
                str(sentences),
                str(docs),
                "--label-map",
                "LOC=",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.with_suffix(".json").read_text())
    assert [r["name"] for r in result["reports"]] == ["train", "docs"]
    assert [r["kind"] for r in result["reports"]] == ["sentences", "documents"]
    assert "LOC" not in result["reports"][0]["per_label"] or result["reports"][0]["per_label"]["LOC"]["tp"] == 0
    table = out.with_suffix(".md").read_text()
    assert "| train | sentences | 3 |" in table and "| docs | documents | 1 |" in table

    written = tmp_path / "eval" / "written"
    assert (
        main(
            ["evaluate", "--model", str(model_dir), "--data", str(sentences), "--as-written", "--output", str(written)]
        )
        == 0
    )
    report = json.loads(written.with_suffix(".json").read_text())["reports"][0]
    assert report["kind"] == "sentences, as written" and report["micro"]["support"] == 6

    # Read as it is written (no spaces set around punctuation), the same gold is scored.
    raw = tmp_path / "eval" / "raw"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(model_dir),
                "--data",
                str(sentences),
                "--as-written",
                "--no-space-punctuation",
                "--output",
                str(raw),
            ]
        )
        == 0
    )
    raw_report = json.loads(raw.with_suffix(".json").read_text())["reports"][0]
    assert raw_report["micro"]["support"] == 6
    assert (report["space_punctuation"], raw_report["space_punctuation"]) == (True, False)
    assert (report["trim_unpaired_quotes"], raw_report["trim_unpaired_quotes"]) == (True, True)

    untrimmed = tmp_path / "eval" / "untrimmed"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(model_dir),
                "--data",
                str(sentences),
                "--no-space-punctuation",
                "--no-trim-quotes",
                "--output",
                str(untrimmed),
            ]
        )
        == 0
    )
    untrimmed_report = json.loads(untrimmed.with_suffix(".json").read_text())["reports"][0]
    assert (untrimmed_report["space_punctuation"], untrimmed_report["trim_unpaired_quotes"]) == (False, False)


def test_an_ignored_label_is_dropped_under_either_name():
    from flows.evaluate import dropping

    # "leave LABEL out": also a label renamed into it, and a label renamed out of it.
    assert dropping({"MISC": "ORG"}, ["ORG"]) == {"MISC": None, "ORG": None}
    assert dropping({"ORG": "LOC", "PER": "PER"}, ["ORG"]) == {"ORG": None, "PER": "PER"}
    assert dropping({}, ["MISC"]) == {"MISC": None}
    assert dropping({"MISC": None, "LOC": "GPE"}, []) == {"MISC": None, "LOC": "GPE"}
