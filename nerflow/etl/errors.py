"""Errors of the document ETL (listing, reading, writing the output tables).

They extend :mod:`ner_core.errors`: every class derives from :class:`NerflowError`, and whether
Prefect retries a task is decided by :class:`TransientError` vs :class:`TerminalError`
(see ``tasks._retry.retry_if_transient``). Leaves store the object they failed on and print it
(``uri=``, ``table=``, ``device=``); they pickle through ``NerflowError.__reduce__``.

The errors :mod:`nerflow.storage` raises (:class:`StorageError`, :class:`InputNotFoundError`,
:class:`InvalidURIError`) and their base :class:`UriError` live in :mod:`nerflow.errors`, below
storage and the ETL both, and are re-exported here.

Bad input *records* are not errors: they become rows of the ``quarantine`` table.
"""

from __future__ import annotations

from ner_core.errors import NerflowError, TerminalError
from nerflow.errors import InputNotFoundError, InvalidURIError, StorageError, UriError

__all__ = [
    "NerflowError",
    "UriError",
    "StorageError",
    "InputNotFoundError",
    "InvalidURIError",
    "ManifestError",
    "OutputBusyError",
    "ContractViolationError",
    "BatchRejectedError",
    "ReconciliationError",
    "DeviceUnavailableError",
]


class OutputBusyError(UriError, TerminalError):
    """Another run holds the output's writer lease: two writers would commit the same objects
    twice, and one's recovery would delete the other's batches in flight."""


class ManifestError(UriError, TerminalError):
    """The output's manifest (or a pending-commit record) is unreadable, so the run cannot
    tell what is already done without risking duplicates."""


class ContractViolationError(TerminalError):
    """A batch's table does not fit its contract in a way no quarantine can fix: a schema
    difference, a failing quarantine row, a check that could not run (a bug upstream, not
    bad input)."""

    def __init__(self, message: str, *, table: str) -> None:
        super().__init__(f"{message} (table={table!r})")
        self.table = table


class BatchRejectedError(TerminalError):
    """More of a batch's documents broke the contracts than the run allows
    (``max_failure_rate``): the batch is not written and the run fails."""

    def __init__(self, message: str, *, batch_id: str) -> None:
        super().__init__(f"{message} (batch={batch_id!r})")
        self.batch_id = batch_id


class ReconciliationError(TerminalError):
    """A batch's counts do not add up (documents in vs written and quarantined, entities vs
    ``documents.n_entities``): rows would be lost or invented, so nothing is written."""

    def __init__(self, message: str, *, batch_id: str) -> None:
        super().__init__(f"{message} (batch={batch_id!r})")
        self.batch_id = batch_id


class DeviceUnavailableError(TerminalError):
    """The device policy asks for hardware this machine does not have."""

    def __init__(self, message: str, *, device: str) -> None:
        super().__init__(f"{message} (device={device!r})")
        self.device = device
