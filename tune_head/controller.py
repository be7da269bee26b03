"""The experiment controller: one experiment's decisions, with no I/O.

The head feeds it events (a trial started, a result arrived, a checkpoint became
whole, a trial ended, a worker was lost, the clock ticked) and drains the actions
it decides on (start or stop a trial, persist state, tell the watchers). Every
change to a trial's status happens here, with the reason logged.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tune_client import stopper as stoppers
from tune_client.experiment import ExperimentSpec
from tune_client.schedulers import FIFOScheduler, TrialScheduler
from tune_client.search import BasicVariantGenerator, Searcher
from tune_client.search.variants import format_config_for_name
from tune_head.trial import CheckpointRecord, Trial, TrialStatus

log = logging.getLogger(__name__)


@dataclass
class StopTrialAction:
    trial: Trial
    reason: str


@dataclass
class TrialChanged:
    """The trial's record changed: persist it and tell the watchers."""

    trial: Trial


@dataclass
class DeleteCheckpointAction:
    trial: Trial
    checkpoint: CheckpointRecord


@dataclass
class RewindResultsAction:
    """The trial restarts from an earlier iteration: drop the log past it."""

    trial: Trial
    iteration: int


@dataclass
class CloneCheckpointAction:
    """Copy ``source`` into the trial's folder as ``dir_name`` and restore from it."""

    trial: Trial
    source: CheckpointRecord
    dir_name: str


@dataclass
class SaveSearcherStateAction:
    """The searcher learned of a trial's end: persist ``searcher.get_state()``.

    Without it, a head that dies before its next trial is created would
    restore a searcher that still counts finished trials as live.
    """


Action = (
    StopTrialAction
    | TrialChanged
    | DeleteCheckpointAction
    | RewindResultsAction
    | CloneCheckpointAction
    | SaveSearcherStateAction
)


@dataclass
class TrialNamingInfo:
    """What trial_name_creator and trial_dirname_creator receive."""

    trial_id: str
    config: dict
    trainable_name: str
    experiment_tag: str

    def __str__(self) -> str:
        return f"{self.trainable_name}_{self.trial_id}"


