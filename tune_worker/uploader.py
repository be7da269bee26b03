"""Moving staged checkpoints and trial files into storage, in order.

A trial's checkpoint is copied to the worker's staging folder before
``report`` returns; an upload thread then puts it into the trial's folder
in storage and tells the head it is whole. Three routes, chosen by the head:

- a local folder the worker shares with the head: a rename when both are on
  one disk, so the checkpoint is never copied twice;
- a bucket (any fsspec URI): the files, then a marker written last;
- a folder only the head sees: the files are streamed to the head.

A trial's end is queued behind its uploads and behind the upload of the files
it wrote, so the head hears of the end only when all of it is in storage.
Different trials' uploads go on at once.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proto.generated import tune_pb2
from tune_client import storage
from tune_client.storage import CHECKPOINT_MARKER

log = logging.getLogger(__name__)
RETRY_DELAYS_S = (0.5, 1, 2, 4, 8)
UPLOAD_LANES = 4

# (trial_id, folder under the trial's folder or "", local folder, run id)
# -> the stored path; raises StaleRunError when the head refuses the run.
StreamUpload = Callable[[str, str, str, str], str]


@dataclass
class StorageTarget:
    """Where one trial's files go, and how."""

    trial_path: str
    stream_to_head: bool = False
    filesystem: Any = None
    run_id: str = ""

    @property
    def is_remote(self) -> bool:
        return self.filesystem is not None or storage.is_uri(self.trial_path)


@dataclass
class CheckpointUpload:
    trial_id: str
    dir_name: str
    staged_path: str
    target: StorageTarget
    metrics_json: bytes


@dataclass
class TrialFilesUpload:
    """The files a trial wrote in a working folder that is not its storage folder."""

    trial_id: str
    local_dir: str
    target: StorageTarget


@dataclass
class TrialEnd:
    trial_id: str
    outcome: int
    error: str


class Uploader:
    """Uploads in order for each trial, and for different trials at once.

    Each trial is given one of a few lanes (a queue and its thread) when its
    first item comes, and keeps it for good, so one trial's items never
    overtake each other, even across its restarts on this worker; trials on
    other lanes upload meanwhile, which is how a bucket is written fastest.
    """

    def __init__(
        self,
        send: Callable[[tune_pb2.WorkerMessage], None],
        stream_upload: StreamUpload,
        lanes: int = UPLOAD_LANES,
    ) -> None:
        self._send = send
        self._stream_upload = stream_upload
        self._lanes: list[queue.Queue] = [queue.Queue() for _ in range(lanes)]
        self._lane_of_trial: dict[str, int] = {}
        self._running: set[str] = set()  # trials whose end is not queued yet
        self._lock = threading.Lock()
        for index, lane in enumerate(self._lanes):
            threading.Thread(
                target=self._run, args=(lane,), name=f"uploader-{index}", daemon=True
            ).start()

    def put(self, item: CheckpointUpload | TrialFilesUpload | TrialEnd) -> None:
        with self._lock:
            lane = self._lane_for(item.trial_id)
            if isinstance(item, TrialEnd):
                self._running.discard(item.trial_id)
            else:
                self._running.add(item.trial_id)
            self._lanes[lane].put(item)

    def _lane_for(self, trial_id: str) -> int:
        """The trial's lane; a new trial gets the least busy one, by items
        still to upload, then by trials that may queue more."""
        lane = self._lane_of_trial.get(trial_id)
        if lane is None:
            running = [0] * len(self._lanes)
            for other in self._running:
                running[self._lane_of_trial[other]] += 1
            busy = [
                (queued.unfinished_tasks, running[index])
                for index, queued in enumerate(self._lanes)
            ]
            lane = busy.index(min(busy))
            self._lane_of_trial[trial_id] = lane
        return lane

    def drain(self, timeout: float) -> bool:
        """Wait until every queued item is handled; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._unfinished() and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._unfinished()

    def _unfinished(self) -> int:
        return sum(lane.unfinished_tasks for lane in self._lanes)

    def _run(self, lane: queue.Queue) -> None:
        while True:
            item = lane.get()
            try:
                self._handle(item)
            except Exception:
                log.exception("handling %r failed", item)
            finally:
                lane.task_done()

    def _handle(self, item: CheckpointUpload | TrialFilesUpload | TrialEnd) -> None:
        if isinstance(item, CheckpointUpload):
            self._upload_checkpoint(item)
        elif isinstance(item, TrialFilesUpload):
            self._upload_trial_files_or_report(item)
        else:
            ended = tune_pb2.TrialEnded(
                trial_id=item.trial_id, outcome=item.outcome, error=item.error
            )
            self._send(tune_pb2.WorkerMessage(trial_ended=ended))

    def _with_retries(self, what: str, action: Callable[[], Any]) -> Any:
        """Run ``action``, retrying with backoff; re-raise after the last try."""
        for attempt, delay in enumerate((*RETRY_DELAYS_S, None), start=1):
            try:
                return action()
            except StaleRunError:
                raise
            except Exception as exc:
                if delay is None:
                    log.error("uploading %s failed for good: %s", what, exc)
                    raise
                log.warning(
                    "uploading %s failed (attempt %d): %s; retrying in %.1f s",
                    what,
                    attempt,
                    exc,
                    delay,
                )
                time.sleep(delay)
        return None

    def _upload_checkpoint(self, item: CheckpointUpload) -> None:
        """Store a staged checkpoint; the staged copy is gone afterwards, stored
        or not, so failed uploads do not fill the worker's disk."""
        what = f"{item.dir_name} of trial {item.trial_id}"
        try:
            path = self._with_retries(what, lambda: self._persist(item))
        except StaleRunError as exc:
            log.warning("%s", exc)
            return
        except Exception as exc:  # the trial goes on; the head shows the failure
            self._report_failure(item.trial_id, item.dir_name, f"uploading {what}", exc)
            return
        finally:
            shutil.rmtree(item.staged_path, ignore_errors=True)
        iteration = json.loads(item.metrics_json).get("training_iteration", 0)
        persisted = tune_pb2.CheckpointPersisted(
            trial_id=item.trial_id,
            dir_name=item.dir_name,
            path=path,
            training_iteration=int(iteration),
            metrics_json=item.metrics_json,
        )
        self._send(tune_pb2.WorkerMessage(checkpoint=persisted))

    def _upload_trial_files_or_report(self, item: TrialFilesUpload) -> None:
        what = f"the files of trial {item.trial_id}"
        try:
            self._with_retries(what, lambda: self._upload_trial_files(item))
        except StaleRunError as exc:
            log.warning("%s", exc)
        except Exception as exc:  # the trial's end still follows in the queue
            self._report_failure(item.trial_id, "", f"uploading {what}", exc)

    def _report_failure(
        self, trial_id: str, dir_name: str, what: str, exc: Exception
    ) -> None:
        """Tell the head, which shows it as the trial's ``storage_error``."""
        failed = tune_pb2.CheckpointPersisted(
            trial_id=trial_id,
            dir_name=dir_name,
            error=f"{what} failed after {len(RETRY_DELAYS_S) + 1} tries: {exc!r}",
        )
        self._send(tune_pb2.WorkerMessage(checkpoint=failed))

    def _persist(self, item: CheckpointUpload) -> str:
        target = item.target
        if not owns_folder(target):
            shutil.rmtree(item.staged_path, ignore_errors=True)
            raise StaleRunError(
                f"a newer run of trial {item.trial_id} owns its folder; "
                f"{item.dir_name} of run {target.run_id} is dropped"
            )
        if target.stream_to_head:
            path = self._stream_upload(
                item.trial_id, item.dir_name, item.staged_path, target.run_id
            )
            shutil.rmtree(item.staged_path, ignore_errors=True)
            return path
        if target.is_remote:
            return put_in_bucket(
                item.staged_path, target.trial_path, item.dir_name, target.filesystem
            )
        return move_into_folder(item.staged_path, target.trial_path, item.dir_name)

    def _upload_trial_files(self, item: TrialFilesUpload) -> None:
        if not os.path.isdir(item.local_dir) or not os.listdir(item.local_dir):
            return
        target = item.target
        if target.stream_to_head:
            self._stream_upload(item.trial_id, "", item.local_dir, target.run_id)
            return
        fs, fs_path = storage.get_filesystem(target.trial_path, target.filesystem)
        fs.put(item.local_dir.rstrip("/") + "/", fs_path, recursive=True)


