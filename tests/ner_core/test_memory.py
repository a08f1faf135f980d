import sys

import pytest

from ner_core import EngineConfig, NerEngine
from ner_core.memory import HeapGuard, release_freed_heap, resident_bytes


def _glibc() -> bool:
    import platform

    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def _holes(n_blocks: int = 4000) -> list[bytes]:
    """Heap holes: 100 KB blocks (under malloc's mmap threshold, so from the heap), every other
    one freed; the kept ones lie between the holes, so the heap cannot shrink from its top."""
    blocks = [b"x" * 100_000 for _ in range(n_blocks)]
    return blocks[1::2]


@pytest.mark.skipif(not _glibc(), reason="malloc_trim is glibc's")
def test_freed_holes_in_the_heap_go_back_to_the_system():
    kept = _holes()
    before = resident_bytes() / 2**20
    assert release_freed_heap() is True
    after = resident_bytes() / 2**20
    assert before - after > 100, f"resident memory {before:.0f} MB before, {after:.0f} MB after"
    assert len(kept) == 2000


@pytest.mark.skipif(not _glibc(), reason="malloc_trim is glibc's")
def test_the_guard_trims_only_once_memory_grew_past_its_slack():
    guard = HeapGuard(slack_bytes=150 << 20)
    assert guard.check() is False and guard.trims == 0  # nothing grew
    kept = _holes()  # about 400 MB touched, 200 MB of it freed again
    grown = resident_bytes()
    assert guard.check() is True and guard.trims == 1
    assert grown - resident_bytes() > 100 << 20
    assert guard.check() is False and guard.trims == 1  # the baseline moved to after the trim
    assert len(kept) == 2000


def test_a_negative_slack_is_refused():
    with pytest.raises(ValueError, match="slack_bytes"):
        HeapGuard(slack_bytes=-1)


def test_the_engine_checks_its_heap_after_every_batch(tiny_model):
    engine = NerEngine(tiny_model, EngineConfig(lookahead_tokens=50, batch_tokens=64))
    checks = []
    check = engine.heap_guard.check
    engine.heap_guard.check = lambda: checks.append(1) or check()
    list(engine.predict(["Angela Merkel visited Paris ."] * 12))
    assert engine.stats.batches > 1
    assert len(checks) == engine.stats.batches
