"""Population based training: poor trials take over good trials' checkpoints.

Every ``perturbation_interval`` (in units of ``time_attr``) a trial's latest
score is ranked against the population. A trial in the bottom
``quantile_fraction`` restarts from the latest checkpoint of a trial drawn from
the top fraction, with that trial's config explored: each mutated value is
resampled with ``resample_probability``, otherwise perturbed (numbers scaled by
one of ``perturbation_factors``, list entries moved to a neighbour).
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tune_client.errors import TuneConfigError
from tune_client.schedulers.async_hyperband import _require_metric_mode
from tune_client.schedulers.trial_scheduler import TrialScheduler
from tune_client.search.sample import Domain


@dataclass
class _Member:
    score: float | None = None
    last_perturbed_at: float = 0.0


class PopulationBasedTraining(TrialScheduler):
    """Ray Tune's PBT for function trainables that checkpoint."""

    def __init__(
        self,
        time_attr: str = "time_total_s",
        metric: str | None = None,
        mode: str | None = None,
        perturbation_interval: float = 60.0,
        burn_in_period: float = 0.0,
        hyperparam_mutations: Mapping[str, Any] | None = None,
        quantile_fraction: float = 0.25,
        resample_probability: float = 0.25,
        perturbation_factors: tuple[float, float] = (1.2, 0.8),
        custom_explore_fn: Callable[[dict], dict] | None = None,
        log_config: bool = True,
        require_attrs: bool = True,
        synch: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__(metric, mode)
        if not hyperparam_mutations and custom_explore_fn is None:
            raise TuneConfigError(
                "PopulationBasedTraining needs hyperparam_mutations (e.g. "
                '{"lr": tune.loguniform(1e-4, 1e-1)}) or a custom_explore_fn.'
            )
        if not 0 < quantile_fraction <= 0.5:
            raise TuneConfigError(
                "PopulationBasedTraining: quantile_fraction must be in (0, 0.5]."
            )
        if perturbation_interval <= 0:
            raise TuneConfigError(
                "PopulationBasedTraining: perturbation_interval must be positive."
            )
        if synch:
            raise TuneConfigError(
                "PopulationBasedTraining(synch=True) is not supported; use the "
                "default asynchronous mode."
            )
        self.time_attr = time_attr
        self.perturbation_interval = perturbation_interval
        self.burn_in_period = burn_in_period
        self.mutations = dict(hyperparam_mutations or {})
        self.quantile_fraction = quantile_fraction
        self.resample_probability = resample_probability
        self.perturbation_factors = perturbation_factors
        self.custom_explore_fn = custom_explore_fn
        self.require_attrs = require_attrs
        self.rng = random.Random(seed)
        self.members: dict[str, _Member] = {}
        self.num_perturbations = 0

    def set_search_properties(self, metric: str | None, mode: str | None) -> bool:
        """Take the experiment's metric/mode unless given here; both must be set.

        PBT ranks trials by them, so without either it fails here, before any
        trial starts, instead of at the first result.
        """
        super().set_search_properties(metric, mode)
        _require_metric_mode(self)
        return True

    def on_trial_add(self, controller: Any, trial: Any) -> None:
        self.members.setdefault(trial.trial_id, _Member())

    def on_trial_result(self, controller: Any, trial: Any, result: dict) -> str:
        if self.metric not in result or self.time_attr not in result:
            if not self.require_attrs:
                return self.CONTINUE
            raise TuneConfigError(
                f"PopulationBasedTraining needs {self.metric!r} and "
                f"{self.time_attr!r} in every result; trial {trial.trial_id} "
                f"reported {sorted(result)}."
            )
        member = self.members.setdefault(trial.trial_id, _Member())
        sign = 1.0 if self.mode == "max" else -1.0
        member.score = sign * float(result[self.metric])
        now = float(result[self.time_attr])
        due = now - member.last_perturbed_at >= self.perturbation_interval
        if not due or now < self.burn_in_period:
            return self.CONTINUE
        member.last_perturbed_at = now
        self._maybe_exploit(controller, trial)
        return self.CONTINUE

    def _quantiles(self) -> tuple[list[str], list[str]]:
        scored = sorted(
            (m.score, trial_id)
            for trial_id, m in self.members.items()
            if m.score is not None
        )
        if len(scored) < 2:
            return [], []
        # Rounded up, so a small population still exploits, but never so far
        # that one trial sits in both halves.
        count = min(math.ceil(len(scored) * self.quantile_fraction), len(scored) // 2)
        ids = [trial_id for _, trial_id in scored]
        return ids[:count], ids[-count:]

    def _maybe_exploit(self, controller: Any, trial: Any) -> None:
        bottom, top = self._quantiles()
        if trial.trial_id not in bottom or not top:
            return
        donor = controller.trials[self.rng.choice(top)]
        if donor.latest_checkpoint is None:
            return
        new_config = self.explore(donor.config)
        if controller.exploit(trial, donor, new_config):
            self.num_perturbations += 1

    def explore(self, config: dict) -> dict:
        """A mutated copy of ``config``."""
        new_config = _mutate(
            copy.deepcopy(config),
            self.mutations,
            self.rng,
            self.resample_probability,
            self.perturbation_factors,
        )
        if self.custom_explore_fn is not None:
            new_config = self.custom_explore_fn(new_config)
        return new_config

    def on_trial_remove(self, controller: Any, trial: Any) -> None:
        self.members.pop(trial.trial_id, None)


def _mutate(
    config: dict,
    mutations: Mapping[str, Any],
    rng: random.Random,
    resample_probability: float,
    factors: tuple[float, float],
) -> dict:
    for key, spec in mutations.items():
        if isinstance(spec, Mapping):
            config[key] = _mutate(
                dict(config.get(key) or {}), spec, rng, resample_probability, factors
            )
            continue
        resample = rng.random() < resample_probability or key not in config
        config[key] = (
            _resample(spec, rng)
            if resample
            else _perturb(config[key], spec, rng, factors)
        )
    return config


def _resample(spec: Any, rng: random.Random) -> Any:
    if isinstance(spec, Domain):
        return spec.sample(rng)
    if isinstance(spec, (list, tuple)):
        return rng.choice(list(spec))
    if callable(spec):
        return spec()
    raise TuneConfigError(
        f"hyperparam_mutations values must be lists, search domains or functions; "
        f"got {spec!r}."
    )


def _perturb(
    value: Any, spec: Any, rng: random.Random, factors: tuple[float, float]
) -> Any:
    if isinstance(spec, (list, tuple)):
        values = list(spec)
        if value not in values:
            return rng.choice(values)
        index = values.index(value) + rng.choice((-1, 1))
        return values[min(max(index, 0), len(values) - 1)]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _resample(spec, rng)
    scaled = value * rng.choice(factors)
    return int(round(scaled)) if isinstance(value, int) else scaled
