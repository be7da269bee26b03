"""OptunaSearch: Optuna's samplers (TPE by default) behind the Searcher interface.

The param_space is translated once into Optuna distributions, one per search
domain, named by its key path joined with "/" (``{"opt": {"lr": ...}}`` gives
``"opt/lr"``); constants and nested dicts pass through into every config.

* ``uniform``/``loguniform`` become a ``FloatDistribution`` (``log=True`` for
  log sampling); ``randint``/``lograndint`` an ``IntDistribution`` (the upper
  bound made inclusive).
* Quantized domains (``q`` set) are sampled over the range of multiples of
  ``q`` they allow and rounded to the nearest multiple, as our own sampler
  does; ``qrandint`` maps exactly onto an ``IntDistribution`` with ``step=q``.
* ``choice`` becomes a ``CategoricalDistribution`` of its values when they are
  distinct ``None``/bool/int/float/str; other categories (lists, dicts) are
  encoded by their index and a fresh copy of the chosen value goes into the
  config.
* Optuna distributions may also be given directly as values of the space.
* ``grid_search``, ``sample_from`` and ``randn`` have no Optuna counterpart and
  are rejected with ``SearchSpaceError``.

Trials are driven through Optuna's ask/tell interface, so the study (and its
sampler) is plain data: ``get_state`` pickles it and a restored searcher
carries on from where the saved one stopped.
"""

from __future__ import annotations

import copy
import logging
import math
import numbers
import pickle
from dataclasses import dataclass
from typing import Any

from tune_client.errors import RestoreError, SearchSpaceError, TuneConfigError
from tune_client.search.basic_variant import _check_num_samples
from tune_client.search.sample import (
    Categorical,
    Domain,
    Float,
    Function,
    Integer,
    _copy_value,
    _snap,
)
from tune_client.search.searcher import Searcher
from tune_client.search.variants import GRID_KEY, validate_param_space

try:
    import optuna
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
    from optuna.trial import TrialState
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "OptunaSearch needs the optuna package, which is not installed; run "
        "pip install 'tune-cluster[optuna]'"
    ) from exc

__all__ = ["OptunaSearch"]

log = logging.getLogger(__name__)

_NATIVE_CHOICE_TYPES = (type(None), bool, int, float, str)
_STATE_KEYS = ("study", "live_trials", "suggested")

Path = tuple[str, ...]


# ---------------------------------------------------------------------------
# translating the search space


@dataclass
class _Param:
    """One searched value: its Optuna distribution and how to read it back."""

    path: Path
    distribution: BaseDistribution
    q: float | int | None = None
    bounds: tuple[int, int] | None = None
    choices: list | None = None

    @property
    def name(self) -> str:
        return "/".join(self.path)

    def decode(self, raw: Any) -> Any:
        """The config value for Optuna's ``raw`` parameter value."""
        if self.choices is not None:
            return _copy_value(self.choices[raw])
        if self.q is None:
            return raw
        first, last = self.bounds
        multiple = min(max(round(raw / self.q), first), last)
        if isinstance(self.q, float):
            return _snap(multiple, self.q)
        return multiple * self.q

    def encode(self, value: Any, where: str) -> Any:
        """Optuna's parameter value for a config value from a user's point."""
        if self.choices is None:
            return value
        for index, choice in enumerate(self.choices):
            if choice == value:
                return index
        raise TuneConfigError(
            f"{where}={value!r} is not one of the choices {self.choices!r}; "
            f"use one of them."
        )


def _where(path: Path) -> str:
    return "param_space" + "".join(f'["{key}"]' for key in path)


def _float_param(path: Path, domain: Float) -> _Param:
    if domain.sampler == "normal":
        raise SearchSpaceError(
            f"{_where(path)}: OptunaSearch cannot sample {domain!r} (a normal "
            f"distribution); use tune.uniform() or tune.loguniform() with bounds."
        )
    log_scale = domain.sampler == "loguniform"
    if domain.q is None:
        distribution = FloatDistribution(domain.lower, domain.upper, log=log_scale)
        return _Param(path, distribution)
    first, last = domain._multiples()
    low, high = _snap(first, domain.q), _snap(last, domain.q)
    distribution = FloatDistribution(low, high, log=log_scale)
    return _Param(path, distribution, q=float(domain.q), bounds=(first, last))


