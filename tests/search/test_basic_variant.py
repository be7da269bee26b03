"""Unit tests for BasicVariantGenerator, Searcher and ConcurrencyLimiter."""

from __future__ import annotations

import pickle

import pytest

from tune_client.errors import (
    RestoreError,
    SearchSpaceError,
    TuneConfigError,
)
from tune_client.search import BasicVariantGenerator, ConcurrencyLimiter, Searcher
from tune_client.search import sample as tune

FINISHED = Searcher.FINISHED


def grid_space():
    """Two grid axes (3 and 2 values, one nested) and one random value."""
    return {
        "act": tune.grid_search(["relu", "tanh", "gelu"]),
        "model": {"depth": tune.grid_search([2, 4]), "lr": tune.uniform(0, 1)},
    }


def make(space=None, num_samples=1, **kwargs):
    generator = BasicVariantGenerator(**kwargs)
    generator.set_search_properties(
        "loss", "min", grid_space() if space is None else space, num_samples=num_samples
    )
    return generator


def take(searcher, n, start=0):
    out = []
    for i in range(start, start + n):
        config = searcher.suggest(f"t{i}")
        assert isinstance(config, dict), config
        out.append(config)
    return out


def drain(searcher, start=0):
    out = []
    while True:
        config = searcher.suggest(f"t{start + len(out)}")
        if config == FINISHED:
            return out
        out.append(config)


def grid_key(config):
    return config["act"], config["model"]["depth"]


# -- counts and order ---------


def test_num_samples_repeats_the_whole_grid():
    generator = make(num_samples=3, random_state=0)
    assert generator.total_trials == 18
    configs = drain(generator)
    assert len(configs) == 18
    keys = [grid_key(c) for c in configs]
    assert keys[:6] == keys[6:12] == keys[12:]
    assert len(set(keys[:6])) == 6
    assert len({c["model"]["lr"] for c in configs}) == 18
    assert generator.suggest("again") == FINISHED
    assert generator.is_finished()


def test_space_without_grid_gives_num_samples_trials():
    generator = make({"x": tune.uniform(0, 1)}, num_samples=4, random_state=0)
    assert generator.total_trials == 4
    assert len(drain(generator)) == 4


def test_empty_space_still_runs_num_samples_trials():
    generator = make(space={}, num_samples=2)
    assert drain(generator) == [{}, {}]


# -- points_to_evaluate ---------


def test_points_come_first_and_count_as_samples():
    points = [{"x": 0.5}, {"x": 0.25, "m": {"k": "fixed"}}]
    space = {"x": tune.uniform(0, 1), "m": {"k": tune.choice(["a", "b"])}}
    generator = make(space, num_samples=5, points_to_evaluate=points, random_state=1)
    assert generator.total_trials == 5
    configs = drain(generator)
    assert len(configs) == 5
    assert configs[0]["x"] == 0.5 and configs[0]["m"]["k"] in ("a", "b")
    assert configs[1] == {"x": 0.25, "m": {"k": "fixed"}}
    assert all(0 <= c["x"] <= 1 and c["x"] not in (0.5, 0.25) for c in configs[2:])


def test_point_fixing_a_grid_axis_is_one_trial_else_it_expands_the_grid():
    fixed = make(num_samples=2, points_to_evaluate=[{"act": "relu", "model": {}}])
    # Only "act" is fixed: the point still expands the depth axis (2 trials).
    assert fixed.total_trials == 2 + 6
    configs = drain(fixed)
    assert [grid_key(c) for c in configs[:2]] == [("relu", 2), ("relu", 4)]
    both = make(num_samples=2, points_to_evaluate=[{"act": "x", "model": {"depth": 8}}])
    assert both.total_trials == 1 + 6
    assert grid_key(drain(both)[0]) == ("x", 8)


def test_more_points_than_num_samples_are_all_evaluated():
    points = [{"x": i} for i in range(3)]
    generator = make(
        {"x": tune.uniform(0, 1)}, num_samples=1, points_to_evaluate=points
    )
    assert [c["x"] for c in drain(generator)] == [0, 1, 2]


