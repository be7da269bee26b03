"""``Tuner``: submit an experiment, follow it, and hand back a ``ResultGrid``.

``fit()`` checks everything it can in this process first (the trainable and
its objects pickle, the param space is well formed, storage is writable), so
bad input fails before any trial starts. It then uploads the objects, submits
the experiment to the head and follows its event stream, running callbacks
and printing progress, until the experiment ends.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

import cloudpickle
import grpc

from proto.generated import tune_pb2
from tune_client import cluster, large_inputs, object_codec, storage
from tune_client.checkpoint import Checkpoint
from tune_client.config import RunConfig, TuneConfig
from tune_client.errors import (
    ClusterError,
    RestoreError,
    TrialError,
    TuneConfigError,
    TuneError,
)
from tune_client.experiment import ExperimentSpec
from tune_client.progress import ProgressReporter
from tune_client.result_grid import Result, ResultGrid
from tune_client.search.variants import flatten_dict, validate_param_space
from tune_client.trainable import (
    WrappedTrainable,
    _unwrap,
    pickle_trainable,
    trial_resources,
)

log = logging.getLogger(__name__)

STATE_FILE = "experiment_state.json"
SPEC_FILE = "experiment.pkl"
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

    def __init__(self, client, experiment_id: str, callbacks, reporter) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.callbacks = callbacks
        self.reporter = reporter
        self.trials: dict[str, TrialView] = {}
        self.sequence = 0
        self.head_epoch = ""
        self.iteration = 0
        self.ended: tune_pb2.ExperimentEnded | None = None

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
                    for event in batch.events:
                        self._handle(event)
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

    def _handle(self, event: tune_pb2.ExperimentEvent) -> None:
        self.sequence = event.sequence
        self.iteration += 1
        kind = event.WhichOneof("kind")
        if kind == "result":
            self._on_result(event.result)
        elif kind == "trial_updated":
            self._on_trial_updated(event.trial_updated)
        elif kind == "checkpoint":
            trial = self.trials.get(event.checkpoint.trial_id)
            if trial is not None:
                trial.checkpoints.append(event.checkpoint)
                self._call("on_checkpoint", trial=trial, checkpoint=trial.checkpoint)
        elif kind == "experiment_ended":
            self.ended = event.experiment_ended
            for info in self.ended.trials:
                self._view(info)
            self._call_end()

    def _view(self, info: tune_pb2.TrialInfo) -> TrialView:
        trial = self.trials.get(info.trial_id)
        if trial is None:
            trial = self.trials[info.trial_id] = TrialView(info)
        else:
            trial.update(info)
        return trial

    def _on_result(self, message: tune_pb2.TrialResult) -> None:
        trial = self.trials.get(message.trial_id)
        if trial is None:
            return
        trial.last_result = json.loads(message.metrics_json)
        if self.callbacks:
            trial.last_result.setdefault("config", trial.config)
            self._call("on_trial_result", trial=trial, result=trial.last_result)

    def _on_trial_updated(self, info: tune_pb2.TrialInfo) -> None:
        before = self.trials.get(info.trial_id)
        old_status = before.status if before else None
        trial = self._view(info)
        if trial.status == old_status:
            return
        if trial.status == "RUNNING":
            hook = "on_trial_restore" if trial.num_failures else "on_trial_start"
            self._call(hook, trial=trial)
        elif trial.status == "TERMINATED" and old_status == "RUNNING":
            self._call("on_trial_complete", trial=trial)
        elif trial.status == "ERROR":
            self._call("on_trial_error", trial=trial)
        elif trial.status == "PENDING" and old_status == "RUNNING":
            self._call("on_trial_recover", trial=trial)

    def _call(self, hook: str, **kwargs) -> None:
        trials = list(self.trials.values())
        for callback in self.callbacks:
            getattr(callback, hook)(iteration=self.iteration, trials=trials, **kwargs)

    def _call_end(self) -> None:
        trials = list(self.trials.values())
        for callback in self.callbacks:
            callback.on_experiment_end(trials=trials)


def _result_from_info(info: tune_pb2.TrialInfo) -> Result:
    checkpoints = [
        (Checkpoint(c.path), json.loads(c.metrics_json or b"{}"))
        for c in info.checkpoints
    ]
    return Result(
        metrics=json.loads(info.last_result_json) if info.last_result_json else {},
        config=cloudpickle.loads(info.config_pickle) if info.config_pickle else {},
        checkpoint=checkpoints[-1][0] if checkpoints else None,
        error=TrialError(info.error, trial_id=info.trial_id) if info.error else None,
        path=info.path,
        best_checkpoints=checkpoints,
    )


def _register_user_module(fn: Any) -> None:
    """Ship the trainable's own module by value when workers may not import it.

    A module the workers can import travels by reference, which keeps file
    names and source lines in trial tracebacks.
    """
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    path = getattr(module, "__file__", None) or ""
    if module is None or module.__name__ == "__main__" or not path:
        return
    if cluster.workers_can_import(module.__name__, os.path.abspath(path)):
        return
    if "site-packages" in path or path.startswith(sys.base_prefix):
        return
    if module.__name__.split(".")[0] in ("tune_client", "tune_head", "tune_worker"):
        return
    cloudpickle.register_pickle_by_value(module)


class Tuner:
    """Runs a trainable over a param space; Ray Tune's ``Tuner``."""

    def __init__(
        self,
        trainable: Any = None,
        *,
        param_space: dict | None = None,
        tune_config: TuneConfig | None = None,
        run_config: RunConfig | None = None,
        _restore: dict | None = None,
    ) -> None:
        self.trainable = _unwrap(trainable)
        self.param_space = dict(param_space or {})
        self.tune_config = tune_config or TuneConfig()
        self.run_config = run_config or RunConfig()
        self._restore = _restore
        self._results: ResultGrid | None = None
        validate_param_space(self.param_space)
        _check_checkpoint_config(self.run_config.checkpoint_config)

    # ---- restore ----------------------------------------------------------

    @classmethod
    def restore(
        cls,
        path: str,
        trainable: Any,
        *,
        resume_unfinished: bool = True,
        resume_errored: bool = False,
        restart_errored: bool = False,
        param_space: dict | None = None,
        **_ignored: Any,
    ) -> Tuner:
        """Continue an experiment from its folder: finished trials stay finished,
        unfinished ones resume from their latest checkpoint."""
        path = storage.normalize_local(os.fspath(path))
        spec = _read_spec(path)
        run_config = spec.run_config
        run_config.callbacks = _restored_callbacks(spec)
        run_config.storage_path = os.path.dirname(path.rstrip("/"))
        run_config.name = os.path.basename(path.rstrip("/"))
        return cls(
            trainable,
            param_space=param_space if param_space is not None else spec.param_space,
            tune_config=spec.tune_config,
            run_config=run_config,
            _restore={
                "resume_unfinished": resume_unfinished,
                "resume_errored": resume_errored,
                "restart_errored": restart_errored,
                "path": path,
            },
        )

    @classmethod
    def can_restore(cls, path: str) -> bool:
        """True when ``path`` holds an experiment that ``restore`` can continue."""
        path = storage.normalize_local(os.fspath(path))
        if storage.is_uri(path):
            fs, fs_path = storage.get_filesystem(path)
            return fs.exists(f"{fs_path.rstrip('/')}/{STATE_FILE}")
        return os.path.isfile(os.path.join(path, STATE_FILE))

    # ---- running ------------------------------------------------------------

    def fit(self) -> ResultGrid:
        """Run the experiment to its end and return every trial's result."""
        reporter = self._reporter()
        spec, objects, trainable_bytes = self._prepare()
        client = cluster.get_client()
        storage_path = client.default_storage_path(self.run_config.storage_path)
        filesystem = self.run_config.storage_filesystem
        if storage_path and (storage.is_uri(storage_path) or filesystem is not None):
            storage.check_writable(storage_path, filesystem)
        elif storage_path:
            storage.check_writable(storage_path)
        spec.run_config.storage_path = storage_path
        for ref_name, encoded in objects.items():
            client.put_object(encoded)
            encoded.discard()
            log.debug("object %s uploaded", ref_name)
        client.put_object(trainable_bytes, spec.trainable_object_id)
        working_dir = cluster.working_dir()
        if working_dir:
            spec.working_dir_object_id = client.put_object(
                _zip_folder(working_dir)
            ).object_id
        _check_objects_present(client, spec)
        callbacks = self._callbacks(spec)  # a failing setup stops us before trials
        reply = client.submit(self._submit_request(spec, storage_path))
        run = ExperimentRun(client, reply.experiment_id, callbacks, reporter)
        ended = self._follow(client, run, reply)
        run.reporter.final(list(run.trials.values()), ended.experiment_path)
        if ended.error:
            raise TuneError(
                f"experiment {reply.name} failed: {ended.error}. Its trials so far "
                f"are in {ended.experiment_path}."
            )
        self._results = ResultGrid(
            [_result_from_info(info) for info in ended.trials],
            ended.experiment_path,
            default_metric=self.tune_config.metric,
            default_mode=self.tune_config.mode,
        )
        return self._results

    def _follow(self, client, run: ExperimentRun, reply) -> tune_pb2.ExperimentEnded:
        try:
            return run.follow()
        except KeyboardInterrupt:
            print(
                f"Stopping experiment {reply.name} (press Ctrl-C again to leave "
                "at once; Tuner.restore() continues it later).",
                file=sys.stderr,
            )
            client.stop_experiment(reply.experiment_id)
            return run.follow()

    def _prepare(self) -> tuple[ExperimentSpec, dict, bytes]:
        """Check and serialize everything before contacting the cluster."""
        trainable = self.trainable
        _register_user_module(trainable.fn)
        objects = {}
        shipped = WrappedTrainable(trainable.fn, {}, dict(trainable.resources))
        for name, value in trainable.objects.items():
            objects[name] = object_codec.encode(value, name)
            shipped.objects[name] = objects[name].ref()
        param_space = large_inputs.move_large_values(
            self.param_space, lambda value, path: _store(objects, value, path)
        )
        trainable_bytes = pickle_trainable(shipped)
        large_inputs.closure_warning(trainable.fn, len(trainable_bytes))
        name = self.run_config.name or (
            f"{trainable.__name__}_{time.strftime('%Y-%m-%d_%H-%M-%S')}"
        )
        run_config = _without_callbacks(self.run_config)
        callbacks_pickle = _pickle_callbacks(self.run_config.callbacks)
        spec = ExperimentSpec(
            name=name,
            trainable_name=trainable.__name__,
            trainable_object_id=object_codec.object_id(trainable_bytes),
            object_ids=list(
                dict.fromkeys(
                    [o.object_id for o in objects.values()]
                    + large_inputs.ref_ids(param_space)
                )
            ),
            resources=trial_resources(trainable),
            param_space=param_space,
            tune_config=self.tune_config,
            run_config=run_config,
            callbacks_pickle=callbacks_pickle,
        )
        _check_picklable(spec)
        return spec, objects, trainable_bytes

    def _submit_request(
        self, spec: ExperimentSpec, storage_path: str
    ) -> tune_pb2.SubmitExperimentRequest:
        restore = self._restore or {}
        return tune_pb2.SubmitExperimentRequest(
            name=spec.name,
            storage_path=storage_path,
            spec_pickle=cloudpickle.dumps(spec),
            restore=bool(restore),
            resume_unfinished=restore.get("resume_unfinished", True),
            resume_errored=restore.get("resume_errored", False),
            restart_errored=restore.get("restart_errored", False),
            name_is_default=self.run_config.name is None,
        )

    def _callbacks(self, spec: ExperimentSpec) -> list:
        callbacks = list(self.run_config.callbacks or [])
        for callback in callbacks:
            callback.setup(
                stop=self.run_config.stop,
                num_samples=self.tune_config.num_samples,
                total_num_samples=None,
            )
        return callbacks

    def _reporter(self) -> ProgressReporter:
        verbose = 1 if self.run_config.verbose is None else self.run_config.verbose
        keys = [
            k
            for k, v in flatten_dict(self.param_space).items()
            if not isinstance(v, (int, float, str, bool, type(None)))
        ]
        return ProgressReporter(
            self.tune_config.metric, self.tune_config.mode, keys, verbose
        )

    def get_results(self) -> ResultGrid:
        """The results of ``fit()``, or, for a restored Tuner, those in storage."""
        if self._results is not None:
            return self._results
        if self._restore:
            return result_grid_from_storage(
                self._restore["path"], self.tune_config.metric, self.tune_config.mode
            )
        raise ClusterError("no results yet: call Tuner.fit() first.")


