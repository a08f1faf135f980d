"""Check an output that landed against the data contracts (``nerflow validate OUTPUT``).

For a consumer who wants to know that what they ingest is what the contracts promise. Per
table, every Parquet file is read and checked on its own first: its ``nerflow.table`` and
``nerflow.schema_version`` stamp, its Arrow schema against that version's, its partition
directories. Files of the current version are then combined (partition columns restored
from the paths) and checked row by row with the same GX suites the flow runs on every batch,
across the whole output: ``(run_id, doc_id)`` joins documents, entities and vectors. Files of
an older version are schema-checked and counted, their rows are not (the row rules are the
current version's).

The label set and vector width come from the run records (``_manifest/runs`` v2:
``model_labels``, ``embedding_dim``); when a run has no record (killed before the end) the
check is skipped and the report says so. Finally the output reconciles against its manifest,
per run: the records read that ``_manifest/objects`` counts equal the ``documents`` plus
``quarantine`` rows (older versions' rows included), the entity counts match, every data file
belongs to a committed batch (files of a batch being written are noted), every file the
manifest names exists, and no object is committed by two batches. Rows are those of the
files the manifest names, less the objects a retraction under way is removing.

Everything is read into memory, table by table, document text included: for outputs larger
than memory, check partitions (a sub-directory layout of the same shape) one at a time.
"""

from __future__ import annotations

import io
import json
import posixpath
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from data_contracts.results import CheckResult, TableResult
from data_contracts.schemas import CONTRACTS, EMBEDDINGS_VERSION, TableContract, contract_version, entity_embeddings
from data_contracts.suites import TABLE_CHECKS
from data_contracts.validation import schema_check, validate_tables
from nerflow import storage
from nerflow.etl import manifest
from nerflow.etl.errors import StorageError

__all__ = ["TableFiles", "OutputReport", "verify_output", "render_report", "TABLE_ORDER"]

TABLE_ORDER = (
    "documents",
    "entities",
    "segments",
    "entity_embeddings",
    "quarantine",
    "_manifest/objects",
    "_manifest/runs",
)
_EXAMPLES = 3
# Columns that name a row in a report, per table (the first present ones are shown).
_ROW_KEYS = ("doc_id", "entity_id", "start", "end", "label", "score", "run_id", "source_uri", "record", "stage")


@dataclass
class TableFiles:
    """What was read of one table.

    Attributes:
        name: Table name.
        contract: The current contract (embeddings: at the width found).
        files: Files of the current version, relative to the output root, in read order.
        rows_per_file: Rows of each of ``files``.
        table: Their rows combined (full schema), or an empty table.
        schema_results: One ``schema`` result per file that failed, or one passing result.
        older: Files per older version (schema-checked only).
        older_rows: The older files' rows, in the columns the reconciliation counts.
        uncommitted: Files no committed batch names (schema-checked, their rows left out).
    """

    name: str
    contract: TableContract
    files: list[str] = field(default_factory=list)
    rows_per_file: list[int] = field(default_factory=list)
    table: pa.Table | None = None
    schema_results: list[CheckResult] = field(default_factory=list)
    older: Counter = field(default_factory=Counter)
    older_rows: list[pa.Table] = field(default_factory=list)
    uncommitted: list[str] = field(default_factory=list)

    def locate(self, row: int) -> tuple[str, int]:
        """``(file, 1-based row within it)`` of a row of :attr:`table`."""
        for path, n in zip(self.files, self.rows_per_file):
            if row < n:
                return path, row + 1
            row -= n
        return "?", row + 1


@dataclass(frozen=True, kw_only=True)
class OutputReport:
    """What :func:`verify_output` found.

    Attributes:
        root: The output checked.
        tables: Per table present, its result.
        files: Per table present, what was read.
        reconciliation: Cross-table checks against the manifest.
        notes: What was skipped or not checked, and why.
        examples: Per ``(table, check)``, a few failing rows located in their files.
    """

    root: str
    tables: dict[str, TableResult]
    files: dict[str, TableFiles]
    reconciliation: tuple[CheckResult, ...]
    notes: tuple[str, ...]
    examples: dict[tuple[str, str], list[str]]

    @property
    def success(self) -> bool:
        """Whether every table and the reconciliation passed."""
        return all(t.success for t in self.tables.values()) and all(c.success for c in self.reconciliation)


