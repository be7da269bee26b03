"""OptunaSearch driven by hand: suggest, then complete, with no servers."""

from __future__ import annotations

import importlib
import json
import pickle
import statistics
import sys

import cloudpickle
import pytest

optuna = pytest.importorskip("optuna")

import tune_client as tune  # noqa: E402
from tune_client.config import TuneConfig  # noqa: E402
from tune_client.errors import SearchSpaceError, TuneConfigError  # noqa: E402
from tune_client.experiment import ExperimentSpec  # noqa: E402
from tune_client.search import BasicVariantGenerator, Searcher  # noqa: E402
from tune_client.search.optuna import OptunaSearch  # noqa: E402
from tune_head.controller import ExperimentController  # noqa: E402

SPACE = {"x": tune.uniform(-10, 10), "y": tune.uniform(-10, 10)}


def objective(config: dict) -> float:
    return (config["x"] - 3) ** 2 + (config["y"] + 1) ** 2


def setup(searcher: Searcher, space=None, num_samples=40, mode="min") -> Searcher:
    space = SPACE if space is None else space
    searcher.set_search_properties("loss", mode, space, num_samples=num_samples)
    return searcher


def run_trials(searcher: Searcher, count: int, start: int = 0) -> list[dict]:
    """Suggest then complete ``count`` trials in turn; return their configs."""
    configs = []
    for index in range(start, start + count):
        config = searcher.suggest(f"t{index}")
        assert isinstance(config, dict)
        searcher.on_trial_complete(f"t{index}", {"loss": objective(config)})
        configs.append(config)
    return configs


def best_value(searcher: Searcher) -> float:
    return min(objective(config) for config in run_trials(searcher, 40))


def test_tpe_finds_a_better_minimum_than_random_search():
    seeds = [0, 1, 2]
    tpe = [best_value(setup(OptunaSearch(seed=seed))) for seed in seeds]
    rand = [best_value(setup(BasicVariantGenerator(random_state=s))) for s in seeds]
    assert statistics.median(tpe) < statistics.median(rand)
    assert statistics.median(tpe) < 1.0


def test_finished_after_num_samples():
    searcher = setup(OptunaSearch(seed=0), num_samples=3)
    run_trials(searcher, 3)
    assert searcher.suggest("t3") == Searcher.FINISHED