class ExperimentController:
    """Creates trials from the searcher and decides what happens to them."""

    def __init__(
        self,
        experiment_id: str,
        spec: ExperimentSpec,
        experiment_path: str,
        trials: list[Trial] | None = None,
        searcher_state: dict | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.experiment_id = experiment_id
        self.spec = spec
        self.experiment_path = experiment_path
        self.clock = clock
        self.started_at = clock()
        self.trials: dict[str, Trial] = {t.trial_id: t for t in trials or []}
        self.actions: list[Action] = []
        self.stop_reason = ""
        self.interrupting = False
        self.error = ""
        self.searcher_finished = False
        tune_config = spec.tune_config
        self.metric, self.mode = tune_config.metric, tune_config.mode
        self.searcher = self._make_searcher(searcher_state)
        self.scheduler: TrialScheduler = tune_config.scheduler or FIFOScheduler()
        self.scheduler.set_search_properties(self.metric, self.mode)
        self.failure_config = spec.run_config.failure_config
        self.checkpoint_config = spec.run_config.checkpoint_config
        stop = spec.run_config.stop
        self.stopper = stoppers.as_stopper(stop)
        self.stop_criteria: Mapping = stop if isinstance(stop, Mapping) else {}
        # Whether anything here looks at each result; if not, results are
        # kept as their JSON and parsed only when asked for.
        self.reads_every_result = (
            self.stopper is not None
            or bool(self.stop_criteria)
            or type(self.scheduler).on_trial_result
            is not TrialScheduler.on_trial_result
            or type(self.searcher).on_trial_result is not Searcher.on_trial_result
        )
        self._warned_once: set[str] = set()
        self.date_tag = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime())

    def _make_searcher(self, state: dict | None) -> Searcher:
        tune_config = self.spec.tune_config
        searcher = tune_config.search_alg or BasicVariantGenerator()
        searcher.set_search_properties(
            self.metric,
            self.mode,
            self.spec.param_space,
            num_samples=tune_config.num_samples,
        )
        if state is not None:
            searcher.set_state(state)
            self._reconcile_searcher(searcher)
        return searcher

    def _reconcile_searcher(self, searcher: Searcher) -> None:
        """Complete, in the searcher, trials that ended after its state was saved.

        The state is saved when a trial is created, so a trial that finished
        later may still hold a ConcurrencyLimiter or ``max_concurrent`` slot,
        and its result may never have reached the searcher. Only searchers
        that say which trials they hold live (``live_trials``) are told, so
        none hears of a trial's end twice.
        """
        live = getattr(searcher, "live_trials", None)
        if live is None:
            return
        ended = [
            t
            for t in self.trials.values()
            if t.status.is_finished and t.trial_id in live
        ]
        for trial in ended:
            if trial.status is TrialStatus.ERROR:
                searcher.on_trial_complete(trial.trial_id, None, error=True)
            else:
                searcher.on_trial_complete(trial.trial_id, trial.last_result)
        if ended:
            log.info(
                "experiment %s: the restored searcher learned of %d trials that "
                "ended after its state was saved",
                self.spec.name,
                len(ended),
            )
            self.actions.append(SaveSearcherStateAction())

    # ---- trial creation -------------------------------------------------

    @property
    def stopping(self) -> bool:
        return bool(self.stop_reason)

    def running_count(self) -> int:
        return sum(t.status is TrialStatus.RUNNING for t in self.trials.values())

    def next_trial_to_start(self) -> Trial | None:
        """A pending trial to place, creating one from the searcher if needed."""
        if self.stopping:
            return None
        limit = self.spec.tune_config.max_concurrent_trials
        if limit is not None and self.running_count() >= limit:
            return None
        for trial in self.trials.values():
            if trial.status is TrialStatus.PENDING:
                return trial
        return self._create_trial()

    def _create_trial(self) -> Trial | None:
        if self.searcher_finished:
            return None
        index = len(self.trials)
        trial_id = f"{self.experiment_id[:5]}_{index:05d}"
        config = self.searcher.suggest(trial_id)
        if config == Searcher.FINISHED:
            self.searcher_finished = True
            return None
        if config is None:
            return None
        trial = self._new_trial(trial_id, index, config)
        self.trials[trial_id] = trial
        self.scheduler.on_trial_add(self, trial)
        self.actions.append(TrialChanged(trial))
        return trial

    def _new_trial(self, trial_id: str, index: int, config: dict) -> Trial:
        tune_config = self.spec.tune_config
        naming = TrialNamingInfo(
            trial_id, config, self.spec.trainable_name, format_config_for_name(config)
        )
        name = (
            tune_config.trial_name_creator(naming)
            if tune_config.trial_name_creator
            else str(naming)
        )
        if tune_config.trial_dirname_creator:
            dir_name = tune_config.trial_dirname_creator(naming)
        else:
            tag = f"_{naming.experiment_tag}" if naming.experiment_tag else ""
            dir_name = f"{name}_{index}{tag}"[:120] + f"_{self.date_tag}"
        return Trial(
            trial_id=trial_id,
            trial_name=name,
            dir_name=dir_name,
            path=f"{self.experiment_path.rstrip('/')}/{dir_name}",
            config=config,
            resources=dict(self.spec.resources),
        )

    # ---- events ---------------------------------------------------------

    def on_trial_started(self, trial: Trial, worker_id: str) -> None:
        """The trial runs again from its latest checkpoint (or from the start).

        Training rewinds to that checkpoint, so the results logged after it are
        dropped and logged anew: each iteration appears once, as last computed.
        """
        trial.status = TrialStatus.RUNNING
        trial.worker_id = worker_id
        trial.runs += 1
        start_point = trial.restore_point
        restart_at = start_point.training_iteration if start_point else 0
        if trial.last_iteration > restart_at:
            trial.last_iteration = restart_at
            self.actions.append(RewindResultsAction(trial, restart_at))
        self.actions.append(TrialChanged(trial))

    def on_result(self, trial: Trial, iteration: int, result_json: bytes) -> bool:
        """Take one result; False when it repeats an iteration already logged.

        The JSON is parsed here only when a stopper, the stop criteria, the
        scheduler or the searcher reads every result.
        """
        if iteration <= trial.last_iteration:
            return False
        trial.last_iteration = iteration
        trial.set_last_result_json(result_json)
        if trial.status is not TrialStatus.RUNNING or not self.reads_every_result:
            return True
        result = trial.last_result
        self.searcher.on_trial_result(trial.trial_id, result)
        reason = self._stop_reason_for(trial, result)
        if reason:
            self.actions.append(StopTrialAction(trial, reason))
        self._ask_stop_all()
        return True

    def _stop_reason_for(self, trial: Trial, result: dict) -> str:
        if self.stopper is not None and self.stopper(trial.trial_id, result):
            if isinstance(self.stopper, stoppers.FunctionStopper):
                return "the stop function returned True"
            return f"stopped by {describe(self.stopper)}"
        reason = self._stop_criteria_reason(trial, result)
        if reason:
            return reason
        decision = self.scheduler.on_trial_result(self, trial, result)
        if decision == TrialScheduler.STOP:
            return f"stopped early by {type(self.scheduler).__name__}"
        return ""

    def _stop_criteria_reason(self, trial: Trial, result: dict) -> str:
        """The stop dict's verdict; keys the result lacks are skipped, as in Ray.

        The trial runs on, and the head log says once which keys the result
        does have (the client warns the user the same way).
        """
        if not self.stop_criteria:
            return ""
        reason, missing = stoppers.stop_criteria_reason(self.stop_criteria, result)
        if missing and "stop" not in self._warned_once:
            self._warned_once.add("stop")
            log.warning(
                "experiment %s, trial %s: %s",
                self.spec.name,
                trial.trial_name,
                stoppers.missing_stop_keys_message(missing, result),
            )
        return reason

    def _ask_stop_all(self) -> None:
        """Stop the experiment when the Stopper says so.

        A Stopper that raises fails the experiment with its message, as a
        searcher or scheduler does.
        """
        if self.stopper is None or self.stopping:
            return
        try:
            done = self.stopper.stop_all()
        except Exception as exc:  # noqa: BLE001 - the user's code; reported
            log.error("%s.stop_all() raised", describe(self.stopper), exc_info=exc)
            self.fail(f"{describe(self.stopper)}.stop_all() raised {exc!r}")
            return
        if done:
            self.stop(f"{describe(self.stopper)}.stop_all() returned True")

    def on_checkpoint(self, trial: Trial, record: CheckpointRecord) -> None:
        trial.checkpoints.append(record)
        if not trial.restart_pending:
            trial.restore_from = None  # the new run has checkpointed past it
        number = record.dir_name[len("checkpoint_") :]
        if number.isdigit():
            index = int(number) + 1
            trial.next_checkpoint_index = max(trial.next_checkpoint_index, index)
        self._enforce_num_to_keep(trial)
        self.actions.append(TrialChanged(trial))

    def _enforce_num_to_keep(self, trial: Trial) -> None:
        """Keep the ``num_to_keep`` best checkpoints, and always the latest.

        As in Ray Tune: the best by ``checkpoint_score_attribute``, or the
        most recent without one; the latest stays even when it is not among
        the best, so up to ``num_to_keep + 1`` remain. A checkpoint that the
        trial's next run restores from stays too.
        """
        keep = self.checkpoint_config.num_to_keep
        if keep is None or len(trial.checkpoints) <= keep:
            return
        ranked = sorted(
            range(len(trial.checkpoints)),
            key=lambda i: self._checkpoint_rank(trial, i),
        )
        kept = {id(trial.checkpoints[i]) for i in ranked[-keep:]}
        kept.add(id(trial.checkpoints[-1]))
        if trial.restore_from is not None:
            kept.add(id(trial.restore_from))
        for record in [c for c in trial.checkpoints if id(c) not in kept]:
            trial.checkpoints.remove(record)
            self.actions.append(DeleteCheckpointAction(trial, record))

    def _checkpoint_rank(self, trial: Trial, index: int) -> tuple:
        """A sort key, worst first; among equals the older checkpoint is worse.

        Without a score attribute only recency counts. With one, as in Ray
        Tune, a checkpoint whose metrics lack it (or hold no number) ranks
        below every scored one, and NaN lowest of all.
        """
        attribute = self.checkpoint_config.checkpoint_score_attribute
        if not attribute:
            return (index,)
        record = trial.checkpoints[index]
        value = stoppers.find_metric(record.metrics, attribute)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return (0, 0.0, index)  # NaN is stored as null
        if not isinstance(value, numbers.Real):
            self._warn_unscored(trial, record, value)
            return (1, 0.0, index)
        sign = 1.0 if self.checkpoint_config.checkpoint_score_order == "max" else -1.0
        return (2, sign * float(value), index)

    def _warn_unscored(self, trial: Trial, record: CheckpointRecord, value) -> None:
        if "score" in self._warned_once:
            return
        self._warned_once.add("score")
        attribute = self.checkpoint_config.checkpoint_score_attribute
        found = (
            "does not report it"
            if stoppers.is_missing(value)
            else f"holds {value!r} under it, not a number"
        )
        log.error(
            "experiment %s: CheckpointConfig(checkpoint_score_attribute=%r), but "
            "%s of trial %s %s; it has %s. Such checkpoints rank below every "
            "scored one, so num_to_keep deletes them first; report the attribute "
            "with every checkpoint, or name one of those keys.",
            self.spec.name,
            attribute,
            record.dir_name,
            trial.trial_name,
            found,
            sorted(stoppers.flat_keys(record.metrics)),
        )

    def on_trial_ended(self, trial: Trial, outcome: str, error: str) -> None:
        """``outcome`` is "finished", "stopped", "interrupted" or "errored"."""
        if trial.status is not TrialStatus.RUNNING:
            return
        trial.worker_id = ""
        if outcome == "errored":
            self._on_trial_failed(trial, error)
        elif outcome == "stopped" and trial.restart_pending:
            trial.restart_pending = False
            trial.status = TrialStatus.PENDING
        elif outcome == "stopped" and self.interrupting:
            trial.status = TrialStatus.PENDING
            log.info("trial %s interrupted: %s", trial.trial_name, self.stop_reason)
        elif outcome == "interrupted":
            trial.status = TrialStatus.PENDING
            log.info(
                "trial %s interrupted by its worker shutting down; it will run again",
                trial.trial_name,
            )
        else:
            trial.status = TrialStatus.TERMINATED
            log.info("trial %s finished (%s)", trial.trial_name, outcome)
            self.searcher.on_trial_complete(trial.trial_id, trial.last_result)
            self.actions.append(SaveSearcherStateAction())
            self.scheduler.on_trial_complete(self, trial, trial.last_result)
        self.actions.append(TrialChanged(trial))

    def _on_trial_failed(self, trial: Trial, error: str) -> None:
        trial.num_failures += 1
        max_failures = self.failure_config.max_failures
        retry = max_failures < 0 or trial.num_failures <= max_failures
        if retry and not self.stopping:
            trial.status = TrialStatus.PENDING
            where = trial.latest_checkpoint
            log.info(
                "trial %s failed: %s (failure %d of at most %s); restarting from %s",
                trial.trial_name,
                _last_line(error),
                trial.num_failures,
                "unlimited" if max_failures < 0 else max_failures,
                where.dir_name if where else "the start",
            )
            return
        trial.status = TrialStatus.ERROR
        trial.error = error
        log.info("trial %s errored: %s", trial.trial_name, _last_line(error))
        self.searcher.on_trial_complete(trial.trial_id, None, error=True)
        self.actions.append(SaveSearcherStateAction())
        self.scheduler.on_trial_error(self, trial)
        if self.failure_config.fail_fast:
            self.stop(f"trial {trial.trial_name} failed and fail_fast is set")

    def exploit(self, trial: Trial, source: Trial, new_config: dict) -> bool:
        """Restart ``trial`` from ``source``'s latest checkpoint with ``new_config``.

        The checkpoint is copied into the trial's own folder first, so the
        source may delete its copy; the trial keeps its iteration count.
        """
        donor = source.latest_checkpoint
        if trial.status is not TrialStatus.RUNNING or donor is None:
            return False
        if trial.restart_pending:
            return False
        # The running process numbers its own checkpoints; a distinct name
        # cannot collide with one it is still writing.
        dir_name = f"{donor.dir_name}_of_{source.trial_id}"
        clone = CheckpointRecord(
            dir_name,
            f"{trial.path}/{dir_name}",
            trial.last_iteration,
            dict(donor.metrics, training_iteration=trial.last_iteration),
        )
        trial.config = new_config
        trial.restart_pending = True
        trial.restore_from = clone
        trial.checkpoints.append(clone)
        log.info(
            "trial %s takes the checkpoint and config of %s",
            trial.trial_name,
            source.trial_name,
        )
        self.actions.append(CloneCheckpointAction(trial, donor, dir_name))
        self.actions.append(
            StopTrialAction(trial, f"restarting from {source.trial_name}'s checkpoint")
        )
        return True

    def on_worker_lost(self, worker_id: str) -> None:
        for trial in self.trials.values():
            if trial.status is TrialStatus.RUNNING and trial.worker_id == worker_id:
                self.on_trial_ended(
                    trial, "errored", f"the worker {worker_id} running it was lost"
                )

    def on_tick(self) -> None:
        budget = self.spec.tune_config.time_budget_s
        if budget and not self.stopping and self.clock() - self.started_at > budget:
            self.stop(f"the time budget of {budget:g} s ran out")
        self._ask_stop_all()

    def fail(self, error: str) -> None:
        """End the experiment because its searcher or scheduler cannot go on."""
        self.error = self.error or error
        self.stop(f"the experiment failed: {error}")

    def stop(self, reason: str, *, interrupt: bool = False) -> None:
        """Stop every trial; the experiment ends when none is running.

        Trials that never started stay pending, so Tuner.restore runs them;
        with ``interrupt`` (a person stopped the experiment) the running trials
        do too, resuming from their latest checkpoints.
        """
        if self.stopping:
            return
        self.stop_reason = reason
        self.interrupting = interrupt
        log.info("stopping experiment %s: %s", self.spec.name, reason)
        for trial in self.trials.values():
            if trial.status is TrialStatus.RUNNING:
                self.actions.append(StopTrialAction(trial, reason))

    # ---- queries --------------------------------------------------------

    def is_finished(self) -> bool:
        if self.stopping:
            return self.running_count() == 0
        if any(not t.status.is_finished for t in self.trials.values()):
            return False
        return self.searcher_finished

    def take_actions(self) -> list[Action]:
        actions, self.actions = self.actions, []
        return actions

    def counts_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for trial in self.trials.values():
            counts[trial.status.value] = counts.get(trial.status.value, 0) + 1
        return counts


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def describe(obj: Any) -> str:
    return type(obj).__name__
