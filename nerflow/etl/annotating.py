"""Run the :mod:`ner_core` engine over the documents of a batch.

One engine per model, device and engine configuration per process, built on the model that
``ner_core.load_model`` caches, so a worker loads its model once whatever the number of
batches. Calls on one engine are serialised by a lock: the flow gives each device one batch
at a time anyway, and the lock makes a second caller wait rather than share the model's
scratch state.

A document the engine fails on (``InferenceError``, ``WindowingError``) is not lost: the
batch is re-run one document at a time and the failing documents are quarantined (stage
``"annotate"``) with the engine's message.

Entities table (:data:`ENTITY_SCHEMA`, Arrow): doc_id, start, end (int32, characters of the
normalised text, end exclusive), text, label, score (float32); sorted by document order, then
``start``. Document statistics (:data:`DOC_STATS_SCHEMA`): doc_id, n_tokens, n_windows,
n_entities (int32), one row per annotated document.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, TypeVar, get_args

import numpy as np
import polars as pl
import pyarrow as pa

from ner_core import Doc, DocResult, EngineConfig, EngineStats, NerEngine, load_model
from ner_core.errors import InferenceError, WindowingError
from nerflow.errors import describe_error
from nerflow.etl.errors import DeviceUnavailableError
from nerflow.etl.extraction.document import RUNNING_TEXT_KINDS
from nerflow.etl.normalising import NormalisedBatch
from nerflow.etl.quarantine import ANNOTATE, quarantine_rows

__all__ = [
    "DEVICE_POLICIES",
    "DevicePolicy",
    "ENTITY_SCHEMA",
    "DOC_STATS_SCHEMA",
    "AnnotateConfig",
    "ModelInfo",
    "Annotation",
    "resolve_devices",
    "describe_model",
    "annotate_batch",
    "failed_documents",
    "failure_reason",
    "annotate_one_by_one",
    "merge_annotations",
    "split_documents",
]

D = TypeVar("D")
R = TypeVar("R")

# Errors the engine raises about a document it cannot annotate (not about itself).
_ENGINE_ERRORS = (InferenceError, WindowingError)

DevicePolicy = Literal["auto", "cpu", "cuda"]
"""Which devices a run uses (:func:`resolve_devices`)."""
# The one list: the flow's parameters take the type, resolve_devices checks the tuple.
DEVICE_POLICIES: tuple[str, ...] = get_args(DevicePolicy)

ENTITY_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("start", pa.int32(), nullable=False),
        pa.field("end", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),
    ]
)

DOC_STATS_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("n_tokens", pa.int32(), nullable=False),
        pa.field("n_windows", pa.int32(), nullable=False),
        pa.field("n_entities", pa.int32(), nullable=False),
    ]
)


@dataclass(frozen=True, kw_only=True)
class AnnotateConfig:
    """Which model runs, and how.

    Attributes:
        model: Model reference for :func:`ner_core.load_model` (``"default"``, a directory,
            an fsspec URI, a hub id).
        engine: The engine's settings (windows, overlap, batching, precision, embeddings).
        storage_options: fsspec options for a model stored at a URI.
    """

    model: str = "default"
    engine: EngineConfig = field(default_factory=EngineConfig)
    storage_options: Mapping = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What the run records about its model.

    Attributes:
        ref: The reference it was loaded from.
        model_id: Content digest (``ner_core.NerModel.model_id``), part of every entity id.
        labels: Entity labels (without the outside label).
        window_tokens: Tokens per window the engine uses.
        embedding_dim: Width of entity vectors for the configured embeddings, 0 for none.
        span_filter: Which candidate spans the engine scores: ``"off"`` (all) or the span
            filter's rule (``ner_core.NerEngine.span_filter_rule``).
    """

    ref: str
    model_id: str
    labels: tuple[str, ...]
    window_tokens: int
    embedding_dim: int
    span_filter: str = "off"


@dataclass(frozen=True, eq=False)
class Annotation:
    """A batch's annotation.

    Attributes:
        batch_id: The batch's id.
        model_id: The model's content digest.
        device: Where it ran.
        entities: :data:`ENTITY_SCHEMA`.
        doc_stats: :data:`DOC_STATS_SCHEMA`, for the documents annotated.
        embeddings: float32 ``[n_entities, dim]`` aligned with ``entities`` rows, or ``None``.
        failed: Documents the engine failed on (``quarantine.QUARANTINE_SCHEMA``, stage
            ``"annotate"``).
        stats: Engine counters of this batch alone.
        seconds: Wall time of the batch's annotation.
    """

    batch_id: str
    model_id: str
    device: str
    entities: pa.Table
    doc_stats: pa.Table
    embeddings: np.ndarray | None
    failed: pl.DataFrame
    stats: EngineStats
    seconds: float


