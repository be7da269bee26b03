"""The head: workers, experiments and the object store, behind one lock.

The gRPC layer (``service.py``) calls into ``Head``; ``Head`` feeds events to each
experiment's controller, carries out the actions it returns (start or stop a
trial on a worker, write storage, tell the watchers), and places pending trials
on workers with free resources.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import cloudpickle

from proto.generated import tune_pb2
from tune_client import storage as storage_paths
from tune_client.experiment import ExperimentSpec
from tune_client.trainable import format_resources
from tune_head import experiment_storage as es
from tune_head import messages, status
from tune_head.controller import (
    CloneCheckpointAction,
    DeleteCheckpointAction,
    ExperimentController,
    RewindResultsAction,
    SaveSearcherStateAction,
    StopTrialAction,
    TrialChanged,
)
from tune_head.object_store import ObjectStore
from tune_head.placement import Placer
from tune_head.registry import ExperimentRegistry
from tune_head.trial import CheckpointRecord, Trial, TrialStatus
from tune_head.workers import WorkerHandle

log = logging.getLogger(__name__)

_OUTCOMES = {
    tune_pb2.FINISHED: "finished",
    tune_pb2.STOPPED: "stopped",
    tune_pb2.ERRORED: "errored",
    tune_pb2.INTERRUPTED: "interrupted",
}
STATE_WRITE_INTERVAL_S = 0.5
ORPHAN_SWEEP_INTERVAL_S = 60.0
# Trial output kept per experiment for watchers that connect or reconnect.
OUTPUT_KEPT_BYTES = 8 << 20


class UnknownExperimentError(KeyError):
    pass


class ExperimentExistsError(Exception):
    pass


@dataclass
class Experiment:
    experiment_id: str
    controller: ExperimentController
    storage: es.ExperimentStorage
    spec_pickle: bytes
    events: list[tune_pb2.ExperimentEvent] = field(default_factory=list)
    finished: bool = False
    state_dirty: bool = False
    # A trial ended: the searcher learned from it; saved on the next tick.
    searcher_dirty: bool = False
    last_turn: int = 0  # when a trial of this experiment was last placed
    # Indexes into ``events`` of the trial output still kept, oldest first.
    output_kept: deque[int] = field(default_factory=deque)
    output_kept_bytes: int = 0
    output_kept_limit: int = OUTPUT_KEPT_BYTES

    @property
    def name(self) -> str:
        return self.controller.spec.name

    def add_output(self, output: tune_pb2.TrialOutput) -> None:
        """Queue trial output for watchers, keeping only the latest
        ``output_kept_limit`` bytes of it: output is for people following
        along, and an experiment may run for days."""
        sequence = len(self.events) + 1
        self.events.append(tune_pb2.ExperimentEvent(sequence=sequence, output=output))
        self.output_kept.append(sequence - 1)
        self.output_kept_bytes += len(output.data)
        while (
            self.output_kept_bytes > self.output_kept_limit
            and len(self.output_kept) > 1
        ):
            index = self.output_kept.popleft()
            self.output_kept_bytes -= len(self.events[index].output.data)
            # A new, empty event: a watcher may be sending the old one now.
            self.events[index] = tune_pb2.ExperimentEvent(sequence=index + 1)

    @property
    def path(self) -> str:
        return self.controller.experiment_path


class Head:
    def __init__(
        self,
        storage_path: str,
        object_dir: str,
        heartbeat_interval_s: float = 1.0,
        heartbeat_timeout_s: float = 10.0,
        object_store_memory: int | None = None,
        mirror_dir: str = "",
        worker_storage: str = "auto",
        state_dir: str = "",
    ) -> None:
        self.storage_path = storage_path
        self.mirror_dir = mirror_dir or os.path.join(
            tempfile.gettempdir(), "tune_head_mirrors"
        )
        self.worker_storage = worker_storage
        self.hostname = socket.gethostname()
        self.objects = ObjectStore(object_dir, object_store_memory)
        self.object_port = 0  # set when tune-head serves objects on their own port
        self.heartbeat_interval_s = heartbeat_interval_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.workers: dict[str, WorkerHandle] = {}
        self.placer = Placer()
        self.experiments: dict[str, Experiment] = {}
        self.epoch = secrets.token_hex(4)
        self.registry = ExperimentRegistry(
            state_dir or os.path.join(self.mirror_dir, "head_state")
        )
        self._reattach_deadline = 0.0
        self._turns = 0
        self.results_counter = None  # set when Prometheus metrics are served
        self._closed = threading.Event()
        self._monitor = threading.Thread(
            target=self._monitor_loop, name="head-monitor", daemon=True
        )
        self._monitor.start()

    # ---- workers ----------------------------------------------------------

    def register_worker(
        self, request: tune_pb2.RegisterWorkerRequest
    ) -> tune_pb2.RegisterWorkerReply:
        worker_id = request.worker_id or f"worker-{secrets.token_hex(4)}"
        with self.lock:
            known = worker_id in self.workers
            if known:
                self._worker_registered_again(worker_id, dict(request.resources))
            else:
                handle = WorkerHandle(
                    worker_id,
                    request.hostname,
                    request.node_ip,
                    dict(request.resources),
                )
                self.workers[worker_id] = handle
                self.placer.add_worker(worker_id, handle.resources)
                log.info(
                    "worker %s joined from %s with %s",
                    worker_id,
                    request.hostname,
                    format_resources(handle.resources),
                )
            running = list(request.running_trial_ids)
            stale = self._stale_trials(worker_id, running)
            self._reattach(worker_id, running)
            self._fail_missing_trials(worker_id, running)
        return tune_pb2.RegisterWorkerReply(
            worker_id=worker_id,
            heartbeat_interval_s=self.heartbeat_interval_s,
            stale_trial_ids=stale,
            head_hostname=socket.gethostname(),
            object_dir=os.path.abspath(self.objects.directory),
            object_port=self.object_port,
        )

    def _worker_registered_again(
        self, worker_id: str, resources: dict[str, float]
    ) -> None:
        """A worker we still know reconnected, perhaps restarted with new flags."""
        handle = self.workers[worker_id]
        handle.registered_again()
        # Back after a restart: it takes trials again. One still shutting
        # down says so by answering starts as interrupted.
        self.placer.workers[worker_id].draining = False
        if resources != handle.resources:
            log.info(
                "worker %s now has %s",
                worker_id,
                format_resources(resources),
            )
            handle.resources = resources
            self.placer.workers[worker_id].total = dict(resources)

    def _reattach(self, worker_id: str, running: list[str]) -> None:
        """Take back trials a worker kept running while the head was away."""
        for trial_id in running:
            found = self._find_trial(trial_id)
            if found is None:
                continue
            _, trial = found
            if trial.status is not TrialStatus.RUNNING or trial.worker_id != worker_id:
                continue
            if trial_id not in self.placer.allocations:
                self.placer.reserve(worker_id, trial_id, trial.resources)
                log.info(
                    "trial %s re-attached on worker %s", trial.trial_name, worker_id
                )

    def _fail_missing_trials(self, worker_id: str, running: list[str]) -> None:
        """Trials placed on a worker that registers without them have died.

        The worker restarted (or never received the start), so nothing will
        ever report for them; they run again under ``max_failures``.
        """
        reported = set(running)
        for exp in self.experiments.values():
            missing = [
                t
                for t in exp.controller.trials.values()
                if t.status is TrialStatus.RUNNING
                and t.worker_id == worker_id
                and t.trial_id not in reported
            ]
            for trial in missing:
                log.warning(
                    "worker %s registered without trial %s; it is counted as "
                    "failed and runs again if max_failures allows",
                    worker_id,
                    trial.trial_name,
                )
                self.placer.release(trial.trial_id)
                exp.controller.on_trial_ended(
                    trial,
                    "errored",
                    f"the worker {worker_id} running it restarted without it",
                )
            if missing:
                self._apply_actions(exp)

    def _stale_trials(self, worker_id: str, running: list[str]) -> list[str]:
        """Trials a worker still runs that the head no longer runs there."""
        live = {
            t.trial_id
            for exp in self.experiments.values()
            for t in exp.controller.trials.values()
            if t.status is TrialStatus.RUNNING and t.worker_id == worker_id
        }
        return [trial_id for trial_id in running if trial_id not in live]

    def open_worker_stream(self, worker_id: str) -> tuple[WorkerHandle, int]:
        with self.lock:
            handle = self.workers.get(worker_id)
            if handle is None:
                raise KeyError(worker_id)
            epoch = handle.new_stream()
            self._schedule()
            return handle, epoch

    def close_worker_stream(self, worker_id: str, epoch: int) -> None:
        with self.lock:
            handle = self.workers.get(worker_id)
            if handle is not None and handle.stream_epoch == epoch:
                handle.connected = False
                log.info(
                    "worker %s disconnected; declared lost unless it is back "
                    "within %.0f s",
                    worker_id,
                    self.heartbeat_timeout_s,
                )

    def on_worker_message(
        self, worker_id: str, message: tune_pb2.WorkerMessage
    ) -> None:
        kind = message.WhichOneof("kind")
        with self.lock:
            handle = self.workers.get(worker_id)
            if handle is None or self._closed.is_set():
                return  # not acknowledged: the worker sends it again later
            handle.last_seen = time.monotonic()
            if kind == "results":
                self._on_results(handle, message.results)
            elif kind == "checkpoint":
                self._on_checkpoint(worker_id, message.checkpoint)
            elif kind == "trial_ended":
                self._on_trial_ended(worker_id, message.trial_ended)
            elif kind == "output":
                self._on_output(worker_id, message.output)
            if message.sequence:
                ack = tune_pb2.ResultsAck(sequence=message.sequence)
                handle.send(tune_pb2.HeadCommand(results_ack=ack))

    def _fail(self, exp: Experiment, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        log.error("experiment %s failed: %s", exp.name, message, exc_info=exc)
        exp.controller.fail(message)

    def _mark_draining(self, worker_id: str) -> None:
        """A worker that interrupts trials is shutting down: place nothing more."""
        capacity = self.placer.workers.get(worker_id)
        if capacity is not None and not capacity.draining:
            capacity.draining = True
            log.info("worker %s is shutting down; no more trials go there", worker_id)

    def _lose_worker(self, worker_id: str, reason: str) -> None:
        handle = self.workers.pop(worker_id, None)
        if handle is None:
            return
        log.warning("worker %s lost: %s", worker_id, reason)
        # End its stream: if it is alive after all, it reconnects, registers
        # anew and is told which of its trials are stale.
        handle.stream_epoch += 1
        handle.outbox.put(None)
        self.placer.remove_worker(worker_id)
        for exp in self.experiments.values():
            exp.controller.on_worker_lost(worker_id)
            self._apply_actions(exp)
        self._schedule()

    # ---- results and trial outcomes ---------------------------------------

    def _find_trial(self, trial_id: str) -> tuple[Experiment, Trial] | None:
        for exp in self.experiments.values():
            trial = exp.controller.trials.get(trial_id)
            if trial is not None:
                return exp, trial
        return None

    def _find_trial_on(
        self, worker_id: str, trial_id: str
    ) -> tuple[Experiment, Trial] | None:
        """The trial, if ``worker_id`` is the worker running it now.

        A worker that was declared lost and came back may still report for
        trials that have moved elsewhere; those reports are dropped.
        """
        found = self._find_trial(trial_id)
        if found is None or found[1].worker_id != worker_id:
            return None
        return found

    def _on_results(self, handle: WorkerHandle, batch: tune_pb2.ResultBatch) -> None:
        touched: set[str] = set()
        if self.results_counter is not None:
            self.results_counter.inc(len(batch.results))
        for item in batch.results:
            found = self._find_trial_on(handle.worker_id, item.trial_id)
            if found is None:
                continue
            exp, trial = found
            if self._take_result(exp, trial, item):
                touched.add(exp.experiment_id)
        for experiment_id in touched:
            exp = self.experiments[experiment_id]
            exp.storage.flush_results()
            exp.state_dirty = True
            self._apply_actions(exp)
        self.changed.notify_all()

    def _take_result(
        self, exp: Experiment, trial: Trial, item: tune_pb2.TrialResult
    ) -> bool:
        """Log one result and queue its event; False if it was a repeat."""
        if item.progress_columns:  # the first result of a trial process
            exp.storage.trial_log(trial).trial_columns(list(item.progress_columns))
        iteration = item.training_iteration or int(
            json.loads(item.metrics_json).get("training_iteration", 0)
        )
        try:
            if not exp.controller.on_result(trial, iteration, item.metrics_json):
                return False
        except Exception as exc:  # a scheduler, searcher or stop function
            self._fail(exp, exc)
        exp.storage.append_result(trial, item.metrics_json, item.progress_row)
        exp.events.append(
            tune_pb2.ExperimentEvent(
                sequence=len(exp.events) + 1,
                result=tune_pb2.TrialResult(
                    trial_id=item.trial_id, metrics_json=item.metrics_json
                ),
            )
        )
        return True

    def _on_output(self, worker_id: str, batch: tune_pb2.TrialOutputBatch) -> None:
        for item in batch.items:
            found = self._find_trial_on(worker_id, item.trial_id)
            if found is not None:
                found[0].add_output(item)
        self.changed.notify_all()

    def _on_checkpoint(
        self, worker_id: str, message: tune_pb2.CheckpointPersisted
    ) -> None:
        found = self._find_trial_on(worker_id, message.trial_id)
        if found is None:
            return
        exp, trial = found
        if message.error:
            log.error("trial %s: %s", trial.trial_name, message.error)
            trial.storage_error = message.error
            self._on_trial_changed(exp, trial)
            return
        if any(c.dir_name == message.dir_name for c in trial.checkpoints):
            return  # sent again after a reconnect
        record = CheckpointRecord(
            message.dir_name,
            message.path,
            message.training_iteration,
            json.loads(message.metrics_json or b"{}"),
        )
        exp.controller.on_checkpoint(trial, record)
        exp.events.append(
            tune_pb2.ExperimentEvent(sequence=len(exp.events) + 1, checkpoint=message)
        )
        self._apply_actions(exp)
        self.changed.notify_all()

    def _on_trial_ended(self, worker_id: str, message: tune_pb2.TrialEnded) -> None:
        found = self._find_trial_on(worker_id, message.trial_id)
        if found is None:
            return
        exp, trial = found
        worker_id = trial.worker_id
        self.placer.release(trial.trial_id)
        if message.outcome == tune_pb2.INTERRUPTED:
            self._mark_draining(worker_id)
        try:
            exp.controller.on_trial_ended(
                trial, _OUTCOMES.get(message.outcome, "errored"), message.error
            )
        except Exception as exc:
            self._fail(exp, exc)
        self._apply_actions(exp)
        self._schedule()

    # ---- experiments --------------------------------------------------------

    def submit(
        self, request: tune_pb2.SubmitExperimentRequest
    ) -> tune_pb2.SubmitExperimentReply:
        spec: ExperimentSpec = cloudpickle.loads(request.spec_pickle)
        storage_path = request.storage_path or self.storage_path
        with self.lock:
            if not request.restore:
                spec.name = self._unused_name(storage_path, spec.name, request)
            path = storage_paths.join(storage_path, spec.name)
            for exp in self.experiments.values():
                if exp.path != path or exp.finished:
                    continue
                if request.restore:  # attach: the client replays its events
                    log.info("a client attached to experiment %s", exp.name)
                    return tune_pb2.SubmitExperimentReply(
                        experiment_id=exp.experiment_id,
                        experiment_path=path,
                        name=exp.name,
                    )
                raise ExperimentExistsError(
                    f"experiment {spec.name!r} is already running at {path}; "
                    "attach with Tuner.restore(path, trainable) or choose another "
                    "name."
                )
            if request.restore:
                exp = self._restore_experiment(request, spec, path)
            else:
                exp = self._new_experiment(request, spec, path)
            self.experiments[exp.experiment_id] = exp
            self._register(exp)
            self.objects.set_refs(exp.experiment_id, _object_refs(spec))
            log.info(
                "experiment %s %s at %s",
                spec.name,
                "restored" if request.restore else "submitted",
                path,
            )
            self._apply_actions(exp)
            self._write_state(exp)
            self._schedule()
            self._finish_if_done(exp)
        return tune_pb2.SubmitExperimentReply(
            experiment_id=exp.experiment_id, experiment_path=path, name=spec.name
        )

    def _unused_name(
        self, storage_path: str, name: str, request: tune_pb2.SubmitExperimentRequest
    ) -> str:
        """Never start over an experiment already in storage."""

        def taken(candidate: str) -> bool:
            state = storage_paths.join(storage_path, candidate, es.STATE_FILE)
            if not storage_paths.is_uri(state):
                return os.path.exists(state)
            fs, fs_path = storage_paths.get_filesystem(state)
            return fs.exists(fs_path)

        if not taken(name):
            return name
        if not request.name_is_default:
            raise ExperimentExistsError(
                f"{storage_paths.join(storage_path, name)} already holds an "
                "experiment; "
                "continue it with Tuner.restore(path, trainable) or choose another "
                "RunConfig(name=...)."
            )
        suffix = 2
        while taken(f"{name}_{suffix}"):
            suffix += 1
        return f"{name}_{suffix}"

    def _new_experiment(
        self,
        request: tune_pb2.SubmitExperimentRequest,
        spec: ExperimentSpec,
        path: str,
    ) -> Experiment:
        experiment_id = secrets.token_hex(16)
        storage = self._storage_for(spec, path)
        storage.create(
            cloudpickle.dumps(spec), self.objects.read_bytes(spec.trainable_object_id)
        )
        controller = ExperimentController(experiment_id, spec, path)
        return Experiment(experiment_id, controller, storage, cloudpickle.dumps(spec))

    def _restore_experiment(
        self,
        request: tune_pb2.SubmitExperimentRequest,
        spec: ExperimentSpec,
        path: str,
    ) -> Experiment:
        from tune_head.restore import load_trials

        storage = self._storage_for(spec, path)
        storage.download_for_restore()
        state = es.read_state(storage.local_root)
        trials = load_trials(
            storage,
            state,
            resume_unfinished=request.resume_unfinished,
            resume_errored=request.resume_errored,
            restart_errored=request.restart_errored,
        )
        storage.create(
            request.spec_pickle, self.objects.read_bytes(spec.trainable_object_id)
        )
        controller = ExperimentController(
            state["experiment_id"],
            spec,
            path,
            trials=trials,
            searcher_state=es.read_searcher_state(storage.local_root),
        )
        return Experiment(state["experiment_id"], controller, storage, b"")

    def _storage_for(self, spec: ExperimentSpec, path: str) -> es.ExperimentStorage:
        return self._storage_at(path, spec.run_config.storage_filesystem)

    def _storage_at(self, path: str, filesystem) -> es.ExperimentStorage:
        """An experiment's storage; a bucket's is mirrored in a folder named
        after its path, so a restarted head finds the same mirror."""
        mirror = os.path.join(
            self.mirror_dir, hashlib.sha1(path.encode()).hexdigest()[:16]
        )
        return es.ExperimentStorage(path, filesystem, mirror)

    def trial_folder(self, trial_id: str, run_id: str = "") -> tuple[str, str]:
        """A trial's folder on this machine, and its path in storage.

        Raises PermissionError for a run that is no longer the trial's current.
        """
        with self.lock:
            found = self._find_trial(trial_id)
            if found is None or found[0].storage.is_remote:
                raise KeyError(trial_id)
            exp, trial = found
            if run_id and run_id != trial.run_id:
                raise PermissionError(
                    f"run {run_id} of trial {trial_id} was replaced by {trial.run_id}"
                )
            return os.path.join(exp.storage.local_root, trial.dir_name), trial.path

    def holds_path(self, path: str) -> bool:
        """True when ``path`` lies inside an experiment folder on this head's disk."""
        path = os.path.normpath(path)
        with self.lock:
            return any(
                not exp.storage.is_remote
                and path.startswith(os.path.normpath(exp.path) + os.sep)
                for exp in self.experiments.values()
            )

    def stop_experiment(self, name_or_id: str, reason: str) -> str:
        with self.lock:
            exp = self._lookup(name_or_id)
            exp.controller.stop(reason, interrupt=True)
            self._apply_actions(exp)
            self._finish_if_done(exp)
            return exp.experiment_id

    def _lookup(self, name_or_id: str) -> Experiment:
        exp = self.experiments.get(name_or_id)
        if exp is not None:
            return exp
        matches = [e for e in self.experiments.values() if e.name == name_or_id]
        if not matches:
            raise UnknownExperimentError(name_or_id)
        return matches[-1]

    def watch(self, experiment_id: str, after: int, epoch: str) -> Iterator[list]:
        """Batches of events after sequence ``after``, until the experiment ends.

        Sequence numbers from another head epoch (before a restart) mean
        nothing here; such a watcher gets every event from the start.
        """
        cursor = after if epoch == self.epoch else 0
        while not self._closed.is_set():
            with self.lock:
                exp = self.experiments.get(experiment_id)
                if exp is None:
                    raise UnknownExperimentError(experiment_id)
                if len(exp.events) <= cursor:
                    if exp.finished:
                        return
                    self.changed.wait(timeout=1.0)
                    continue
                batch = exp.events[cursor : cursor + 5000]
                cursor += len(batch)
            yield batch

    # ---- carrying out the controller's decisions --------------------------

    def _apply_actions(self, exp: Experiment) -> None:
        while actions := exp.controller.take_actions():
            self._apply(exp, actions)
        self._finish_if_done(exp)

    def _apply(self, exp: Experiment, actions: list) -> None:
        for action in actions:
            if isinstance(action, TrialChanged):
                self._on_trial_changed(exp, action.trial)
            elif isinstance(action, StopTrialAction):
                self._send_stop(action.trial, action.reason)
            elif isinstance(action, DeleteCheckpointAction):
                exp.storage.delete_checkpoint(action.checkpoint)
            elif isinstance(action, RewindResultsAction):
                kept = exp.storage.rewind_results(action.trial, action.iteration)
                action.trial.last_result = kept
                action.trial.last_result_json = (
                    json.dumps(kept).encode() if kept else b""
                )
            elif isinstance(action, SaveSearcherStateAction):
                exp.searcher_dirty = True
            elif isinstance(action, CloneCheckpointAction):
                exp.storage.clone_checkpoint(
                    action.source, action.trial, action.dir_name
                )
                exp.storage.write_params(action.trial)

    def _on_trial_changed(self, exp: Experiment, trial: Trial) -> None:
        if not exp.storage.has_params(trial):
            exp.storage.write_params(trial)
            exp.storage.write_searcher_state(exp.controller.searcher.get_state())
            exp.state_dirty = True
            self._write_state(exp)
        if trial.status.is_finished:
            exp.storage.close_trial(trial)
        exp.state_dirty = True
        exp.events.append(
            tune_pb2.ExperimentEvent(
                sequence=len(exp.events) + 1, trial_updated=messages.trial_info(trial)
            )
        )
        self.changed.notify_all()

    def _send_stop(self, trial: Trial, reason: str) -> None:
        handle = self.workers.get(trial.worker_id)
        if handle is None:
            return
        log.info("stopping trial %s: %s", trial.trial_name, reason)
        handle.send(
            tune_pb2.HeadCommand(
                stop_trial=tune_pb2.StopTrial(trial_id=trial.trial_id, reason=reason)
            )
        )

    def _finish_if_done(self, exp: Experiment) -> None:
        if exp.finished or not exp.controller.is_finished():
            return
        exp.finished = True
        self.registry.remove(exp.experiment_id)
        self.objects.drop_refs(exp.experiment_id)
        # Before close(), whose push is the last one a finished experiment gets.
        exp.storage.write_searcher_state(exp.controller.searcher.get_state())
        exp.storage.close()
        self._write_state(exp)
        counts = exp.controller.counts_by_status()
        log.info("experiment %s ended: %s", exp.name, _format_counts(counts))
        trials = [messages.trial_info(t) for t in exp.controller.trials.values()]
        exp.events.append(
            tune_pb2.ExperimentEvent(
                sequence=len(exp.events) + 1,
                experiment_ended=tune_pb2.ExperimentEnded(
                    experiment_path=exp.path,
                    reason=exp.controller.stop_reason,
                    trials=trials,
                    error=exp.controller.error,
                ),
            )
        )
        self.changed.notify_all()

    def _write_state(self, exp: Experiment) -> None:
        exp.storage.write_state(
            exp.experiment_id,
            exp.name,
            list(exp.controller.trials.values()),
            exp.finished,
        )
        exp.state_dirty = False

    def _schedule(self) -> None:
        """Place pending trials, experiments taking turns so each gets a share.

        An experiment that just got a trial placed goes to the back of the
        line, so when one slot frees up it goes to the experiment that has
        waited longest, whichever client submitted first.
        """
        progress = True
        while progress:
            progress = False
            for exp in sorted(self.experiments.values(), key=lambda e: e.last_turn):
                if exp.finished:
                    continue
                try:
                    trial = exp.controller.next_trial_to_start()
                except Exception as exc:  # the searcher raised
                    self._fail(exp, exc)
                    trial = None
                if trial is not None and self._place(exp, trial):
                    progress = True
                    self._turns += 1
                    exp.last_turn = self._turns
                self._apply_actions(exp)

    def _place(self, exp: Experiment, trial: Trial) -> bool:
        disconnected = [w for w, h in self.workers.items() if not h.connected]
        worker_id = self.placer.place(trial.resources, unusable=disconnected)
        if worker_id is None:
            return False
        handle = self.workers[worker_id]
        self.placer.reserve(worker_id, trial.trial_id, trial.resources)
        exp.controller.on_trial_started(trial, worker_id)
        exp.storage.claim_trial_folder(trial)
        command = messages.start_trial(
            exp, trial, self._storage_mode(exp, trial.worker_id)
        )
        handle.send(tune_pb2.HeadCommand(start_trial=command))
        log.info("trial %s placed on worker %s", trial.trial_name, worker_id)
        return True

    def _storage_mode(self, exp: Experiment, worker_id: str) -> int:
        """Whether a worker writes into storage itself or streams files to us.

        A bucket is reached by every worker; a local folder only by workers on
        this machine, unless the operator says storage is shared (--worker-
        storage direct).
        """
        if self.worker_storage == "stream" and not exp.storage.is_remote:
            return tune_pb2.STREAM_TO_HEAD
        if self.worker_storage == "direct" or exp.storage.is_remote:
            return tune_pb2.DIRECT
        handle = self.workers.get(worker_id)
        same_machine = handle is not None and handle.hostname == self.hostname
        return tune_pb2.DIRECT if same_machine else tune_pb2.STREAM_TO_HEAD

    # ---- housekeeping ---------------------------------------------------------

    def _monitor_loop(self) -> None:
        next_sweep = time.monotonic() + ORPHAN_SWEEP_INTERVAL_S
        while not self._closed.wait(STATE_WRITE_INTERVAL_S):
            if time.monotonic() > next_sweep:
                next_sweep = time.monotonic() + ORPHAN_SWEEP_INTERVAL_S
                self._sweep_objects()
            uploads = []
            with self.lock:
                self._check_workers()
                for exp in list(self.experiments.values()):
                    if not exp.finished:
                        uploads.append((exp, self._tick(exp)))
            for exp, changes in uploads:  # bucket writes happen outside the lock
                self._push(exp, changes)

    def _tick(self, exp: Experiment) -> list:
        """One experiment's periodic work; a storage error is retried next time.

        Heartbeat checks and other experiments must go on when one
        experiment's storage fails, so nothing here may end the loop.
        """
        try:
            exp.controller.on_tick()
            self._apply_actions(exp)
            if exp.state_dirty:
                self._write_state(exp)
            if exp.searcher_dirty:
                searcher_state = exp.controller.searcher.get_state()
                exp.storage.write_searcher_state(searcher_state)
                exp.searcher_dirty = False
            return exp.storage.take_changes()
        except Exception as exc:  # noqa: BLE001 - logged, retried next round
            log.warning(
                "experiment %s: periodic work failed: %s; will retry",
                exp.name,
                exc,
                exc_info=True,
            )
            exp.state_dirty = True
            return []

    def _sweep_objects(self) -> None:
        """Uploads whose experiment was never submitted are deleted in time."""
        try:
            self.objects.collect_orphans()
        except OSError as exc:
            log.warning("sweeping the object store failed: %s; will retry", exc)

    def _push(self, exp: Experiment, changes: list) -> None:
        try:
            exp.storage.push(changes)
        except Exception as exc:  # noqa: BLE001 - retried on the next round
            log.warning(
                "syncing experiment %s to %s failed: %s; will retry",
                exp.name,
                exp.path,
                exc,
            )
            with self.lock:
                exp.storage.dirty.update(change.relative for change in changes)

    def _check_workers(self) -> None:
        now = time.monotonic()
        if self._reattach_deadline and now > self._reattach_deadline:
            self._reattach_deadline = 0.0
            self._lose_absent_workers()
        for worker_id, handle in list(self.workers.items()):
            silent = now - handle.last_seen
            if silent > self.heartbeat_timeout_s:
                why = "its stream closed" if not handle.connected else "no heartbeat"
                self._lose_worker(worker_id, f"{why} for {silent:.0f} s")

    def drain_worker(self, worker_id: str) -> list[str]:
        """Place nothing more on a worker and tell it to hand its trials back."""
        with self.lock:
            handle = self.workers.get(worker_id)
            if handle is None:
                raise KeyError(worker_id)
            self._mark_draining(worker_id)
            trial_ids = [
                t.trial_id
                for e in self.experiments.values()
                for t in e.controller.trials.values()
                if t.status is TrialStatus.RUNNING and t.worker_id == worker_id
            ]
            handle.send(
                tune_pb2.HeadCommand(
                    drain=tune_pb2.Drain(reason="drained by an operator")
                )
            )
            log.info(
                "draining worker %s: %d trials move elsewhere",
                worker_id,
                len(trial_ids),
            )
            return trial_ids

    def _lose_absent_workers(self) -> None:
        """After a restart, trials whose worker never came back run again."""
        for exp in self.experiments.values():
            absent = {
                t.worker_id
                for t in exp.controller.trials.values()
                if t.status is TrialStatus.RUNNING and t.worker_id not in self.workers
            }
            for worker_id in absent:
                log.warning(
                    "worker %s did not come back after the head restarted; its "
                    "trials run again elsewhere",
                    worker_id,
                )
                exp.controller.on_worker_lost(worker_id)
            self._apply_actions(exp)
        self._schedule()

    # ---- restart ------------------------------------------------------------

    def _register(self, exp: Experiment) -> None:
        filesystem = exp.controller.spec.run_config.storage_filesystem
        self.registry.add(
            exp.experiment_id,
            exp.path,
            cloudpickle.dumps(filesystem) if filesystem is not None else b"",
        )

    def reload_experiments(self) -> None:
        """Take up the experiments that were running when the head last stopped."""
        for entry in list(self.registry.entries.values()):
            try:
                self._reload(entry)
            except Exception as exc:  # noqa: BLE001 - one bad folder, not all
                log.error(
                    "cannot reload experiment %s from %s: %s; continue it with "
                    "Tuner.restore(path, trainable)",
                    entry["experiment_id"],
                    entry["path"],
                    exc,
                )
                self.registry.remove(entry["experiment_id"])
        if self.experiments:
            self._reattach_deadline = time.monotonic() + self.heartbeat_timeout_s

    def _reload(self, entry: dict) -> None:
        from tune_head.restore import load_trials

        path = entry["path"]
        filesystem = (
            cloudpickle.loads(bytes.fromhex(entry["filesystem"]))
            if entry["filesystem"]
            else None
        )
        storage = self._storage_at(path, filesystem)
        storage.download_for_restore()
        with open(os.path.join(storage.local_root, es.SPEC_FILE), "rb") as f:
            spec_pickle = f.read()
        with open(os.path.join(storage.local_root, es.TRAINABLE_FILE), "rb") as f:
            self.objects.put_bytes(f.read())
        spec: ExperimentSpec = cloudpickle.loads(spec_pickle)
        state = es.read_state(storage.local_root)
        trials = load_trials(
            storage,
            state,
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
            keep_running=True,
        )
        controller = ExperimentController(
            state["experiment_id"],
            spec,
            path,
            trials=trials,
            searcher_state=es.read_searcher_state(storage.local_root),
        )
        exp = Experiment(state["experiment_id"], controller, storage, spec_pickle)
        self.experiments[exp.experiment_id] = exp
        self.objects.set_refs(exp.experiment_id, _object_refs(spec))
        for trial in trials:
            exp.events.extend(_replayed_events(storage, trial, len(exp.events)))
        running = sum(t.status is TrialStatus.RUNNING for t in trials)
        log.info(
            "experiment %s reloaded from %s; %d trials wait for their workers",
            spec.name,
            path,
            running,
        )

    def cluster_status(self) -> tune_pb2.ClusterStatus:
        with self.lock:
            return status.cluster_status(self)

    @property
    def is_closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """Persist every experiment's state; called on SIGTERM."""
        self._closed.set()
        with self.lock:
            for exp in self.experiments.values():
                exp.storage.flush_results()
                self._write_state(exp)
            self.changed.notify_all()


