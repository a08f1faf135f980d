"""Errors about what lives at a URI, and how any error reads to a person.

This module sits below :mod:`nerflow.storage` and :mod:`nerflow.etl`: storage raises the
errors here, and every ETL stage imports storage, so storage must not import the ETL package
for them. :mod:`nerflow.etl.errors` re-exports them beside the ETL's own errors.

Whether an error is worth retrying stays part of its type: each leaf derives from
:class:`~ner_core.errors.TransientError` or :class:`~ner_core.errors.TerminalError` as well
as from :class:`UriError`.
"""

from __future__ import annotations

import errno

from ner_core.errors import NerflowError, TerminalError, TransientError

__all__ = [
    "UriError",
    "StorageError",
    "StorageRefusedError",
    "InputNotFoundError",
    "InvalidURIError",
    "storage_error",
    "describe_error",
]

# What the operating system says will not pass by waiting: retrying a write to a full or
# read-only disk only delays the failure (by 42 s per task with three retries).
_PERMANENT_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EROFS: "read-only file system",
    errno.EDQUOT: "disk quota exceeded",
}


class UriError(NerflowError):
    """Base of the errors about one object or location, which they store and print (``uri=``).

    Neither transient nor terminal by itself: a leaf says which by its other base.
    """

    def __init__(self, message: str, *, uri: str) -> None:
        super().__init__(f"{message} (uri={uri!r})")
        self.uri = uri


class StorageError(UriError, TransientError):
    """Reading, listing or writing an object failed for a reason that may pass (network,
    throttling, a busy object store)."""


class StorageRefusedError(UriError, TerminalError):
    """The store refused for a reason that waiting will not cure: no space left, a read-only
    file system, a quota. Not retried."""


def storage_error(message: str, error: BaseException, *, uri: str) -> UriError:
    """The error to raise when a storage call failed with ``error``: terminal
    (:class:`StorageRefusedError`) when the operating system says it will not pass, else
    :class:`StorageError`, which the I/O tasks retry (a network error, a throttling or
    unavailable object store)."""
    code = getattr(error, "errno", None)
    if code in _PERMANENT_ERRNOS:
        return StorageRefusedError(f"{message}: {_PERMANENT_ERRNOS[code]} ({error})", uri=uri)
    return StorageError(f"{message}: {error}", uri=uri)


class InputNotFoundError(UriError, TerminalError):
    """Nothing exists under the input URI."""


class InvalidURIError(UriError, TerminalError, ValueError):
    """The URI names a protocol fsspec cannot open (unknown, or its package is not installed).

    Also a ``ValueError``, so that a pydantic validator raising it reports a validation error."""


def describe_error(error: BaseException) -> str:
    """``error`` as one message for a person: its type's name, then what it says
    (``"StorageError: could not read ... (uri='s3://...')"``).

    The same words wherever an error is shown: the command line, the run record and reports,
    a quarantine row's reason.
    """
    return f"{type(error).__name__}: {error}"
