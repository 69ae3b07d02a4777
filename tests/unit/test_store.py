"""The Store: the conformance suite on every filesystem we can run here, errors, pickling, atomicity."""

from __future__ import annotations

import os
import pickle
import threading
import uuid
from datetime import datetime

import pytest

from cerebro_spark.errors import InvalidParamError, StoreError
from cerebro_spark.store import FilesystemStore, Store, layout
from cerebro_spark.testing.checks import check_store


def _local_store(tmp_path):
    return Store.create(str(tmp_path / "local-store"))


def _file_url_store(tmp_path):
    return Store.create(f"file://{tmp_path}/file-store")


def _memory_store(tmp_path):
    return Store.create(f"memory://cerebro-tests/{uuid.uuid4().hex}")


STORES = pytest.mark.parametrize(
    "make_store", [_local_store, _file_url_store, _memory_store], ids=["local", "file-url", "memory"]
)


@STORES
def test_store_contract(make_store, tmp_path):
    check_store(make_store(tmp_path))


def test_store_contract_on_an_arrow_filesystem(tmp_path, monkeypatch):
    """The hdfs:// path (ArrowFSWrapper over a pyarrow filesystem), with a local pyarrow fs standing in."""
    pafs = pytest.importorskip("pyarrow.fs")
    calls = []

    def fake_hdfs(host, port, **options):
        calls.append((host, port, options))
        return pafs.LocalFileSystem()

    monkeypatch.setattr(pafs, "HadoopFileSystem", fake_hdfs)
    store = Store.create(f"hdfs://namenode:8020{tmp_path}/hdfs-store/", user="alice")
    assert store.url == f"hdfs://namenode:8020{tmp_path}/hdfs-store"
    assert store.local_path("a") is None
    check_store(store)
    assert calls[0] == ("namenode", 8020, {"user": "alice"})


def test_hdfs_without_a_hadoop_client_names_what_is_needed(monkeypatch):
    pafs = pytest.importorskip("pyarrow.fs")

    def no_jvm(host, port, **options):
        raise OSError("Unable to load libjvm\ndlopen(...) failed")

    monkeypatch.setattr(pafs, "HadoopFileSystem", no_jvm)
    with pytest.raises(StoreError, match=r"hdfs://nn:8020/x.*Unable to load libjvm.*libhdfs"):
        Store.create("hdfs://nn:8020/x")


def test_local_paths_are_normalised(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Store.create("rel/store").url == str(tmp_path / "rel" / "store")
    assert Store.create(f"file://{tmp_path}/rel/store/") == Store.create("rel/store")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Store.create("~/home-store").url == str(tmp_path / "home-store")
    assert (tmp_path / "home-store").is_dir()
    assert os.listdir(tmp_path / "home-store") == []  # the writability probe is removed


def test_local_path_is_the_file_on_local_stores_only(tmp_path):
    store = Store.create(str(tmp_path / "s"))
    assert store.local_path("a/b.bin") == str(tmp_path / "s" / "a" / "b.bin")
    assert Store.create("memory://x").local_path("a/b.bin") is None


def test_a_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreError, match=r"afile.*must be a folder.*is a file"):
        Store.create(str(tmp_path / "afile"))
    with pytest.raises(StoreError, match=r"Cannot create the Store root folder .*afile/below"):
        Store.create(str(tmp_path / "afile" / "below"))


def test_an_unknown_scheme_is_refused():
    with pytest.raises(StoreError, match=r"Unknown Store URL scheme 'nosuchfs'.*Protocol not known"):
        Store.create("nosuchfs://x")


def test_a_missing_filesystem_package_is_named():
    """A scheme fsspec knows but whose package is not installed (s3fs, gcsfs, adlfs... are not)."""
    import importlib.util

    from fsspec.registry import known_implementations

    missing = sorted(
        (protocol, spec["class"].split(".", 1)[0])
        for protocol, spec in known_implementations.items()
        if importlib.util.find_spec(spec["class"].split(".", 1)[0]) is None
    )
    assert missing, "every fsspec implementation is installed: nothing to test with"
    protocol, package = missing[0]
    with pytest.raises(StoreError, match=rf"scheme '{protocol}'.*pip install {package}"):
        Store.create(f"{protocol}://bucket/prefix")


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "", "a//b", "a/./b", "a/"])
def test_keys_must_stay_under_the_root(store, key):
    with pytest.raises(StoreError, match=r"Store key .*Received: key="):
        store.write_bytes(key, b"x")
    with pytest.raises(StoreError, match=r"Received: key="):
        store.exists(key)


