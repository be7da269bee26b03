"""Following a running experiment: the client's view of its trials.

``ExperimentRun`` reads the head's event stream, keeps a ``TrialView`` per
trial, calls the user's callbacks on status changes and results, and rides
out reconnects, including to a restarted head (a new epoch: events are read
again from the start, and hooks fire only on changes, so none fires twice).

Each batch of events the client handles is one step, as Ray Tune's callbacks
know it: ``on_step_begin``, the hooks of the batch's events, ``on_step_end``,
all with the step number as ``iteration``; ``on_experiment_end`` comes last.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import cloudpickle
import grpc

from proto.generated import tune_pb2
from tune_client import cluster
from tune_client.checkpoint import Checkpoint
from tune_client.errors import TrialError
from tune_client.result_grid import Result
from tune_client.stopper import missing_stop_keys_message, stop_criteria_reason
from tune_client.trial_output import STDERR, OutputLines

log = logging.getLogger(__name__)

_STATUS_NAMES = {v: k for k, v in tune_pb2.TrialStatus.items()}


class TrialView:
    """The client's picture of one trial, handed to callbacks."""

    def __init__(self, info: tune_pb2.TrialInfo) -> None:
        self.trial_id = info.trial_id
        self.last_result: dict = {}
        self.update(info)

    def update(self, info: tune_pb2.TrialInfo) -> None:
        self.trial_name = info.trial_name
        self.status = _STATUS_NAMES[info.status]
        self.config = (
            cloudpickle.loads(info.config_pickle) if info.config_pickle else {}
        )
        self.path = info.path
        self.error = info.error
        self.num_failures = info.num_failures
        self.storage_error = info.storage_error
        self.checkpoints = list(info.checkpoints)
        if info.last_result_json:
            self.last_result = json.loads(info.last_result_json)

    @property
    def local_path(self) -> str:
        return self.path

    logdir = local_path

    @property
    def checkpoint(self) -> Checkpoint | None:
        return Checkpoint(self.checkpoints[-1].path) if self.checkpoints else None

    def __str__(self) -> str:
        return self.trial_name

    def __repr__(self) -> str:
        return f"TrialView({self.trial_name}, {self.status})"


