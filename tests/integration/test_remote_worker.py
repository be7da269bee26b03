"""A worker on another host: objects pulled, files streamed to the head.

The worker runs in a UTS namespace of its own with another hostname, so the
head treats it as a different machine: it pulls ``with_parameters`` objects
into its own cache instead of mapping the head's files (over the head's
object port when it has one, else over gRPC), and (with the default
``--worker-storage auto``) streams checkpoints and trial files to the head's
storage folder, which it cannot see. Everything still runs on loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import numpy as np
import pandas as pd
import pytest

import tune_client as tune
from tests.conftest import daemon_env
from tune_client import cluster

REMOTE_HOSTNAME = "tune-remote-host"
FRAME = pd.DataFrame({f"c{i}": np.arange(200_000, dtype=np.float64) for i in range(4)})
FRAME_SUM = float(FRAME.to_numpy().sum())


def can_unshare_uts() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--uts", "hostname", REMOTE_HOSTNAME], capture_output=True
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not can_unshare_uts(),
    reason="needs `unshare --uts` (root, util-linux) to give a worker its own hostname",
)


def mapped_file(data: np.ndarray) -> str:
    """The file whose mapping holds the array's first byte ('' if none)."""
    address = data.__array_interface__["data"][0]
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            start, end = (int(bound, 16) for bound in fields[0].split("-"))
            if start <= address < end:
                return fields[5].strip() if len(fields) > 5 else ""
    return ""


def remote_trainable(config, frame):
    import json
    import socket

    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            with open(os.path.join(folder, "state.json")) as f:
                start = json.load(f)["step"]
    with open("notes.txt", "a") as f:  # the trial's working directory
        f.write(f"ran on {socket.gethostname()}\n")
    for step in range(start + 1, 4):
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "state.json"), "w") as f:
                json.dump({"step": step}, f)
            tune.report(
                {
                    "step": step,
                    "frame_sum": float(frame.to_numpy().sum()),
                    "frame_file": mapped_file(frame["c0"].to_numpy()),
                    "host": socket.gethostname(),
                },
                checkpoint=tune.Checkpoint.from_directory(folder),
            )


@pytest.fixture(params=["grpc", "object port"])
def remote_worker(daemons, tmp_path, request):
    """A head on this host and one worker that believes it is elsewhere; the
    head serves objects on an object port or not."""
    route = request.param
    daemons.start_head(*(["--object-port", "0"] if route == "object port" else []))
    cache = f"/dev/shm/tune-test-{uuid.uuid4().hex[:8]}"
    log = open(tmp_path / "remote-worker.log", "w")
    worker = subprocess.Popen(
        [
            "unshare",
            "--uts",
            "sh",
            "-c",
            f'hostname {REMOTE_HOSTNAME} && exec "$@"',
            "sh",
            sys.executable,
            "-m",
            "tune_worker",
            "--head",
            daemons.address,
            "--token",
            daemons.token,
            "--cpus",
            "2",
            "--work-dir",
            str(tmp_path / "remote-worker"),
            "--object-cache-dir",
            cache,
        ],
        env=daemon_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    daemons.processes.append(worker)
    yield daemons, cache, route
    worker.terminate()
    assert worker.wait(timeout=20) == 0, "the worker did not stop on SIGTERM"
    shutil.rmtree(cache, ignore_errors=True)


def test_a_worker_on_another_host_pulls_objects_and_streams_its_files(
    remote_worker, tmp_path, monkeypatch
):
    daemons, cache, route = remote_worker
    monkeypatch.setattr(cluster, "_client", None)
    tune.init(daemons.address, token=daemons.token)
    try:
        results = tune.Tuner(
            tune.with_parameters(remote_trainable, frame=FRAME),
            tune_config=tune.TuneConfig(num_samples=2),
            run_config=tune.RunConfig(
                storage_path=str(tmp_path / "results"), name="remote", verbose=0
            ),
        ).fit()
    finally:
        tune.init(None)
    assert results.num_errors == 0, results.errors
    for result in results:
        assert result.metrics["host"] == REMOTE_HOSTNAME
        assert result.metrics["frame_sum"] == FRAME_SUM
        # Read from the worker's own cache, pulled over the network: not a
        # mapping of the head's object folder, and not a private copy.
        frame_file = result.metrics["frame_file"]
        assert frame_file.startswith(cache + os.sep), frame_file
        assert len(os.path.basename(frame_file)) == 64

        # The worker could not write into the head's folder: it streamed.
        trial_folder = result.path
        assert trial_folder.startswith(str(tmp_path / "results"))
        notes = open(os.path.join(trial_folder, "notes.txt")).read()
        assert notes == f"ran on {REMOTE_HOSTNAME}\n"
        assert result.checkpoint is not None
        with result.checkpoint.as_directory() as folder:
            state = open(os.path.join(folder, "state.json")).read()
        assert state == '{"step": 3}'
    worker_log = (tmp_path / "remote-worker.log").read_text()
    expected = "the head's object port" if route == "object port" else "gRPC"
    assert f"bytes) over {expected}" in worker_log, worker_log
