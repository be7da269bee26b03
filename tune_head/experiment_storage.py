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
import itertools
import json
import logging
import os
import pickle
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import cloudpickle

from tune_client import storage
from tune_client.result_lines import RowFormatter, columns_of
from tune_head.trial import CheckpointRecord, Trial, TrialStatus

log = logging.getLogger(__name__)

STATE_FILE = "experiment_state.json"
SPEC_FILE = "experiment.pkl"
TRAINABLE_FILE = "trainable.pkl"
SEARCHER_FILE = "searcher_state.pkl"
RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.csv"
STATE_VERSION = 1
SYNC_INTERVAL_S = 1.0
CHECKPOINT_MARKER = storage.CHECKPOINT_MARKER


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
    """The open result.json and progress.csv of one running trial.

    Trials format their own progress.csv lines (``tune_client.result_lines``);
    a line is taken as is when the trial's columns are the file's, and made
    here from the result otherwise.
    """

    def __init__(self, trial_path: str) -> None:
        self.result_file = open(os.path.join(trial_path, RESULT_FILE), "ab")
        progress_path = os.path.join(trial_path, PROGRESS_FILE)
        columns = _read_csv_header(progress_path)
        self.progress_file = open(progress_path, "ab")
        self.formatter = RowFormatter(columns) if columns else None
        # Whether the lines the trial sends fit the file's columns.
        self.trial_rows_fit = False

    def trial_columns(self, columns: list[str]) -> None:
        """A new trial process formats its lines for ``columns``."""
        if self.formatter is None:
            self._start_file(columns)
        self.trial_rows_fit = columns == self.formatter.columns

    def _start_file(self, columns: list[str]) -> None:
        self.formatter = RowFormatter(columns)
        self.progress_file.write(self.formatter.header())

    def append(self, result_json: bytes, row: bytes, result: Callable[[], dict]):
        """Log one result; ``result()`` parses it, called only when needed."""
        self.result_file.write(result_json + b"\n")
        if row and self.trial_rows_fit:
            self.progress_file.write(row)
            return
        parsed = result()
        if self.formatter is None:
            self._start_file(columns_of(parsed))
        self.progress_file.write(self.formatter.row(parsed))

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


class Change(NamedTuple):
    """A file's contents to push to the bucket, numbered in the order taken."""

    relative: str  # under the experiment's folder
    data: bytes
    generation: int


