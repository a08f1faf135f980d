"""Deployments of the ``extract-entities`` flow: a cron schedule, default parameters, serving.

A deployment is what lets the flow run on a schedule and from the Prefect UI's "Run" button
(which opens a form of :class:`~flows.extract_entities.ExtractParams`, pre-filled with the
deployment's default parameters). There are two ways to have one:

- **serve** (``nerflow serve``, :func:`build_deployment` then :func:`serve`): the serving process
  registers the deployment with the Prefect API and executes its flow runs itself, each in a
  subprocess. No work pool, no worker; the runs stop when the process stops (its schedule is
  paused on shutdown).
- **deploy** (``prefect deploy --name scheduled`` with the repository's ``prefect.yaml``): the
  deployment is registered for the work pool ``nerflow`` and the workers of that pool
  (``prefect worker start --pool nerflow``) execute its runs. The entrypoint is a module path
  (``flows.extract_entities.extract_entities``): workers need nerflow installed, not a checkout.

Both read the default parameters from the environment **when the deployment is created** (not
when a run starts): ``NERFLOW_INPUT_URI``, ``NERFLOW_OUTPUT_URI`` and ``NERFLOW_MODEL``. With
``nerflow serve``, ``--input`` / ``--output`` / ``--model`` / ``--param`` override them; the
schedule is ``NERFLOW_CRON`` (default :data:`DEFAULT_CRON`) in ``NERFLOW_TIMEZONE`` (default UTC).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.extract_entities import ExtractParams, extract_entities
from nerflow.storage import is_local_path

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

__all__ = [
    "DEFAULT_CRON",
    "DEPLOYMENT_NAME",
    "DeploymentSettings",
    "build_deployment",
    "deployment_parameters",
    "serve",
]

#: The deployment's name; its full name is ``extract-entities/scheduled``. Also in prefect.yaml.
DEPLOYMENT_NAME = "scheduled"
#: Every day at 02:00 (in :attr:`DeploymentSettings.timezone`). Also in prefect.yaml.
DEFAULT_CRON = "0 2 * * *"
#: The flow's one parameter: the deployment's parameters are ``{"params": {...ExtractParams...}}``.
PARAMETER = "params"


class DeploymentSettings(BaseSettings):
    """The deployment's defaults from ``NERFLOW_*`` environment variables, read at creation.

    Attributes:
        input_uri: ``NERFLOW_INPUT_URI``, the default ``input_uri``.
        output_uri: ``NERFLOW_OUTPUT_URI``, the default ``output_uri``.
        model: ``NERFLOW_MODEL``, the default ``model`` (unset: the flow's default, ``"default"``).
        cron: ``NERFLOW_CRON``, the schedule.
        timezone: ``NERFLOW_TIMEZONE``, the schedule's time zone (an IANA name).
    """

    model_config = SettingsConfigDict(env_prefix="NERFLOW_", frozen=True, extra="ignore")

    input_uri: str | None = None
    output_uri: str | None = None
    model: str | None = None
    cron: str = DEFAULT_CRON
    timezone: str = "UTC"


def deployment_parameters(
    overrides: Mapping[str, Any] | None = None, settings: DeploymentSettings | None = None
) -> dict[str, Any]:
    """The deployment's default parameters: the environment's, then ``overrides``, validated.

    Args:
        overrides: ``ExtractParams`` fields that win over the environment (command-line options).
        settings: The environment's defaults; read from ``NERFLOW_*`` variables when omitted.

    Returns:
        ``{"params": {...}}`` with the fields that were given (JSON values); the form in the UI
        shows the flow's own defaults for the rest.

    Raises:
        pydantic.ValidationError: The parameters are not valid ``ExtractParams`` (an input or
            output URI missing, a bad value).
    """
    settings = settings if settings is not None else DeploymentSettings()
    values: dict[str, Any] = {
        name: value
        for name, value in (
            ("input_uri", settings.input_uri),
            ("output_uri", settings.output_uri),
            ("model", settings.model),
        )
        if value is not None
    }
    values.update(overrides or {})
    # A worker runs the flow in a directory of its own (a temporary one for process pools):
    # local paths must not depend on where the deployment was made. ExtractParams makes the
    # input and output absolute; a model is a path only when it exists (else a hub id).
    model = values.get("model")
    if isinstance(model, str) and model and is_local_path(model) and os.path.exists(model):
        values["model"] = os.path.abspath(model)
    params = ExtractParams(**values)
    return {PARAMETER: params.model_dump(mode="json", exclude_unset=True)}


def build_deployment(
    parameters: Mapping[str, Any],
    *,
    name: str = DEPLOYMENT_NAME,
    cron: str | None = DEFAULT_CRON,
    timezone: str = "UTC",
    tags: tuple[str, ...] = ("nerflow",),
) -> RunnerDeployment:
    """The deployment of ``extract-entities`` that :func:`serve` registers and runs.

    Args:
        parameters: Default parameters, as :func:`deployment_parameters` returns them.
        name: The deployment's name (``extract-entities/<name>``).
        cron: A cron expression; ``None`` for no schedule (runs from the UI or API only).
        timezone: The cron expression's time zone.
        tags: Tags of the deployment and its runs.

    Raises:
        ValueError: A bad cron expression or time zone.
    """
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.types.entrypoint import EntrypointType

    schedules = [CronSchedule(cron=cron, timezone=timezone)] if cron else None
    # to_deployment is sync-or-async (Prefect's @async_dispatch): called from sync code it
    # returns the deployment itself.
    return extract_entities.to_deployment(  # type: ignore[return-value]
        name,
        schedules=schedules,
        # One run of the deployment at a time, the others queued: runs of one output would
        # otherwise meet its writer lease and fail (nerflow.etl.lease).
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE),
        parameters=dict(parameters),
        tags=list(tags),
        # The installed package, not a file relative to the serving process's directory.
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def serve(deployment: RunnerDeployment, *, limit: int | None = 1) -> None:
    """Register ``deployment`` with the Prefect API and run its flow runs until interrupted.

    Args:
        deployment: From :func:`build_deployment`.
        limit: Most flow runs at once (each in its own process, with its own model); ``None``
            for no limit.
    """
    from prefect import serve as prefect_serve

    prefect_serve(deployment, limit=limit)
