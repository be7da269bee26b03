"""BasicVariantGenerator: grid and random search, the default searcher.

Trials come in passes. Each of ``points_to_evaluate`` is one pass (the point's
values override the param_space; grid axes it leaves open are still expanded),
then the remaining ``num_samples - len(points_to_evaluate)`` passes cover the
whole grid each. Every pass draws its random values from one seeded
``random.Random``, so a pass can be replayed from the rng state at its start:
that is how a restored generator continues without repeating configs.
"""

from __future__ import annotations

import copy
import random
import sys
from collections.abc import Iterator
from typing import Any

from tune_client.errors import RestoreError, SearchSpaceError, TuneConfigError
from tune_client.search.searcher import Searcher, _check_limit
from tune_client.search.variants import (
    GRID_KEY,
    count_grid_variants,
    generate_variants,
    validate_param_space,
)

__all__ = ["BasicVariantGenerator"]

_STATE_KEYS = ("rng_state", "pass_index", "pass_emitted", "produced", "live_trials")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_points(points: Any) -> list[dict]:
    if points is None:
        return []
    if not isinstance(points, (list, tuple)):
        raise TuneConfigError(
            f"points_to_evaluate must be a list of config dicts, got "
            f"{type(points).__name__}; e.g. points_to_evaluate=[{{'lr': 0.01}}]."
        )
    for index, point in enumerate(points):
        if not isinstance(point, dict):
            raise TuneConfigError(
                f"points_to_evaluate[{index}] must be a dict of parameter values, "
                f"got {type(point).__name__}."
            )
    return copy.deepcopy(list(points))


def _apply_point(space: dict, point: dict, where: str) -> dict:
    """The space with the point's values in place of domains, grids or values."""
    merged = dict(space)
    for key, value in point.items():
        here = f'{where}["{key}"]'
        if key not in merged:
            raise SearchSpaceError(
                f"{here} is not a key of param_space, so it cannot preset a "
                f"value; add {key!r} to param_space or remove it from the point."
            )
        current = merged[key]
        nested = isinstance(current, dict) and GRID_KEY not in current
        if isinstance(value, dict) and nested:
            merged[key] = _apply_point(current, value, here)
        else:
            merged[key] = value
    return merged


def _check_num_samples(num_samples: Any) -> int:
    if not _is_int(num_samples) or num_samples == 0 or num_samples < -1:
        raise TuneConfigError(
            f"num_samples={num_samples!r} is not valid; pass a positive int, or "
            f"-1 to keep sampling until a stopping condition ends the experiment."
        )
    return sys.maxsize if num_samples == -1 else num_samples


