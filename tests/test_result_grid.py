"""Result and ResultGrid, built from dicts and small result.json files."""

from __future__ import annotations

import json
import math
import types

import fsspec
import pytest

from tune_client.errors import TrialError, TuneConfigError
from tune_client.result_grid import AUTO_FILLED_FIELDS, Result, ResultGrid


def _auto(iteration: int, trial_id: str) -> dict:
    return {
        "training_iteration": iteration,
        "time_total_s": 0.5 * iteration,
        "trial_id": trial_id,
        "done": False,
    }


def make_trial(tmp_path, trial_id, history, config=None, error=None) -> Result:
    """A Result whose folder holds ``history`` as result.json lines."""
    folder = tmp_path / trial_id
    folder.mkdir()
    records = [{**h, **_auto(i, trial_id)} for i, h in enumerate(history, 1)]
    lines = "".join(json.dumps(r) + "\n" for r in records)
    (folder / "result.json").write_text(lines)
    last = records[-1] if records else {}
    return Result(metrics=last, config=config or {}, error=error, path=str(folder))


@pytest.fixture
def grid(tmp_path) -> ResultGrid:
    """a: loss 5 -> 1 -> 4 (best ever 1); b: loss 3, 3, 3 (best last)."""
    results = [
        make_trial(tmp_path, "a", [{"loss": v} for v in (5, 1, 4)], {"lr": 0.1}),
        make_trial(tmp_path, "b", [{"loss": v} for v in (3, 3, 3)], {"lr": 0.2}),
    ]
    return ResultGrid(results, str(tmp_path))


def test_auto_filled_fields_is_the_published_tuple():
    assert isinstance(AUTO_FILLED_FIELDS, tuple)
    assert "training_iteration" in AUTO_FILLED_FIELDS
    assert "checkpoint_dir_name" in AUTO_FILLED_FIELDS
    assert "loss" not in AUTO_FILLED_FIELDS


def test_metrics_dataframe_reads_result_lines_in_order(tmp_path):
    history = [{"loss": 3.0, "val": {"acc": 0.1}}, {"loss": 2.0, "val": {"acc": 0.5}}]
    result = make_trial(tmp_path, "t", history)
    frame = result.metrics_dataframe
    assert list(frame["loss"]) == [3.0, 2.0]
    assert list(frame["val/acc"]) == [0.1, 0.5]
    assert list(frame["training_iteration"]) == [1, 2]


def test_metrics_dataframe_is_read_once_and_cached(tmp_path):
    result = make_trial(tmp_path, "t", [{"loss": 1.0}])
    first = result.metrics_dataframe
    (tmp_path / "t" / "result.json").write_text(json.dumps({"loss": 9.0}) + "\n")
    assert result.metrics_dataframe is first
    assert list(result.metrics_dataframe["loss"]) == [1.0]


def test_metrics_dataframe_is_empty_without_result_file(tmp_path):
    result = Result(metrics={"loss": 1.0}, path=str(tmp_path / "nothing"))
    assert result.metrics_dataframe.empty


def test_metrics_dataframe_skips_a_cut_off_last_line(tmp_path):
    (tmp_path / "result.json").write_text('{"loss": 1}\n{"loss": 2}\n{"loss"')
    result = Result(path=str(tmp_path))
    assert list(result.metrics_dataframe["loss"]) == [1, 2]


def test_metrics_dataframe_reads_through_the_given_filesystem():
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/exp/t1/result.json", b'{"loss": 4}\n{"loss": 2}\n')
    result = Result(metrics={"loss": 2}, path="/exp/t1", filesystem=fs)
    assert list(result.metrics_dataframe["loss"]) == [4, 2]
    fs.rm("/exp", recursive=True)


def test_result_repr_shows_user_metrics_only(tmp_path):
    checkpoint = types.SimpleNamespace(path="/ckpt", filesystem=None)
    result = Result(
        metrics={"loss": 0.5, **_auto(3, "t")},
        path="/exp/t",
        checkpoint=checkpoint,
        error=TrialError("boom"),
    )
    text = repr(result)
    assert "metrics={'loss': 0.5}" in text
    assert "training_iteration" not in text
    assert "path='/exp/t'" in text
    assert "filesystem='local'" in text
    assert "error='TrialError'" in text


