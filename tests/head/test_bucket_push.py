"""Pushes of a bucket experiment's files land in the order their contents
were taken, whatever order the pushes finish in."""

from __future__ import annotations

import uuid

import fsspec

from tune_head.experiment_storage import ExperimentStorage


def bucket_storage(tmp_path) -> tuple[ExperimentStorage, object, str]:
    fs = fsspec.filesystem("memory")
    root = f"/bucket-{uuid.uuid4().hex}/exp"
    storage = ExperimentStorage(root, fs, str(tmp_path / "mirror"))
    return storage, fs, root


def test_a_push_of_older_contents_that_ends_last_does_not_land(tmp_path):
    storage, fs, root = bucket_storage(tmp_path)
    storage._write("searcher_state.pkl", b"two trials running")
    periodic = storage.take_changes()  # taken, then pushed outside the lock

    storage._write("searcher_state.pkl", b"no trial running")
    storage.sync(force=True)  # the experiment's last push
    storage.push(periodic)  # the periodic push finishes after it

    assert fs.cat_file(f"{root}/searcher_state.pkl") == b"no trial running"


def test_an_older_push_of_the_state_file_does_not_undo_the_final_state(tmp_path):
    storage, fs, root = bucket_storage(tmp_path)
    storage.write_state("e1", "exp", [], finished=False)
    storage._write("experiment_state.json", b"{}")  # dirty, as between ticks
    periodic = storage.take_changes()

    storage.write_state("e1", "exp", [], finished=True)
    storage.push(periodic)

    assert b'"finished": true' in fs.cat_file(f"{root}/experiment_state.json")


def test_pushes_in_order_all_land(tmp_path):
    storage, fs, root = bucket_storage(tmp_path)
    for text in (b"a", b"b", b"c"):
        storage._write("result.json", text)
        storage.push(storage.take_changes())
    assert fs.cat_file(f"{root}/result.json") == b"c"


def test_closing_puts_what_a_periodic_push_took_but_has_not_put(tmp_path):
    storage, fs, root = bucket_storage(tmp_path)
    storage._write("t1/result.json", b'{"training_iteration": 1}\n')
    periodic = storage.take_changes()  # its push has not started yet

    storage.close()  # the experiment ended: its last push
    assert fs.cat_file(f"{root}/t1/result.json") == b'{"training_iteration": 1}\n'
    storage.push(periodic)  # ends later, and changes nothing
    assert fs.cat_file(f"{root}/t1/result.json") == b'{"training_iteration": 1}\n'
