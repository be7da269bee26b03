"""Experiments read back from storage alone, with no daemon running.

``read_spec`` loads what ``Tuner.restore`` needs to submit an experiment
again; ``result_grid_from_storage`` builds its ``ResultGrid`` from the
experiment folder or bucket.
"""

from __future__ import annotations

import json

import cloudpickle

from tune_client import storage
from tune_client.checkpoint import Checkpoint
from tune_client.errors import RestoreError, TrialError
from tune_client.experiment import ExperimentSpec
from tune_client.result_grid import Result, ResultGrid

STATE_FILE = "experiment_state.json"
SPEC_FILE = "experiment.pkl"


def read_spec(path: str) -> ExperimentSpec:
    spec_path = storage.join(path, SPEC_FILE)
    try:
        if storage.is_uri(path):
            fs, fs_path = storage.get_filesystem(spec_path)
            data = fs.cat_file(fs_path)
        else:
            with open(spec_path, "rb") as f:
                data = f.read()
    except FileNotFoundError as exc:
        raise RestoreError(
            f"{spec_path} does not exist, so {path} is not an experiment folder. "
            "Pass the folder that Tuner.fit() reported (<storage_path>/<name>)."
        ) from exc
    try:
        return cloudpickle.loads(data)
    except Exception as exc:
        raise RestoreError(f"{spec_path} is damaged and cannot be read: {exc}") from exc


def result_grid_from_storage(
    path: str, metric: str | None = None, mode: str | None = None
) -> ResultGrid:
    """The ResultGrid of an experiment folder or bucket, read with no daemon."""
    read = _reader(path)
    state_path = storage.join(path, STATE_FILE)
    try:
        state = json.loads(read(state_path))
    except FileNotFoundError as exc:
        raise RestoreError(
            f"{state_path} does not exist: {path} is not an experiment folder"
        ) from exc
    except ValueError as exc:
        raise RestoreError(f"{state_path} is damaged: {exc}") from exc
    filesystem = None if not storage.is_uri(path) else storage.get_filesystem(path)[0]
    results = [
        _stored_result(path, record, read, filesystem) for record in state["trials"]
    ]
    return ResultGrid(results, path, default_metric=metric, default_mode=mode)


def _reader(path: str):
    """A function reading whole files under ``path``, on a disk or in a bucket."""
    if not storage.is_uri(path):

        def read_local(file_path: str) -> bytes:
            with open(file_path, "rb") as f:
                return f.read()

        return read_local
    fs, _ = storage.get_filesystem(path)
    return lambda file_path: fs.cat_file(storage.fs_path(file_path, fs))


def _stored_result(path: str, record: dict, read, filesystem) -> Result:
    trial_path = storage.join(path, record["dir_name"])
    params_path = storage.join(trial_path, "params.pkl")
    try:
        config = cloudpickle.loads(read(params_path))
    except Exception as exc:
        raise RestoreError(f"{params_path} cannot be read: {exc}") from exc
    checkpoints = [
        (
            Checkpoint(storage.join(trial_path, c["dir_name"]), filesystem),
            c.get("metrics", {}),
        )
        for c in record.get("checkpoints", [])
    ]
    error = record.get("error") or ""
    return Result(
        metrics=record.get("last_result") or {},
        config=config,
        checkpoint=checkpoints[-1][0] if checkpoints else None,
        error=TrialError(error, trial_id=record["trial_id"]) if error else None,
        path=trial_path,
        best_checkpoints=checkpoints,
        filesystem=filesystem,
    )
