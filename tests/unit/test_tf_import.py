"""TensorFlow imported without its C++ start-up lines, other lines on standard error kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cerebro_spark.training.tf_import import START_UP_NOISE

ROOT = Path(__file__).resolve().parents[2]
IMPORT = "from cerebro_spark.training.tf_import import import_tensorflow; print(import_tensorflow().__name__)"


def run(code: str, pythonpath: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, str(ROOT)])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)


def test_only_the_start_up_lines_are_dropped(tmp_path):
    # A stand-in "tensorflow" that writes, at import, what TensorFlow writes and a line that matters.
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import os\n"
        f"for line in {list(START_UP_NOISE)!r}:\n"
        "    os.write(2, ('I0000 00:00 123 port.cc:153] ' + line + '\\n').encode())\n"
        "os.write(2, b'E0000 a real problem\\n')\n"
    )
    done = run(IMPORT, [str(tmp_path)])
    assert done.stdout == "tensorflow\n"
    assert done.stderr == "E0000 a real problem\n"


@pytest.mark.keras
def test_the_real_import_is_quiet():
    done = run(IMPORT + "; import keras", [])
    assert not any(noise in done.stderr for noise in START_UP_NOISE), done.stderr


def test_the_retracing_warning_about_our_own_step_functions_is_dropped():
    import logging

    from cerebro_spark.training.tf_import import _OwnTracesFilter

    def record(message):
        return logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, message, None, None)

    keep = _OwnTracesFilter().filter
    assert not keep(record("5 out of the last 17 calls to <function StepFunctions._trace.<locals>.one_step at "
                           "0x7f> triggered tf.function retracing. Tracing is expensive"))  # fmt: skip
    assert keep(
        record("5 out of the last 5 calls to <function user_fn at 0x7f> triggered tf.function retracing.")
    )
    assert keep(record("something else about StepFunctions._trace"))