def _partition_values(relpath: str, contract: TableContract) -> dict[str, str] | None:
    parts = relpath.split("/")[len(contract.name.split("/")) : -1]
    values = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep:
            return None
        values[key] = urllib.parse.unquote(value)
    return values if list(values) == list(contract.partition_by) else None


def _fail(name: str, where: str, message: str) -> CheckResult:
    return CheckResult(
        table=name, check="schema", expectation="arrow_schema", success=False, message=f"{where}: {message}"
    )


_COUNTED = ("run_id", "status")  # what the reconciliation counts of older versions' rows


def _read_files(
    fs: AbstractFileSystem,
    root: str,
    name: str,
    *,
    committed: set[str] | None = None,
    leave_out: frozenset[str] = frozenset(),
) -> TableFiles | None:
    """Read and schema-check one table's files; rows only of those in ``committed`` (the
    others are listed in ``uncommitted``), less the rows of ``leave_out`` objects."""
    directory = storage.join(root, name)
    if not storage.exists(fs, directory):
        return None
    paths = []
    for path in sorted(fs.find(directory)):
        rel = posixpath.relpath(path, directory)
        # Hidden and underscore names are temporaries and bookkeeping, as for pyarrow.dataset.
        if path.endswith(".parquet") and not any(p.startswith((".", "_")) for p in rel.split("/")):
            paths.append(path)
    current = CONTRACTS.get(name) or entity_embeddings(1)
    out = TableFiles(name=name, contract=current)
    tables: list[pa.Table] = []
    for path in paths:
        rel = posixpath.relpath(path, root)
        try:
            table = pq.read_table(io.BytesIO(storage.read_bytes(fs, path)))
        except (pa.ArrowException, OSError) as e:
            out.schema_results.append(_fail(name, rel, f"not a readable Parquet file: {e}"))
            continue
        meta = table.schema.metadata or {}
        stamp, version_text = meta.get(b"nerflow.table"), meta.get(b"nerflow.schema_version", b"")
        if stamp != name.encode() or not version_text.isdigit():
            out.schema_results.append(
                _fail(
                    name, rel, f"stamped table={stamp!r} version={version_text!r}, not a {name} file written by nerflow"
                )
            )
            continue
        version = int(version_text)
        dim, dtype = 1, "float32"
        if name == "entity_embeddings" and "vector" in table.column_names:
            vtype = table.schema.field("vector").type
            if isinstance(vtype, pa.FixedSizeListType):
                dim, dtype = vtype.list_size, {pa.float16(): "float16"}.get(vtype.value_type, "float32")
        contract = contract_version(name, version, dim=dim, dtype=dtype)
        if contract is None:
            out.schema_results.append(_fail(name, rel, f"contract version {version} was never released"))
            continue
        found = schema_check(contract, table.schema, file=True, where=rel)
        if not found.success:
            out.schema_results.append(found)
            continue
        values = _partition_values(rel, contract)
        if values is None:
            out.schema_results.append(
                _fail(name, rel, f"not under partition directories {list(contract.partition_by)}")
            )
            continue
        if committed is not None and rel not in committed:
            out.uncommitted.append(rel)  # schema-checked; its rows are no committed batch's
            continue
        if leave_out and "source_uri" in table.column_names:
            table = table.filter(
                pc.invert(pc.is_in(table.column("source_uri"), value_set=pa.array(sorted(leave_out), pa.string())))
            )
        if version != current.version:
            out.older[version] += 1
            out.older_rows.append(table.select([c for c in _COUNTED if c in table.column_names]))
            continue
        for key, value in values.items():
            table = table.append_column(
                pa.field(key, pa.string(), nullable=False), pa.array([value] * table.num_rows, pa.string())
            )
        if name == "entity_embeddings":
            # Widths differ between models: as variable lists, files of several models combine.
            vector = table.column("vector").cast(pa.list_(pa.field("item", pa.float32())))
            table = table.set_column(table.schema.get_field_index("vector"), "vector", vector)
        tables.append(table.select(contract.schema.names))
        out.files.append(rel)
        out.rows_per_file.append(table.num_rows)
    if name == "entity_embeddings":
        schema = entity_embeddings(1).schema
        schema = schema.set(
            schema.get_field_index("vector"), pa.field("vector", pa.list_(pa.field("item", pa.float32())))
        )
    else:
        schema = current.schema
    out.table = pa.concat_tables([t.cast(schema) for t in tables]) if tables else schema.empty_table()
    if not any(not r.success for r in out.schema_results):
        out.schema_results = [CheckResult(table=name, check="schema", expectation="arrow_schema", success=True)]
    return out


