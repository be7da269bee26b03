"""``MLflowLoggerCallback``: one MLflow run per trial, fed from the event stream.

The callback runs in the client process, so it talks to MLflow through an
explicit ``MlflowClient`` and run ids rather than mlflow's global "active run":
many trials run at once, and the global API can hold only one open run per
thread. Each trial's run is found again when the trial restarts, after a
failure or after ``Tuner.restore`` in a new process, so a trial keeps one run
with one continuous metric history.

Tracking trouble after setup (a server that went away, a rejected value) is
logged as a warning instead of raised: an exception here would stop the
client following the experiment, which costs far more than a gap in MLflow.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator
from numbers import Number
from typing import Any

try:
    from mlflow.entities import Metric, Param, ViewType
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"MLflowLoggerCallback needs mlflow, which could not be imported ({exc}). "
        "Install it with: pip install 'tune-cluster[mlflow]'"
    ) from exc

from tune_client import storage
from tune_client.callback import Callback
from tune_client.search.variants import flatten_dict

__all__ = ["MLflowLoggerCallback"]

log = logging.getLogger(__name__)

# MLflow's documented limits for one log_batch call and for keys and values.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
DEFAULT_EXPERIMENT_ID = "0"

TRIAL_ID_TAG = "trial_id"
TRIAL_NAME_TAG = "trial_name"
TRIAL_PATH_TAG = "trial_path"

# Characters MLflow accepts in metric and param names on every platform.
_BAD_KEY_CHARS = re.compile(r"[^\w./\- ]")
_RUN_STATUS = {"TERMINATED": "FINISHED", "ERROR": "FAILED"}


class MLflowLoggerCallback(Callback):
    """Log each trial's config as params and its results as metrics to MLflow.

    The arguments are Ray Tune's. ``tracking_uri`` defaults to mlflow's own
    default (``MLFLOW_TRACKING_URI``, else a local store). Without
    ``experiment_name`` the experiment comes from ``MLFLOW_EXPERIMENT_ID`` or
    ``MLFLOW_EXPERIMENT_NAME``, else mlflow's "Default" experiment; a named
    experiment is created when missing. ``tags`` go on every run, beside
    ``trial_name``. ``save_artifact=True`` uploads the trial's folder when the
    trial ends; ``log_params_on_trial_end=True`` logs the config then instead
    of at the start (useful when a trainable fills in its config as it runs).
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        registry_uri: str | None = None,
        experiment_name: str | None = None,
        tags: dict[str, Any] | None = None,
        tracking_token: str | None = None,
        save_artifact: bool = False,
        log_params_on_trial_end: bool = False,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        self.experiment_name = experiment_name
        self.tags = dict(tags or {})
        self.tracking_token = tracking_token
        self.should_save_artifact = save_artifact
        self.log_params_on_trial_end = log_params_on_trial_end
        self.client: MlflowClient | None = None
        self.experiment_id: str | None = None
        self._runs: dict[str, str] = {}  # trial id -> MLflow run id
        self._open: set[str] = set()  # trial ids whose run is still RUNNING
        self._warned: set[str] = set()

    # ---- setup --------------------------------------------------------------

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        """Connect and pick the experiment before any trial, so bad settings fail
        before anything is logged rather than as warnings mid-run."""
        if self.tracking_token:
            # mlflow's REST client reads the token only from the environment.
            os.environ["MLFLOW_TRACKING_TOKEN"] = self.tracking_token
        self.client = MlflowClient(
            tracking_uri=self.tracking_uri, registry_uri=self.registry_uri
        )
        self.experiment_id = self._resolve_experiment()

    def _resolve_experiment(self) -> str:
        """The argument wins; without it, as in Ray, ``MLFLOW_EXPERIMENT_ID``
        then ``MLFLOW_EXPERIMENT_NAME``, then mlflow's default experiment."""
        if self.experiment_name:
            return self._get_or_create(self.experiment_name)
        experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
        if experiment_id:
            return self._existing(experiment_id)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if name:
            return self._get_or_create(name)
        return DEFAULT_EXPERIMENT_ID

    def _existing(self, experiment_id: str) -> str:
        try:
            experiment = self.client.get_experiment(experiment_id)
        except MlflowException as exc:
            raise ValueError(
                f"MLFLOW_EXPERIMENT_ID={experiment_id!r} names no experiment at "
                f"{self.client.tracking_uri}: {exc.message}. Unset it or pass "
                "MLflowLoggerCallback(experiment_name=...)."
            ) from exc
        _check_active(experiment)
        return experiment.experiment_id

    def _get_or_create(self, name: str) -> str:
        """Get the experiment by name, creating it; another client creating it at
        the same moment is not an error."""
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return self.client.create_experiment(name)
            except MlflowException:
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    raise
        _check_active(experiment)
        return experiment.experiment_id

    # ---- hooks --------------------------------------------------------------

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info):
        with self._warn_on_failure("start its MLflow run", trial):
            self._start_run(trial)

    def on_trial_restore(self, iteration: int, trials: list, trial: Any, **info):
        """A trial restarted after a failure continues the run it already has."""
        with self._warn_on_failure("reopen its MLflow run", trial):
            self._start_run(trial)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info
    ):
        with self._warn_on_failure("log a result", trial):
            run_id = self._runs.get(trial.trial_id) or self._start_run(trial)
            step = int(result.get("training_iteration") or 0)
            metrics = result_metrics(result, step, int(time.time() * 1000))
            for chunk in _chunks(metrics, MAX_METRICS_PER_BATCH):
                self.client.log_batch(run_id, metrics=chunk)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        self._end_run(trial, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info):
        self._end_run(trial, "FAILED")

    def on_experiment_end(self, trials: list, **info):
        """Close runs whose trial never reported an end (stopped while the client
        was not told, or lost), so none is left RUNNING forever."""
        for trial in trials:
            if trial.trial_id in self._open:
                self._end_run(trial, _RUN_STATUS.get(trial.status, "KILLED"))

    # ---- runs ---------------------------------------------------------------

    def _start_run(self, trial: Any) -> str:
        """The trial's run, RUNNING: the one it had (in this process or, after
        ``Tuner.restore``, found by its tags), else a new one."""
        run_id = self._runs.get(trial.trial_id) or self._first_run(trial)
        if trial.trial_id not in self._open:
            self.client.update_run(run_id, status="RUNNING")
            self._open.add(trial.trial_id)
        return run_id

    def _first_run(self, trial: Any) -> str:
        """This process's first sight of the trial: find or create its run and
        log its params (logging the same values again is a no-op in MLflow)."""
        run_id = self._find_run(trial)
        if run_id is None:
            run_id = self._create_run(trial)
            self._open.add(trial.trial_id)
        self._runs[trial.trial_id] = run_id
        if not self.log_params_on_trial_end:
            self._log_params(run_id, trial)
        return run_id

    def _create_run(self, trial: Any) -> str:
        tags = {key: str(value) for key, value in self.tags.items()}
        tags.update(
            {
                TRIAL_NAME_TAG: str(trial.trial_name),
                TRIAL_ID_TAG: str(trial.trial_id),
                TRIAL_PATH_TAG: str(trial.path),
            }
        )
        run = self.client.create_run(
            self.experiment_id, run_name=str(trial.trial_name), tags=tags
        )
        return run.info.run_id

    def _find_run(self, trial: Any) -> str | None:
        """The run an earlier client made for this very trial (same id and same
        folder), if any: one small query the first time a trial is seen."""
        trial_id = str(trial.trial_id)
        if not re.fullmatch(r"[\w\-.]+", trial_id):
            return None
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.{TRIAL_ID_TAG} = '{trial_id}'",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=10,
        )
        for run in runs:
            if run.data.tags.get(TRIAL_PATH_TAG) == str(trial.path):
                return run.info.run_id
        return None

    def _log_params(self, run_id: str, trial: Any) -> None:
        params = config_params(trial.config)
        for chunk in _chunks(params, MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk)

    def _end_run(self, trial: Any, status: str) -> None:
        with self._warn_on_failure("end its MLflow run", trial):
            run_id = self._runs.get(trial.trial_id) or self._start_run(trial)
            if self.log_params_on_trial_end:
                self._log_params(run_id, trial)
            if self.should_save_artifact:
                self._save_artifacts(run_id, trial)
            self.client.set_terminated(run_id, status)
            self._open.discard(trial.trial_id)

    def _save_artifacts(self, run_id: str, trial: Any) -> None:
        """Upload the trial's folder; a folder in remote storage is copied down
        first, since MLflow uploads only from local disk."""
        path = str(trial.local_path or "")
        if not path:
            return
        if not storage.is_uri(path):
            local = storage.strip_file_scheme(path)
            if os.path.isdir(local):
                self.client.log_artifacts(run_id, local)
            return
        fs, fs_path = storage.get_filesystem(path)
        with tempfile.TemporaryDirectory() as tmp:
            fs.get(fs_path.rstrip("/") + "/", tmp, recursive=True)
            self.client.log_artifacts(run_id, tmp)

    @contextlib.contextmanager
    def _warn_on_failure(self, action: str, trial: Any) -> Iterator[None]:
        """Turn a tracking failure into one warning per trial (then debug lines),
        so an unreachable server does not flood the console or stop the run."""
        try:
            yield
        except (MlflowException, OSError) as exc:
            first = trial.trial_id not in self._warned
            self._warned.add(trial.trial_id)
            log.log(
                logging.WARNING if first else logging.DEBUG,
                "MLflow: could not %s for trial %s: %s",
                action,
                trial.trial_name,
                exc,
            )


