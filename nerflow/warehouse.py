"""A DuckDB warehouse over an output of ``nerflow run`` (``nerflow warehouse OUTPUT --duckdb FILE``).

Each refresh copies the output's *committed* rows into DuckDB tables, replacing what an
earlier refresh loaded, in one transaction: a reader sees the old tables or the new ones, and
every document and entity appears once however often the warehouse is refreshed.

What is committed is what the flow considers committed (:mod:`nerflow.etl.writing`): the data
files that ``_manifest/objects`` names, less the rows of objects a run is retracting. Files of a
batch still being written (named only by ``_manifest/_pending``), hidden temporaries and stray
files are never read; a file the manifest names that is missing is an error (committed rows
lost), never skipped. Run records come from ``_manifest/runs`` (written once a run ends).

Column types are the contracts' (:mod:`data_contracts.schemas`), translated by DuckDB's own
Arrow mapping: ``string`` and ``large_string`` are ``VARCHAR``, ``int32`` ``INTEGER``,
``timestamp[us, tz=UTC]`` ``TIMESTAMPTZ``, the vectors ``FLOAT[n]`` (float16 vectors too:
DuckDB has no half-precision type). Partition columns come from the directory names and are
cast to the contract's type, ``VARCHAR``; columns a file's older contract version lacks are
``NULL``. A file stamped with another table or with a version newer than the contract is
refused.

Tables (``TABLES``): ``documents``, ``entities``, ``segments``, ``entity_embeddings`` (when vectors were
written), ``quarantine``, ``objects`` (``_manifest/objects``), ``runs`` (``_manifest/runs``);
the view ``entity_vectors`` (vectors with their entity's text and label); ``warehouse_tables``
(what each refresh loaded, and when).

Remote outputs (``s3://``…) are read through the fsspec filesystem handed in, registered with
DuckDB for the refresh (DuckDB's own httpfs extension is not bundled and cannot be fetched
offline). The warehouse file itself holds copies, so querying it needs no access to the output.
"""

from __future__ import annotations

import base64
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from fsspec import AbstractFileSystem

from data_contracts.schemas import (
    CONTRACTS,
    DOCUMENTS,
    EMBEDDINGS_VERSION,
    ENTITIES,
    MANIFEST_OBJECTS,
    MANIFEST_RUNS,
    QUARANTINE,
    SEGMENTS,
    TableContract,
    contract_version,
    entity_embeddings,
)
from ner_core.errors import TerminalError
from nerflow import storage
from nerflow.errors import UriError
from nerflow.etl import manifest

__all__ = [
    "WarehouseError",
    "TableLoad",
    "WarehouseReport",
    "TABLES",
    "duckdb_columns",
    "require_output",
    "build_warehouse",
]

TABLES: dict[str, str] = {
    "documents": DOCUMENTS.name,
    "entities": ENTITIES.name,
    "segments": SEGMENTS.name,
    "entity_embeddings": "entity_embeddings",
    "quarantine": QUARANTINE.name,
    "objects": MANIFEST_OBJECTS.name,
    "runs": MANIFEST_RUNS.name,
}
"""Warehouse table -> the output table it copies (``entity_embeddings`` only when present)."""

_VECTORS_VIEW = """
CREATE VIEW entity_vectors AS
SELECT v.entity_id, v.run_id, v.doc_id, e.text, e.label, e.score, e.lang, v.model_id, v.vector
FROM entity_embeddings AS v
JOIN entities AS e USING (run_id, entity_id)
"""


class WarehouseError(UriError, TerminalError):
    """The output cannot be loaded into the warehouse as its contracts describe it."""


