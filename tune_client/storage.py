"""Paths in storage: local folders or any fsspec URI, reached the same way.

Local paths take the plain ``os`` route so the common case costs no fsspec
import; anything with a scheme (``s3://``, ``gs://``, ``memory://``) goes through
fsspec.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

from tune_client.errors import StorageError

# Written last into a checkpoint folder in a bucket: the folder is whole.
CHECKPOINT_MARKER = ".checkpoint_complete"
# In a trial's folder: the run of the trial that owns it (see the uploader).
RUN_OWNER_FILE = ".run_owner"


def is_uri(path: str) -> bool:
    """True for ``scheme://...`` paths other than ``file://``."""
    return "://" in path and not path.startswith("file://")


def strip_file_scheme(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def join(base: str, *parts: str) -> str:
    if is_uri(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def get_filesystem(path: str, filesystem: Any = None) -> tuple[Any, str]:
    """The fsspec filesystem for ``path`` and the path as that filesystem names it."""
    if filesystem is not None:
        return filesystem, path
    import fsspec.core

    try:
        fs, fs_path = fsspec.core.url_to_fs(strip_file_scheme(path))
    except (ImportError, ValueError) as exc:
        raise StorageError(
            f"cannot open storage {path!r}: {exc}. Install the filesystem's "
            "package (for s3:// run: pip install 'tune-cluster[s3]')."
        ) from exc
    return fs, fs_path


def fs_path(path: str, filesystem: Any) -> str:
    """``path`` as ``filesystem`` names it (without its ``scheme://``)."""
    if is_uri(path):
        return filesystem._strip_protocol(path)
    return path


def normalize_local(path: str) -> str:
    """An absolute local path with ``~`` expanded; URIs are returned as given."""
    if is_uri(path):
        return path
    return os.path.abspath(os.path.expanduser(strip_file_scheme(path)))


def check_writable(path: str, filesystem: Any = None) -> None:
    """Fail before any trial runs when ``path`` cannot be created or written."""
    if filesystem is None and not is_uri(path):
        try:
            os.makedirs(path, exist_ok=True)
            probe = os.path.join(path, f".write_probe_{os.getpid()}")
            with open(probe, "w") as f:
                f.write("ok")
            os.remove(probe)
        except OSError as exc:
            raise StorageError(
                f"storage path {path!r} is not writable: {exc.strerror}. Choose a "
                "folder you can write with RunConfig(storage_path=...)."
            ) from exc
        return
    fs, fs_path = get_filesystem(path, filesystem)
    probe = posixpath.join(fs_path, f".write_probe_{os.getpid()}")
    try:
        fs.makedirs(fs_path, exist_ok=True)
        fs.pipe_file(probe, b"ok")
        fs.rm_file(probe)
    except Exception as exc:  # noqa: BLE001 - any backend error means unusable
        raise StorageError(
            f"storage path {path!r} cannot be written: {exc!r}. Check the URI, the "
            "credentials and the endpoint settings."
        ) from exc
