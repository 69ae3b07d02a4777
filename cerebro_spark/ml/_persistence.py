"""Saving and loading the Spark ML classes: Spark ML's metadata JSON, and files beside it.

A saved instance at ``PATH`` (a local path, ``file://`` or any URL the Store supports)::

    PATH/metadata/part-00000   Spark ML's metadata JSON, written by Spark (DefaultParamsWriter): class, uid,
                               paramMap (the JSON params), defaultParamMap, sparkVersion, and
                               cerebroVersion, cerebroFormatVersion and "cerebro" (how every other param
                               was saved, the versions of Python, cloudpickle and Keras, class data)
    PATH/params/<name>.keras   a param holding a keras.Model (KerasEstimator's ``model``)
    PATH/params/<name>.pkl     a param that is neither JSON nor a built-in Keras object (functions such as
                               ``estimator_gen_fn``, custom objects, search spaces): cloudpickle
    PATH/...                   the class's own files (a KerasModel's ``model.keras``...)

Params hold values of a few kinds, each saved its own way: JSON values as Spark ML saves them; a Store
by its URL (not its storage options, which may hold credentials); a SparkBackend or LocalBackend by its
class and number of workers; a keras.Model as a ``.keras`` file; a built-in Keras optimizer, loss or
metric by its Keras config (JSON); anything else with cloudpickle. Loading checks the format version
(:data:`FORMAT_VERSION`): a newer one, or a pickle that cannot be loaded here, raises
:class:`PersistenceError` naming what failed and the versions that saved it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import posixpath
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pyspark
from pyspark.ml.util import (
    BaseReadWrite,
    DefaultParamsReader,
    DefaultParamsWriter,
    MLReadable,
    MLReader,
    MLWritable,
    MLWriter,
)

from cerebro_spark._json import is_json
from cerebro_spark._trust import require_trust
from cerebro_spark._trust import trust_pickles as trusted_block
from cerebro_spark._version import __version__
from cerebro_spark.backend.base import Backend
from cerebro_spark.backend.local import LocalBackend
from cerebro_spark.backend.spark import SparkBackend
from cerebro_spark.errors import PersistenceError, StoreError
from cerebro_spark.store.base import Store
from cerebro_spark.store.fs import create_store
from cerebro_spark.training import keras_io

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

#: Version of the saved layout. Loading a higher one fails with a clear error; bump it when a change
#: would make older releases misread a save.
FORMAT_VERSION = 1


# ---- where the files go ----------------------------------------------------------------------------


def qualified_path(path: str, spark: SparkSession) -> str:
    """``path`` as Spark ML resolves it (Hadoop's default filesystem for a path without a scheme), as a
    local path or a URL the Store understands, so that files land beside Spark's metadata."""
    try:
        sc = spark.sparkContext
        jpath = sc._jvm.org.apache.hadoop.fs.Path(path)  # type: ignore[union-attr]
        qualified = str(jpath.getFileSystem(sc._jsc.hadoopConfiguration()).makeQualified(jpath).toString())  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 (no JVM here, e.g. Spark Connect: the path as given)
        return path
    if qualified.startswith("file:"):
        return urlparse(qualified).path
    return qualified


def metadata_context(spark: SparkSession) -> Any:
    """What Spark ML's ``DefaultParamsWriter.saveMetadata`` and ``DefaultParamsReader.loadMetadata`` take:
    the session from pyspark 4 on, the SparkContext on pyspark 3.5 (which calls ``sc.parallelize`` and
    ``sc.textFile`` on it; pyspark 4 would take a SparkContext too but then uses the active session)."""
    if int(pyspark.__version__.split(".")[0]) >= 4:
        return spark
    return spark.sparkContext


def spark_or_none(io: BaseReadWrite) -> SparkSession | None:
    """The session a writer or reader was given, else the active or default one; None without Spark
    (the Dask, Ray and standalone engines): then the metadata is written and read without a JVM."""
    if io._sparkSession is not None:
        return io._sparkSession
    from pyspark.sql import SparkSession

    try:
        return SparkSession.active()
    except Exception:  # noqa: BLE001 - pyspark's NO_ACTIVE_OR_DEFAULT_SESSION
        return None


class _NoSpark:
    """What ``DefaultParamsWriter._get_metadata_to_save`` reads of a SparkContext: its version."""

    version = pyspark.__version__


#: Where Spark ML keeps an instance's metadata: one JSON line in a text file, as ``saveAsTextFile`` writes it.
_METADATA_FILE = "metadata/part-00000"


def write_metadata_without_spark(
    instance: Any, files: SavedFiles, extra: dict[str, Any], params: dict[str, Any]
) -> None:
    """Spark ML's metadata file, as ``DefaultParamsWriter.saveMetadata`` writes it, without a JVM (Spark ML's
    readers read it: ``metadata/part-00000`` and an empty ``_SUCCESS``)."""
    text = DefaultParamsWriter._get_metadata_to_save(
        instance, _NoSpark(), extraMetadata=extra, paramMap=params
    )  # type: ignore[arg-type]
    files._store.write_text(_METADATA_FILE, text + "\n")
    files._store.write_text("metadata/_SUCCESS", "")


def read_metadata_without_spark(path: str) -> dict[str, Any]:
    """The metadata of the instance saved at ``path`` (by Spark or by :func:`write_metadata_without_spark`)."""
    store = create_store(path)
    names = sorted(n for n in store.listdir("metadata") if n.startswith("part-"))
    if not names:
        raise PersistenceError(f"Nothing is saved at {path!r}: it has no metadata/part-* file.")
    line = store.read_text(f"metadata/{names[0]}").splitlines()[0]
    return DefaultParamsReader._parseMetaData(line)  # type: ignore[no-any-return]


class SavedFiles:
    """The files of one saved instance, under its path; written atomically through a Store."""

    def __init__(self, path: str, spark: SparkSession | None, digests: dict[str, str] | None = None) -> None:
        self.path = path
        self._store: Store = create_store(qualified_path(path, spark) if spark is not None else path)
        #: SHA-256 of every file written (saved in the metadata), or read back from a save's metadata.
        self.digests: dict[str, str] = dict(digests or {})

    def write_bytes(self, name: str, data: bytes) -> None:
        self._store.write_bytes(name, data)
        self.digests[name] = hashlib.sha256(data).hexdigest()

    def read_bytes(self, name: str) -> bytes:
        """The file's content, checked against its SHA-256 in the metadata (saves that recorded one)."""
        try:
            data = self._store.read_bytes(name)
        except FileNotFoundError as e:
            raise PersistenceError(f"The saved instance at {self.path!r} lacks its file {name!r}.") from e
        expected = self.digests.get(name)
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise PersistenceError(
                f"The file {name!r} of the saved instance at {self.path!r} changed after it was saved: its "
                f"SHA-256 is not the {expected[:16]}... recorded in the metadata. Save the instance again."
            )
        return data

    def write_json(self, name: str, value: Any) -> None:
        self.write_bytes(name, json.dumps(value).encode())

    def read_json(self, name: str) -> Any:
        return json.loads(self.read_bytes(name))

    def exists(self, name: str) -> bool:
        return self._store.exists(name)

    @contextmanager
    def local_copy(self, name: str) -> Iterator[str]:
        """A local file with the content of ``name`` (Keras loads from a path)."""
        suffix = posixpath.splitext(name)[1]
        with tempfile.TemporaryDirectory(prefix="cerebro-load-") as tmp:
            local = os.path.join(tmp, "file" + suffix)
            with open(local, "wb") as f:
                f.write(self.read_bytes(name))
            yield local


# ---- versions and pickles ----------------------------------------------------------------------------


def environment() -> dict[str, str]:
    """The versions a save records: what a pickle or a .keras file may depend on."""
    import cloudpickle

    versions = {"python": platform.python_version(), "cloudpickle": cloudpickle.__version__}
    try:
        import keras

        versions["keras"] = keras.__version__
    except ImportError:  # pragma: no cover (keras is installed with the tf extra)
        pass
    return versions


def dumps(value: Any, what: str) -> bytes:
    """``value`` pickled with cloudpickle; ``what`` names it in the error."""
    import cloudpickle

    try:
        return cloudpickle.dumps(value)  # type: ignore[no-any-return]
    except Exception as e:
        raise PersistenceError(
            f"Cannot save {what}: cloudpickle cannot pickle {type(value).__name__} ({type(e).__name__}: {e})."
        ) from e


def loads(files: SavedFiles, name: str, what: str, saved_with: dict[str, str]) -> Any:
    """Unpickle the saved file ``name`` if pickles are trusted (:mod:`cerebro_spark._trust`); on
    failure, a PersistenceError naming ``what`` and the versions on both sides."""
    return unpickle(read_trusted(files, name, what), what, saved_with)


def read_trusted(files: SavedFiles, name: str, what: str) -> bytes:
    """The bytes of the saved pickle ``name``, read only if pickles are trusted."""
    require_trust(what, posixpath.join(files.path, name))
    return files.read_bytes(name)


def unpickle(data: bytes, what: str, saved_with: dict[str, str]) -> Any:
    """Unpickle ``data`` (read with :func:`read_trusted`); see :func:`loads`."""
    import cloudpickle

    try:
        return cloudpickle.loads(data)
    except Exception as e:
        here = {**environment(), "cerebro_spark": __version__}
        raise PersistenceError(
            f"Cannot load {what} ({type(e).__name__}: {e}). It was saved with "
            f"{_describe_versions(saved_with)}; this process has {_describe_versions(here)}. Functions and "
            "classes from importable modules are pickled by reference: their module must be importable "
            "here (those defined in __main__ are pickled by value), and pickles may need the same Python "
            "and cloudpickle versions."
        ) from e


def _describe_versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) or "unknown versions"


