"""SearchHandle: a model selection running in a background thread, watched and steered from Python.

What ``search.fit_async(df)`` returns. No server: the handle talks to the driver through a
thread-safe :class:`~cerebro_spark.driver.control.SearchControl`; the driver applies each command
when the next unit (sub-epoch) completes and records it, so a resumed run replays it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from cerebro_spark.driver.control import (
    USER_STOP_REASON,
    AddModels,
    Interrupt,
    ResumeModel,
    SearchControl,
    StopModel,
    check_target_epochs,
)
from cerebro_spark.errors import InvalidParamError
from cerebro_spark.observers.history import leaderboard_frame

if TYPE_CHECKING:
    import pandas as pd

    from cerebro_spark.ml.selection import ModelSelectionModel

logger = logging.getLogger(__name__)


class SearchHandle:
    """A search running in a background thread (from ``fit_async``).

    Every command returns a :class:`~concurrent.futures.Future` that completes when the driver has
    applied it (``.result()`` waits, and raises if the command could not apply, e.g. an unknown
    model id); the search goes on either way.

    Examples
    --------
    >>> handle = search.fit_async(train_df)  # doctest: +SKIP
    >>> handle.status()["models"]["m0002"]  # doctest: +SKIP
    {'status': 'running', 'epochs': 1, 'best_epoch': 1, 'val_loss': 0.41}
    >>> handle.stop_model("m0002").result()  # doctest: +SKIP
    >>> handle.add_models([{"lr": 0.003, "width": 64}], epochs=5).result()  # doctest: +SKIP
    ['u0000']
    >>> result = handle.result()  # a ModelSelectionModel  # doctest: +SKIP
    """

    def __init__(self, run_id: str, control: SearchControl) -> None:
        self.run_id = run_id
        self._control = control
        self._outcome: Future[ModelSelectionModel] = Future()

    @classmethod
    def start(
        cls, run_id: str, control: SearchControl, fit: Callable[[], ModelSelectionModel]
    ) -> SearchHandle:
        """Run ``fit()`` in a daemon thread named after the run; return its handle."""
        handle = cls(run_id, control)

        def target() -> None:
            try:
                handle._outcome.set_result(fit())
            except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt too: result() raises it
                logger.info("search %s ended with %s: %s", run_id, type(exc).__name__, exc)
                handle._outcome.set_exception(exc)
            finally:
                if control.state in ("starting", "running"):  # it failed before the driver ran
                    control.close("failed")

        threading.Thread(target=target, name=f"cerebro-search-{run_id}", daemon=True).start()
        return handle

    # ---- commands ------------------------------------------------------------------------------

    def stop_model(self, model_id: str, reason: str = USER_STOP_REASON) -> Future[None]:
        """Stop a running or paused model; an epoch it had not finished is dropped (once its unit in
        flight completes). The search algorithm is told, and may start another model in its place."""
        return self._control.submit(StopModel(_model_id(model_id), reason))

    def resume_model(self, model_id: str, epochs: int | None = None) -> Future[None]:
        """Train a stopped, completed or paused model on until it has ``epochs`` epochs in all
        (default: the search's epochs). The user's target, not the algorithm, then decides its end."""
        return self._control.submit(ResumeModel(_model_id(model_id), check_target_epochs(epochs)))

    def add_models(self, params: Sequence[Mapping[str, Any]], epochs: int | None = None) -> Future[list[str]]:
        """Start a model per configuration (``estimator_gen_fn(params)`` builds it), each trained
        ``epochs`` epochs (default: the search's). The future gives their ids: ``u0000``, ``u0001``..."""
        if isinstance(params, Mapping) or not params or not all(isinstance(p, Mapping) for p in params):
            raise InvalidParamError(
                f"add_models needs a non-empty list of configurations (dicts). Received: params={params!r}"
            )
        return self._control.submit(AddModels(tuple(dict(p) for p in params), check_target_epochs(epochs)))

    def interrupt(self) -> Future[None]:
        """End the search as Ctrl-C would (recorded as interrupted): fit again with this run id to
        resume it. :meth:`result` then raises ``KeyboardInterrupt``."""
        return self._control.submit(Interrupt())

    # ---- watching ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Where the search is: ``state`` (starting, running, finished, failed, interrupted), units
        done, and per model its status, epochs, best epoch and best value of the evaluation metric."""
        snapshot = self._control.snapshot()
        models: dict[str, Any] = {}
        if snapshot is not None:
            for m in snapshot.models.values():
                best = m.best_metrics()
                models[m.model_id] = {
                    "status": m.status,
                    "epochs": m.epochs,
                    "best_epoch": m.best_epoch,
                    snapshot.metric: best.get(snapshot.metric),
                }
        return {
            "run_id": self.run_id,
            "state": self._control.state,
            "units": 0 if snapshot is None else len(snapshot.units),
            "best_model_id": None if snapshot is None else snapshot.best_model_id,
            "models": models,
        }

    def leaderboard(self) -> pd.DataFrame:
        """The leaderboard so far (as ``ModelSelectionModel.leaderboard``); empty before the start."""
        import pandas as pd

        snapshot = self._control.snapshot()
        return pd.DataFrame() if snapshot is None else leaderboard_frame(snapshot)

    def done(self) -> bool:
        """True when the search has ended (finished, failed or interrupted)."""
        return self._outcome.done()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the end of the search (at most ``timeout`` seconds); True if it has ended."""
        try:
            self._outcome.exception(timeout)
        except TimeoutError:
            return False
        return True

    def result(self, timeout: float | None = None) -> ModelSelectionModel:
        """The :class:`ModelSelectionModel`, once the search has ended; raises what the search raised."""
        return self._outcome.result(timeout)


def _model_id(model_id: Any) -> str:
    if not isinstance(model_id, str) or not model_id:
        raise InvalidParamError(f"model_id must be a model's id such as 'm0001'. Received: {model_id!r}")
    return model_id