def _integer_param(path: Path, domain: Integer) -> _Param:
    log_scale = domain.sampler == "loguniform"
    if domain.q is None:
        distribution = IntDistribution(domain.lower, domain.upper - 1, log=log_scale)
        return _Param(path, distribution)
    first, last = domain._multiples()
    low, high = first * domain.q, last * domain.q
    if not log_scale:
        return _Param(path, IntDistribution(low, high, step=domain.q))
    distribution = IntDistribution(low, high, log=True)
    return _Param(path, distribution, q=domain.q, bounds=(first, last))


def _categorical_param(path: Path, domain: Categorical) -> _Param:
    categories = domain.categories
    for category in categories:
        if _holds_domain(category):
            raise SearchSpaceError(
                f"{_where(path)}: OptunaSearch cannot sample search domains "
                f"nested inside choice() categories; give each nested value its "
                f"own key of param_space."
            )
    native = all(isinstance(c, _NATIVE_CHOICE_TYPES) for c in categories)
    distinct = all(categories.index(c) == i for i, c in enumerate(categories))
    if native and distinct:
        return _Param(path, CategoricalDistribution(categories))
    indices = list(range(len(categories)))
    return _Param(path, CategoricalDistribution(indices), choices=list(categories))


def _holds_domain(value: Any) -> bool:
    if isinstance(value, (Domain, BaseDistribution)):
        return True
    if isinstance(value, dict):
        return any(_holds_domain(item) for item in value.values())
    return False


def _param_for(path: Path, value: Any) -> _Param | None:
    """The searched parameter at ``path``, or None if ``value`` is a constant."""
    if isinstance(value, BaseDistribution):
        return _Param(path, value)
    if isinstance(value, Float):
        return _float_param(path, value)
    if isinstance(value, Integer):
        return _integer_param(path, value)
    if isinstance(value, Categorical):
        return _categorical_param(path, value)
    if isinstance(value, Function):
        raise SearchSpaceError(
            f"{_where(path)}: OptunaSearch cannot use {value!r}, because Optuna "
            f"must know every parameter's range; compute the value inside the "
            f"trainable from the sampled ones instead."
        )
    if isinstance(value, Domain):
        raise SearchSpaceError(
            f"{_where(path)}: OptunaSearch does not know the custom domain "
            f"{type(value).__name__}; use tune.uniform, randint or choice."
        )
    return None


def _collect_params(space: dict, path: Path = ()) -> dict[Path, _Param]:
    """Every searched parameter of ``space``, keyed by its key path."""
    params: dict[Path, _Param] = {}
    for key, value in space.items():
        here = (*path, key)
        if isinstance(value, dict) and GRID_KEY in value:
            raise SearchSpaceError(
                f"{_where(here)}: OptunaSearch does not support grid_search; use "
                f"tune.choice({value[GRID_KEY]!r}) to let Optuna pick among the "
                f"values, or BasicVariantGenerator for an exhaustive grid."
            )
        if isinstance(value, dict):
            params.update(_collect_params(value, here))
        elif (param := _param_for(here, value)) is not None:
            params[here] = param
    _check_unique_names(params)
    return params


def _check_unique_names(params: dict[Path, _Param]) -> None:
    seen: dict[str, Path] = {}
    for path, param in params.items():
        if param.name in seen and seen[param.name] != path:
            raise SearchSpaceError(
                f"{_where(path)} and {_where(seen[param.name])} both map to the "
                f"Optuna parameter {param.name!r}; rename a key so that no key "
                f"contains '/'."
            )
        seen[param.name] = path


def _build_config(space: dict, values: dict[Path, Any], path: Path = ()) -> dict:
    """``space`` with each searched parameter replaced by its value."""
    config = {}
    for key, value in space.items():
        here = (*path, key)
        if here in values:
            config[key] = values[here]
        elif isinstance(value, dict):
            config[key] = _build_config(value, values, here)
        else:
            config[key] = _copy_value(value)
    return config


# ---------------------------------------------------------------------------
# points_to_evaluate


def _check_points(points: Any, rewards: Any) -> tuple[list[dict], list | None]:
    if points is None:
        points = []
    if not isinstance(points, (list, tuple)) or not all(
        isinstance(point, dict) for point in points
    ):
        raise TuneConfigError(
            "OptunaSearch: points_to_evaluate must be a list of config dicts, "
            "e.g. points_to_evaluate=[{'lr': 0.01}]."
        )
    if rewards is None:
        return copy.deepcopy(list(points)), None
    if not isinstance(rewards, (list, tuple)) or len(rewards) != len(points):
        raise TuneConfigError(
            f"OptunaSearch: evaluated_rewards must be a list with one metric value "
            f"per point of points_to_evaluate ({len(points)} points); got "
            f"{rewards!r}."
        )
    return copy.deepcopy(list(points)), list(rewards)


