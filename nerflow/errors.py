"""Errors about what lives at a URI, and how any error reads to a person.

This module sits below :mod:`nerflow.storage` and :mod:`nerflow.etl`: storage raises the
errors here, and every ETL stage imports storage, so storage must not import the ETL package
for them. :mod:`nerflow.etl.errors` re-exports them beside the ETL's own errors.

Whether an error is worth retrying stays part of its type: each leaf derives from
:class:`~ner_core.errors.TransientError` or :class:`~ner_core.errors.TerminalError` as well
as from :class:`UriError`.
"""

from __future__ import annotations

from ner_core.errors import NerflowError, TerminalError, TransientError

__all__ = ["UriError", "StorageError", "InputNotFoundError", "InvalidURIError", "describe_error"]


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
