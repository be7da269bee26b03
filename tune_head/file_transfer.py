"""The head's side of trial file streaming, for storage only it can see.

An upload lands in ``<folder>.partial`` and is renamed into place when the
stream ends, so a checkpoint folder in storage is always whole. Downloads are
limited to folders inside an experiment the head holds.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

from proto.generated import tune_pb2
from tune_client.file_transfer import file_chunks, safe_join, write_chunks


def receive(chunks: Iterator, trial_folder: str, first: tune_pb2.FileChunk) -> str:
    """Store an uploaded folder (or the trial's own files) under ``trial_folder``."""

    def all_chunks():
        yield first
        yield from chunks

    if not first.folder:
        write_chunks(all_chunks(), trial_folder)
        return trial_folder
    target = safe_join(trial_folder, first.folder)
    partial = f"{target}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    write_chunks(all_chunks(), partial)
    if os.path.exists(target):
        shutil.rmtree(target)
    os.rename(partial, target)
    return target


def send(folder: str) -> Iterator:
    return file_chunks("", "", folder)
