"""Read PDFs in a child process, each page under a time limit.

pdfium is native code. A hostile or broken PDF can keep it busy on one page for hours, or
crash it, and Python cannot interrupt a native call. Read in the flow's own process, such a
file would stall every file behind it (pdfium reads one file at a time per process) or take
the run down with it. Read in a child process, it costs one quarantine row:

- the child reports each page it has read; a page (or the opening of the file, or the
  assembly of its text) that takes longer than the limit has the child killed, and the file
  is quarantined with the page it stopped at;
- a child that dies (a segfault in pdfium, the out-of-memory killer, which is told to take
  the child before its parent) is quarantined with how it died.

The child is a fresh interpreter (``python -m nerflow.etl.extraction.pdf_process``), not a
``multiprocessing`` child: a forked child would inherit Prefect's and torch's threads
mid-flight, and a spawned one re-runs the caller's main script, which a user's script that
starts a flow run at import would repeat. It is started on the first PDF, stays up between
files (starting one takes about 0.2 s; it holds about 80 MB), and is started again
after it is killed. One child per process, one file at a time, as pdfium allows.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from nerflow.etl.extraction.document import ExtractedDocument, ExtractionError

__all__ = ["PAGE_TIME_LIMIT_S", "PdfReaderProcess", "read_pdf"]

# A page's text layer takes pdfium milliseconds, a heavy page a second or two: a page that
# takes half a minute is not going to finish.
PAGE_TIME_LIMIT_S = 30.0

# Starting the child imports pypdfium2, NumPy and Polars: seconds on a busy machine.
_START_TIME_LIMIT_S = 120.0

# What the child reads PDFs with, as "module:function"; tests name others.
_EXTRACT_PDF = "nerflow.etl.extraction.pdf:extract_pdf"

Reader = Callable[[bytes, Callable[[int, int], None]], ExtractedDocument]


class PdfReaderProcess:
    """A child process that reads PDFs, one file at a time, with the function ``reader``
    names (``"module:function"``, called as :func:`~nerflow.etl.extraction.pdf.extract_pdf`
    is)."""

    def __init__(self, reader: str = _EXTRACT_PDF) -> None:
        self._reader = reader
        self._process: subprocess.Popen[bytes] | None = None
        self._to_child: Connection | None = None
        self._from_child: Connection | None = None
        self._lock = threading.Lock()

    def read(self, data: bytes, *, page_time_limit_s: float = PAGE_TIME_LIMIT_S) -> ExtractedDocument:
        """The document of ``data``, as :func:`extract_pdf` reads it; raises
        :class:`ExtractionError` with the quarantine reason for a file it refuses, a step
        slower than ``page_time_limit_s`` or a child that died."""
        if page_time_limit_s <= 0:
            raise ValueError(f"page_time_limit_s must be positive, got {page_time_limit_s}")
        with self._lock:
            to_child, from_child = self._started()
            pages_read, page_count = 0, None
            try:
                to_child.send_bytes(data)
                while True:
                    if not from_child.poll(page_time_limit_s):
                        self._stop()
                        raise ExtractionError(
                            f"{_step(pages_read, page_count)} took longer than {page_time_limit_s:g} s; "
                            "reading stopped (a PDF that keeps pdfium busy)",
                            page=_page(pages_read, page_count),
                        )
                    message = from_child.recv()
                    if message[0] == "progress":
                        pages_read, page_count = message[1], message[2]
                    else:
                        return _outcome(message)
            except (EOFError, OSError):
                how = self._stop()
                raise ExtractionError(
                    f"the PDF reader process {how} ({_step(pages_read, page_count)})",
                    page=_page(pages_read, page_count),
                ) from None
            except ExtractionError:
                raise
            except BaseException:
                # Interrupted mid-file (Ctrl-C, a cancelled task): the child's answer about this
                # file would be taken for the next one's, so it goes.
                self._stop()
                raise

    def close(self) -> None:
        """Stop the child; the next :meth:`read` starts another."""
        with self._lock:
            if self._to_child is not None:
                self._to_child.close()  # the child reads the end of its input and returns
                self._to_child = None
            if self._process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=5)
            self._stop()

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def _started(self) -> tuple[Connection, Connection]:
        if self._to_child is not None and self._from_child is not None and self.pid is not None:
            return self._to_child, self._from_child
        self._stop()
        data_read, data_write = os.pipe()
        messages_read, messages_write = os.pipe()
        env = {**os.environ, "PYTHONPATH": _added_paths()}
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, self._reader, str(data_read), str(messages_write)],
                pass_fds=(data_read, messages_write),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except BaseException:
            os.close(data_write)
            os.close(messages_read)
            raise
        finally:
            os.close(data_read)
            os.close(messages_write)
        self._to_child = Connection(data_write, readable=False)
        self._from_child = Connection(messages_read, writable=False)
        try:
            if not self._from_child.poll(_START_TIME_LIMIT_S):
                self._stop()
                raise ExtractionError(f"the PDF reader process did not start within {_START_TIME_LIMIT_S:g} s")
            self._from_child.recv()  # ("ready",)
        except (EOFError, OSError):
            how = self._stop()
            raise ExtractionError(f"the PDF reader process {how} while starting") from None
        return self._to_child, self._from_child

    def _stop(self) -> str:
        """Kill the child if it runs and forget it; how it ended, in words."""
        for connection in (self._to_child, self._from_child):
            if connection is not None:
                connection.close()
        self._to_child = self._from_child = None
        process, self._process = self._process, None
        if process is None:
            return "ended"
        if process.poll() is None:
            process.kill()
        return _how_it_ended(process.wait())


def _added_paths() -> str:
    """What this process added to its import path (the project's root, a test's), for the
    child to import the same modules. The interpreter's own directories are left out: on
    PYTHONPATH they would come before the standard library."""
    own = [Path(prefix).resolve() for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}]
    added = [p for p in sys.path if p and not any(Path(p).resolve().is_relative_to(o) for o in own)]
    return os.pathsep.join(added)


def _outcome(message: tuple[Any, ...]) -> ExtractedDocument:
    kind = message[0]
    if kind == "read":
        document: ExtractedDocument = message[1]
        return document
    if kind == "refused":
        raise ExtractionError(message[1], page=message[2], part=message[3])
    # "failed": a reader bug, in the words the reading task uses for one
    raise ExtractionError(f"could not be read: {message[1]}")


def _how_it_ended(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _step(pages_read: int, page_count: int | None) -> str:
    if page_count is None:
        return "opening the PDF"
    if pages_read < page_count:
        return f"reading page {pages_read + 1} of {page_count}"
    return "assembling the text of its pages"


def _page(pages_read: int, page_count: int | None) -> int | None:
    return pages_read + 1 if page_count is not None and pages_read < page_count else None


def _serve(reader: str, data_fd: int, messages_fd: int) -> None:
    """The child's loop: a file's bytes in; progress messages, then its outcome, out."""
    # Ctrl-C in a terminal reaches the whole process group: the parent decides what happens
    # to its child (closes or kills it); the child must not die with a traceback on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _first_to_go_when_memory_runs_out()
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    module, _, name = reader.partition(":")
    read: Reader = getattr(importlib.import_module(module), name)
    inbox = Connection(data_fd, writable=False)
    outbox = Connection(messages_fd, readable=False)

    def progress(pages_read: int, page_count: int) -> None:
        outbox.send(("progress", pages_read, page_count))

    outbox.send(("ready",))
    while True:
        try:
            data = inbox.recv_bytes()
        except (EOFError, OSError):
            return
        outcome: tuple[Any, ...]
        try:
            outcome = ("read", read(data, progress))
        except ExtractionError as e:
            outcome = ("refused", e.reason, e.page, e.part)
        except Exception as e:  # noqa: BLE001  # the parent quarantines the file with it
            # Imported here: nerflow.errors imports ner_core, and with it torch, which the
            # child has no use for otherwise (it would triple the child's memory).
            from nerflow.errors import describe_error

            outcome = ("failed", describe_error(e))
        outbox.send(outcome)


def _first_to_go_when_memory_runs_out() -> None:
    # A PDF that makes pdfium allocate without end would otherwise have the kernel's
    # out-of-memory killer choose between the child and its parent, which holds the model:
    # the child is the one to go, and its file is quarantined with how it died.
    try:
        with open("/proc/self/oom_score_adj", "w") as adj:
            adj.write("1000")
    except OSError:  # not Linux, or /proc not mounted: nothing to adjust
        pass


def _exit_with_parent(parent: int) -> None:
    # A parent killed outright cannot stop its child; a page that never ends would keep an
    # orphan busy. pdfium's calls release the GIL, so this thread runs beside them.
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


_SHARED = PdfReaderProcess()
atexit.register(_SHARED.close)


def read_pdf(data: bytes, *, page_time_limit_s: float = PAGE_TIME_LIMIT_S) -> ExtractedDocument:
    """``data`` read by this process's PDF reader child (:class:`PdfReaderProcess`)."""
    return _SHARED.read(data, page_time_limit_s=page_time_limit_s)


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
