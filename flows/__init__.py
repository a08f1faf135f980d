"""Prefect flows, one module per deployable flow: wiring, parameters, task runners, deployments.

A flow body only composes tasks from :mod:`tasks`; it holds no engine or storage logic.
"""

__all__: list[str] = []
