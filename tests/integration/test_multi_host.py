"""A cluster spread over network namespaces, one per "host", joined by a bridge.

The head and two workers each run in a namespace of their own and reach one
another only through a private test subnet. Cutting one worker's link for
longer than the heartbeat timeout gets it declared lost; its trial finishes on
the other worker. When the link comes back, the worker joins again, the trial
it still runs is stopped, and nothing it reported late is logged.

Every address lives inside the namespaces the test creates; nothing outside
this machine is contacted. All namespaces share this machine's filesystem, so
the head lets workers write into its storage folder directly.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import DAEMON_START_TIMEOUT_S, REPO, daemon_env, wait_for

HEARTBEAT_TIMEOUT_S = 2
ITERATIONS = 40
LINK = "tune0"  # each host's end of its veth pair
# The worker whose link is cut steps slowly, so its trial still runs when the
# link comes back and the head has to stop it.
SLOW_STEP_S = "1.0"

CLIENT_SCRIPT = '''
"""Run two checkpointing trials on the cluster; print the results as JSON."""

import json
import os
import sys
import tempfile
import time

import tune_client as tune

ADDRESS, TOKEN, MARKS, NAME = sys.argv[1:5]
ITERATIONS = int(sys.argv[5])


def checkpointing(config):
    step = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            with open(os.path.join(folder, "state.json")) as f:
                step = json.load(f)["step"]
    pid = os.getpid()
    pace = float(os.environ.get("TUNE_TEST_STEP_S", "0.15"))
    with open(os.path.join(config["marks"], f"{pid}.start"), "w") as f:
        json.dump({"trial_id": tune.get_context().get_trial_id(), "from": step}, f)
    while step < ITERATIONS:
        time.sleep(pace)
        step += 1
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "state.json"), "w") as f:
                json.dump({"step": step, "pid": pid}, f)
            tune.report(
                {"step": step, "trial_pid": pid},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )
    open(os.path.join(config["marks"], f"{pid}.done"), "w").close()


tune.init(ADDRESS, token=TOKEN)
results = tune.Tuner(
    checkpointing,
    param_space={"marks": MARKS, "x": tune.grid_search([1, 2])},
    run_config=tune.RunConfig(
        name=NAME, verbose=0, failure_config=tune.FailureConfig(max_failures=-1)
    ),
).fit()
print(
    json.dumps(
        [
            {
                "trial_id": r.metrics.get("trial_id"),
                "path": r.path,
                "metrics": r.metrics,
                "error": repr(r.error) if r.error else None,
                "checkpoint": r.checkpoint.path if r.checkpoint else None,
            }
            for r in results
        ],
        default=repr,
    )
)
'''


# ---- the network ---------------------------------------------------------------


def run_ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=30, check=False
    )


class Network:
    """Namespaces for a head and two workers, joined by a bridge in a fourth."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        subnet = f"10.231.{random.randint(1, 254)}"
        self.bridge_ns = f"tune-b-{tag}"
        self.bridge = f"tunebr{tag}"
        self.hosts = {
            "h": f"tune-h-{tag}",
            "w1": f"tune-w1-{tag}",
            "w2": f"tune-w2-{tag}",
        }
        self.ips = {"h": f"{subnet}.1", "w1": f"{subnet}.2", "w2": f"{subnet}.3"}
        self.created: list[str] = []

    def create(self) -> str:
        """Build everything; the reason it cannot be built, or ""."""
        for ns in (self.bridge_ns, *self.hosts.values()):
            made = run_ip("netns", "add", ns)
            if made.returncode != 0:
                return f"ip netns add failed: {made.stderr.strip()}"
            self.created.append(ns)
        steps = [
            ("-n", self.bridge_ns, "link", "set", "lo", "up"),
            ("-n", self.bridge_ns, "link", "add", self.bridge, "type", "bridge"),
            ("-n", self.bridge_ns, "link", "set", self.bridge, "up"),
        ]
        for name, ns in self.hosts.items():
            port = f"to-{name}"
            steps += [
                ("-n", ns, "link", "set", "lo", "up"),
                ("-n", ns, "link", "add", LINK, "type", "veth", "peer", "name", port)
                + ("netns", self.bridge_ns),
                ("-n", self.bridge_ns, "link", "set", port, "master", self.bridge),
                ("-n", self.bridge_ns, "link", "set", port, "up"),
                ("-n", ns, "addr", "add", f"{self.ips[name]}/24", "dev", LINK),
                ("-n", ns, "link", "set", LINK, "up"),
            ]
        for step in steps:
            done = run_ip(*step)
            if done.returncode != 0:
                return f"ip {' '.join(step)} failed: {done.stderr.strip()}"
        return ""

    def set_link(self, host: str, state: str) -> None:
        done = run_ip("-n", self.hosts[host], "link", "set", LINK, state)
        assert done.returncode == 0, done.stderr

    def remove(self) -> None:
        """Kill whatever still runs in the namespaces, then delete them."""
        for ns in self.created:
            listed = run_ip("netns", "pids", ns)
            for pid in listed.stdout.split():
                try:
                    psutil.Process(int(pid)).kill()
                except psutil.NoSuchProcess:
                    pass
        for ns in reversed(self.created):
            run_ip("netns", "del", ns)
        self.created.clear()


