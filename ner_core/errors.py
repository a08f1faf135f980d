"""Errors raised by the NER engine.

Every error derives from :class:`NerflowError`. Whether an error is worth retrying is part of
its type (:class:`TransientError` vs :class:`TerminalError`), so an orchestrator can decide
without parsing messages. Leaves store the object they failed on and pickle cleanly (they
cross process boundaries in Ray and multiprocessing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "NerflowError",
    "TransientError",
    "TerminalError",
    "ModelError",
    "ModelNotFoundError",
    "UnsafeCheckpointError",
    "ModelConfigError",
    "ModelDownloadError",
    "EncoderConversionError",
    "TrainingError",
    "WindowingError",
    "InferenceError",
]


class NerflowError(Exception):
    """Root of every error nerflow raises on purpose."""

    def __reduce__(
        self,
    ) -> tuple[Callable[..., NerflowError], tuple[type[NerflowError], dict[str, Any], tuple[Any, ...]]]:
        # Exceptions with keyword-only constructors do not pickle by default; rebuild from
        # the stored fields instead of ``self.args``.
        return (_rebuild, (type(self), self.__dict__, self.args))


_E = TypeVar("_E", bound=BaseException)


def _rebuild(cls: type[_E], state: dict[str, Any], args: tuple[Any, ...]) -> _E:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class TransientError(NerflowError):
    """A failure that may succeed when retried (network, a busy object store)."""


class TerminalError(NerflowError):
    """A failure that will fail again on retry (bad input, bad configuration)."""


class ModelError(TerminalError):
    """Base of the errors raised while resolving or loading a model."""

    def __init__(self, message: str, *, ref: str) -> None:
        super().__init__(f"{message} (model={ref!r})")
        self.ref = ref


class ModelNotFoundError(ModelError):
    """The model reference names nothing that exists."""


class UnsafeCheckpointError(ModelError):
    """The checkpoint holds only pickle weights and the caller did not opt in."""


class ModelConfigError(ModelError):
    """The checkpoint's configuration is not a usable SpanMarker configuration."""


class ModelDownloadError(TransientError):
    """Fetching a remote model into the local cache failed."""

    def __init__(self, message: str, *, ref: str) -> None:
        super().__init__(f"{message} (model={ref!r})")
        self.ref = ref


class TrainingError(TerminalError):
    """A training run that cannot start or go on: nothing in its data to learn, or a checkpoint
    written with another config than the one it is resumed with."""


class EncoderConversionError(TerminalError):
    """A bundled encoder could not be converted into a transformers folder."""

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(f"{message} (source={source!r})")
        self.source = source


class WindowingError(TerminalError):
    """A document could not be cut into model windows."""

    def __init__(self, message: str, *, doc_id: str) -> None:
        super().__init__(f"{message} (doc_id={doc_id!r})")
        self.doc_id = doc_id


class InferenceError(TerminalError):
    """The model failed on a batch of windows."""

    def __init__(self, message: str, *, doc_ids: tuple[str, ...]) -> None:
        super().__init__(f"{message} (doc_ids={list(doc_ids)!r})")
        self.doc_ids = doc_ids
