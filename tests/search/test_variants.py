"""Unit tests for turning a param_space into trial configs (search/variants.py)."""

from __future__ import annotations

import random
import re

import pytest

from tune_client.errors import SearchSpaceError
from tune_client.search import sample as tune
from tune_client.search.variants import (
    count_grid_variants,
    flatten_dict,
    format_config_for_name,
    generate_variants,
    validate_param_space,
)


def configs(space, seed=0, **kwargs):
    return list(generate_variants(space, random.Random(seed), **kwargs))


# -- grid cross product ---------


def test_nested_grid_axes_make_the_cross_product():
    space = {
        "act": tune.grid_search(["relu", "tanh", "gelu"]),
        "model": {"depth": tune.grid_search([2, 4]), "lr": tune.uniform(0, 1)},
        "epochs": 3,
    }
    assert count_grid_variants(space) == 6
    result = configs(space)
    assert len(result) == 6
    pairs = {(c["act"], c["model"]["depth"]) for c in result}
    assert pairs == {(a, d) for a in ("relu", "tanh", "gelu") for d in (2, 4)}
    assert all(c["epochs"] == 3 and 0 <= c["model"]["lr"] <= 1 for c in result)


def test_first_axis_by_sorted_key_path_varies_fastest_as_in_ray():
    space = {"b": tune.grid_search(["x", "y", "z"]), "a": tune.grid_search([1, 2])}
    order = [(c["a"], c["b"]) for c in configs(space)]
    assert order == [(1, "x"), (2, "x"), (1, "y"), (2, "y"), (1, "z"), (2, "z")]
    nested = {"z": tune.grid_search([1, 2]), "m": {"k": tune.grid_search([3, 4])}}
    order = [(c["m"]["k"], c["z"]) for c in configs(nested)]
    assert order == [(3, 1), (4, 1), (3, 2), (4, 2)]


def test_grid_values_may_hold_domains_and_further_grids():
    space = {
        "opt": tune.grid_search(
            [
                {"name": "sgd", "momentum": tune.grid_search([0.0, 0.9])},
                {"name": "adam", "lr": tune.loguniform(1e-4, 1e-2)},
            ]
        )
    }
    assert count_grid_variants(space) == 3
    result = configs(space)
    assert [c["opt"]["name"] for c in result] == ["sgd", "sgd", "adam"]
    assert [c["opt"].get("momentum") for c in result[:2]] == [0.0, 0.9]
    assert 1e-4 <= result[2]["opt"]["lr"] <= 1e-2


def test_space_without_grid_gives_one_config():
    assert count_grid_variants({"a": 1, "b": tune.uniform(0, 1)}) == 1
    assert configs({}) == [{}]


# -- random values ---------


def test_random_domains_are_drawn_per_grid_point():
    space = {"g": tune.grid_search([1, 2, 3]), "x": tune.uniform(0, 1)}
    assert len({c["x"] for c in configs(space)}) == 3


def test_constant_grid_search_shares_random_values_across_the_grid():
    space = {"g": tune.grid_search([1, 2, 3]), "x": tune.uniform(0, 1)}
    result = configs(space, constant_grid_search=True)
    assert [c["g"] for c in result] == [1, 2, 3]
    assert len({c["x"] for c in result}) == 1


def test_same_seed_gives_same_configs():
    space = {"g": tune.grid_search([1, 2]), "x": tune.uniform(0, 1), "y": {"z": 1}}
    assert configs(space, seed=4) == configs(space, seed=4)
    assert configs(space, seed=4) != configs(space, seed=5)


def test_choice_of_dicts_samples_the_domains_inside():
    space = {"opt": tune.choice([{"name": "adam", "lr": tune.uniform(1, 2)}])}
    (config,) = configs(space)
    assert config["opt"]["name"] == "adam" and 1 <= config["opt"]["lr"] <= 2


def test_lists_are_constants_and_not_shared_between_configs():
    space = {"g": tune.grid_search([1, 2]), "layers": [64, {"w": 3}]}
    first, second = configs(space)
    assert first["layers"] == [64, {"w": 3}]
    first["layers"][1]["w"] = 99
    assert second["layers"] == [64, {"w": 3}]
    assert space["layers"] == [64, {"w": 3}]


# -- sample_from ---------


def test_sample_from_reads_grid_and_random_values():
    space = {
        "a": tune.grid_search([1, 2]),
        "model": {"width": tune.randint(4, 8)},
        "b": tune.sample_from(lambda spec: spec.config.a * 10),
        "w2": tune.sample_from(lambda spec: spec.config["model"]["width"] * 2),
    }
    for config in configs(space):
        assert config["b"] == config["a"] * 10
        assert config["w2"] == config["model"]["width"] * 2


def test_sample_from_may_read_a_sample_from_defined_later():
    space = {
        "c": tune.sample_from(lambda spec: spec.config.b + 1),
        "b": tune.sample_from(lambda spec: spec.config.a * 2),
        "nested": {"d": tune.sample_from(lambda spec: spec.config.c * 100)},
        "a": tune.grid_search([1, 5]),
    }
    result = configs(space)
    assert [(c["a"], c["b"], c["c"], c["nested"]["d"]) for c in result] == [
        (1, 2, 3, 300),
        (5, 10, 11, 1100),
    ]


