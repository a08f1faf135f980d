"""What a caller of the extract-entities flow hears while it runs: the plan, then each
committed batch (the command line's progress bar listens)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from prefect import get_run_logger

from nerflow.etl.listing import Plan
from nerflow.etl.report import BatchReport

__all__ = ["ProgressEvent", "progress_listener", "emit"]


@dataclass(frozen=True, kw_only=True)
class ProgressEvent:
    """What a progress listener hears: the plan once, then each committed batch.

    Attributes:
        kind: ``"planned"`` or ``"batch"``.
        plan: The run's plan (``"planned"``).
        report: The batch just committed (``"batch"``).
    """

    kind: Literal["planned", "batch"]
    plan: Plan | None = None
    report: BatchReport | None = None


# Context-local, not global: set by the caller around one flow call (the command line's
# progress bar); Prefect runs a synchronous flow in the caller's thread and context.
_listener: contextvars.ContextVar[Callable[[ProgressEvent], None] | None] = contextvars.ContextVar(
    "nerflow_progress_listener", default=None
)


@contextmanager
def progress_listener(callback: Callable[[ProgressEvent], None]) -> Iterator[None]:
    """Call ``callback`` with :class:`ProgressEvent` s of flow runs started inside the block."""
    token = _listener.set(callback)
    try:
        yield
    finally:
        _listener.reset(token)


def emit(event: ProgressEvent) -> None:
    """Tell the listener, if there is one."""
    callback = _listener.get()
    if callback is not None:
        try:
            callback(event)
        except Exception:  # noqa: BLE001 (a broken progress bar must not fail a run)
            get_run_logger().debug("progress listener failed", exc_info=True)
