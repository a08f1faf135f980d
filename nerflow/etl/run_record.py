"""A run's ``_manifest/runs`` row, built from the columns of its contract.

The contract (:data:`data_contracts.schemas.MANIFEST_RUNS`) names the columns; a column takes
the :class:`~nerflow.etl.report.RunSummary` attribute of its name unless the caller gives it.
A column added to the contract without a value to fill it is an error here, not a null in
the warehouse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from data_contracts.schemas import MANIFEST_RUNS
from nerflow.etl.report import RunSummary

__all__ = ["run_record"]


def run_record(summary: RunSummary, **facts: Any) -> dict[str, Any]:
    """One row of ``_manifest/runs``: each column from ``facts`` when given there, else the
    summary's attribute of that name.

    Raises:
        ValueError: A column has no value, or a fact names no column.
    """
    columns = MANIFEST_RUNS.schema
    unknown = sorted(set(facts) - set(columns.names))
    missing = [c.name for c in columns if c.name not in facts and not hasattr(summary, c.name)]
    if unknown or missing:
        raise ValueError(f"run record: no column for {unknown}, no value for {missing}")
    return {c.name: _as_arrow(facts[c.name] if c.name in facts else getattr(summary, c.name), c.type) for c in columns}


def _as_arrow(value: Any, type_: pa.DataType) -> Any:
    # The summary keeps counts as dicts and devices as a tuple; Arrow takes maps as pairs.
    if pa.types.is_map(type_) and isinstance(value, Mapping):
        return list(value.items())
    if pa.types.is_list(type_) and isinstance(value, tuple):
        return list(value)
    return value