class StaleRunError(Exception):
    """The trial was restarted elsewhere; this run may no longer write."""


def owns_folder(target: StorageTarget) -> bool:
    """Whether the trial's folder still belongs to this run of the trial.

    The head writes the current run's id into the folder whenever it starts
    the trial; a run on a worker that was cut off from it finds another id.
    A folder streamed to the head is checked by the head itself.
    """
    if target.stream_to_head or not target.run_id:
        return True
    owner_path = storage.join(target.trial_path, storage.RUN_OWNER_FILE)
    try:
        if target.is_remote:
            fs, fs_path = storage.get_filesystem(owner_path, target.filesystem)
            owner = fs.cat_file(fs_path).decode()
        else:
            with open(owner_path) as f:
                owner = f.read()
    except FileNotFoundError:
        return True
    return owner.strip() == target.run_id


def put_in_bucket(staged: str, trial_path: str, dir_name: str, filesystem) -> str:
    """Upload a staged checkpoint, then its marker: readers trust the marker."""
    target = f"{trial_path.rstrip('/')}/{dir_name}"
    fs, fs_path = storage.get_filesystem(target, filesystem)
    fs.put(staged.rstrip("/") + "/", fs_path, recursive=True)
    fs.pipe_file(f"{fs_path}/{CHECKPOINT_MARKER}", b"")
    shutil.rmtree(staged, ignore_errors=True)
    return target


def move_into_folder(staged: str, trial_path: str, dir_name: str) -> str:
    """Put a staged checkpoint into a local folder whole, by renaming into place.

    Across filesystems it is copied beside the target first. The staged copy
    stays until the checkpoint is in place, so a failed try can be retried.
    """
    target = os.path.join(trial_path, dir_name)
    os.makedirs(trial_path, exist_ok=True)
    _remove_tree(target)  # left by an earlier run of the trial
    try:
        os.rename(staged, target)
        return target
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    partial = f"{target}.partial"
    _remove_tree(partial)
    try:
        shutil.copytree(staged, partial)
        os.rename(partial, target)
    except OSError:
        _remove_tree(partial)  # e.g. the disk is full: free what was copied
        raise
    shutil.rmtree(staged, ignore_errors=True)
    return target


def _remove_tree(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)
