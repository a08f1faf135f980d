"""Data contracts: one Arrow schema and one Great Expectations suite per table, versioned.

The tables are ``entities``, ``entity_embeddings``, ``documents``, ``quarantine`` and
``_manifest`` (see DESIGN.md). Validation here decides which rows go to quarantine and why;
it reads pandas/Arrow data and never orchestrates (no Prefect import).
"""

__all__: list[str] = []
