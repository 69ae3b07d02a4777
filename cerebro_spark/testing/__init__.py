"""Test helpers that ship with cerebro_spark: conformance checks and fakes."""