@STORES
def test_a_missing_key_names_the_key_and_the_store(make_store, tmp_path):
    store = make_store(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"'runs/r/none.json' in Store '.+'"):
        store.read_json("runs/r/none.json")


def test_delete_of_a_folder_needs_recursive(store):
    store.write_text("d/f.txt", "x")
    with pytest.raises(StoreError, match=r"Key 'd' .* is a folder.*recursive=True"):
        store.delete("d")
    assert store.exists("d/f.txt")


@STORES
def test_the_store_pickles_by_value(make_store, tmp_path):
    store = make_store(tmp_path)
    data = pickle.dumps(store)
    assert len(data) < 500, len(data)
    assert b"FileSystem" not in data  # the fsspec filesystem object is never pickled
    clone = pickle.loads(data)
    assert isinstance(clone, FilesystemStore)
    assert clone == store and hash(clone) == hash(store) and clone is not store
    assert repr(clone) == f"FilesystemStore({store.url!r})"
    assert store != Store.create(f"memory://other-{uuid.uuid4().hex}")


@pytest.mark.parametrize("make_store", [_local_store, _memory_store], ids=["local", "memory"])
def test_a_reader_never_sees_a_partial_write(make_store, tmp_path):
    store = make_store(tmp_path)
    payloads = (b"a" * (1 << 20), b"b" * (1 << 20))
    store.write_bytes("ckpt.bin", payloads[0])
    errors: list[BaseException] = []
    reading, done = threading.Event(), threading.Event()

    def writer():
        try:
            reading.wait(timeout=10)  # start once the reader is reading, so the two overlap
            for i in range(200):
                store.write_bytes("ckpt.bin", payloads[i % 2])
        except BaseException as e:  # surfaced in the main thread
            errors.append(e)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads, bad = 0, []
    while not done.is_set():
        got = store.read_bytes("ckpt.bin")
        reads += 1
        reading.set()
        if got not in payloads:
            bad.append((len(got), got[:1], got[-1:]))
    thread.join()
    assert not errors, errors
    assert not bad, bad[:5]
    assert reads > 0
    assert store.read_bytes("ckpt.bin") == payloads[1]


# ---- layout ---------------------------------------------------------------------------------------


def test_layout_keys():
    assert layout.data_root("ab12") == "data/ab12"
    assert layout.run_root("run-1") == "runs/run-1"
    assert layout.run_record_key("run-1") == "runs/run-1/search.json"
    assert layout.journal_key("run-1") == "runs/run-1/journal.jsonl"
    assert layout.model_root("run-1", "m0") == "runs/run-1/models/m0"
    assert layout.initial_model_key("run-1", "m0") == "runs/run-1/models/m0/model.keras"
    assert layout.checkpoint_key("run-1", "m0", 3) == "runs/run-1/models/m0/ckpt-000003.state"
    assert layout.history_key("run-1", "m0") == "runs/run-1/models/m0/history.jsonl"
    assert layout.final_model_key("run-1", "m0", "best") == "runs/run-1/models/m0/best.keras"
    assert layout.tensorboard_root("run-1", "m0") == "runs/run-1/models/m0/tensorboard"


def test_layout_keys_are_valid_store_keys(store):
    store.write_text(layout.checkpoint_key("run-1", "m0", 0), "w")
    assert store.listdir(layout.model_root("run-1", "m0")) == ["ckpt-000000.state"]


@pytest.mark.parametrize("run_id", ["run-1", "a", "R.2_x-3", "x" * 128])
def test_valid_run_ids(run_id):
    assert layout.validate_run_id(run_id) == run_id


@pytest.mark.parametrize("run_id", ["../x", "a/b", "", ".hidden", "-x", "x" * 200, "a b", "run\n", None, 3])
def test_invalid_run_ids(run_id):
    with pytest.raises(InvalidParamError, match=r"A run id must be a letter or digit.*Received: run_id="):
        layout.validate_run_id(run_id)
    with pytest.raises(InvalidParamError):
        layout.journal_key(run_id)