class ExperimentRun:
    """Follows one experiment's events: callbacks, progress and the final grid."""

    def __init__(
        self,
        client,
        experiment_id: str,
        callbacks,
        reporter,
        stop=None,
        show_output: bool = True,
    ) -> None:
        """``stop`` is ``RunConfig.stop``: a dict's keys are checked in results.
        ``show_output``: print what trials write, as ``(trial name) line``."""
        self.client = client
        self.experiment_id = experiment_id
        self.callbacks = callbacks
        self.reporter = reporter
        self.stop_criteria = stop if isinstance(stop, dict) else {}
        self.trials: dict[str, TrialView] = {}
        self.sequence = 0
        self.head_epoch = ""
        self.iteration = 0
        self.ended: tune_pb2.ExperimentEnded | None = None
        # What reached the callbacks, so a restarted head's replay of its
        # history hands them only what they have not seen.
        self._delivered_iteration: dict[str, int] = {}
        self._delivered_checkpoints: set[tuple[str, str]] = set()
        self.output = OutputLines() if show_output else None

    def follow(self) -> tune_pb2.ExperimentEnded:
        """Handle events until the experiment ends, riding out reconnects."""
        delay = 0.1
        while self.ended is None:
            try:
                watched = self.client.watch(
                    self.experiment_id, self.sequence, self.head_epoch
                )
                for batch in watched:
                    self.head_epoch = batch.head_epoch
                    self._handle_step(batch.events)
                    self.reporter.maybe_report(list(self.trials.values()))
                    delay = 0.1
            except grpc.RpcError as exc:
                if self.client.embedded is not None:
                    self.client.embedded.check_alive()
                if exc.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.CANCELLED,
                    grpc.StatusCode.INTERNAL,
                ):
                    raise cluster.map_rpc_error(
                        exc, "following the experiment"
                    ) from exc
                log.warning("lost the head (%s); reconnecting", exc.code().name)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        return self.ended

    def _handle_step(self, events) -> None:
        """One batch of events, between on_step_begin and on_step_end."""
        self._call("on_step_begin")
        for event in events:
            self._handle(event)
        self.iteration += 1
        self._call("on_step_end")
        if self.ended is not None:
            self._call_end()

    def _handle(self, event: tune_pb2.ExperimentEvent) -> None:
        self.sequence = event.sequence
        kind = event.WhichOneof("kind")
        if kind == "result":
            self._on_result(event.result, event.replayed)
        elif kind == "trial_updated":
            self._on_trial_updated(event.trial_updated)
        elif kind == "checkpoint":
            self._on_checkpoint(event.checkpoint)
        elif kind == "output":
            self._on_output(event.output)
        elif kind == "experiment_ended":
            self.ended = event.experiment_ended
            for info in self.ended.trials:
                self._view(info)
                self._finish_output(info.trial_id)

    def _view(self, info: tune_pb2.TrialInfo) -> TrialView:
        trial = self.trials.get(info.trial_id)
        if trial is None:
            trial = self.trials[info.trial_id] = TrialView(info)
        else:
            trial.update(info)
        return trial

    def _on_result(self, message: tune_pb2.TrialResult, replayed: bool) -> None:
        trial = self.trials.get(message.trial_id)
        if trial is None:
            return
        result = json.loads(message.metrics_json)
        iteration = int(result.get("training_iteration", 0))
        delivered = self._delivered_iteration.get(trial.trial_id, 0)
        if replayed and iteration <= delivered:
            return
        self._delivered_iteration[trial.trial_id] = iteration
        trial.last_result = result
        self._check_stop_keys(result)
        if self.callbacks:
            trial.last_result.setdefault("config", trial.config)
            self._call("on_trial_result", trial=trial, result=trial.last_result)

    def _on_output(self, message: tune_pb2.TrialOutput) -> None:
        trial = self.trials.get(message.trial_id)
        if self.output is None or trial is None:
            return
        text = self.output.take(
            trial.trial_id, trial.trial_name, message.stream, message.data
        )
        _print_output(message.stream, text)

    def _finish_output(self, trial_id: str) -> None:
        """Print the unfinished last line of an ended trial's output."""
        trial = self.trials.get(trial_id)
        if self.output is None or trial is None:
            return
        for stream, text in self.output.finish(trial_id, trial.trial_name):
            _print_output(stream, text)

    def _on_checkpoint(self, message: tune_pb2.CheckpointPersisted) -> None:
        trial = self.trials.get(message.trial_id)
        key = (message.trial_id, message.dir_name)
        if trial is None or key in self._delivered_checkpoints:
            return
        self._delivered_checkpoints.add(key)
        if all(c.dir_name != message.dir_name for c in trial.checkpoints):
            trial.checkpoints.append(message)
        self._call("on_checkpoint", trial=trial, checkpoint=trial.checkpoint)
        self._call("on_trial_save", trial=trial)

    def _check_stop_keys(self, result: dict) -> None:
        """Warn once, as Ray Tune does, when results lack a key of the stop dict.

        The trial runs on (a metric may appear only in later results); the
        warning lists the keys results do have, so a misspelling shows.
        """
        if not self.stop_criteria:
            return
        missing = stop_criteria_reason(self.stop_criteria, result)[1]
        if missing:
            log.warning("%s", missing_stop_keys_message(missing, result))
            self.stop_criteria = {}

    def _on_trial_updated(self, info: tune_pb2.TrialInfo) -> None:
        """Hooks for a status change; on_trial_recover only after a failure.

        A trial goes back to pending also when PBT restarts it from another
        trial's checkpoint or a person stops the experiment; only a failure
        counts up ``num_failures``.
        """
        before = self.trials.get(info.trial_id)
        old_status = before.status if before else None
        old_failures = before.num_failures if before else 0
        old_storage_error = before.storage_error if before else ""
        trial = self._view(info)
        if trial.storage_error and trial.storage_error != old_storage_error:
            log.warning(
                "trial %s: %s. The trial goes on; what it stored before is kept.",
                trial.trial_name,
                trial.storage_error,
            )
        if trial.status == old_status:
            return
        if old_status == "RUNNING":
            self._finish_output(trial.trial_id)
        if trial.status == "RUNNING":
            hook = "on_trial_restore" if trial.num_failures else "on_trial_start"
            self._call(hook, trial=trial)
        elif trial.status == "TERMINATED" and old_status == "RUNNING":
            self._call("on_trial_complete", trial=trial)
        elif trial.status == "ERROR":
            self._call("on_trial_error", trial=trial)
        elif trial.status == "PENDING" and trial.num_failures > old_failures:
            self._call("on_trial_recover", trial=trial)

    def _call(self, hook: str, **kwargs) -> None:
        trials = list(self.trials.values())
        for callback in self.callbacks:
            getattr(callback, hook)(iteration=self.iteration, trials=trials, **kwargs)

    def _call_end(self) -> None:
        trials = list(self.trials.values())
        for callback in self.callbacks:
            callback.on_experiment_end(trials=trials)


def _print_output(stream: int, text: str) -> None:
    if text:
        out = sys.stderr if stream == STDERR else sys.stdout
        out.write(text)
        out.flush()


def result_from_info(info: tune_pb2.TrialInfo, filesystem=None) -> Result:
    """``filesystem`` is the run's ``storage_filesystem``, which holds its paths."""
    checkpoints = [
        (Checkpoint(c.path, filesystem), json.loads(c.metrics_json or b"{}"))
        for c in info.checkpoints
    ]
    return Result(
        metrics=json.loads(info.last_result_json) if info.last_result_json else {},
        config=cloudpickle.loads(info.config_pickle) if info.config_pickle else {},
        checkpoint=checkpoints[-1][0] if checkpoints else None,
        error=TrialError(info.error, trial_id=info.trial_id) if info.error else None,
        path=info.path,
        best_checkpoints=checkpoints,
        filesystem=filesystem,
    )
