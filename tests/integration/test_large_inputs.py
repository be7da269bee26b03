"""Large inputs end to end on the embedded cluster: stored once per machine,
mapped by every trial without a copy, uploaded once, kept out of trial
metadata."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pandas as pd
import psutil
import pytest

import tune_client as tune
from tune_client import Tuner, cluster

MB = 1_000_000
TRIALS_SHARING = 6


def quiet(**kwargs) -> tune.RunConfig:
    return tune.RunConfig(verbose=0, **kwargs)


def numeric_frame(total_bytes: int, columns: int = 8, seed: int = 0) -> pd.DataFrame:
    rows = total_bytes // (8 * columns)
    rng = np.random.default_rng(seed)
    return pd.DataFrame({f"c{i}": rng.random(rows) for i in range(columns)}, copy=False)


def wait_for_file(path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.05)


# ---------------------------------------------------------------------------
# what trials receive


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


def inspect_inputs(config, frame, array):
    tune.report(
        {
            "frame_sum": float(frame.sum().sum()),
            "array_sum": float(array.sum()),
            "column_file": mapped_file(frame["c0"].to_numpy()),
            "array_file": mapped_file(array),
            "array_writable": bool(array.flags.writeable),
        }
    )


def test_with_parameters_inputs_arrive_whole_and_mapped(storage):
    frame = numeric_frame(4 * MB)
    array = np.arange(1_000_000, dtype=np.int64)
    results = Tuner(
        tune.with_parameters(inspect_inputs, frame=frame, array=array),
        tune_config=tune.TuneConfig(num_samples=2),
        run_config=quiet(name="inputs"),
    ).fit()
    assert not results.errors
    for result in results:
        assert result.metrics["frame_sum"] == pytest.approx(frame.sum().sum())
        assert result.metrics["array_sum"] == array.sum()
        # The data is read where the object file is mapped, not from a copy.
        for name in ("column_file", "array_file"):
            object_file = os.path.basename(result.metrics[name])
            assert len(object_file) == 64, (name, result.metrics[name])
        assert result.metrics["array_writable"]


# ---------------------------------------------------------------------------
# one copy per machine, measured


def hold_shared_frame(config, frame):
    """Touch every page of the frame, say so, then wait until measured."""
    sums = frame.sum()
    folder = config["folder"]
    with open(os.path.join(folder, f"ready_{os.getpid()}"), "w") as f:
        f.write(str(float(sums.sum())))
    wait_for_file(os.path.join(folder, "measured"), timeout=90)
    tune.report({"total": float(sums.sum())})


def machine_memory() -> tuple[int, int]:
    """Memory in use as ``free`` reports it, and the same counting page cache.

    The first leaves out the store's copy (a file the kernel may drop and read
    back); the second counts it, and any other file written meanwhile.
    """
    memory = psutil.virtual_memory()
    return memory.used, memory.total - memory.free


def measure_when_all_ready(folder: str, found: dict) -> None:
    """Sum the trial processes' PSS once all of them hold the frame."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ready = [n for n in os.listdir(folder) if n.startswith("ready_")]
        if len(ready) >= TRIALS_SHARING:
            break
        time.sleep(0.05)
    pids = [int(n.split("_")[1]) for n in ready]
    found["pss"] = sum(psutil.Process(pid).memory_full_info().pss for pid in pids)
    found["used"] = machine_memory()
    found["trials"] = len(pids)
    open(os.path.join(folder, "measured"), "w").close()


@pytest.mark.slow
def test_six_trials_share_one_copy_of_a_large_frame(storage, tmp_path):
    size = 200 * MB
    frame = numeric_frame(size)
    expected = float(frame.sum().sum())
    cluster.get_client()  # the cluster is up before the baseline is taken
    folder = str(tmp_path / "marks")
    os.makedirs(folder)
    found: dict = {}
    before = machine_memory()
    measurer = threading.Thread(
        target=measure_when_all_ready, args=(folder, found), daemon=True
    )
    measurer.start()
    results = Tuner(
        tune.with_resources(
            tune.with_parameters(hold_shared_frame, frame=frame), {"cpu": 0.25}
        ),
        param_space={"folder": folder},
        tune_config=tune.TuneConfig(num_samples=TRIALS_SHARING),
        run_config=quiet(name="shared_frame"),
    ).fit()
    measurer.join(timeout=5)
    assert not results.errors
    assert all(r.metrics["total"] == pytest.approx(expected) for r in results)
    assert found["trials"] == TRIALS_SHARING
    (used_after, cached_after), (used_before, cached_before) = found["used"], before
    grown, grown_with_cache = used_after - used_before, cached_after - cached_before
    measured = (
        f"{TRIALS_SHARING} trials holding a {size / MB:.0f} MB frame take "
        f"{found['pss'] / MB:.0f} MB (PSS); the machine grew {grown / MB:.0f} MB "
        f"({grown_with_cache / MB:.0f} MB counting the page cache)"
    )
    print(measured)
    # Six private copies would be six times the size; sharing one costs the
    # store's copy and each trial's own interpreter.
    assert grown < 3 * size, measured
    assert found["pss"] < 3 * size, measured


