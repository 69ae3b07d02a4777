"""An interrupted checkpoint write never replaces the last good checkpoint (Store writes are atomic)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from cerebro_spark.store import fs as fs_module
from cerebro_spark.store.base import Store

KEY = "runs/r1/models/m0000/ckpt-000001.weights.h5"


def test_an_upload_that_fails_half_way_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    store = Store.create(str(tmp_path / "store"))
    store.write_bytes(KEY, b"good checkpoint")
    new = tmp_path / "new.weights.h5"
    new.write_bytes(b"N" * 100_000)

    def copy_half_then_fail(src, dst, length=0):
        dst.write(src.read(50_000))
        raise KeyboardInterrupt  # e.g. Ctrl-C, or the task cancelled, mid-copy

    monkeypatch.setattr(fs_module.shutil, "copyfileobj", copy_half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        store.upload(str(new), KEY)
    assert store.read_bytes(KEY) == b"good checkpoint"
    assert store.listdir("runs/r1/models/m0000") == ["ckpt-000001.weights.h5"]  # no temporary file left


def test_a_process_killed_mid_write_keeps_the_last_good_checkpoint(tmp_path):
    store = Store.create(str(tmp_path / "store"))
    store.write_bytes(KEY, b"good checkpoint")
    script = textwrap.dedent(f"""
        import os, signal
        from cerebro_spark.store.base import Store
        store = Store.create({str(tmp_path / "store")!r})
        with store.atomic_writer({KEY!r}) as f:
            f.write(b"half a checkpoint")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ}, capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert store.read_bytes(KEY) == b"good checkpoint"
    names = store.listdir("runs/r1/models/m0000")
    assert names[0] == "ckpt-000001.weights.h5" and all(
        ".tmp-" in n for n in names[1:]
    )  # debris, never the key
