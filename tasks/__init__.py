"""Prefect tasks, one module per pipeline stage (listing, reading, normalising, annotating,
validating, writing, reporting).

Each task is a thin, typed wrapper that calls one function of :mod:`ner_core`,
:mod:`data_contracts` or a storage adapter; retries belong on the I/O tasks only.
"""

__all__: list[str] = []