def _model_values(runs: pa.Table | None, entities: pa.Table, notes: list[str]) -> tuple[list[str] | None, int | None]:
    if runs is None or "model_labels" not in runs.column_names or runs.num_rows == 0:
        notes.append("no run records of version 2 (model_labels): label and vector-width checks skipped")
        return None, None
    labels_of: dict[str, set[str]] = defaultdict(set)
    for model_id, labels in zip(runs.column("model_id").to_pylist(), runs.column("model_labels").to_pylist()):
        labels_of[model_id].update(labels or [])
    used = set(entities.column("model_id").to_pylist())
    unknown = sorted(m for m in used if not labels_of.get(m))
    labels = None
    if unknown:
        notes.append(
            f"label check skipped: no run record gives the labels of model {unknown[0]}"
            + (f" and {len(unknown) - 1} more" if len(unknown) > 1 else "")
        )
    else:
        labels = (
            sorted(set().union(*(labels_of[m] for m in used))) if used else sorted(set().union(*labels_of.values()))
        )
    dims = {d for d in runs.column("embedding_dim").to_pylist() if d}
    dim = dims.pop() if len(dims) == 1 else None
    if len(dims) > 1:
        notes.append("vector-width check skipped: runs wrote vectors of different widths")
    return labels or None, dim


