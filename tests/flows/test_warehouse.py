"""``nerflow warehouse``: DuckDB tables over real flow outputs, refreshed after incremental runs,
committed rows only, the contracts' types, and every SQL query of ``docs/warehouse.md``.

The flow runs twice here (the second time with new objects in the input), with vectors; the
warehouse is built after the first run and refreshed (twice) after the second.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_contracts.schemas import CONTRACTS, MANIFEST_RUNS_V1, QUARANTINE_V1, entity_embeddings
from flows.extract_entities import ExtractParams, extract_entities
from nerflow import storage
from nerflow.warehouse import TABLES, WarehouseError, build_warehouse
from tests import samples_pdf
from tests.flows.test_extract_entities import DOC_IDS, read_table, write_corpus

REPO_ROOT = Path(__file__).resolve().parents[2]
LATE = [
    {"id": "late-1", "text": "Barack Obama spoke in Chicago about the World Bank .", "lang": "en"},
    {"id": "late-2", "text": "Angela Merkel traf Emmanuel Macron in Straßburg.", "lang": "de"},
]
# Columns that identify a row of each warehouse table (for sorting and uniqueness).
KEYS = {
    "documents": ["run_id", "doc_id"],
    "entities": ["run_id", "entity_id"],
    "entity_embeddings": ["run_id", "entity_id"],
    "segments": ["run_id", "doc_id", "segment"],
    "quarantine": ["run_id", "source_uri", "record"],
    "objects": ["batch_id", "source_uri"],
    "runs": ["run_id"],
}


def refresh(db: Path, out: Path | str, storage_options: dict | None = None):
    fs, root = storage.filesystem(str(out), storage_options)
    with duckdb.connect(str(db)) as con:
        return build_warehouse(con, fs, root)


def query(db: Path, sql: str, parameters: dict | None = None) -> pa.Table:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.sql(sql, params=parameters or None).to_arrow_table()


def contract_of(table: str, width: int | None = None):
    return entity_embeddings(width or 1) if table == "entity_embeddings" else CONTRACTS[TABLES[table]]


def _sorted(table: str, rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: json.dumps([r[k] for k in KEYS[table]], default=str))


def parquet_rows(out: Path | str, table: str, storage_options: dict | None = None) -> list[dict]:
    """The table's rows as pyarrow reads the output (every file, hive partitions decoded)."""
    t = read_table(str(out), TABLES[table], storage_options)
    return _sorted(table, t.select(contract_of(table).schema.names).to_pylist())


def warehouse_rows(db: Path, table: str) -> list[dict]:
    return _sorted(table, query(db, f'SELECT * FROM "{table}"').to_pylist())


@dataclass
class Stage:
    doc_ids: list[str]
    counts: dict[str, int]
    rows: dict[str, list[dict]]


@dataclass
class Runs:
    inp: Path
    out: Path
    db: Path
    first: Stage
    second: Stage
    reports: list


def _stage(db: Path) -> Stage:
    return Stage(
        doc_ids=query(db, "SELECT doc_id FROM documents").column("doc_id").to_pylist(),
        counts={t: query(db, f'SELECT count(*) AS n FROM "{t}"').column("n")[0].as_py() for t in TABLES},
        rows={t: warehouse_rows(db, t) for t in ("documents", "entities")},
    )


