"""Trial placement by resources, without servers."""

from __future__ import annotations

from tune_head.placement import Placer


def test_trials_fill_one_worker_before_the_next():
    placer = Placer()
    placer.add_worker("a", {"cpu": 4})
    placer.add_worker("b", {"cpu": 4})
    first = placer.place({"cpu": 1})
    placer.reserve(first, {"cpu": 1})
    assert placer.place({"cpu": 1}) == first


def test_a_trial_waits_until_resources_are_released():
    placer = Placer()
    placer.add_worker("a", {"cpu": 2, "gpu": 1})
    placer.reserve("a", {"cpu": 2})
    assert placer.place({"cpu": 1}) is None
    assert placer.why_waiting({"cpu": 1}) == "no worker has 1 cpu free"
    placer.release("a", {"cpu": 2})
    assert placer.place({"cpu": 1, "gpu": 1}) == "a"


def test_custom_resources_and_draining_workers():
    placer = Placer()
    placer.add_worker("plain", {"cpu": 8})
    placer.add_worker("big", {"cpu": 8, "highmem": 1})
    assert placer.place({"cpu": 1, "highmem": 1}) == "big"
    placer.workers["big"].draining = True
    assert placer.place({"cpu": 1, "highmem": 1}) is None
    assert not placer.could_ever_fit({"cpu": 16})
