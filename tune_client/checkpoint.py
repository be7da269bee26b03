"""``Checkpoint``: a folder of files in storage, local or remote.

A checkpoint is only a path and the filesystem that holds it. Reading one that
sits on a remote filesystem downloads it into a temporary folder first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from tune_client import storage


class Checkpoint:
    """A folder of checkpoint files; ``filesystem`` is None for a local path."""

    def __init__(self, path: str | os.PathLike, filesystem: Any = None) -> None:
        path = os.fspath(path)
        if filesystem is None and not storage.is_uri(path):
            path = storage.normalize_local(path)
        self.path = path
        self.filesystem = filesystem

    @classmethod
    def from_directory(cls, path: str | os.PathLike) -> Checkpoint:
        """A checkpoint of a local folder (read when it is reported)."""
        return cls(path)

    @property
    def is_local(self) -> bool:
        return self.filesystem is None and not storage.is_uri(self.path)

    def to_directory(self, path: str | os.PathLike | None = None) -> str:
        """Copy the checkpoint's files into ``path`` (a new temp folder if None)."""
        target = (
            os.fspath(path)
            if path is not None
            else tempfile.mkdtemp(prefix="checkpoint_")
        )
        os.makedirs(target, exist_ok=True)
        if self.is_local:
            shutil.copytree(self.path, target, dirs_exist_ok=True)
        else:
            fs, fs_path = storage.get_filesystem(self.path, self.filesystem)
            fs.get(fs_path.rstrip("/") + "/", target, recursive=True)
        return target

    @contextlib.contextmanager
    def as_directory(self) -> Iterator[str]:
        """A local folder with the checkpoint's files, for the ``with`` block.

        A local checkpoint is handed over in place, so do not modify its files.
        """
        if self.is_local:
            yield self.path
            return
        target = self.to_directory()
        try:
            yield target
        finally:
            shutil.rmtree(target, ignore_errors=True)

    def __fspath__(self) -> str:
        return self.path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checkpoint) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        fs = "local" if self.filesystem is None else type(self.filesystem).__name__
        return f"Checkpoint(filesystem={fs}, path={self.path})"
