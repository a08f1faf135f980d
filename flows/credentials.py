"""Storage credentials for a run, from a Prefect Secret block named in its parameters.

Parameters are stored in clear with every flow run, so credentials never are parameters
(:func:`nerflow.storage.refuse_credentials`). Besides the environment and the AWS
configuration, a run may name a Secret block (``storage_credentials_block``): its value, a
JSON object of fsspec options such as ``{"key": ..., "secret": ...}``, is read inside the run
and merged into the storage options of input and output. It never enters the parameters, the
run record, the logs or the reports.
"""

from __future__ import annotations

import json
from typing import Any, cast

__all__ = ["storage_credentials"]


def storage_credentials(block: str | None) -> dict[str, Any]:
    """The fsspec options held by the Secret block named ``block`` (none when it is unset).

    Raises:
        ValueError: The block's value is not a JSON object.
    """
    if not block:
        return {}
    from prefect.blocks.system import Secret  # the Prefect API: only when a run names a block

    # load() is sync-or-async (Prefect's @async_dispatch): from sync code it returns the block.
    secret = cast("Secret[Any]", Secret.load(block))
    value = secret.get()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, dict):
        # The value itself is not shown: it is a secret.
        raise ValueError(f"the Secret block {block!r} must hold a JSON object of fsspec options, like {{key, secret}}")
    return value
