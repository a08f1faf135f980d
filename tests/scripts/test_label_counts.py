"""scripts/label_counts.py: the counts behind the model card's PUD ru diagnosis."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, records: list[dict]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def test_counts_each_gold_label_of_whole_entities_only(tmp_path):
    corpus = tmp_path / "silver_ru.jsonl.gz"
    _write(
        corpus,
        [
            {"tokens": ["Президент", "США", "посетил", "Китай"], "ner_tags": ["O", "B-LOC", "O", "B-LOC"]},
            {"tokens": ["Правительство", "США", "заявило"], "ner_tags": ["O", "B-ORG", "O"]},
            # "США" inside a longer entity is not the string "США".
            {"tokens": ["Посольство", "США", "в", "Москве"], "ner_tags": ["B-ORG", "I-ORG", "O", "B-LOC"]},
            {"text": "Флот США вышел.", "spans": [[5, 8, "LOC"]]},
        ],
    )
    proc = subprocess.run(
        [
            sys.executable,
            "scripts/label_counts.py",
            "--string",
            "США",
            "--string",
            "Китай",
            "--string",
            "Индия",
            str(corpus),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["labels"] == {"США": {"LOC": 2, "ORG": 1}, "Китай": {"LOC": 1}, "Индия": {}}


def test_contexts_show_each_labels_mentions_with_the_text_around_them(tmp_path):
    corpus = tmp_path / "gold_ru.jsonl.gz"
    _write(
        corpus,
        [
            {
                "tokens": ["Избранный", "президент", "США", "Дональд", "Трамп"],
                "ner_tags": ["O", "O", "B-LOC", "B-PER", "I-PER"],
            },
            {"tokens": ["в", "системах", "торговли", "США", "."], "ner_tags": ["O", "O", "O", "B-ORG", "O"]},
            {"tokens": ["президент", "США"], "ner_tags": ["O", "B-LOC"]},
        ],
    )
    proc = subprocess.run(
        [sys.executable, "scripts/label_counts.py", "--contexts", "1", "--string", "США", str(corpus)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["labels"] == {"США": {"LOC": 2, "ORG": 1}}
    # At most one mention per label, the first one, with the entity in brackets.
    assert report["contexts"] == {
        "США": {"LOC": ["Избранный президент [США] Дональд Трамп"], "ORG": ["в системах торговли [США] ."]}
    }


def test_no_contexts_unless_asked(tmp_path):
    corpus = tmp_path / "gold.jsonl.gz"
    _write(corpus, [{"text": "Флот США вышел.", "spans": [[5, 8, "LOC"]]}])
    proc = subprocess.run(
        [sys.executable, "scripts/label_counts.py", "--string", "США", str(corpus)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "contexts" not in json.loads(proc.stdout)
