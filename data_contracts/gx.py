"""Great Expectations, imported on first use and set up for offline runs.

Its own module, below :mod:`data_contracts.suites` (which builds the suites) and
:mod:`data_contracts.validation` (which runs them), so that both reach it without importing
each other.
"""

from __future__ import annotations

import logging
import os
from typing import Any

__all__ = ["import_gx"]


def import_gx() -> Any:
    """``great_expectations``, imported on first use (it takes seconds), analytics off."""
    # Set before the import: GX reads it once. Runs are offline and must not phone home.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        # Its import logs dozens of INFO lines about its own docs registry; a caller who set a
        # level for it keeps theirs.
        gx_logger.setLevel(logging.WARNING)
    import great_expectations as gx

    return gx