def test_other_ids_in_keys_are_checked():
    with pytest.raises(InvalidParamError, match=r"model id .*Received: model_id='\.\./m'"):
        layout.history_key("run-1", "../m")
    with pytest.raises(InvalidParamError, match=r"model name .*Received: model_name='a/b'"):
        layout.final_model_key("run-1", "m0", "a/b")
    with pytest.raises(InvalidParamError, match=r"data fingerprint .*Received: data_fingerprint=''"):
        layout.data_root("")
    with pytest.raises(InvalidParamError, match=r"int >= 0\. Received: version=-1"):
        layout.checkpoint_key("run-1", "m0", -1)
    with pytest.raises(InvalidParamError, match=r"Received: version=True"):
        layout.checkpoint_key("run-1", "m0", True)


def test_new_run_id():
    assert layout.new_run_id(datetime(2026, 11, 21, 20, 30, 0), "a1b2") == "run-20261121-203000-a1b2"
    with pytest.raises(InvalidParamError, match=r"token must be 1 to 32 letters or digits.*token='a/b'"):
        layout.new_run_id(datetime(2026, 11, 21), "a/b")


# -- transient errors ----------------------------------------------------------------------------------


def _flaky(monkeypatch, store, method_name, failures):
    """Make ``store.<method_name>`` raise EIO ``failures`` times, then work; returns the call count."""
    import errno

    calls = {"n": 0}
    real = getattr(store, method_name)

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= failures:
            raise OSError(errno.EIO, "Input/output error (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, method_name, flaky)
    return calls


def test_transient_store_errors_are_retried_with_backoff(tmp_path, monkeypatch, caplog):
    from cerebro_spark.store import fs
    from cerebro_spark.store.base import Store

    monkeypatch.setattr(fs, "BACKOFF_S", 0.0)
    store = Store.create(str(tmp_path / "s"))
    calls = _flaky(monkeypatch, store, "_replace", failures=2)  # the rename of a write fails twice
    with caplog.at_level("WARNING", logger="cerebro_spark.store.fs"):
        store.write_bytes("a/b.bin", b"payload")
    assert store.read_bytes("a/b.bin") == b"payload" and calls["n"] == 3
    assert store.listdir("a") == ["b.bin"] and sorted(p.name for p in (tmp_path / "s" / "a").iterdir()) == [
        "b.bin"
    ]
    assert sum("trying again" in r.getMessage() for r in caplog.records) == 2


def test_persistent_store_errors_surface_after_the_retries_and_missing_keys_at_once(tmp_path, monkeypatch):
    from cerebro_spark.store import fs
    from cerebro_spark.store.base import Store

    monkeypatch.setattr(fs, "BACKOFF_S", 0.0)
    store = Store.create(str(tmp_path / "s"))
    calls = _flaky(monkeypatch, store, "_replace", failures=99)
    with pytest.raises(OSError, match="injected"):
        store.write_bytes("k", b"x")
    assert calls["n"] == fs.RETRIES + 1 and not store.exists("k")

    opened = {"n": 0}
    real_open = open

    def counting_open(*args, **kwargs):
        opened["n"] += 1
        return real_open(*args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    with pytest.raises(FileNotFoundError):
        store.read_bytes("missing")
    assert opened["n"] == 1  # not a transient error: no retry


def test_leftovers_of_interrupted_writes_are_removed_and_complete_files_kept(tmp_path):
    from cerebro_spark.store.base import Store

    store = Store.create(str(tmp_path / "s"))
    store.write_bytes("runs/r1/m0000/ckpt-000001.state", b"kept")
    leftover = tmp_path / "s" / "runs" / "r1" / "m0000" / f"ckpt-000001.state.tmp-{uuid.uuid4().hex}"
    leftover.write_bytes(b"half")
    orphan = leftover.parent / f"search.json.tmp-{uuid.uuid4().hex}"  # no search.json: maybe its only copy
    orphan.write_bytes(b"{}")
    other_run = tmp_path / "s" / "runs" / "r2" / f"journal.jsonl.tmp-{uuid.uuid4().hex}"
    other_run.parent.mkdir(parents=True)
    other_run.write_bytes(b"x")
    store.write_bytes("runs/r2/journal.jsonl", b"")
    assert store.remove_temporary_files("runs/r1") == 1
    assert not leftover.exists() and orphan.exists() and other_run.exists()  # only under the folder asked for
    assert store.read_bytes("runs/r1/m0000/ckpt-000001.state") == b"kept"
    assert store.remove_temporary_files("runs/none") == 0
