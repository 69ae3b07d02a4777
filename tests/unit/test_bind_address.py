"""The control plane listens on the address executors use, never on every interface by default."""

from __future__ import annotations

from cerebro_spark.backend.spark import SparkBackend


class FakeContext:
    """Just what SparkBackend reads of a session's Spark to choose its address: the master URL and the
    driver host (``spark.driver.host``; a Spark Connect client's own address)."""

    def __init__(self, master: str, driver_host: str | None) -> None:
        self.master = master
        self._driver_host = driver_host

    def driver_host(self) -> str | None:
        return self._driver_host


def on(cluster: FakeContext, **kwargs: object) -> SparkBackend:
    """A SparkBackend whose session's Spark (resolved at start) is ``cluster``."""
    backend = SparkBackend(**kwargs)  # type: ignore[arg-type]
    backend._cluster = cluster  # type: ignore[assignment]
    return backend


def test_local_masters_bind_the_loopback_address() -> None:
    for master in ("local[2]", "local-cluster[2,1,1024]"):
        assert on(FakeContext(master, "10.1.2.3"))._bind_host() == "127.0.0.1"


def test_clusters_bind_the_driver_host_and_bind_address_wins() -> None:
    cluster = FakeContext("spark://master:7077", "10.1.2.3")
    assert on(cluster)._bind_host() == "10.1.2.3"
    assert on(cluster, bind_address="0.0.0.0")._bind_host() == "0.0.0.0"  # only when asked for
    assert on(FakeContext("yarn", None))._bind_host() == "127.0.0.1"
    assert on(cluster)._worker_address(("0.0.0.0", 4242)) == ("10.1.2.3", 4242)
