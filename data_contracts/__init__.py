"""Data contracts: one Arrow schema and one Great Expectations suite per table, versioned.

The tables are ``entities``, ``entity_embeddings``, ``documents``, ``quarantine`` and
``_manifest`` (see ``docs/architecture.md`` and the generated ``docs/tables.md``). Modules:

* :mod:`~data_contracts.schemas`: the Arrow schemas, every released version, column meanings;
* :mod:`~data_contracts.suites`: the row rules of each table, declared as data, built into GX
  expectation suites on demand;
* :mod:`~data_contracts.views`: derived columns (Polars) for rules that span tables;
* :mod:`~data_contracts.validation`: the Arrow schema check and the GX run (ephemeral context);
* :mod:`~data_contracts.gx`: Great Expectations, imported on first use, analytics off;
* :mod:`~data_contracts.results`: what a check found, and its JSON form;
* :mod:`~data_contracts.fingerprints`: schema fingerprints, so a schema only changes with its
  version;
* :mod:`~data_contracts.render_docs`: ``docs/tables.md`` from all of the above.

Validation here says which rows break which rule; deciding what to quarantine is the ETL's
(:mod:`nerflow.etl.validating`). Nothing here orchestrates (no Prefect import), and Great
Expectations is imported only when a suite runs.
"""

__all__: list[str] = []