def test_config_falls_back_to_the_one_in_metrics():
    result = Result(metrics={"loss": 1, "config": {"lr": 0.3}})
    assert result.config == {"lr": 0.3}


def test_grid_behaves_like_a_sequence(grid):
    assert len(grid) == 2
    assert grid[0].config == {"lr": 0.1}
    assert [r.config["lr"] for r in grid] == [0.1, 0.2]
    assert grid.filesystem is None
    assert "ResultGrid<[" in repr(grid) and repr(grid).count("Result(") == 2


@pytest.mark.parametrize(("mode", "expected_lr"), [("min", 0.2), ("max", 0.1)])
def test_best_result_by_last_value(grid, mode, expected_lr):
    best = grid.get_best_result(metric="loss", mode=mode)
    assert best.config["lr"] == expected_lr


@pytest.mark.parametrize(
    ("scope", "mode", "expected_lr"),
    [
        ("all", "min", 0.1),  # a reached 1 once; b never below 3
        ("all", "max", 0.1),  # a reached 5
        ("last", "min", 0.2),
        ("avg", "min", 0.2),  # a averages 3.33, b 3
        ("last-5-avg", "max", 0.1),
        ("last-10-avg", "min", 0.2),
    ],
)
def test_best_result_by_scope(grid, scope, mode, expected_lr):
    best = grid.get_best_result(metric="loss", mode=mode, scope=scope)
    assert best.config["lr"] == expected_lr


def test_last_5_avg_uses_only_the_last_five(tmp_path):
    a = make_trial(tmp_path, "a", [{"loss": v} for v in (100, 1, 1, 1, 1, 1)])
    b = make_trial(tmp_path, "b", [{"loss": v} for v in (2, 2, 2, 2, 2, 2)])
    grid = ResultGrid([a, b], str(tmp_path))
    assert grid.get_best_result("loss", "min", scope="last-5-avg") is a
    assert grid.get_best_result("loss", "min", scope="avg") is b


def test_best_result_uses_defaults_from_construction(grid):
    defaults = ResultGrid(list(grid), grid.experiment_path, "loss", "max")
    assert defaults.get_best_result().config["lr"] == 0.1
    assert defaults.get_best_result(mode="min").config["lr"] == 0.2


def test_best_result_without_metric_or_mode_says_how_to_set_them(grid):
    with pytest.raises(TuneConfigError, match="TuneConfig") as info:
        grid.get_best_result()
    assert "metric" in str(info.value) and "mode" in str(info.value)
    with pytest.raises(TuneConfigError, match="mode"):
        grid.get_best_result(metric="loss")


def test_single_trial_is_best_without_metric(tmp_path):
    only = make_trial(tmp_path, "a", [{"loss": 1}])
    assert ResultGrid([only], str(tmp_path)).get_best_result() is only


def test_bad_mode_fails_at_once(grid, tmp_path):
    with pytest.raises(TuneConfigError, match="'maximum'"):
        grid.get_best_result(metric="loss", mode="maximum")
    with pytest.raises(TuneConfigError, match="mode"):
        ResultGrid([], str(tmp_path), default_metric="loss", default_mode="up")
    with pytest.raises(TuneConfigError, match="mode"):
        grid.get_dataframe(filter_metric="loss", filter_mode="best")


def test_bad_scope_lists_valid_scopes(grid):
    with pytest.raises(TuneConfigError, match="last-5-avg"):
        grid.get_best_result(metric="loss", mode="min", scope="first")


def test_unknown_metric_lists_the_reported_ones(grid):
    with pytest.raises(TuneConfigError) as info:
        grid.get_best_result(metric="accuracy", mode="max")
    message = str(info.value)
    assert "'accuracy'" in message
    assert "'loss'" in message and "'training_iteration'" in message


def test_trials_lacking_the_metric_are_skipped(tmp_path):
    a = make_trial(tmp_path, "a", [{"acc": 0.9}])
    b = make_trial(tmp_path, "b", [{"loss": 2.0}])
    grid = ResultGrid([a, b], str(tmp_path))
    assert grid.get_best_result("loss", "max") is b
    assert grid.get_best_result("loss", "max", scope="all") is b


def test_nan_and_inf_are_filtered_unless_asked(tmp_path):
    a = make_trial(tmp_path, "a", [{"loss": math.inf}])
    b = make_trial(tmp_path, "b", [{"loss": 2.0}])
    grid = ResultGrid([a, b], str(tmp_path))
    assert grid.get_best_result("loss", "max") is b
    assert grid.get_best_result("loss", "max", filter_nan_and_inf=False) is a


