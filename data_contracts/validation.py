"""Check tables against their contracts: the Arrow schema exactly, the rows with GX.

:func:`validate_tables` is the one entry point, used by the flow on every batch before it is
written and by ``nerflow validate`` on a whole output. Great Expectations 1.x runs in an
ephemeral context made per call (no project directory, nothing global kept between calls);
it reads pandas, so each view goes Polars -> Arrow -> pandas, without the document text
(see :mod:`data_contracts.views`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from data_contracts.gx import import_gx
from data_contracts.results import CheckResult, TableResult
from data_contracts.schemas import TableContract
from data_contracts.suites import Check, build_suite, checks_for
from data_contracts.views import VIEWS

__all__ = ["schema_check", "run_checks", "validate_tables"]


def schema_check(contract: TableContract, schema: pa.Schema, *, file: bool = False, where: str = "") -> CheckResult:
    """Compare a schema with the contract's: names, order, types and nullability.

    Args:
        contract: The contract.
        schema: The schema found.
        file: Compare with :attr:`TableContract.file_schema` (a Parquet file: no partition
            columns) instead of the full schema.
        where: Names the file or batch in the message.

    Returns:
        A ``schema`` check result whose message lists every difference.
    """
    want = contract.file_schema if file else contract.schema
    problems = []
    found = {f.name: f for f in schema}
    for field in want:
        got = found.get(field.name)
        if got is None:
            problems.append(f"missing column {field.name!r}")
        elif not got.type.equals(field.type):
            problems.append(f"column {field.name!r} is {got.type}, the contract says {field.type}")
        elif got.nullable != field.nullable:
            problems.append(
                f"column {field.name!r} is {'nullable' if got.nullable else 'required'}, the contract says "
                f"{'nullable' if field.nullable else 'required'}"
            )
    extra = [n for n in schema.names if n not in want.names]
    if extra:
        problems.append(f"columns not in the contract: {extra}")
    if not problems and schema.names != want.names:
        problems.append(f"columns out of order: {schema.names}")
    message = "; ".join(problems)
    if message and where:
        message = f"{where}: {message}"
    return CheckResult(
        table=contract.name, check="schema", expectation="arrow_schema", success=not problems, message=message
    )


def _row_positions(values: Sequence[Any]) -> tuple[int, ...]:
    out = []
    for v in values:
        # With unexpected_index_column_names GX returns dicts; positions are all this needs.
        out.append(int(v["index"]) if isinstance(v, dict) else int(v))
    return tuple(sorted(out))


def run_checks(views: Mapping[str, tuple[pl.DataFrame, Sequence[Check]]]) -> dict[str, list[CheckResult]]:
    """Run each table's checks over its view with GX.

    Args:
        views: Per table, its view (a frame whose row ``i`` is the table's row ``i``) and the
            checks to run.

    Returns:
        Per table, one result per check, in the order given.
    """
    gx = import_gx()
    # Deferred with GX itself (seconds to import): see data_contracts.gx.
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        # In memory, no data docs site: nothing is written anywhere.
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        # tqdm bars for every metric would tear through the caller's logs and progress bars.
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(project_config=config, mode="ephemeral")
    source = context.data_sources.add_pandas("nerflow")
    out: dict[str, list[CheckResult]] = {}
    for i, (table, (view, checks)) in enumerate(views.items()):
        if not checks:
            out[table] = []
            continue
        columns = sorted({c for check in checks for c in check.columns})
        frame = view.select(columns).to_pandas()
        asset = source.add_dataframe_asset(f"t{i}")
        batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(build_suite(table, checks), result_format={"result_format": "COMPLETE"})
        by_name = {r.expectation_config.meta["check"]: r for r in result.results}
        results = []
        for check in checks:
            r = by_name[check.name]
            info = r.exception_info or {}
            if info.get("raised_exception"):
                results.append(
                    CheckResult(
                        table=table,
                        check=check.name,
                        expectation=check.expectation,
                        success=False,
                        checked=view.height,
                        message=f"the check could not run: {info.get('exception_message')}",
                    )
                )
                continue
            rows = _row_positions(r.result.get("unexpected_index_list") or [])
            results.append(
                CheckResult(
                    table=table,
                    check=check.name,
                    expectation=check.expectation,
                    success=bool(r.success),
                    checked=int(r.result.get("element_count", view.height) or view.height),
                    failed=int(r.result.get("unexpected_count", len(rows)) or len(rows)),
                    rows=rows,
                )
            )
        out[table] = results
    return out


def validate_tables(
    tables: Mapping[str, pa.Table],
    contracts: Mapping[str, TableContract],
    *,
    labels: Sequence[str] | None = None,
    embedding_dim: int | None = None,
    schema_results: Mapping[str, Sequence[CheckResult]] | None = None,
) -> dict[str, TableResult]:
    """Check tables against their contracts: schema first, then every row check.

    Args:
        tables: Tables by name, with the full contract schema (partition columns included).
            ``entities`` needs ``documents`` beside it and the other way round;
            ``entity_embeddings`` needs ``entities``.
        contracts: The contract of each table in ``tables`` to check (others only serve as
            companions).
        labels: The model's labels (``None``: the label check is skipped).
        embedding_dim: The vector width (``None``: the width check is skipped).
        schema_results: Schema results already found (per file, by ``nerflow validate``);
            when given for a table they replace the whole-table schema check.

    Returns:
        One :class:`TableResult` per contract, in the order of ``contracts``.
    """
    schema = {}
    views: dict[str, tuple[pl.DataFrame, Sequence[Check]]] = {}
    skipped: dict[str, tuple[str, ...]] = {}
    for name, contract in contracts.items():
        table = tables[name]
        given = (schema_results or {}).get(name)
        schema[name] = list(given) if given is not None else [schema_check(contract, table.schema)]
        checks, skipped[name] = checks_for(name, labels=labels, embedding_dim=embedding_dim)
        views[name] = (VIEWS[name](tables), checks)
    found = run_checks(views)
    out = {}
    for name, contract in contracts.items():
        notes = [
            CheckResult(
                table=name,
                check=s,
                expectation="",
                success=True,
                skipped=True,
                message="skipped: the value it needs is unknown",
            )
            for s in skipped[name]
        ]
        out[name] = TableResult(
            table=name,
            version=contract.version,
            rows=tables[name].num_rows,
            checks=tuple(schema[name] + found[name] + notes),
        )
    return out