@dataclass(frozen=True, kw_only=True)
class TableLoad:
    """What one refresh loaded into one warehouse table.

    Attributes:
        table: The warehouse table.
        source: The output table it copies (``documents``, ``_manifest/runs``).
        files: Parquet files read, relative to the output root.
        rows: Rows loaded.
        versions: Contract versions of the files read.
    """

    table: str
    source: str
    files: tuple[str, ...]
    rows: int
    versions: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class WarehouseReport:
    """What :func:`build_warehouse` did.

    Attributes:
        output: The output's URI.
        tables: Per warehouse table, what was loaded.
        notes: What was changed on the way (float16 vectors widened, tables dropped).
    """

    output: str
    tables: dict[str, TableLoad]
    notes: tuple[str, ...] = field(default=())


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duckdb_columns(con: duckdb.DuckDBPyConnection, contract: TableContract) -> list[tuple[str, str]]:
    """``(column, DuckDB type)`` for every column of ``contract``, in order.

    DuckDB's own Arrow import decides the types, so they are exactly what DuckDB makes of the
    contract's Arrow schema (no second copy of the schemas here).

    Raises:
        WarehouseError: DuckDB has no type for a column (float16 vectors: use the float32
            contract, see :func:`build_warehouse`).
    """
    try:
        relation = con.from_arrow(contract.schema.empty_table())
    except duckdb.Error as e:
        raise WarehouseError(f"DuckDB cannot represent the {contract.name} contract: {e}", uri=contract.name) from e
    return [(name, str(type_)) for name, type_ in zip(relation.columns, relation.types)]


def _listing(fs: AbstractFileSystem, root: str, name: str) -> set[str]:
    directory = storage.join(root, name)
    if not storage.exists(fs, directory):
        return set()
    try:
        return {posixpath.relpath(p, root) for p in fs.find(directory)}
    except (OSError, ValueError) as e:
        raise WarehouseError(f"could not list {name}: {e}", uri=fs.unstrip_protocol(directory)) from e


def _stamps(con: duckdb.DuckDBPyConnection, paths: list[str]) -> dict[str, dict[str, str]]:
    rows = con.execute(
        "SELECT file_name, decode(key), decode(value) FROM parquet_kv_metadata($paths) "
        "WHERE decode(key) IN ('nerflow.table', 'nerflow.schema_version', 'ARROW:schema')",
        {"paths": paths},
    ).fetchall()
    out: dict[str, dict[str, str]] = {}
    for file_name, key, value in rows:
        out.setdefault(file_name, {})[key] = value
    return out


def _check_stamps(
    name: str, current: int, rels: list[str], paths: list[str], stamps: dict[str, dict[str, str]], display: str
) -> tuple[list[int], list[dict[str, str]]]:
    versions, metas = [], []
    for rel, path in zip(rels, paths):
        meta = stamps.get(path, {})
        version = meta.get("nerflow.schema_version", "")
        if meta.get("nerflow.table") != name or not version.isdigit():
            raise WarehouseError(
                f"{rel} is not a {name} file written by nerflow (stamped table="
                f"{meta.get('nerflow.table')!r} version={version!r})",
                uri=display,
            )
        if int(version) > current or contract_version(name, int(version)) is None:
            raise WarehouseError(
                f"{rel} has {name} contract version {version}; this nerflow knows versions up to "
                f"{current}: refresh with the nerflow that wrote it",
                uri=display,
            )
        versions.append(int(version))
        metas.append(meta)
    return versions, metas


def _vector_contract(rels: list[str], metas: list[dict[str, str]], display: str) -> tuple[TableContract, list[str]]:
    widths: dict[int, str] = {}
    dtypes = set()
    for rel, meta in zip(rels, metas):
        try:
            schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(meta["ARROW:schema"])))
            vector = schema.field("vector").type
        except (KeyError, ValueError, pa.ArrowException) as e:
            raise WarehouseError(f"{rel}: no readable Arrow schema with a vector column: {e}", uri=display) from e
        if not isinstance(vector, pa.FixedSizeListType):
            raise WarehouseError(f"{rel}: vector is {vector}, not a fixed-size list", uri=display)
        widths.setdefault(vector.list_size, rel)
        dtypes.add(str(vector.value_type))
    if len(widths) > 1:
        found = ", ".join(f"{w} ({rel})" for w, rel in sorted(widths.items()))
        raise WarehouseError(
            f"entity_embeddings holds vectors of several widths: {found}; one FLOAT[n] column "
            "cannot hold them (one warehouse per model)",
            uri=display,
        )
    notes = []
    if "halffloat" in dtypes or "float16" in dtypes:
        notes.append("entity_embeddings: float16 vectors stored as FLOAT (DuckDB has no half-precision type)")
    return entity_embeddings(next(iter(widths)), "float32"), notes