# ---------------------------------------------------------------------------
# uploaded once


def wait_then_report(config, frame):
    if config.get("hold"):
        open(config["started"], "w").close()
        wait_for_file(config["release"], timeout=90)
    tune.report({"rows": len(frame)})


def stored(client) -> int:
    """Bytes the client gave the head: streamed, or handed over as files."""
    return client.bytes_uploaded + client.bytes_handed_over


def report_frame_sum(config, frame):
    tune.report({"sum": float(frame.to_numpy().sum())})


def test_the_embedded_head_takes_over_the_object_file_instead_of_an_upload(storage):
    frame = numeric_frame(16 * MB, seed=8)
    client = cluster.get_client()
    assert client.is_embedded
    uploaded, handed_over = client.bytes_uploaded, client.bytes_handed_over
    results = Tuner(
        tune.with_parameters(report_frame_sum, frame=frame),
        run_config=quiet(name="handed_over"),
    ).fit()
    assert results[0].metrics["sum"] == float(frame.to_numpy().sum())
    assert client.bytes_handed_over - handed_over >= 16 * MB
    assert client.bytes_uploaded - uploaded < 1 * MB  # the trainable alone
    assert os.listdir(client.embedded.object_handover_dir) == []


def test_the_same_data_is_uploaded_once_while_an_experiment_uses_it(storage, tmp_path):
    frame = numeric_frame(16 * MB, seed=7)
    client = cluster.get_client()
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    first_fit = threading.Thread(
        target=lambda: Tuner(
            tune.with_parameters(wait_then_report, frame=frame),
            param_space={"hold": True, "started": started, "release": release},
            run_config=quiet(name="first"),
        ).fit(),
        daemon=True,
    )
    before = stored(client)
    first_fit.start()
    try:
        wait_for_file(started, timeout=60)
        assert stored(client) - before >= 16 * MB
        before_second = stored(client)
        results = Tuner(
            tune.with_parameters(wait_then_report, frame=frame),
            run_config=quiet(name="second"),
        ).fit()
        assert results[0].metrics["rows"] == len(frame)
        assert stored(client) - before_second < 1 * MB
    finally:
        open(release, "w").close()
        first_fit.join(timeout=60)


# ---------------------------------------------------------------------------
# large values in param_space and in closures


def report_table_sum(config):
    tune.report({"table_sum": float(config["table"].sum()), "x": config["x"]})


def test_large_param_space_value_is_kept_out_of_trial_metadata(storage):
    table = np.ones(300_000)  # 2.4 MB
    with pytest.warns(UserWarning, match="with_parameters"):
        results = Tuner(
            report_table_sum,
            param_space={"table": table, "x": tune.grid_search([1, 2])},
            run_config=quiet(name="big_param"),
        ).fit()
    assert not results.errors
    assert [r.metrics["table_sum"] for r in results] == [300_000.0] * 2
    for result in results:
        params = os.path.join(result.path, "params.json")
        assert os.path.getsize(params) < 10_000
        assert os.path.getsize(os.path.join(result.path, "params.pkl")) < 10_000
        with open(params) as f:
            assert "ObjectRef" in json.load(f)["table"]


def test_small_param_space_values_do_not_warn(storage, recwarn):
    results = Tuner(
        report_table_sum,
        param_space={"table": np.ones(10), "x": 1},
        run_config=quiet(name="small_param"),
    ).fit()
    assert results[0].metrics["table_sum"] == 10.0
    assert not [w for w in recwarn if "object store" in str(w.message)]


def test_trainable_capturing_large_data_is_named_in_a_warning(storage):
    captured_weights = np.ones(400_000)  # 3.2 MB

    def uses_captured(config):
        tune.report({"s": float(captured_weights.sum())})

    with pytest.warns(UserWarning, match="captured_weights"):
        results = Tuner(uses_captured, run_config=quiet(name="closure")).fit()
    assert results[0].metrics["s"] == 400_000.0
