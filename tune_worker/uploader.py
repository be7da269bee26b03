"""Moving staged checkpoints into storage, in order, off the trial's path.

A trial's checkpoint is copied to the worker's staging folder before
``report`` returns; this thread then moves it into the trial's folder in
storage (a rename when both are on one disk) and tells the head it is whole.
A trial's end is queued behind its uploads, so the head hears of the end
only after every checkpoint the trial reported is in storage.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from proto.generated import tune_pb2
from tune_client import storage

log = logging.getLogger(__name__)
RETRY_DELAYS_S = (0.5, 1, 2, 4, 8)


@dataclass
class CheckpointUpload:
    trial_id: str
    dir_name: str
    staged_path: str
    trial_path: str
    metrics_json: bytes


@dataclass
class TrialEnd:
    trial_id: str
    outcome: int
    error: str


class Uploader:
    def __init__(self, send: Callable[[tune_pb2.WorkerMessage], None]) -> None:
        self._send = send
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)
        self._thread.start()

    def put(self, item: CheckpointUpload | TrialEnd) -> None:
        self._queue.put(item)

    def drain(self, timeout: float) -> bool:
        """Wait until every queued item is handled; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._queue.unfinished_tasks

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if isinstance(item, CheckpointUpload):
                    self._upload_with_retries(item)
                else:
                    self._send(
                        tune_pb2.WorkerMessage(
                            trial_ended=tune_pb2.TrialEnded(
                                trial_id=item.trial_id,
                                outcome=item.outcome,
                                error=item.error,
                            )
                        )
                    )
            except Exception:
                log.exception("handling %r failed", item)
            finally:
                self._queue.task_done()

    def _upload_with_retries(self, item: CheckpointUpload) -> None:
        for attempt, delay in enumerate((*RETRY_DELAYS_S, None)):
            try:
                target = persist(item.staged_path, item.trial_path, item.dir_name)
                break
            except OSError as exc:
                if delay is None:
                    log.error(
                        "checkpoint %s of trial %s was not uploaded: %s",
                        item.dir_name,
                        item.trial_id,
                        exc,
                    )
                    return
                log.warning(
                    "uploading %s failed (attempt %d): %s; retrying",
                    item.dir_name,
                    attempt + 1,
                    exc,
                )
                time.sleep(delay)
        iteration = json.loads(item.metrics_json).get("training_iteration", 0)
        self._send(
            tune_pb2.WorkerMessage(
                checkpoint=tune_pb2.CheckpointPersisted(
                    trial_id=item.trial_id,
                    dir_name=item.dir_name,
                    path=target,
                    training_iteration=int(iteration),
                    metrics_json=item.metrics_json,
                )
            )
        )


def persist(staged_path: str, trial_path: str, dir_name: str) -> str:
    """Put a staged checkpoint folder into storage whole; returns its path there."""
    target = storage.join(trial_path, dir_name)
    if storage.is_uri(trial_path):
        fs, fs_path = storage.get_filesystem(target)
        fs.put(staged_path.rstrip("/") + "/", fs_path, recursive=True)
        shutil.rmtree(staged_path, ignore_errors=True)
        return target
    os.makedirs(trial_path, exist_ok=True)
    partial = f"{target}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        os.rename(staged_path, partial)
    except OSError:
        shutil.copytree(staged_path, partial)
        shutil.rmtree(staged_path, ignore_errors=True)
    if os.path.exists(target):
        shutil.rmtree(target)
    os.rename(partial, target)
    return target
