"""scripts/complete_silver_labels.py: which of a model's entities complete a silver record."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

from ner_core.labelled import read_labelled

REPO_ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location(
        "complete_silver_labels", REPO_ROOT / "scripts" / "complete_silver_labels.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entity(record, words: str, label: str, score: float):
    start = record.text.index(words)
    return SimpleNamespace(start=start, end=start + len(words), label=label, score=score)


def test_only_confident_token_aligned_entities_that_silver_lacks_are_added(tmp_path):
    path = tmp_path / "silver.jsonl"
    path.write_text(
        '{"tokens": ["Angela", "Merkel", "besuchte", "Paris", "und", "die", "Siemens", "AG", "."], '
        '"ner_tags": ["B-PER", "I-PER", "O", "O", "O", "O", "O", "O", "O"]}\n',
        encoding="utf-8",
    )
    record = next(read_labelled(str(path)))
    found = [
        _entity(record, "Paris", "LOC", 0.9),  # silver missed it: added
        _entity(record, "Siemens AG", "ORG", 0.5),  # below the score asked for
        _entity(record, "Merkel", "PER", 0.99),  # inside a silver entity: silver stays
        # not on the record's token edges: cannot be written as tags
        SimpleNamespace(
            start=record.text.index("Paris") + 1, end=record.text.index("Paris") + 5, label="LOC", score=1.0
        ),
    ]
    assert _script().added_spans(record, found, min_score=0.75) == [(3, 4, "LOC")]
    assert _script().added_spans(record, found, min_score=0.4) == [(3, 4, "LOC"), (6, 8, "ORG")]
