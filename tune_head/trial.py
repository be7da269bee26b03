"""The head's record of one trial: its status is one field, nowhere else."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any


class TrialStatus(enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    TERMINATED = "TERMINATED"
    ERROR = "ERROR"

    @property
    def is_finished(self) -> bool:
        return self in (TrialStatus.TERMINATED, TrialStatus.ERROR)


@dataclass
class CheckpointRecord:
    """A checkpoint that is whole in storage."""

    dir_name: str
    path: str
    training_iteration: int
    metrics: dict

    def to_json(self) -> dict:
        return {
            "dir_name": self.dir_name,
            "path": self.path,
            "training_iteration": self.training_iteration,
            "metrics": self.metrics,
        }

    @classmethod
    def from_json(cls, data: dict) -> CheckpointRecord:
        return cls(
            data["dir_name"],
            data["path"],
            int(data["training_iteration"]),
            data.get("metrics") or {},
        )


@dataclass
class Trial:
    trial_id: str
    trial_name: str
    dir_name: str
    path: str
    config: dict
    resources: dict[str, float]
    status: TrialStatus = TrialStatus.PENDING
    worker_id: str = ""
    num_failures: int = 0
    error: str = ""
    last_result_json: bytes = b""
    last_iteration: int = 0
    checkpoints: list[CheckpointRecord] = field(default_factory=list)
    next_checkpoint_index: int = 0
    # How many times the trial was started; names the current run.
    runs: int = 0
    # The last checkpoint upload that failed after its retries, shown to users.
    storage_error: str = ""
    # Set while the trial is being stopped to start again (PBT's exploit).
    restart_pending: bool = False
    # The checkpoint the next start restores from when it is not the latest.
    restore_from: CheckpointRecord | None = None
    # last_result_json parsed, once something asks for it.
    _last_result: dict | None = field(default=None, init=False, repr=False)

    @property
    def last_result(self) -> dict:
        """The latest result; parsed from its JSON the first time it is read,
        as most results are only ever stored and passed on."""
        if self._last_result is None:
            self._last_result = json.loads(self.last_result_json or b"{}")
        return self._last_result

    @last_result.setter
    def last_result(self, result: dict) -> None:
        self._last_result = result

    def set_last_result_json(self, result_json: bytes) -> None:
        self.last_result_json = result_json
        self._last_result = None

    @property
    def latest_checkpoint(self) -> CheckpointRecord | None:
        return self.checkpoints[-1] if self.checkpoints else None

    @property
    def run_id(self) -> str:
        return f"{self.trial_id}.{self.runs}"

    @property
    def restore_point(self) -> CheckpointRecord | None:
        """Where the trial's next run starts from."""
        return self.restore_from or self.latest_checkpoint

    def to_state(self) -> dict[str, Any]:
        """The JSON-able part of the record, for experiment_state.json."""
        return {
            "trial_id": self.trial_id,
            "trial_name": self.trial_name,
            "dir_name": self.dir_name,
            "status": self.status.value,
            "worker_id": self.worker_id,
            "resources": self.resources,
            "num_failures": self.num_failures,
            "error": self.error,
            "storage_error": self.storage_error,
            "runs": self.runs,
            "last_iteration": self.last_iteration,
            "last_result": json.loads(self.last_result_json or b"{}"),
            "checkpoints": [c.to_json() for c in self.checkpoints],
            "next_checkpoint_index": self.next_checkpoint_index,
        }