def _select_list(types: list[tuple[str, str]], present: set[str]) -> str:
    return ", ".join(f"CAST({_quote(c) if c in present else 'NULL'} AS {t}) AS {_quote(c)}" for c, t in types)


def _create(
    con: duckdb.DuckDBPyConnection,
    table: str,
    contract: TableContract,
    types: list[tuple[str, str]],
    versions: Sequence[int],
) -> None:
    # NOT NULL where the contract says so and every version read has the column (an older
    # version's file lacks newer columns: NULL there).
    names_of = []
    for v in set(versions):
        known = contract if v == contract.version else contract_version(contract.name, v)
        # _check_stamps lets through only the versions that have a contract.
        assert known is not None
        names_of.append(set(known.schema.names))
    columns = []
    for field_, (name, type_) in zip(contract.schema, types):
        required = not field_.nullable and all(name in names for names in names_of)
        columns.append(f"{_quote(name)} {type_}{' NOT NULL' if required else ''}")
    con.execute(f"CREATE OR REPLACE TABLE {_quote(table)} ({', '.join(columns)})")


def _load_parquet(
    con: duckdb.DuckDBPyConnection, table: str, contract: TableContract, paths: list[str], versions: Sequence[int]
) -> int:
    types = duckdb_columns(con, contract)
    _create(con, table, contract, types, versions)
    if not paths:
        return 0
    hive = "false"
    if contract.partition_by:
        type_of = dict(types)
        hive = (
            "true, hive_types = {"
            + ", ".join(f"{_literal(c)}: {_literal(type_of[c])}" for c in contract.partition_by)
            + "}"
        )
    source = f"read_parquet($paths, union_by_name = true, hive_partitioning = {hive})"
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}", {"paths": paths}).fetchall()}
    con.execute(f"INSERT INTO {_quote(table)} SELECT {_select_list(types, present)} FROM {source}", {"paths": paths})
    return _count(con, table)


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {_quote(table)}").fetchone()
    return int(row[0]) if row else 0


def _load_objects(con: duckdb.DuckDBPyConnection, objects: pa.Table) -> int:
    types = duckdb_columns(con, MANIFEST_OBJECTS)
    _create(con, "objects", MANIFEST_OBJECTS, types, [MANIFEST_OBJECTS.version])
    con.register("nerflow_manifest_snapshot", objects.select(MANIFEST_OBJECTS.schema.names))
    try:
        con.execute(
            f"INSERT INTO objects SELECT {_select_list(types, set(objects.column_names))} "
            "FROM nerflow_manifest_snapshot"
        )
    finally:
        con.unregister("nerflow_manifest_snapshot")
    return _count(con, "objects")


def require_output(fs: AbstractFileSystem, root: str) -> str:
    """The output's URI for messages, if ``root`` holds an output of ``nerflow run``.

    Raises:
        WarehouseError: It does not (no ``_manifest/``).
    """
    display = root if storage.is_local(fs) else fs.unstrip_protocol(root)
    if not storage.exists(fs, manifest.objects_dir(root)) and not storage.exists(fs, manifest.runs_dir(root)):
        what = "no output here" if not storage.exists(fs, root) else "not an output of nerflow run (no _manifest/)"
        raise WarehouseError(
            f"{what}: give the OUTPUT of `nerflow run` (a backfill's is OUTPUT/backfill/model_id=<id>)", uri=display
        )
    return display