class BasicVariantGenerator(Searcher):
    """Grid search and random sampling of the param_space, as in Ray Tune.

    After ``set_search_properties(metric, mode, param_space, num_samples=N)``
    it suggests ``N`` passes over the grid cross product (``N *
    count_grid_variants(param_space)`` trials without points), the
    ``points_to_evaluate`` first, then returns ``Searcher.FINISHED``. Each
    point is a partial config whose keys override the sampled values and takes
    the place of one of the ``N`` passes. ``random_state`` (an int) makes the
    sequence reproducible. ``max_concurrent > 0`` makes ``suggest`` return None
    while that many suggested trials are live. ``constant_grid_search`` draws
    the random values once per pass and shares them across its grid points.
    """

    def __init__(
        self,
        points_to_evaluate: list[dict] | None = None,
        max_concurrent: int = 0,
        random_state: int | None = None,
        constant_grid_search: bool = False,
    ) -> None:
        super().__init__()
        _check_limit("BasicVariantGenerator", max_concurrent, 0)
        if random_state is not None and not _is_int(random_state):
            raise TuneConfigError(
                f"random_state={random_state!r}: pass an int seed, or None for a "
                f"different sequence on every run."
            )
        self._points = _check_points(points_to_evaluate)
        self._max_concurrent = max_concurrent
        self._constant_grid_search = bool(constant_grid_search)
        self._rng = random.Random(random_state)
        self._space: dict | None = None
        self._point_spaces: list[dict] = []
        self._num_passes = 0
        self._total = 0
        self._pass_index = 0
        self._pass_emitted = 0
        self._pass_rng_state: Any = None
        self._produced = 0
        self._live: set[str] = set()
        self._iterator: Iterator[dict] | None = None

    # -- configuration ------------------------------------------------------

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        """Take the param_space (``config``) and ``num_samples`` (default 1).

        Validates the space and the points now, so mistakes surface before any
        trial starts. ``num_samples=-1`` means no limit. Calling it again
        replaces the space but keeps the position in the sequence.
        """
        self._set_metric_mode(metric, mode)
        space = {} if config is None else config
        validate_param_space(space)
        num_samples = _check_num_samples(spec.get("num_samples", 1))
        self._point_spaces = [
            _apply_point(space, point, f"points_to_evaluate[{index}]")
            for index, point in enumerate(self._points)
        ]
        grid_size = count_grid_variants(space)
        repeats = max(num_samples - len(self._points), 0)
        self._total = (
            sum(count_grid_variants(s) for s in self._point_spaces)
            + repeats * grid_size
        )
        self._num_passes = len(self._points) + repeats
        self._space = space
        self._iterator = None
        return True

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Limit live suggestions (0 = no limit); always accepted."""
        self._max_concurrent = _check_limit("set_max_concurrency", max_concurrent, 0)
        return True

    @property
    def total_trials(self) -> int:
        """How many configs the whole search yields; 0 before the space is set."""
        return self._total

    @property
    def total_samples(self) -> int:
        """Ray's name for ``total_trials``."""
        return self._total

    @property
    def live_trials(self) -> frozenset[str]:
        """Ids of suggested trials not completed yet (they hold concurrency slots)."""
        return frozenset(self._live)

    def is_finished(self) -> bool:
        """True once every config has been suggested."""
        return self._space is not None and self._produced >= self._total

    # -- suggesting -----------------------------------------------------------

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next config, None while at the concurrency limit, or FINISHED."""
        if self._space is None:
            raise TuneConfigError(
                "BasicVariantGenerator.suggest() was called before "
                "set_search_properties(); pass the param_space there first."
            )
        if self._produced >= self._total:
            return Searcher.FINISHED
        if self._max_concurrent and len(self._live) >= self._max_concurrent:
            return None
        config = self._next_config()
        if config is None:
            return Searcher.FINISHED
        self._live.add(trial_id)
        return config

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        """Free the trial's concurrency slot."""
        self._live.discard(trial_id)

    def _next_config(self) -> dict | None:
        while self._pass_index < self._num_passes:
            if self._iterator is None:
                self._begin_pass()
            config = next(self._iterator, None)
            if config is not None:
                self._pass_emitted += 1
                self._produced += 1
                return config
            self._iterator = None
            self._pass_index += 1
            self._pass_emitted = 0
        return None

    def _begin_pass(self) -> None:
        """Start the current pass; after a restore, skip what it already gave."""
        index = self._pass_index
        space = self._point_spaces[index] if index < len(self._points) else self._space
        self._pass_rng_state = self._rng.getstate()
        self._iterator = generate_variants(
            space, self._rng, constant_grid_search=self._constant_grid_search
        )
        for _ in range(self._pass_emitted):
            next(self._iterator, None)

    # -- saving ---------------------------------------------------------------

    def _resume_rng_state(self) -> Any:
        """The rng state from which the current pass can be replayed."""
        if self._iterator is not None:
            return self._pass_rng_state
        return self._rng.getstate()

    def get_state(self) -> dict[str, Any]:
        """The rng state and position, enough to continue without repeats.

        The param_space is not included (it may hold unpicklable functions):
        restore by building a generator with the same arguments, calling
        ``set_search_properties`` with the same param_space, then
        ``set_state``.
        """
        state = super().get_state()
        state.update(
            rng_state=self._resume_rng_state(),
            pass_index=self._pass_index,
            pass_emitted=self._pass_emitted,
            produced=self._produced,
            live_trials=sorted(self._live),
            max_concurrent=self._max_concurrent,
        )
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue the sequence saved by ``get_state``."""
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise RestoreError(
                f"BasicVariantGenerator state lacks {missing}; pass a dict made "
                f"by BasicVariantGenerator.get_state()."
            )
        super().set_state(state)
        self._rng.setstate(state["rng_state"])
        self._pass_index = state["pass_index"]
        self._pass_emitted = state["pass_emitted"]
        self._produced = state["produced"]
        self._live = set(state["live_trials"])
        self._max_concurrent = state.get("max_concurrent", self._max_concurrent)
        self._iterator = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the live iterator; unpickling replays the pass."""
        state = self.__dict__.copy()
        if self._iterator is not None:
            rng = random.Random()
            rng.setstate(self._pass_rng_state)
            state["_rng"] = rng
            state["_iterator"] = None
        return state
