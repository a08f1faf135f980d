"""The Arrow contracts: versions, partitions, conforming tables, and their error messages."""

from __future__ import annotations

import pyarrow as pa
import pytest

from data_contracts.schemas import (
    ALL_VERSIONS,
    CONTRACTS,
    DOCUMENTS_V1,
    ENTITIES_V1,
    QUARANTINE_V1,
    QUARANTINE_V2,
    SchemaMismatchError,
    TableContract,
    contract_version,
    entity_embeddings_v1,
)


def test_every_table_has_a_versioned_contract():
    assert set(CONTRACTS) == {"entities", "documents", "segments", "quarantine", "_manifest/objects", "_manifest/runs"}
    assert {name: c.version for name, c in CONTRACTS.items()} == {
        "entities": 2,
        "documents": 2,
        "segments": 1,
        "quarantine": 2,
        "_manifest/objects": 1,
        "_manifest/runs": 3,
    }
    for contract in CONTRACTS.values():
        version = str(contract.version).encode()
        assert contract.file_schema.metadata == {
            b"nerflow.table": contract.name.encode(),
            b"nerflow.schema_version": version,
        }
        assert not set(contract.partition_by) & set(contract.file_schema.names)
        assert ALL_VERSIONS[contract.name][contract.version] is contract


def test_every_column_of_every_contract_is_described():
    for versions in ALL_VERSIONS.values():
        for contract in versions.values():
            assert contract.description
            assert set(contract.column_docs) == set(contract.schema.names), contract.name
            assert all(contract.column_docs.values()), contract.name


def test_old_versions_stay_readable():
    assert contract_version("quarantine", 1) is QUARANTINE_V1 and contract_version("quarantine", 2) is QUARANTINE_V2
    assert QUARANTINE_V2.schema.names == [*QUARANTINE_V1.schema.names[:5], "check", *QUARANTINE_V1.schema.names[5:]]
    assert contract_version("entity_embeddings", 1, dim=3, dtype="float16").schema.field("vector").type.list_size == 3
    assert contract_version("entities", 9) is None and contract_version("nope", 1) is None


def test_column_docs_must_name_columns():
    with pytest.raises(ValueError, match=r"column_docs name columns \['b'\] that are not in the t schema"):
        TableContract(name="t", version=1, schema=pa.schema([("a", pa.string())]), column_docs={"b": "?"})


def test_entities_and_documents_are_partitioned_by_date_and_language():
    assert ENTITIES_V1.partition_by == ("ingest_date", "lang") == DOCUMENTS_V1.partition_by
    assert ENTITIES_V1.schema.field("score").type == pa.float32()
    assert DOCUMENTS_V1.schema.field("text").type == pa.large_string()


def test_conform_orders_casts_and_drops_extra_columns():
    row = dict.fromkeys(ENTITIES_V1.schema.names, "x")
    row.update(start=3, end=5, score=0.5)
    out = ENTITIES_V1.conform(pa.Table.from_pylist([{**row, "extra": 1}]))
    assert out.schema.names == ENTITIES_V1.schema.names and out.schema.field("start").type == pa.int32()


def test_conform_names_what_is_wrong():
    with pytest.raises(SchemaMismatchError, match=r"missing columns \['entity_id'.*\(table='entities'\)"):
        ENTITIES_V1.conform(pa.table({"doc_id": ["a"]}))
    row = dict.fromkeys(ENTITIES_V1.schema.names, "x")
    row.update(start=1, end=2, score=0.1, doc_id=None)
    with pytest.raises(SchemaMismatchError, match="1 nulls in non-nullable column 'doc_id'"):
        ENTITIES_V1.conform(pa.Table.from_pylist([row]))
    row.update(doc_id="d", start="not a number")
    with pytest.raises(SchemaMismatchError, match="column 'start' does not cast to int32"):
        ENTITIES_V1.conform(pa.Table.from_pylist([row]))


def test_partition_columns_must_exist_and_be_strings():
    with pytest.raises(ValueError, match=r"partition columns \['day'\] are not in the t schema"):
        TableContract(name="t", version=1, schema=pa.schema([("a", pa.string())]), partition_by=("day",))
    with pytest.raises(ValueError, match="partition column 'a' of t must be a string"):
        TableContract(name="t", version=1, schema=pa.schema([("a", pa.int32())]), partition_by=("a",))


def test_embeddings_contract_fixes_width_and_type():
    contract = entity_embeddings_v1(8, "float16")
    assert contract.schema.field("vector").type == pa.list_(pa.field("item", pa.float16(), nullable=False), 8)
    with pytest.raises(ValueError, match="dim must be positive"):
        entity_embeddings_v1(0)
    with pytest.raises(ValueError, match="dtype must be one of"):
        entity_embeddings_v1(4, "int8")
