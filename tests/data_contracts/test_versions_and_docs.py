"""Schemas change only with their version, and docs/tables.md is generated from the contracts."""

from __future__ import annotations

import json

import pyarrow as pa

from data_contracts import fingerprints, render_docs
from data_contracts.schemas import ALL_VERSIONS, CONTRACTS, ENTITIES_V1, ENTITIES_V2, TableContract
from data_contracts.suites import TABLE_CHECKS


def test_every_released_schema_matches_its_recorded_fingerprint():
    assert fingerprints.problems() == []


def _with_entities(schema: pa.Schema, version: int) -> dict:
    changed = TableContract(name="entities", version=version, schema=schema, partition_by=ENTITIES_V1.partition_by)
    return {**ALL_VERSIONS, "entities": {**ALL_VERSIONS["entities"], version: changed}}


def test_a_schema_changed_without_a_new_version_fails(monkeypatch):
    start = ENTITIES_V1.schema.get_field_index("start")
    wider = ENTITIES_V1.schema.set(start, pa.field("start", pa.int64(), nullable=False))
    monkeypatch.setattr(fingerprints, "ALL_VERSIONS", _with_entities(wider, 1))
    [problem] = fingerprints.problems()
    assert problem.startswith("the schema of entities v1 changed") and "add entities v2 beside v1" in problem


def test_prose_is_not_part_of_the_fingerprint():
    reworded = TableContract(
        name="entities",
        version=1,
        schema=ENTITIES_V1.schema,
        partition_by=ENTITIES_V1.partition_by,
        description="other words",
        column_docs={"doc_id": "other words"},
    )
    assert fingerprints.fingerprint(reworded) == fingerprints.fingerprint(ENTITIES_V1)


def test_a_new_version_is_recorded_and_an_old_record_never_rewritten(monkeypatch, tmp_path):
    record = tmp_path / "fingerprints.json"
    record.write_text(fingerprints.FINGERPRINTS_FILE.read_text())
    monkeypatch.setattr(fingerprints, "FINGERPRINTS_FILE", record)
    extra = ENTITIES_V2.schema.append(pa.field("sentence", pa.int32(), nullable=True))
    monkeypatch.setattr(fingerprints, "ALL_VERSIONS", _with_entities(extra, 3))
    assert fingerprints.problems() == [
        "entities v3 has no recorded fingerprint: record it with `python -m data_contracts.render_docs --write`"
    ]
    assert fingerprints.record_new() == ["entities v3"]
    saved = json.loads(record.read_text())
    assert saved["entities"]["2"] == fingerprints.fingerprint(ENTITIES_V2)
    assert saved["entities"]["3"] == fingerprints.fingerprint(
        TableContract(name="entities", version=3, schema=extra, partition_by=ENTITIES_V2.partition_by)
    )
    assert fingerprints.problems() == [] and fingerprints.record_new() == []

    # A schema changed under a released version stays an error even after --write.
    start = extra.get_field_index("start")
    monkeypatch.setattr(
        fingerprints, "ALL_VERSIONS", _with_entities(extra.set(start, pa.field("start", pa.int64())), 3)
    )
    monkeypatch.setattr(render_docs, "problems", fingerprints.problems)
    monkeypatch.setattr(render_docs, "record_new", fingerprints.record_new)
    monkeypatch.setattr(render_docs, "DOCS_FILE", tmp_path / "tables.md")
    assert render_docs.main(["--write"]) == 1
    assert json.loads(record.read_text())["entities"]["3"] == saved["entities"]["3"]


def test_docs_tables_md_is_generated_from_the_contracts():
    assert render_docs.DOCS_FILE.read_text() == render_docs.render(), (
        "docs/tables.md is stale: run `python -m data_contracts.render_docs --write`"
    )


def test_the_page_lists_every_column_check_and_version():
    text = render_docs.render()
    for name, contract in CONTRACTS.items():
        assert f"## {name} (v{contract.version})" in text
        assert fingerprints.fingerprint(contract) in text
        for column in contract.schema.names:
            assert f"| `{column}` |" in text
    for table, checks in TABLE_CHECKS.items():
        for check in checks:
            assert f"| `{check.name}` |" in text, (table, check.name)
    assert "History: v1 (fingerprint" in text  # quarantine and runs have an older version
    assert "the first record in input order wins" in text.lower()


def test_the_check_command_reports_a_stale_page(monkeypatch, tmp_path, capsys):
    page = tmp_path / "tables.md"
    monkeypatch.setattr(render_docs, "DOCS_FILE", page)
    assert render_docs.main(["--check"]) == 1
    assert "is stale" in capsys.readouterr().err
    page.write_text(render_docs.render())
    assert render_docs.main(["--check"]) == 0