def _encode_point(
    point: dict, space: dict, params: dict[Path, _Param], where: str, path: Path = ()
) -> dict[str, Any]:
    """Optuna's parameter values for a (possibly nested, partial) point.

    A key that is a constant of the space may appear with that same value.
    """
    encoded: dict[str, Any] = {}
    for key, value in point.items():
        here = (*path, key)
        label = where + "".join(f'["{part}"]' for part in here)
        if here in params:
            encoded[params[here].name] = params[here].encode(value, label)
        elif key not in space:
            names = sorted(param.name for param in params.values())
            raise TuneConfigError(
                f"{label} is not a key of the search space; the searched "
                f"parameters are {names}."
            )
        elif isinstance(value, dict) and isinstance(space[key], dict):
            encoded.update(_encode_point(value, space[key], params, where, here))
        elif value != space[key]:
            raise TuneConfigError(
                f"{label}={value!r}, but the space holds the constant "
                f"{space[key]!r} there; OptunaSearch cannot change a constant, so "
                f"drop the key from the point or make it a search domain."
            )
    return encoded


# ---------------------------------------------------------------------------
# the searcher


class OptunaSearch(Searcher):
    """Search with an Optuna sampler (TPE by default), as Ray Tune's OptunaSearch.

    ``space`` is a param_space-style dict (tune domains or Optuna
    distributions); if None, the Tuner's param_space is used (give the space in
    one place only). ``points_to_evaluate`` are (partial) configs tried first;
    with ``evaluated_rewards`` (one metric value per point) they are told to
    Optuna as already evaluated instead of being run. ``sampler`` is an Optuna
    sampler; otherwise a ``TPESampler(seed=seed)`` is made. ``suggest``
    returns ``Searcher.FINISHED`` after ``num_samples`` suggestions.
    """

    def __init__(
        self,
        space: dict | None = None,
        metric: str | None = None,
        mode: str | None = None,
        points_to_evaluate: list[dict] | None = None,
        sampler: Any = None,
        seed: int | None = None,
        evaluated_rewards: list | None = None,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        _check_sampler(sampler, seed)
        self._points, self._rewards = _check_points(
            points_to_evaluate, evaluated_rewards
        )
        self._sampler = sampler
        self._seed = seed
        self._own_space = space is not None
        self._space: dict | None = None
        self._params: dict[Path, _Param] = {}
        if space is not None:
            self._set_space(space)
        self._num_samples: int | None = None
        self._study: optuna.Study | None = None
        self._live: dict[str, int] = {}
        self._suggested = 0

    # -- configuration ------------------------------------------------------

    def _set_space(self, space: Any) -> None:
        if callable(space) and not isinstance(space, dict):
            raise TuneConfigError(
                "OptunaSearch: define-by-run functions are not supported as "
                "space; pass a dict of tune domains or Optuna distributions."
            )
        validate_param_space(space)
        self._params = _collect_params(space)
        self._space = space

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        """Take metric, mode, the param_space (``config``) and ``num_samples``.

        Returns False when the searcher keeps the ``space`` it was built with
        (then ``config`` must be empty). ``num_samples=-1`` means no limit.
        """
        self._set_metric_mode(metric, mode)
        if "num_samples" in spec:
            self._num_samples = _check_num_samples(spec["num_samples"])
        if self._own_space:
            if config:
                raise TuneConfigError(
                    "OptunaSearch was given a space and the Tuner a param_space; "
                    "give the search space in one place only (param_space, or "
                    "OptunaSearch(space=...))."
                )
            return False
        self._set_space({} if config is None else config)
        return True

    @property
    def study(self) -> optuna.Study:
        """The Optuna study behind the search (created on first use)."""
        return self._ensure_study()

    def _ensure_study(self) -> optuna.Study:
        if self._study is not None:
            return self._study
        if self._space is None:
            raise TuneConfigError(
                "OptunaSearch has no search space; pass param_space to the Tuner "
                "or space= to OptunaSearch."
            )
        if not self.metric or not self.mode:
            raise TuneConfigError(
                f"OptunaSearch needs a metric and a mode, but has metric="
                f"{self.metric!r}, mode={self.mode!r}; pass metric= and "
                f'mode="min" or "max" to OptunaSearch(...) or to TuneConfig(...).'
            )
        self._study = self._new_study()
        return self._study

    def _new_study(self) -> optuna.Study:
        sampler = self._sampler or optuna.samplers.TPESampler(seed=self._seed)
        direction = "minimize" if self.mode == "min" else "maximize"
        study = optuna.create_study(sampler=sampler, direction=direction)
        for index, point in enumerate(self._points):
            where = f"points_to_evaluate[{index}]"
            params = _encode_point(point, self._space, self._params, where)
            if self._rewards is None:
                study.enqueue_trial(params)
            else:
                study.add_trial(self._evaluated_trial(params, index))
        return study

    def _evaluated_trial(self, params: dict[str, Any], index: int):
        missing = [p.name for p in self._params.values() if p.name not in params]
        if missing:
            raise TuneConfigError(
                f"points_to_evaluate[{index}] has a reward in evaluated_rewards "
                f"but no value for {missing}; give every searched parameter."
            )
        reward = self._rewards[index]
        if isinstance(reward, bool) or not isinstance(reward, numbers.Real):
            raise TuneConfigError(
                f"evaluated_rewards[{index}]={reward!r} is not a number; pass the "
                f"metric value the point scored."
            )
        distributions = {p.name: p.distribution for p in self._params.values()}
        return optuna.trial.create_trial(
            params=params, distributions=distributions, value=float(reward)
        )

    # -- suggesting -----------------------------------------------------------

    @property
    def live_trials(self) -> frozenset[str]:
        """Ids of suggested trials whose outcome Optuna has not been told yet."""
        return frozenset(self._live)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next config Optuna asks for, or FINISHED after ``num_samples``."""
        study = self._ensure_study()
        if self._num_samples is not None and self._suggested >= self._num_samples:
            return Searcher.FINISHED
        distributions = {p.name: p.distribution for p in self._params.values()}
        trial = study.ask(fixed_distributions=distributions)
        self._live[trial_id] = trial.number
        self._suggested += 1
        values = {
            path: param.decode(trial.params[param.name])
            for path, param in self._params.items()
        }
        return _build_config(self._space, values)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        """Tell Optuna the trial's metric value, or that it failed."""
        number = self._live.pop(trial_id, None)
        if number is None:
            return
        study = self._ensure_study()
        if error:
            study.tell(number, state=TrialState.FAIL)
            return
        value = (result or {}).get(self.metric)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            log.warning(
                "OptunaSearch: trial %s ended without a number in %r (its last "
                "result has %s); Optuna records it as failed",
                trial_id,
                self.metric,
                sorted(result or {}),
            )
            study.tell(number, state=TrialState.FAIL)
            return
        if math.isnan(value):
            study.tell(number, state=TrialState.FAIL)
            return
        study.tell(number, float(value))

    # -- saving ---------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """The pickled study plus the live trials and the suggestion count.

        Restore by building an OptunaSearch with the same arguments, calling
        ``set_search_properties`` with the same param_space, then ``set_state``.
        """
        state = super().get_state()
        study = None if self._study is None else pickle.dumps(self._study)
        state.update(
            study=study, live_trials=dict(self._live), suggested=self._suggested
        )
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue the search saved by ``get_state``."""
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise RestoreError(
                f"OptunaSearch state lacks {missing}; pass a dict made by "
                f"OptunaSearch.get_state()."
            )
        super().set_state(state)
        study = state["study"]
        self._study = None if study is None else pickle.loads(study)
        self._live = dict(state["live_trials"])
        self._suggested = state["suggested"]


def _check_sampler(sampler: Any, seed: Any) -> None:
    if sampler is not None and not isinstance(sampler, optuna.samplers.BaseSampler):
        raise TuneConfigError(
            f"OptunaSearch: sampler={sampler!r} is not an Optuna sampler; pass "
            f"e.g. optuna.samplers.TPESampler(), or None for TPE."
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TuneConfigError(f"OptunaSearch: seed={seed!r} must be an int, or None.")
    if sampler is not None and seed is not None:
        log.warning(
            "OptunaSearch: seed=%r is ignored because a sampler was given; seed "
            "the sampler itself instead",
            seed,
        )
