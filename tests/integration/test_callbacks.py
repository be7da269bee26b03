"""Which callback hooks fire, and how often, for a small experiment."""

from __future__ import annotations

import collections
import os
import tempfile

import tune_client as tune

RESULTS = 3


def checkpointing(config):
    """Reports RESULTS results with checkpoints; x=2 fails once before any."""
    marker = os.path.join(config["marks"], f"{config['x']}.failed")
    if config["x"] == 2 and not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("the first attempt fails")
    for step in range(1, RESULTS + 1):
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "step"), "w") as f:
                f.write(str(step))
            tune.report(
                {"step": step}, checkpoint=tune.Checkpoint.from_directory(folder)
            )


class Counter(tune.Callback):
    """Counts every hook; keeps the order of the step hooks."""

    def __init__(self) -> None:
        self.counts: collections.Counter = collections.Counter()
        self.steps: list[tuple[str, int]] = []
        self.setup_info: dict = {}

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        self.counts["setup"] += 1
        self.setup_info = {"stop": stop, "num_samples": num_samples}

    def on_step_begin(self, iteration, trials, **info):
        self.counts["on_step_begin"] += 1
        self.steps.append(("begin", iteration))

    def on_step_end(self, iteration, trials, **info):
        self.counts["on_step_end"] += 1
        self.steps.append(("end", iteration))

    def on_experiment_end(self, trials, **info):
        self.counts["on_experiment_end"] += 1
        self.steps.append(("experiment_end", -1))


def counting(hook: str):
    def count(self, iteration, trials, trial, **info):
        self.counts[hook] += 1

    return count


for _hook in (
    "on_trial_start",
    "on_trial_restore",
    "on_trial_save",
    "on_trial_result",
    "on_trial_complete",
    "on_trial_recover",
    "on_trial_error",
    "on_checkpoint",
):
    setattr(Counter, _hook, counting(_hook))


def test_each_hook_fires_as_often_as_in_ray_tune(storage, tmp_path):
    counter = Counter()
    results = tune.Tuner(
        checkpointing,
        param_space={"x": tune.grid_search([1, 2]), "marks": str(tmp_path)},
        run_config=tune.RunConfig(
            callbacks=[counter],
            failure_config=tune.FailureConfig(max_failures=1),
            verbose=0,
        ),
    ).fit()
    assert results.num_errors == 0
    steps = counter.counts.pop("on_step_begin"), counter.counts.pop("on_step_end")
    assert steps[0] == steps[1] >= 1
    assert counter.counts == {
        "setup": 1,
        "on_trial_start": 2,
        "on_trial_restore": 1,  # x=2, after its failure
        "on_trial_recover": 1,  # x=2 failed and will run again
        "on_trial_result": 2 * RESULTS,
        "on_checkpoint": 2 * RESULTS,
        "on_trial_save": 2 * RESULTS,
        "on_trial_complete": 2,
        "on_experiment_end": 1,
    }
    assert counter.setup_info == {"stop": None, "num_samples": 1}

    # Steps alternate begin/end, numbered 0, 1, 2, ...; the end comes last.
    kinds = [kind for kind, _ in counter.steps]
    assert kinds == ["begin", "end"] * steps[0] + ["experiment_end"]
    begins = [n for kind, n in counter.steps if kind == "begin"]
    assert begins == list(range(steps[0]))
