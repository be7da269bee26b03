"""Durable experiment state in the storage layout users know from Ray Tune.

    <experiment>/
        experiment_state.json     every trial's record, replaced atomically
        experiment.pkl            the ExperimentSpec as submitted
        trainable.pkl             the cloudpickled trainable
        searcher_state.pkl        the searcher's state, for restore
        <trial dir>/
            params.json  params.pkl  result.json  progress.csv
            error.txt    checkpoint_000000/ ...

Results are appended and flushed before the head acknowledges them, so a
result the head acknowledged survives a head crash. Only local folders are
written here; a bucket-backed layout goes through the same functions.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import pickle
import shutil
from typing import Any

import cloudpickle

from tune_head.trial import CheckpointRecord, Trial, TrialStatus

log = logging.getLogger(__name__)

STATE_FILE = "experiment_state.json"
SPEC_FILE = "experiment.pkl"
TRAINABLE_FILE = "trainable.pkl"
SEARCHER_FILE = "searcher_state.pkl"
RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.csv"
STATE_VERSION = 1


def write_atomically(path: str, data: bytes) -> None:
    """Temporary file, fsync, rename: readers see the old file or the new one."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_jsonable(v) for v in value]
        return repr(value)


class TrialLog:
    """The open result.json and progress.csv of one running trial."""

    def __init__(self, trial_path: str) -> None:
        self.result_file = open(os.path.join(trial_path, RESULT_FILE), "ab")
        progress_path = os.path.join(trial_path, PROGRESS_FILE)
        self.columns = _read_csv_header(progress_path)
        self.progress_file = open(progress_path, "a", newline="")
        self.writer: csv.DictWriter | None = None
        if self.columns:
            self.writer = self._make_writer(self.columns)

    def _make_writer(self, columns: list[str]) -> csv.DictWriter:
        return csv.DictWriter(
            self.progress_file, fieldnames=columns, extrasaction="ignore"
        )

    def append(self, result: dict, result_json: bytes) -> None:
        self.result_file.write(result_json)
        self.result_file.write(b"\n")
        if self.writer is None:
            self.columns = [k for k, v in result.items() if not isinstance(v, dict)]
            self.writer = self._make_writer(self.columns)
            self.writer.writeheader()
        self.writer.writerow(result)

    def flush(self) -> None:
        self.result_file.flush()
        self.progress_file.flush()

    def close(self) -> None:
        self.result_file.close()
        self.progress_file.close()


def _read_csv_header(path: str) -> list[str]:
    try:
        with open(path, newline="") as f:
            return next(csv.reader(f), [])
    except FileNotFoundError:
        return []