@pytest.fixture(scope="module")
def runs(prefect_harness, tiny_wordpiece_model_dir, tmp_path_factory) -> Runs:
    base = tmp_path_factory.mktemp("warehouse")
    inp, out, db = write_corpus(base / "in"), base / "out", base / "warehouse.duckdb"
    run = ExtractParams(
        input_uri=str(inp),
        output_uri=str(out),
        model=str(tiny_wordpiece_model_dir),
        device="cpu",
        batch_docs=3,
        embeddings="marker",
    )
    extract_entities(run)
    reports = [refresh(db, out)]
    first = _stage(db)
    (inp / "late.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in LATE) + "\n")
    (inp / "reports").mkdir()
    (inp / "reports" / "quarterly.pdf").write_bytes(samples_pdf.report_pdf())
    extract_entities(run)
    reports += [refresh(db, out), refresh(db, out)]
    return Runs(inp=inp, out=out, db=db, first=first, second=_stage(db), reports=reports)


def test_every_committed_row_is_in_the_warehouse_once_after_each_refresh(runs):
    late = {r["id"] for r in LATE} | {"reports/quarterly.pdf"}
    assert sorted(runs.first.doc_ids) == sorted(DOC_IDS)
    assert sorted(runs.second.doc_ids) == sorted(DOC_IDS | late), "each document exactly once"
    # The second run added rows and changed none of the first run's.
    for table in ("documents", "entities"):
        before = {json.dumps(r, sort_keys=True, default=str) for r in runs.first.rows[table]}
        after = {json.dumps(r, sort_keys=True, default=str) for r in runs.second.rows[table]}
        assert before < after
    # Refreshing again changes nothing.
    assert runs.reports[1].tables.keys() == runs.reports[2].tables.keys()
    assert {t: load.rows for t, load in runs.reports[1].tables.items()} == {
        t: load.rows for t, load in runs.reports[2].tables.items()
    }
    assert runs.second.counts["runs"] == 2 and runs.first.counts["runs"] == 1
    for table in TABLES:
        rows = warehouse_rows(runs.db, table)
        keys = [tuple(r[k] for k in KEYS[table]) for r in rows]
        assert len(keys) == len(set(keys)), f"{table}: a row twice"
        assert runs.second.counts[table] == len(rows) == runs.reports[2].tables[table].rows
    for table in ("documents", "entities", "entity_embeddings", "quarantine"):
        assert warehouse_rows(runs.db, table) == parquet_rows(runs.out, table), table
    entities = query(runs.db, "SELECT count(*) AS n FROM entities").column("n")[0].as_py()
    assert query(runs.db, "SELECT sum(n_entities) AS n FROM documents").column("n")[0].as_py() == entities
    assert query(runs.db, "SELECT count(*) AS n FROM entity_vectors").column("n")[0].as_py() == entities > 0
    objects = query(runs.db, "SELECT sum(docs_in) AS n FROM objects").column("n")[0].as_py()
    assert objects == runs.second.counts["documents"] + runs.second.counts["quarantine"]
    recorded = query(runs.db, 'SELECT table_name, files, "rows" FROM warehouse_tables ORDER BY table_name').to_pylist()
    assert {r["table_name"]: r["rows"] for r in recorded} == runs.second.counts


def _normalise(t: pa.DataType) -> pa.DataType:
    # What DuckDB hands back to Arrow differs from the contract only in spelling: string for
    # large_string, the time zone's name, list fields' names and nullability.
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_timestamp(t):
        return pa.timestamp(t.unit, tz="UTC" if t.tz in ("UTC", "Etc/UTC", "+00:00") else t.tz)
    if pa.types.is_fixed_size_list(t):
        return pa.list_(_normalise(t.value_type), t.list_size)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_normalise(t.value_type))
    if pa.types.is_map(t):
        return pa.map_(_normalise(t.key_type), _normalise(t.item_type))
    return t


def test_columns_have_the_contracts_types_and_nullability(runs):
    width = query(runs.db, "SELECT array_length(vector) AS n FROM entity_embeddings LIMIT 1").column("n")[0].as_py()
    for table in TABLES:
        contract = contract_of(table, width)
        with duckdb.connect(str(runs.db), read_only=True) as con:
            con.execute("SET TimeZone = 'UTC'")
            got = con.sql(f'SELECT * FROM "{table}" LIMIT 0').to_arrow_table().schema
            nulls = dict(con.execute(f'SELECT column_name, "null" FROM (DESCRIBE "{table}")').fetchall())
        assert got.names == contract.schema.names, table
        for field in contract.schema:
            assert _normalise(got.field(field.name).type) == _normalise(field.type), (table, field.name)
            assert nulls[field.name] == ("YES" if field.nullable else "NO"), (table, field.name)
    assert (
        query(runs.db, "SELECT typeof(vector) AS t FROM entity_embeddings LIMIT 1").column("t")[0].as_py()
        == f"FLOAT[{width}]"
    )
    assert query(runs.db, "SELECT typeof(ingest_date) AS t FROM documents LIMIT 1").column("t")[0].as_py() == "VARCHAR"


