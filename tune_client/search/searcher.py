"""The search-algorithm interface, as in Ray Tune, and ConcurrencyLimiter.

The head drives a searcher: it calls ``set_search_properties`` once with the
experiment's metric, mode, param_space and ``num_samples``, then ``suggest``
for each new trial, and reports back through ``on_trial_result`` and
``on_trial_complete``. ``get_state``/``set_state`` let the head save the
searcher with the experiment and continue it after a restore.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from typing import Any

from tune_client.errors import RestoreError, TuneConfigError

__all__ = ["ConcurrencyLimiter", "Searcher"]

_MODES = ("min", "max")


def _check_mode(mode: Any) -> str | None:
    if mode is not None and mode not in _MODES:
        raise TuneConfigError(
            f"mode={mode!r} is not valid; use mode='min' or mode='max' (or leave "
            f"it None to take it from TuneConfig)."
        )
    return mode


def _check_limit(call: str, value: Any, minimum: int) -> int:
    """Check a concurrency limit: an int of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TuneConfigError(
            f"{call}(max_concurrent={value!r}): pass an int of at least {minimum}"
            f"{' (0 means no limit)' if minimum == 0 else ''}."
        )
    return value


def _check_metric(metric: Any) -> str | None:
    if metric is not None and not isinstance(metric, str):
        raise TuneConfigError(
            f"metric={metric!r} must be the str name of a reported result key, "
            f"e.g. metric='loss'."
        )
    return metric