# ---- param values ------------------------------------------------------------------------------------


def _is_builtin_keras_object(value: Any) -> bool:
    """A Keras optimizer, loss, metric or learning-rate schedule of Keras' own (saved by its config)."""
    keras = sys.modules.get("keras")
    if keras is None:
        return False
    kinds = (
        keras.optimizers.Optimizer,
        keras.losses.Loss,
        keras.metrics.Metric,
        keras.optimizers.schedules.LearningRateSchedule,
    )
    return isinstance(value, kinds) and type(value).__module__.startswith("keras.")


def _is_keras_model(value: Any) -> bool:
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(value, keras.Model)


def encode_value(value: Any, key: str, files: SavedFiles, what: str) -> dict[str, Any]:
    """A JSON descriptor of ``value``, writing its file(s) under ``key`` when it needs any."""
    if is_json(value):
        return {"kind": "json", "value": value}
    if isinstance(value, Store):
        return {"kind": "store", "url": value.url}
    if isinstance(value, Backend):
        return {
            "kind": "backend",
            "class": f"{type(value).__module__}.{type(value).__name__}",
            "num_workers": value.num_workers,
        }
    if _is_keras_model(value):
        name = f"{key}.keras"
        files.write_bytes(name, keras_io.model_to_bytes(value))
        return {"kind": "keras_model", "file": name}
    if isinstance(value, (list, tuple)) and not isinstance(value, str):
        return {
            "kind": "list",
            "items": [encode_value(v, f"{key}-{i}", files, f"{what}[{i}]") for i, v in enumerate(value)],
        }
    if _is_builtin_keras_object(value):
        config = keras_io.object_config(value)
        if is_json(config):
            return {"kind": "keras_object", "config": config}
    name = f"{key}.pkl"
    files.write_bytes(name, dumps(value, what))
    return {"kind": "pickle", "file": name}


