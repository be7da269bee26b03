"""The worker's uploads: in order within a trial, at once across trials."""

from __future__ import annotations

import threading

from tune_worker.uploader import CheckpointUpload, StorageTarget, TrialEnd, Uploader


class Head:
    """Receives what the uploader sends; one trial's upload can be held."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []
        self.held_trial = ""
        self.release = threading.Event()
        self._lock = threading.Lock()

    def send(self, message) -> None:
        kind = message.WhichOneof("kind")
        body = getattr(message, kind)
        with self._lock:
            self.received.append((body.trial_id, kind))

    def stream_upload(self, trial_id, folder, local_dir, run_id) -> str:
        if trial_id == self.held_trial:
            assert self.release.wait(10), "never released"
        return f"/stored/{trial_id}/{folder}"


def checkpoint(trial_id: str, tmp_path) -> CheckpointUpload:
    staged = tmp_path / f"{trial_id}-staged"
    staged.mkdir()
    return CheckpointUpload(
        trial_id,
        "checkpoint_000000",
        str(staged),
        StorageTarget("/stored", stream_to_head=True),
        b'{"training_iteration": 1}',
    )


def test_a_slow_upload_holds_back_only_its_own_trial(tmp_path):
    head = Head()
    head.held_trial = "slow"
    uploader = Uploader(head.send, head.stream_upload, lanes=2)
    uploader.put(checkpoint("slow", tmp_path))
    uploader.put(TrialEnd("slow", 1, ""))
    uploader.put(checkpoint("quick", tmp_path))
    uploader.put(TrialEnd("quick", 1, ""))

    assert not uploader.drain(timeout=2)
    assert head.received == [("quick", "checkpoint"), ("quick", "trial_ended")]
    head.release.set()
    assert uploader.drain(timeout=10)
    assert head.received[2:] == [("slow", "checkpoint"), ("slow", "trial_ended")]