class ExperimentStorage:
    """Reads and writes one experiment's folder, on a disk or in a bucket.

    Every file is written to a local folder first: the experiment folder itself
    on a disk, a mirror on the head's disk for a bucket. For a bucket, changed
    files are pushed whole (one PUT each) at most ``SYNC_INTERVAL_S`` after they
    change, and at once when a trial or the experiment ends; the state file is
    pushed on every write.
    """

    def __init__(
        self, experiment_path: str, filesystem: Any = None, mirror_dir: str = ""
    ) -> None:
        self.path = experiment_path
        self.trial_logs: dict[str, TrialLog] = {}
        self.remote: tuple[Any, str] | None = None
        self.local_root = experiment_path
        if filesystem is not None or storage.is_uri(experiment_path):
            self.remote = storage.get_filesystem(experiment_path, filesystem)
            self.local_root = mirror_dir
        self.dirty: set[str] = set()
        # Trial folders whose result.json and progress.csv grew since the
        # last push (kept apart from ``dirty``: marked once per result).
        self.dirty_logs: set[str] = set()
        self.last_sync = 0.0
        # Pushes in the order their contents were taken (see ``push``).
        self._generations = itertools.count()
        self._pushed: dict[str, int] = {}
        self._push_lock = threading.Lock()
        # Taken by take_changes and not yet in the bucket, by file.
        self._in_flight: dict[str, Change] = {}
        self._in_flight_lock = threading.Lock()

    @property
    def is_remote(self) -> bool:
        return self.remote is not None

    def _local(self, *parts: str) -> str:
        return os.path.join(self.local_root, *parts)

    def _write(self, relative: str, data: bytes, push: bool = False) -> None:
        path = self._local(relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomically(path, data)
        self.dirty.add(relative)
        if push:
            self.sync(force=True)

    def sync(self, force: bool = False) -> None:
        """Push changed files to the bucket now; a no-op on a disk."""
        if force or time.monotonic() - self.last_sync >= SYNC_INTERVAL_S:
            self.push(self.take_changes())

    def take_changes(self) -> list[Change]:
        """The changed files' contents, to push to the bucket (empty on a disk)."""
        for dir_name in self.dirty_logs:
            self.dirty.add(f"{dir_name}/{RESULT_FILE}")
            self.dirty.add(f"{dir_name}/{PROGRESS_FILE}")
        self.dirty_logs.clear()
        if self.remote is None or not self.dirty:
            self.dirty.clear()
            return []
        self.flush_results()
        changes = []
        for relative in sorted(self.dirty):
            with open(self._local(relative), "rb") as f:
                changes.append(self._change(relative, f.read()))
        self.dirty.clear()
        self.last_sync = time.monotonic()
        with self._in_flight_lock:
            self._in_flight.update((change.relative, change) for change in changes)
        return changes

    def _change(self, relative: str, data: bytes) -> Change:
        return Change(relative, data, next(self._generations))

    def push(self, changes: list[Change]) -> None:
        """Put ``changes`` in the bucket, unless a copy of a file taken later
        is there already.

        The head pushes periodic changes outside its lock, so such a push can
        end after a later one (the last push of a finished experiment); the
        older copy must not land over the newer.
        """
        if self.remote is None or not changes:
            return
        fs, root = self.remote
        with self._push_lock:
            for change in changes:
                if self._pushed.get(change.relative, -1) < change.generation:
                    fs.pipe_file(f"{root.rstrip('/')}/{change.relative}", change.data)
                    self._pushed[change.relative] = change.generation
                with self._in_flight_lock:
                    if self._in_flight.get(change.relative) is change:
                        del self._in_flight[change.relative]

    def create(self, spec_pickle: bytes, trainable: bytes) -> None:
        os.makedirs(self.local_root, exist_ok=True)
        self._write(SPEC_FILE, spec_pickle)
        self._write(TRAINABLE_FILE, trainable, push=True)

    def write_params(self, trial: Trial) -> None:
        params_json = json.dumps(_jsonable(trial.config), indent=2, sort_keys=True)
        self._write(f"{trial.dir_name}/params.json", params_json.encode())
        self._write(f"{trial.dir_name}/params.pkl", cloudpickle.dumps(trial.config))

    def claim_trial_folder(self, trial: Trial) -> None:
        """Record which run of the trial may write checkpoints into its folder.

        A worker cut off from the head may still be running an older run;
        its uploads check this and step aside (see tune_worker.uploader).
        """
        data = trial.run_id.encode()
        if self.remote is None:
            os.makedirs(trial.path, exist_ok=True)
            write_atomically(os.path.join(trial.path, storage.RUN_OWNER_FILE), data)
        else:
            fs, _ = self.remote
            target = storage.fs_path(f"{trial.path}/{storage.RUN_OWNER_FILE}", fs)
            fs.pipe_file(target, data)

    def has_params(self, trial: Trial) -> bool:
        return os.path.exists(self._local(trial.dir_name, "params.pkl"))

    def trial_log(self, trial: Trial) -> TrialLog:
        """The trial's open log, opened (and its folder made) on first use."""
        trial_log = self.trial_logs.get(trial.trial_id)
        if trial_log is None:
            os.makedirs(self._local(trial.dir_name), exist_ok=True)
            trial_log = TrialLog(self._local(trial.dir_name))
            self.trial_logs[trial.trial_id] = trial_log
        return trial_log

    def append_result(self, trial: Trial, result_json: bytes, row: bytes) -> None:
        """Log the trial's latest result (``trial.last_result``)."""
        trial_log = self.trial_log(trial)
        trial_log.append(result_json, row, lambda: trial.last_result)
        self.dirty_logs.add(trial.dir_name)

    def rewind_results(self, trial: Trial, iteration: int) -> dict:
        """Keep only results up to ``iteration``; returns the last one kept."""
        trial_log = self.trial_logs.pop(trial.trial_id, None)
        if trial_log is not None:
            trial_log.close()
        folder = self._local(trial.dir_name)
        kept = [
            r
            for r in read_result_lines(folder)
            if int(r.get("training_iteration", 0)) <= iteration
        ]
        lines = b"".join(json.dumps(r).encode() + b"\n" for r in kept)
        self._write(f"{trial.dir_name}/{RESULT_FILE}", lines)
        progress = os.path.join(folder, PROGRESS_FILE)
        if os.path.exists(progress):
            self._write(
                f"{trial.dir_name}/{PROGRESS_FILE}",
                _progress_up_to(progress, iteration),
            )
        return kept[-1] if kept else {}

    def flush_results(self) -> None:
        for trial_log in self.trial_logs.values():
            trial_log.flush()

    def close_trial(self, trial: Trial) -> None:
        trial_log = self.trial_logs.pop(trial.trial_id, None)
        if trial_log is not None:
            trial_log.close()
        if trial.status is TrialStatus.ERROR and trial.error:
            self._write(f"{trial.dir_name}/error.txt", trial.error.encode())
        self.sync(force=True)

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
        self._write(STATE_FILE, data)
        if self.remote is not None:
            self.push([self._change(STATE_FILE, data)])
            self.dirty.discard(STATE_FILE)

    def write_searcher_state(self, state: dict) -> None:
        self._write(SEARCHER_FILE, cloudpickle.dumps(state))

    def clone_checkpoint(
        self, source: CheckpointRecord, trial: Trial, dir_name: str
    ) -> None:
        target = storage.join(trial.path, dir_name)
        if self.remote is None:
            shutil.copytree(source.path, f"{target}.partial", dirs_exist_ok=True)
            os.replace(f"{target}.partial", target)
            return
        fs, _ = self.remote
        fs.copy(
            storage.fs_path(source.path, fs),
            storage.fs_path(target, fs),
            recursive=True,
        )
        fs.pipe_file(storage.fs_path(f"{target}/{CHECKPOINT_MARKER}", fs), b"")

    def delete_checkpoint(self, record: CheckpointRecord) -> None:
        if self.remote is None:
            shutil.rmtree(record.path, ignore_errors=True)
            return
        fs, _ = self.remote
        try:
            fs.rm(storage.fs_path(record.path, fs), recursive=True)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        for trial_log in self.trial_logs.values():
            trial_log.close()
        self.trial_logs.clear()
        # Also what a periodic push has taken and not yet put: the bucket is
        # whole when this returns, and no push ends after it with news.
        with self._in_flight_lock:
            in_flight = list(self._in_flight.values())
        self.push(in_flight + self.take_changes())

    def set_aside(self, relative: str, suffix: str) -> None:
        """Rename a file of the experiment, here and (at the next push) in the
        bucket, so a fresh one can start in its place."""
        local = self._local(relative)
        if not os.path.exists(local):
            return
        os.replace(local, f"{local}{suffix}")
        self.dirty.discard(relative)
        if self.remote is None:
            return
        self.dirty.add(f"{relative}{suffix}")
        fs, root = self.remote
        try:
            fs.rm_file(f"{root.rstrip('/')}/{relative}")
        except FileNotFoundError:
            pass

    def download_for_restore(self) -> None:
        """Bring a bucket experiment's files, but not its checkpoints, to the mirror."""
        if self.remote is None:
            return
        fs, root = self.remote
        root = root.rstrip("/")
        fs.invalidate_cache(root)  # a user's filesystem may cache listings
        for remote_file in fs.find(root):
            relative = remote_file[len(root) + 1 :]
            if "/checkpoint_" in f"/{relative}":
                continue
            local = self._local(relative)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            fs.get_file(remote_file, local)

    def whole_checkpoints(self, trial_dir_name: str) -> list[str]:
        """Checkpoint folders of a trial that were completely written, oldest first."""
        if self.remote is None:
            return find_whole_checkpoints(self._local(trial_dir_name))
        fs, root = self.remote
        folder = f"{root.rstrip('/')}/{trial_dir_name}"
        fs.invalidate_cache(folder)  # workers wrote there, not this process
        try:
            entries = fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        names = sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries)
        return [
            n
            for n in names
            if _is_checkpoint_name(n) and fs.exists(f"{folder}/{n}/{CHECKPOINT_MARKER}")
        ]


