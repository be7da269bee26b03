"""Streaming a trial's files to the head, and checkpoints back from it.

Used when storage is a folder only the head can see: a checkpoint goes up as
a stream of chunks and appears in storage whole when the stream ends; a
checkpoint to resume from comes down into a local folder.

Every stream opens with a message that names the folder and carries no file
(an empty ``relative_path``), so an empty folder is a stream too, and the
receiver knows where the files go before the first one arrives.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from proto.generated import tune_pb2

CHUNK_SIZE = 4 * 1024 * 1024


def file_chunks(
    trial_id: str, folder: str, local_dir: str, run_id: str = ""
) -> Iterator:
    """The folder's header, then every file under ``local_dir`` as FileChunk
    messages, file by file."""
    yield tune_pb2.FileChunk(trial_id=trial_id, folder=folder, run_id=run_id)
    for root, _, names in os.walk(local_dir):
        for name in sorted(names):
            path = os.path.join(root, name)
            relative = os.path.relpath(path, local_dir)
            for chunk in _chunks_of(trial_id, folder, relative, path):
                chunk.run_id = run_id
                yield chunk


def _chunks_of(trial_id: str, folder: str, relative: str, path: str) -> Iterator:
    with open(path, "rb") as f:
        chunk = f.read(CHUNK_SIZE)
        while True:
            following = f.read(CHUNK_SIZE)
            yield tune_pb2.FileChunk(
                trial_id=trial_id,
                folder=folder,
                relative_path=relative,
                data=chunk,
                last_of_file=not following,
            )
            if not following:
                return
            chunk = following


def write_chunks(chunks: Iterator, local_dir: str) -> None:
    """Write a stream of FileChunk messages into ``local_dir``, which is made
    even when the stream holds no file."""
    os.makedirs(local_dir, exist_ok=True)
    current = None
    try:
        for chunk in chunks:
            if current is None and not chunk.relative_path:
                continue  # a folder's header
            if current is None:
                path = safe_join(local_dir, chunk.relative_path)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                current = open(path, "wb")
            current.write(chunk.data)
            if chunk.last_of_file:
                current.close()
                current = None
    finally:
        if current is not None:
            current.close()


def safe_join(root: str, relative: str) -> str:
    """``root/relative``, refusing paths that climb out of ``root``."""
    path = os.path.normpath(os.path.join(root, relative))
    if os.path.isabs(relative) or not path.startswith(os.path.normpath(root) + os.sep):
        raise ValueError(f"file path {relative!r} leaves its folder")
    return path