# ---- conversions ------------------------------------------------------------


def result_metrics(result: dict, step: int, timestamp_ms: int) -> list[Metric]:
    """Every number in a result as an MLflow metric (nested dicts as ``a/b``).

    Strings, lists and ``config`` are not metrics; NaN is dropped because
    MLflow stores it inconsistently across backends; bools become 0/1.
    """
    metrics: dict[str, Metric] = {}
    flat = flatten_dict({k: v for k, v in result.items() if k != "config"})
    for key, value in flat.items():
        number = _as_number(value)
        name = _clean_key(key)
        if number is None or name is None or name in metrics:
            continue
        metrics[name] = Metric(name, number, timestamp_ms, step)
    return list(metrics.values())


def config_params(config: dict) -> list[Param]:
    """A trial's config as params: nested keys joined with "/", values as text
    cut to MLflow's length limit."""
    params: dict[str, Param] = {}
    for key, value in flatten_dict(config or {}).items():
        name = _clean_key(key)
        if name is None or name in params:
            continue
        params[name] = Param(name, str(value)[:MAX_PARAM_VALUE_LENGTH])
    return list(params.values())


def _as_number(value: Any) -> float | None:
    if not isinstance(value, Number):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return None if math.isnan(number) else number


def _clean_key(key: str) -> str | None:
    """A name MLflow accepts: odd characters become "_", and empty, "." or
    ".." path parts are dropped (MLflow rejects names that are not normal
    paths). Names too long for MLflow are skipped rather than cut, so two
    cut names cannot collide."""
    parts = _BAD_KEY_CHARS.sub("_", str(key)).split("/")
    name = "/".join(part for part in parts if part not in ("", ".", ".."))
    if not name or len(name) > MAX_KEY_LENGTH:
        return None
    return name


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_active(experiment: Any) -> None:
    if experiment.lifecycle_stage != "active":
        raise ValueError(
            f"MLflow experiment {experiment.name!r} is deleted; restore it "
            f"(mlflow experiments restore --experiment-id "
            f"{experiment.experiment_id}) or choose another experiment_name."
        )
