"""The experiment's configuration objects, with Ray Tune's names and defaults.

They are plain dataclasses: checked when built, so a bad value fails in the
user's process before anything is sent to the cluster, and picklable, so the
head receives them as they were written.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tune_client import stopper
from tune_client.errors import TuneConfigError

_MODES = ("min", "max")


def check_mode(mode: str | None, where: str) -> None:
    """Fail at once on a mode that is neither "min" nor "max"."""
    if mode is not None and mode not in _MODES:
        raise TuneConfigError(
            f'{where}: mode={mode!r} is not valid; use mode="min" or mode="max".'
        )


@dataclass
class TuneConfig:
    """How trials are searched for and scheduled."""

    metric: str | None = None
    mode: str | None = None
    search_alg: Any = None
    scheduler: Any = None
    num_samples: int = 1
    max_concurrent_trials: int | None = None
    time_budget_s: float | None = None
    reuse_actors: bool | None = None
    trial_name_creator: Callable[[Any], str] | None = None
    trial_dirname_creator: Callable[[Any], str] | None = None

    def __post_init__(self) -> None:
        check_mode(self.mode, "TuneConfig")
        if not isinstance(self.num_samples, int) or self.num_samples == 0:
            raise TuneConfigError(
                f"TuneConfig: num_samples={self.num_samples!r} must be a positive "
                "integer (or -1 to sample until time_budget_s runs out)."
            )
        if self.max_concurrent_trials is not None and self.max_concurrent_trials < 1:
            raise TuneConfigError(
                "TuneConfig: max_concurrent_trials must be at least 1 or None."
            )
        self._check_scheduler()

    def _check_scheduler(self) -> None:
        """Give the scheduler our metric and mode now, as the head will.

        A scheduler that cannot work without them (ASHA, PBT, the median
        stopping rule) then fails here, in the user's process, and not on the
        head after submission. A copy takes them, so the scheduler the user
        passed still decides for itself on the head.
        """
        if self.scheduler is not None:
            copy.copy(self.scheduler).set_search_properties(self.metric, self.mode)


@dataclass
class CheckpointConfig:
    """Which checkpoints to keep; Ray Tune's meaning for function trainables."""

    num_to_keep: int | None = None
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: str = "max"
    checkpoint_frequency: int = 0
    checkpoint_at_end: bool | None = None

    def __post_init__(self) -> None:
        if self.num_to_keep is not None and self.num_to_keep < 1:
            raise TuneConfigError(
                "CheckpointConfig: num_to_keep must be at least 1, or None to keep "
                "every checkpoint."
            )
        check_mode(self.checkpoint_score_order, "CheckpointConfig")


@dataclass
class FailureConfig:
    """How often a failing trial is retried, and whether one failure ends all."""

    max_failures: int = 0
    # True ends the experiment at the first trial error; "raise" also makes
    # fit() raise that error instead of returning the results.
    fail_fast: bool | str = False

    def __post_init__(self) -> None:
        if isinstance(self.fail_fast, str) and self.fail_fast.lower() == "raise":
            self.fail_fast = "raise"
        elif not isinstance(self.fail_fast, bool):
            raise TuneConfigError(
                f"FailureConfig: fail_fast={self.fail_fast!r} is neither True, "
                'False nor "raise".'
            )
        if not isinstance(self.max_failures, int) or self.max_failures < -1:
            raise TuneConfigError(
                f"FailureConfig: max_failures={self.max_failures!r} must be a whole "
                "number: 0 for no retries, N for N retries, -1 to retry forever."
            )
        if self.fail_fast and self.max_failures != 0:
            raise TuneConfigError(
                f"FailureConfig: fail_fast={self.fail_fast!r} ends the experiment "
                f"at the first failure, so max_failures={self.max_failures} retries "
                "would never happen. Set one of them, not both."
            )


@dataclass
class RunConfig:
    """Where results go and what runs alongside the experiment."""

    name: str | None = None
    storage_path: str | None = None
    storage_filesystem: Any = None
    callbacks: list[Any] | None = None
    # A dict of bounds, a function, a tune.stopper.Stopper or a list of them.
    stop: Mapping[str, Any] | Callable[[str, dict], bool] | list | None = None
    checkpoint_config: CheckpointConfig = field(default_factory=CheckpointConfig)
    failure_config: FailureConfig = field(default_factory=FailureConfig)
    verbose: int | None = None
    progress_reporter: Any = None
    # True: the trial's stdout and stderr go to files "stdout" and "stderr" in
    # its folder; a name: both into that file; a (stdout, stderr) pair of names.
    log_to_file: bool | str | tuple[str, str] = False

    def __post_init__(self) -> None:
        if self.checkpoint_config is None:
            self.checkpoint_config = CheckpointConfig()
        if self.failure_config is None:
            self.failure_config = FailureConfig()
        if self.storage_path is not None:
            self.storage_path = os.fspath(self.storage_path)
        _check_stop(self.stop)
        log_file_names(self.log_to_file)

    @property
    def output_files(self) -> tuple[str, str] | None:
        """Where trials write stdout and stderr, relative to their folders;
        None to leave them on the worker's own output."""
        return log_file_names(self.log_to_file)


def log_file_names(log_to_file: Any) -> tuple[str, str] | None:
    """``RunConfig.log_to_file`` as a (stdout, stderr) pair of names inside
    the trial folder, or None. Raises on any other value, naming the fix."""
    if log_to_file is False or log_to_file is None:
        return None
    if log_to_file is True:
        return ("stdout", "stderr")
    if isinstance(log_to_file, str):
        names = (log_to_file, log_to_file)
    elif (
        isinstance(log_to_file, tuple | list)
        and len(log_to_file) == 2
        and all(isinstance(name, str) for name in log_to_file)
    ):
        names = (log_to_file[0], log_to_file[1])
    else:
        raise TuneConfigError(
            f"RunConfig(log_to_file={log_to_file!r}): pass True, False, one file "
            "name for both stdout and stderr, or a (stdout, stderr) pair of names."
        )
    for name in names:
        parts = name.replace(os.sep, "/").split("/")
        if not name or os.path.isabs(name) or ".." in parts:
            raise TuneConfigError(
                f"RunConfig(log_to_file=...): {name!r} is not a file name inside "
                "the trial's folder. Give a relative name such as 'output.log'; "
                "each trial writes its own copy in its folder."
            )
    return names


def _check_stop(stop: Any) -> None:
    """Fail at once on a ``stop`` that is neither bounds, a function nor Stoppers."""
    if isinstance(stop, Mapping):
        stopper.check_stop_criteria(stop)
    else:
        stopper.as_stopper(stop)


def default_storage_path() -> str:
    """``TUNE_RESULTS_DIR``, else ``~/tune_results``, as an absolute path."""
    path = os.environ.get("TUNE_RESULTS_DIR") or "~/tune_results"
    return os.path.abspath(os.path.expanduser(path))
