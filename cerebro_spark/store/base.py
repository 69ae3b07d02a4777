"""The Store: one place where prepared data, checkpoints and run records live.

A Store is addressed by *keys*: ``/``-separated paths relative to the Store's root, such as
``"runs/r1/models/m0000/ckpt-000003.weights.h5"``. Every write is atomic: a reader sees either the
old content or the new one, never a half-written file. A Store pickles *by value* (its URL and
options) so it can be shipped to Spark executors and re-created there.
"""

from __future__ import annotations

import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import IO, Any, ClassVar

from cerebro_spark.errors import StoreError


class Store(ABC):
    """Abstract Store. Create one with :meth:`Store.create`.

    Implementations override the abstract methods; the JSON and text helpers are built on them.
    The implementation declared with ``opens_urls=True`` (``FilesystemStore``, which the package
    imports) is the one :meth:`create` opens URLs and paths with.
    """

    _url_opener: ClassVar[Callable[..., Store] | None] = None

    def __init_subclass__(cls, *, opens_urls: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if opens_urls:
            Store._url_opener = cls.open

    @classmethod
    def open(cls, url_or_path: str, **storage_options: Any) -> Store:
        """What :meth:`create` calls on the implementation that opens URLs."""
        raise NotImplementedError(f"{cls.__name__} does not open URLs")

    @staticmethod
    def create(url_or_path: str, **storage_options: Any) -> Store:
        """Create the Store for ``url_or_path``.

        Parameters
        ----------
        url_or_path : str
            A local path (also NFS mounts and Databricks' ``/dbfs/...``), a ``file://`` URL,
            an ``hdfs://host:port/path`` URL (pyarrow's HadoopFileSystem; needs a Hadoop client
            on every machine), or any fsspec URL (``s3://``, ``gs://``, ``abfs://``, ``memory://``)
            whose fsspec implementation is installed.
        **storage_options
            Passed to the filesystem (for example credentials of an object store).

        Returns
        -------
        Store

        Raises
        ------
        StoreError
            If the URL's scheme is unknown or its filesystem package is not installed.

        Examples
        --------
        >>> store = Store.create("/tmp/cerebro-doctest-store")
        >>> store.write_text("hello.txt", "hi")
        >>> store.read_text("hello.txt")
        'hi'
        """
        if Store._url_opener is None:  # only when cerebro_spark.store.base is loaded without its package
            raise StoreError("No Store implementation opens URLs: import cerebro_spark.store.")
        return Store._url_opener(url_or_path, **storage_options)

    # ---- what an implementation provides -------------------------------------------------------

    @property
    @abstractmethod
    def url(self) -> str:
        """The Store's root as a URL or absolute path, as given to :meth:`create` (normalised)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a file or folder exists at ``key``."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The content of the file at ``key``. Raises ``FileNotFoundError`` naming the key if missing."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` to ``key`` atomically (temporary name, then rename), creating folders."""

    @abstractmethod
    def open_read(self, key: str) -> IO[bytes]:
        """A binary file object reading ``key`` (for pyarrow and h5py). The caller closes it."""

    @abstractmethod
    def atomic_writer(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        """A context manager giving a binary file; on a clean exit its content replaces ``key``
        atomically, on an exception nothing at ``key`` changes and the temporary file is removed."""

    @abstractmethod
    def upload(self, local_path: str, key: str) -> None:
        """Copy the local file ``local_path`` to ``key`` atomically."""

    @abstractmethod
    def download(self, key: str, local_path: str) -> None:
        """Copy ``key`` to the local file ``local_path``."""

    @abstractmethod
    def append_text(self, key: str, text: str) -> None:
        """Append ``text`` to the file at ``key`` (created if missing). Used for journals."""

    @abstractmethod
    def listdir(self, key: str) -> list[str]:
        """Names (not keys) of the entries directly under the folder ``key``, sorted; [] if missing."""

    @abstractmethod
    def delete(self, key: str, *, recursive: bool = False) -> None:
        """Delete the file (or, with ``recursive``, the folder) at ``key``; missing keys are ignored."""

    @abstractmethod
    def local_path(self, key: str) -> str | None:
        """The local filesystem path of ``key`` when the Store is on a local or mounted filesystem,
        else ``None``. Lets workers skip a copy (h5py, Keras and pyarrow read local paths directly)."""

    @property
    def storage_options(self) -> dict[str, Any]:
        """The filesystem options (credentials, endpoint) that readers opening the Store's files
        themselves (Spark, Petastorm) need; none for a Store without a filesystem."""
        return {}

    def remove_temporary_files(self, key: str) -> int:
        """Delete what writes interrupted by a crash left under the folder ``key`` (never a complete
        file); returns how many. Only while no one else writes there. Stores without temporary files
        have nothing to do."""
        return 0

    # ---- helpers built on the primitives -------------------------------------------------------

    def read_text(self, key: str) -> str:
        """The UTF-8 text of ``key``."""
        return self.read_bytes(key).decode("utf-8")

    def write_text(self, key: str, text: str) -> None:
        """Write UTF-8 ``text`` to ``key`` atomically."""
        self.write_bytes(key, text.encode("utf-8"))

    def read_json(self, key: str) -> Any:
        """The JSON document at ``key``."""
        return json.loads(self.read_text(key))

    def write_json(self, key: str, value: Any) -> None:
        """Write ``value`` as indented JSON to ``key`` atomically."""
        self.write_text(key, json.dumps(value, indent=2, sort_keys=True) + "\n")

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[str]:
        """A local path holding ``key``'s content for the duration of the ``with`` block
        (the file itself on a local Store, else a temporary download)."""
        import os
        import tempfile

        path = self.local_path(key)
        if path is not None:
            if not os.path.isfile(path):  # as a download would: a missing key must not yield a bad path
                raise FileNotFoundError(f"No file at key {key!r} in Store {self.url!r}")
            yield path
            return
        with tempfile.TemporaryDirectory(prefix="cerebro-") as tmp:
            dest = os.path.join(tmp, key.rsplit("/", 1)[-1])
            self.download(key, dest)
            yield dest

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
