"""Real daemons started separately: the token guards every RPC but health."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import REPO, daemon_env, wait_for
from tune_client.cluster import HeadClient
from tune_client.errors import AuthenticationError


def test_wrong_token_is_refused_and_health_is_open(daemons):
    address = daemons.start_head()
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING

    wrong = HeadClient(address, "not-the-token", embedded=None)
    with pytest.raises(AuthenticationError, match="token"):
        wrong.wait_ready()
    wrong.close()
    with pytest.raises(AuthenticationError):
        HeadClient(address, "", embedded=None).status()


def test_worker_joins_and_tune_status_lists_it(daemons):
    daemons.start_head()
    daemons.start_worker(cpus=2)
    client = HeadClient(daemons.address, daemons.token, embedded=None)
    client.wait_ready()
    status = wait_for(
        lambda: client.status().workers and client.status(), 20, "the worker to join"
    )
    assert status.workers[0].total["cpu"] == 2
    client.close()

    shown = subprocess.run(
        [sys.executable, "-m", "tune_client.cli", "status"],
        env=daemon_env(TUNE_ADDRESS=daemons.address, TUNE_TOKEN=daemons.token),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert shown.returncode == 0, shown.stderr
    assert "Workers (1)" in shown.stdout and "2 cpu" in shown.stdout


def test_fit_against_a_started_cluster(daemons, tmp_path, monkeypatch):
    import tune_client as tune
    from tune_client import cluster

    daemons.start_head()
    daemons.start_worker(cpus=2)
    monkeypatch.setattr(cluster, "_client", None)
    monkeypatch.setattr(cluster, "_init_args", {})
    tune.init(daemons.address, token=daemons.token)
    try:

        def trainable(config):
            tune.report({"score": config["x"] * 2})

        results = tune.Tuner(
            trainable,
            param_space={"x": tune.grid_search([1, 2, 3])},
            run_config=tune.RunConfig(storage_path=str(tmp_path / "out"), verbose=0),
        ).fit()
    finally:
        tune.init(None)
    assert sorted(r.metrics["score"] for r in results) == [2, 4, 6]


def _embedded_daemon_pids() -> set[int]:
    import os

    import psutil

    return {child.pid for child in psutil.Process(os.getpid()).children()}


def doubled(config):
    import tune_client as tune

    tune.report({"score": config["x"] * 2})


def test_switching_to_a_cluster_and_back_reuses_the_embedded_one(
    daemons, storage, tmp_path
):
    """A notebook that fits locally, then on a cluster, then locally again,
    runs one embedded cluster, not one per switch."""
    import tune_client as tune

    def fit_once() -> int:
        results = tune.Tuner(
            doubled,
            param_space={"x": 3},
            run_config=tune.RunConfig(storage_path=str(tmp_path / "out"), verbose=0),
        ).fit()
        return results[0].metrics["score"]

    tune.init(None)
    assert fit_once() == 6
    embedded = _embedded_daemon_pids()
    daemons.start_head()
    daemons.start_worker(cpus=1)
    tune.init(daemons.address, token=daemons.token)
    assert fit_once() == 6
    tune.init(None)
    assert fit_once() == 6
    assert _embedded_daemon_pids() - set(p.pid for p in daemons.processes) == embedded


def test_daemon_exits_on_sigterm(daemons):
    daemons.start_head()
    worker = daemons.start_worker()
    head = daemons.processes[0]
    client = HeadClient(daemons.address, daemons.token, embedded=None)
    wait_for(lambda: client.status().workers, 20, "the worker to join")
    client.close()
    for process in (worker, head):
        process.terminate()
        assert process.wait(timeout=20) == 0


def test_worker_serves_the_health_service_for_probes(daemons):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemons.start_head()
    daemons.start_worker("--health-port", str(port))

    def serving():
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=2
                )
            return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    wait_for(serving, 20, "the worker's health service")
