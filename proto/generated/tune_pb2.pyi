from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrialOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[TrialOutcome]
    FINISHED: _ClassVar[TrialOutcome]
    ERRORED: _ClassVar[TrialOutcome]
    STOPPED: _ClassVar[TrialOutcome]
    INTERRUPTED: _ClassVar[TrialOutcome]

class StorageMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECT: _ClassVar[StorageMode]
    STREAM_TO_HEAD: _ClassVar[StorageMode]

class TrialStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATUS_UNSPECIFIED: _ClassVar[TrialStatus]
    PENDING: _ClassVar[TrialStatus]
    RUNNING: _ClassVar[TrialStatus]
    TERMINATED: _ClassVar[TrialStatus]
    ERROR: _ClassVar[TrialStatus]
    PAUSED: _ClassVar[TrialStatus]
OUTCOME_UNSPECIFIED: TrialOutcome
FINISHED: TrialOutcome
ERRORED: TrialOutcome
STOPPED: TrialOutcome
INTERRUPTED: TrialOutcome
DIRECT: StorageMode
STREAM_TO_HEAD: StorageMode
STATUS_UNSPECIFIED: TrialStatus
PENDING: TrialStatus
RUNNING: TrialStatus
TERMINATED: TrialStatus
ERROR: TrialStatus
PAUSED: TrialStatus

class RegisterWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "hostname", "node_ip", "resources", "running_trial_ids")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    NODE_IP_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TRIAL_IDS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    hostname: str
    node_ip: str
    resources: _containers.ScalarMap[str, float]
    running_trial_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, worker_id: _Optional[str] = ..., hostname: _Optional[str] = ..., node_ip: _Optional[str] = ..., resources: _Optional[_Mapping[str, float]] = ..., running_trial_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RegisterWorkerReply(_message.Message):
    __slots__ = ("worker_id", "heartbeat_interval_s", "stale_trial_ids", "head_hostname", "object_dir", "object_port")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    STALE_TRIAL_IDS_FIELD_NUMBER: _ClassVar[int]
    HEAD_HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    OBJECT_DIR_FIELD_NUMBER: _ClassVar[int]
    OBJECT_PORT_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    heartbeat_interval_s: float
    stale_trial_ids: _containers.RepeatedScalarFieldContainer[str]
    head_hostname: str
    object_dir: str
    object_port: int
    def __init__(self, worker_id: _Optional[str] = ..., heartbeat_interval_s: _Optional[float] = ..., stale_trial_ids: _Optional[_Iterable[str]] = ..., head_hostname: _Optional[str] = ..., object_dir: _Optional[str] = ..., object_port: _Optional[int] = ...) -> None: ...

