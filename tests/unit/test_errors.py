"""The error hierarchy: every user-facing error is a CerebroError and a builtin exception."""

from __future__ import annotations


def test_a_missing_model_is_a_cerebro_error_and_a_key_error_with_its_message_unquoted():
    from cerebro_spark.errors import CerebroError, ModelNotFoundError

    error = ModelNotFoundError("No model 'm9' in run 'r1'. Models: ['m0'].")
    assert isinstance(error, CerebroError) and isinstance(error, KeyError)
    assert str(error) == "No model 'm9' in run 'r1'. Models: ['m0']."
