"""Unit tests for the search-space domains in tune_client.search.sample."""

from __future__ import annotations

import math
import pickle
import random
import statistics

import pytest

from tune_client.errors import SearchSpaceError
from tune_client.search import sample as tune
from tune_client.search.sample import Categorical, Float, Function, Integer

DRAWS = 2000


def draw(domain, n=DRAWS, seed=0):
    rng = random.Random(seed)
    return [domain.sample(rng) for _ in range(n)]


def is_multiple(value, q):
    return math.isclose(value / q, round(value / q), abs_tol=1e-9)


def double_a(spec):
    return spec.config.a * 2


# -- floats ---------


def test_uniform_stays_in_range_and_spreads():
    values = draw(tune.uniform(-2.0, 3.0))
    assert all(isinstance(v, float) for v in values)
    assert all(-2.0 <= v <= 3.0 for v in values)
    assert min(values) < -1.9 and max(values) > 2.9
    assert statistics.fmean(values) == pytest.approx(0.5, abs=0.15)


def test_quniform_gives_clean_multiples_with_both_bounds_reachable():
    values = draw(tune.quniform(0, 1, 0.25))
    assert set(values) == {0.0, 0.25, 0.5, 0.75, 1.0}
    tenths = draw(tune.quniform(0, 1, 0.1))
    assert all(isinstance(v, float) for v in tenths)
    # no 0.30000000000000004: values are the decimal a user would type
    assert all(v == round(v, 1) for v in tenths)
    assert 0.3 in tenths and 1.0 in tenths


def test_quniform_never_leaves_bounds_that_are_not_multiples():
    values = draw(tune.quniform(0.15, 1.0, 0.2))
    assert set(values) <= {0.2, 0.4, 0.6, 0.8, 1.0}
    assert min(values) == 0.2


def test_loguniform_covers_orders_of_magnitude_evenly():
    values = draw(tune.loguniform(1e-4, 1.0))
    assert all(1e-4 <= v <= 1.0 for v in values)
    below_1e2 = sum(v < 1e-2 for v in values) / len(values)
    assert below_1e2 == pytest.approx(0.5, abs=0.05)


def test_loguniform_base_does_not_change_the_distribution():
    assert draw(tune.loguniform(1, 100, base=2)) == draw(tune.loguniform(1, 100))


def test_qloguniform_gives_multiples_in_range():
    values = draw(tune.qloguniform(1e-3, 1.0, 1e-3))
    assert all(1e-3 <= v <= 1.0 for v in values)
    assert all(is_multiple(v, 1e-3) for v in values)
    assert sum(v < 0.03 for v in values) / len(values) == pytest.approx(0.5, abs=0.06)


def test_randn_has_requested_mean_and_sd():
    values = draw(tune.randn(5.0, 2.0), n=4000)
    assert statistics.fmean(values) == pytest.approx(5.0, abs=0.15)
    assert statistics.stdev(values) == pytest.approx(2.0, abs=0.15)
    assert tune.randn() == Float(None, None, sampler="normal", mean=0.0, sd=1.0)


def test_qrandn_rounds_to_q():
    values = draw(tune.qrandn(0.0, 3.0, 0.5))
    assert all(is_multiple(v, 0.5) for v in values)
    assert len(set(values)) > 10


# -- integers ---------


def test_randint_excludes_upper():
    values = draw(tune.randint(-2, 3))
    assert all(type(v) is int for v in values)
    assert set(values) == {-2, -1, 0, 1, 2}


def test_qrandint_includes_upper_as_in_ray():
    assert set(draw(tune.qrandint(1, 5))) == {1, 2, 3, 4, 5}
    assert set(draw(tune.qrandint(0, 10, 5))) == {0, 5, 10}
    values = draw(tune.qrandint(1, 10, 3))
    assert all(type(v) is int for v in values)
    assert set(values) == {3, 6, 9}


def test_lograndint_excludes_upper_and_favours_small_values():
    values = draw(tune.lograndint(1, 100))
    assert all(type(v) is int and 1 <= v <= 99 for v in values)
    assert min(values) == 1 and max(values) >= 90
    assert sum(v < 10 for v in values) / len(values) == pytest.approx(0.5, abs=0.05)


def test_qlograndint_includes_upper_and_rounds():
    values = draw(tune.qlograndint(10, 100, 10))
    assert set(values) <= set(range(10, 101, 10))
    assert {10, 100} <= set(values)


def test_integer_domains_keep_ray_bounds():
    assert tune.randint(0, 10) == Integer(0, 10)
    assert tune.qrandint(0, 10, 2) == Integer(0, 11, q=2)
    assert repr(tune.qrandint(0, 10, 2)) == "qrandint(0, 10, 2)"


# -- choice, grid_search, sample_from ---------


def test_choice_draws_every_category_and_copies_containers():
    options = [{"layers": [1, 2]}, "x", 3]
    domain = tune.choice(options)
    values = draw(domain, n=300)
    assert {str(v) for v in values} == {str(o) for o in options}
    drawn = next(v for v in values if isinstance(v, dict))
    drawn["layers"].append(99)
    assert domain.categories[0] == {"layers": [1, 2]}


def test_choice_accepts_tuples_and_keeps_order():
    assert tune.choice(("a", "b")).categories == ["a", "b"]


def test_grid_search_is_the_plain_ray_dict():
    values = (1, 2, 3)
    grid = tune.grid_search(values)
    assert grid == {"grid_search": [1, 2, 3]}
    assert type(grid["grid_search"]) is list


