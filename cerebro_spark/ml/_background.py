"""Spark work that runs beside the driver's own: the data preparation while TensorFlow loads.

A cold ``fit`` spends about 3 s importing TensorFlow on the driver, on one core, before it can build
the models; the preparation's Spark jobs need no TensorFlow. :class:`SparkWork` runs the preparation
in a thread meanwhile and cancels its Spark jobs (by a job tag) when the model checks fail, so that a
bad ``estimator_gen_fn`` still fails as early as before, and leaves no job running.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from cerebro_spark.backend.session import ClassicSpark, ConnectSpark

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: How often :meth:`SparkWork.cancel` cancels again while the thread still runs: a job may start
#: between the thread's last check and the first cancel.
_CANCEL_INTERVAL_S = 0.1


class SparkWork(Generic[T]):
    """``fn()`` in a thread started now; its Spark jobs carry a tag of their own.

    With a classic session the thread is a :class:`pyspark.InheritableThread`: the caller's local
    properties (job group, description, scheduler pool) go with it. With Spark Connect the session
    tags the thread's operations. Either way they can be cancelled. Without Spark (data prepared
    before, no session) it is a plain thread.
    """

    def __init__(self, fn: Callable[[], T], spark: ClassicSpark | ConnectSpark | None, name: str) -> None:
        self._fn, self._spark = fn, spark
        self._tag = f"cerebro-{name}-{uuid.uuid4().hex[:12]}"
        self._value: T | None = None
        self._error: BaseException | None = None
        if spark is None:
            self._thread = threading.Thread(target=self._run, name=f"cerebro-{name}", daemon=True)
        else:
            self._thread = spark.thread(self._run)
            self._thread.daemon = True
        self._thread.start()

    def _run(self) -> None:
        if self._spark is not None:
            self._spark.add_tag(self._tag)
        try:
            self._value = self._fn()
        except BaseException as e:  # handed to the caller by result()
            self._error = e
        finally:
            if self._spark is not None:
                self._spark.remove_tag(self._tag)

    def result(self) -> T:
        """Wait for ``fn`` and return its value, or raise what it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def cancel(self) -> None:
        """Cancel the thread's Spark jobs (started or still to start) and wait for it to end.

        What it raised is dropped: the caller raises its own error. Work outside Spark jobs (a few
        Store calls, the driver's write of collected rows) runs to its end; prepared data is marked
        complete only by its last write, so a cancelled preparation is never reused half-written.
        """
        while self._thread.is_alive():
            if self._spark is not None:
                self._spark.cancel_tag(self._tag)
            self._thread.join(_CANCEL_INTERVAL_S)
        if self._error is not None:
            logger.debug("cancelled %s: %s", self._tag, self._error)
