"""The examples under ``spark-submit`` on a real Spark standalone cluster: a master and one worker with
2 cores, started here from the installed pyspark (``spark-class``), on loopback and free ports.

Checks that the searches finish with their leaderboard, that the barrier tasks ran on the standalone
worker's executor (from the application's event log), and that a search whose executor JVM is killed
mid-run relaunches its workers and still trains every unit exactly once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras]

ROOT = Path(__file__).resolve().parents[2]
READY_S = 90.0  # daemons up, an application's end: generous, for a loaded 2-core machine


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _wait_for(path: Path, pattern: str, proc: subprocess.Popen, what: str) -> re.Match:
    """Wait until ``path`` (a daemon's log) has a line matching ``pattern``; fail if the daemon exits."""
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        found = re.search(pattern, path.read_text(errors="replace")) if path.exists() else None
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the {what} exited ({proc.returncode}):\n{path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)  # polling a log file for a readiness line, with a deadline
    pytest.fail(
        f"the {what} was not ready within {READY_S:.0f} s:\n{path.read_text(errors='replace')[-3000:]}"
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``(master_url, env, worker_pid)`` of a running standalone master and worker; both stopped by pid."""
    home = tmp_path_factory.mktemp("standalone")
    env = {
        **os.environ,
        "SPARK_HOME": str(_spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOG_DIR": str(home / "logs"),
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    spark_class = str(_spark_home() / "bin" / "spark-class")
    procs = []
    try:
        with open(home / "master.log", "w") as log:
            procs.append(subprocess.Popen(
                [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", "0",
                 "--webui-port", "0"], stdout=log, stderr=subprocess.STDOUT, env=env,
            ))  # fmt: skip
        master = _wait_for(
            home / "master.log", r"Starting Spark master at (spark://[\d.]+:\d+)", procs[0], "master"
        )[1]
        with open(home / "worker.log", "w") as log:
            procs.append(subprocess.Popen(
                [spark_class, "org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1", "--port", "0",
                 "--webui-port", "0", "--cores", "2", "--memory", "3g", "--work-dir", str(home / "work")],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            ))  # fmt: skip
        _wait_for(home / "worker.log", r"Successfully registered with master", procs[1], "worker")
        yield master, env, procs[1].pid  # spark-class execs the JVM: this is the Worker's own pid
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def spark_submit(cluster, script: str, *args: str, events: Path, **popen) -> subprocess.Popen:
    master, env, _ = cluster
    command = [
        str(_spark_home() / "bin" / "spark-submit"), "--master", master, "--executor-memory", "2g",
        "--conf", "spark.eventLog.enabled=true", "--conf", f"spark.eventLog.dir=file://{events}",
        "--conf", "spark.eventLog.compress=false", "--conf", "spark.ui.enabled=false",
        str(ROOT / "examples" / script), "--master", master, *args,
    ]  # fmt: skip
    events.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
    )


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-5000:]
    return out


def barrier_task_executors(events: Path) -> tuple[list[str], dict[str, str]]:
    """The executor ids the barrier stage's tasks ran on, and every executor's host, from the event log."""
    logs = [p for p in events.rglob("*") if p.is_file() and not p.name.startswith((".", "appstatus"))]
    records = [json.loads(line) for log in sorted(logs) for line in log.read_text().splitlines()]
    hosts = {
        r["Executor ID"]: r["Executor Info"]["Host"]
        for r in records
        if r["Event"] == "SparkListenerExecutorAdded"
    }
    barrier_stages = {  # the stages of the jobs run under the barrier stage's job group
        stage for r in records
        if r["Event"] == "SparkListenerJobStart"
        and (r.get("Properties") or {}).get("spark.jobGroup.id", "").startswith("cerebro_spark-")
        for stage in r["Stage IDs"]
    }  # fmt: skip
    ran_on = [
        r["Task Info"]["Executor ID"] for r in records
        if r["Event"] == "SparkListenerTaskEnd" and r["Stage ID"] in barrier_stages
    ]  # fmt: skip
    return ran_on, hosts


def test_quickstart_under_spark_submit(cluster, tmp_path):
    out = finish(spark_submit(cluster, "quickstart.py", "--rows", "4000", "--epochs", "2",
                              "--store", str(tmp_path / "store"), events=tmp_path / "events"))  # fmt: skip
    assert "Leaderboard (best first):" in out
    accuracy = float(re.search(r"Best model m\d+: accuracy ([\d.]+) on", out)[1])
    assert accuracy > 0.8, out[-3000:]
    ran_on, hosts = barrier_task_executors(tmp_path / "events")
    assert len(ran_on) == 2 and "driver" not in ran_on  # executors of the standalone worker, not the driver
    assert all(hosts[e] == "127.0.0.1" for e in ran_on)


def test_pipeline_example_under_spark_submit(cluster, tmp_path):
    out = finish(
        spark_submit(cluster, "pipeline.py", "--out", str(tmp_path / "out"), events=tmp_path / "events")
    )
    assert "identical predictions: True" in out
    ran_on, _ = barrier_task_executors(tmp_path / "events")
    assert ran_on and "driver" not in ran_on


def _executor_pids(worker_pid: int) -> list[int]:
    """Pids of the executor JVMs (CoarseGrainedExecutorBackend) that the standalone worker launched."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            args = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):  # not a process, or one that just ended
            continue
        if ppid == worker_pid and b"CoarseGrainedExecutorBackend" in args:
            found.append(int(proc.name))
    return found


def test_a_killed_executor_jvm_costs_a_relaunch_not_the_search(cluster, tmp_path):
    store = tmp_path / "store"
    proc = spark_submit(cluster, "quickstart.py", "--rows", "20000", "--epochs", "12", "--store", str(store),
                        events=tmp_path / "events")  # fmt: skip
    deadline = time.monotonic() + 300
    journal = None
    while time.monotonic() < deadline and proc.poll() is None:
        journals = list(store.glob("runs/*/journal.jsonl"))
        if journals and len(journals[0].read_text().splitlines()) >= 8:  # the search is well under way
            journal = journals[0]
            break
        time.sleep(0.2)  # polling the run's journal for progress, with a deadline
    assert journal is not None, "the search did not get going:\n" + (
        proc.stdout.read() if proc.poll() else ""
    )
    pids = _executor_pids(cluster[2])
    assert len(pids) == 1, f"executors of the worker {cluster[2]}: {pids}"
    os.kill(pids[0], signal.SIGKILL)
    out = finish(proc)
    assert "Leaderboard (best first):" in out

    record = json.loads((journal.parent / "search.json").read_text())
    assert record["status"] == "completed"
    assert len(record["worker_losses"]) >= 1  # the loss was seen and survived
    units = Counter((u["model_id"], u["epoch"], u["partition"], u["kind"])
                    for u in map(json.loads, journal.read_text().splitlines()))  # fmt: skip
    assert set(units.values()) == {1} and len(units) == 8 * 12 * 4  # every unit of every epoch exactly once
    ran_on, _ = barrier_task_executors(tmp_path / "events")
    assert len(set(ran_on)) >= 2  # the relaunched barrier stage ran on the new executor
