"""Which task failures Prefect retries, and for how long: transient ones only (see
``ner_core.errors``), with backoff, for ``NERFLOW_IO_RETRY_SECONDS`` in all (default 42)."""

from __future__ import annotations

import os
from typing import Any

from ner_core.errors import TransientError

__all__ = ["retry_if_transient", "backoff_delays", "IO_RETRIES", "IO_RETRY_DELAYS", "RETRY_SECONDS_VARIABLE"]

RETRY_SECONDS_VARIABLE = "NERFLOW_IO_RETRY_SECONDS"
_DEFAULT_RETRY_SECONDS = 42.0


def backoff_delays(total: float, *, first: float = 2.0, longest: float = 60.0) -> list[float]:
    """Seconds between attempts, growing (2, 10, 30, 60, 60, …) until they add up to ``total``:
    an object store that throttles or restarts needs more than a moment, and an outage longer
    than ``total`` fails the task cleanly. 42 s gives 2, 10, 30."""
    if total < 0:
        raise ValueError(f"{RETRY_SECONDS_VARIABLE} must be 0 or more seconds, got {total:g}")
    delays: list[float] = []
    step = first
    while sum(delays) < total:
        delays.append(min(step, total - sum(delays)))
        step = min(longest, 5 * step if step < 10 else 3 * step)
    return delays


def _retry_seconds() -> float:
    value = os.environ.get(RETRY_SECONDS_VARIABLE, "").strip()
    try:
        return float(value) if value else _DEFAULT_RETRY_SECONDS
    except ValueError:
        raise ValueError(f"{RETRY_SECONDS_VARIABLE} must be a number of seconds, got {value!r}") from None


# Read when the tasks are defined (Prefect takes retries at decoration): set the variable in
# the environment of the process that runs the flow (the worker's, or nerflow run's).
IO_RETRY_DELAYS: list[float] = backoff_delays(_retry_seconds())
IO_RETRIES = len(IO_RETRY_DELAYS)


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