# --- the queries of docs/warehouse.md ---------------------------------------------------------


def doc_queries() -> list[str]:
    text = (REPO_ROOT / "docs" / "warehouse.md").read_text()
    return re.findall(r"```sql\n(.*?)```", text, flags=re.S)


def _parameters(db: Path, sql: str) -> dict:
    # A query about pages asks for a label found on a page (the tiny model's labels are random).
    on_pages = "WHERE e.page IS NOT NULL " if "page" in sql else ""
    entity = query(
        db,
        "SELECT e.text, e.label, e.entity_id, v.vector FROM entities AS e JOIN entity_embeddings AS v "
        f"USING (run_id, entity_id) {on_pages}ORDER BY e.entity_id LIMIT 1",
    ).to_pylist()[0]
    values = {
        "entity_text": entity["text"].upper(),
        "label": entity["label"],
        "entity_id": entity["entity_id"],
        "vector": entity["vector"],
    }
    return {name: values[name] for name in dict.fromkeys(re.findall(r"\$(\w+)", sql))}


def test_the_doc_has_the_queries_it_promises():
    queries = doc_queries()
    assert len(queries) >= 6
    assert any("array_cosine_similarity" in q for q in queries)
    assert any("GROUP BY day, label" in q for q in queries)


@pytest.mark.parametrize("number", range(len(doc_queries())))
def test_each_query_of_the_doc_runs_and_finds_rows(runs, number):
    sql = doc_queries()[number]
    result = query(runs.db, sql, _parameters(runs.db, sql))
    assert result.num_rows > 0, sql


def _find(fragment: str) -> str:
    (sql,) = [q for q in doc_queries() if fragment in q]
    return sql


def test_entities_per_label_per_day_match_the_parquet(runs):
    counts = {}
    for r in parquet_rows(runs.out, "entities"):
        counts[(r["ingest_date"], r["label"])] = counts.get((r["ingest_date"], r["label"]), 0) + 1
    got = query(runs.db, _find("GROUP BY day, label")).to_pylist()
    assert {(str(r["day"]), r["label"]): r["entities"] for r in got} == counts


def test_documents_mentioning_an_entity_and_its_contexts(runs):
    sql = _find("d.lang, count(*) AS mentions")
    parameters = _parameters(runs.db, sql)
    expected = {}
    for e in parquet_rows(runs.out, "entities"):
        if e["text"].lower() == parameters["entity_text"].lower() and e["label"] == parameters["label"]:
            expected[e["doc_id"]] = expected.get(e["doc_id"], 0) + 1
    got = query(runs.db, sql, parameters).to_pylist()
    assert {r["doc_id"]: r["mentions"] for r in got} == expected
    texts = {r["doc_id"]: r["text"] for r in parquet_rows(runs.out, "documents")}
    contexts = query(runs.db, _find("AS before"), parameters).to_pylist()
    assert len(contexts) == sum(expected.values())
    for c in contexts:
        text = texts[c["doc_id"]]
        assert c["before"] == text[max(c["start"] - 40, 0) : c["start"]]
        assert c["after"] == text[c["end"] : c["end"] + 40]
        assert text[c["start"] : c["end"]].lower() == parameters["entity_text"].lower()
    # Offsets count code points in DuckDB as in Python, non-Latin scripts included.
    check = query(
        runs.db,
        'SELECT e.text, substr(d.text, e.start + 1, e."end" - e.start) AS cut FROM entities AS e '
        "JOIN documents AS d USING (run_id, doc_id)",
    ).to_pylist()
    assert check and all(r["text"] == r["cut"] for r in check)


