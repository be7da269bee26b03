"""Trial placement by resources, without servers."""

from __future__ import annotations

from tune_head.placement import Placer


def test_trials_fill_one_worker_before_the_next():
    placer = Placer()
    placer.add_worker("a", {"cpu": 4})
    placer.add_worker("b", {"cpu": 4})
    first = placer.place({"cpu": 1})
    placer.reserve(first, "t1", {"cpu": 1})
    assert placer.place({"cpu": 1}) == first


def test_a_trial_waits_until_resources_are_released():
    placer = Placer()
    placer.add_worker("a", {"cpu": 2, "gpu": 1})
    placer.reserve("a", "t1", {"cpu": 2})
    assert placer.place({"cpu": 1}) is None
    assert placer.why_waiting({"cpu": 1}) == "no worker has 1 cpu free"
    placer.release("t1")
    assert placer.place({"cpu": 1, "gpu": 1}) == "a"


def test_custom_resources_and_draining_workers():
    placer = Placer()
    placer.add_worker("plain", {"cpu": 8})
    placer.add_worker("big", {"cpu": 8, "highmem": 1})
    assert placer.place({"cpu": 1, "highmem": 1}) == "big"
    placer.workers["big"].draining = True
    assert placer.place({"cpu": 1, "highmem": 1}) is None
    assert not placer.could_ever_fit({"cpu": 16})


def test_releasing_a_trial_twice_or_never_reserved_frees_nothing_else():
    placer = Placer()
    placer.add_worker("a", {"cpu": 2})
    placer.reserve("a", "t1", {"cpu": 1})
    placer.reserve("a", "t2", {"cpu": 1})
    placer.release("t1")
    placer.release("t1")
    placer.release("ended-while-the-head-was-down")
    assert placer.workers["a"].free() == {"cpu": 1.0}


def test_reserving_a_trial_again_moves_its_allocation():
    placer = Placer()
    placer.add_worker("a", {"cpu": 2})
    placer.add_worker("b", {"cpu": 2})
    placer.reserve("a", "t1", {"cpu": 2})
    placer.reserve("b", "t1", {"cpu": 2})
    assert placer.workers["a"].free() == {"cpu": 2.0}
    assert placer.workers["b"].free() == {"cpu": 0.0}


def test_an_unusable_worker_is_passed_over_for_one_that_fits():
    placer = Placer()
    placer.add_worker("fullest", {"cpu": 2})
    placer.add_worker("idle", {"cpu": 8})
    placer.reserve("fullest", "t1", {"cpu": 1})
    assert placer.place({"cpu": 1}) == "fullest"
    assert placer.place({"cpu": 1}, unusable={"fullest"}) == "idle"


def test_removing_a_worker_drops_its_allocations():
    placer = Placer()
    placer.add_worker("a", {"cpu": 2})
    placer.reserve("a", "t1", {"cpu": 2})
    placer.remove_worker("a")
    placer.add_worker("a", {"cpu": 2})
    placer.release("t1")
    assert placer.workers["a"].free() == {"cpu": 2.0}
