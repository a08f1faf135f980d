"""Annotating: the engine over a normalised batch, on the tiny models."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ner_core import EngineConfig
from ner_core.errors import InferenceError
from nerflow.etl import annotating
from nerflow.etl.annotating import AnnotateConfig, annotate_batch, describe_model, resolve_devices
from nerflow.etl.errors import DeviceUnavailableError
from nerflow.etl.normalising import NormalisedBatch, normalise_batch
from nerflow.etl.quarantine import QUARANTINE_SCHEMA
from nerflow.etl.reading import RECORD_SCHEMA, ReadBatch
from tests.fixtures_models import SAMPLE_SENTENCE

LONG = " ".join([SAMPLE_SENTENCE] * 12)  # several windows of the tiny model (64 tokens)


def _batch(*texts: str) -> NormalisedBatch:
    rows = [
        {
            "doc_id": f"d{i}",
            "text": t,
            "lang": "en",
            "metadata": None,
            "source_uri": "memory:///x.jsonl",
            "record": i + 1,
            "format": "jsonl",
        }
        for i, t in enumerate(texts)
    ]
    return normalise_batch(ReadBatch("b1", pl.DataFrame(rows, schema=RECORD_SCHEMA), QUARANTINE_SCHEMA.to_frame()))


def test_entities_are_slices_of_the_normalised_text(tiny_model_dir):
    batch = _batch(SAMPLE_SENTENCE, "", LONG)
    out = annotate_batch(batch, AnnotateConfig(model=str(tiny_model_dir)), "cpu")
    texts = dict(zip(batch.documents.get_column("doc_id").to_list(), batch.documents.get_column("text").to_list()))
    rows = out.entities.to_pylist()
    assert rows, "the tiny model is calibrated to predict entities"
    for r in rows:
        assert texts[r["doc_id"]][r["start"] : r["end"]] == r["text"]
        assert 0.0 <= r["score"] <= 1.0
    # Empty documents are not annotated; the others get one statistics row each.
    stats = {r["doc_id"]: r for r in out.doc_stats.to_pylist()}
    assert set(stats) == {"d0", "d2"}
    assert stats["d2"]["n_windows"] > 1
    assert stats["d0"]["n_entities"] == sum(r["doc_id"] == "d0" for r in rows)
    assert out.model_id.startswith("spanmarker-") and out.embeddings is None and out.failed.height == 0
    assert out.stats.documents == 2


def _segments(doc_id: str, parts: list[tuple[int, int, str]]) -> pl.DataFrame:
    rows = [
        {"doc_id": doc_id, "source_uri": "memory:///x", "segment": i, "start": a, "end": b, "kind": kind}
        for i, (a, b, kind) in enumerate(parts)
    ]
    return pl.DataFrame(rows).with_columns(pl.col("segment", "start", "end").cast(pl.Int32))


def test_segments_are_read_apart_except_running_lines():
    table = _segments("cells", [(0, 4, "title"), (6, 10, "table_cell"), (11, 20, "table_cell"), (22, 40, "paragraph")])
    pdf = _segments("pdf", [(0, 30, "line"), (31, 60, "line"), (62, 90, "line")])
    mixed = _segments("mixed", [(0, 10, "line"), (11, 20, "table_cell"), (21, 30, "line"), (31, 40, "line")])
    row = _segments("row", [(0, 10, "line"), (11, 15, "line_part"), (16, 20, "line_part"), (21, 30, "line")])
    breaks = annotating.segment_breaks(pl.concat([mixed, pdf, table.reverse(), row]))
    # A PDF's lines run on into each other; any other segment, a line's part too, stands alone.
    assert breaks == {"cells": (6, 11, 22), "mixed": (11, 21), "row": (11, 16, 21)}


def test_each_table_cell_of_a_file_gets_windows_of_its_own(tiny_model_dir):
    cells = [SAMPLE_SENTENCE.rstrip(" ."), "Lindqvist Harbour Authority", "Port Aldren", "Maren Holloway"]
    text = "\n".join(cells)
    batch = _batch(text, text)
    starts = [text.index(c) for c in cells]
    parts = [(a, a + len(c), "table_cell") for a, c in zip(starts, cells)]
    batch = NormalisedBatch(batch.batch_id, batch.documents, batch.quarantine, _segments("d0", parts))
    out = annotate_batch(batch, AnnotateConfig(model=str(tiny_model_dir)), "cpu")
    windows = {r["doc_id"]: r["n_windows"] for r in out.doc_stats.to_pylist()}
    assert windows == {"d0": len(cells), "d1": 1}  # d1, the same text as a record, has no segments


@pytest.mark.parametrize("mode", ["mean", "marker"])
def test_embeddings_align_with_entities(tiny_wordpiece_model_dir, mode):
    config = AnnotateConfig(model=str(tiny_wordpiece_model_dir), engine=EngineConfig(embeddings=mode))
    out = annotate_batch(_batch(SAMPLE_SENTENCE), config, "cpu")
    info = describe_model(config, "cpu")
    assert out.embeddings.shape == (out.entities.num_rows, info.embedding_dim)
    assert out.embeddings.dtype == np.float32


def test_engines_are_cached_per_process(tiny_wordpiece_model_dir):
    config = AnnotateConfig(model=str(tiny_wordpiece_model_dir))
    assert annotating._engine_for(config, "cpu") is annotating._engine_for(config, "cpu")


def test_documents_the_engine_fails_on_are_quarantined(tiny_wordpiece_model_dir, monkeypatch):
    config = AnnotateConfig(model=str(tiny_wordpiece_model_dir))
    engine = annotating._engine_for(config, "cpu").engine
    real = type(engine).predict

    def flaky(self, docs):
        docs = list(docs)
        if any("poison" in d.text for d in docs):
            raise InferenceError("boom", doc_ids=tuple(d.doc_id for d in docs))
        return real(self, docs)

    monkeypatch.setattr(type(engine), "predict", flaky)
    out = annotate_batch(_batch(SAMPLE_SENTENCE, "poison pill"), config, "cpu")
    assert out.doc_stats.column("doc_id").to_pylist() == ["d0"]
    [q] = out.failed.to_dicts()
    assert (q["doc_id"], q["stage"]) == ("d1", "annotate") and q["reason"].startswith("engine failed: boom")
    assert q["raw_excerpt"] == "poison pill"


def test_describe_model(tiny_sentencepiece_model_dir):
    info = describe_model(AnnotateConfig(model=str(tiny_sentencepiece_model_dir)), "cpu")
    assert info.labels == ("PER", "ORG", "LOC", "MISC") and info.window_tokens == 64 and info.embedding_dim == 0


def test_device_policies(monkeypatch):
    import torch

    assert resolve_devices("cpu") == ("cpu",)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_devices("auto") == ("cpu",)
    with pytest.raises(DeviceUnavailableError, match=r"no CUDA device is available \(device='cuda'\)"):
        resolve_devices("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_devices("auto") == ("cuda:0", "cuda:1")
    with pytest.raises(ValueError, match="device policy must be one of"):
        resolve_devices("tpu")


def test_any_error_on_one_document_quarantines_it_but_an_engine_failing_on_all_fails(
    tiny_wordpiece_model_dir, monkeypatch
):
    config = AnnotateConfig(model=str(tiny_wordpiece_model_dir))
    engine = annotating._engine_for(config, "cpu").engine
    real_predict, real_text = type(engine).predict, type(engine).predict_text

    def failing(pattern, error):
        def predict(self, docs):
            docs = list(docs)
            if any(pattern in d.text for d in docs):
                raise error
            return real_predict(self, docs)

        def predict_text(self, text, doc_id=None):
            if pattern in text:
                raise error
            return real_text(self, text, doc_id=doc_id)

        return predict, predict_text

    predict, predict_text = failing("poison", MemoryError("out of memory"))
    monkeypatch.setattr(type(engine), "predict", predict)
    monkeypatch.setattr(type(engine), "predict_text", predict_text)
    out = annotate_batch(_batch(SAMPLE_SENTENCE, "poison pill"), config, "cpu")
    assert out.doc_stats.column("doc_id").to_pylist() == ["d0"]
    assert out.failed.get_column("reason").to_list() == ["engine failed: MemoryError: out of memory"]

    predict, predict_text = failing("", RuntimeError("device lost"))  # every text
    monkeypatch.setattr(type(engine), "predict", predict)
    monkeypatch.setattr(type(engine), "predict_text", predict_text)
    with pytest.raises(RuntimeError, match="device lost"):
        annotate_batch(_batch(SAMPLE_SENTENCE, "poison pill"), config, "cpu")
