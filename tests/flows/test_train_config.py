"""``load_config``: a training config read from a file, alone or extending another."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.train import load_config

REPO = Path(__file__).resolve().parents[2]

BASE = """
encoder = "e5-small"
lora_rank = 16
dropout = 0.0
seed = 41
output_dir = "runs/base"
train = [
  { uri = "a.jsonl.gz", max_records = 100 },
  { uri = "b.jsonl.gz", max_records = 200 },
]
"""


def test_a_config_that_extends_another_holds_only_what_it_changes(tmp_path):
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "child.toml").write_text('extends = "base.toml"\ndropout = 0.1\noutput_dir = "runs/child"\n')

    base, child = load_config(tmp_path / "base.toml"), load_config(tmp_path / "child.toml")

    assert (child.dropout, str(child.output_dir)) == (0.1, "runs/child")
    assert child.model_dump(exclude={"dropout", "output_dir"}) == base.model_dump(exclude={"dropout", "output_dir"})


def test_a_list_in_the_extending_config_replaces_the_base_list_whole(tmp_path):
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "child.toml").write_text('extends = "base.toml"\ntrain = [{ uri = "c.jsonl.gz" }]\n')

    assert [s.uri for s in load_config(tmp_path / "child.toml").train] == ["c.jsonl.gz"]


def test_extends_is_relative_to_the_config_and_chains_across_formats(tmp_path, monkeypatch):
    (tmp_path / "bases").mkdir()
    (tmp_path / "bases" / "base.toml").write_text(BASE)
    (tmp_path / "bases" / "middle.yaml").write_text("extends: base.toml\nlora_rank: 64\nseed: 7\n")
    (tmp_path / "top.json").write_text(json.dumps({"extends": "bases/middle.yaml", "seed": 13}))
    monkeypatch.chdir(REPO)  # not the configs' folder: the paths must not depend on it

    config = load_config(tmp_path / "top.json")

    assert (config.lora_rank, config.seed, config.dropout) == (64, 13, 0.0)


def test_a_config_that_extends_itself_is_refused_with_the_chain(tmp_path):
    (tmp_path / "a.toml").write_text('extends = "b.toml"\nseed = 1\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\nseed = 2\n')

    with pytest.raises(ValueError, match=r"extends itself: .*a\.toml -> .*b\.toml -> .*a\.toml"):
        load_config(tmp_path / "a.toml")


@pytest.mark.parametrize(
    ("name", "text", "error", "message"),
    [
        ("child.toml", "extends = 3\n", ValueError, "'extends' must be a path"),
        ("child.toml", 'extends = "nowhere.toml"\n', FileNotFoundError, r"nowhere\.toml"),
        ("empty.yaml", "", ValueError, "a mapping of settings, not NoneType"),
    ],
    ids=["extends-not-a-path", "base-missing", "not-a-mapping"],
)
def test_a_config_that_cannot_be_read_is_a_clear_error(tmp_path, name, text, error, message):
    (tmp_path / name).write_text(text)

    with pytest.raises(error, match=message):
        load_config(tmp_path / name)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_config_in_the_repository_loads(path):
    config = load_config(path)

    assert config.train and config.output_dir
