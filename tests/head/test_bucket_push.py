"""Pushes of a bucket experiment's files land in the order their contents
were taken, whatever order the pushes finish in."""

from __future__ import annotations

import pickle
import uuid

import fsspec

from tune_head.experiment_storage import SEARCHER_FILE, STATE_FILE, ExperimentStorage


def bucket_storage(tmp_path) -> tuple[ExperimentStorage, object, str]:
    """An experiment on fsspec's in-memory filesystem, a bucket stand-in
    with no timing of its own, so the order of pushes is the test's."""
    fs = fsspec.filesystem("memory")
    root = f"/bucket-{uuid.uuid4().hex}/exp"
    storage = ExperimentStorage(root, fs, str(tmp_path / "mirror"))
    return storage, fs, root


def searcher_state_in(fs, root: str) -> dict:
    return pickle.loads(fs.cat_file(f"{root}/{SEARCHER_FILE}"))


def test_a_push_of_older_contents_that_ends_last_does_not_land(tmp_path):
    storage, fs, root = bucket_storage(tmp_path)
    storage.write_searcher_state({"live_trials": ["t1", "t2"]})
    periodic = storage.take_changes()  # taken, then pushed outside the lock

    storage.write_searcher_state({"live_trials": []})
    storage.sync(force=True)  # the experiment's last push
    storage.push(periodic)  # the periodic push finishes after it

    assert searcher_state_in(fs, root) == {"live_trials": []}


def test_an_older_push_of_the_state_file_does_not_undo_the_final_state(tmp_path):
    storage, fs, root = bucket_storage(tmp_path)
    storage.write_state("e1", "exp", [], finished=False)
    storage.dirty.add(STATE_FILE)  # as the head does after a failed push
    periodic = storage.take_changes()

    storage.write_state("e1", "exp", [], finished=True)
    storage.push(periodic)

    assert b'"finished": true' in fs.cat_file(f"{root}/{STATE_FILE}")


def test_pushes_in_order_all_land(tmp_path):
    storage, fs, root = bucket_storage(tmp_path)
    for count in (1, 2, 3):
        storage.write_searcher_state({"count": count})
        storage.push(storage.take_changes())
    assert searcher_state_in(fs, root) == {"count": 3}


def test_closing_puts_what_a_periodic_push_took_but_has_not_put(tmp_path):
    storage, fs, root = bucket_storage(tmp_path)
    storage.write_searcher_state({"live_trials": []})
    periodic = storage.take_changes()  # its push has not started yet

    storage.close()  # the experiment ended: its last push
    assert searcher_state_in(fs, root) == {"live_trials": []}
    storage.push(periodic)  # ends later, and changes nothing
    assert searcher_state_in(fs, root) == {"live_trials": []}