def build_warehouse(con: duckdb.DuckDBPyConnection, fs: AbstractFileSystem, root: str) -> WarehouseReport:
    """Create or refresh the warehouse tables in ``con`` from the output at ``root``.

    Everything happens in one transaction on ``con``: on any error nothing changes. Rows of
    objects a run is retracting (its intent record under ``_manifest/_pending``) are left
    out, so a refresh during a run never holds an object's entities without its document;
    a refresh that a retraction overtook (a file it meant to read was deleted) starts again.

    Args:
        con: An open DuckDB connection (to the warehouse file).
        fs: The output's filesystem (local, s3fs, memory…).
        root: The output path on ``fs`` (as :func:`nerflow.storage.filesystem` returns it).

    Returns:
        What each table holds now.

    Raises:
        WarehouseError: ``root`` is not an output of ``nerflow run``, a file the manifest
            names is missing (committed data lost), a file is not of its table or of a known
            contract version, vectors of several widths, or DuckDB could not read a file.
        ManifestError: The manifest is unreadable.
        StorageError: The store could not be read.
    """
    display = require_output(fs, root)
    registered = not storage.is_local(fs)
    if registered:
        con.register_filesystem(fs)
    try:
        for attempt in range(_ATTEMPTS):
            try:
                return _build(con, fs, root, display)
            except _Overtaken:
                if attempt == _ATTEMPTS - 1:
                    raise WarehouseError(
                        f"retractions kept changing the output during {_ATTEMPTS} refreshes: "
                        "try again when the run is past them",
                        uri=display,
                    ) from None
        raise AssertionError("unreachable")
    finally:
        if registered:
            con.unregister_filesystem(fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol)


_ATTEMPTS = 3


class _Overtaken(Exception):
    """A retraction changed the files this refresh was reading."""


