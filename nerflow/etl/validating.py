"""Validate a batch's tables against the data contracts before anything is written.

Per batch, in order:

1. Build the tables (:func:`nerflow.etl.tables.build_tables`).
2. Withhold documents whose ``doc_id`` an earlier batch of this run already claimed. The
   first readable record in input order (objects in path order, then line or row) claims an
   id, even if it then fails annotation or the contracts: within a batch normalisation keeps
   the first, across batches the earlier batch was validated, and maybe committed, first.
   That order does not depend on batch sizes or devices, so a re-run decides the same way.
   These are input faults and do not count towards the failure rate.
3. Check ``documents``, ``entities``, ``entity_embeddings`` and ``quarantine`` against their
   contracts (:func:`data_contracts.validation.validate_tables`; labels and vector width come
   from the model).
4. A document with any failing row (its own, one of its entities or vectors) goes to
   quarantine whole: stage ``"validate"``, ``check`` = ``<table>.<check>`` of the first
   failure, the reason naming the row. Withholding whole documents keeps
   ``documents.n_entities`` equal to the entity rows and counts each document once.
5. If more than ``max_failure_rate`` of the batch's documents failed, the batch is rejected
   (:class:`~nerflow.etl.errors.BatchRejectedError`): nothing of it is written and the run
   fails, because output that broken points at the model or the code, not the input.
   Failing rows of ``quarantine`` itself, a schema difference or a check that could not run
   are bugs and fail the run whatever the rate (:class:`ContractViolationError`).
6. Reconcile: documents in (records read) == documents written + quarantined, and
   ``sum(documents.n_entities)`` == entity rows (== vector rows when embeddings are on);
   otherwise :class:`~nerflow.etl.errors.ReconciliationError`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from data_contracts.results import CheckResult, TableResult, combine
from data_contracts.schemas import DOCUMENTS, ENTITIES, QUARANTINE, SEGMENTS, TableContract
from data_contracts.suites import TABLE_CHECKS
from data_contracts.validation import validate_tables
from nerflow.etl.annotating import Annotation
from nerflow.etl.errors import BatchRejectedError, ContractViolationError, ReconciliationError
from nerflow.etl.listing import Batch
from nerflow.etl.normalising import NormalisedBatch
from nerflow.etl.quarantine import VALIDATE, quarantine_rows
from nerflow.etl.tables import BatchTables, RunContext, build_tables, withhold_documents

__all__ = [
    "DUPLICATE_CHECK",
    "ValidateConfig",
    "Reconciliation",
    "BatchValidation",
    "ValidatedBatch",
    "validate_batch",
    "contract_results",
]

DUPLICATE_CHECK = "documents.doc_id_unique_in_run"
"""``quarantine.check`` of a document whose id an earlier batch of the run wrote."""

_DATA_TABLES = ("documents", "entities", "segments", "entity_embeddings")
# Columns a reason never quotes (large): read once per failing row otherwise.
_UNSHOWN = {"documents": ("text", "metadata"), "entities": ("boxes",), "entity_embeddings": ("vector",)}


@dataclass(frozen=True, kw_only=True)
class ValidateConfig:
    """What the contracts need from the run.

    Attributes:
        labels: The model's entity labels (``ModelInfo.labels``); ``None`` skips the label
            check (only for callers without a model).
        embedding_dim: Width of the model's vectors when the run writes embeddings, else 0.
        max_failure_rate: Largest share of a batch's documents that may fail the contracts
            (and be quarantined) before the batch is rejected and the run fails; 0 rejects
            any failure, 1 never rejects.
    """

    labels: tuple[str, ...] | None
    embedding_dim: int = 0
    max_failure_rate: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_failure_rate <= 1.0:
            raise ValueError(f"max_failure_rate must be in [0, 1], got {self.max_failure_rate}")
        if self.embedding_dim < 0:
            raise ValueError(f"embedding_dim must not be negative, got {self.embedding_dim}")
        if self.labels is not None and not self.labels:
            raise ValueError("labels must name at least one label (or be None to skip the label check)")


@dataclass(frozen=True, kw_only=True)
class Reconciliation:
    """A batch's (or run's) accounting of documents and entities.

    Attributes:
        docs_in: Records read (documents and whole objects that could not be read).
        docs_ok: Rows written to ``documents`` with status ``"ok"``.
        docs_empty: Rows written with status ``"empty"``.
        docs_quarantined: Rows written to ``quarantine``.
        entities: Rows written to ``entities``.
        entities_counted: ``sum(documents.n_entities)``.
        vectors: Rows written to ``entity_embeddings`` (``None`` without embeddings).
    """

    docs_in: int
    docs_ok: int
    docs_empty: int
    docs_quarantined: int
    entities: int
    entities_counted: int
    vectors: int | None = None

    @property
    def problems(self) -> list[str]:
        """What does not add up (empty when everything does)."""
        out = []
        if self.docs_in != self.docs_ok + self.docs_empty + self.docs_quarantined:
            out.append(
                f"{self.docs_in} documents in != {self.docs_ok} ok + {self.docs_empty} empty + "
                f"{self.docs_quarantined} quarantined"
            )
        if self.entities != self.entities_counted:
            out.append(f"{self.entities} entity rows != {self.entities_counted} counted in documents.n_entities")
        if self.vectors is not None and self.vectors != self.entities:
            out.append(f"{self.vectors} vectors != {self.entities} entity rows")
        return out

    def __add__(self, other: Reconciliation) -> Reconciliation:
        vectors = None if self.vectors is None and other.vectors is None else (self.vectors or 0) + (other.vectors or 0)
        return Reconciliation(
            docs_in=self.docs_in + other.docs_in,
            docs_ok=self.docs_ok + other.docs_ok,
            docs_empty=self.docs_empty + other.docs_empty,
            docs_quarantined=self.docs_quarantined + other.docs_quarantined,
            entities=self.entities + other.entities,
            entities_counted=self.entities_counted + other.entities_counted,
            vectors=vectors,
        )

    def to_dict(self) -> dict:
        """JSON-ready, with ``ok``."""
        return {**{k: getattr(self, k) for k in self.__dataclass_fields__}, "ok": not self.problems}


@dataclass(frozen=True, kw_only=True)
class BatchValidation:
    """What validating one batch found (small: kept for the whole run).

    Attributes:
        batch_id: The batch.
        results: Per table checked.
        quarantined: Documents withheld per ``<table>.<check>``.
        failed_docs: Documents that failed a contract (duplicates not included).
        checked_docs: Documents the contracts saw (after duplicates were withheld).
        reconciliation: The batch's accounting after withholding.
    """

    batch_id: str
    results: tuple[TableResult, ...]
    quarantined: Mapping[str, int]
    failed_docs: int
    checked_docs: int
    reconciliation: Reconciliation

    @property
    def failure_rate(self) -> float:
        """Share of the checked documents that failed a contract."""
        return self.failed_docs / self.checked_docs if self.checked_docs else 0.0


@dataclass(frozen=True, eq=False)
class ValidatedBatch:
    """A batch ready to commit.

    Attributes:
        tables: Its tables, failing documents moved to quarantine.
        validation: What the contracts found.
        claimed_doc_ids: Ids this batch claimed: its documents that passed normalisation and
            were not claimed before, whether written or quarantined since (later batches
            quarantine records with these ids as duplicates).
        device: Where it was annotated (for the batch report).
        annotate_seconds: Wall time of its annotation.
        spans: Candidate spans of its windows.
        spans_scored: Of those, the spans the model scored (all but those a span filter pruned).
    """

    tables: BatchTables
    validation: BatchValidation
    claimed_doc_ids: frozenset[str] = frozenset()
    device: str = "cpu"
    annotate_seconds: float = 0.0
    spans: int = 0
    spans_scored: int = 0

    @property
    def doc_ids(self) -> frozenset[str]:
        """Ids written to ``documents`` by this batch."""
        return frozenset(self.tables.documents.column("doc_id").to_pylist())


def validate_batch(
    batch: Batch,
    normalised: NormalisedBatch,
    annotation: Annotation,
    run: RunContext,
    config: ValidateConfig,
    *,
    earlier_doc_ids: Set[str] = frozenset(),
) -> ValidatedBatch:
    """Build a batch's tables and hold them to the contracts (see the module docstring).

    Args:
        batch: The batch.
        normalised: Its documents and read/normalise quarantine.
        annotation: Its annotation.
        run: Run id, ingest date, embedding dtype.
        config: Labels, vector width, failure threshold.
        earlier_doc_ids: Ids claimed by earlier batches of this run (their
            :attr:`ValidatedBatch.claimed_doc_ids`).

    Returns:
        The tables to commit and what was found.

    Raises:
        BatchRejectedError: Too many documents failed the contracts.
        ContractViolationError: A schema difference, a failing quarantine row, or a check
            that could not run (bugs, whatever the rate).
        ReconciliationError: The counts do not add up.
    """
    tables = build_tables(batch, normalised, annotation, run)
    quarantined: Counter = Counter()

    duplicates = _earlier_duplicates(tables, earlier_doc_ids)
    claimed = frozenset(normalised.documents.get_column("doc_id").to_list()) - frozenset(
        duplicates.get_column("doc_id").to_list()
    )
    if duplicates.height:
        tables = withhold_documents(tables, duplicates)
        quarantined[DUPLICATE_CHECK] += duplicates.height

    contracts: dict[str, TableContract] = {
        "documents": DOCUMENTS,
        "entities": ENTITIES,
        "segments": SEGMENTS,
        "quarantine": QUARANTINE,
    }
    named = {
        "documents": tables.documents,
        "entities": tables.entities,
        "segments": tables.segments,
        "quarantine": tables.quarantine,
    }
    if tables.embeddings is not None and tables.embeddings_contract is not None:
        contracts["entity_embeddings"] = tables.embeddings_contract
        named["entity_embeddings"] = tables.embeddings
    results = validate_tables(
        named,
        contracts,
        labels=config.labels,
        embedding_dim=config.embedding_dim if "entity_embeddings" in contracts else None,
    )
    _raise_on_bugs(batch.batch_id, results)

    failing = _failing_documents(tables, results)
    checked = tables.documents.num_rows
    if failing.height and failing.height > config.max_failure_rate * checked:
        raise _rejection(batch.batch_id, failing, checked, config.max_failure_rate)
    if failing.height:
        tables = withhold_documents(tables, failing)
        quarantined.update(failing.get_column("check").to_list())

    reconciliation = _reconcile(tables, normalised.docs_in)
    if reconciliation.problems:
        raise ReconciliationError("; ".join(reconciliation.problems), batch_id=batch.batch_id)
    validation = BatchValidation(
        batch_id=batch.batch_id,
        results=tuple(results.values()),
        quarantined=dict(quarantined),
        failed_docs=failing.height,
        checked_docs=checked,
        reconciliation=reconciliation,
    )
    return ValidatedBatch(
        tables=tables,
        validation=validation,
        claimed_doc_ids=claimed,
        device=annotation.device,
        annotate_seconds=annotation.seconds,
        spans=annotation.stats.spans,
        spans_scored=annotation.stats.spans_scored,
    )


def _rejection(batch_id: str, failing: pl.DataFrame, checked: int, limit: float) -> BatchRejectedError:
    counts = Counter(failing.get_column("check").to_list())
    first = failing.row(0, named=True)
    return BatchRejectedError(
        f"{failing.height} of {checked} documents ({failing.height / checked:.0%}) broke the contracts, more than "
        f"max_failure_rate {limit:.0%}; nothing of the batch was written. Failed checks: "
        + ", ".join(f"{k} x{v}" for k, v in counts.most_common())
        + f". First: {first['source_uri']} doc_id={first['doc_id']!r}: {first['reason']}",
        batch_id=batch_id,
    )


def _quarantine_rows(documents: pa.Table, reasons: Sequence[str], checks: Sequence[str]) -> pl.DataFrame:
    docs = pl.from_arrow(documents.select(["source_uri", "doc_id", "record", "text"]))
    assert isinstance(docs, pl.DataFrame)
    return quarantine_rows(
        docs,
        stage=VALIDATE,
        reason=pl.Series(list(reasons), dtype=pl.String),
        check=pl.Series(list(checks), dtype=pl.String),
    )


def _earlier_duplicates(tables: BatchTables, earlier: Set[str]) -> pl.DataFrame:
    ids = tables.documents.column("doc_id").to_pylist()
    rows = [i for i, doc_id in enumerate(ids) if doc_id in earlier]
    picked = tables.documents.take(pa.array(rows, pa.int64()))
    reason = (
        "duplicate doc_id: an earlier batch of this run had a record with the same id; the first record in "
        "input order (objects by path, then line or row) is kept"
    )
    return _quarantine_rows(picked, [reason] * len(rows), [DUPLICATE_CHECK] * len(rows))


def _raise_on_bugs(batch_id: str, results: Mapping[str, TableResult]) -> None:
    for name, result in results.items():
        for check in result.failures():
            if name == "quarantine" or not check.rows:
                detail = check.message or f"{check.failed} rows failed {check.check}"
                raise ContractViolationError(f"batch {batch_id}: {name}.{check.check}: {detail}", table=name)


def _describe(table: str, row: Mapping, check: CheckResult, rule: str) -> str:
    if table == "entities":
        text = row["text"] if len(row["text"] or "") <= 60 else row["text"][:57] + "..."
        what = f"entity [{row['start']}, {row['end']}) {row['label']} {text!r} score {row['score']:.3f}"
    elif table == "documents":
        what = f"document with n_chars={row['n_chars']}, n_entities={row['n_entities']}, status={row['status']!r}"
    elif table == "segments":
        what = f"segment {row['segment']} [{row['start']}, {row['end']}) {row['kind']} page {row['page']}"
    else:
        what = f"vector of entity {row['entity_id']}"
    return f"contract {table}.{check.check}: {rule}; {what}"


def _failing_documents(tables: BatchTables, results: Mapping[str, TableResult]) -> pl.DataFrame:
    rules = {(t, c.name): c.rule for t, checks in TABLE_CHECKS.items() for c in checks}
    data = {
        "documents": tables.documents,
        "entities": tables.entities,
        "segments": tables.segments,
        "entity_embeddings": tables.embeddings,
    }
    first: dict[str, tuple[str, str]] = {}  # doc_id -> (check, reason), first failure in table then check order
    more: Counter = Counter()
    for name in _DATA_TABLES:
        result = results.get(name)
        if result is None or result.success:
            continue
        table = data[name]
        assert table is not None
        by_row = result.first_failure_by_row()
        doc_ids = table.column("doc_id")
        for row, check in sorted(by_row.items()):
            doc_id = doc_ids[row].as_py()
            if doc_id in first:
                more[doc_id] += 1
                continue
            values = {c: table.column(c)[row].as_py() for c in table.column_names if c not in _UNSHOWN.get(name, ())}
            first[doc_id] = (
                f"{name}.{check.check}",
                _describe(name, values, check, rules.get((name, check.check), "")),
            )
    if not first:
        return _quarantine_rows(tables.documents.slice(0, 0), [], [])
    ids = tables.documents.column("doc_id").to_pylist()
    orphans = sorted(set(first) - set(ids))
    if orphans:
        # Rows of a document the batch does not hold cannot be withheld with it: a bug upstream.
        check_name, reason = first[orphans[0]]
        raise ContractViolationError(
            f"rows of {len(orphans)} documents missing from documents, e.g. doc_id={orphans[0]!r}: {reason}",
            table=check_name.split(".")[0],
        )
    rows = [i for i, doc_id in enumerate(ids) if doc_id in first]
    picked = tables.documents.take(pa.array(rows, pa.int64()))
    reasons: list[str] = []
    checks: list[str] = []
    for doc_id in picked.column("doc_id").to_pylist():
        check_name, reason = first[doc_id]
        extra = f" (and {more[doc_id]} more failing rows of this document)" if more[doc_id] else ""
        reasons.append(reason + extra)
        checks.append(check_name)
    return _quarantine_rows(picked, reasons, checks)


def _reconcile(tables: BatchTables, docs_in: int) -> Reconciliation:
    status = Counter(tables.documents.column("status").to_pylist())
    return Reconciliation(
        docs_in=docs_in,
        docs_ok=status.get("ok", 0),
        docs_empty=status.get("empty", 0),
        docs_quarantined=tables.quarantine.num_rows,
        entities=tables.entities.num_rows,
        entities_counted=sum(tables.documents.column("n_entities").to_pylist()),
        vectors=tables.embeddings.num_rows if tables.embeddings is not None else None,
    )


def contract_results(
    validations: Sequence[BatchValidation], config: ValidateConfig, *, versions: Mapping[str, int]
) -> dict:
    """The run's contract results, as ``_manifest/runs.contract_results`` keeps them (JSON).

    Args:
        validations: Every validated batch of the run, in order.
        config: The run's validation settings.
        versions: Contract version per table written.

    Returns:
        ``{"versions", "max_failure_rate", "batches", "tables", "quarantined", "reconciliation"}``:
        ``tables`` per table the rows checked and rows failed per check (see
        :func:`data_contracts.results.combine`), ``quarantined`` the documents withheld per
        ``<table>.<check>``, ``reconciliation`` the run's accounting with ``ok``.
    """
    quarantined: Counter = Counter()
    total = Reconciliation(docs_in=0, docs_ok=0, docs_empty=0, docs_quarantined=0, entities=0, entities_counted=0)
    for v in validations:
        quarantined.update(v.quarantined)
        total = total + v.reconciliation
    return {
        "versions": dict(versions),
        "max_failure_rate": config.max_failure_rate,
        "labels": list(config.labels) if config.labels is not None else None,
        "batches": len(validations),
        "tables": combine(r for v in validations for r in v.results),
        "quarantined": dict(sorted(quarantined.items())),
        "reconciliation": total.to_dict(),
    }