def test_all_nan_says_so(tmp_path):
    a = make_trial(tmp_path, "a", [{"loss": math.nan}])
    with pytest.raises(TuneConfigError, match="NaN"):
        ResultGrid([a], str(tmp_path)).get_best_result("loss", "min")


def test_nested_metric_by_slash_name(tmp_path):
    a = make_trial(tmp_path, "a", [{"val": {"loss": 2.0}}])
    b = make_trial(tmp_path, "b", [{"val": {"loss": 1.0}}])
    grid = ResultGrid([a, b], str(tmp_path))
    assert grid.get_best_result("val/loss", "min") is b
    assert grid.get_best_result("val/loss", "max", scope="all") is a


def test_errors_and_counts(tmp_path):
    failure = TrialError("trial b crashed", trial_id="b")
    results = [
        make_trial(tmp_path, "a", [{"loss": 1}]),
        make_trial(tmp_path, "b", [{"loss": 2}], error=failure),
        make_trial(tmp_path, "c", [{"loss": 3}]),
    ]
    grid = ResultGrid(results, str(tmp_path))
    assert grid.errors == [failure]
    assert grid.num_errors == 1
    assert grid.num_terminated == 2
    assert "error='TrialError'" in repr(grid)


def test_dataframe_has_one_row_per_trial_and_ordered_columns(tmp_path):
    config = {"lr": 0.1, "model": {"layers": 2}}
    history = [{"loss": 1.0, "val": {"acc": 0.5}}]
    results = [
        make_trial(tmp_path, "a", history, config),
        make_trial(tmp_path, "b", history, {**config, "lr": 0.2}),
    ]
    frame = ResultGrid(results, str(tmp_path)).get_dataframe()
    assert frame.shape[0] == 2
    assert list(frame.columns) == [
        "loss",
        "val/acc",
        "training_iteration",
        "time_total_s",
        "trial_id",
        "done",
        "config/lr",
        "config/model/layers",
        "logdir",
    ]
    assert list(frame["config/lr"]) == [0.1, 0.2]
    assert list(frame["logdir"]) == [str(tmp_path / "a"), str(tmp_path / "b")]


def test_dataframe_keeps_user_metrics_first_across_trials(tmp_path):
    a = make_trial(tmp_path, "a", [{"loss": 1.0}])
    b = make_trial(tmp_path, "b", [{"loss": 2.0, "acc": 0.3}])
    frame = ResultGrid([a, b], str(tmp_path)).get_dataframe()
    assert list(frame.columns[:3]) == ["loss", "acc", "training_iteration"]
    assert math.isnan(frame["acc"][0]) and frame["acc"][1] == 0.3


def test_dataframe_rows_are_last_results_by_default(grid):
    frame = grid.get_dataframe()
    assert list(frame["loss"]) == [4, 3]
    assert list(frame["training_iteration"]) == [3, 3]


def test_filter_metric_picks_each_trials_best_row(grid):
    low = grid.get_dataframe(filter_metric="loss", filter_mode="min")
    assert list(low["loss"]) == [1, 3]
    assert list(low["training_iteration"]) == [2, 1]
    assert list(low["config/lr"]) == [0.1, 0.2]
    high = grid.get_dataframe(filter_metric="loss", filter_mode="max")
    assert list(high["loss"]) == [5, 3]


def test_filter_metric_needs_filter_mode(grid):
    with pytest.raises(TuneConfigError, match="filter_mode"):
        grid.get_dataframe(filter_metric="loss")
    with pytest.raises(TuneConfigError, match="filter_metric"):
        grid.get_dataframe(filter_mode="min")


def test_filter_metric_nobody_reported_lists_metrics(grid):
    with pytest.raises(TuneConfigError, match="'loss'"):
        grid.get_dataframe(filter_metric="acc", filter_mode="max")


def test_empty_grid(tmp_path):
    grid = ResultGrid([], str(tmp_path))
    assert len(grid) == 0 and grid.errors == [] and grid.num_terminated == 0
    assert grid.get_dataframe().empty
    with pytest.raises(TuneConfigError, match="any result"):
        grid.get_best_result("loss", "min")
