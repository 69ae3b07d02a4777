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


def test_local_masters_bind_the_loopback_address() -> None:
    for master in ("local[2]", "local-cluster[2,1,1024]"):
        assert SparkBackend()._bind_host(FakeContext(master, "10.1.2.3")) == "127.0.0.1"


def test_clusters_bind_the_driver_host_and_bind_address_wins() -> None:
    cluster = FakeContext("spark://master:7077", "10.1.2.3")
    assert SparkBackend()._bind_host(cluster) == "10.1.2.3"
    assert SparkBackend(bind_address="0.0.0.0")._bind_host(cluster) == "0.0.0.0"  # only when asked for
    assert SparkBackend()._bind_host(FakeContext("yarn", None)) == "127.0.0.1"
    assert SparkBackend._worker_address(cluster, ("0.0.0.0", 4242)) == ("10.1.2.3", 4242)