def test_nearest_entities_match_numpy(runs):
    sql = _find("array_cosine_similarity")
    parameters = _parameters(runs.db, sql)
    vectors = {
        r["entity_id"]: np.asarray(r["vector"], dtype=np.float64) for r in parquet_rows(runs.out, "entity_embeddings")
    }
    q = vectors.pop(parameters["entity_id"])
    cosine = {k: float(v @ q / (np.linalg.norm(v) * np.linalg.norm(q))) for k, v in vectors.items()}
    expected = sorted(cosine, key=lambda k: (-cosine[k], k))[:10]
    got = query(runs.db, sql, parameters).to_pylist()
    assert [r["entity_id"] for r in got] == expected
    assert [r["similarity"] for r in got] == pytest.approx([cosine[k] for k in expected], abs=1e-5)
    by_vector = query(runs.db, _find("list_cosine_similarity"), _parameters(runs.db, _find("list_cosine_similarity")))
    assert by_vector.column("entity_id")[0].as_py() == parameters["entity_id"]
    assert by_vector.column("similarity")[0].as_py() == pytest.approx(1.0, abs=1e-5)


# --- only committed data; refusals; S3; the command line -------------------------------------


def test_uncommitted_and_temporary_files_are_never_loaded(runs, tmp_path):
    out, db = tmp_path / "out", tmp_path / "w.duckdb"
    shutil.copytree(runs.out, out)
    committed = refresh(db, out)
    # A batch being written: its intent and a data file, but no manifest file yet; a hidden
    # temporary; a stray file no batch names.
    source = next((out / "documents").rglob("part-*.parquet"))
    pending = source.with_name("part-inprogress.parquet")
    shutil.copy(source, pending)
    shutil.copy(source, source.with_name(f".{source.name}.tmp-0123"))
    shutil.copy(source, source.with_name("part-stray.parquet"))
    (out / "_manifest" / "_pending").mkdir(exist_ok=True)
    (out / "_manifest" / "_pending" / "inprogress.json").write_text(
        json.dumps(
            {
                "batch_id": "inprogress",
                "files": [str(pending.relative_to(out))],
                "manifest": "_manifest/objects/part-inprogress.parquet",
            }
        )
    )
    (out / "_manifest" / "runs" / ".run-x.parquet.tmp-0123").write_bytes(b"half")
    again = refresh(db, out)
    assert {t: load.rows for t, load in again.tables.items()} == {t: load.rows for t, load in committed.tables.items()}
    assert sorted(query(db, "SELECT doc_id FROM documents").column("doc_id").to_pylist()) == sorted(runs.second.doc_ids)
    assert all("inprogress" not in f and "stray" not in f and "tmp" not in f for f in again.tables["documents"].files)


def test_a_committed_file_that_is_missing_is_an_error_and_nothing_changes(runs, tmp_path):
    out, db = tmp_path / "out", tmp_path / "w.duckdb"
    shutil.copytree(runs.out, out)
    before = refresh(db, out)
    victim = next((out / "quarantine").rglob("part-*.parquet"))
    victim.unlink()
    with pytest.raises(
        WarehouseError,
        match=r"1 quarantine files that _manifest/objects names are missing, e\.g\. "
        r"quarantine/.*: committed rows were lost",
    ):
        refresh(db, out)
    assert query(db, "SELECT count(*) AS n FROM quarantine").column("n")[0].as_py() == before.tables["quarantine"].rows


def _busiest_object(out: Path):
    """The manifest entry of the object with the most entities (a retraction then shows)."""
    from nerflow.etl import manifest

    fs, root = storage.filesystem(str(out))
    counts = {r["source_uri"]: r["entities"] for r in manifest.read_manifest_table(fs, root).to_pylist()}
    return manifest.read_manifest(fs, root)[max(sorted(counts), key=counts.get)]


def _retract(out: Path, entry, *, die_after: int | None = None) -> bool:
    """Retract ``entry``'s object; with ``die_after``, the process dies after that many writes
    and deletions of files (returns whether it died before the end)."""
    from nerflow.etl import writing

    fs, root = storage.filesystem(str(out))
    if die_after is None:
        writing.retract(fs, root, [entry])
        return False
    done = []

    def counted(real):
        def step(*args):
            if len(done) == die_after:
                raise KeyboardInterrupt  # stands in for the process dying here
            done.append(args[1])
            return real(*args)

        return step

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(storage, "write_bytes_atomic", counted(storage.write_bytes_atomic))
        mp.setattr(storage, "remove_files", counted(storage.remove_files))
        try:
            writing.retract(fs, root, [entry])
        except KeyboardInterrupt:
            return True
    return False