def _reconcile(files: dict[str, TableFiles], *, missing: set[str], pending: set[str]) -> list[CheckResult]:
    def frame(name: str, columns: list[str]) -> pl.DataFrame:
        t = files[name].table if name in files and files[name].table is not None else None
        if t is None:
            contract = CONTRACTS.get(name) or entity_embeddings(1)
            t = contract.schema.empty_table()
        parts = [t.select(columns)]
        if name in files:  # older versions' rows count too
            parts += [
                o.select(columns).cast(parts[0].schema)
                for o in files[name].older_rows
                if set(columns) <= set(o.column_names)
            ]
        f = pl.from_arrow(pa.concat_tables(parts))
        assert isinstance(f, pl.DataFrame)
        return f

    objects_table = frame("_manifest/objects", ["source_uri", "batch_id"])
    objects = frame("_manifest/objects", ["run_id", "docs_in", "docs_ok", "docs_empty", "docs_quarantined", "entities"])
    docs = frame("documents", ["run_id", "status"])
    quarantine = frame("quarantine", ["run_id"])
    entities = frame("entities", ["run_id"])
    manifest = objects.group_by("run_id").agg(
        pl.col("docs_in", "docs_ok", "docs_empty", "docs_quarantined", "entities").sum()
    )
    found = (
        docs.group_by("run_id")
        .agg(ok=(pl.col("status") == "ok").sum(), empty=(pl.col("status") == "empty").sum())
        .join(quarantine.group_by("run_id").agg(quarantined=pl.len()), on="run_id", how="full", coalesce=True)
        .join(entities.group_by("run_id").agg(entity_rows=pl.len()), on="run_id", how="full", coalesce=True)
    )
    both = manifest.join(found, on="run_id", how="full", coalesce=True).fill_null(0).sort("run_id")
    problems = []
    for r in both.iter_rows(named=True):
        written = r["ok"] + r["empty"] + r["quarantined"]
        if r["docs_in"] != written:
            problems.append(
                f"run {r['run_id']}: the manifest counts {r['docs_in']} documents in, the tables hold "
                f"{written} ({r['ok']} ok + {r['empty']} empty + {r['quarantined']} quarantined)"
            )
        elif (r["docs_ok"], r["docs_empty"], r["docs_quarantined"]) != (r["ok"], r["empty"], r["quarantined"]):
            problems.append(
                f"run {r['run_id']}: the manifest counts {r['docs_ok']} ok, {r['docs_empty']} empty, "
                f"{r['docs_quarantined']} quarantined; the tables hold {r['ok']}, {r['empty']}, {r['quarantined']}"
            )
        if r["entities"] != r["entity_rows"]:
            problems.append(
                f"run {r['run_id']}: the manifest counts {r['entities']} entities, entities holds "
                f"{r['entity_rows']} rows"
            )
    out = [
        CheckResult(
            table="output",
            check="documents_reconcile",
            expectation="manifest",
            success=not problems,
            checked=both.height,
            failed=len(problems),
            message="; ".join(problems[:_EXAMPLES]),
        )
    ]
    stray = sorted(
        f for name, t in files.items() if not name.startswith("_manifest") for f in t.uncommitted if f not in pending
    )
    out.append(
        CheckResult(
            table="output",
            check="files_committed",
            expectation="manifest",
            success=not stray,
            failed=len(stray),
            message=f"{len(stray)} data files belong to no committed batch, e.g. {stray[0]}" if stray else "",
        )
    )
    missing_files = sorted(missing)
    out.append(
        CheckResult(
            table="output",
            check="files_present",
            expectation="manifest",
            success=not missing_files,
            failed=len(missing_files),
            message=f"{len(missing_files)} data files that _manifest/objects names are missing (committed rows lost), "
            f"e.g. {missing_files[0]}"
            if missing_files
            else "",
        )
    )
    twice = (
        objects_table.group_by("source_uri")
        .agg(pl.col("batch_id").n_unique().alias("batches"))
        .filter(pl.col("batches") > 1)
        .sort("source_uri")
    )
    out.append(
        CheckResult(
            table="output",
            check="objects_committed_once",
            expectation="manifest",
            success=twice.height == 0,
            checked=objects_table["source_uri"].n_unique(),
            failed=twice.height,
            message=(
                f"{twice.height} input objects are committed by more than one batch (two runs wrote this output at "
                f"once?), e.g. {twice['source_uri'][0]}: their documents are in the tables more than once"
            )
            if twice.height
            else "",
        )
    )
    return out


def _pending_files(fs: AbstractFileSystem, root: str) -> set[str]:
    """Data files named by intents of batches being written."""
    out: set[str] = set()
    for path in storage.list_files(fs, manifest.pending_dir(root), ".json"):
        try:
            intent = json.loads(storage.read_bytes(fs, path))
            out.update(intent.get("files", []) if "batch_id" in intent else [])
        except (ValueError, AttributeError, StorageError):
            continue  # finished meanwhile, or not an intent: its files count as stray
    return out


def _exists(fs: AbstractFileSystem, root: str, rel: str) -> bool:
    return storage.exists(fs, storage.join(root, rel))


