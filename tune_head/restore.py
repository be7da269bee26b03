"""Rebuilding an experiment's trials from its folder in storage.

The folder, not only the last state snapshot, is the truth: a checkpoint folder
newer than experiment_state.json still counts, so a trial resumes from the last
checkpoint it wrote even when the snapshot is older than that.

Everything is read and checked before anything is changed: a damaged or
missing file raises ``DamagedExperimentError`` naming it, and the folder is
left exactly as it was.
"""

from __future__ import annotations

import json
import os

from tune_client import storage as storage_paths
from tune_head import experiment_storage as es
from tune_head.trial import CheckpointRecord, Trial, TrialStatus

SET_ASIDE_SUFFIX = ".before_restart"


def read_experiment_state(storage: es.ExperimentStorage) -> dict:
    """experiment_state.json, checked, with errors naming where it is stored."""
    return es.read_state(storage.local_root, shown_path=storage.path)


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

    Every trial and the searcher state are read and checked first; only then
    are torn result lines cut and restarted trials' results set aside.
    ``keep_running`` is for a head restart: trials that were running stay
    running on their worker, which re-attaches them when it reconnects.
    """
    trials = [_load_trial(storage, record) for record in state["trials"]]
    es.read_searcher_state(storage.local_root, shown_path=storage.path)
    for trial in trials:
        es.truncate_torn_line(os.path.join(storage.local_root, trial.dir_name))
        if keep_running and trial.status is TrialStatus.RUNNING and trial.worker_id:
            continue
        _choose_status(
            storage, trial, resume_unfinished, resume_errored, restart_errored
        )
    return trials


def _load_trial(storage: es.ExperimentStorage, record: dict) -> Trial:
    """A trial's record, read from the local copy of its folder; writes nothing."""
    local = os.path.join(storage.local_root, record["dir_name"])
    path = storage_paths.join(storage.path, record["dir_name"])
    config = es.read_trial_params(local, shown_path=path)
    results = es.read_result_lines(local)
    trial = Trial(
        trial_id=record["trial_id"],
        trial_name=record["trial_name"],
        dir_name=record["dir_name"],
        path=path,
        config=config,
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
    storage: es.ExperimentStorage,
    trial: Trial,
    resume_unfinished: bool,
    resume_errored: bool,
    restart_errored: bool,
) -> None:
    if trial.status is TrialStatus.ERROR:
        if restart_errored:
            _set_aside_results(storage, trial)
            trial.checkpoints = []
            trial.last_iteration = 0
            trial.last_result, trial.last_result_json = {}, b""
            trial.status, trial.error = TrialStatus.PENDING, ""
        elif resume_errored:
            trial.status, trial.error = TrialStatus.PENDING, ""
    elif not trial.status.is_finished:
        trial.status = (
            TrialStatus.PENDING if resume_unfinished else TrialStatus.TERMINATED
        )


def _set_aside_results(storage: es.ExperimentStorage, trial: Trial) -> None:
    """Keep a restarted trial's earlier results under another name."""
    for name in (es.RESULT_FILE, es.PROGRESS_FILE):
        storage.set_aside(f"{trial.dir_name}/{name}", SET_ASIDE_SUFFIX)