class ExperimentStorage:
    """Reads and writes one experiment's folder."""

    def __init__(self, experiment_path: str) -> None:
        self.path = experiment_path
        self.trial_logs: dict[str, TrialLog] = {}

    def create(self, spec_pickle: bytes, trainable: bytes) -> None:
        os.makedirs(self.path, exist_ok=True)
        write_atomically(os.path.join(self.path, SPEC_FILE), spec_pickle)
        write_atomically(os.path.join(self.path, TRAINABLE_FILE), trainable)

    def write_params(self, trial: Trial) -> None:
        os.makedirs(trial.path, exist_ok=True)
        params_json = json.dumps(_jsonable(trial.config), indent=2, sort_keys=True)
        write_atomically(os.path.join(trial.path, "params.json"), params_json.encode())
        write_atomically(
            os.path.join(trial.path, "params.pkl"), cloudpickle.dumps(trial.config)
        )

    def append_result(self, trial: Trial, result: dict, result_json: bytes) -> None:
        trial_log = self.trial_logs.get(trial.trial_id)
        if trial_log is None:
            os.makedirs(trial.path, exist_ok=True)
            trial_log = self.trial_logs[trial.trial_id] = TrialLog(trial.path)
        trial_log.append(result, result_json)

    def rewind_results(self, trial: Trial, iteration: int) -> dict:
        """Keep only results up to ``iteration``; returns the last one kept."""
        trial_log = self.trial_logs.pop(trial.trial_id, None)
        if trial_log is not None:
            trial_log.close()
        kept = [
            r
            for r in read_result_lines(trial.path)
            if int(r.get("training_iteration", 0)) <= iteration
        ]
        lines = b"".join(json.dumps(r).encode() + b"\n" for r in kept)
        write_atomically(os.path.join(trial.path, RESULT_FILE), lines)
        progress = os.path.join(trial.path, PROGRESS_FILE)
        if os.path.exists(progress):
            with open(progress, newline="") as f:
                rows = [
                    row
                    for row in csv.DictReader(f)
                    if int(float(row.get("training_iteration") or 0)) <= iteration
                ]
            columns = _read_csv_header(progress)
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
            write_atomically(progress, buffer.getvalue().encode())
        return kept[-1] if kept else {}

    def flush_results(self) -> None:
        for trial_log in self.trial_logs.values():
            trial_log.flush()

    def close_trial(self, trial: Trial) -> None:
        trial_log = self.trial_logs.pop(trial.trial_id, None)
        if trial_log is not None:
            trial_log.close()
        if trial.status is TrialStatus.ERROR and trial.error:
            with open(os.path.join(trial.path, "error.txt"), "w") as f:
                f.write(trial.error)

    def write_state(
        self, experiment_id: str, name: str, trials: list[Trial], finished: bool
    ) -> None:
        state = {
            "version": STATE_VERSION,
            "experiment_id": experiment_id,
            "name": name,
            "finished": finished,
            "trials": [t.to_state() for t in trials],
        }
        data = json.dumps(state, default=repr).encode()
        write_atomically(os.path.join(self.path, STATE_FILE), data)

    def write_searcher_state(self, state: dict) -> None:
        write_atomically(
            os.path.join(self.path, SEARCHER_FILE), cloudpickle.dumps(state)
        )

    def clone_checkpoint(
        self, source: CheckpointRecord, trial: Trial, dir_name: str
    ) -> None:
        target = os.path.join(trial.path, dir_name)
        shutil.copytree(source.path, f"{target}.partial", dirs_exist_ok=True)
        os.replace(f"{target}.partial", target)

    def delete_checkpoint(self, record: CheckpointRecord) -> None:
        shutil.rmtree(record.path, ignore_errors=True)

    def close(self) -> None:
        for trial_log in self.trial_logs.values():
            trial_log.close()
        self.trial_logs.clear()


# ---- restore ----------------------------------------------------------------


class DamagedExperimentError(Exception):
    """A file of the experiment folder is missing or unreadable."""


def read_state(experiment_path: str) -> dict:
    path = os.path.join(experiment_path, STATE_FILE)
    try:
        with open(path, "rb") as f:
            state = json.loads(f.read())
    except FileNotFoundError as exc:
        raise DamagedExperimentError(
            f"{path} does not exist: the folder is not an experiment, or it was "
            "never started. Pass the folder that Tuner.fit() printed."
        ) from exc
    except (OSError, ValueError) as exc:
        raise DamagedExperimentError(f"{path} is damaged: {exc}") from exc
    if state.get("version") != STATE_VERSION:
        raise DamagedExperimentError(
            f"{path} has state version {state.get('version')!r}; this release reads "
            f"version {STATE_VERSION}."
        )
    return state


def read_searcher_state(experiment_path: str) -> dict | None:
    try:
        with open(os.path.join(experiment_path, SEARCHER_FILE), "rb") as f:
            return pickle.load(f)
    except FileNotFoundError:
        return None


def read_trial_params(trial_path: str) -> dict:
    path = os.path.join(trial_path, "params.pkl")
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise DamagedExperimentError(f"{path} cannot be read: {exc}") from exc


def read_result_lines(trial_path: str) -> list[dict]:
    """Every whole line of result.json; a torn last line is ignored."""
    results = []
    try:
        with open(os.path.join(trial_path, RESULT_FILE), "rb") as f:
            for line in f:
                try:
                    results.append(json.loads(line))
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return results


def truncate_torn_line(trial_path: str) -> None:
    """Cut a partial last line left by a crash, so appends start on a new line."""
    path = os.path.join(trial_path, RESULT_FILE)
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass


def find_whole_checkpoints(trial_path: str) -> list[str]:
    """Checkpoint folders that were completely written, oldest first."""
    try:
        names = os.listdir(trial_path)
    except FileNotFoundError:
        return []
    return sorted(
        n
        for n in names
        if n.startswith("checkpoint_")
        and n[len("checkpoint_") :].isdigit()
        and os.path.isdir(os.path.join(trial_path, n))
    )
