"""The document ETL's stages as plain functions, with no Prefect import.

One module per stage, in the order a batch meets them: :mod:`~nerflow.etl.listing` (list
input objects, skip what the manifest records, group into batches),
:mod:`~nerflow.etl.reading` (JSONL, Parquet, text into one frame; bad records to
quarantine, whose rows every stage builds with :mod:`~nerflow.etl.quarantine`),
:mod:`~nerflow.etl.normalising` (Polars text clean-up, language, digests),
:mod:`~nerflow.etl.annotating` (the :mod:`ner_core` engine over a batch),
:mod:`~nerflow.etl.tables` (the output tables of a batch, fitted to
:mod:`data_contracts.schemas`), :mod:`~nerflow.etl.validating` (the batch held to the data
contracts: failing documents to quarantine, too many failures reject the batch, counts
reconciled) and :mod:`~nerflow.etl.writing` (atomic commit, manifest, recovery). The Prefect
tasks in :mod:`tasks` each call one of them. :mod:`~nerflow.etl.verifying` checks an output
that landed against the contracts (``nerflow validate``).

Submodules are not imported here, so that a caller pays only for the stages it uses
(:mod:`~nerflow.etl.annotating` loads the engine and torch).
"""

__all__: list[str] = []
