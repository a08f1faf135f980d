"""The row-level rules of every table, declared once, run as Great Expectations 1.x suites.

A :class:`Check` names one rule of one table (``entities.end_within_document``), the GX
expectation that enforces it and that expectation's arguments. Declaring them as data keeps
this module free of the GX import (about 2 s), lets ``docs/tables.md`` list them, and gives
every failure a stable name for ``quarantine.check`` and the run's contract results.

Some rules span two tables (an entity's offsets against its document's text, a document's
``n_entities`` against the entity rows): :mod:`data_contracts.views` first adds derived
columns, named with a leading underscore, computed with Polars from the other table of the
same batch (or output); the expectations then read those columns. Types, column names and
nullability are not GX's job: GX sees pandas dtypes, the Arrow schema check in
:mod:`data_contracts.validation` compares the exact Arrow types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from data_contracts.gx import import_gx
from data_contracts.schemas import DOC_STATUSES, QUARANTINE_STAGES, RUN_STATUSES

__all__ = ["Check", "MODEL_LABELS", "MODEL_DIM", "TABLE_CHECKS", "checks_for", "build_suite", "lang_pattern"]


class _Placeholder:
    """A value only known at run time (the model's labels, its vector width)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


MODEL_LABELS = _Placeholder("the model's labels")
"""Stands for the label set of the model that wrote the rows (``ModelInfo.labels``)."""

MODEL_DIM = _Placeholder("the model's vector width")
"""Stands for ``[embedding_dim]`` of the run (``ModelInfo.embedding_dim``)."""

lang_pattern = r"^[a-z]{2,3}(?:-[a-z0-9]{1,8})*$"
"""A language tag as ``documents.lang`` holds it (also a path-safe partition value)."""


@dataclass(frozen=True)
class Check:
    """One rule of one table.

    Attributes:
        name: Stable id within the table (``end_within_document``); quarantine rows name
            ``<table>.<name>``.
        expectation: The GX expectation class (``ExpectColumnValuesToBeBetween``).
        kwargs: Its arguments; :data:`MODEL_LABELS` / :data:`MODEL_DIM` are filled in when
            the suite is built.
        rule: The rule in one line, for reasons and documentation.
    """

    name: str
    expectation: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    rule: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns the expectation reads."""
        k = self.kwargs
        cols = [k[key] for key in ("column", "column_A", "column_B") if key in k]
        cols += list(k.get("column_list", ()))
        return tuple(dict.fromkeys(cols))

    def needs(self) -> tuple[_Placeholder, ...]:
        """The run-time values the check needs."""
        return tuple(v for v in self.kwargs.values() if isinstance(v, _Placeholder))


def _not_null(*columns: str) -> list[Check]:
    return [
        Check(f"{c}_not_null", "ExpectColumnValuesToNotBeNull", {"column": c}, f"{c} is never null (a key)")
        for c in columns
    ]


def _true(name: str, column: str, rule: str) -> Check:
    # A boolean derived column that must hold everywhere; views never leave it null.
    return Check(name, "ExpectColumnValuesToBeInSet", {"column": column, "value_set": [True]}, rule)


def _at_least_zero(*columns: str) -> list[Check]:
    return [
        Check(f"{c}_not_negative", "ExpectColumnValuesToBeBetween", {"column": c, "min_value": 0}, f"{c} >= 0")
        for c in columns
    ]


def _span_of_document(what: str) -> list[Check]:
    """The checks of a character span ``[start, end)`` of a document's text (an entity's, a
    segment's): non-empty, inside a document of the same run."""
    return [
        Check("start_not_negative", "ExpectColumnValuesToBeBetween", {"column": "start", "min_value": 0}, "0 <= start"),
        Check(
            "start_before_end",
            "ExpectColumnPairValuesAToBeGreaterThanB",
            {"column_A": "end", "column_B": "start", "or_equal": False},
            "start < end",
        ),
        Check(
            "document_present",
            "ExpectColumnValuesToNotBeNull",
            {"column": "_doc_n_chars"},
            f"the {what}'s document is in documents (same run)",
        ),
        Check(
            "end_within_document",
            "ExpectColumnPairValuesAToBeGreaterThanB",
            {
                "column_A": "_doc_n_chars",
                "column_B": "end",
                "or_equal": True,
                "ignore_row_if": "either_value_is_missing",
            },
            "end <= the document's n_chars",
        ),
    ]


_ENTITIES = [
    *_not_null("doc_id", "entity_id", "run_id", "model_id", "source_uri"),
    Check(
        "entity_id_unique",
        "ExpectCompoundColumnsToBeUnique",
        {"column_list": ["run_id", "entity_id"]},
        "entity_id is unique within a run",
    ),
    *_span_of_document("entity"),
    Check(
        "text_is_document_slice",
        "ExpectColumnPairValuesToBeEqual",
        {"column_A": "text", "column_B": "_doc_slice", "ignore_row_if": "either_value_is_missing"},
        "text == documents.text[start:end] (the normalised text)",
    ),
    Check(
        "label_known",
        "ExpectColumnValuesToBeInSet",
        {"column": "label", "value_set": MODEL_LABELS},
        "label is one of the model's labels",
    ),
    Check("score_not_null", "ExpectColumnValuesToNotBeNull", {"column": "score"}, "score is a number (not NaN)"),
    Check(
        "score_in_unit_interval",
        "ExpectColumnValuesToBeBetween",
        {"column": "score", "min_value": 0.0, "max_value": 1.0},
        "0 <= score <= 1",
    ),
    Check(
        "no_overlap",
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {
            "column_A": "start",
            "column_B": "_prev_max_end",
            "or_equal": True,
            "ignore_row_if": "either_value_is_missing",
        },
        "no two entities of a document overlap (flat NER): start >= the end of every earlier entity",
    ),
    _true("page_in_document", "_page_fits", "page is null or within the document's page_count"),
    _true(
        "boxes_inside_page",
        "_boxes_inside_page",
        "every box lies inside its page (segments' page_width and page_height), left <= right, bottom <= top",
    ),
]

_SEGMENTS = [
    *_not_null("doc_id", "run_id", "source_uri"),
    Check(
        "segment_unique",
        "ExpectCompoundColumnsToBeUnique",
        {"column_list": ["run_id", "doc_id", "segment"]},
        "a segment number appears once per document and run",
    ),
    *_span_of_document("segment"),
    Check(
        "in_order_without_overlap",
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {"column_A": "start", "column_B": "_prev_end", "or_equal": True, "ignore_row_if": "either_value_is_missing"},
        "a document's segments are in text order and do not overlap",
    ),
    _true("page_in_document", "_page_fits", "page is null or within the document's page_count"),
]

_DOCUMENTS = [
    *_not_null("doc_id", "run_id", "source_uri", "text_sha256", "lang"),
    Check(
        "doc_id_unique_in_run",
        "ExpectCompoundColumnsToBeUnique",
        {"column_list": ["run_id", "doc_id"]},
        "doc_id is unique within a run",
    ),
    Check(
        "status_known",
        "ExpectColumnValuesToBeInSet",
        {"column": "status", "value_set": list(DOC_STATUSES)},
        "status is " + " or ".join(DOC_STATUSES),
    ),
    Check(
        "n_chars_is_text_length",
        "ExpectColumnPairValuesToBeEqual",
        {"column_A": "n_chars", "column_B": "_text_chars"},
        "n_chars == the length of text in characters",
    ),
    _true("empty_iff_no_text", "_status_fits_text", "status is 'empty' exactly when text is empty"),
    Check(
        "text_sha256_matches",
        "ExpectColumnPairValuesToBeEqual",
        {"column_A": "text_sha256", "column_B": "_text_sha256"},
        "text_sha256 == sha256(text)",
    ),
    Check(
        "n_entities_matches_entities",
        "ExpectColumnPairValuesToBeEqual",
        {"column_A": "n_entities", "column_B": "_entity_rows"},
        "n_entities == the document's rows in entities",
    ),
    *_at_least_zero("n_tokens", "n_windows"),
    Check(
        "lang_is_a_tag",
        "ExpectColumnValuesToMatchRegex",
        {"column": "lang", "regex": lang_pattern},
        "lang is a lower-case language tag ('und' when unknown)",
    ),
]

_EMBEDDINGS = [
    *_not_null("entity_id", "doc_id", "run_id"),
    Check(
        "entity_id_unique",
        "ExpectCompoundColumnsToBeUnique",
        {"column_list": ["run_id", "entity_id"]},
        "one vector per entity and run",
    ),
    _true("entity_present", "_entity_present", "the vector's entity is in entities (same run and document)"),
    Check(
        "width_is_model_dim",
        "ExpectColumnValuesToBeInSet",
        {"column": "_vector_len", "value_set": MODEL_DIM},
        "the vector has the model's width",
    ),
    _true("values_finite", "_vector_finite", "every value is finite (no NaN or infinity)"),
]

_QUARANTINE = [
    *_not_null("source_uri", "stage", "reason", "run_id"),
    Check(
        "stage_known",
        "ExpectColumnValuesToBeInSet",
        {"column": "stage", "value_set": list(QUARANTINE_STAGES)},
        "stage is one of " + ", ".join(QUARANTINE_STAGES),
    ),
    Check(
        "record_positive",
        "ExpectColumnValuesToBeBetween",
        {"column": "record", "min_value": 1},
        "record (line or row) counts from 1",
    ),
    _true("check_named", "_check_fits_stage", "check is set exactly for stage 'validate'"),
]

_MANIFEST_OBJECTS = [
    *_not_null("source_uri", "batch_id", "run_id", "object_version"),
    Check(
        "object_once_per_batch",
        "ExpectCompoundColumnsToBeUnique",
        {"column_list": ["batch_id", "source_uri"]},
        "an object appears once in its batch",
    ),
    *_at_least_zero("size", "docs_in", "docs_ok", "docs_empty", "docs_quarantined", "entities"),
    Check(
        "docs_add_up",
        "ExpectColumnPairValuesToBeEqual",
        {"column_A": "docs_in", "column_B": "_docs_sum"},
        "docs_in == docs_ok + docs_empty + docs_quarantined",
    ),
]

_MANIFEST_RUNS = [
    *_not_null("run_id", "status", "model_id"),
    Check("run_id_unique", "ExpectColumnValuesToBeUnique", {"column": "run_id"}, "one record per run"),
    Check(
        "status_known",
        "ExpectColumnValuesToBeInSet",
        {"column": "status", "value_set": list(RUN_STATUSES)},
        "status is " + " or ".join(RUN_STATUSES),
    ),
    Check(
        "docs_add_up",
        "ExpectColumnPairValuesToBeEqual",
        {"column_A": "docs_in", "column_B": "_docs_sum"},
        "docs_in == docs_ok + docs_empty + docs_quarantined",
    ),
    Check(
        "finished_after_start",
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {"column_A": "finished_at", "column_B": "started_at", "or_equal": True},
        "finished_at >= started_at",
    ),
    *_at_least_zero("embedding_dim", "batches", "entities"),
    _true("contract_results_json", "_contract_results_ok", "contract_results is a JSON object"),
]

TABLE_CHECKS: dict[str, tuple[Check, ...]] = {
    "documents": tuple(_DOCUMENTS),
    "entities": tuple(_ENTITIES),
    "segments": tuple(_SEGMENTS),
    "entity_embeddings": tuple(_EMBEDDINGS),
    "quarantine": tuple(_QUARANTINE),
    "_manifest/objects": tuple(_MANIFEST_OBJECTS),
    "_manifest/runs": tuple(_MANIFEST_RUNS),
}
"""Every table's checks, in the order failures are reported (the first failing check of a
document names its quarantine reason)."""


def checks_for(
    table: str, *, labels: Sequence[str] | None = None, embedding_dim: int | None = None
) -> tuple[tuple[Check, ...], tuple[str, ...]]:
    """The checks of ``table`` with run-time values filled in.

    Args:
        table: A key of :data:`TABLE_CHECKS`.
        labels: The model's labels; ``None`` leaves out ``label_known``.
        embedding_dim: The vectors' expected width; ``None`` leaves out ``width_is_model_dim``.

    Returns:
        ``(checks, skipped)``: the runnable checks, and the names of those left out for want
        of a value.
    """
    if table not in TABLE_CHECKS:
        raise ValueError(f"no checks for table {table!r}; tables: {sorted(TABLE_CHECKS)}")
    values = {
        id(MODEL_LABELS): None if labels is None else sorted(labels),
        id(MODEL_DIM): None if embedding_dim is None else [int(embedding_dim)],
    }
    out, skipped = [], []
    for check in TABLE_CHECKS[table]:
        kwargs = dict(check.kwargs)
        missing = False
        for key, value in kwargs.items():
            if isinstance(value, _Placeholder):
                kwargs[key] = values[id(value)]
                missing = missing or kwargs[key] is None
        if missing:
            skipped.append(check.name)
        else:
            out.append(Check(check.name, check.expectation, kwargs, check.rule))
    return tuple(out), tuple(skipped)


def build_suite(table: str, checks: Sequence[Check]) -> Any:
    """A ``gx.ExpectationSuite`` of ``checks`` (each expectation's ``meta["check"]`` is its name).

    Imports Great Expectations (about 2 s the first time in a process).
    """
    gx = import_gx()
    suite = gx.ExpectationSuite(name=f"nerflow.{table}")
    for check in checks:
        expectation_class = getattr(gx.expectations, check.expectation)
        suite.add_expectation(expectation_class(**check.kwargs, meta={"check": check.name}))
    return suite
