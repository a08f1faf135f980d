"""nerflow: document ETL for multilingual named-entity recognition.

The distribution's entry points live here (the ``nerflow`` console script in
:mod:`nerflow.cli`); the engine is :mod:`ner_core`, the table contracts :mod:`data_contracts`,
the Prefect layer :mod:`tasks` and :mod:`flows`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
