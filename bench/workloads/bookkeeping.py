"""Bookkeeping workload: 1,000 no-op trials of 10 results each, over 8 workers.

Run as a script by bench.run under either interpreter; the import shim and
``start_cluster`` differ between flavors, the Tuner and trainable do not. Each
trial does nothing but report 10 times, so the figure is what the system spends
per trial: scheduling, starting the trial, its results, its end, and the
experiment's state files. Both flavors get a cluster of 8 one-CPU slots on
loopback before the timed window, so the figure is the fit() alone:

- ours: one ``tune-head`` and 8 ``tune-worker`` daemons (``--cpus 1`` each),
  started here as an operator would, then ``tune.init(address, token=...)``;
- Ray: ``ray.init(num_cpus=8)``, and the Tuner with Ray's defaults: function
  trainables get ``reuse_actors=False``, one new actor per trial.

Figure: ``trials_per_s`` = trials / seconds of fit(). ``BENCH_TRIALS`` sets the
number of trials (1,000; 200 under ``--quick``, and for Ray by default, since
Ray at about one trial a second would need 18 minutes a run).
"""

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time

if os.environ["BENCH_FLAVOR"] == "ray":
    from ray import tune
    from ray.tune import Tuner
else:
    import tune_client as tune
    from tune_client import Tuner

STORAGE = os.environ["BENCH_STORAGE"]
NUM_TRIALS = int(os.environ.get("BENCH_TRIALS", "1000"))
RESULTS_PER_TRIAL = 10
NUM_WORKERS = 8
START_TIMEOUT_S = 120.0


def noop(config):
    """A trial with no work: what remains is the system's cost per trial."""
    for i in range(RESULTS_PER_TRIAL):
        tune.report({"x": i})


class OurCluster:
    """One tune-head and 8 tune-workers, started and stopped like an operator."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.token = secrets.token_hex(16)
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.address = ""

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(os.path.join(self.folder, f"{name}.log"), "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes.append((name, proc))
        return proc

    def start(self) -> "OurCluster":
        port_file = os.path.join(self.folder, "head.port")
        head = self._spawn(
            "head",
            [
                "tune_head",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--port-file",
                port_file,
                "--token",
                self.token,
                "--storage",
                STORAGE,
            ],
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not os.path.exists(port_file):
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("tune-head did not start")
            time.sleep(0.05)
        with open(port_file) as f:
            self.address = f"127.0.0.1:{f.read().strip()}"
        for i in range(NUM_WORKERS):
            self._spawn(
                f"worker-{i}",
                [
                    "tune_worker",
                    "--head",
                    self.address,
                    "--token",
                    self.token,
                    "--cpus",
                    "1",
                    "--work-dir",
                    os.path.join(self.folder, f"worker-{i}"),
                ],
            )
        self._wait_for_workers(deadline)
        return self

    def _wait_for_workers(self, deadline: float) -> None:
        """Trials must not start before every slot is there, or the run is short."""
        from tune_client.cluster import HeadClient

        client = HeadClient(self.address, self.token, embedded=None)
        try:
            client.wait_ready()
            while len(client.status().workers) < NUM_WORKERS:
                dead = [n for n, p in self.processes if p.poll() is not None]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"workers did not register (exited: {dead})")
                time.sleep(0.1)
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM everything, wait, then kill what is left."""
        for _, proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, proc in self.processes:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_tails(self, lines: int = 15) -> str:
        """The head's and the first worker's last lines, to explain a failure."""
        text = []
        for name in ("head", "worker-0"):
            try:
                with open(
                    os.path.join(self.folder, f"{name}.log"), errors="replace"
                ) as f:
                    tail = f.read().splitlines()[-lines:]
            except OSError:
                continue
            text += [f"--- {name}.log ---", *tail]
        return "\n".join(text)


def start_cluster(folder: str):
    """8 one-CPU slots on loopback for either flavor; returns what to stop."""
    if os.environ["BENCH_FLAVOR"] == "ray":
        import ray

        ray.init(num_cpus=NUM_WORKERS)
        return None
    cluster = OurCluster(folder).start()
    tune.init(cluster.address, token=cluster.token)
    return cluster


def run_experiment() -> float:
    """Fit the no-op trials, check each reported all of its results; return s."""
    tuner = Tuner(
        tune.with_resources(noop, {"cpu": 1}),
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(num_samples=NUM_TRIALS),
        run_config=tune.RunConfig(
            storage_path=STORAGE, name="bench_bookkeeping", verbose=0
        ),
    )
    started = time.perf_counter()
    results = tuner.fit()
    fit_s = time.perf_counter() - started
    errors = [str(r.error) for r in results if r.error]
    short = [r.path for r in results if r.metrics.get("x") != RESULTS_PER_TRIAL - 1]
    if len(results) != NUM_TRIALS or errors or short:
        raise SystemExit(
            f"BENCH_FAILED trials={len(results)} errors={errors[:3]} short={short[:3]}"
        )
    return fit_s


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as folder:
        started = time.perf_counter()
        cluster = start_cluster(folder)
        up_s = time.perf_counter() - started
        print(f"cluster of {NUM_WORKERS} slots up in {up_s:.2f} s")
        try:
            fit_s = run_experiment()
        except BaseException:
            if cluster is not None:
                print(cluster.log_tails(), file=sys.stderr)
            raise
        finally:
            if cluster is not None:
                cluster.stop()
    print(f"fit {fit_s:.2f} s for {NUM_TRIALS} trials")
    print(f"BENCH_METRIC trials_per_s={NUM_TRIALS / fit_s:.3f} trials/s")
    print(f"BENCH_OK trials={NUM_TRIALS}")


if __name__ == "__main__":
    main()
