"""The proto messages the head builds from its records."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import cloudpickle

from proto.generated import tune_pb2
from tune_head.trial import Trial, TrialStatus

if TYPE_CHECKING:
    from tune_head.head import Experiment

STATUS_TO_PROTO = {
    TrialStatus.PENDING: tune_pb2.PENDING,
    TrialStatus.RUNNING: tune_pb2.RUNNING,
    TrialStatus.TERMINATED: tune_pb2.TERMINATED,
    TrialStatus.ERROR: tune_pb2.ERROR,
}


def start_trial(
    exp: Experiment, trial: Trial, storage_mode: int
) -> tune_pb2.StartTrial:
    """What a worker needs to run ``trial``, from its restore point."""
    spec = exp.controller.spec
    latest = trial.restore_point
    filesystem = spec.run_config.storage_filesystem
    stdout_file, stderr_file = spec.run_config.output_files or ("", "")
    return tune_pb2.StartTrial(
        experiment_id=exp.experiment_id,
        experiment_name=spec.name,
        trial_id=trial.trial_id,
        trial_name=trial.trial_name,
        trainable_object_id=spec.trainable_object_id,
        object_ids=spec.object_ids,
        config_pickle=cloudpickle.dumps(trial.config),
        trial_path=trial.path,
        run_id=trial.run_id,
        restore_checkpoint_path=latest.path if latest else "",
        restore_iteration=latest.training_iteration if latest else 0,
        restore_time_total_s=float(
            latest.metrics.get("time_total_s", 0.0) if latest else 0.0
        ),
        next_checkpoint_index=trial.next_checkpoint_index,
        resources=trial.resources,
        storage_mode=storage_mode,
        stop_criteria_json=stop_criteria_json(spec.run_config.stop),
        working_dir_object_id=spec.working_dir_object_id,
        stdout_file=stdout_file,
        stderr_file=stderr_file,
        storage_filesystem_pickle=(
            cloudpickle.dumps(filesystem) if filesystem is not None else b""
        ),
    )


def trial_info(trial: Trial) -> tune_pb2.TrialInfo:
    import json

    return tune_pb2.TrialInfo(
        trial_id=trial.trial_id,
        trial_name=trial.trial_name,
        status=STATUS_TO_PROTO[trial.status],
        config_pickle=cloudpickle.dumps(trial.config),
        path=trial.path,
        last_result_json=trial.last_result_json,
        error=trial.error,
        checkpoints=[
            tune_pb2.CheckpointPersisted(
                trial_id=trial.trial_id,
                dir_name=c.dir_name,
                path=c.path,
                training_iteration=c.training_iteration,
                metrics_json=json.dumps(c.metrics, default=repr).encode(),
            )
            for c in trial.checkpoints
        ],
        worker_id=trial.worker_id,
        num_failures=trial.num_failures,
        storage_error=trial.storage_error,
    )


def stop_criteria_json(stop) -> bytes:
    if not isinstance(stop, dict) or not stop:
        return b""
    try:
        return json.dumps(stop).encode()
    except (TypeError, ValueError):
        return b""  # the head still applies it, one result later
