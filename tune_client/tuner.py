"""``Tuner``: submit an experiment, follow it, and hand back a ``ResultGrid``.

``fit()`` checks everything it can in this process first (the trainable and
its objects pickle, the param space is well formed, storage is writable), so
bad input fails before any trial starts. It then uploads the objects, submits
the experiment to the head and follows its event stream, running callbacks
and printing progress, until the experiment ends.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from typing import Any

import cloudpickle

from proto.generated import tune_pb2
from tune_client import cluster, large_inputs, object_codec, storage
from tune_client.config import RunConfig, TuneConfig
from tune_client.errors import (
    ClusterError,
    RestoreError,
    TuneConfigError,
    TuneError,
)
from tune_client.experiment import ExperimentSpec
from tune_client.experiment_run import ExperimentRun, result_from_info
from tune_client.progress import ProgressReporter
from tune_client.result_grid import ResultGrid
from tune_client.search.variants import flatten_dict, validate_param_space
from tune_client.stored_results import (
    STATE_FILE,
    read_spec,
    result_grid_from_storage,
)
from tune_client.trainable import (
    WrappedTrainable,
    _unwrap,
    pickle_trainable,
    trial_resources,
)

log = logging.getLogger(__name__)


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
        self.run_config = _with_fsspec_filesystem(run_config or RunConfig())
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
        storage_filesystem: Any = None,
    ) -> Tuner:
        """Continue an experiment from its folder: finished trials stay finished,
        unfinished ones resume from their latest checkpoint.

        ``storage_filesystem`` is the filesystem holding ``path``, when the
        experiment was run with one: pass it again, as in Ray Tune.
        """
        filesystem = storage.as_fsspec(storage_filesystem)
        path = storage.resolve(os.fspath(path), filesystem)
        spec = read_spec(path, filesystem)
        run_config = spec.run_config
        run_config.callbacks = _restored_callbacks(spec)
        run_config.storage_path = os.path.dirname(path.rstrip("/"))
        run_config.name = os.path.basename(path.rstrip("/"))
        run_config.storage_filesystem = filesystem
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
    def can_restore(cls, path: str, storage_filesystem: Any = None) -> bool:
        """True when ``path`` holds an experiment that ``restore`` can continue."""
        filesystem = storage.as_fsspec(storage_filesystem)
        path = storage.resolve(os.fspath(path), filesystem)
        if filesystem is None and not storage.is_uri(path):
            return os.path.isfile(os.path.join(path, STATE_FILE))
        fs, fs_path = storage.get_filesystem(path, filesystem)
        return fs.exists(f"{fs_path.rstrip('/')}/{STATE_FILE}")

    # ---- running ------------------------------------------------------------

    def fit(self) -> ResultGrid:
        """Run the experiment to its end and return every trial's result."""
        reporter = self._reporter()
        filesystem = self.run_config.storage_filesystem
        storage_path = cluster.storage_path_for(
            self.run_config.storage_path, filesystem
        )
        if storage_path:  # checked before a cluster is started or contacted
            storage.check_writable(storage_path, filesystem)
        cluster.start_embedded_early()  # it boots while the inputs are encoded
        spec, objects, trainable_bytes = self._prepare()
        spec.run_config.storage_path = storage_path
        client = cluster.get_client()
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
        run = ExperimentRun(
            client,
            reply.experiment_id,
            callbacks,
            reporter,
            show_output=cluster.log_to_driver(),
        )
        ended = self._follow(client, run, reply)
        run.reporter.final(list(run.trials.values()), ended.experiment_path)
        if ended.error:
            raise TuneError(
                f"experiment {reply.name} failed: {ended.error}. Its trials so far "
                f"are in {ended.experiment_path}."
            )
        self._results = ResultGrid(
            [result_from_info(info, filesystem) for info in ended.trials],
            ended.experiment_path,
            default_metric=self.tune_config.metric,
            default_mode=self.tune_config.mode,
            filesystem=filesystem,
        )
        if self.run_config.failure_config.fail_fast == "raise" and self._results.errors:
            raise self._results.errors[0]
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
                self._restore["path"],
                self.tune_config.metric,
                self.tune_config.mode,
                filesystem=self.run_config.storage_filesystem,
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


def _with_fsspec_filesystem(run_config: RunConfig) -> RunConfig:
    """The run config with a pyarrow ``storage_filesystem`` wrapped for fsspec;
    the caller's object is left as it was."""
    filesystem = storage.as_fsspec(run_config.storage_filesystem)
    if filesystem is run_config.storage_filesystem:
        return run_config
    return dataclasses.replace(run_config, storage_filesystem=filesystem)


def _without_callbacks(run_config: RunConfig) -> RunConfig:
    import copy

    clone = copy.copy(run_config)
    clone.callbacks = None
    clone.progress_reporter = None
    return clone