def test_point_with_unknown_key_names_it():
    generator = BasicVariantGenerator(points_to_evaluate=[{"model": {"nope": 1}}])
    with pytest.raises(
        SearchSpaceError, match=r'points_to_evaluate\[0\]\["model"\]\["nope"\] is not'
    ):
        generator.set_search_properties(None, None, grid_space(), num_samples=1)


# -- seeding, saving, restoring ---------


def test_same_seed_same_sequence():
    assert drain(make(num_samples=2, random_state=7)) == drain(
        make(num_samples=2, random_state=7)
    )
    assert drain(make(num_samples=2, random_state=7)) != drain(
        make(num_samples=2, random_state=8)
    )


@pytest.mark.parametrize("already", [0, 4, 6, 7, 17, 18])
def test_restored_state_continues_without_repeats(already):
    reference = drain(make(num_samples=3, random_state=3))
    original = make(num_samples=3, random_state=3)
    done = take(original, already)
    state = pickle.loads(pickle.dumps(original.get_state()))

    restored = make(num_samples=3, random_state=None)
    restored.set_state(state)
    rest = drain(restored, start=already)
    assert done + rest == reference
    assert drain(original, start=already) == rest


def test_unseeded_generator_restores_from_its_rng_state(tmp_path):
    original = make(num_samples=2, constant_grid_search=True)
    done = take(original, 5)
    original.save(str(tmp_path / "searcher.pkl"))
    expected = drain(original, start=5)

    restored = make(num_samples=2, constant_grid_search=True)
    restored.restore(str(tmp_path / "searcher.pkl"))
    rest = drain(restored, start=5)
    assert rest == expected
    assert len(done) + len(rest) == 12


def test_pickled_generator_continues_mid_pass():
    original = make(num_samples=2, random_state=11)
    take(original, 3)
    copy = pickle.loads(pickle.dumps(original))
    assert drain(copy, start=3) == drain(original, start=3)


def test_bad_state_raises_restore_error(tmp_path):
    with pytest.raises(RestoreError, match=r"lacks \['rng_state'"):
        make().set_state({"metric": "loss"})
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(RestoreError, match="cannot read searcher state"):
        make().restore(str(tmp_path / "junk.pkl"))


# -- concurrency ---------


def test_max_concurrent_holds_suggestions_until_trials_complete():
    generator = make(num_samples=1, max_concurrent=2, random_state=0)
    take(generator, 2)
    assert generator.suggest("t2") is None
    generator.on_trial_complete("t0")
    assert isinstance(generator.suggest("t2"), dict)
    assert generator.suggest("t3") is None


class Recorder(Searcher):
    """A searcher that hands out numbered configs and records callbacks."""

    def __init__(self, limit=100):
        super().__init__(metric="acc", mode="max")
        self.limit = limit
        self.given = 0
        self.completed = []
        self.results = []

    def suggest(self, trial_id):
        if self.given >= self.limit:
            return Searcher.FINISHED
        self.given += 1
        return {"n": self.given}

    def on_trial_result(self, trial_id, result):
        self.results.append(trial_id)

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.completed.append((trial_id, result, error))

    def get_state(self):
        return {**super().get_state(), "given": self.given}

    def set_state(self, state):
        super().set_state(state)
        self.given = state["given"]


def test_concurrency_limiter_holds_and_forwards():
    inner = Recorder()
    limiter = ConcurrencyLimiter(inner, max_concurrent=2)
    assert (limiter.metric, limiter.mode) == ("acc", "max")
    assert take(limiter, 2) == [{"n": 1}, {"n": 2}]
    assert limiter.suggest("t2") is None
    assert inner.given == 2
    limiter.on_trial_result("t0", {"acc": 1})
    limiter.on_trial_result("stranger", {"acc": 1})
    limiter.on_trial_complete("t0", {"acc": 1})
    assert inner.results == ["t0"]
    assert inner.completed == [("t0", {"acc": 1}, False)]
    assert limiter.suggest("t2") == {"n": 3}
    assert limiter.live_trials == {"t1", "t2"}


