"""GpuIds: whole devices for whole requests, shares of one device for fractions."""

from __future__ import annotations

import pytest

from tune_worker.gpus import GpuIds, GpuRequestError, GpusBusyError


@pytest.fixture(autouse=True)
def no_devices_of_our_own(monkeypatch):
    """The worker's own CUDA_VISIBLE_DEVICES is set only where a test says so."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_a_worker_without_gpus_gives_no_ids():
    assert GpuIds(0).allocate("t1", 0.5) is None


def test_whole_requests_get_distinct_devices():
    gpus = GpuIds(3)
    assert gpus.allocate("t1", 1) == [0]
    assert gpus.allocate("t2", 2) == [1, 2]
    with pytest.raises(GpusBusyError, match="asks for 1 GPU"):
        gpus.allocate("t3", 1)


def test_a_trial_asking_for_none_sees_none():
    gpus = GpuIds(2)
    assert gpus.allocate("t1", 0) == []
    assert gpus.free_shares() == [1.0, 1.0]


def test_two_halves_share_one_device():
    gpus = GpuIds(1)
    assert gpus.allocate("t1", 0.5) == [0]
    assert gpus.allocate("t2", 0.5) == [0]
    assert gpus.free_shares() == [0.0]
    with pytest.raises(GpusBusyError, match="device 0: 0"):
        gpus.allocate("t3", 0.5)


def test_ten_tenths_fill_a_device_exactly():
    gpus = GpuIds(1)
    for index in range(10):
        assert gpus.allocate(f"t{index}", 0.1) == [0]
    assert gpus.free_shares() == [0.0]


def test_a_fraction_goes_where_it_fits_best_keeping_whole_devices_free():
    gpus = GpuIds(2)
    assert gpus.allocate("t1", 0.5) == [0]
    assert gpus.allocate("t2", 0.25) == [0]
    assert gpus.allocate("whole", 1) == [1]
    gpus.release("whole")
    assert gpus.allocate("t3", 0.5) == [1], "device 0 has only 0.25 free"
    assert gpus.allocate("t4", 0.25) == [0], "the fullest device that fits"


def test_a_whole_request_needs_a_device_nobody_shares():
    gpus = GpuIds(2)
    gpus.allocate("t1", 0.5)
    assert gpus.allocate("t2", 1) == [1]
    with pytest.raises(GpusBusyError):
        gpus.allocate("t3", 1)


def test_releasing_gives_back_the_share():
    gpus = GpuIds(1)
    gpus.allocate("t1", 0.5)
    gpus.allocate("t2", 0.5)
    gpus.release("t1")
    assert gpus.free_shares() == [0.5]
    gpus.release("t1")  # a second release frees nothing more
    assert gpus.free_shares() == [0.5]
    gpus.release("t2")
    assert gpus.allocate("whole", 1) == [0]


def test_allocating_again_gives_back_what_the_trial_held():
    gpus = GpuIds(1)
    gpus.allocate("t1", 0.5)
    assert gpus.allocate("t1", 1) == [0]
    gpus.release("t1")
    assert gpus.free_shares() == [1.0]


@pytest.mark.parametrize("amount", [1.5, 2.25])
def test_more_than_one_gpu_must_be_whole_as_in_ray(amount):
    gpus = GpuIds(4)
    with pytest.raises(GpuRequestError, match="whole number of GPUs"):
        gpus.allocate("t1", amount)
    assert gpus.free_shares() == [1.0] * 4
    assert gpus.allocate("t2", 2.0) == [0, 1]


def test_a_failed_request_leaves_the_holdings_alone():
    gpus = GpuIds(1)
    gpus.allocate("t1", 0.75)
    with pytest.raises(GpusBusyError):
        gpus.allocate("t2", 0.5)
    assert gpus.free_shares() == [0.25]


def test_ids_come_from_the_workers_own_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    gpus = GpuIds(2)
    assert gpus.allocate("t1", 0.5) == [2]
    assert gpus.allocate("t2", 1) == [3]


def test_visible_devices_may_be_uuids():
    gpus = GpuIds(1, visible="GPU-5e1d, GPU-77aa")
    assert gpus.allocate("t1", 1) == ["GPU-5e1d"]


def test_offering_more_gpus_than_the_worker_sees_is_refused():
    with pytest.raises(ValueError, match="offer at most 1"):
        GpuIds(2, visible="1")
