"""A hand-built :class:`~cerebro_spark.driver.SearchResult` for tests of tables, plots and reports.

Three models on two workers: ``m0000`` (3 epochs, completed), ``m0001`` (3 epochs, the best) and
``m0002`` (failed in epoch 2, with one epoch of history). Every epoch has one training and one
evaluation unit per partition, laid out on a clock so that the schedule has no overlap per worker.
"""

from __future__ import annotations

from cerebro_spark.driver import EpochRecord, ModelRecord, SearchResult, UnitRecord

#: The metric losses of each model per epoch (accuracy is ``1 - loss``).
LOSSES = {"m0000": [0.9, 0.7, 0.6], "m0001": [0.8, 0.5, 0.3], "m0002": [1.2]}
PARAMS = {
    "m0000": {"lr": 0.01, "width": 8, "act": "relu"},
    "m0001": {"lr": 0.001, "width": 64, "act": "relu"},
    "m0002": {"lr": 0.1, "width": 8, "act": "tanh"},
}


def fake_search_result(run_id: str = "run-fake", start: float = 1_000.0) -> SearchResult:
    """The three-model result described in the module docstring (``val_loss``, ``min``)."""
    models: dict[str, ModelRecord] = {}
    units: list[UnitRecord] = []
    clock = {0: start, 1: start}
    version = dict.fromkeys(LOSSES, 0)
    ids = list(LOSSES)
    for epoch in range(1, 4):
        for step in range(len(ids)):
            for worker in (0, 1):  # worker 1 visits the models in a rotated order: no model on two at once
                model_id = ids[(step + worker) % len(ids)]
                if epoch > len(LOSSES[model_id]):
                    continue
                losses, partition = LOSSES[model_id], worker
                for kind, seconds in (("train", 2.0), ("eval", 0.5)):
                    version[model_id] += kind == "train"
                    begin = clock[worker]
                    clock[worker] = begin + seconds
                    units.append(
                        UnitRecord(
                            model_id,
                            epoch,
                            partition,
                            kind,
                            worker,
                            version[model_id],
                            50,
                            {"loss": losses[epoch - 1]},
                            {"train_s": seconds},
                            begin - 0.01,
                            begin,
                            begin + seconds,
                            begin + seconds + 0.01,
                        )
                    )
    for model_id, losses in LOSSES.items():
        history = [
            EpochRecord(
                model_id,
                e,
                {"loss": v + 0.05, "accuracy": 0.95 - v, "val_loss": v, "val_accuracy": 1.0 - v},
                2 * e,
                100,
                20,
                4.0,
                start + 5.0 * e,
            )
            for e, v in enumerate(losses, start=1)
        ]
        best = min(range(len(losses)), key=losses.__getitem__) + 1
        status = "failed" if model_id == "m0002" else "completed"
        models[model_id] = ModelRecord(
            model_id,
            dict(PARAMS[model_id]),
            status=status,
            reason="boom" if status == "failed" else "",
            history=history,
            version=2 * len(losses),
            best_epoch=best,
            best_version=2 * best,
        )
    wall = max(clock.values()) - start
    return SearchResult(run_id, "val_loss", "min", 2, models, units, wall, "m0001")
