"""Shared fixtures: isolated storage, real daemons on loopback, leak checks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]
DAEMON_START_TIMEOUT_S = 20.0
# Every process this test run starts inherits the tag, so the leak check below
# counts only our own daemons, not those of another run on the same machine.
SESSION_TAG = secrets.token_hex(6)
os.environ["TUNE_TEST_SESSION"] = SESSION_TAG


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def storage(tmp_path, monkeypatch) -> Path:
    """A fresh results folder, used as the default storage_path."""
    path = tmp_path / "results"
    path.mkdir()
    monkeypatch.setenv("TUNE_RESULTS_DIR", str(path))
    return path


def daemon_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TUNE_ADDRESS", None)
    env.pop("TUNE_TOKEN", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


class Daemons:
    """Real tune-head and tune-worker processes started by a test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.token = secrets.token_hex(8)
        self.processes: list[subprocess.Popen] = []
        self.address = ""

    def start_head(self, *args: str, port: int = 0) -> str:
        port_file = self.tmp_path / f"head-{len(self.processes)}.port"
        log = open(self.tmp_path / f"head-{len(self.processes)}.log", "w")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tune_head",
                "--port",
                str(port),
                "--port-file",
                str(port_file),
                "--token",
                self.token,
                "--storage",
                str(self.tmp_path / "head-storage"),
                *args,
            ],
            env=daemon_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        wait_for(
            lambda: port_file.exists() or process.poll() is not None,
            DAEMON_START_TIMEOUT_S,
            "tune-head to bind its port",
        )
        assert process.poll() is None, (self.tmp_path / "head-0.log").read_text()
        self.address = f"127.0.0.1:{port_file.read_text().strip()}"
        return self.address

    def start_worker(self, *args: str, cpus: int = 2) -> subprocess.Popen:
        index = len(self.processes)
        log = open(self.tmp_path / f"worker-{index}.log", "w")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tune_worker",
                "--head",
                self.address,
                "--token",
                self.token,
                "--cpus",
                str(cpus),
                "--work-dir",
                str(self.tmp_path / f"worker-{index}"),
                *args,
            ],
            env=daemon_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def daemons(tmp_path):
    started = Daemons(tmp_path)
    yield started
    started.stop()


def tune_daemon_processes() -> list[psutil.Process]:
    """The tune-head and tune-worker processes this test run started."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "-m tune_head" not in cmdline and "-m tune_worker" not in cmdline:
            continue
        try:
            if process.environ().get("TUNE_TEST_SESSION") == SESSION_TAG:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture(scope="session", autouse=True)
def no_daemon_left_behind():
    """After the whole run, no daemon the tests started may still be alive."""
    yield
    from tune_client import cluster

    cluster.shutdown()
    wait_for(
        lambda: not tune_daemon_processes(),
        10,
        "every daemon the tests started to exit",
    )
