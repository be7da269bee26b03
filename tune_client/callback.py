"""``Callback``: hooks the client runs on the head's event stream.

The hook names and arguments are Ray Tune's, so existing callbacks carry over.
``iteration`` counts the events the client has handled; ``trials`` is the list
of every trial seen so far; each ``trial`` is a ``TrialView``.
"""

from __future__ import annotations

from typing import Any


class Callback:
    """Subclass and override the hooks you need; each is a no-op here."""

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        pass

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        pass

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        pass

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info) -> None:
        pass

    def on_trial_restore(
        self, iteration: int, trials: list, trial: Any, **info
    ) -> None:
        pass

    def on_trial_save(self, iteration: int, trials: list, trial: Any, **info) -> None:
        pass

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info
    ) -> None:
        pass

    def on_trial_complete(
        self, iteration: int, trials: list, trial: Any, **info
    ) -> None:
        pass

    def on_trial_recover(
        self, iteration: int, trials: list, trial: Any, **info
    ) -> None:
        pass

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        pass

    def on_checkpoint(
        self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info
    ) -> None:
        pass

    def on_experiment_end(self, trials: list, **info) -> None:
        pass

    def get_state(self) -> dict | None:
        return None

    def set_state(self, state: dict) -> None:
        pass