def _orphans(db: Path) -> int:
    return (
        query(db, "SELECT count(*) AS n FROM entities e ANTI JOIN documents d USING (run_id, doc_id)")
        .column("n")[0]
        .as_py()
    )


def test_a_retraction_leaves_consistent_tables_at_every_step_and_recovery_finishes_it(runs, tmp_path):
    from nerflow.etl import manifest, writing

    entry = _busiest_object(runs.out)
    expected = {
        t: [r for r in parquet_rows(runs.out, t) if r["source_uri"] != entry.source_uri]
        for t in ("documents", "entities")
    }
    assert all(len(rows) < len(parquet_rows(runs.out, t)) for t, rows in expected.items())
    # Killed after writing the intent (step 1), after each data file, after the manifest file.
    for step in range(1, 100):
        killed = tmp_path / f"killed-{step}"
        shutil.copytree(runs.out, killed)
        if not _retract(killed, entry, die_after=step):
            break
        db = tmp_path / f"w-{step}.duckdb"
        report = refresh(db, killed)  # the intent is still there: the object's rows are left out everywhere
        assert _orphans(db) == 0
        for t in ("documents", "entities"):
            assert warehouse_rows(db, t) == expected[t], (step, t)
        assert entry.source_uri not in query(db, "SELECT source_uri FROM objects").column("source_uri").to_pylist()
        assert any("a run is retracting" in n for n in report.notes)

        kfs, kroot = storage.filesystem(str(killed))
        assert writing.recover(kfs, kroot).retractions_finished == 1
        assert not list((killed / "_manifest" / "_pending").glob("*.json"))
        assert entry.source_uri not in manifest.read_manifest(kfs, kroot)
        for t in ("documents", "entities"):
            assert parquet_rows(killed, t) == expected[t]
        refresh(db, killed)  # every file the manifest names exists after recovery
        assert warehouse_rows(db, "documents") == expected["documents"]
    assert step > 3


def test_files_a_retraction_emptied_are_no_longer_named(runs, tmp_path):
    from nerflow.etl import manifest

    out, db = tmp_path / "out", tmp_path / "w.duckdb"
    shutil.copytree(runs.out, out)
    entry = _busiest_object(out)
    _retract(out, entry)
    fs, root = storage.filesystem(str(out))
    named = {f for e in manifest.read_manifest(fs, root).values() for f in e.files}
    assert named and all((out / f).exists() for f in named)
    refresh(db, out)
    assert entry.source_uri not in query(db, "SELECT source_uri FROM documents").column("source_uri").to_pylist()


def test_files_of_another_table_or_a_newer_version_are_refused_and_nothing_changes(runs, tmp_path):
    out, db = tmp_path / "out", tmp_path / "w.duckdb"
    shutil.copytree(runs.out, out)
    before = refresh(db, out)
    path = next((out / "entities").rglob("part-*.parquet"))
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"nerflow.schema_version": b"99"}), path)
    with pytest.raises(WarehouseError, match="entities contract version 99; this nerflow knows versions up to 2"):
        refresh(db, out)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"nerflow.table": b"documents"}), path)
    with pytest.raises(WarehouseError, match=r"is not a entities file written by nerflow \(stamped table='documents'"):
        refresh(db, out)
    assert query(db, "SELECT count(*) AS n FROM entities").column("n")[0].as_py() == before.tables["entities"].rows
    with pytest.raises(WarehouseError, match="no output here"):
        refresh(db, tmp_path / "nothing")