def _replayed_events(
    storage: es.ExperimentStorage, trial: Trial, sequence: int
) -> list[tune_pb2.ExperimentEvent]:
    """A reloaded trial's history: its record, results and checkpoints.

    A client that attaches after the restart sees what it missed; one that
    followed all along skips what it has seen (the events are marked).
    """
    local = os.path.join(storage.local_root, trial.dir_name)
    events = [tune_pb2.ExperimentEvent(trial_updated=messages.trial_info(trial))]
    for result in es.read_result_lines(local):
        metrics_json = json.dumps(result).encode()
        events.append(
            tune_pb2.ExperimentEvent(
                result=tune_pb2.TrialResult(
                    trial_id=trial.trial_id, metrics_json=metrics_json
                )
            )
        )
    for record in trial.checkpoints:
        events.append(
            tune_pb2.ExperimentEvent(
                checkpoint=tune_pb2.CheckpointPersisted(
                    trial_id=trial.trial_id,
                    dir_name=record.dir_name,
                    path=record.path,
                    training_iteration=record.training_iteration,
                    metrics_json=json.dumps(record.metrics).encode(),
                )
            )
        )
    for offset, event in enumerate(events, start=1):
        event.sequence = sequence + offset
        event.replayed = True
    return events


def _object_refs(spec: ExperimentSpec) -> list[str]:
    refs = [spec.trainable_object_id, *spec.object_ids]
    return refs + [spec.working_dir_object_id] if spec.working_dir_object_id else refs


def _format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