def resolve_devices(policy: str) -> tuple[str, ...]:
    """Devices a run uses: every CUDA device for ``"cuda"`` (and for ``"auto"`` when there is
    one), else ``("cpu",)``.

    Raises:
        DeviceUnavailableError: ``"cuda"`` on a machine without a usable CUDA device.
    """
    if policy not in DEVICE_POLICIES:
        raise ValueError(f"device policy must be one of {DEVICE_POLICIES}, got {policy!r}")
    import torch

    if policy == "cpu":
        return ("cpu",)
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n:
        return tuple(f"cuda:{i}" for i in range(n))
    if policy == "cuda":
        raise DeviceUnavailableError("no CUDA device is available", device=policy)
    return ("cpu",)


class _LockedEngine:
    def __init__(self, engine: NerEngine) -> None:
        self.engine = engine
        self.lock = threading.Lock()


@lru_cache(maxsize=16)
def _engine(model: str, device: str, engine_config: EngineConfig, storage_options_json: str) -> _LockedEngine:
    # The model itself is cached by ner_core.load_model; this keeps the scorer (which may
    # hold quantised copies of layers) across batches too.
    nm = load_model(model, device, storage_options=json.loads(storage_options_json))
    return _LockedEngine(NerEngine(nm, engine_config))


def _engine_for(config: AnnotateConfig, device: str) -> _LockedEngine:
    # Options hold dicts (client_kwargs): JSON makes them a hashable cache key.
    options = json.dumps(dict(config.storage_options), sort_keys=True, default=str)
    return _engine(config.model, device, config.engine, options)


def describe_model(config: AnnotateConfig, device: str) -> ModelInfo:
    """Load the model on ``device`` (failing fast on a bad reference) and describe it.

    Raises:
        ModelError: From :func:`ner_core.load_model` (not found, unsafe, not SpanMarker).
    """
    engine = _engine_for(config, device).engine
    model = engine.model
    mode = config.engine.embeddings
    dim = {"none": 0, "mean": model.hidden_size, "marker": 2 * model.hidden_size}[mode]
    return ModelInfo(
        ref=config.model,
        model_id=model.model_id,
        labels=model.entity_labels,
        window_tokens=engine.windowing.window_tokens,
        embedding_dim=dim,
        span_filter=engine.span_filter_rule,
    )


def annotate_batch(batch: NormalisedBatch, config: AnnotateConfig, device: str) -> Annotation:
    """Annotate the batch's documents of status ``"ok"``.

    Args:
        batch: Normalised documents (``normalising.DOCUMENT_SCHEMA``).
        config: Model and engine settings.
        device: ``"cpu"`` or ``"cuda:N"``.

    Returns:
        Entities, per-document statistics, optional embeddings and failed documents.
    """
    t0 = time.perf_counter()
    locked = _engine_for(config, device)
    ok = batch.documents.filter(pl.col("status") == "ok")
    breaks = segment_breaks(batch.segments)
    docs = [
        Doc(doc_id=i, text=t, breaks=breaks.get(i, ()))
        for i, t in zip(ok.get_column("doc_id").to_list(), ok.get_column("text").to_list())
    ]
    with locked.lock:
        engine = locked.engine
        before = EngineStats(**vars(engine.stats))
        results, failures = _predict(engine, docs)
        stats = engine.stats - before
    entities, doc_stats, embeddings = _tables(results, config.engine.embeddings != "none")
    failed_rows = failed_documents(batch, failures)
    return Annotation(
        batch_id=batch.batch_id,
        model_id=engine.model.model_id,
        device=device,
        entities=entities,
        doc_stats=doc_stats,
        embeddings=embeddings,
        failed=failed_rows,
        stats=stats,
        seconds=time.perf_counter() - t0,
    )


def segment_breaks(segments: pl.DataFrame) -> dict[str, tuple[int, ...]]:
    """Per document, where the model's context ends (``Doc.breaks``): the start of every
    segment after the first, unless it and the one before are both running text
    (``RUNNING_TEXT_KINDS``: a PDF's lines)."""
    running = pl.col("kind").is_in(list(RUNNING_TEXT_KINDS))
    after_first = pl.int_range(pl.len()).over("doc_id") > 0
    continues = (running & running.shift(1).over("doc_id")).fill_null(False)
    starts = segments.sort("doc_id", "start").filter(after_first & ~continues)
    return {doc_id: tuple(at) for doc_id, at in starts.group_by("doc_id").agg(pl.col("start").sort()).iter_rows()}


def failed_documents(batch: NormalisedBatch, failures: Mapping[str, str]) -> pl.DataFrame:
    """Quarantine rows (stage ``"annotate"``) of the batch's documents in ``failures``
    (doc_id -> reason)."""
    return quarantine_rows(
        batch.documents.filter(pl.col("doc_id").is_in(list(failures))),
        stage=ANNOTATE,
        reason=pl.col("doc_id").replace_strict(dict(failures), return_dtype=pl.String),
    )