def _progress_up_to(path: str, iteration: int) -> bytes:
    with open(path, newline="") as f:
        rows = [
            row
            for row in csv.DictReader(f)
            if int(float(row.get("training_iteration") or 0)) <= iteration
        ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_read_csv_header(path))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _is_checkpoint_name(name: str) -> bool:
    return name.startswith("checkpoint_") and name[len("checkpoint_") :].isdigit()


# ---- restore ----------------------------------------------------------------


class DamagedExperimentError(Exception):
    """A file of the experiment folder is missing or unreadable.

    The message names the file as it is stored (its bucket path for a bucket
    experiment, not the head's mirror of it) and how to repair it.
    """


_RESTORE_FIX = (
    "Tuner.restore needs it whole: put back a whole copy of the file, e.g. from "
    "a backup of the experiment folder, and restore again."
)
_TRIAL_KEYS = ("trial_id", "trial_name", "dir_name", "status")
_CHECKPOINT_KEYS = ("dir_name", "path", "training_iteration")
_NUMBERS = ("runs", "num_failures", "next_checkpoint_index")


def _damaged(shown: str, cause: str) -> DamagedExperimentError:
    return DamagedExperimentError(f"{shown} is damaged: {cause}. {_RESTORE_FIX}")


def read_state(experiment_path: str, shown_path: str = "") -> dict:
    """experiment_state.json, with every key restore relies on checked.

    ``shown_path`` is where the experiment is stored, for messages, when
    ``experiment_path`` is a local mirror of it.
    """
    path = os.path.join(experiment_path, STATE_FILE)
    shown = storage.join(shown_path, STATE_FILE) if shown_path else path
    try:
        with open(path, "rb") as f:
            state = json.loads(f.read())
    except FileNotFoundError as exc:
        raise DamagedExperimentError(
            f"{shown} does not exist: the folder is not an experiment, or it was "
            "never started. Pass the folder that Tuner.fit() printed."
        ) from exc
    except (OSError, ValueError) as exc:
        raise _damaged(shown, str(exc)) from exc
    if not isinstance(state, dict):
        raise _damaged(shown, "it does not hold a JSON object")
    if state.get("version") != STATE_VERSION:
        raise DamagedExperimentError(
            f"{shown} has state version {state.get('version')!r}; this release reads "
            f"version {STATE_VERSION}."
        )
    _check_state(state, shown)
    return state


