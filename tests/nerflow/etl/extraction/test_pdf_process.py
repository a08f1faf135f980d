"""PDFs read in a child process: the same documents and refusals as in the flow's own process,
and a PDF that hangs or crashes the reader costs a quarantine reason, not the run. The hangs
and crashes come from a stand-in reader (``tests.samples_pdf.misbehaving_reader``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest

from nerflow.etl.extraction import ExtractedDocument, ExtractionError
from nerflow.etl.extraction.pdf import extract_pdf
from nerflow.etl.extraction.pdf_process import PdfReaderProcess
from tests import samples_pdf


@pytest.fixture(scope="module")
def reader() -> Iterator[PdfReaderProcess]:
    process = PdfReaderProcess(samples_pdf.MISBEHAVING_READER)
    yield process
    process.close()


def _assert_same(a: ExtractedDocument, b: ExtractedDocument) -> None:
    assert a.text == b.text and a.info == b.info and len(a.segments) == len(b.segments)
    for x, y in zip(a.segments, b.segments, strict=True):
        assert (x.start, x.end, x.kind, x.page, x.page_size, x.box) == (
            y.start,
            y.end,
            y.kind,
            y.page,
            y.page_size,
            y.box,
        )
        assert np.array_equal(x.char_boxes, y.char_boxes)


@pytest.mark.parametrize("make", [samples_pdf.report_pdf, lambda: samples_pdf.many_pages_pdf(12)])
def test_reads_what_the_reader_reads_in_process(reader, make):
    data = make()
    _assert_same(reader.read(data), extract_pdf(data))


@pytest.mark.parametrize(
    "make",
    [
        samples_pdf.encrypted_pdf,
        samples_pdf.corrupt_pdf,
        samples_pdf.scanned_pdf,
        samples_pdf.no_pages_pdf,
        samples_pdf.missing_page_pdf,
    ],
)
def test_refuses_what_the_reader_refuses_in_process(reader, make):
    data = make()
    with pytest.raises(ExtractionError) as in_process:
        extract_pdf(data)
    with pytest.raises(ExtractionError) as in_child:
        reader.read(data)
    assert (in_child.value.reason, in_child.value.page) == (in_process.value.reason, in_process.value.page)


def _read_after_failure(reader: PdfReaderProcess, data: bytes, **limits: float) -> ExtractionError:
    """The error for ``data``, after checking the child it ran in is gone and the next PDF
    is read by a new one."""
    reader.read(samples_pdf.report_pdf())
    before = reader.pid
    assert before is not None
    with pytest.raises(ExtractionError) as error:
        reader.read(data, **limits)
    with pytest.raises(ProcessLookupError):
        os.kill(before, 0)
    _assert_same(reader.read(samples_pdf.report_pdf()), extract_pdf(samples_pdf.report_pdf()))
    assert reader.pid not in (None, before)
    return error.value


def test_a_page_that_keeps_the_reader_busy_is_stopped(reader):
    error = _read_after_failure(reader, samples_pdf.HANG_ON_PAGE_2, page_time_limit_s=1)
    assert error.reason == "reading page 2 of 3 took longer than 1 s; reading stopped (a PDF that keeps pdfium busy)"
    assert error.page == 2


def test_a_file_that_does_not_open_in_time_is_stopped(reader):
    error = _read_after_failure(reader, samples_pdf.HANG_OPENING, page_time_limit_s=0.5)
    assert error.reason == "opening the PDF took longer than 0.5 s; reading stopped (a PDF that keeps pdfium busy)"
    assert error.page is None


def test_a_crash_in_the_reader_is_a_reason(reader):
    error = _read_after_failure(reader, samples_pdf.CRASH_ON_PAGE_1)
    assert error.reason == "the PDF reader process was killed by SIGSEGV (reading page 1 of 2)"
    assert error.page == 1


def test_a_reader_bug_is_a_reason_and_the_child_lives_on(reader):
    reader.read(samples_pdf.report_pdf())
    before = reader.pid
    with pytest.raises(ExtractionError, match=r"^could not be read: ValueError: a reader bug$"):
        reader.read(samples_pdf.READER_BUG)
    assert reader.pid == before


def test_close_stops_the_child_and_the_next_read_starts_one():
    process = PdfReaderProcess()
    process.read(samples_pdf.report_pdf())
    pid = process.pid
    process.close()
    assert process.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    _assert_same(process.read(samples_pdf.report_pdf()), extract_pdf(samples_pdf.report_pdf()))
    process.close()


def test_the_time_limit_must_be_positive(reader):
    with pytest.raises(ValueError, match="page_time_limit_s must be positive"):
        reader.read(samples_pdf.report_pdf(), page_time_limit_s=0)


def test_the_child_exits_when_its_parent_is_killed(tmp_path):
    # A parent that starts a child, then waits on a page that never ends, and is killed.
    script = (
        "from nerflow.etl.extraction.pdf_process import PdfReaderProcess\n"
        "from tests import samples_pdf\n"
        "reader = PdfReaderProcess(samples_pdf.MISBEHAVING_READER)\n"
        "reader.read(samples_pdf.report_pdf())\n"
        "print(reader.pid, flush=True)\n"
        "reader.read(samples_pdf.HANG_ON_PAGE_2, page_time_limit_s=3600)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True)
    child = int(parent.stdout.readline())
    time.sleep(0.5)  # the child is in the hanging page
    assert _running(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(child)


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie that nobody has reaped yet has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_child_does_not_load_torch():
    # One child per flow process: with torch it would hold about 300 MB instead of 80. (A
    # reader bug's description imports it: the module-scoped child above has had one.)
    process = PdfReaderProcess()
    try:
        process.read(samples_pdf.report_pdf())
        with open(f"/proc/{process.pid}/maps") as maps:
            assert "libtorch" not in maps.read()
    finally:
        process.close()


def test_ctrl_c_is_left_to_the_parent(reader):
    # A terminal's Ctrl-C reaches the child too: it keeps running until its parent stops it.
    reader.read(samples_pdf.report_pdf())
    pid = reader.pid
    os.kill(pid, signal.SIGINT)
    time.sleep(0.3)
    _assert_same(reader.read(samples_pdf.report_pdf()), extract_pdf(samples_pdf.report_pdf()))
    assert reader.pid == pid


def test_the_child_goes_first_when_memory_runs_out(reader):
    reader.read(samples_pdf.report_pdf())
    with open(f"/proc/{reader.pid}/oom_score_adj") as adj:
        assert adj.read().strip() == "1000"


def test_a_read_interrupted_mid_file_does_not_answer_the_next_one(reader, monkeypatch):
    # The parent is interrupted while the child still works on a file: that child must not
    # hand its answer to the next read.
    from multiprocessing.connection import Connection

    real_poll = Connection.poll
    calls = []

    def interrupted_poll(self, timeout=0.0):
        calls.append(timeout)
        if len(calls) == 2:  # after the first progress message
            raise KeyboardInterrupt
        return real_poll(self, timeout)

    reader.read(samples_pdf.report_pdf())
    before = reader.pid
    monkeypatch.setattr(Connection, "poll", interrupted_poll)
    with pytest.raises(KeyboardInterrupt):
        reader.read(samples_pdf.many_pages_pdf(3))
    monkeypatch.undo()
    _assert_same(reader.read(samples_pdf.report_pdf()), extract_pdf(samples_pdf.report_pdf()))
    assert reader.pid != before


def test_the_child_is_given_only_the_paths_this_process_added(tmp_path, monkeypatch):
    # The interpreter's own directories on PYTHONPATH would come before the standard library.
    import sysconfig

    from nerflow.etl.extraction.pdf_process import _added_paths

    monkeypatch.syspath_prepend(str(tmp_path))
    added = _added_paths().split(os.pathsep)
    assert str(tmp_path) in added
    for own in (sysconfig.get_path("stdlib"), sysconfig.get_path("purelib")):
        assert own not in added
