"""What checking a table against its contract found, and its JSON form.

The run record keeps these (``_manifest/runs.contract_results``), the flow's markdown
artifact shows them, and ``nerflow validate`` prints them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["CheckResult", "TableResult", "combine"]


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """One check of one table.

    Attributes:
        table: Table name.
        check: Check name (``schema`` for the Arrow schema, else a name from
            :mod:`data_contracts.suites`).
        expectation: The GX expectation, or ``"arrow_schema"``.
        success: Whether every row passed (or the check itself passed).
        checked: Rows checked.
        failed: Rows that failed.
        rows: Positions (0-based) of the failing rows in the checked table.
        message: Why a check without rows failed (a schema difference, an error), or a note.
        skipped: Not run for want of a value (no known label set); counts as passed.
    """

    table: str
    check: str
    expectation: str
    success: bool
    checked: int = 0
    failed: int = 0
    rows: tuple[int, ...] = ()
    message: str = ""
    skipped: bool = False


@dataclass(frozen=True, kw_only=True)
class TableResult:
    """Every check of one table (a batch's rows, or a whole output's).

    Attributes:
        table: Table name.
        version: Contract version checked against.
        rows: Rows checked.
        checks: In the order of :data:`data_contracts.suites.TABLE_CHECKS`, ``schema`` first.
    """

    table: str
    version: int
    rows: int
    checks: tuple[CheckResult, ...]

    @property
    def success(self) -> bool:
        """Whether every check passed."""
        return all(c.success for c in self.checks)

    def failures(self) -> list[CheckResult]:
        """The checks that failed."""
        return [c for c in self.checks if not c.success]

    def first_failure_by_row(self) -> dict[int, CheckResult]:
        """For each failing row, the first check (in suite order) it failed."""
        out: dict[int, CheckResult] = {}
        for check in self.checks:
            for row in check.rows:
                out.setdefault(row, check)
        return out

    def to_dict(self) -> dict:
        """JSON-ready: version, rows, and per check its failures (passing checks as 0)."""
        return {
            "version": self.version,
            "rows": self.rows,
            "success": self.success,
            "checks": {c.check: c.failed if c.success or c.failed else "error" for c in self.checks if not c.skipped},
            "skipped": [c.check for c in self.checks if c.skipped],
            "messages": {c.check: c.message for c in self.checks if c.message and not c.success},
        }


def combine(results: Iterable[TableResult]) -> dict[str, dict]:
    """Add up the results of many batches, per table: rows checked and rows failed per check.

    Returns:
        ``{table: {"version", "rows", "success", "checks": {check: failed}, "skipped", "messages"}}``.
    """
    out: dict[str, dict] = {}
    for r in results:
        d = r.to_dict()
        total = out.setdefault(
            r.table, {"version": r.version, "rows": 0, "success": True, "checks": {}, "skipped": [], "messages": {}}
        )
        total["rows"] += d["rows"]
        total["success"] = total["success"] and d["success"]
        for name, failed in d["checks"].items():
            before = total["checks"].get(name, 0)
            total["checks"][name] = "error" if "error" in (before, failed) else before + failed
        total["skipped"] = sorted(set(total["skipped"]) | set(d["skipped"]))
        total["messages"].update(d["messages"])
    return out