class Searcher:
    """Base class for search algorithms, with Ray Tune's Searcher interface.

    Subclasses implement ``suggest`` and usually ``on_trial_complete``. To be
    saved and restored with the experiment, a subclass extends ``get_state``
    and ``set_state`` (call the base versions: they carry metric and mode).
    """

    #: Returned by ``suggest`` when no trial will ever be suggested again.
    FINISHED = "FINISHED"

    def __init__(self, metric: str | None = None, mode: str | None = None) -> None:
        self._metric = _check_metric(metric)
        self._mode = _check_mode(mode)

    @property
    def metric(self) -> str | None:
        """The result key being optimized, or None if not set yet."""
        return self._metric

    @property
    def mode(self) -> str | None:
        """ "min" or "max", or None if not set yet."""
        return self._mode

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        """Receive the experiment's metric, mode, param_space and spec.

        ``spec`` holds extra settings such as ``num_samples``. A metric or mode
        given here (not None) replaces the one from ``__init__``. Returns True
        if the searcher took ``config`` as its search space; the base class
        returns False (it has no use for it), as in Ray.
        """
        self._set_metric_mode(metric, mode)
        return False

    def _set_metric_mode(self, metric: str | None, mode: str | None) -> None:
        if metric is not None:
            self._metric = _check_metric(metric)
        if mode is not None:
            self._mode = _check_mode(mode)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Limit live suggestions; False means "wrap me in ConcurrencyLimiter"."""
        return False

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """Return the config for a new trial ``trial_id``.

        Return None when nothing can be suggested now (ask again later) and
        ``Searcher.FINISHED`` when no trial will ever be suggested again.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement suggest(trial_id)"
        )

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Called with each intermediate result a trial reports."""

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        """Called once when a trial ends; ``error`` is True if it failed."""

    def get_state(self) -> dict[str, Any]:
        """A picklable dict from which ``set_state`` can continue the search."""
        return {"metric": self._metric, "mode": self._mode}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a dict made by ``get_state``."""
        self._metric = _check_metric(state.get("metric", self._metric))
        self._mode = _check_mode(state.get("mode", self._mode))

    def save(self, checkpoint_path: str) -> None:
        """Write ``get_state()`` to ``checkpoint_path`` with pickle, atomically."""
        directory = os.path.dirname(os.path.abspath(checkpoint_path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                pickle.dump(self.get_state(), file)
            os.replace(tmp_path, checkpoint_path)
        except BaseException:
            os.unlink(tmp_path)
            raise

    def restore(self, checkpoint_path: str) -> None:
        """Read a file written by ``save`` and continue from it."""
        try:
            with open(checkpoint_path, "rb") as file:
                state = pickle.load(file)
        except (OSError, pickle.UnpicklingError, EOFError) as exc:
            raise RestoreError(
                f"cannot read searcher state from {checkpoint_path!r}: {exc}; "
                f"pass a file written by Searcher.save()."
            ) from exc
        if not isinstance(state, dict):
            raise RestoreError(
                f"{checkpoint_path!r} holds a {type(state).__name__}, not a "
                f"searcher state dict; pass a file written by Searcher.save()."
            )
        self.set_state(state)


class ConcurrencyLimiter(Searcher):
    """Wrap ``searcher`` so at most ``max_concurrent`` of its trials are live.

    ``suggest`` returns None while ``max_concurrent`` trials it suggested have
    not completed, and forwards to the wrapped searcher otherwise. With
    ``batch=True`` it waits until the whole batch of live trials has completed,
    then reports all of them to the wrapped searcher and starts a new batch.
    """

    def __init__(
        self, searcher: Searcher, max_concurrent: int, batch: bool = False
    ) -> None:
        if not isinstance(searcher, Searcher):
            raise TuneConfigError(
                f"ConcurrencyLimiter wraps a Searcher, got "
                f"{type(searcher).__name__}; pass e.g. BasicVariantGenerator()."
            )
        _check_limit("ConcurrencyLimiter", max_concurrent, 1)
        super().__init__()
        self.searcher = searcher
        self.max_concurrent = max_concurrent
        self.batch = bool(batch)
        self._live: set[str] = set()
        self._batch_results: dict[str, tuple[dict | None, bool]] = {}

    @property
    def metric(self) -> str | None:
        """The wrapped searcher's metric."""
        return self.searcher.metric

    @property
    def mode(self) -> str | None:
        """The wrapped searcher's mode."""
        return self.searcher.mode

    @property
    def live_trials(self) -> frozenset[str]:
        """Ids of suggested trials not yet completed (or whose batch is open)."""
        return frozenset(self._live)

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        """Forward to the wrapped searcher."""
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Change the limit (an int >= 1); always accepted."""
        self.max_concurrent = _check_limit("set_max_concurrency", max_concurrent, 1)
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """None while the limit is reached, else the wrapped searcher's answer."""
        if len(self._live) >= self.max_concurrent:
            return None
        suggestion = self.searcher.suggest(trial_id)
        if isinstance(suggestion, dict):
            self._live.add(trial_id)
        return suggestion

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Forward results of trials this limiter let through."""
        if trial_id in self._live:
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        """Free the trial's slot (in batch mode, once the whole batch is done)."""
        if trial_id not in self._live or trial_id in self._batch_results:
            return
        if not self.batch:
            self._live.discard(trial_id)
            self.searcher.on_trial_complete(trial_id, result=result, error=error)
            return
        self._batch_results[trial_id] = (result, error)
        if len(self._batch_results) < len(self._live):
            return
        finished, self._batch_results = self._batch_results, {}
        self._live.clear()
        for done_id, (done_result, done_error) in finished.items():
            self.searcher.on_trial_complete(
                done_id, result=done_result, error=done_error
            )

    def get_state(self) -> dict[str, Any]:
        """The limiter's live trials plus the wrapped searcher's state."""
        return {
            "max_concurrent": self.max_concurrent,
            "batch": self.batch,
            "live_trials": sorted(self._live),
            "batch_results": dict(self._batch_results),
            "searcher": self.searcher.get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from ``get_state()``, restoring the wrapped searcher too."""
        try:
            self.max_concurrent = state["max_concurrent"]
            self.batch = state["batch"]
            self._live = set(state["live_trials"])
            self._batch_results = dict(state["batch_results"])
            inner = state["searcher"]
        except (KeyError, TypeError) as exc:
            raise RestoreError(
                f"ConcurrencyLimiter state lacks {exc}; pass a dict made by "
                f"ConcurrencyLimiter.get_state()."
            ) from exc
        self.searcher.set_state(inner)
