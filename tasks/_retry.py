"""Which task failures Prefect retries: transient ones only (see ``ner_core.errors``)."""

from __future__ import annotations

from typing import Any

from ner_core.errors import TransientError

__all__ = ["retry_if_transient", "IO_RETRIES", "IO_RETRY_DELAYS"]

IO_RETRIES = 3
IO_RETRY_DELAYS: list[float] = [2, 10, 30]
"""Seconds between attempts: an object store that throttles needs more than a moment."""


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` for I/O tasks: retry a :class:`TransientError`, nothing else
    (a terminal error, or a bug, would fail the same way again)."""
    try:
        state.result()
    except TransientError:
        return True
    except Exception:  # noqa: BLE001 (terminal or a bug: a retry would fail the same way)
        return False
    return False
