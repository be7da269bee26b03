"""The embedded cluster: one head and one worker on loopback, owned by this process.

Started when the client has no cluster address. Both daemons are real
processes talking gRPC; they watch this process and exit when it is gone, even
after a SIGKILL, and ``stop`` (run at exit) ends them with SIGTERM.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

from tune_client.errors import ClusterError

log = logging.getLogger(__name__)
START_TIMEOUT_S = 30.0


def _modules_trials_will_use() -> list[str]:
    """The worker's usual preloads that this process has imported too.

    Trials run this process's code, so they need what it imported; loading
    pandas into the template for a script that never imports it would only
    hold back the first trial, by most of a second on a small machine.
    """
    from tune_worker import DEFAULT_PRELOAD

    return [name for name in DEFAULT_PRELOAD if name in sys.modules]


class EmbeddedCluster:
    def __init__(self, storage_path: str, cpus: float | None = None) -> None:
        self.storage_path = storage_path
        self.cpus = cpus
        self.token = secrets.token_hex(16)
        self.session_dir = tempfile.mkdtemp(prefix="tune_session_")
        self.processes: dict[str, subprocess.Popen] = {}
        self.address = ""
        self.import_paths = [
            os.path.abspath(p) for p in dict.fromkeys([*sys.path, os.getcwd()]) if p
        ]

    def start(self) -> EmbeddedCluster:
        """Start both daemons; the head's address is known once it is bound
        (``wait_bound``). The worker starts first: its trial template's
        imports are the longest step before the first trial can run."""
        env = self._daemon_env()
        common = ["--parent-pid", str(os.getpid()), "--log-level", "INFO"]
        worker_args = [
            "--head-port-file",
            self._port_file,
            "--work-dir",
            os.path.join(self.session_dir, "worker"),
            "--worker-id",
            "embedded-worker",
            "--node-ip",
            "127.0.0.1",
            "--log-file",
            os.path.join(self.session_dir, "worker.log"),
            *common,
        ]
        if self.cpus is not None:
            worker_args += ["--cpus", str(self.cpus)]
        if not os.environ.get("TUNE_WORKER_OUTPUT_RATE"):
            # Trials print here as a local script would; the worker's copy
            # of their output goes when the session does.
            worker_args += ["--output-rate", "0"]
        if not os.environ.get("TUNE_WORKER_PRELOAD"):
            worker_args += ["--preload", ",".join(_modules_trials_will_use())]
        # Trials' output reaches this process through the head; the worker's
        # own copy of it goes to a file, so the terminal shows it once.
        with open(os.path.join(self.session_dir, "worker.out"), "ab") as out:
            self.processes["worker"] = self._spawn(
                "tune_worker", worker_args, env, stdout=out
            )
        self.processes["head"] = self._spawn(
            "tune_head",
            [
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--port-file",
                self._port_file,
                "--storage",
                self.storage_path,
                "--object-dir",
                self.object_dir,
                "--state-dir",
                os.path.join(self.session_dir, "state"),
                # Bucket experiments' local copies go with the session.
                "--mirror-dir",
                os.path.join(self.session_dir, "mirrors"),
                "--log-file",
                os.path.join(self.session_dir, "head.log"),
                *common,
            ],
            env,
        )
        atexit.register(self.stop)
        return self

    @property
    def object_dir(self) -> str:
        return os.path.join(self.session_dir, "objects")

    @property
    def object_handover_dir(self) -> str:
        """Where this process puts object files for the head to take over
        (the head's ``incoming`` folder, on the same filesystem as its store)."""
        from tune_head.object_store import INCOMING_DIR  # the head's layout

        return os.path.join(self.object_dir, INCOMING_DIR)

    @property
    def _port_file(self) -> str:
        return os.path.join(self.session_dir, "head.port")

    def wait_bound(self, timeout: float = START_TIMEOUT_S) -> str:
        """The head's address, once it listens: polling its port file costs
        microseconds, where gRPC's reconnect backoff would cost tenths of a
        second."""
        deadline = time.monotonic() + timeout
        while not os.path.exists(self._port_file):
            self.check_alive()
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"the embedded tune-head did not start within {timeout:.0f} s."
                    f" Its log:\n{self.log_tail('head')}"
                )
            time.sleep(0.005)
        with open(self._port_file) as f:
            self.address = f"127.0.0.1:{f.read().strip()}"
        return self.address

    def _daemon_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["TUNE_TOKEN"] = self.token
        # Trials must import what this process can import (the user's modules).
        env["PYTHONPATH"] = os.pathsep.join(self.import_paths)
        for name in ("TUNE_ADDRESS",):
            env.pop(name, None)
        return env

    def _spawn(
        self, module: str, args: list[str], env: dict, stdout=None
    ) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            start_new_session=True,
        )

    def is_alive(self) -> bool:
        return bool(self.processes) and all(
            process.poll() is None for process in self.processes.values()
        )

    def check_alive(self) -> None:
        """Raise with the daemon's log tail if one of them has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise ClusterError(
                    f"the embedded tune-{name} exited with code {process.returncode}."
                    f" Its log:\n{self.log_tail(name)}"
                )

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            with open(os.path.join(self.session_dir, f"{name}.log")) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        shutil.rmtree(self.session_dir, ignore_errors=True)
