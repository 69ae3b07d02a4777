"""What a saved KerasModel and a saved ModelSelectionModel hold beyond their Params.

A KerasModel: ``model.keras`` (the trained model), ``custom_objects.pkl`` (cloudpickle, when the model
needs custom objects), its history and configuration in the metadata.

A ModelSelectionModel: ``result.json`` (every model's configuration, status, reason, per-epoch history
and checkpoint versions, every unit of the schedule: what the leaderboard, histories and plots use),
the best model as ``models/<model_id>/model.keras`` (every model that finished an epoch with the writer
option ``saveAllModels``), the run id and the Store URL. ``get_model`` of a model that was not saved
loads it from the run's Store while that is reachable.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from cerebro_spark.driver import ModelRecord, SearchResult
from cerebro_spark.driver.records import EpochRecord, UnitRecord
from cerebro_spark.errors import StoreError
from cerebro_spark.ml._persistence import (
    PersistenceError,
    SavedFiles,
    decode_value,
    digest,
    encode_value,
    read_trusted,
    unpickle,
)
from cerebro_spark.store.fs import _restore_store
from cerebro_spark.training.keras_io import model_to_bytes
from cerebro_spark.training.model_spec import ModelSpec

if TYPE_CHECKING:
    from cerebro_spark.ml.model import KerasModel
    from cerebro_spark.ml.selection import ModelSelectionModel


def save_keras_model(model: KerasModel, files: SavedFiles, prefix: str = "") -> dict[str, Any]:
    """Write ``model``'s ``.keras`` file (and custom objects) under ``prefix``; return its metadata."""
    files.write_bytes(f"{prefix}model.keras", model._model_bytes or model_to_bytes(model.keras()))
    extra: dict[str, Any] = {
        "model": f"{prefix}model.keras",
        "history": model.history,
        "custom_objects": None,
    }
    if model._custom_objects:
        extra["custom_objects"] = f"{prefix}custom_objects.pkl"
        files.write_bytes(extra["custom_objects"], model._custom_objects)
    extra["params_used"] = encode_value(model.params_used, f"{prefix}params_used", files, "params_used")
    return extra


def load_keras_model(
    model: KerasModel, files: SavedFiles, extra: dict[str, Any], saved_with: dict[str, str]
) -> None:
    """Fill ``model`` from what :func:`save_keras_model` wrote (the Keras model itself loads lazily)."""
    model._model_bytes = files.read_bytes(extra["model"])
    model._keras = None
    if extra.get("custom_objects"):
        what = f"the custom objects of the model in {files.path!r}"
        data = read_trusted(files, extra["custom_objects"], what)
        unpickle(data, what, saved_with)  # fails now, clearly, rather than in transform on the executors
        model._custom_objects = data
    model.history = {k: list(v) for k, v in extra.get("history", {}).items()}
    model.params_used = decode_value(extra["params_used"], files, "params_used", saved_with)


# ---- ModelSelectionModel ------------------------------------------------------------------------------


def save_selection(msm: ModelSelectionModel, files: SavedFiles, options: dict[str, str]) -> dict[str, Any]:
    """Write the search's records and the best model (every model with ``saveAllModels``)."""
    result = msm._result()
    save_all = options.get("saveallmodels", str(msm.save_all_models)).lower() == "true"
    ids = [m.model_id for m in result.models.values() if m.best_version is not None]
    saved = ids if save_all else [i for i in ids if i == result.best_model_id]
    custom_files: dict[str, str] = {}
    specs = {}
    for model_id, spec in msm._specs.items():
        fields = {
            f.name: getattr(spec, f.name)
            for f in dataclasses.fields(spec)
            if f.name not in ("custom_objects", "params")
        }
        if spec.custom_objects:
            name = f"custom_objects/{digest(spec.custom_objects)}.pkl"
            if name not in custom_files.values():
                files.write_bytes(name, spec.custom_objects)
            custom_files[model_id] = name
        specs[model_id] = {**fields, "custom_objects": custom_files.get(model_id)}
    models = {}
    for record in result.models.values():
        entry = {
            f.name: getattr(record, f.name)
            for f in dataclasses.fields(record)
            if f.name not in ("params", "history")
        }
        entry["history"] = [h.to_dict() for h in record.history]
        key = f"records/{record.model_id}-params"
        entry["params"] = encode_value(record.params, key, files, f"the params of model {record.model_id!r}")
        models[record.model_id] = entry
    document = {
        f.name: getattr(result, f.name)
        for f in dataclasses.fields(result)
        if f.name not in ("models", "units")
    }
    document.update(models=models, units=[u.to_dict() for u in result.units], specs=specs)
    files.write_json("result.json", document)
    saved_models = {
        model_id: save_keras_model(msm.get_model(model_id), files, f"models/{model_id}/")
        for model_id in saved
    }
    owner = msm._owner
    return {
        "run_id": result.run_id,
        "store_url": msm._store.url if msm._store is not None else msm._store_url,
        "feature_columns": owner.getOrDefault(owner.feature_columns),
        "label_columns": owner.getOrDefault(owner.label_columns),
        "saved_models": saved_models,
    }


