"""Conformance checks that every implementation of a cerebro_spark contract must pass.

Use them from a test of each implementation::

    @pytest.mark.parametrize("make_store", [memory_store, local_store], ids=["memory", "local"])
    def test_store_contract(make_store, tmp_path):
        check_store(make_store(tmp_path))

A failed check raises ``AssertionError`` with a message naming the check, what was expected and what
was received.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import uuid
from typing import Any

from cerebro_spark.store.base import Store

logger = logging.getLogger(__name__)


class _Boom(Exception):
    """Raised inside ``atomic_writer`` to simulate a writer failing mid-way."""


def _expect(ok: bool, what: str, expected: Any, received: Any) -> None:
    if not ok:
        raise AssertionError(f"Store check {what!r} failed. Expected: {expected!r}. Received: {received!r}")


def _expect_equal(what: str, expected: Any, received: Any) -> None:
    _expect(received == expected, what, expected, received)


def _expect_missing(store: Store, key: str, what: str) -> None:
    try:
        store.read_bytes(key)
    except FileNotFoundError as e:
        _expect(key in str(e), f"{what}: the error names the key", key, str(e))
    else:
        raise AssertionError(f"Store check {what!r} failed. Expected FileNotFoundError for key {key!r}.")


def check_store(store: Store) -> None:
    """Run the Store contract against ``store``.

    Everything happens under a fresh folder ``cerebro-check-<hex>`` of the Store, removed at the end.

    Parameters
    ----------
    store : Store
        The Store to check. It must be writable.

    Raises
    ------
    AssertionError
        If ``store`` breaks the contract.
    """
    base = f"cerebro-check-{uuid.uuid4().hex}"
    logger.debug("checking %r under %s", store, base)
    try:
        _check_read_write(store, base)
        _check_folders(store, base)
        _check_missing(store, base)
        _check_atomic_writer(store, base)
        _check_files(store, base)
        _check_pickle(store, base)
    finally:
        store.delete(base, recursive=True)
    _expect_equal("cleanup: delete(recursive=True)", False, store.exists(base))


def _check_read_write(store: Store, base: str) -> None:
    key = f"{base}/a/b/c.bin"
    store.write_bytes(key, b"\x00\x01bytes")
    _expect_equal("write_bytes/read_bytes", b"\x00\x01bytes", store.read_bytes(key))
    store.write_bytes(key, b"new")
    _expect_equal("overwrite", b"new", store.read_bytes(key))
    store.write_text(f"{base}/t.txt", "héllo\n")
    _expect_equal("write_text/read_text", "héllo\n", store.read_text(f"{base}/t.txt"))
    doc = {"b": [1, 2.5, None], "a": {"x": "y"}, "n": True}
    store.write_json(f"{base}/d.json", doc)
    _expect_equal("write_json/read_json", doc, store.read_json(f"{base}/d.json"))
    with store.open_read(key) as f:
        got = f.read()
    _expect_equal("open_read", b"new", got)
    store.write_bytes(f"{base}/empty", b"")
    _expect_equal("empty file", b"", store.read_bytes(f"{base}/empty"))


def _check_folders(store: Store, base: str) -> None:
    folder = f"{base}/dir"
    for name in ("b.txt", "a.txt", "sub/c.txt"):
        store.write_text(f"{folder}/{name}", name)
    _expect_equal("listdir: sorted names", ["a.txt", "b.txt", "sub"], store.listdir(folder))
    _expect_equal("listdir of a missing folder", [], store.listdir(f"{base}/nothing-here"))
    _expect(store.exists(f"{folder}/a.txt"), "exists: a file", True, False)
    _expect(store.exists(f"{folder}/sub"), "exists: a folder", True, False)
    _expect(not store.exists(f"{folder}/zzz"), "exists: a missing key", False, True)
    store.delete(f"{folder}/a.txt")
    _expect(not store.exists(f"{folder}/a.txt"), "delete a file", False, True)
    store.delete(f"{folder}/a.txt")  # deleting a missing key is not an error
    store.delete(f"{folder}/sub", recursive=True)
    _expect(not store.exists(f"{folder}/sub/c.txt"), "delete a folder recursively", False, True)
    _expect_equal("listdir after deletes", ["b.txt"], store.listdir(folder))


def _check_missing(store: Store, base: str) -> None:
    key = f"{base}/missing/file.bin"
    _expect_missing(store, key, "read_bytes of a missing key")
    try:
        store.open_read(key).close()
    except FileNotFoundError as e:
        _expect(key in str(e), "open_read of a missing key: the error names the key", key, str(e))
    else:
        raise AssertionError(
            f"Store check 'open_read of a missing key' failed. Expected FileNotFoundError for {key!r}."
        )
    try:
        with store.local_copy(key):
            pass
    except FileNotFoundError:
        pass
    else:
        raise AssertionError(
            f"Store check 'local_copy of a missing key' failed. Expected FileNotFoundError for {key!r}."
        )


def _check_atomic_writer(store: Store, base: str) -> None:
    key = f"{base}/atomic/ckpt.bin"
    with store.atomic_writer(key) as f:
        f.write(b"old ")
        f.write(b"content")
    _expect_equal("atomic_writer: clean exit", b"old content", store.read_bytes(key))
    try:
        with store.atomic_writer(key) as f:
            f.write(b"half-writ")
            raise _Boom
    except _Boom:
        pass
    _expect_equal("atomic_writer failing keeps the old content", b"old content", store.read_bytes(key))
    _expect_equal(
        "atomic_writer failing leaves no temporary file", ["ckpt.bin"], store.listdir(f"{base}/atomic")
    )
    fresh = f"{base}/atomic/never.bin"
    try:
        with store.atomic_writer(fresh) as f:
            f.write(b"x")
            raise _Boom
    except _Boom:
        pass
    _expect(not store.exists(fresh), "atomic_writer failing on a new key creates nothing", False, True)


def _check_files(store: Store, base: str) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)  # bigger than one copy chunk
    with tempfile.TemporaryDirectory(prefix="cerebro-check-") as tmp:
        src, dest = os.path.join(tmp, "src.bin"), os.path.join(tmp, "dest.bin")
        with open(src, "wb") as f:
            f.write(payload)
        store.upload(src, f"{base}/files/blob.bin")
        _expect(
            store.read_bytes(f"{base}/files/blob.bin") == payload,
            "upload",
            "the local file's bytes",
            "other bytes",
        )
        store.download(f"{base}/files/blob.bin", dest)
        with open(dest, "rb") as f:
            _expect(f.read() == payload, "download", "the stored bytes", "other bytes")
    with store.local_copy(f"{base}/files/blob.bin") as path:
        with open(path, "rb") as f:
            _expect(f.read() == payload, "local_copy", "the stored bytes", "other bytes")
        _expect(path.endswith("blob.bin"), "local_copy keeps the file name", ".../blob.bin", path)
    journal = f"{base}/files/journal.jsonl"
    store.append_text(journal, '{"unit": 1}\n')
    store.append_text(journal, '{"unit": 2}\n')
    expected = '{"unit": 1}\n{"unit": 2}\n'
    _expect_equal("append_text twice", expected, store.read_text(journal))


def _check_pickle(store: Store, base: str) -> None:
    clone = pickle.loads(pickle.dumps(store))
    _expect_equal("pickle round-trip gives an equal Store", store, clone)
    _expect_equal("equal Stores hash equally", hash(store), hash(clone))
    _expect_equal("pickle round-trip keeps the url", store.url, clone.url)
    store.write_text(f"{base}/pickled.txt", "seen")
    _expect_equal("an unpickled Store sees the same files", "seen", clone.read_text(f"{base}/pickled.txt"))