def test_concurrency_limiter_batch_waits_for_the_whole_batch():
    inner = Recorder()
    limiter = ConcurrencyLimiter(inner, max_concurrent=2, batch=True)
    take(limiter, 2)
    limiter.on_trial_complete("t0", {"acc": 1})
    assert limiter.suggest("t2") is None
    assert inner.completed == []
    limiter.on_trial_complete("t1", None, error=True)
    assert [c[0] for c in inner.completed] == ["t0", "t1"]
    assert inner.completed[1][2] is True
    assert limiter.suggest("t2") == {"n": 3}


def test_concurrency_limiter_passes_finished_and_wraps_basic_variant():
    limiter = ConcurrencyLimiter(Recorder(limit=1), max_concurrent=3)
    assert limiter.suggest("t0") == {"n": 1}
    assert limiter.suggest("t1") == FINISHED
    assert limiter.live_trials == {"t0"}
    wrapped = ConcurrencyLimiter(BasicVariantGenerator(random_state=0), 1)
    assert wrapped.set_search_properties(None, None, grid_space(), num_samples=1)
    assert isinstance(wrapped.suggest("a"), dict)
    assert wrapped.suggest("b") is None


def test_concurrency_limiter_state_round_trip():
    limiter = ConcurrencyLimiter(Recorder(), max_concurrent=2)
    take(limiter, 2)
    state = pickle.loads(pickle.dumps(limiter.get_state()))
    restored = ConcurrencyLimiter(Recorder(), max_concurrent=2)
    restored.set_state(state)
    assert restored.live_trials == {"t0", "t1"}
    assert restored.suggest("t2") is None
    restored.on_trial_complete("t1")
    assert restored.suggest("t2") == {"n": 3}


# -- argument checks ---------


@pytest.mark.parametrize(
    ("make_it", "message"),
    [
        (
            lambda: Searcher(mode="minimize"),
            r"mode='minimize' is not valid.*'min'.*'max'",
        ),
        (lambda: Searcher(metric=3), r"metric=3 must be the str name"),
        (
            lambda: Recorder().set_search_properties("m", "best", {}),
            r"mode='best' is not valid",
        ),
        (lambda: ConcurrencyLimiter(Recorder(), 0), r"=0\): pass an int of at least 1"),
        (lambda: ConcurrencyLimiter(object(), 1), r"wraps a Searcher, got object"),
        (lambda: BasicVariantGenerator(max_concurrent=-1), r"max_concurrent=-1\)"),
        (lambda: make().set_max_concurrency(1.5), r"set_max_concurrency\("),
        (lambda: BasicVariantGenerator(random_state="x"), r"random_state='x'"),
        (lambda: BasicVariantGenerator(points_to_evaluate={}), r"list of config"),
        (lambda: BasicVariantGenerator(points_to_evaluate=[1]), r"\[0\] must be a"),
        (lambda: make(num_samples=0), r"num_samples=0 is not valid"),
        (lambda: BasicVariantGenerator().suggest("t"), r"before set_search_prop"),
        (lambda: make(space={"a": {"grid_search": []}}), r'param_space\["a"\]'),
    ],
)
def test_bad_arguments_raise_config_errors(make_it, message):
    with pytest.raises(TuneConfigError, match=message):
        make_it()


def test_mode_errors_are_not_search_space_errors():
    with pytest.raises(TuneConfigError) as caught:
        Searcher(mode="avg")
    assert not isinstance(caught.value, SearchSpaceError)


def test_num_samples_minus_one_means_unbounded():
    generator = make({"x": tune.uniform(0, 1)}, num_samples=-1, random_state=0)
    assert generator.total_trials > 10**9
    assert len(take(generator, 50)) == 50


def test_base_searcher_takes_metric_and_mode_and_saves_them(tmp_path):
    searcher = Recorder()
    assert searcher.set_search_properties("loss", "min", {"a": 1}) is False
    assert (searcher.metric, searcher.mode) == ("loss", "min")
    take(searcher, 4)
    searcher.save(str(tmp_path / "sub" / "state.pkl"))
    other = Recorder()
    other.restore(str(tmp_path / "sub" / "state.pkl"))
    assert (other.metric, other.mode, other.given) == ("loss", "min", 4)
    assert other.suggest("t4") == {"n": 5}
