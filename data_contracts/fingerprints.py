"""Schema fingerprints: a schema may only change together with its version.

``fingerprints.json`` (checked in beside this module) records, per table and version, a digest
of the schema's column names, types, nullability and partition columns (not the prose). A
test compares every released contract (:data:`~data_contracts.schemas.ALL_VERSIONS`) with its
record: a schema edited under a released version number fails it. New versions are recorded
by :func:`record_new` (``python -m data_contracts.render_docs --write``), which never rewrites
an existing record.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from data_contracts.schemas import ALL_VERSIONS, TableContract

__all__ = ["FINGERPRINTS_FILE", "fingerprint", "recorded", "problems", "record_new"]

FINGERPRINTS_FILE = Path(__file__).with_name("fingerprints.json")


def fingerprint(contract: TableContract) -> str:
    """16 hex digits of sha256 over the schema's names, types, nullability and partitioning.

    ``entity_embeddings`` is fingerprinted at the width its entry in ``ALL_VERSIONS`` has
    (1): the width is the model's, the rest of the schema is the contract's.
    """
    canonical = {
        "columns": [[f.name, str(f.type), f.nullable] for f in contract.schema],
        "partition_by": list(contract.partition_by),
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:16]


def recorded() -> dict[str, dict[str, str]]:
    """The checked-in fingerprints: ``{table: {version: fingerprint}}``."""
    if not FINGERPRINTS_FILE.exists():
        return {}
    return json.loads(FINGERPRINTS_FILE.read_text())


def problems() -> list[str]:
    """Released contracts whose schema differs from its record, or that have no record."""
    have = recorded()
    out = []
    for name, versions in ALL_VERSIONS.items():
        for version, contract in versions.items():
            want = have.get(name, {}).get(str(version))
            got = fingerprint(contract)
            if want is None:
                out.append(
                    f"{name} v{version} has no recorded fingerprint: record it with "
                    "`python -m data_contracts.render_docs --write`"
                )
            elif want != got:
                out.append(
                    f"the schema of {name} v{version} changed (fingerprint {got}, recorded {want}) without a "
                    f"new version: add {name} v{version + 1} beside v{version} and point CONTRACTS at it"
                )
    return out


def record_new() -> list[str]:
    """Record the fingerprints of versions that have none; never touch existing ones.

    Returns:
        ``"<table> v<version>"`` of each version recorded.
    """
    have = recorded()
    added = []
    for name, versions in ALL_VERSIONS.items():
        for version, contract in versions.items():
            if str(version) not in have.setdefault(name, {}):
                have[name][str(version)] = fingerprint(contract)
                added.append(f"{name} v{version}")
    if added:
        FINGERPRINTS_FILE.write_text(json.dumps(have, indent=2, sort_keys=True) + "\n")
    return added