@pytest.fixture(scope="module")
def network():
    if os.geteuid() != 0:
        pytest.skip("network namespaces unavailable: the tests do not run as root")
    if shutil.which("ip") is None:
        pytest.skip("network namespaces unavailable: the ip command is missing")
    net = Network()
    try:
        reason = net.create()
        if reason:
            pytest.skip(f"network namespaces unavailable: {reason}")
        yield net
    finally:
        net.remove()


# ---- processes in the namespaces ------------------------------------------------


class NamespacedCluster:
    """A tune-head and two tune-workers, each in its own namespace."""

    def __init__(self, net: Network, tmp_path: Path) -> None:
        self.net = net
        self.tmp_path = tmp_path
        self.token = secrets.token_hex(8)
        self.storage = tmp_path / "storage"
        self.processes: list[subprocess.Popen] = []
        self.address = ""
        self.worker_ids = {
            name: f"{name}-{secrets.token_hex(3)}" for name in ("w1", "w2")
        }

    def _start(self, host: str, log: str, argv: list[str], **env: str):
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.net.hosts[host], sys.executable, *argv],
            env=daemon_env(**env),
            stdout=open(self.tmp_path / log, "w"),
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        self.processes.append(process)
        return process

    def start_head(self) -> None:
        port_file = self.tmp_path / "head.port"
        head = self._start(
            "h",
            "head.log",
            [
                "-m",
                "tune_head",
                "--host",
                self.net.ips["h"],
                "--port",
                "0",
                "--port-file",
                str(port_file),
                "--token",
                self.token,
                "--storage",
                str(self.storage),
                "--worker-storage",
                "direct",
                "--heartbeat-timeout",
                str(HEARTBEAT_TIMEOUT_S),
            ],
        )
        wait_for(
            lambda: port_file.exists() or head.poll() is not None,
            DAEMON_START_TIMEOUT_S,
            "tune-head to bind its port",
        )
        assert head.poll() is None, (self.tmp_path / "head.log").read_text()
        self.address = f"{self.net.ips['h']}:{port_file.read_text().strip()}"

    def start_worker(self, host: str, cpus: int = 1, **env: str) -> subprocess.Popen:
        return self._start(
            host,
            f"{host}.log",
            [
                "-m",
                "tune_worker",
                "--head",
                self.address,
                "--token",
                self.token,
                "--cpus",
                str(cpus),
                "--work-dir",
                str(self.tmp_path / host),
                "--worker-id",
                self.worker_ids[host],
                "--node-ip",
                self.net.ips[host],
            ],
            **env,
        )

    def start_client(self, name: str, iterations: int) -> tuple:
        script = self.tmp_path / "client.py"
        script.write_text(CLIENT_SCRIPT)
        marks = self.tmp_path / "marks"
        marks.mkdir()
        output = self.tmp_path / "client.out"
        client = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.net.hosts["h"],
                sys.executable,
                str(script),
                self.address,
                self.token,
                str(marks),
                name,
                str(iterations),
            ],
            env=daemon_env(),
            stdout=open(output, "w"),
            stderr=open(self.tmp_path / "client.err", "w"),
            cwd=self.tmp_path,
        )
        self.processes.append(client)
        return client, marks, output

    def client_results(self, client: subprocess.Popen, output: Path) -> list[dict]:
        try:
            client.wait(timeout=45)
        except subprocess.TimeoutExpired:
            pytest.fail("fit() did not return within 45 s")
        errors = (self.tmp_path / "client.err").read_text()
        assert client.returncode == 0, errors
        return json.loads(output.read_text())

    def tune_status(self) -> str:
        shown = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.net.hosts["h"],
                sys.executable,
                "-m",
                "tune_client.cli",
                "status",
            ],
            env=daemon_env(TUNE_ADDRESS=self.address, TUNE_TOKEN=self.token),
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
        )
        assert shown.returncode == 0, shown.stderr
        return shown.stdout

    def workers_listed(self) -> set[str]:
        shown = self.tune_status()
        return {name for name, wid in self.worker_ids.items() if f"  {wid} " in shown}

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
def spread(network, tmp_path):
    cluster = NamespacedCluster(network, tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop()
        network.set_link("w1", "up")
        network.set_link("w2", "up")


# ---- helpers --------------------------------------------------------------------


def trial_starts(marks: Path) -> dict[int, dict]:
    """Each trial process that started: pid -> {"trial_id", "from"}."""
    starts = {}
    for mark in marks.glob("*.start"):
        text = mark.read_text()
        if text:
            starts[int(mark.stem)] = json.loads(text)
    return starts


def result_rows(trial_path: str | Path) -> list[dict]:
    path = Path(trial_path) / "result.json"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def trial_folders(experiment: Path) -> list[Path]:
    if not experiment.exists():
        return []
    return [p for p in experiment.iterdir() if p.is_dir()]


def checkpointed(experiment: Path, count: int) -> bool:
    folders = trial_folders(experiment)
    return len(folders) == 2 and all(
        len(list(folder.glob("checkpoint_*"))) >= count and result_rows(folder)
        for folder in folders
    )


def assert_each_iteration_once(trial_path: str, iterations: int) -> list[dict]:
    rows = result_rows(trial_path)
    logged = [r["training_iteration"] for r in rows]
    assert logged == list(range(1, iterations + 1)), logged
    assert all(r["step"] == r["training_iteration"] for r in rows)
    return rows


def is_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# ---- tests ----------------------------------------------------------------------


@pytest.mark.slow
def test_workers_in_other_namespaces_join_and_run_trials(spread):
    spread.start_head()
    spread.start_worker("w1")
    spread.start_worker("w2")
    wait_for(
        lambda: spread.workers_listed() == {"w1", "w2"},
        30,
        "both workers to join across the bridge",
        interval=0.2,
    )
    client, _, output = spread.start_client("joined", iterations=3)
    results = spread.client_results(client, output)

    assert len(results) == 2 and not any(r["error"] for r in results), results
    used = set()
    for result in results:
        assert Path(result["path"]).parent == spread.storage / "joined"
        rows = assert_each_iteration_once(result["path"], 3)
        assert len({r["node_ip"] for r in rows}) == 1
        used.add(rows[0]["node_ip"])
    assert used == {spread.net.ips["w1"], spread.net.ips["w2"]}


@pytest.mark.slow
def test_worker_cut_off_rejoins_and_its_stale_trial_is_stopped(spread):
    """The link is down only a little longer than the heartbeat timeout: less
    than gRPC's keepalive needs to notice, so the head itself must make the
    worker register again once it is reachable."""
    net = spread.net
    spread.start_head()
    spread.start_worker("w1", TUNE_TEST_STEP_S=SLOW_STEP_S)
    spread.start_worker("w2", cpus=2)  # room for the trial that moves over
    wait_for(
        lambda: spread.workers_listed() == {"w1", "w2"},
        30,
        "both workers to join across the bridge",
        interval=0.2,
    )
    client, marks, output = spread.start_client("cut_off", ITERATIONS)
    experiment = spread.storage / "cut_off"
    wait_for(lambda: len(trial_starts(marks)) == 2, 30, "both trials to start")
    wait_for(lambda: checkpointed(experiment, 2), 30, "both trials to checkpoint")
    on_w1 = [
        folder
        for folder in trial_folders(experiment)
        if result_rows(folder)[0]["node_ip"] == net.ips["w1"]
    ]
    assert len(on_w1) == 1, "expected one trial on each worker"
    first_rows = result_rows(on_w1[0])
    moved_trial = first_rows[0]["trial_id"]
    stale_pid = first_rows[0]["trial_pid"]

    def restarted() -> int | None:
        return next(
            (
                pid
                for pid, start in trial_starts(marks).items()
                if start["trial_id"] == moved_trial and pid != stale_pid
            ),
            None,
        )

    net.set_link("w1", "down")
    try:
        wait_for(
            lambda: spread.workers_listed() == {"w2"},
            HEARTBEAT_TIMEOUT_S + 15,
            "the head to declare the cut-off worker lost",
            interval=0.2,
        )
        new_pid = wait_for(restarted, 20, "the lost trial to start on w2")
    finally:
        net.set_link("w1", "up")
    assert not is_gone(stale_pid), "the trial on the cut-off worker ended early"
    resumed_at = trial_starts(marks)[new_pid]["from"]
    assert resumed_at > 0, "the moved trial did not resume from a checkpoint"

    wait_for(
        lambda: spread.workers_listed() == {"w1", "w2"},
        20,
        "the cut-off worker to join again",
        interval=0.2,
    )
    wait_for(lambda: is_gone(stale_pid), 15, "the stale trial process to end")
    assert not (marks / f"{stale_pid}.done").exists(), (
        "the stale trial ran to its end instead of being stopped"
    )

    results = spread.client_results(client, output)
    assert len(results) == 2 and not any(r["error"] for r in results), results
    by_trial = {r["trial_id"]: r for r in results}
    for result in results:
        assert_each_iteration_once(result["path"], ITERATIONS)
    final = by_trial[moved_trial]["metrics"]
    assert final["trial_pid"] == new_pid and final["node_ip"] == net.ips["w2"]
    assert final["iterations_since_restore"] < final["training_iteration"]
    rows = result_rows(by_trial[moved_trial]["path"])
    assert [r["node_ip"] for r in rows] == [net.ips["w1"]] * resumed_at + [
        net.ips["w2"]
    ] * (ITERATIONS - resumed_at), "a late result of the stale trial was logged"
    state = json.loads(
        (Path(by_trial[moved_trial]["checkpoint"]) / "state.json").read_text()
    )
    assert state == {"step": ITERATIONS, "pid": new_pid}, (
        "the stale trial overwrote the checkpoint of the trial that replaced it"
    )
    status = spread.tune_status()
    assert "Workers (2):" in status and "cut_off [finished] 2 TERMINATED" in status
