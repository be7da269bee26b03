"""The scheduler interface the head's experiment controller calls."""

from __future__ import annotations

from typing import Any

from tune_client.config import check_mode


class TrialScheduler:
    """Decides, result by result, whether a trial continues or stops."""

    CONTINUE = "CONTINUE"
    PAUSE = "PAUSE"
    STOP = "STOP"

    def __init__(self, metric: str | None = None, mode: str | None = None) -> None:
        check_mode(mode, type(self).__name__)
        self.metric = metric
        self.mode = mode

    def set_search_properties(self, metric: str | None, mode: str | None) -> bool:
        """Take the experiment's metric and mode unless the scheduler has its own."""
        check_mode(mode, type(self).__name__)
        self.metric = self.metric or metric
        self.mode = self.mode or mode
        return True

    def on_trial_add(self, controller: Any, trial: Any) -> None:
        pass

    def on_trial_result(self, controller: Any, trial: Any, result: dict) -> str:
        return self.CONTINUE

    def on_trial_complete(self, controller: Any, trial: Any, result: dict) -> None:
        pass

    def on_trial_error(self, controller: Any, trial: Any) -> None:
        pass

    def on_trial_remove(self, controller: Any, trial: Any) -> None:
        pass


class FIFOScheduler(TrialScheduler):
    """Runs trials in the order they were created, each to its end."""