def _build(con: duckdb.DuckDBPyConnection, fs: AbstractFileSystem, root: str, display: str) -> WarehouseReport:
    # One snapshot of the manifest decides what is committed (a run may commit more meanwhile).
    objects = manifest.read_manifest_table(fs, root)
    retracting = manifest.read_retracting(fs, root)
    committed = {f for files in objects.column("files").to_pylist() for f in files}

    def to_path(rel: str) -> str:
        path = storage.join(root, rel)
        return path if storage.is_local(fs) else fs.unstrip_protocol(path)

    loads: dict[str, TableLoad] = {}
    notes: list[str] = []
    con.begin()
    try:
        for table, source in TABLES.items():
            if table == "objects":
                loads[table] = TableLoad(
                    table=table,
                    source=source,
                    rows=0,
                    files=tuple(sorted(set(objects.column("manifest_file").to_pylist()))),
                    versions=(MANIFEST_OBJECTS.version,),
                )
                continue
            if table == "runs":
                rels = [posixpath.relpath(p, root) for p in storage.list_files(fs, manifest.runs_dir(root), ".parquet")]
            else:
                prefix = source + "/"
                named = {f for f in committed if f.startswith(prefix)}
                existing = _listing(fs, root, source)
                missing = sorted(named - existing - retracting.files)
                if missing:
                    if _changed_since(fs, root, objects, retracting):
                        raise _Overtaken()
                    raise WarehouseError(
                        f"{len(missing)} {source} files that _manifest/objects names are missing, e.g. {missing[0]}: "
                        "committed rows were lost (`nerflow validate` tells which runs)",
                        uri=display,
                    )
                rels = sorted(named & existing)
            paths = [to_path(r) for r in rels]
            current = EMBEDDINGS_VERSION if table == "entity_embeddings" else CONTRACTS[source].version
            try:
                stamps = _stamps(con, paths) if paths else {}
            except duckdb.IOException:
                if _changed_since(fs, root, objects, retracting):
                    raise _Overtaken() from None
                raise
            versions, metas = _check_stamps(source, current, rels, paths, stamps, display)
            if table == "entity_embeddings":
                con.execute("DROP VIEW IF EXISTS entity_vectors")
                if not paths:
                    con.execute("DROP TABLE IF EXISTS entity_embeddings")
                    continue
                contract, vector_notes = _vector_contract(rels, metas, display)
                notes.extend(vector_notes)
            else:
                contract = CONTRACTS[source]
            try:
                rows = _load_parquet(con, table, contract, paths, versions)
            except duckdb.IOException:
                if _changed_since(fs, root, objects, retracting):
                    raise _Overtaken() from None
                raise
            loads[table] = TableLoad(
                table=table, source=source, files=tuple(rels), rows=rows, versions=tuple(sorted(set(versions)))
            )
        # A retraction that began while the files were read shows now: as an intent, or (done
        # already) as objects gone from the manifest. Their rows leave every table.
        after = manifest.read_retracting(fs, root)
        still = set(manifest.read_manifest_table(fs, root).column("source_uri").to_pylist())
        snapshot = set(objects.column("source_uri").to_pylist())
        dropped = sorted(retracting.source_uris | after.source_uris | (snapshot - still))
        if dropped:
            objects = objects.filter(
                pc.invert(pc.is_in(objects.column("source_uri"), value_set=pa.array(dropped, pa.string())))
            )
            for table, load in loads.items():
                if table not in ("objects", "runs"):
                    loads[table] = _without(con, load, dropped)
            notes.append(f"{len(dropped)} input objects left out: a run is retracting their rows")
        loads["objects"] = TableLoad(
            table="objects",
            source=MANIFEST_OBJECTS.name,
            rows=_load_objects(con, objects),
            files=loads["objects"].files,
            versions=loads["objects"].versions,
        )
        loads = {t: loads[t] for t in TABLES if t in loads}
        if "entity_embeddings" in loads:
            con.execute(_VECTORS_VIEW)
        _record(con, loads, display)
        con.commit()
    except duckdb.Error as e:
        con.rollback()
        raise WarehouseError(f"DuckDB could not load the output: {e}", uri=display) from e
    except BaseException:
        con.rollback()
        raise
    return WarehouseReport(output=display, tables=loads, notes=tuple(notes))


def _changed_since(fs: AbstractFileSystem, root: str, objects: pa.Table, retracting: manifest.Retracting) -> bool:
    """Whether a retraction started or ended since the snapshot of ``objects`` was read."""
    now = manifest.read_manifest_table(fs, root)
    return (
        manifest.read_retracting(fs, root) != retracting
        or set(now.column("manifest_file").to_pylist()) != set(objects.column("manifest_file").to_pylist())
        or now.num_rows != objects.num_rows
    )


def _without(con: duckdb.DuckDBPyConnection, load: TableLoad, source_uris: list[str]) -> TableLoad:
    con.execute(f"DELETE FROM {_quote(load.table)} WHERE source_uri IN (SELECT unnest($uris))", {"uris": source_uris})
    return TableLoad(
        table=load.table, source=load.source, files=load.files, rows=_count(con, load.table), versions=load.versions
    )


def _record(con: duckdb.DuckDBPyConnection, loads: dict[str, TableLoad], display: str) -> None:
    con.execute(
        "CREATE OR REPLACE TABLE warehouse_tables (table_name VARCHAR NOT NULL, source VARCHAR NOT NULL, "
        'files BIGINT NOT NULL, "rows" BIGINT NOT NULL, versions INTEGER[] NOT NULL, output_uri VARCHAR NOT NULL, '
        "refreshed_at TIMESTAMPTZ NOT NULL)"
    )
    now = datetime.now(UTC)
    con.executemany(
        "INSERT INTO warehouse_tables VALUES (?, ?, ?, ?, ?, ?, ?)",
        [[t.table, t.source, len(t.files), t.rows, list(t.versions), display, now] for t in loads.values()],
    )
