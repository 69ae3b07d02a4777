"""The driver's queued Store writes (BackgroundStore) and the states it holds between units (StateCache)."""

from __future__ import annotations

import threading

import pytest

from cerebro_spark.driver.background_store import BackgroundStore
from cerebro_spark.driver.states import StateCache
from cerebro_spark.store.base import Store


class SlowStore:
    """Wraps a Store; each write waits for ``gate`` and is logged (to see the order writes land in)."""

    def __init__(self, store: Store) -> None:
        self.store, self.gate, self.log = store, threading.Event(), []

    def __getattr__(self, name):
        method = getattr(self.store, name)
        if name not in ("write_bytes", "append_text", "delete"):
            return method

        def write(*args, **kwargs):
            self.gate.wait(timeout=30)
            self.log.append((name, args[0]))
            return method(*args, **kwargs)

        return write


def test_writes_land_in_order_off_the_calling_thread_and_reads_see_them(store):
    slow = SlowStore(store)
    queued = BackgroundStore(store)
    queued.target = slow  # every write now waits for the gate
    queued.write_bytes("runs/r/models/m/ckpt-000001.state", b"state")
    queued.append_text("runs/r/journal.jsonl", "unit 1\n")
    queued.delete("runs/r/models/m/ckpt-000000.state")
    assert slow.log == []  # the calls returned; nothing is written yet
    slow.gate.set()
    assert queued.read_text("runs/r/journal.jsonl") == "unit 1\n"  # a read waits for the queue
    assert slow.log == [
        ("write_bytes", "runs/r/models/m/ckpt-000001.state"),
        ("append_text", "runs/r/journal.jsonl"),
        ("delete", "runs/r/models/m/ckpt-000000.state"),
    ]
    queued.close()


def test_a_failed_write_is_raised_on_the_next_call_and_later_writes_are_dropped(store):
    queued = BackgroundStore(store)
    queued.target = SlowStore(store)
    queued.target.gate.set()
    queued.target.store = None  # every write now fails
    queued.append_text("a.txt", "1")
    queued.append_text("b.txt", "2")
    with pytest.raises(AttributeError):
        queued.flush()
    queued.target = store
    queued.flush()  # the failure was reported once
    assert not store.exists("a.txt") and not store.exists("b.txt")
    queued.close()


def test_atomic_writer_and_upload_are_queued_writes_too(store):
    queued = BackgroundStore(store)
    with queued.atomic_writer("x.bin") as f:
        f.write(b"abc")
    queued.upload(__file__, "copy.py")
    queued.close()
    assert store.read_bytes("x.bin") == b"abc"
    with open(__file__, "rb") as f:
        assert store.read_bytes("copy.py") == f.read()


def test_the_state_cache_holds_the_latest_version_within_its_budget():
    cache = StateCache(budget_bytes=10)
    cache.put("m0", 1, b"aaaa")
    cache.put("m0", 2, b"bbbb")  # replaces version 1
    assert cache.get("m0", 1) is None and cache.get("m0", 2) == b"bbbb" and cache.nbytes == 4
    cache.put("m1", 1, b"cccc")
    assert cache.get("m0", 2) == b"bbbb"  # m0 used last: m1 is the least recently used
    cache.put("m2", 1, b"dddd")
    assert cache.get("m1", 1) is None and len(cache) == 2 and cache.nbytes == 8
    cache.put("big", 1, b"x" * 11)  # larger than the whole budget: not held
    assert cache.get("big", 1) is None and len(cache) == 2
    cache.drop("m0")
    assert cache.get("m0", 2) is None and cache.nbytes == 4