def test_restored_searcher_continues_where_the_saved_one_stopped():
    original = setup(OptunaSearch(seed=0), num_samples=21)
    first = run_trials(original, 10)
    live = original.suggest("t10")
    state = pickle.loads(pickle.dumps(original.get_state()))

    restored = setup(OptunaSearch(seed=0), num_samples=21)
    restored.set_state(state)
    restored.on_trial_complete("t10", {"loss": objective(live)})
    original.on_trial_complete("t10", {"loss": objective(live)})
    later = run_trials(restored, 10, start=11)

    assert not any(config in first for config in later)
    assert later == run_trials(original, 10, start=11)
    assert restored.suggest("t21") == Searcher.FINISHED
    states = [trial.state for trial in restored.study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 21


def test_grid_search_is_rejected():
    space = {"x": tune.uniform(0, 1), "opt": {"lr": tune.grid_search([0.1, 0.2])}}
    with pytest.raises(SearchSpaceError) as info:
        setup(OptunaSearch(), space=space)
    message = str(info.value)
    assert 'param_space["opt"]["lr"]' in message
    assert "grid_search" in message and "tune.choice([0.1, 0.2])" in message


@pytest.mark.parametrize(
    "domain, word",
    [
        (tune.randn(0, 1), "normal"),
        (tune.sample_from(lambda spec: 1), "sample_from"),
        (tune.choice([{"a": tune.uniform(0, 1)}]), "choice()"),
    ],
)
def test_domains_optuna_cannot_sample_are_rejected(domain, word):
    with pytest.raises(SearchSpaceError, match="OptunaSearch") as info:
        setup(OptunaSearch(), space={"p": domain})
    assert word in str(info.value)


def test_every_domain_kind_is_translated_and_nesting_kept():
    space = {
        "lr": tune.loguniform(1e-4, 1e-1),
        "drop": tune.quniform(0.05, 0.5, 0.1),
        "wd": tune.qloguniform(1e-3, 1.0, 1e-3),
        "opt": {
            "layers": tune.randint(1, 4),
            "units": tune.qrandint(16, 64, 16),
            "batch": tune.lograndint(8, 512),
            "name": tune.choice(["adam", "sgd"]),
            "shape": tune.choice([[1, 2], {"k": 3}]),
        },
        "epochs": 5,
        "tags": ["a", "b"],
    }
    searcher = setup(OptunaSearch(seed=1), space=space)
    for index in range(30):
        config = searcher.suggest(f"t{index}")
        searcher.on_trial_complete(f"t{index}", {"loss": config["lr"]})
        opt = config["opt"]
        assert 1e-4 <= config["lr"] <= 1e-1
        assert config["drop"] in (0.1, 0.2, 0.3, 0.4, 0.5)
        assert 1e-3 <= config["wd"] <= 1.0
        assert abs(config["wd"] / 1e-3 - round(config["wd"] / 1e-3)) < 1e-6
        assert opt["layers"] in (1, 2, 3)
        assert opt["units"] in (16, 32, 48, 64)
        assert 8 <= opt["batch"] < 512 and isinstance(opt["batch"], int)
        assert opt["name"] in ("adam", "sgd")
        assert opt["shape"] in ([1, 2], {"k": 3})
        assert (config["epochs"], config["tags"]) == (5, ["a", "b"])
    assert "opt/units" in searcher.study.trials[0].params


def test_mode_max_is_honoured():
    searcher = setup(OptunaSearch(seed=0), num_samples=20, mode="max")
    for index in range(20):
        config = searcher.suggest(f"t{index}")
        searcher.on_trial_complete(f"t{index}", {"loss": -objective(config)})
    study = searcher.study
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.best_value == max(trial.value for trial in study.trials)


def test_errors_and_missing_metric_are_told_as_failures():
    searcher = setup(OptunaSearch(seed=0))
    searcher.suggest("t0")
    searcher.suggest("t1")
    searcher.on_trial_complete("t0", None, error=True)
    searcher.on_trial_complete("t1", {"accuracy": 0.5})
    searcher.on_trial_complete("unknown", {"loss": 1.0})
    states = [trial.state for trial in searcher.study.trials]
    assert states == [optuna.trial.TrialState.FAIL] * 2


def test_points_to_evaluate_come_first():
    points = [{"x": 3.0, "y": -1.0}, {"x": 1.5}]
    searcher = setup(OptunaSearch(points_to_evaluate=points, seed=0))
    first, second = searcher.suggest("t0"), searcher.suggest("t1")
    assert first == {"x": 3.0, "y": -1.0}
    assert second["x"] == 1.5 and -10 <= second["y"] <= 10


def test_evaluated_rewards_are_told_without_running_the_points():
    points = [{"x": 3.0, "y": -1.0}]
    searcher = setup(OptunaSearch(points_to_evaluate=points, evaluated_rewards=[0.0]))
    assert searcher.suggest("t0") != points[0]
    assert searcher.study.best_value == 0.0
    with pytest.raises(TuneConfigError, match="evaluated_rewards"):
        OptunaSearch(points_to_evaluate=points, evaluated_rewards=[1.0, 2.0])


def test_point_with_unknown_key_is_rejected():
    searcher = setup(OptunaSearch(points_to_evaluate=[{"z": 1.0}]))
    with pytest.raises(TuneConfigError, match=r'points_to_evaluate\[0\]\["z"\]'):
        searcher.suggest("t0")


def test_space_given_to_the_searcher():
    searcher = OptunaSearch(space=SPACE, metric="loss", mode="min", seed=0)
    assert searcher.set_search_properties(None, None, {}, num_samples=2) is False
    assert set(searcher.suggest("t0")) == {"x", "y"}
    with pytest.raises(TuneConfigError, match="one place"):
        searcher.set_search_properties(None, None, {"x": 1}, num_samples=2)


def test_missing_metric_is_an_error():
    searcher = OptunaSearch()
    searcher.set_search_properties(None, None, SPACE, num_samples=2)
    with pytest.raises(TuneConfigError, match="metric"):
        searcher.suggest("t0")


def test_import_without_optuna_says_what_to_install(monkeypatch):
    monkeypatch.delitem(sys.modules, "tune_client.search.optuna")
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ImportError, match=r"pip install 'tune-cluster\[optuna\]'"):
        importlib.import_module("tune_client.search.optuna")


def test_runs_inside_the_controller_and_survives_cloudpickle():
    searcher = OptunaSearch(seed=0)
    spec = ExperimentSpec(
        name="exp",
        trainable_name="train",
        trainable_object_id="0" * 64,
        object_ids=[],
        resources={"cpu": 1.0},
        param_space={**SPACE, "fixed": {"k": 1}},
        tune_config=TuneConfig(
            metric="loss", mode="min", num_samples=3, search_alg=searcher
        ),
    )
    spec = cloudpickle.loads(cloudpickle.dumps(spec))
    controller = ExperimentController("abcdef0123", spec, "/results/exp")
    trials = []
    while (trial := controller.next_trial_to_start()) is not None:
        controller.on_trial_started(trial, "w1")
        trials.append(trial)
    assert len(trials) == 3 and all(t.config["fixed"] == {"k": 1} for t in trials)
    for trial in trials:
        result = {"training_iteration": 1, "loss": objective(trial.config)}
        controller.on_result(trial, 1, json.dumps(result).encode())
        controller.on_trial_ended(trial, "finished", "")
    assert controller.is_finished()
    study = controller.searcher.study
    assert [t.value for t in study.trials] == [
        objective(trial.config) for trial in trials
    ]