def decode_value(
    descriptor: dict[str, Any], files: SavedFiles, what: str, saved_with: dict[str, str], custom: Any = None
) -> Any:
    """The value ``descriptor`` describes (``custom``: custom Keras objects needed by Keras kinds)."""
    kind = descriptor.get("kind")
    if kind == "json":
        return descriptor["value"]
    if kind == "store":
        try:
            return create_store(descriptor["url"])
        except StoreError as e:
            logger.warning(
                "%s is left unset: its Store cannot be opened here (%s). Set it again before fit.", what, e
            )
            return None
    if kind == "backend":
        return _restore_backend(descriptor, what)
    if kind == "keras_model":
        with files.local_copy(descriptor["file"]) as local:
            try:
                return keras_io.load_model_file(local, custom)
            except Exception as e:
                raise PersistenceError(
                    f"Cannot load {what} from {descriptor['file']!r} under {files.path!r} "
                    f"({type(e).__name__}: {e}). It was saved with {_describe_versions(saved_with)}."
                ) from e
    if kind == "list":
        return [
            decode_value(d, files, f"{what}[{i}]", saved_with, custom)
            for i, d in enumerate(descriptor["items"])
        ]
    if kind == "keras_object":
        return keras_io.object_from_config(descriptor["config"], custom)
    if kind == "pickle":
        return loads(files, descriptor["file"], what, saved_with)
    raise PersistenceError(
        f"Cannot load {what}: unknown kind of saved value {kind!r} (a newer cerebro_spark?)."
    )