def test_files_of_older_contract_versions_load_with_nulls_in_the_newer_columns(runs, tmp_path):
    out, db = tmp_path / "out", tmp_path / "w.duckdb"
    shutil.copytree(runs.out, out)
    # Rewrite one run record and every quarantine file as their v1 contracts wrote them.
    run_file = next((out / "_manifest" / "runs").glob("run-*.parquet"))
    t = pq.read_table(run_file)
    pq.write_table(t.select(MANIFEST_RUNS_V1.file_schema.names).cast(MANIFEST_RUNS_V1.file_schema), run_file)
    for path in (out / "quarantine").rglob("part-*.parquet"):
        t = pq.read_table(path)
        pq.write_table(t.select(QUARANTINE_V1.file_schema.names).cast(QUARANTINE_V1.file_schema), path)
    report = refresh(db, out)
    assert report.tables["runs"].versions == (1, 3) and report.tables["quarantine"].versions == (1,)
    assert report.tables["quarantine"].rows == runs.second.counts["quarantine"]
    runs_rows = query(db, "SELECT run_id, model_labels, embedding_dim, span_filter, spans FROM runs").to_pylist()
    assert sum(r["model_labels"] is None and r["embedding_dim"] is None for r in runs_rows) == 1
    assert sum(r["span_filter"] is None and r["spans"] is None for r in runs_rows) == 1
    assert query(db, 'SELECT count(*) AS n FROM quarantine WHERE "check" IS NULL').column("n")[0].as_py() > 0
    with duckdb.connect(str(db), read_only=True) as con:
        nulls = dict(con.execute('SELECT column_name, "null" FROM (DESCRIBE runs)').fetchall())
        types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE quarantine)").fetchall())
    assert nulls["model_labels"] == "YES" and nulls["run_id"] == "NO"
    assert types["check"] == "VARCHAR"


def test_an_s3_output_is_read_through_fsspec(runs, s3, tmp_path):
    # A prefix of its own: the moto server lives for the whole session, other tests write to it.
    prefix = f"nerflow/warehouse-{uuid.uuid4().hex[:8]}"
    fs, _ = storage.filesystem("s3://nerflow", s3)
    for path in runs.out.rglob("*"):
        if path.is_file():
            fs.pipe_file(f"{prefix}/{path.relative_to(runs.out).as_posix()}", path.read_bytes())
    db = tmp_path / "w.duckdb"
    report = refresh(db, f"s3://{prefix}", s3)
    assert report.output == f"s3://{prefix}"
    assert {t: load.rows for t, load in report.tables.items()} == runs.second.counts
    assert warehouse_rows(db, "entities") == parquet_rows(runs.out, "entities")


def test_nerflow_warehouse_command(runs, s3, tmp_path, capsys):
    from nerflow.cli import main

    db = tmp_path / "cli.duckdb"
    assert main(["warehouse", str(runs.out), "--duckdb", str(db)]) == 0
    printed = capsys.readouterr().out
    assert f"warehouse {db} <- {runs.out}" in printed
    assert f"documents          {runs.second.counts['documents']:>10} rows" in printed
    assert "entity_embeddings" in printed
    assert sorted(query(db, "SELECT doc_id FROM documents").column("doc_id").to_pylist()) == sorted(runs.second.doc_ids)

    fs, _ = storage.filesystem("s3://nerflow", s3)
    fs.pipe_file("nerflow/empty/_manifest/objects/.keep", b"")
    endpoint = s3["client_kwargs"]["endpoint_url"]
    assert main(["warehouse", "s3://nerflow/empty", "--duckdb", str(db), "--endpoint-url", endpoint]) == 0
    assert query(db, "SELECT count(*) AS n FROM documents").column("n")[0].as_py() == 0
    assert "entity_embeddings" not in {
        r["table_name"] for r in query(db, "SELECT table_name FROM warehouse_tables").to_pylist()
    }

    assert main(["warehouse", str(tmp_path / "missing"), "--duckdb", str(db)]) == 1
    assert "nerflow warehouse: WarehouseError: no output here" in capsys.readouterr().err

    # A directory that is not an output (the backfill folder above the model's, the input)
    # is refused before the warehouse is touched, and no warehouse file is created.
    kept = tmp_path / "kept.duckdb"
    assert main(["warehouse", str(runs.out), "--duckdb", str(kept)]) == 0
    capsys.readouterr()
    for wrong in (runs.inp, runs.out / "documents"):
        assert main(["warehouse", str(wrong), "--duckdb", str(kept)]) == 1
        assert "not an output of nerflow run (no _manifest/)" in capsys.readouterr().err
        assert main(["warehouse", str(wrong), "--duckdb", str(tmp_path / "new.duckdb")]) == 1
        assert not (tmp_path / "new.duckdb").exists()
    assert query(kept, "SELECT count(*) AS n FROM documents").column("n")[0].as_py() == runs.second.counts["documents"]
