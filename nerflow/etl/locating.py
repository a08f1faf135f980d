"""Where each entity sits in its source file: its page, and for PDFs its boxes.

Readers of files record segments (``reading.SEGMENT_SCHEMA``): which part of the text came
from which page and block, and for a PDF every character's box. An entity takes the page of
the segment it starts in, and one box per text line it covers
(:func:`nerflow.etl.extraction.pdf.entity_boxes`), so that a consumer can highlight it in the
original file. Entities of documents without segments (JSONL, Parquet) get nulls.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

import numpy as np
import polars as pl
import pyarrow as pa

from data_contracts.schemas import ENTITIES
from nerflow.etl.extraction import Segment
from nerflow.etl.extraction.pdf import entity_boxes

__all__ = ["locate_entities"]

_BOXES_TYPE = ENTITIES.schema.field("boxes").type


def locate_entities(entities: pa.Table, segments: pl.DataFrame) -> pa.Table:
    """``entities`` (``doc_id``, ``start``, ``end``, …) with ``page`` and ``boxes`` appended."""
    n = entities.num_rows
    pages: list[int | None] = [None] * n
    boxes: list[list[dict[str, float | int]] | None] = [None] * n
    located = segments.filter(pl.col("page").is_not_null())
    if n and located.height:
        by_doc = _segments_by_doc(located)
        doc_ids = entities.column("doc_id").to_pylist()
        starts = entities.column("start").to_pylist()
        ends = entities.column("end").to_pylist()
        for i, (doc_id, start, end) in enumerate(zip(doc_ids, starts, ends)):
            doc = by_doc.get(doc_id)
            if doc is None:
                continue
            at = bisect.bisect_right(doc.starts, start) - 1
            if at >= 0 and start < doc.segments[at].end:
                pages[i] = doc.segments[at].page
            found = entity_boxes(doc.segments, start, end)
            if found:
                boxes[i] = [
                    {"page": p, "left": left, "bottom": bottom, "right": right, "top": top}
                    for p, left, bottom, right, top in found
                ]
    return entities.append_column("page", pa.array(pages, pa.int32())).append_column(
        "boxes", pa.array(boxes, _BOXES_TYPE)
    )


class _DocSegments:
    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments
        self.starts = [s.start for s in segments]


def _segments_by_doc(frame: pl.DataFrame) -> dict[str, _DocSegments]:
    grouped: dict[str, list[Segment]] = defaultdict(list)
    for row in frame.sort("doc_id", "start").iter_rows(named=True):
        chars = row["char_boxes"]
        grouped[row["doc_id"]].append(
            Segment(
                start=row["start"],
                end=row["end"],
                kind=row["kind"],
                page=row["page"],
                char_boxes=np.asarray(chars, dtype=np.float32).reshape(-1, 4) if chars is not None else None,
            )
        )
    return {doc_id: _DocSegments(segs) for doc_id, segs in grouped.items()}
