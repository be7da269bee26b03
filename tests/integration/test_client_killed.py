"""A client killed with SIGKILL leaves no daemon behind, and its experiment
restores from storage with training resuming from the checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from tests.conftest import daemon_env, wait_for

EPOCHS = 12

TRAINING_MODULE = textwrap.dedent(
    f"""
    import os, pickle, tempfile, time
    import tune_client as tune

    def training_function(config):
        start = 0
        checkpoint = tune.get_checkpoint()
        if checkpoint:
            with checkpoint.as_directory() as d:
                with open(os.path.join(d, "state.pkl"), "rb") as f:
                    start = pickle.load(f)["epoch"] + 1
        for epoch in range(start, {EPOCHS}):
            time.sleep(config["sleep"])
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "state.pkl"), "wb") as f:
                    pickle.dump({{"epoch": epoch}}, f)
                tune.report(
                    {{"epoch": epoch, "resumed_from": start}},
                    checkpoint=tune.Checkpoint.from_directory(d),
                )
    """
)

CLIENT_SCRIPT = textwrap.dedent(
    """
    import sys
    import tune_client as tune
    from training import training_function

    tune.Tuner(
        training_function,
        param_space={"sleep": 0.25, "x": tune.grid_search([1, 2, 3, 4])},
        run_config=tune.RunConfig(name="killed", storage_path=sys.argv[1], verbose=0),
    ).fit()
    """
)


def _daemons_of(client_pid: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "--parent-pid" in cmdline and str(client_pid) in cmdline:
            found.append(process)
    return found


def _checkpoints(experiment: Path) -> list[Path]:
    return list(experiment.glob("*/checkpoint_0*"))


@pytest.mark.slow
def test_sigkill_client_leaves_no_daemon_and_restore_resumes(tmp_path, monkeypatch):
    (tmp_path / "training.py").write_text(TRAINING_MODULE)
    (tmp_path / "client.py").write_text(CLIENT_SCRIPT)
    storage = tmp_path / "results"
    experiment = storage / "killed"
    client = subprocess.Popen(
        [sys.executable, "client.py", str(storage)],
        cwd=tmp_path,
        env=daemon_env(),
    )
    try:
        wait_for(lambda: len(_daemons_of(client.pid)) == 2, 30, "the daemons")
        daemons = _daemons_of(client.pid)
        wait_for(lambda: len(_checkpoints(experiment)) >= 3, 60, "checkpoints")
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=10)
        gone, alive = psutil.wait_procs(daemons, timeout=15)
        assert not alive, f"daemons outlived their client: {alive}"
    finally:
        if client.poll() is None:
            client.kill()

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    from training import training_function

    import tune_client as tune

    assert tune.Tuner.can_restore(experiment)
    results = tune.Tuner.restore(str(experiment), training_function).fit()

    assert len(results) == 4 and results.num_errors == 0
    resumed = 0
    for result in results:
        lines = (Path(result.path) / "result.json").read_text().splitlines()
        iterations = [json.loads(line)["training_iteration"] for line in lines]
        assert iterations == list(range(1, EPOCHS + 1)), result.path
        assert result.metrics["epoch"] == EPOCHS - 1
        if result.metrics["resumed_from"] > 0:
            resumed += 1
            assert result.metrics["iterations_since_restore"] < EPOCHS
    assert resumed >= 1, "no trial resumed from its checkpoint"
    assert os.path.isdir(Path(results[0].path) / f"checkpoint_{EPOCHS - 1:06d}")
