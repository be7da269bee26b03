"""The machine-local object cache: one pull per machine, eviction that spares
objects running trials hold, and the same-machine shortcut to the head's files."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from proto.object_stream import object_chunks, read_object_stream
from tune_head.object_store import ObjectStore
from tune_worker.object_cache import ObjectCache, ObjectPullError

MIB = 1 << 20


class FakeHead:
    """The head's store behind a fetch function that counts pulls."""

    def __init__(self, directory, delay_s: float = 0.0) -> None:
        self.store = ObjectStore(str(directory))
        self.delay_s = delay_s
        self.pulls: list[str] = []
        self._lock = threading.Lock()

    def put(self, size: int, seed: int) -> str:
        return self.store.put_bytes(bytes([seed % 256]) * size)

    def fetch(self, object_id: str):
        return read_object_stream(self.messages(object_id))

    def messages(self, object_id: str):
        """The encoded GetObject stream of ``object_id``."""
        with self._lock:
            self.pulls.append(object_id)
        size = self.store.size_of(object_id)
        data = self.store.read_chunks(object_id, 256 * 1024)
        for message in object_chunks(object_id, size, data):
            time.sleep(self.delay_s)  # a slow link widens any race
            yield message.SerializeToString()


@pytest.fixture
def head(tmp_path):
    return FakeHead(tmp_path / "head", delay_s=0.002)


def new_cache(tmp_path, head, budget=None, name="cache") -> ObjectCache:
    return ObjectCache(str(tmp_path / name), head.fetch, budget)


def test_concurrent_trial_starts_pull_once(tmp_path, head):
    object_id = head.put(4 * MIB, seed=1)
    cache = new_cache(tmp_path, head)
    barrier = threading.Barrier(8)

    def start_trial(_):
        barrier.wait()
        return cache.ensure(object_id)

    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(start_trial, range(8)))
    assert head.pulls == [object_id]
    assert len(set(paths)) == 1
    with open(paths[0], "rb") as f:
        assert f.read() == head.store.read_bytes(object_id)


def test_two_workers_on_one_machine_pull_once(tmp_path, head):
    """Two caches on one folder stand for two worker processes: the file lock,
    not a lock inside one process, makes the second wait for the first."""
    object_id = head.put(4 * MIB, seed=2)
    caches = [new_cache(tmp_path, head), new_cache(tmp_path, head)]
    barrier = threading.Barrier(8)

    def start_trial(i):
        barrier.wait()
        return caches[i % 2].ensure(object_id)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(start_trial, range(8)))
    assert head.pulls == [object_id]


def test_least_recently_used_is_evicted_under_the_budget(tmp_path, head):
    ids = [head.put(1 * MIB, seed=i) for i in range(4)]
    cache = new_cache(tmp_path, head, budget=int(2.5 * MIB))
    cache.ensure(ids[0])
    time.sleep(0.01)
    cache.ensure(ids[1])
    time.sleep(0.01)
    cache.ensure(ids[0])  # used again: now ids[1] is the oldest
    time.sleep(0.01)
    cache.ensure(ids[2])
    present = {os.path.basename(p) for p, _, _ in cache.cached()}
    assert present == {ids[0], ids[2]}


def test_objects_held_by_running_trials_are_not_evicted(tmp_path, head):
    ids = [head.put(1 * MIB, seed=10 + i) for i in range(4)]
    cache = new_cache(tmp_path, head, budget=int(1.5 * MIB))
    cache.acquire("trial_a", [ids[0]])
    cache.acquire("trial_b", [ids[1]])
    cache.ensure(ids[2])  # over budget, but both others are held
    present = {os.path.basename(p) for p, _, _ in cache.cached()}
    assert {ids[0], ids[1]} <= present
    assert cache.holders_of(ids[0]) == ["trial_a"]

    cache.release("trial_a")
    cache.release("trial_b")
    cache.ensure(ids[3])
    present = {os.path.basename(p) for p, _, _ in cache.cached()}
    assert present == {ids[3]}


def test_another_workers_holds_are_respected(tmp_path, head):
    ids = [head.put(1 * MIB, seed=20 + i) for i in range(2)]
    worker_a = new_cache(tmp_path, head, budget=int(1.5 * MIB))
    worker_b = new_cache(tmp_path, head, budget=int(1.5 * MIB))
    worker_a.acquire("trial_a", [ids[0]])
    worker_b.ensure(ids[1])  # would evict ids[0], but worker A's trial holds it
    assert os.path.exists(worker_a.path_of(ids[0]))


def test_acquire_returns_paths_and_release_frees_them(tmp_path, head):
    ids = [head.put(MIB, seed=30 + i) for i in range(2)]
    cache = new_cache(tmp_path, head)
    paths = cache.acquire("trial", ids + ids[:1])
    assert set(paths) == set(ids)
    assert all(os.path.exists(p) for p in paths.values())
    cache.release("trial")
    assert cache.holders_of(ids[0]) == []


def test_same_machine_reads_the_heads_files(tmp_path, head):
    object_id = head.put(2 * MIB, seed=40)
    cache = new_cache(tmp_path, head)
    cache.use_head_directory(head.store.directory)
    path = cache.ensure(object_id)
    assert path == head.store.path_of(object_id)
    assert head.pulls == []


def test_unreadable_head_folder_falls_back_to_pulling(tmp_path, head):
    object_id = head.put(MIB, seed=41)
    cache = new_cache(tmp_path, head)
    cache.use_head_directory(str(tmp_path / "no-such-folder"))
    assert cache.ensure(object_id).startswith(str(tmp_path / "cache"))
    assert head.pulls == [object_id]


def test_a_cut_stream_leaves_no_object_behind(tmp_path, head):
    object_id = head.put(2 * MIB, seed=50)

    def cut_messages(oid):
        stream = head.messages(oid)
        yield next(stream)  # announces 2 MiB
        yield next(stream)  # sends 256 KiB of them

    def cut_fetch(oid):
        return read_object_stream(cut_messages(oid))

    cache = ObjectCache(str(tmp_path / "cache"), cut_fetch)
    with pytest.raises(ObjectPullError, match="cut short"):
        cache.ensure(object_id)
    assert cache.cached() == []
    assert [n for n in os.listdir(tmp_path / "cache") if ".part." in n] == []


def test_the_last_worker_to_leave_empties_the_cache(tmp_path, head):
    object_id = head.put(MIB, seed=60)
    first = new_cache(tmp_path, head)
    second = new_cache(tmp_path, head)
    first.ensure(object_id)
    first.close()
    assert len(second.cached()) == 1  # the other worker still runs
    second.close()
    assert ObjectCache(str(tmp_path / "cache"), head.fetch).cached() == []
