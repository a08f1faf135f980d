"""How long the I/O tasks retry a transient failure."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tasks._retry import RETRY_SECONDS_VARIABLE, backoff_delays


def test_the_default_backoff_is_2_10_30_seconds():
    assert backoff_delays(42) == [2, 10, 30]


@pytest.mark.parametrize("total", [0, 5, 42, 300, 1800])
def test_the_delays_grow_and_add_up_to_the_total(total):
    delays = backoff_delays(total)
    assert sum(delays) == pytest.approx(total)
    assert all(d <= 60 for d in delays)
    assert delays[:-1] == sorted(delays[:-1])


def test_the_total_is_set_in_the_environment():
    code = (
        "from tasks import listing; print(listing.plan_batches.retries, sum(listing.plan_batches.retry_delay_seconds))"
    )
    env = {**__import__("os").environ, RETRY_SECONDS_VARIABLE: "300"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["8", "300.0"]
    bad = subprocess.run(
        [sys.executable, "-c", "import tasks._retry"],
        env={**env, RETRY_SECONDS_VARIABLE: "soon"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and f"{RETRY_SECONDS_VARIABLE} must be a number of seconds" in bad.stderr
