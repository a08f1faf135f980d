"""Tests of the engine, :mod:`ner_core`."""