def _restore_backend(descriptor: dict[str, Any], what: str) -> Backend | None:
    restorable: dict[str, type[Backend]] = {
        f"{c.__module__}.{c.__name__}": c for c in (SparkBackend, LocalBackend)
    }
    backend_class = restorable.get(descriptor["class"])
    if backend_class is None:
        logger.warning(
            "%s was a %s, which is not restored: it is left unset (a SparkBackend on the active session). "
            "Set it again before fit.",
            what,
            descriptor["class"],
        )
        return None
    return backend_class(num_workers=descriptor["num_workers"])  # type: ignore[call-arg]


# ---- the writer, the reader and the mixin ------------------------------------------------------------


class CerebroWriter(MLWriter):
    """Writes a :class:`Persistable`: Spark's metadata JSON plus its files (see the module docstring).

    Options (``write().option(key, value)``): ``saveAllModels`` (``ModelSelectionModel``: save every
    model's ``.keras`` file, not only the best's).
    """

    def __init__(self, instance: Persistable) -> None:
        super().__init__()
        self.instance = instance

    def save(self, path: str) -> None:
        """Save to ``path``; without Spark (no session), the metadata is written without a JVM."""
        if spark_or_none(self) is not None:
            super().save(path)
            return
        if self.shouldOverwrite:  # as Spark's _handleOverwrite: what is saved there goes first
            parent, _, name = path.rstrip("/").rpartition("/")
            create_store(parent or ".").delete(name, recursive=True)
        self.saveImpl(path)

    def saveImpl(self, path: str) -> None:  # noqa: N802 (pyspark's name)
        instance = self.instance
        spark = spark_or_none(self)
        files = SavedFiles(path, spark)
        if not self.shouldOverwrite and files.exists("metadata"):  # before any file of ours is written
            raise PersistenceError(
                f"Cannot save {type(instance).__name__} to {path!r}: something is saved there already. "
                "Use write().overwrite().save(path) to replace it."
            )
        json_params: dict[str, Any] = {}
        encoded: dict[str, Any] = {}
        for param, value in instance._paramMap.items():
            if is_json(value):
                json_params[param.name] = value
            else:
                what = f"param {param.name!r} of {type(instance).__name__}"
                encoded[param.name] = encode_value(value, f"params/{param.name}", files, what)
        extra = instance._save_extra(files, dict(self.optionMap))
        cerebro = {
            "environment": environment(),
            "encodedParams": encoded,
            "extra": extra,
            "files": files.digests,
        }
        metadata = {"cerebroVersion": __version__, "cerebroFormatVersion": FORMAT_VERSION, "cerebro": cerebro}
        if spark is None:
            write_metadata_without_spark(instance, files, metadata, json_params)
        else:
            DefaultParamsWriter.saveMetadata(
                instance, path, metadata_context(spark), extraMetadata=metadata, paramMap=json_params
            )
        logger.info("saved %s %s to %s", type(instance).__name__, instance.uid, path)


class CerebroReader(MLReader["Persistable"]):
    """Reads what :class:`CerebroWriter` wrote, into an instance of ``cls`` (or of the saved subclass)."""

    def __init__(self, cls: type[Persistable]) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> Persistable:
        spark = spark_or_none(self)
        if spark is None:
            metadata = read_metadata_without_spark(path)
        else:
            metadata = DefaultParamsReader.loadMetadata(path, metadata_context(spark))
        check_format(metadata, path)
        instance_class = _saved_class(metadata, self.cls, path)
        instance = instance_class()
        instance._resetUid(metadata["uid"])
        cerebro = metadata["cerebro"]
        saved_with = {**cerebro.get("environment", {}), "cerebro_spark": metadata["cerebroVersion"]}
        files = SavedFiles(path, spark, digests=cerebro.get("files"))
        _set_params(instance, metadata, cerebro.get("encodedParams", {}), files, saved_with)
        instance._load_extra(files, cerebro.get("extra", {}), saved_with)
        return instance