def _check_checkpoint_config(config) -> None:
    """Function trainables checkpoint when they report; they cannot be asked to."""
    if config.checkpoint_frequency or config.checkpoint_at_end:
        raise TuneConfigError(
            "CheckpointConfig(checkpoint_frequency=..., checkpoint_at_end=...) needs "
            "a trainable that can be told to checkpoint; a function trainable "
            "saves one whenever it calls tune.report(..., checkpoint=...). Remove "
            "these settings and checkpoint in the function instead."
        )


def _zip_folder(folder: str) -> bytes:
    """The folder as zip bytes, for ``tune.init(working_dir=...)``."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, dirs, names in os.walk(folder):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", ".git", ".venv")]
            for name in names:
                path = os.path.join(root, name)
                archive.write(path, os.path.relpath(path, folder))
    return buffer.getvalue()


def _check_picklable(spec: ExperimentSpec) -> None:
    """Fail before submitting when part of the experiment cannot be pickled."""
    try:
        cloudpickle.dumps(spec)
        return
    except Exception as exc:
        cause = exc
    for key, value in flatten_dict(spec.param_space).items():
        try:
            cloudpickle.dumps(value)
        except Exception as exc:
            where = "param_space" + "".join(f'["{part}"]' for part in key.split("/"))
            raise TuneConfigError(
                f"{where} ({type(value).__name__}) cannot be pickled: {exc}. Keep "
                "param_space values small and picklable; pass such objects "
                "with tune.with_parameters() or create them in the trainable."
            ) from exc
    raise TuneConfigError(
        f"the tune_config or run_config cannot be pickled: {cause}. Searchers, "
        "schedulers and stop functions must be picklable."
    ) from cause


def _pickle_callbacks(callbacks: list | None) -> bytes:
    if not callbacks:
        return b""
    try:
        return cloudpickle.dumps(list(callbacks))
    except Exception as exc:  # noqa: BLE001 - restore then runs without them
        log.warning(
            "callbacks cannot be pickled (%s); Tuner.restore will not bring them back",
            exc,
        )
        return b""


def _restored_callbacks(spec: ExperimentSpec) -> list | None:
    if not spec.callbacks_pickle:
        return None
    try:
        return cloudpickle.loads(spec.callbacks_pickle)
    except Exception as exc:  # noqa: BLE001 - e.g. mlflow is not installed here
        log.warning(
            "the experiment's callbacks cannot be loaded (%s); continuing without them",
            exc,
        )
        return None


def _check_objects_present(client, spec: ExperimentSpec) -> None:
    """Fail before submitting if a restored param_space refers to released data."""
    missing = client.missing_objects(spec.object_ids)
    if missing:
        raise RestoreError(
            f"{len(missing)} large param_space value(s) of this experiment were "
            "released from the object store when it ended; pass them again with "
            "Tuner.restore(path, trainable, param_space=...)."
        )


def _store(objects: dict, value: Any, path: str) -> cluster.ObjectRef:
    """Put a large param_space value with the objects to upload; its reference."""
    objects[path] = object_codec.encode(value, path)
    return objects[path].ref()


def _without_callbacks(run_config: RunConfig) -> RunConfig:
    import copy

    clone = copy.copy(run_config)
    clone.callbacks = None
    clone.progress_reporter = None
    return clone


def _read_spec(path: str) -> ExperimentSpec:
    spec_path = storage.join(path, SPEC_FILE)
    try:
        if storage.is_uri(path):
            fs, fs_path = storage.get_filesystem(spec_path)
            data = fs.cat_file(fs_path)
        else:
            with open(spec_path, "rb") as f:
                data = f.read()
    except FileNotFoundError as exc:
        raise RestoreError(
            f"{spec_path} does not exist, so {path} is not an experiment folder. "
            "Pass the folder that Tuner.fit() reported (<storage_path>/<name>)."
        ) from exc
    try:
        return cloudpickle.loads(data)
    except Exception as exc:
        raise RestoreError(f"{spec_path} is damaged and cannot be read: {exc}") from exc


def result_grid_from_storage(
    path: str, metric: str | None = None, mode: str | None = None
) -> ResultGrid:
    """The ResultGrid of an experiment folder or bucket, read with no daemon."""
    read = _reader(path)
    state_path = storage.join(path, STATE_FILE)
    try:
        state = json.loads(read(state_path))
    except FileNotFoundError as exc:
        raise RestoreError(
            f"{state_path} does not exist: {path} is not an experiment folder"
        ) from exc
    except ValueError as exc:
        raise RestoreError(f"{state_path} is damaged: {exc}") from exc
    filesystem = None if not storage.is_uri(path) else storage.get_filesystem(path)[0]
    results = [
        _stored_result(path, record, read, filesystem) for record in state["trials"]
    ]
    return ResultGrid(results, path, default_metric=metric, default_mode=mode)


def _reader(path: str):
    """A function reading whole files under ``path``, on a disk or in a bucket."""
    if not storage.is_uri(path):

        def read_local(file_path: str) -> bytes:
            with open(file_path, "rb") as f:
                return f.read()

        return read_local
    fs, _ = storage.get_filesystem(path)
    return lambda file_path: fs.cat_file(storage.fs_path(file_path, fs))


def _stored_result(path: str, record: dict, read, filesystem) -> Result:
    trial_path = storage.join(path, record["dir_name"])
    params_path = storage.join(trial_path, "params.pkl")
    try:
        config = cloudpickle.loads(read(params_path))
    except Exception as exc:
        raise RestoreError(f"{params_path} cannot be read: {exc}") from exc
    checkpoints = [
        (
            Checkpoint(storage.join(trial_path, c["dir_name"]), filesystem),
            c.get("metrics", {}),
        )
        for c in record.get("checkpoints", [])
    ]
    error = record.get("error") or ""
    return Result(
        metrics=record.get("last_result") or {},
        config=config,
        checkpoint=checkpoints[-1][0] if checkpoints else None,
        error=TrialError(error, trial_id=record["trial_id"]) if error else None,
        path=trial_path,
        best_checkpoints=checkpoints,
        filesystem=filesystem,
    )