def load_selection(
    msm: ModelSelectionModel, files: SavedFiles, extra: dict[str, Any], saved_with: dict[str, str]
) -> None:
    """Restore what :func:`save_selection` wrote into ``msm``."""
    from cerebro_spark.ml.model import KerasModel

    document = files.read_json("result.json")
    models = {}
    for model_id, entry in document.pop("models").items():
        params = decode_value(entry.pop("params"), files, f"the params of model {model_id!r}", saved_with)
        history = [EpochRecord(**_known(EpochRecord, h)) for h in entry.pop("history")]
        models[model_id] = ModelRecord(**_known(ModelRecord, entry), params=params, history=history)
    units = [UnitRecord(**_known(UnitRecord, u)) for u in document.pop("units")]
    specs = {}
    for model_id, fields in document.pop("specs").items():
        custom_file = fields.pop("custom_objects")
        custom = b""
        if custom_file:  # unpickled only when a model is read from the run's Store: trusted now or never
            custom = read_trusted(files, custom_file, f"the custom objects of model {model_id!r}")
        specs[model_id] = ModelSpec(
            **_known(ModelSpec, fields), custom_objects=custom, params=models[model_id].params
        )
    msm.result = SearchResult(**_known(SearchResult, document), models=models, units=units)
    msm._specs = specs
    msm._store, msm._store_url = None, extra.get("store_url")
    owner = KerasModel()
    shared = {p.name: msm.getOrDefault(p) for p in msm.params if owner.hasParam(p.name) and msm.isDefined(p)}
    owner._set(feature_columns=extra["feature_columns"], label_columns=extra["label_columns"], **shared)
    msm._owner = owner
    msm._loaded = {}
    for model_id, model_extra in extra.get("saved_models", {}).items():
        model = owner.copy()
        load_keras_model(model, files, model_extra, saved_with)
        msm._loaded[model_id] = model


def _known(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that are fields of dataclass ``cls`` (newer saves may add fields)."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return {
        k: v
        for k, v in values.items()
        if k in names and k not in ("params", "history", "models", "units", "custom_objects")
    }


def model_from_run_store(
    msm: ModelSelectionModel, model_id: str, version: int, history: dict[str, list[float]]
) -> KerasModel:
    """Model ``model_id`` at checkpoint ``version`` from the run's Store, or a clear error when that fails."""
    from cerebro_spark.ml.model import KerasModel

    try:
        if msm._store is None and msm._store_url:  # opened without I/O: a missing Store is not created
            msm._store = _restore_store(msm._store_url, {})
        if msm._store is None:
            raise StoreError("the Store of the run is not known")
        return KerasModel.from_store(msm._store, msm._specs[model_id], version, msm._owner, history=history)
    except (StoreError, OSError) as e:
        saved = sorted(msm._loaded)
        raise PersistenceError(
            f"Model {model_id!r} of run {msm.run_id!r} is not saved with this ModelSelectionModel (saved: "
            f"{saved}; save every model with write().option('saveAllModels', 'true')), and it cannot be "
            f"read from the run's Store {msm._store_url!r}: {e}"
        ) from e