class WorkerMessage(_message.Message):
    __slots__ = ("hello", "heartbeat", "results", "checkpoint", "trial_ended", "output", "sequence")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    TRIAL_ENDED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    hello: WorkerHello
    heartbeat: Heartbeat
    results: ResultBatch
    checkpoint: CheckpointPersisted
    trial_ended: TrialEnded
    output: TrialOutputBatch
    sequence: int
    def __init__(self, hello: _Optional[_Union[WorkerHello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., results: _Optional[_Union[ResultBatch, _Mapping]] = ..., checkpoint: _Optional[_Union[CheckpointPersisted, _Mapping]] = ..., trial_ended: _Optional[_Union[TrialEnded, _Mapping]] = ..., output: _Optional[_Union[TrialOutputBatch, _Mapping]] = ..., sequence: _Optional[int] = ...) -> None: ...

class TrialOutput(_message.Message):
    __slots__ = ("trial_id", "stream", "data")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    trial_id: str
    stream: int
    data: bytes
    def __init__(self, trial_id: _Optional[str] = ..., stream: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class TrialOutputBatch(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[TrialOutput]
    def __init__(self, items: _Optional[_Iterable[_Union[TrialOutput, _Mapping]]] = ...) -> None: ...

class WorkerHello(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("unix_time",)
    UNIX_TIME_FIELD_NUMBER: _ClassVar[int]
    unix_time: float
    def __init__(self, unix_time: _Optional[float] = ...) -> None: ...

class ResultBatch(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TrialResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TrialResult, _Mapping]]] = ...) -> None: ...

class TrialResult(_message.Message):
    __slots__ = ("trial_id", "metrics_json", "training_iteration", "progress_row", "progress_columns")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_JSON_FIELD_NUMBER: _ClassVar[int]
    TRAINING_ITERATION_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_ROW_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    trial_id: str
    metrics_json: bytes
    training_iteration: int
    progress_row: bytes
    progress_columns: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, trial_id: _Optional[str] = ..., metrics_json: _Optional[bytes] = ..., training_iteration: _Optional[int] = ..., progress_row: _Optional[bytes] = ..., progress_columns: _Optional[_Iterable[str]] = ...) -> None: ...

class CheckpointPersisted(_message.Message):
    __slots__ = ("trial_id", "dir_name", "path", "training_iteration", "metrics_json", "error")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    DIR_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    TRAINING_ITERATION_FIELD_NUMBER: _ClassVar[int]
    METRICS_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    trial_id: str
    dir_name: str
    path: str
    training_iteration: int
    metrics_json: bytes
    error: str
    def __init__(self, trial_id: _Optional[str] = ..., dir_name: _Optional[str] = ..., path: _Optional[str] = ..., training_iteration: _Optional[int] = ..., metrics_json: _Optional[bytes] = ..., error: _Optional[str] = ...) -> None: ...

class TrialEnded(_message.Message):
    __slots__ = ("trial_id", "outcome", "error")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    trial_id: str
    outcome: TrialOutcome
    error: str
    def __init__(self, trial_id: _Optional[str] = ..., outcome: _Optional[_Union[TrialOutcome, str]] = ..., error: _Optional[str] = ...) -> None: ...

class HeadCommand(_message.Message):
    __slots__ = ("start_trial", "stop_trial", "results_ack", "drain")
    START_TRIAL_FIELD_NUMBER: _ClassVar[int]
    STOP_TRIAL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_ACK_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    start_trial: StartTrial
    stop_trial: StopTrial
    results_ack: ResultsAck
    drain: Drain
    def __init__(self, start_trial: _Optional[_Union[StartTrial, _Mapping]] = ..., stop_trial: _Optional[_Union[StopTrial, _Mapping]] = ..., results_ack: _Optional[_Union[ResultsAck, _Mapping]] = ..., drain: _Optional[_Union[Drain, _Mapping]] = ...) -> None: ...

class Drain(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class DrainWorkerRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class DrainWorkerReply(_message.Message):
    __slots__ = ("trial_ids",)
    TRIAL_IDS_FIELD_NUMBER: _ClassVar[int]
    trial_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, trial_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class StartTrial(_message.Message):
    __slots__ = ("experiment_id", "experiment_name", "trial_id", "trial_name", "trainable_object_id", "object_ids", "config_pickle", "trial_path", "restore_checkpoint_path", "restore_iteration", "restore_time_total_s", "next_checkpoint_index", "resources", "storage_mode", "storage_filesystem_pickle", "stop_criteria_json", "working_dir_object_id", "run_id", "stdout_file", "stderr_file")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_NAME_FIELD_NUMBER: _ClassVar[int]
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    TRIAL_NAME_FIELD_NUMBER: _ClassVar[int]
    TRAINABLE_OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_PICKLE_FIELD_NUMBER: _ClassVar[int]
    TRIAL_PATH_FIELD_NUMBER: _ClassVar[int]
    RESTORE_CHECKPOINT_PATH_FIELD_NUMBER: _ClassVar[int]
    RESTORE_ITERATION_FIELD_NUMBER: _ClassVar[int]
    RESTORE_TIME_TOTAL_S_FIELD_NUMBER: _ClassVar[int]
    NEXT_CHECKPOINT_INDEX_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    STORAGE_MODE_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FILESYSTEM_PICKLE_FIELD_NUMBER: _ClassVar[int]
    STOP_CRITERIA_JSON_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIR_OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FILE_FIELD_NUMBER: _ClassVar[int]
    STDERR_FILE_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    experiment_name: str
    trial_id: str
    trial_name: str
    trainable_object_id: str
    object_ids: _containers.RepeatedScalarFieldContainer[str]
    config_pickle: bytes
    trial_path: str
    restore_checkpoint_path: str
    restore_iteration: int
    restore_time_total_s: float
    next_checkpoint_index: int
    resources: _containers.ScalarMap[str, float]
    storage_mode: StorageMode
    storage_filesystem_pickle: bytes
    stop_criteria_json: bytes
    working_dir_object_id: str
    run_id: str
    stdout_file: str
    stderr_file: str
    def __init__(self, experiment_id: _Optional[str] = ..., experiment_name: _Optional[str] = ..., trial_id: _Optional[str] = ..., trial_name: _Optional[str] = ..., trainable_object_id: _Optional[str] = ..., object_ids: _Optional[_Iterable[str]] = ..., config_pickle: _Optional[bytes] = ..., trial_path: _Optional[str] = ..., restore_checkpoint_path: _Optional[str] = ..., restore_iteration: _Optional[int] = ..., restore_time_total_s: _Optional[float] = ..., next_checkpoint_index: _Optional[int] = ..., resources: _Optional[_Mapping[str, float]] = ..., storage_mode: _Optional[_Union[StorageMode, str]] = ..., storage_filesystem_pickle: _Optional[bytes] = ..., stop_criteria_json: _Optional[bytes] = ..., working_dir_object_id: _Optional[str] = ..., run_id: _Optional[str] = ..., stdout_file: _Optional[str] = ..., stderr_file: _Optional[str] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("trial_id", "folder", "relative_path", "data", "last_of_file", "run_id")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_OF_FILE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    trial_id: str
    folder: str
    relative_path: str
    data: bytes
    last_of_file: bool
    run_id: str
    def __init__(self, trial_id: _Optional[str] = ..., folder: _Optional[str] = ..., relative_path: _Optional[str] = ..., data: _Optional[bytes] = ..., last_of_file: _Optional[bool] = ..., run_id: _Optional[str] = ...) -> None: ...

class UploadTrialFilesReply(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class DownloadCheckpointRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class StopTrial(_message.Message):
    __slots__ = ("trial_id", "reason")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    trial_id: str
    reason: str
    def __init__(self, trial_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ResultsAck(_message.Message):
    __slots__ = ("sequence",)
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    def __init__(self, sequence: _Optional[int] = ...) -> None: ...

class FindObjectsRequest(_message.Message):
    __slots__ = ("object_ids",)
    OBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    object_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, object_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class FindObjectsReply(_message.Message):
    __slots__ = ("present_ids",)
    PRESENT_IDS_FIELD_NUMBER: _ClassVar[int]
    present_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, present_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ObjectChunk(_message.Message):
    __slots__ = ("object_id", "total_size", "data")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    object_id: str
    total_size: int
    data: bytes
    def __init__(self, object_id: _Optional[str] = ..., total_size: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class PutObjectReply(_message.Message):
    __slots__ = ("object_id", "size")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    object_id: str
    size: int
    def __init__(self, object_id: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class GetObjectRequest(_message.Message):
    __slots__ = ("object_id",)
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    object_id: str
    def __init__(self, object_id: _Optional[str] = ...) -> None: ...

class AdoptObjectRequest(_message.Message):
    __slots__ = ("object_id", "file_name")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    object_id: str
    file_name: str
    def __init__(self, object_id: _Optional[str] = ..., file_name: _Optional[str] = ...) -> None: ...

class SubmitExperimentRequest(_message.Message):
    __slots__ = ("name", "storage_path", "spec_pickle", "restore", "resume_unfinished", "resume_errored", "restart_errored", "name_is_default")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STORAGE_PATH_FIELD_NUMBER: _ClassVar[int]
    SPEC_PICKLE_FIELD_NUMBER: _ClassVar[int]
    RESTORE_FIELD_NUMBER: _ClassVar[int]
    RESUME_UNFINISHED_FIELD_NUMBER: _ClassVar[int]
    RESUME_ERRORED_FIELD_NUMBER: _ClassVar[int]
    RESTART_ERRORED_FIELD_NUMBER: _ClassVar[int]
    NAME_IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    name: str
    storage_path: str
    spec_pickle: bytes
    restore: bool
    resume_unfinished: bool
    resume_errored: bool
    restart_errored: bool
    name_is_default: bool
    def __init__(self, name: _Optional[str] = ..., storage_path: _Optional[str] = ..., spec_pickle: _Optional[bytes] = ..., restore: _Optional[bool] = ..., resume_unfinished: _Optional[bool] = ..., resume_errored: _Optional[bool] = ..., restart_errored: _Optional[bool] = ..., name_is_default: _Optional[bool] = ...) -> None: ...

class SubmitExperimentReply(_message.Message):
    __slots__ = ("experiment_id", "experiment_path", "name")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_PATH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    experiment_path: str
    name: str
    def __init__(self, experiment_id: _Optional[str] = ..., experiment_path: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class WatchExperimentRequest(_message.Message):
    __slots__ = ("experiment_id", "after_sequence", "head_epoch")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HEAD_EPOCH_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    after_sequence: int
    head_epoch: str
    def __init__(self, experiment_id: _Optional[str] = ..., after_sequence: _Optional[int] = ..., head_epoch: _Optional[str] = ...) -> None: ...

class TrialInfo(_message.Message):
    __slots__ = ("trial_id", "trial_name", "status", "config_pickle", "path", "last_result_json", "error", "checkpoints", "worker_id", "num_failures", "storage_error")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    TRIAL_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_PICKLE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    LAST_RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_FAILURES_FIELD_NUMBER: _ClassVar[int]
    STORAGE_ERROR_FIELD_NUMBER: _ClassVar[int]
    trial_id: str
    trial_name: str
    status: TrialStatus
    config_pickle: bytes
    path: str
    last_result_json: bytes
    error: str
    checkpoints: _containers.RepeatedCompositeFieldContainer[CheckpointPersisted]
    worker_id: str
    num_failures: int
    storage_error: str
    def __init__(self, trial_id: _Optional[str] = ..., trial_name: _Optional[str] = ..., status: _Optional[_Union[TrialStatus, str]] = ..., config_pickle: _Optional[bytes] = ..., path: _Optional[str] = ..., last_result_json: _Optional[bytes] = ..., error: _Optional[str] = ..., checkpoints: _Optional[_Iterable[_Union[CheckpointPersisted, _Mapping]]] = ..., worker_id: _Optional[str] = ..., num_failures: _Optional[int] = ..., storage_error: _Optional[str] = ...) -> None: ...

class ExperimentEvent(_message.Message):
    __slots__ = ("sequence", "trial_updated", "result", "checkpoint", "experiment_ended", "output", "replayed")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TRIAL_UPDATED_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ENDED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    trial_updated: TrialInfo
    result: TrialResult
    checkpoint: CheckpointPersisted
    experiment_ended: ExperimentEnded
    output: TrialOutput
    replayed: bool
    def __init__(self, sequence: _Optional[int] = ..., trial_updated: _Optional[_Union[TrialInfo, _Mapping]] = ..., result: _Optional[_Union[TrialResult, _Mapping]] = ..., checkpoint: _Optional[_Union[CheckpointPersisted, _Mapping]] = ..., experiment_ended: _Optional[_Union[ExperimentEnded, _Mapping]] = ..., output: _Optional[_Union[TrialOutput, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class ExperimentEvents(_message.Message):
    __slots__ = ("events", "head_epoch")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    HEAD_EPOCH_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[ExperimentEvent]
    head_epoch: str
    def __init__(self, events: _Optional[_Iterable[_Union[ExperimentEvent, _Mapping]]] = ..., head_epoch: _Optional[str] = ...) -> None: ...

class ExperimentEnded(_message.Message):
    __slots__ = ("experiment_path", "reason", "trials", "error")
    EXPERIMENT_PATH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    experiment_path: str
    reason: str
    trials: _containers.RepeatedCompositeFieldContainer[TrialInfo]
    error: str
    def __init__(self, experiment_path: _Optional[str] = ..., reason: _Optional[str] = ..., trials: _Optional[_Iterable[_Union[TrialInfo, _Mapping]]] = ..., error: _Optional[str] = ...) -> None: ...

class StopExperimentRequest(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: str
    def __init__(self, experiment: _Optional[str] = ...) -> None: ...

class StopExperimentReply(_message.Message):
    __slots__ = ("experiment_id",)
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    def __init__(self, experiment_id: _Optional[str] = ...) -> None: ...

class GetClusterStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerStatus(_message.Message):
    __slots__ = ("worker_id", "hostname", "total", "free", "trial_ids")
    class TotalEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class FreeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    TRIAL_IDS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    hostname: str
    total: _containers.ScalarMap[str, float]
    free: _containers.ScalarMap[str, float]
    trial_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, worker_id: _Optional[str] = ..., hostname: _Optional[str] = ..., total: _Optional[_Mapping[str, float]] = ..., free: _Optional[_Mapping[str, float]] = ..., trial_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ExperimentStatus(_message.Message):
    __slots__ = ("experiment_id", "name", "path", "trials_by_status", "finished", "pending_reason")
    class TrialsByStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    TRIALS_BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    PENDING_REASON_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    name: str
    path: str
    trials_by_status: _containers.ScalarMap[str, int]
    finished: bool
    pending_reason: str
    def __init__(self, experiment_id: _Optional[str] = ..., name: _Optional[str] = ..., path: _Optional[str] = ..., trials_by_status: _Optional[_Mapping[str, int]] = ..., finished: _Optional[bool] = ..., pending_reason: _Optional[str] = ...) -> None: ...

class ClusterStatus(_message.Message):
    __slots__ = ("workers", "experiments")
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerStatus]
    experiments: _containers.RepeatedCompositeFieldContainer[ExperimentStatus]
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerStatus, _Mapping]]] = ..., experiments: _Optional[_Iterable[_Union[ExperimentStatus, _Mapping]]] = ...) -> None: ...
