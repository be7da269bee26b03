"""Rebuilding an experiment's trials from its folder in storage.

The folder, not only the last state snapshot, is the truth: a checkpoint folder
newer than experiment_state.json still counts, so a trial resumes from the last
checkpoint it wrote even when the snapshot is older than that.
"""

from __future__ import annotations

import json
import os

from tune_client import storage as storage_paths
from tune_head import experiment_storage as es
from tune_head.trial import CheckpointRecord, Trial, TrialStatus


def load_trials(
    storage: es.ExperimentStorage,
    state: dict,
    *,
    resume_unfinished: bool,
    resume_errored: bool,
    restart_errored: bool,
    keep_running: bool = False,
) -> list[Trial]:
    """The experiment's trials as its folder holds them.

    ``keep_running`` is for a head restart: trials that were running stay
    running on their worker, which re-attaches them when it reconnects.
    """
    trials = []
    for record in state["trials"]:
        trial = _load_trial(storage, record)
        if keep_running and trial.status is TrialStatus.RUNNING and trial.worker_id:
            trials.append(trial)
            continue
        local_folder = os.path.join(storage.local_root, trial.dir_name)
        _choose_status(
            trial, local_folder, resume_unfinished, resume_errored, restart_errored
        )
        trials.append(trial)
    return trials


def _load_trial(storage: es.ExperimentStorage, record: dict) -> Trial:
    """A trial's record, read from the local copy of its folder."""
    local = os.path.join(storage.local_root, record["dir_name"])
    path = storage_paths.join(storage.path, record["dir_name"])
    es.truncate_torn_line(local)
    results = es.read_result_lines(local)
    trial = Trial(
        trial_id=record["trial_id"],
        trial_name=record["trial_name"],
        dir_name=record["dir_name"],
        path=path,
        config=es.read_trial_params(local),
        resources=record.get("resources") or {"cpu": 1.0},
        status=TrialStatus(record["status"]),
        worker_id=record.get("worker_id", ""),
        runs=int(record.get("runs", 0)),
        num_failures=int(record.get("num_failures", 0)),
        error=record.get("error", ""),
    )
    if results:
        trial.last_result = results[-1]
        trial.last_result_json = json.dumps(results[-1]).encode()
        trial.last_iteration = max(int(r.get("training_iteration", 0)) for r in results)
    whole = storage.whole_checkpoints(record["dir_name"])
    trial.checkpoints = _checkpoints(path, whole, record, results)
    if trial.checkpoints:
        last = trial.checkpoints[-1].dir_name
        trial.next_checkpoint_index = int(last.rsplit("_", 1)[-1]) + 1
    trial.next_checkpoint_index = max(
        trial.next_checkpoint_index, int(record.get("next_checkpoint_index", 0))
    )
    return trial


def _checkpoints(
    path: str, whole: list[str], record: dict, results: list[dict]
) -> list[CheckpointRecord]:
    """The recorded checkpoints still on disk, plus whole ones written later."""
    by_name = {
        c["dir_name"]: CheckpointRecord.from_json(c)
        for c in record.get("checkpoints", [])
    }
    result_for = {r.get("checkpoint_dir_name"): r for r in results}
    checkpoints = []
    for dir_name in whole:
        known = by_name.get(dir_name)
        if known is not None:
            known.path = storage_paths.join(path, dir_name)
            checkpoints.append(known)
            continue
        result = result_for.get(dir_name)
        if result is None:
            continue  # written, but its result never reached the head
        checkpoints.append(
            CheckpointRecord(
                dir_name,
                storage_paths.join(path, dir_name),
                int(result.get("training_iteration", 0)),
                result,
            )
        )
    return checkpoints


def _choose_status(
    trial: Trial,
    local_folder: str,
    resume_unfinished: bool,
    resume_errored: bool,
    restart_errored: bool,
) -> None:
    if trial.status is TrialStatus.ERROR:
        if restart_errored:
            _set_aside_results(local_folder)
            trial.checkpoints = []
            trial.last_iteration = 0
            trial.status, trial.error = TrialStatus.PENDING, ""
        elif resume_errored:
            trial.status, trial.error = TrialStatus.PENDING, ""
    elif not trial.status.is_finished:
        trial.status = (
            TrialStatus.PENDING if resume_unfinished else TrialStatus.TERMINATED
        )


def _set_aside_results(trial_path: str) -> None:
    """Keep a restarted trial's earlier results under another name."""
    for name in (es.RESULT_FILE, es.PROGRESS_FILE):
        path = os.path.join(trial_path, name)
        if os.path.exists(path):
            os.replace(path, f"{path}.before_restart")
