"""Benchmarks render their results into a marked section of a markdown report."""

from __future__ import annotations

from pathlib import Path


def replace_section(report: Path, begin: str, end: str, section: str) -> None:
    """Put ``section`` (which starts with ``begin`` and ends with ``end`` and a newline) in
    place of the marked section of ``report``, or append it."""
    text = report.read_text() if report.exists() else "# Performance\n\n"
    if begin in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(text)
