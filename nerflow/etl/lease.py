"""One writer per output: a lease file, ``_manifest/_writer.json``, held for the whole run.

Two runs writing one output at once would both process every new object (each commits it
once: the tables hold it twice), and the second run's :func:`nerflow.etl.writing.recover`
would delete the first one's batches in flight. So a run creates the lease file exclusively
(``O_EXCL`` on local disks, ``If-None-Match`` on S3) before anything else, renews it while it
runs and deletes it at the end; a second run is refused with who holds it.

A run killed with SIGKILL cannot delete its lease. Its lease is taken over when it is
*stale*: not renewed for ``expires_after`` seconds, or held by a process of this host that
no longer exists (so a rerun after ``kill -9`` on the same machine goes ahead at once).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta
from types import TracebackType

from fsspec import AbstractFileSystem

from nerflow import storage
from nerflow.etl.errors import OutputBusyError, StorageError

__all__ = ["OutputLease", "lease_path", "EXPIRES_AFTER", "RENEW_EVERY"]

logger = logging.getLogger(__name__)

EXPIRES_AFTER = 300.0
"""Seconds after its last renewal that a lease is stale."""
RENEW_EVERY = 60.0
"""Seconds between renewals."""


def lease_path(root: str) -> str:
    """The output's lease file."""
    return storage.join(root, "_manifest", "_writer.json")


class OutputLease:
    """The writer lease of the output at ``root`` (a context manager).

    Args:
        fs: The output filesystem.
        root: The output path.
        holder: Who holds it, for the message another run prints (the flow run id).
        run_id: The holder's flow run id, recorded so that a run taking the lease over from
            a dead one can name it (:attr:`taken_over` holds the dead run's record).
        expires_after: Seconds without renewal after which the lease may be taken over.
        renew_every: Seconds between renewals (a daemon thread).
    """

    def __init__(
        self,
        fs: AbstractFileSystem,
        root: str,
        *,
        holder: str,
        run_id: str | None = None,
        expires_after: float = EXPIRES_AFTER,
        renew_every: float = RENEW_EVERY,
    ) -> None:
        self.fs, self.root, self.path = fs, root, lease_path(root)
        self.holder, self.run_id, self.expires_after, self.renew_every = holder, run_id, expires_after, renew_every
        self.taken_over: dict | None = None
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self, started: str | None = None) -> bytes:
        now = datetime.now(UTC).isoformat()
        return json.dumps(
            {
                "token": self.token,
                "holder": self.holder,
                "run_id": self.run_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started_at": started or now,
                "renewed_at": now,
            }
        ).encode()

    def _read(self) -> dict | None:
        try:
            return json.loads(storage.read_bytes(self.fs, self.path))
        except StorageError:
            if not storage.exists(self.fs, self.path):
                return None
            raise
        except ValueError:
            return {}  # a torn or foreign file: stale below

    def _stale(self, held: dict) -> bool:
        try:
            renewed = datetime.fromisoformat(held["renewed_at"])
        except (KeyError, TypeError, ValueError):
            return True
        if datetime.now(UTC) - renewed > timedelta(seconds=self.expires_after):
            return True
        if held.get("host") == socket.gethostname() and isinstance(held.get("pid"), int):
            try:
                os.kill(held["pid"], 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False

    def acquire(self) -> None:
        """Take the lease.

        Raises:
            OutputBusyError: Another run holds it (and it is not stale).
            StorageError: The store could not be read or written.
        """
        uri = self.fs.unstrip_protocol(self.root)
        try:
            if storage.is_local(self.fs):
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self.fs.pipe_file(self.path, self._record(), mode="create")
        except FileExistsError:
            held = self._read()
            if held is not None and not self._stale(held):
                expires = datetime.fromisoformat(held["renewed_at"]) + timedelta(seconds=self.expires_after)
                raise OutputBusyError(
                    f"another run is writing to this output: {held.get('holder')} on {held.get('host')} (pid "
                    f"{held.get('pid')}), since {held.get('started_at')}. Wait for it to end; if it died on another "
                    f"machine, its lease {self.path} expires at {expires.isoformat(timespec='seconds')}",
                    uri=uri,
                ) from None
            logger.warning("taking over the writer lease of a run that is gone: %s", held)
            storage.write_bytes_atomic(self.fs, self.path, self._record())
            self.taken_over = held or {}
        except (OSError, ValueError) as e:
            raise StorageError(
                f"could not create the writer lease: {e}", uri=self.fs.unstrip_protocol(self.path)
            ) from e
        # Two runs taking over one stale lease at once: the last write wins, the other sees it.
        held = self._read()
        if not held or held.get("token") != self.token:
            raise OutputBusyError(
                f"another run took the writer lease at the same moment: {held and held.get('holder')}", uri=uri
            )
        self._started = held["started_at"]
        self._thread = threading.Thread(target=self._renew, name="nerflow-output-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_every):
            try:
                held = self._read()
                if not held or held.get("token") != self.token:
                    logger.error(
                        "the writer lease of %s was taken over by %s: another run may be writing",
                        self.root,
                        held and held.get("holder"),
                    )
                    return
                storage.write_bytes_atomic(self.fs, self.path, self._record(self._started))
            except Exception as e:  # noqa: BLE001 (a failed renewal is retried; the run goes on)
                logger.warning("could not renew the writer lease: %s", e)

    def release(self) -> None:
        """Give the lease back (only if it is still this run's)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            held = self._read()
            if held and held.get("token") == self.token:
                storage.remove_files(self.fs, [self.path])
        except StorageError as e:
            logger.warning("could not delete the writer lease (it expires by itself): %s", e)

    def __enter__(self) -> OutputLease:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.release()
            return
        # The run already failed: its error is the one to report. A lease that cannot be
        # given back now (the store that broke the run is still down) expires by itself.
        try:
            self.release()
        except Exception as e:  # noqa: BLE001 (never hide the run's own error behind this one)
            logger.warning("could not give the writer lease back after the run failed (it expires by itself): %s", e)
