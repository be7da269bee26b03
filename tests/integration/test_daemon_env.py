"""Daemons configured only through environment variables, as compose, Kubernetes
and systemd configure them: every flag reads TUNE_HEAD_* or TUNE_WORKER_*."""

from __future__ import annotations

import secrets
import subprocess
import sys
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import DAEMON_START_TIMEOUT_S, daemon_env, wait_for
from tests.integration.operator_cli import free_port, tune_status

GIB = 2**30


def _start(daemons, module: str, log_name: str, **env: str) -> subprocess.Popen:
    """Start a daemon with no flags at all; the fixture stops it."""
    log = open(daemons.tmp_path / log_name, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", module],
        env=daemon_env(**env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    daemons.processes.append(process)
    return process


def _health(port: int) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return reply.status


def test_head_and_worker_take_their_flags_from_the_environment(daemons, tmp_path):
    token = secrets.token_hex(8)
    port_file = tmp_path / "head.port"
    metrics_port, health_port = free_port(), free_port()
    head = _start(
        daemons,
        "tune_head",
        "head-0.log",
        TUNE_HEAD_PORT="0",
        TUNE_HEAD_PORT_FILE=str(port_file),
        TUNE_HEAD_STORAGE=str(tmp_path / "storage"),
        TUNE_HEAD_METRICS_PORT=str(metrics_port),
        TUNE_TOKEN=token,
    )
    wait_for(
        lambda: port_file.exists() or head.poll() is not None,
        DAEMON_START_TIMEOUT_S,
        "tune-head to bind the port from TUNE_HEAD_PORT",
    )
    assert head.poll() is None, (tmp_path / "head-0.log").read_text()
    daemons.address = f"127.0.0.1:{port_file.read_text().strip()}"
    daemons.token = token
    _start(
        daemons,
        "tune_worker",
        "worker-1.log",
        TUNE_WORKER_HEAD=daemons.address,
        TUNE_TOKEN=token,
        TUNE_WORKER_WORKER_ID="from-env",
        TUNE_WORKER_CPUS="3",
        TUNE_WORKER_MEMORY=str(2 * GIB),
        TUNE_WORKER_RESOURCES='{"highmem": 2}',
        TUNE_WORKER_WORK_DIR=str(tmp_path / "worker"),
        TUNE_WORKER_HEALTH_PORT=str(health_port),
    )

    shown = wait_for(
        lambda: "from-env" in (out := tune_status(daemons)) and out,
        DAEMON_START_TIMEOUT_S,
        "the worker to join",
    )
    assert "Workers (1):" in shown, shown
    assert "total 3 cpu, 2 highmem, 2.0 GiB memory" in shown, shown
    assert _health(health_port) == health_pb2.HealthCheckResponse.SERVING
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    metrics = urllib.request.urlopen(url, timeout=5).read().decode()
    assert "tune_workers 1.0" in metrics


def run_daemon(module: str, *args: str) -> subprocess.CompletedProcess:
    """Run a daemon that should refuse its flags at once."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=daemon_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_worker_without_a_head_address_says_how_to_give_one(tmp_path):
    done = run_daemon("tune_worker", "--work-dir", str(tmp_path))
    assert done.returncode == 2
    assert "--head HOST:PORT (or TUNE_ADDRESS) is required" in done.stderr


def test_a_head_refuses_an_unencrypted_object_port_beside_tls(tmp_path):
    done = run_daemon(
        "tune_head",
        *("--token", "t", "--storage", str(tmp_path), "--object-port", "0"),
        *("--tls-cert", "cert.pem", "--tls-key", "key.pem"),
    )
    assert done.returncode == 2
    assert "--object-port sends objects unencrypted" in done.stderr