def failure_reason(error: BaseException) -> str:
    """How a document the engine failed on is described in its quarantine row."""
    if isinstance(error, _ENGINE_ERRORS):
        return f"engine failed: {error}"
    return f"engine failed: {describe_error(error)}"


def annotate_one_by_one(
    docs: Sequence[D], annotate: Callable[[D], R], doc_id: Callable[[D], str]
) -> tuple[list[R], dict[str, str]]:
    """The failure policy for a batch that failed as a whole: its documents one at a time.

    Finds the culprits while the rest keep their entities. A document that makes annotation
    fail in any way (MemoryError too) is quarantined, so that it cannot stop every later run;
    but when every document of several fails, and none for a reason the engine owns
    (``InferenceError``, ``WindowingError``), the engine is what broke (a device, a worker,
    memory for anything at all), and its first error is raised rather than good documents
    quarantined.

    Returns:
        The results of the documents that annotated, and doc_id -> quarantine reason of the
        others.
    """
    results: list[R] = []
    failures: dict[str, str] = {}
    errors: list[Exception] = []
    for doc in docs:
        try:
            results.append(annotate(doc))
        except Exception as e:  # noqa: BLE001 (the policy: any failure of one document is its own)
            failures[doc_id(doc)] = failure_reason(e)
            errors.append(e)
    if len(docs) > 1 and not results and not any(isinstance(e, _ENGINE_ERRORS) for e in errors):
        raise errors[0]
    return results, failures


def _predict(engine: NerEngine, docs: list[Doc]) -> tuple[list[DocResult], dict[str, str]]:
    try:
        return list(engine.predict(docs)), {}
    except Exception:  # noqa: BLE001 (any failure: find the documents it belongs to)
        return annotate_one_by_one(docs, lambda doc: next(engine.predict([doc])), _doc_id)


def _doc_id(doc: Doc) -> str:
    return doc.doc_id


def merge_annotations(
    batch: NormalisedBatch,
    parts: Sequence[Annotation],
    failures: Mapping[str, str],
    *,
    model_id: str,
    device: str,
    with_vectors: bool,
) -> Annotation:
    """One annotation of ``batch`` from annotations of its documents one by one (``parts``)
    and the documents none could be made of (``failures``: doc_id -> reason)."""
    entities, doc_stats, embeddings = _tables([], with_vectors)
    vectors = [p.embeddings for p in parts if p.embeddings is not None and len(p.embeddings)]
    return Annotation(
        batch_id=batch.batch_id,
        model_id=model_id,
        device=parts[0].device if parts else device,
        entities=pa.concat_tables([entities, *(p.entities for p in parts)]),
        doc_stats=pa.concat_tables([doc_stats, *(p.doc_stats for p in parts)]),
        embeddings=np.concatenate(vectors) if vectors else embeddings,
        failed=pl.concat([failed_documents(batch, {}), *(p.failed for p in parts), failed_documents(batch, failures)]),
        stats=sum((p.stats for p in parts), EngineStats()),
        seconds=sum(p.seconds for p in parts),
    )


def split_documents(batch: NormalisedBatch) -> list[NormalisedBatch]:
    """The batch's documents to annotate (status ``"ok"``), each as a batch of its own."""
    ok = batch.documents.filter(pl.col("status") == "ok")
    return [
        NormalisedBatch(batch_id=batch.batch_id, documents=ok.slice(i, 1), quarantine=batch.quarantine.clear())
        for i in range(ok.height)
    ]


def _tables(results: list[DocResult], with_vectors: bool) -> tuple[pa.Table, pa.Table, np.ndarray | None]:
    cols: dict[str, list] = {name: [] for name in ENTITY_SCHEMA.names}
    vectors: list[np.ndarray] = []
    for r in results:
        for e in r.entities:
            cols["doc_id"].append(e.doc_id)
            cols["start"].append(e.start)
            cols["end"].append(e.end)
            cols["text"].append(e.text)
            cols["label"].append(e.label)
            cols["score"].append(e.score)
            if with_vectors:
                # with_vectors: the engine ran with embeddings on, and gives every entity one.
                assert e.embedding is not None
                vectors.append(e.embedding)
    entities = pa.table(cols, schema=ENTITY_SCHEMA)
    doc_stats = pa.table(
        {
            "doc_id": [r.doc_id for r in results],
            "n_tokens": [r.n_tokens for r in results],
            "n_windows": [r.n_windows for r in results],
            "n_entities": [len(r.entities) for r in results],
        },
        schema=DOC_STATS_SCHEMA,
    )
    embeddings = None
    if with_vectors:
        embeddings = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, 0), np.float32)
    return entities, doc_stats, embeddings
