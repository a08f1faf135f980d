"""Validation views: a table's rows plus derived columns computed from the other tables.

The GX suites of :mod:`data_contracts.suites` read one frame each; rules that span tables
read derived columns (leading underscore) added here with Polars. A view has exactly the rows
of its table in the same order, so row ``i`` of a failure report is row ``i`` of the table.
Rows are matched across tables by ``(run_id, doc_id)``: ``doc_id`` is unique within a run,
not across runs.

Memory: texts are never joined onto entity rows (a 20 MB document with a thousand entities
would be copied a thousand times); slices are cut from one Python string per document.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "VIEWS",
    "entities_view",
    "documents_view",
    "segments_view",
    "embeddings_view",
    "quarantine_view",
    "objects_view",
    "runs_view",
]

_KEY = ["run_id", "doc_id"]


def _frame(table: pa.Table | pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    if isinstance(table, pl.DataFrame):
        return table.select(columns)
    frame = pl.from_arrow(table.select(columns))
    assert isinstance(frame, pl.DataFrame)
    return frame


def entities_view(entities: pa.Table, documents: pa.Table, segments: pa.Table | None = None) -> pl.DataFrame:
    """Entity rows with ``_doc_n_chars``, ``_doc_slice``, ``_prev_max_end``, ``_page_fits``
    and ``_boxes_inside_page``.

    Args:
        entities: ``entities`` rows (at least doc_id, entity_id, start, end, text, label,
            score, model_id, run_id, source_uri).
        documents: ``documents`` rows of the same run(s) (run_id, doc_id, n_chars, text).

    Returns:
        The entity rows, in order, plus: ``_doc_n_chars`` (Int64, null when the document is
        missing), ``_doc_slice`` (the document's text at ``[start, end)``; null when the
        document is missing or the offsets are not a span inside it) and ``_prev_max_end``
        (the largest ``end`` among the document's entities that start earlier; null for the
        first); ``_page_fits`` (the page is null, or within the document's ``page_count``)
        and ``_boxes_inside_page`` (every box lies on a page of the document's segments,
        inside its width and height). Rows written before entities had pages (v1) pass both.
    """
    ents = _frame(
        entities, ["doc_id", "entity_id", "start", "end", "text", "label", "score", "model_id", "run_id", "source_uri"]
    )
    docs = _frame(documents, ["run_id", "doc_id", "n_chars"]).unique(_KEY, keep="first", maintain_order=True)
    out = ents.with_row_index("_row").join(
        docs.rename({"n_chars": "_doc_n_chars"}).with_columns(pl.col("_doc_n_chars").cast(pl.Int64)),
        on=_KEY,
        how="left",
        maintain_order="left",
    )
    out = out.with_columns(_doc_slice=pl.Series(_slices(out, documents), dtype=pl.String))
    prev = (
        out.select("_row", *_KEY, "start", "end")
        .sort([*_KEY, "start", "end"])
        .with_columns(_prev_max_end=pl.col("end").cast(pl.Int64).cum_max().shift(1).over(_KEY))
        .select("_row", "_prev_max_end")
    )
    out = out.join(prev, on="_row", how="left", maintain_order="left").drop("_row")
    return out.with_columns(
        _page_fits=pl.Series(_pages_fit(entities, documents), dtype=pl.Boolean),
        _boxes_inside_page=pl.Series(_boxes_inside(entities, segments), dtype=pl.Boolean),
    )


# PDF points: pdfium's character boxes of a glyph drawn at the page edge may reach past it by
# a rounding error.
_BOX_TOLERANCE = 0.5


def _pages_fit(entities: pa.Table, documents: pa.Table) -> list[bool]:
    if "page" not in entities.column_names:
        return [True] * entities.num_rows
    pages = _frame(entities, [*_KEY, "page"])
    if "page_count" not in documents.column_names:
        return pages.get_column("page").is_null().to_list()
    counts = _frame(documents, [*_KEY, "page_count"]).unique(_KEY, keep="first", maintain_order=True)
    joined = pages.join(counts, on=_KEY, how="left", maintain_order="left")
    fits = pl.col("page").is_null() | ((pl.col("page") >= 1) & (pl.col("page") <= pl.col("page_count")))
    return joined.select(fits.fill_null(False)).to_series().to_list()


def _boxes_inside(entities: pa.Table, segments: pa.Table | None) -> list[bool]:
    if "boxes" not in entities.column_names:
        return [True] * entities.num_rows
    boxes = entities.column("boxes").to_pylist()
    if not any(boxes):
        return [True] * entities.num_rows
    sizes: dict[tuple[str, str, int], tuple[float, float]] = {}
    if segments is not None and segments.num_rows:
        frame = _frame(segments, [*_KEY, "page", "page_width", "page_height"]).drop_nulls()
        for run_id, doc_id, page, width, height in frame.unique([*_KEY, "page"]).iter_rows():
            sizes[(run_id, doc_id, page)] = (width, height)
    out = []
    keys = _frame(entities, _KEY).iter_rows()
    for (run_id, doc_id), entity_boxes in zip(keys, boxes):
        if entity_boxes is None:
            out.append(True)
            continue
        ok = bool(entity_boxes)
        for box in entity_boxes:
            size = sizes.get((run_id, doc_id, box["page"]))
            if size is None:
                ok = False
                break
            width, height = size
            t = _BOX_TOLERANCE
            if not (-t <= box["left"] <= box["right"] <= width + t and -t <= box["bottom"] <= box["top"] <= height + t):
                ok = False
                break
        out.append(ok)
    return out


def segments_view(segments: pa.Table, documents: pa.Table) -> pl.DataFrame:
    """Segment rows with ``_doc_n_chars``, ``_doc_page_count``, ``_page_fits`` and
    ``_prev_end`` (the end of the document's segment before, null for the first)."""
    segs = _frame(segments, [*_KEY, "segment", "start", "end", "kind", "page", "source_uri"])
    docs = _frame(documents, [*_KEY, "n_chars", "page_count"]).unique(_KEY, keep="first", maintain_order=True)
    out = segs.join(
        docs.rename({"n_chars": "_doc_n_chars", "page_count": "_doc_page_count"}).with_columns(
            pl.col("_doc_n_chars").cast(pl.Int64), pl.col("_doc_page_count").cast(pl.Int64)
        ),
        on=_KEY,
        how="left",
        maintain_order="left",
    )
    fits = pl.col("page").is_null() | ((pl.col("page") >= 1) & (pl.col("page") <= pl.col("_doc_page_count")))
    prev = pl.col("end").cast(pl.Int64).shift(1).over(_KEY, order_by="segment")
    return out.with_columns(_page_fits=fits.fill_null(False), _prev_end=prev)


def _slices(ents: pl.DataFrame, documents: pa.Table) -> list[str | None]:
    wanted = set(zip(ents.get_column("run_id").to_list(), ents.get_column("doc_id").to_list()))
    if not wanted:
        return []
    docs = documents.select(["run_id", "doc_id", "text"])
    texts: dict[tuple[str, str], str] = {}
    # One Python string per document that has entities (slicing a str is O(slice) for any script).
    for batch in docs.to_batches(max_chunksize=256):
        for run_id, doc_id, text in zip(
            batch.column(0).to_pylist(), batch.column(1).to_pylist(), batch.column(2).to_pylist()
        ):
            if (run_id, doc_id) in wanted and (run_id, doc_id) not in texts and text is not None:
                texts[(run_id, doc_id)] = text
    out: list[str | None] = []
    for run_id, doc_id, start, end in ents.select(*_KEY, "start", "end").iter_rows():
        text = texts.get((run_id, doc_id))
        if text is not None and start is not None and end is not None and 0 <= start < end <= len(text):
            out.append(text[start:end])
        else:
            out.append(None)
    return out


def documents_view(documents: pa.Table, entities: pa.Table) -> pl.DataFrame:
    """Document rows (without ``text``) with ``_text_chars``, ``_status_fits_text``,
    ``_text_sha256`` and ``_entity_rows`` (the document's rows in ``entities``)."""
    docs = pl.from_arrow(documents.drop_columns([c for c in ("text", "metadata") if c in documents.column_names]))
    assert isinstance(docs, pl.DataFrame)
    text = documents.column("text")
    chars = pl.Series(pc.utf8_length(text).to_pylist(), dtype=pl.Int64)
    counts = _frame(entities, _KEY).group_by(_KEY).agg(_entity_rows=pl.len())
    return (
        docs.with_columns(_text_chars=chars, _text_sha256=pl.Series(_sha256s(text), dtype=pl.String))
        .with_columns(
            _status_fits_text=((pl.col("status") == "empty") == (pl.col("_text_chars") == 0)).fill_null(False)
        )
        .join(counts, on=_KEY, how="left", maintain_order="left")
        .with_columns(pl.col("_entity_rows").fill_null(0).cast(pl.Int64))
    )


def _sha256s(column: pa.ChunkedArray) -> list[str | None]:
    # Hashes the UTF-8 buffers as stored: no Python string of a large document is built.
    return [
        hashlib.sha256(value.as_buffer() or b"").hexdigest() if value.is_valid else None
        for chunk in column.chunks
        for value in chunk
    ]


def embeddings_view(embeddings: pa.Table, entities: pa.Table) -> pl.DataFrame:
    """Embedding rows (without the vector) with ``_entity_present``, ``_vector_len`` and
    ``_vector_finite``."""
    rows = _frame(embeddings, ["entity_id", "doc_id", "model_id", "run_id", "source_uri"])
    known = _frame(entities, ["run_id", "doc_id", "entity_id"]).unique().with_columns(_entity_present=pl.lit(True))
    vector = embeddings.column("vector")
    if isinstance(vector.type, pa.FixedSizeListType):
        # One width for the table: check finiteness on a [rows, width] array, no Python loop.
        width = vector.type.list_size
        flat = vector.combine_chunks().flatten() if embeddings.num_rows else pa.array([], pa.float32())
        values = flat.cast(pa.float32()).to_numpy(zero_copy_only=False)
        finite = (
            np.isfinite(values.reshape(embeddings.num_rows, width)).all(axis=1)
            if width
            else np.ones(embeddings.num_rows, bool)
        )
        lengths = pl.Series(np.full(embeddings.num_rows, width, np.int64), dtype=pl.Int64)
        finite_col = pl.Series(finite, dtype=pl.Boolean)
    else:
        # Variable lists (files of models of several widths, combined by ``nerflow validate``).
        lists = pl.from_arrow(vector.cast(pa.list_(pa.float32())))
        assert isinstance(lists, pl.Series)
        lengths = lists.list.len().cast(pl.Int64).fill_null(0)
        finite_col = lists.list.eval(pl.element().is_finite()).list.all().fill_null(False)
    return (
        rows.with_columns(_vector_len=lengths.alias("_vector_len"), _vector_finite=finite_col.alias("_vector_finite"))
        .join(known, on=["run_id", "doc_id", "entity_id"], how="left", maintain_order="left")
        .with_columns(pl.col("_entity_present").fill_null(False))
    )


def quarantine_view(quarantine: pa.Table) -> pl.DataFrame:
    """Quarantine rows with ``_check_fits_stage``."""
    q = _frame(quarantine, ["source_uri", "doc_id", "record", "stage", "reason", "check", "run_id"])
    return q.with_columns(
        _check_fits_stage=((pl.col("stage") == "validate") == pl.col("check").is_not_null()).fill_null(False)
    )


def objects_view(objects: pa.Table) -> pl.DataFrame:
    """Manifest object rows with ``_docs_sum`` (docs_ok + docs_empty + docs_quarantined)."""
    frame = pl.from_arrow(objects.drop_columns([c for c in ("files",) if c in objects.column_names]))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(_docs_sum=pl.col("docs_ok") + pl.col("docs_empty") + pl.col("docs_quarantined"))


def runs_view(runs: pa.Table) -> pl.DataFrame:
    """Run records (scalar columns) with ``_docs_sum`` and ``_contract_results_ok``."""
    keep = [f.name for f in runs.schema if not pa.types.is_list(f.type) and not pa.types.is_map(f.type)]
    frame = pl.from_arrow(runs.select(keep))
    assert isinstance(frame, pl.DataFrame)
    ok = [_is_json_object(v) for v in frame.get_column("contract_results").to_list()]
    return frame.with_columns(
        # As epoch microseconds: GX's pandas comparisons of tz-aware datetimes are deprecated.
        pl.col("started_at", "finished_at").dt.epoch("us"),
        _docs_sum=pl.col("docs_ok") + pl.col("docs_empty") + pl.col("docs_quarantined"),
        _contract_results_ok=pl.Series(ok, dtype=pl.Boolean),
    )


def _is_json_object(value: str | None) -> bool:
    try:
        return isinstance(json.loads(value), dict) if value is not None else False
    except ValueError:
        return False


VIEWS: dict[str, Callable[[Mapping[str, pa.Table]], pl.DataFrame]] = {
    "documents": lambda t: documents_view(t["documents"], t["entities"]),
    "entities": lambda t: entities_view(t["entities"], t["documents"], t.get("segments")),
    "segments": lambda t: segments_view(t["segments"], t["documents"]),
    "entity_embeddings": lambda t: embeddings_view(t["entity_embeddings"], t["entities"]),
    "quarantine": lambda t: quarantine_view(t["quarantine"]),
    "_manifest/objects": lambda t: objects_view(t["_manifest/objects"]),
    "_manifest/runs": lambda t: runs_view(t["_manifest/runs"]),
}
"""How to build each table's view from the tables of a batch or output, by table name."""