def test_sample_from_cycle_names_the_keys():
    space = {
        "x": tune.sample_from(lambda spec: spec.config.m.y),
        "m": {"y": tune.sample_from(lambda spec: spec.config["x"])},
    }
    with pytest.raises(SearchSpaceError) as caught:
        configs(space)
    message = str(caught.value)
    assert 'param_space["x"] reads param_space["m"]["y"]' in message
    assert 'param_space["m"]["y"] reads param_space["x"]' in message
    assert "cycle" in message


def test_sample_from_error_names_the_key_and_keeps_the_cause():
    space = {"m": {"bad": tune.sample_from(lambda spec: 1 / 0)}}
    with pytest.raises(SearchSpaceError, match=r'param_space\["m"\]\["bad"\]') as e:
        configs(space)
    assert "ZeroDivisionError" in str(e.value)
    assert isinstance(e.value.__cause__, ZeroDivisionError)


def test_sample_from_reading_a_missing_key_says_which():
    space = {"a": 1, "b": tune.sample_from(lambda spec: spec.config.missing)}
    with pytest.raises(SearchSpaceError, match=r"no key 'missing'"):
        configs(space)


# -- validation ---------


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ([1, 2], r"param_space must be a dict .* got list"),
        (None, r"param_space must be a dict .* got NoneType"),
        ({"model": {1: "x"}}, r'param_space\["model"\]\[1\]: keys must be str'),
        (
            {"model": {"lr": {"grid_search": []}}},
            r'param_space\["model"\]\["lr"\]\["grid_search"\] is an empty list',
        ),
        (
            {"lr": {"grid_search": (1, 2)}},
            r'param_space\["lr"\]\["grid_search"\] must be a list, got tuple',
        ),
        (
            {"lr": {"grid_search": [1], "extra": 2}},
            r'param_space\["lr"\]: a grid_search dict must have no other keys',
        ),
        (
            {"layers": [64, tune.randint(1, 4)]},
            r'param_space\["layers"\]: a list holds randint\(1, 4\), but lists',
        ),
        (
            {"m": {"sizes": ({"a": tune.grid_search([1])},)}},
            r'param_space\["m"\]\["sizes"\]: a list holds',
        ),
        (
            {"opt": tune.choice([{"lr": tune.grid_search([1, 2])}])},
            r'param_space\["opt"\]\["lr"\]: a grid_search inside choice',
        ),
        (
            {"g": tune.grid_search([{"x": {"grid_search": []}}])},
            r'param_space\["g"\]\["x"\]\["grid_search"\] is an empty list',
        ),
    ],
)
def test_malformed_spaces_name_the_key_path(space, message):
    with pytest.raises(SearchSpaceError, match=message):
        validate_param_space(space)
    with pytest.raises(SearchSpaceError, match=message):
        count_grid_variants(space)
    with pytest.raises(SearchSpaceError, match=message):
        generate_variants(space, random.Random(0))  # raises before iterating


def test_constants_inside_choice_may_use_any_keys():
    space = {"weights": tune.choice([{0: 1.0, 1: 5.0}])}
    validate_param_space(space)
    assert configs(space) == [{"weights": {0: 1.0, 1: 5.0}}]


# -- flattening and naming ---------


def test_flatten_dict_joins_nested_keys():
    config = {"a": {"b": 1, "c": {"d": 2}}, "e": 3, "empty": {}}
    assert flatten_dict(config) == {"a/b": 1, "a/c/d": 2, "e": 3, "empty": {}}
    assert flatten_dict(config, prefix="config") == {
        "config/a/b": 1,
        "config/a/c/d": 2,
        "config/e": 3,
        "config/empty": {},
    }
    assert flatten_dict({"a": {"b": 1}}, sep=".") == {"a.b": 1}


def test_format_config_for_name_is_short_and_folder_safe():
    config = {"a": 1.23456789, "b": "x", "m": {"lr": 0.001, "big": 123456.7}}
    assert format_config_for_name(config) == "a=1.2346,b=x,m.lr=0.001,m.big=1.2346e05"
    odd = {"path": "/tmp/my data:1", "flag": True, "n": None, "ints": [1, 2]}
    name = format_config_for_name(odd)
    assert re.fullmatch(r"[A-Za-z0-9_.=,-]+", name), name
    assert name.startswith("path=_tmp_my_data_1,flag=True,n=None,")


def test_format_config_for_name_keeps_whole_parts_within_80_chars():
    config = {f"param_{i}": i * 1.5 for i in range(30)}
    name = format_config_for_name(config)
    assert len(name) <= 80
    assert all(re.fullmatch(r"param_\d+=[0-9.]+", part) for part in name.split(","))
    assert len(format_config_for_name({"k": "v" * 200})) == 80
    assert format_config_for_name({}) == ""
