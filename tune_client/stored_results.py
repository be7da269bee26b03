"""Experiments read back from storage alone, with no daemon running.

``read_spec`` loads what ``Tuner.restore`` needs to submit an experiment
again; ``result_grid_from_storage`` builds its ``ResultGrid`` from the
experiment folder or bucket. Either reads a local folder, a URI, or a path in
the ``storage_filesystem`` the experiment was run with.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import cloudpickle

from tune_client import storage
from tune_client.checkpoint import Checkpoint
from tune_client.errors import RestoreError, TrialError
from tune_client.experiment import ExperimentSpec
from tune_client.result_grid import Result, ResultGrid

STATE_FILE = "experiment_state.json"
SPEC_FILE = "experiment.pkl"
_TRIAL_KEYS = ("trial_id", "dir_name")

Reader = Callable[[str], bytes]


def read_spec(path: str, filesystem: Any = None) -> ExperimentSpec:
    """The experiment as it was submitted, from ``<path>/experiment.pkl``."""
    spec_path = storage.join(path, SPEC_FILE)
    try:
        data = _reader(path, filesystem)(spec_path)
    except FileNotFoundError as exc:
        raise RestoreError(
            f"{spec_path} does not exist, so {path} is not an experiment folder. "
            "Pass the folder that Tuner.fit() reported (<storage_path>/<name>), "
            "and the storage_filesystem it was run with, if any."
        ) from exc
    try:
        return cloudpickle.loads(data)
    except Exception as exc:
        raise RestoreError(f"{spec_path} is damaged and cannot be read: {exc}") from exc


def result_grid_from_storage(
    path: str,
    metric: str | None = None,
    mode: str | None = None,
    *,
    filesystem: Any = None,
) -> ResultGrid:
    """The ResultGrid of an experiment folder or bucket, read with no daemon."""
    read = _reader(path, filesystem)
    state_path = storage.join(path, STATE_FILE)
    records = _trial_records(state_path, read)
    if filesystem is None and storage.is_uri(path):
        filesystem = storage.get_filesystem(path)[0]
    results = [_stored_result(path, record, read, filesystem) for record in records]
    return ResultGrid(
        results, path, default_metric=metric, default_mode=mode, filesystem=filesystem
    )


def _trial_records(state_path: str, read: Reader) -> list[dict]:
    """The trial records of experiment_state.json, each with the keys read here."""
    try:
        state = json.loads(read(state_path))
    except FileNotFoundError as exc:
        raise RestoreError(
            f"{state_path} does not exist: its folder is not an experiment folder. "
            "Pass the folder that Tuner.fit() reported (<storage_path>/<name>)."
        ) from exc
    except ValueError as exc:
        raise _damaged(state_path, str(exc)) from exc
    records = state.get("trials") if isinstance(state, dict) else None
    if not isinstance(records, list):
        raise _damaged(state_path, 'it has no "trials" list')
    for number, record in enumerate(records):
        missing = [
            k for k in _TRIAL_KEYS if not isinstance(record, dict) or k not in record
        ]
        if missing:
            raise _damaged(state_path, f"trial record {number} lacks {missing[0]!r}")
    return records


def _damaged(path: str, cause: str) -> RestoreError:
    return RestoreError(
        f"{path} is damaged ({cause}), so the experiment's results cannot be read. "
        "Put back a whole copy of the file, e.g. from a backup of the experiment "
        "folder."
    )


def _reader(path: str, filesystem: Any = None) -> Reader:
    """A function reading whole files under ``path``, on a disk or in a bucket."""
    if filesystem is None and not storage.is_uri(path):

        def read_local(file_path: str) -> bytes:
            with open(file_path, "rb") as f:
                return f.read()

        return read_local
    fs, _ = storage.get_filesystem(path, filesystem)
    return lambda file_path: fs.cat_file(storage.fs_path(file_path, fs))


def _stored_result(path: str, record: dict, read: Reader, filesystem: Any) -> Result:
    trial_path = storage.join(path, record["dir_name"])
    params_path = storage.join(trial_path, "params.pkl")
    try:
        config = cloudpickle.loads(read(params_path))
    except Exception as exc:
        raise RestoreError(
            f"{params_path} cannot be read: {exc}. Put back a whole copy of the "
            "file, e.g. from a backup of the experiment folder."
        ) from exc
    checkpoints = [
        (
            Checkpoint(storage.join(trial_path, c["dir_name"]), filesystem),
            c.get("metrics", {}),
        )
        for c in record.get("checkpoints", [])
        if isinstance(c, dict) and "dir_name" in c
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
