"""Trial output from a worker the client does not share a terminal with:
it reaches the client through the head, and stays in the worker's output."""

from __future__ import annotations

import os
import re
import sys
import time

import tune_client as tune
from tests.integration.conftest import start_head_and_one_worker


def speaking(config):
    print(f"step done on the worker, x={config['x']}")
    print("a warning on the worker", file=sys.stderr)
    tune.report({"x": config["x"]})


def test_output_of_a_cluster_worker_reaches_the_client_and_the_worker_log(
    daemons, connect, tmp_path, capsys
):
    start_head_and_one_worker(daemons, connect)

    results = tune.Tuner(
        speaking,
        param_space={"x": 7},
        run_config=tune.RunConfig(storage_path=str(tmp_path / "out"), verbose=0),
    ).fit()

    assert results.num_errors == 0, results.errors
    trial_id = results[0].metrics["trial_id"]
    out, err = capsys.readouterr()
    said = [line for line in out.splitlines() if trial_id in line]
    assert len(said) == 1 and said[0].endswith(") step done on the worker, x=7"), out
    assert said[0].startswith("(")
    warned = [line for line in err.splitlines() if trial_id in line]
    assert len(warned) == 1 and warned[0].endswith(") a warning on the worker"), err
    # Operators see it in the worker's own output, led by the same name.
    worker_output = (tmp_path / "worker-1.log").read_text()
    assert said[0] in worker_output, worker_output
    assert warned[0] in worker_output


def flooding(config):
    chunk = b"x" * 1023 + b"\n"
    for _ in range(3 * 1024):  # 3 MiB at once
        os.write(1, chunk)
    time.sleep(0.5)
    print("after the flood")
    tune.report({"done": 1})


def test_a_flood_is_cut_to_the_workers_output_rate_and_says_so(
    daemons, connect, tmp_path, capsys
):
    start_head_and_one_worker(daemons, connect, "--output-rate", str(64 << 10))

    results = tune.Tuner(
        flooding,
        run_config=tune.RunConfig(storage_path=str(tmp_path / "out"), verbose=0),
    ).fit()

    assert results.num_errors == 0, results.errors
    trial_id = results[0].metrics["trial_id"]
    out, _ = capsys.readouterr()
    mine = [line.split(") ", 1)[1] for line in out.splitlines() if trial_id in line]
    shown = sum(len(line) + 1 for line in mine if line.startswith("xxx"))
    notes = [line for line in mine if "of this trial's output not shown" in line]
    assert notes, mine[-3:]
    for note in notes:  # each on a line of its own
        assert re.fullmatch(
            r"\[\d+ bytes of this trial's output not shown: it wrote faster than "
            r"64 KiB/s\. The worker's own output has all of it\.\]",
            note,
        ), note
    dropped = sum(int(note[1:].split(" ", 1)[0]) for note in notes)
    # A burst of four seconds' worth (256 KiB), then 64 KiB/s: most of the
    # 3 MiB is held back, and what is shown and what the notes count add up.
    assert 0 < shown < 1 << 20, shown
    assert abs(shown + dropped - (3 << 20)) < 8 << 10, (shown, dropped)
    assert mine[-1] == "after the flood"
    # The worker's own output has every line.
    worker_output = (tmp_path / "worker-1.log").read_text()
    assert worker_output.count("x" * 1023 + "\n") == 3 * 1024
