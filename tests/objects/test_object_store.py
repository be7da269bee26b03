"""The head's object store: content addressing, references, release, restart."""

from __future__ import annotations

import hashlib
import os

import pytest

from tune_head import object_store
from tune_head.object_store import ObjectHashMismatch, ObjectStore


def test_upload_with_a_wrong_id_is_refused(tmp_path):
    store = ObjectStore(str(tmp_path))
    wrong = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(ObjectHashMismatch):
        store.put_chunks(wrong, [b"data"])
    assert not store.contains(wrong)
    assert store.total_bytes() == 0


def test_objects_are_released_when_no_experiment_refers_to_them(tmp_path):
    store = ObjectStore(str(tmp_path))
    shared = store.put_bytes(b"shared")
    own = store.put_bytes(b"own")
    store.set_refs("exp_a", [shared, own])
    store.set_refs("exp_b", [shared])  # submits end the uploads' grace

    assert store.drop_refs("exp_a") == [own]
    assert store.contains(shared) and not store.contains(own)
    store.drop_refs("exp_b")
    assert not store.contains(shared)


def test_an_announced_object_is_kept_for_the_coming_submit(tmp_path):
    store = ObjectStore(str(tmp_path))
    object_id = store.put_bytes(b"data")
    store.set_refs("exp_a", [object_id])
    store.announce([object_id])  # another client found it and will submit
    assert store.drop_refs("exp_a") == []
    assert store.contains(object_id)


def test_referenced_objects_survive_a_restart_and_orphans_do_not(tmp_path, monkeypatch):
    store = ObjectStore(str(tmp_path))
    kept = store.put_bytes(b"kept")
    orphan = store.put_bytes(b"orphan")
    fresh = store.put_bytes(b"fresh upload, submit still to come")
    store.set_refs("unfinished", [kept])
    old = 0
    os.utime(store.path_of(kept), (old, old))
    os.utime(store.path_of(orphan), (old, old))

    restarted = ObjectStore(str(tmp_path))
    assert restarted.contains(kept)
    assert not restarted.contains(orphan)
    assert restarted.contains(fresh)  # younger than the grace period


def test_memory_budget_spills_the_coldest_objects(tmp_path, monkeypatch):
    spilled = []
    monkeypatch.setattr(ObjectStore, "_spill", lambda self, ids: spilled.extend(ids))
    monkeypatch.setattr(object_store.threading.Thread, "start", lambda t: t.run())
    store = ObjectStore(str(tmp_path), memory_budget=250)
    first = store.put_bytes(b"a" * 100)
    second = store.put_bytes(b"b" * 100)
    list(store.read_chunks(first))  # first is used again, second is colder
    store.put_bytes(b"c" * 100)
    assert spilled == [second]
    assert store.contains(second)  # spilled to disk, not deleted


def test_a_running_store_deletes_uploads_whose_submit_never_came(tmp_path, monkeypatch):
    store = ObjectStore(str(tmp_path))
    kept = store.put_bytes(b"kept")
    abandoned = store.put_bytes(b"uploaded, then the submit failed")
    fresh = store.put_bytes(b"fresh upload, submit still to come")
    store.set_refs("unfinished", [kept])
    for object_id in (kept, abandoned):
        os.utime(store.path_of(object_id), (0, 0))
    partial = tmp_path / f"{fresh}.part.1.2"
    partial.write_bytes(b"an upload still arriving")
    clock = object_store.time.monotonic() + object_store.PENDING_GRACE_S + 1
    monkeypatch.setattr(object_store.time, "monotonic", lambda: clock)

    assert store.collect_orphans() == [abandoned]
    assert store.contains(kept) and store.contains(fresh)
    assert partial.exists()


def hand_over(store: ObjectStore, name: str, data: bytes) -> str:
    incoming = os.path.join(store.directory, object_store.INCOMING_DIR)
    os.makedirs(incoming, exist_ok=True)
    with open(os.path.join(incoming, name), "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def test_a_handed_over_file_is_moved_into_the_store(tmp_path):
    store = ObjectStore(str(tmp_path))
    object_id = hand_over(store, "tune-object-1", b"frame bytes")
    assert store.adopt(object_id, "tune-object-1") == len(b"frame bytes")
    assert store.read_bytes(object_id) == b"frame bytes"
    assert os.listdir(tmp_path / object_store.INCOMING_DIR) == []
    # The same object handed over again: the copy is dropped, the store kept.
    hand_over(store, "tune-object-2", b"frame bytes")
    assert store.adopt(object_id, "tune-object-2") == len(b"frame bytes")
    assert os.listdir(tmp_path / object_store.INCOMING_DIR) == []
    assert store.read_bytes(object_id) == b"frame bytes"


@pytest.mark.parametrize("name", ["", "../params.pkl", "sub/file", ".hidden"])
def test_only_a_file_directly_in_incoming_can_be_handed_over(tmp_path, name):
    store = ObjectStore(str(tmp_path))
    with pytest.raises(ValueError, match="is not a file name"):
        store.adopt(hashlib.sha256(b"x").hexdigest(), name)


def test_a_file_that_was_never_handed_over_is_not_found(tmp_path):
    store = ObjectStore(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        store.adopt(hashlib.sha256(b"x").hexdigest(), "tune-object-missing")