def check_format(metadata: dict[str, Any], path: str) -> None:
    """Raise PersistenceError unless this release can read the save's format; warn on another version."""
    saved_format = metadata.get("cerebroFormatVersion")
    if saved_format is None or "cerebro" not in metadata:
        raise PersistenceError(
            f"The instance at {path!r} (class {metadata.get('class')!r}) was not saved by cerebro_spark: "
            "its metadata has no cerebroFormatVersion."
        )
    if not isinstance(saved_format, int) or saved_format > FORMAT_VERSION:
        raise PersistenceError(
            f"The instance at {path!r} was saved by cerebro_spark {metadata.get('cerebroVersion')} in format "
            f"version {saved_format!r}; cerebro_spark {__version__} reads format versions up to "
            f"{FORMAT_VERSION}. Upgrade cerebro_spark to load it."
        )
    if metadata.get("cerebroVersion") != __version__:
        logger.warning(
            "Loading %s saved by cerebro_spark %s with cerebro_spark %s.",
            path,
            metadata.get("cerebroVersion"),
            __version__,
        )


def _saved_class(metadata: dict[str, Any], cls: type[Persistable], path: str) -> type[Persistable]:
    import importlib

    module_name, _, name = str(metadata["class"]).rpartition(".")
    try:
        saved = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as e:
        raise PersistenceError(
            f"Cannot load {path!r}: its class {metadata['class']!r} is not found ({e})."
        ) from e
    if not (isinstance(saved, type) and issubclass(saved, cls)):
        raise PersistenceError(
            f"{cls.__name__}.load cannot load {path!r}: it holds a {metadata['class']}. "
            f"Load it with {name}.load."
        )
    return saved


def _set_params(
    instance: Persistable,
    metadata: dict[str, Any],
    encoded: dict[str, Any],
    files: SavedFiles,
    saved_with: dict[str, str],
) -> None:
    name = type(instance).__name__
    for section, setter in (("defaultParamMap", instance._setDefault), ("paramMap", instance._set)):
        for param_name, value in metadata[section].items():
            if instance.hasParam(param_name):
                setter(**{param_name: value})
            else:
                logger.warning("%s has no param %r any more: its saved value is ignored.", name, param_name)
    # pickles first: custom Keras objects are needed to load a Keras model or optimizer
    order = sorted(encoded, key=lambda n: encoded[n].get("kind") != "pickle")
    decoded: dict[str, Any] = {}
    for param_name in order:
        what = f"param {param_name!r} of {name}"
        custom = decoded.get("custom_objects")
        decoded[param_name] = decode_value(encoded[param_name], files, what, saved_with, custom)
    for param_name, value in decoded.items():
        if not instance.hasParam(param_name):
            logger.warning("%s has no param %r any more: its saved value is ignored.", name, param_name)
        elif value is not None:
            instance._set(**{param_name: value})


class Persistable(MLWritable, MLReadable):  # type: ignore[type-arg]
    """Mixin: ``write()``/``save(path)`` and ``read()``/``load(path)`` for a cerebro_spark Params class.

    A class with data beyond its Params overrides :meth:`_save_extra` and :meth:`_load_extra`.
    """

    def write(self) -> CerebroWriter:
        """A writer: ``write().overwrite().save(path)``."""
        return CerebroWriter(self)

    @classmethod
    def read(cls) -> CerebroReader:
        """A reader: ``read().load(path)`` (or ``cls.load(path)``)."""
        return CerebroReader(cls)

    @classmethod
    def load(cls, path: str, *, trust_pickles: bool = False) -> Any:
        """The instance saved at ``path``.

        Parameters
        ----------
        path : str
            Where it was saved (``save(path)``).
        trust_pickles : bool, default False
            Allow unpickling its saved functions and custom objects, which runs the code they hold:
            only for files you trust. Without it, a save that holds pickles raises
            :class:`~cerebro_spark.errors.UntrustedFileError` (see :func:`cerebro_spark.trust_pickles`).
        """
        with trusted_block() if trust_pickles else contextlib.nullcontext():
            return cls.read().load(path)

    def _save_extra(self, files: SavedFiles, options: dict[str, str]) -> dict[str, Any]:
        """Write the class's own files; return JSON data for the metadata."""
        return {}

    def _load_extra(self, files: SavedFiles, extra: dict[str, Any], saved_with: dict[str, str]) -> None:
        """Restore what :meth:`_save_extra` saved."""


def digest(data: bytes) -> str:
    """A short content digest, to name files shared by several models."""
    return hashlib.sha256(data).hexdigest()[:16]