def test_sample_from_receives_spec_with_attribute_and_item_access():
    config = {"a": 3, "model": {"width": 8}}
    rng = random.Random(0)
    cases = {
        "spec.config.a": lambda spec: spec.config.a,
        'spec.config["a"]': lambda spec: spec.config["a"],
        'spec["config"]["a"]': lambda spec: spec["config"]["a"],
        "config-style": lambda config: config["a"],
        "get": lambda spec: spec.config.get("a"),
    }
    for name, func in cases.items():
        assert tune.sample_from(func).sample(rng, config) == 3, name
    nested = tune.sample_from(lambda spec: spec.config.model.width * 2)
    assert nested.sample(rng, config) == 16


def test_sample_from_without_arguments_is_called_bare():
    domain = tune.sample_from(lambda: 42)
    assert domain.sample(random.Random(0)) == 42


def test_sample_from_missing_key_names_the_available_keys():
    domain = tune.sample_from(lambda spec: spec.config.nope)
    with pytest.raises(AttributeError, match=r"no key 'nope'; its keys are \['a'\]"):
        domain.sample(random.Random(0), {"a": 1})


# -- pickling and reproducibility ---------


@pytest.mark.parametrize(
    "domain",
    [
        tune.uniform(0, 1),
        tune.quniform(0, 1, 0.1),
        tune.loguniform(1e-3, 1),
        tune.qloguniform(1e-3, 1, 1e-3),
        tune.randn(1, 2),
        tune.qrandn(1, 2, 0.5),
        tune.randint(0, 5),
        tune.qrandint(0, 10, 2),
        tune.lograndint(1, 100),
        tune.qlograndint(1, 100, 5),
        tune.choice(["a", {"b": 1}]),
        tune.sample_from(double_a),
    ],
    ids=repr,
)
def test_domains_pickle_with_plain_pickle(domain):
    copy = pickle.loads(pickle.dumps(domain))
    assert copy == domain
    spec = {"a": 2}
    assert draw_with_spec(copy, spec) == draw_with_spec(domain, spec)


def draw_with_spec(domain, spec):
    rng = random.Random(1)
    return [domain.sample(rng, spec) for _ in range(20)]


def test_same_seed_same_draws():
    domain = tune.uniform(0, 1)
    assert draw(domain, seed=5) == draw(domain, seed=5)
    assert draw(domain, seed=5) != draw(domain, seed=6)


# -- construction errors ---------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: tune.uniform(1, 1), r"uniform\(1, 1\): lower \(1\) must be less"),
        (lambda: tune.uniform(2, 1), r"uniform\(2, 1\): lower \(2\) must be less"),
        (lambda: tune.uniform("a", 1), r"lower must be a number, got str"),
        (lambda: tune.uniform(0, math.inf), r"upper must be finite"),
        (lambda: tune.loguniform(0, 1), r"loguniform\(0, 1\): log sampling needs"),
        (lambda: tune.loguniform(-4, -1), r"lower > 0, got -4"),
        (lambda: tune.qloguniform(0, 1, 0.1), r"qloguniform\(0, 1, 0.1\): log"),
        (lambda: tune.loguniform(1, 10, base=1), r"base must be > 0 and not 1"),
        (lambda: tune.quniform(0, 1, 0), r"q must be greater than 0, got 0"),
        (lambda: tune.quniform(0, 1, -0.5), r"q must be greater than 0, got -0.5"),
        (lambda: tune.quniform(0.1, 0.2, 1), r"no multiple of q=1 lies between"),
        (lambda: tune.qrandn(0, 1, 0), r"qrandn\(0, 1, 0\): q must be greater"),
        (lambda: tune.randn(0, 0), r"sd must be greater than 0, got 0"),
        (lambda: tune.randint(5, 5), r"randint\(5, 5\): lower \(5\) must be less"),
        (lambda: tune.randint(5, 3), r"upper \(3\), which is exclusive"),
        (lambda: tune.randint(0, 1.5), r"upper must be a whole number"),
        (lambda: tune.qrandint(5, 3), r"qrandint\(5, 3, 1\): lower \(5\) must not"),
        (lambda: tune.qrandint(0, 10, 0), r"q must be greater than 0"),
        (lambda: tune.qrandint(0, 10, 2.5), r"q must be a whole number"),
        (lambda: tune.qrandint(1, 4, 5), r"no multiple of q=5 lies between 1 and 4"),
        (lambda: tune.lograndint(0, 10), r"lograndint\(0, 10\): log sampling needs"),
        (lambda: tune.choice([]), r"choice\(\[\]\): categories is empty"),
        (lambda: tune.choice("adam"), r"pass a list of values"),
        (lambda: tune.choice({1, 2}), r"a set has no stable order"),
        (lambda: tune.grid_search([]), r"grid_search\(\[\]\): values is empty"),
        (lambda: tune.grid_search(5), r"values must be a list"),
        (lambda: tune.sample_from(3), r"expected a function, got int"),
        (lambda: tune.sample_from(lambda a, b: 0), r"one argument \(spec\) or none"),
        (lambda: Float(0, 1, sampler="beta"), r"not a known sampler"),
        (lambda: Categorical([]), r"categories is empty"),
        (lambda: Function(None), r"expected a function"),
    ],
)
def test_bad_arguments_raise_search_space_error(make, message):
    with pytest.raises(SearchSpaceError, match=message) as caught:
        make()
    assert isinstance(caught.value, ValueError)
