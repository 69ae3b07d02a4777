"""Filesystem Stores: a local path, HDFS, or any fsspec URL, behind one :class:`FilesystemStore`.

:func:`create_store` resolves a URL or path to a Store once, at the boundary:

- a plain path (relative paths are made absolute, ``~`` is expanded), a ``file://`` URL, an NFS mount or
  Databricks' ``/dbfs/...`` FUSE path: fsspec's ``LocalFileSystem``, with ``os.replace`` and ``fsync``;
- ``hdfs://host:port/path``: ``pyarrow.fs.HadoopFileSystem`` wrapped in fsspec's ``ArrowFSWrapper``;
- any other scheme (``s3://``, ``gs://``, ``abfs://``, ``memory://``...): ``fsspec.filesystem(scheme)``.

``memory://`` is an in-process test double: fsspec's memory filesystem is global to one Python process,
so Spark executors in other processes (and ``local-cluster`` workers) each see their own, empty one.

A Store pickles by value, as ``create_store``'s arguments (URL and storage options), never as its
filesystem object, so it can be shipped to executors; unpickling skips the root checks of ``create_store``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import posixpath
import re
import shutil
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import IO, Any, TypeVar

import fsspec
from fsspec.core import split_protocol
from fsspec.implementations.local import LocalFileSystem

from cerebro_spark.errors import StoreError
from cerebro_spark.store.base import Store

logger = logging.getLogger(__name__)

_TEMP_NAME = re.compile(r"\.tmp-[0-9a-f]{32}$")
_COPY_CHUNK = 1 << 20
# FUSE mounts where appending to an existing file is not supported: append by atomic rewrite there.
_NO_APPEND_PREFIXES = ("/dbfs/", "/Volumes/")


def create_store(url_or_path: str, **storage_options: Any) -> FilesystemStore:
    """Create the Store rooted at ``url_or_path``.

    Parameters
    ----------
    url_or_path : str
        A local path, a ``file://`` URL, any fsspec URL whose package is installed (``s3://`` needs
        ``s3fs``, ``gs://`` ``gcsfs``, ``abfs://`` ``adlfs``), or ``hdfs://host:port/path``, which needs
        pyarrow, a JVM and libhdfs from a Hadoop client (``HADOOP_HOME``, ``JAVA_HOME``,
        ``CLASSPATH=$(hadoop classpath --glob)``) on every machine and is not tested in this repository.
    **storage_options
        Passed to the filesystem: fsspec options, or ``pyarrow.fs.HadoopFileSystem``'s keywords.

    Returns
    -------
    FilesystemStore

    Raises
    ------
    StoreError
        If the scheme is unknown, its package is missing, HDFS cannot be reached, or a local root exists
        as a file or cannot be created or written.

    Examples
    --------
    >>> store = create_store("memory://cerebro-doctest")
    >>> store.write_json("a/b.json", {"x": 1})
    >>> store.read_json("a/b.json")
    {'x': 1}
    """
    if not isinstance(url_or_path, str) or not url_or_path:
        raise StoreError(f"A Store needs a non-empty URL or path. Received: url_or_path={url_or_path!r}")
    store = _open_store(url_or_path, dict(storage_options))
    if store._local:
        _prepare_local_root(store._root)
    logger.debug("created %r", store)
    return store


def restore_store(url: str, storage_options: dict[str, Any]) -> FilesystemStore:
    """Re-create a Store from its URL and storage options without any I/O (a pickled Store on an
    executor, a saved model's run Store): unlike :func:`create_store`, a missing folder is not created."""
    return _open_store(url, storage_options)


#: The name that Stores pickled before it was made public refer to (saved estimators hold such pickles).
_restore_store = restore_store


def _open_store(url_or_path: str, storage_options: dict[str, Any]) -> FilesystemStore:
    protocol, rest = split_protocol(url_or_path)
    if protocol in (None, "file", "local"):
        path = LocalFileSystem._strip_protocol(url_or_path) if protocol else rest
        root = os.path.abspath(os.path.expanduser(path))
        fs = fsspec.filesystem("file", **storage_options)
        return FilesystemStore(root, fs, url=root, storage_options=storage_options, local=True)
    if protocol == "hdfs":
        return _open_hdfs(url_or_path, storage_options)
    try:
        fs = fsspec.filesystem(protocol, **storage_options)
    except ImportError as e:
        raise StoreError(
            f"The Store URL {url_or_path!r} needs the fsspec implementation of scheme {protocol!r}, which is "
            f"not installed ({e}). Install it: pip install {_package_of(protocol)}"
        ) from e
    except ValueError as e:
        raise StoreError(
            f"Unknown Store URL scheme {protocol!r} in {url_or_path!r} ({e}). Expected a local path, "
            "file://, hdfs:// or a scheme with an installed fsspec implementation (s3:// needs s3fs, "
            "gs:// gcsfs, abfs:// adlfs)."
        ) from e
    except Exception as e:
        raise StoreError(f"Cannot create the filesystem for Store URL {url_or_path!r}: {e}") from e
    root = str(fs._strip_protocol(url_or_path)).rstrip("/")
    url = f"{protocol}://{root.lstrip('/')}"
    return FilesystemStore(root, fs, url=url, storage_options=storage_options, local=False)


def _package_of(protocol: str) -> str:
    from fsspec.registry import known_implementations

    spec = known_implementations.get(protocol, {})
    return str(spec.get("class", protocol)).split(".", 1)[0]


def _open_hdfs(url: str, storage_options: dict[str, Any]) -> FilesystemStore:
    parts = urllib.parse.urlsplit(url)
    try:
        from fsspec.implementations.arrow import ArrowFSWrapper
        from pyarrow.fs import HadoopFileSystem

        hdfs = HadoopFileSystem(parts.hostname or "default", parts.port or 0, **storage_options)
    except Exception as e:
        cause = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise StoreError(
            f"Cannot connect to HDFS for Store URL {url!r}: {cause}. HDFS needs pyarrow, a JVM (JAVA_HOME) "
            "and libhdfs from a Hadoop client (HADOOP_HOME or ARROW_LIBHDFS_DIR, and "
            "CLASSPATH=$(hadoop classpath --glob)) on the driver and on every executor."
        ) from e
    root = parts.path.rstrip("/") or "/"
    normalised = f"hdfs://{parts.netloc}{root if root != '/' else ''}"
    return FilesystemStore(
        root, ArrowFSWrapper(hdfs), url=normalised, storage_options=storage_options, local=False
    )


def _prepare_local_root(root: str) -> None:
    if os.path.exists(root) and not os.path.isdir(root):
        raise StoreError(f"The Store root {root!r} must be a folder, but it exists and is a file.")
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as e:
        raise StoreError(f"Cannot create the Store root folder {root!r}: {e.strerror or e}") from e
    probe = os.path.join(root, f".cerebro-probe-{uuid.uuid4().hex}")
    try:
        with open(probe, "xb") as f:
            f.write(b"ok")
    except OSError as e:
        raise StoreError(f"The Store root folder {root!r} is not writable: {e.strerror or e}") from e
    finally:
        with contextlib.suppress(OSError):
            os.remove(probe)


def _check_key(key: object) -> str:
    if not isinstance(key, str) or any(part in ("", ".", "..") for part in key.split("/")):
        raise StoreError(
            "A Store key must be a relative path of '/'-separated names, with no leading '/' and no empty, "
            f"'.' or '..' part, such as 'runs/r1/search.json'. Received: key={key!r}"
        )
    return key


def _abort(f: IO[bytes]) -> None:
    discard = getattr(f, "discard", None)  # fsspec buffered files: drop the upload instead of committing
    with contextlib.suppress(Exception):
        if callable(discard):
            discard()
        f.close()


#: A Store operation that fails with a transient error (an NFS hiccup, object-store throttling, a reset
#: connection: any ``OSError`` but the ones below) is tried again this many times ...
RETRIES = 3
#: ... after this many seconds, doubled each time (0.5, 1, 2).
BACKOFF_S = 0.5
_NOT_TRANSIENT = (
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    StoreError,
)

_Method = TypeVar("_Method", bound=Callable[..., Any])


def _retrying(method: _Method) -> _Method:
    """Retry ``method`` on transient errors (see :data:`RETRIES`); only for idempotent operations."""

    @functools.wraps(method)
    def wrapper(self: FilesystemStore, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(RETRIES + 1):
            try:
                return method(self, *args, **kwargs)
            except _NOT_TRANSIENT:
                raise
            except OSError as exc:
                if attempt == RETRIES:
                    raise
                delay = BACKOFF_S * 2**attempt
                logger.warning(
                    "Store %s: %s(%r) failed (%s: %s); trying again in %.1f s (%d of %d)",
                    self.url,
                    method.__name__,
                    args[0] if args else "",
                    type(exc).__name__,
                    exc,
                    delay,
                    attempt + 1,
                    RETRIES,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper  # type: ignore[return-value]


class FilesystemStore(Store, opens_urls=True):
    """A :class:`Store` on a filesystem: local (also NFS and ``/dbfs``), HDFS or any fsspec filesystem.

    Create it with :func:`create_store` or :meth:`Store.create` (the constructor is internal: ``root`` in
    the filesystem's own path form, ``fs`` an fsspec filesystem, ``url`` what :func:`create_store`
    re-creates it from). Writes go to ``<key>.tmp-<uuid4 hex>`` beside the target, then are renamed over
    it (``os.replace`` locally, ``fs.mv`` elsewhere: an object store's single PUT is atomic; HDFS replaces
    by delete then rename, so a reader may briefly miss the key but never sees a partial file).
    :meth:`listdir` hides such temporary files. Equality and hashing use the class and :attr:`url`.
    Idempotent operations are tried again on transient errors (:data:`RETRIES`); appends are not.
    """

    @classmethod
    def open(cls, url_or_path: str, **storage_options: Any) -> FilesystemStore:
        """:func:`create_store`: what ``Store.create`` opens a URL or path with."""
        return create_store(url_or_path, **storage_options)

    def __init__(self, root: str, fs: Any, *, url: str, storage_options: dict[str, Any], local: bool) -> None:
        self._root = root
        self._fs = fs
        self._url = url
        self._storage_options = storage_options
        self._local = local
        self._append_in_place = local and not (root + "/").startswith(_NO_APPEND_PREFIXES)

    @property
    def url(self) -> str:
        """The Store's root: an absolute path for local Stores, else ``scheme://path``."""
        return self._url

    @property
    def storage_options(self) -> dict[str, Any]:
        """The fsspec options the Store was created with (credentials, endpoint), for readers such as
        Spark's or Petastorm's that open its files themselves."""
        return dict(self._storage_options)

    def _path(self, key: str) -> str:
        key = _check_key(key)
        return posixpath.join(self._root, key) if self._root else key

    def _missing(self, key: str) -> FileNotFoundError:
        return FileNotFoundError(errno.ENOENT, f"No file at key {key!r} in Store {self._url!r}")

    @_retrying
    def exists(self, key: str) -> bool:
        return self._exists(self._path(key))

    def _exists(self, path: str) -> bool:
        if self._local:
            return os.path.exists(path)
        self._fs.invalidate_cache(path)  # another process may have written it since we last listed
        return bool(self._fs.exists(path))

    @_retrying
    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            if self._local:
                with open(path, "rb") as f:
                    return f.read()
            return bytes(self._fs.cat_file(path))
        except FileNotFoundError as e:
            raise self._missing(key) from e

    def open_read(self, key: str) -> IO[bytes]:
        path = self._path(key)
        try:
            if self._local:
                return open(path, "rb")  # the caller closes it
            f: IO[bytes] = self._fs.open(path, "rb")
            return f
        except FileNotFoundError as e:
            raise self._missing(key) from e

    @_retrying
    def write_bytes(self, key: str, data: bytes) -> None:
        with self.atomic_writer(key) as f:
            f.write(data)

    @contextlib.contextmanager
    def atomic_writer(self, key: str) -> Iterator[IO[bytes]]:
        """A binary file whose content replaces ``key`` atomically on a clean exit of the ``with`` block.

        On an exception the temporary file is removed and ``key`` keeps its old content (or stays absent).
        """
        path = self._path(key)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        f = self._open_new(tmp)
        try:
            yield f
            if self._local:
                f.flush()
                os.fsync(f.fileno())
            f.close()
            self._replace(tmp, path)
        except BaseException:
            _abort(f)
            self._remove_quietly(tmp)
            raise

    def _open_new(self, path: str) -> IO[bytes]:
        parent = posixpath.dirname(path)
        if self._local:
            os.makedirs(parent, exist_ok=True)
            return open(path, "xb")  # closed by atomic_writer
        try:
            f: IO[bytes] = self._fs.open(path, "wb")
        except FileNotFoundError:  # filesystems with real folders (HDFS) may need the parent first
            self._fs.makedirs(parent, exist_ok=True)
            f = self._fs.open(path, "wb")
        return f

    def _replace(self, tmp: str, path: str) -> None:
        if not self._local:
            self._fs.mv(tmp, path)
            return
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # make the rename durable; some FUSE mounts refuse this
            fd = os.open(posixpath.dirname(path), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _remove_quietly(self, path: str) -> None:
        try:
            if self._local:
                os.remove(path)
            elif self._fs.exists(path):
                self._fs.rm_file(path)
        except FileNotFoundError:
            pass
        except Exception:
            logger.warning(
                "could not remove the temporary file %s in Store %s", path, self._url, exc_info=True
            )

    @_retrying
    def upload(self, local_path: str, key: str) -> None:
        with open(local_path, "rb") as src, self.atomic_writer(key) as dst:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)

    @_retrying
    def download(self, key: str, local_path: str) -> None:
        with self.open_read(key) as src, open(local_path, "wb") as dst:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)

    def append_text(self, key: str, text: str) -> None:
        """Append UTF-8 ``text`` to ``key`` (created if missing).

        On a local filesystem this appends in place and fsyncs. Elsewhere (object stores, HDFS, ``/dbfs``)
        it reads the file and rewrites it atomically: O(size) per call, fine for journals of one writer.
        """
        path = self._path(key)
        if self._append_in_place:
            os.makedirs(posixpath.dirname(path), exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            return
        try:
            old = self.read_bytes(key)
        except FileNotFoundError:
            old = b""
        self.write_bytes(key, old + text.encode("utf-8"))

    @_retrying
    def listdir(self, key: str) -> list[str]:
        """Sorted names directly under the folder ``key``; ``[]`` if it is missing or a file.

        Temporary files of writes in progress (``*.tmp-<hex>``) are not listed.
        """
        path = self._path(key)
        if self._local:
            try:
                names = os.listdir(path)
            except (FileNotFoundError, NotADirectoryError):
                return []
        else:
            self._fs.invalidate_cache(path)
            try:
                entries = self._fs.ls(path, detail=False)
            except (FileNotFoundError, NotADirectoryError):
                return []
            own = path.rstrip("/")
            names = [posixpath.basename(str(e).rstrip("/")) for e in entries if str(e).rstrip("/") != own]
        return sorted(n for n in names if not _TEMP_NAME.search(n))

    def remove_temporary_files(self, key: str) -> int:
        """Delete the ``*.tmp-<hex>`` files that interrupted writes left under the folder ``key``.

        Only those whose target exists: a leftover without one may be the only copy (on HDFS, replacing
        is delete then rename, and a crash between leaves the new content in the temporary file), so it
        is kept and logged.
        """
        path = self._path(key)
        if not self._local:
            self._fs.invalidate_cache(path)
        try:
            found = [str(p) for p in self._fs.find(path)]
        except (FileNotFoundError, NotADirectoryError):
            return 0
        existing = set(found)
        removed = 0
        for leftover in (p for p in found if _TEMP_NAME.search(p)):
            if _TEMP_NAME.sub("", leftover) in existing:
                self._remove_quietly(leftover)
                removed += 1
            else:
                logger.warning(
                    "kept %s: the file it was written for is missing (it may be its only copy)", leftover
                )
        return removed

    @_retrying
    def delete(self, key: str, *, recursive: bool = False) -> None:
        path = self._path(key)
        if not self._exists(path):  # (not self.exists: delete retries as a whole, not its parts)
            return
        if self._fs.isdir(path) and not recursive:
            raise StoreError(
                f"Key {key!r} in Store {self._url!r} is a folder. Expected a file, or recursive=True to "
                "delete the folder and everything under it."
            )
        try:
            if self._local and recursive and os.path.isdir(path):
                shutil.rmtree(path)
            else:
                self._fs.rm(path, recursive=recursive)
        except FileNotFoundError:
            pass

    def local_path(self, key: str) -> str | None:
        path = self._path(key)
        return path if self._local else None

    def __reduce__(self) -> tuple[Any, tuple[str, dict[str, Any]]]:
        return (restore_store, (self._url, self._storage_options))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Store):
            return NotImplemented
        return type(self) is type(other) and self.url == other.url

    def __hash__(self) -> int:
        return hash((type(self), self._url))
