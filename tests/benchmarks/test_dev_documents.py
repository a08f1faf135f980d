"""benchmarks/dev_documents.py: dev sentences joined into documents keep every gold entity."""

from __future__ import annotations

import pytest

from ner_core.labelled import LabelledText


@pytest.fixture
def dev_documents(benchmark_module):
    return benchmark_module("dev_documents")


def test_pseudo_documents_join_lines_and_move_entities_with_them(dev_documents):
    sentences = [
        LabelledText(id="a", text="Anna lives in Oslo.", entities=((0, 4, "PER"), (14, 18, "LOC")), lang="en"),
        LabelledText(id="b", text="北京很大。", entities=((0, 2, "LOC"),), lang="zh"),
        LabelledText(id="c", text="IBM hired Bo.", entities=((0, 3, "ORG"), (10, 12, "PER")), lang="en"),
    ]
    docs = dev_documents.pseudo_documents(sentences, 2, "mixed")

    assert [d.text for d in docs] == ["Anna lives in Oslo.\n北京很大。", "IBM hired Bo."]
    assert [d.id for d in docs] == ["dev-doc:mixed:0", "dev-doc:mixed:2"]
    assert [[d.text[a:b] for a, b, _ in d.entities] for d in docs] == [["Anna", "Oslo", "北京"], ["IBM", "Bo"]]
    assert [label for d in docs for *_, label in d.entities] == ["PER", "LOC", "LOC", "ORG", "PER"]
    assert docs[0].lang == "en"
