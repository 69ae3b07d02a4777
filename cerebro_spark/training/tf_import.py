"""Import TensorFlow without its C++ start-up lines on the console.

TensorFlow 2.19 and later write lines such as ``oneDNN custom operations are on...`` and ``WARNING: All log
messages before absl::InitializeLog() is called are written to STDERR`` straight to the process's standard
error (file descriptor 2) while it is imported, before ``TF_CPP_MIN_LOG_LEVEL`` applies, once in the
driver and once in every Spark Python worker. :func:`import_tensorflow` captures descriptor 2 during the
import and writes back every line but those: an error TensorFlow reports still reaches the console. It
also keeps TensorFlow's retracing warning about this package's own step functions out of the logs.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from types import ModuleType

#: Held while TensorFlow is imported: one import at a time (standard error is redirected meanwhile), and
#: no caller gets the module half-initialized.
_IMPORT_LOCK = threading.Lock()

#: Lines TensorFlow writes at import that say nothing to a user of this package.
START_UP_NOISE = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
)


class _OwnTracesFilter(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning about this package's step functions.

    :class:`~cerebro_spark.training.steps.StepFunctions` traces one function per model structure and
    batch signature, on purpose (each with an input signature, so each traces once); TensorFlow counts
    them together, as they share their code, and warns as if one function kept retracing. Its warnings
    about other functions pass.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message and "StepFunctions._trace" in message)


def import_tensorflow() -> ModuleType:
    """``import tensorflow``, its start-up lines filtered out (a no-op when it is already imported).

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` unless the environment says otherwise (TensorFlow's later C++ log
    lines, such as tf.data's harmless ``NodeDef mentions attribute``: set it to 0 to see them).
    """
    tf_logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _OwnTracesFilter) for f in tf_logger.filters):
        tf_logger.addFilter(_OwnTracesFilter())
    with _IMPORT_LOCK:  # a worker's warm-up thread may be importing it: wait for the whole module
        if "tensorflow" in sys.modules:
            import tensorflow

            return tensorflow
        return _import_quietly()


def _import_quietly() -> ModuleType:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no descriptor 2 to capture: import as is
        import tensorflow

        return tensorflow
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [
                line
                for line in capture.read().decode(errors="replace").splitlines(keepends=True)
                if not any(noise in line for noise in START_UP_NOISE)
            ]
            if kept:
                os.write(2, "".join(kept).encode())
    return tensorflow