def _check_state(state: dict, shown: str) -> None:
    for key in ("experiment_id", "trials"):
        if key not in state:
            raise _damaged(shown, f"the key {key!r} is missing")
    if not isinstance(state["trials"], list):
        raise _damaged(shown, "'trials' is not a list")
    for number, record in enumerate(state["trials"]):
        problem = _trial_record_problem(record)
        if problem:
            raise _damaged(shown, f"trial record {number}: {problem}")


def _trial_record_problem(record: Any) -> str:
    """What is wrong with one trial's record, or ""."""
    if not isinstance(record, dict):
        return "it is not a JSON object"
    missing = [key for key in _TRIAL_KEYS if key not in record]
    if missing:
        return f"the key {missing[0]!r} is missing"
    if record["status"] not in {s.value for s in TrialStatus}:
        return f"status {record['status']!r} is not a trial status"
    dir_name = record["dir_name"]
    if not isinstance(dir_name, str) or not _is_plain_name(dir_name):
        return f"dir_name {dir_name!r} is not a folder name inside the experiment"
    for key in _NUMBERS:
        if not isinstance(record.get(key, 0), int):
            return f"{key} {record[key]!r} is not a whole number"
    for checkpoint in record.get("checkpoints") or []:
        if not isinstance(checkpoint, dict) or any(
            key not in checkpoint for key in _CHECKPOINT_KEYS
        ):
            return f"a checkpoint record lacks one of {', '.join(_CHECKPOINT_KEYS)}"
    return ""


def _is_plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name


def read_searcher_state(experiment_path: str, shown_path: str = "") -> dict | None:
    """The saved searcher state; None when the experiment has none yet."""
    path = os.path.join(experiment_path, SEARCHER_FILE)
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - any unpickling error means damaged
        shown = storage.join(shown_path, SEARCHER_FILE) if shown_path else path
        raise DamagedExperimentError(
            f"{shown} is damaged and cannot be read: {exc!r}. Put back a whole "
            "copy of it, or delete it to restore without the searcher's state "
            "(the searcher then starts afresh and may suggest configs already "
            "tried)."
        ) from exc


def read_trial_params(trial_path: str, shown_path: str = "") -> dict:
    """A trial's config from params.pkl, once params.json beside it is checked."""
    shown = shown_path or trial_path
    json_path = os.path.join(trial_path, "params.json")
    try:
        with open(json_path, "rb") as f:
            json.loads(f.read())
    except FileNotFoundError:
        pass  # written for people; the config itself is in params.pkl
    except (OSError, ValueError) as exc:
        raise _damaged(storage.join(shown, "params.json"), str(exc)) from exc
    try:
        with open(os.path.join(trial_path, "params.pkl"), "rb") as f:
            return pickle.load(f)
    except Exception as exc:  # noqa: BLE001 - any unpickling error means damaged
        raise DamagedExperimentError(
            f"{storage.join(shown, 'params.pkl')} cannot be read: {exc!r}. "
            f"{_RESTORE_FIX}"
        ) from exc


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
        if _is_checkpoint_name(n) and os.path.isdir(os.path.join(trial_path, n))
    )