def verify_output(fs: AbstractFileSystem, root: str) -> OutputReport:
    """Check every table under ``root`` against its contract (see the module docstring).

    Args:
        fs: The output's filesystem.
        root: The output path.

    Returns:
        The report; :attr:`OutputReport.success` says whether everything passed.

    Raises:
        StorageError: The output could not be listed or read.
    """
    files: dict[str, TableFiles] = {}
    notes: list[str] = []
    # What is committed decides what is checked: the manifest first, as the warehouse reads it.
    retracting = manifest.read_retracting(fs, root)
    for name in ("_manifest/objects", "_manifest/runs"):
        read = _read_files(
            fs, root, name, leave_out=retracting.source_uris if name == "_manifest/objects" else frozenset()
        )
        if read is not None:
            files[name] = read
    objects = files["_manifest/objects"].table if "_manifest/objects" in files else None
    committed = {f for fs_ in objects.column("files").to_pylist() for f in fs_ or []} if objects is not None else set()
    pending = _pending_files(fs, root)
    for name in TABLE_ORDER:
        if name.startswith("_manifest"):
            continue
        read = _read_files(fs, root, name, committed=committed, leave_out=retracting.source_uris)
        if read is not None:
            files[name] = read
    files = {name: files[name] for name in TABLE_ORDER if name in files}
    present = {f for t in files.values() for f in (*t.files, *t.uncommitted)}
    missing = {f for f in committed if f not in present and f not in retracting.files and not _exists(fs, root, f)}
    if retracting:
        notes.append(f"{len(retracting.source_uris)} input objects left out: a run is retracting their rows")
    waiting = sum(f in pending for t in files.values() for f in t.uncommitted)
    if waiting:
        notes.append(f"{waiting} data files of batches being written (no manifest file yet): not checked")
    if "_manifest/objects" not in files and "_manifest/runs" not in files:
        fail = CheckResult(
            table="output",
            check="is_an_output",
            expectation="manifest",
            success=False,
            message="no _manifest/ under the output: not written by nerflow, or nothing committed yet",
        )
        return OutputReport(root=root, tables={}, files=files, reconciliation=(fail,), notes=(), examples={})
    # Not None: _read_files sets the table of every TableFiles it returns (empty when no rows).
    tables: dict[str, pa.Table] = {
        name: (
            files[name].table if name in files else (CONTRACTS.get(name) or entity_embeddings(1)).schema.empty_table()
        )
        for name in TABLE_ORDER
    }
    labels, dim = _model_values(
        files["_manifest/runs"].table if "_manifest/runs" in files else None, tables["entities"], notes
    )
    contracts = {name: files[name].contract for name in TABLE_ORDER if name in files}
    results = validate_tables(
        tables,
        contracts,
        labels=labels,
        embedding_dim=dim,
        schema_results={name: f.schema_results for name, f in files.items()},
    )
    for name, f in files.items():
        for version, n in sorted(f.older.items()):
            notes.append(
                f"{name}: {n} files of contract version {version} (current {f.contract.version}): schema "
                "checked, rows not"
            )
    examples: dict[tuple[str, str], list[str]] = {}
    for name, result in results.items():
        table = tables[name]
        for check in result.failures():
            shown = []
            for row in check.rows[:_EXAMPLES]:
                path, line = files[name].locate(row)
                keys = ", ".join(f"{k}={table.column(k)[row].as_py()!r}" for k in _ROW_KEYS if k in table.column_names)
                shown.append(f"{path} row {line}: {keys}")
            examples[(name, check.check)] = shown
    return OutputReport(
        root=root,
        tables=results,
        files=files,
        reconciliation=tuple(_reconcile(files, missing=missing, pending=pending)),
        notes=tuple(notes),
        examples=examples,
    )


def render_report(report: OutputReport) -> str:
    """The report as text for a terminal."""
    rules = {(t, c.name): c.rule for t, checks in TABLE_CHECKS.items() for c in checks}
    lines = [f"nerflow validate {report.root}", ""]
    lines.append(f"{'table':<20} {'version':>7} {'files':>6} {'rows':>9}  result")
    for name in TABLE_ORDER:
        if name not in report.tables:
            continue
        t, f = report.tables[name], report.files[name]
        version = EMBEDDINGS_VERSION if name == "entity_embeddings" else t.version
        lines.append(
            f"{name:<20} {'v' + str(version):>7} {len(f.files) + sum(f.older.values()):>6} {t.rows:>9,}  "
            f"{'ok' if t.success else 'FAILED'}"
        )
        for check in t.failures():
            if check.rows:
                lines.append(
                    f"    {check.check}: {check.failed} of {check.checked} rows failed "
                    f"({rules.get((name, check.check), '')})"
                )
                lines += [f"      {e}" for e in report.examples.get((name, check.check), [])]
            else:
                lines.append(f"    {check.check}: {check.message}")
    for check in report.reconciliation:
        lines.append(f"{check.check:<38}  {'ok' if check.success else 'FAILED'}")
        if not check.success:
            lines.append(f"    {check.message}")
    if report.notes:
        lines += ["", "notes:"] + [f"  {n}" for n in report.notes]
    failed = sum(len(t.failures()) for t in report.tables.values()) + sum(not c.success for c in report.reconciliation)
    lines += ["", "result: ok" if report.success else f"result: FAILED ({failed} checks failed)"]
    return "\n".join(lines)
