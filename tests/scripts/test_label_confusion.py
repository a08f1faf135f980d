"""scripts/label_confusion.py: the confusion table and relabelling behind the PUD ru diagnosis."""

from __future__ import annotations

import argparse
import importlib.util
from collections import Counter
from pathlib import Path

import pytest

from ner_core.labelled import LabelledText

REPO_ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("label_confusion", REPO_ROOT / "scripts" / "label_confusion.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TEXT = "Президент США посетил Китай и Москву."
USA, CHINA, MOSCOW = (10, 13), (22, 27), (30, 36)


def _record(entities) -> LabelledText:
    return LabelledText(id="t:1", text=TEXT, entities=tuple(entities))


def test_confusion_counts_each_gold_entity_and_each_unmatched_prediction():
    script = _script()
    record = _record([(*USA, "ORG"), (*CHINA, "LOC"), (*MOSCOW, "LOC")])
    predicted = [[(*USA, "LOC"), (22, 25, "LOC"), (0, 9, "PER")]]
    counts, relabelled, spurious = script.confusion([record], predicted)
    assert counts == Counter(
        {"ORG->LOC": 1, "LOC->boundary": 1, "LOC->missed": 1, "boundary->LOC": 1, "spurious->PER": 1}
    )
    assert relabelled == Counter({"ORG->LOC: США": 1})
    assert spurious == Counter({"PER: Президент": 1})


def test_spurious_entities_named_in_other_gold_texts_are_counted_apart():
    script = _script()
    record = _record([(*CHINA, "LOC")])
    predicted = [[(*USA, "LOC"), (*CHINA, "LOC"), (0, 9, "PER")]]
    counts, _, spurious = script.confusion([record], predicted, frozenset({"США", "Москву"}))
    assert spurious == Counter({"LOC: США": 1, "PER: Президент": 1})
    assert counts["spurious, gold elsewhere"] == 1  # США: gold in another text of the file


def test_relabel_gives_every_prediction_of_the_string_the_label():
    script = _script()
    records = [_record([]), _record([])]
    predicted = [[(*USA, "LOC"), (*CHINA, "LOC")], [(*USA, "ORG"), (*MOSCOW, "LOC")]]
    changed_predictions, changed = script.relabel_predictions(records, predicted, "США", "ORG")
    assert changed == 1  # the second is ORG already
    assert changed_predictions == [[(*USA, "ORG"), (*CHINA, "LOC")], [(*USA, "ORG"), (*MOSCOW, "LOC")]]
    assert predicted[0][0] == (*USA, "LOC")  # the input is left as it was


def test_relabel_argument_is_string_equals_label():
    script = _script()
    assert script._relabelling("США=ORG") == ("США", "ORG")
    assert script._relabelling("a=b=LOC") == ("a=b", "LOC")
    with pytest.raises(argparse.ArgumentTypeError, match="STRING=LABEL"):
        script._relabelling("США")
    with pytest.raises(argparse.ArgumentTypeError, match="STRING=LABEL"):
        script._relabelling("США=GPE")
