"""Paths in storage: local folders or any fsspec URI, reached the same way.

Local paths take the plain ``os`` route so the common case costs no fsspec
import; anything with a scheme (``s3://``, ``gs://``, ``memory://``) goes through
fsspec. ``RunConfig(storage_filesystem=...)`` takes an fsspec or a pyarrow
filesystem, as Ray does; the path is then named as that filesystem names it
(``"bucket/prefix"``, no scheme).
"""

from __future__ import annotations

import os
import posixpath
import uuid
from typing import Any

from tune_client.errors import StorageError, TuneConfigError

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
    """The fsspec filesystem for ``path`` and the path as that filesystem names it.

    Listings are never cached: the head, the workers and the client each
    write the same bucket, so a cached listing would hide the others' files.
    """
    if filesystem is not None:
        return filesystem, path
    import fsspec.core

    try:
        fs, fs_path = fsspec.core.url_to_fs(
            strip_file_scheme(path), use_listings_cache=False
        )
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


def as_fsspec(filesystem: Any) -> Any:
    """``RunConfig.storage_filesystem`` as an fsspec filesystem (None stays None).

    A ``pyarrow.fs.FileSystem``, which Ray users pass, is wrapped so that the
    head and the workers reach every backend through one interface.
    """
    if filesystem is None:
        return None
    import fsspec

    if isinstance(filesystem, fsspec.AbstractFileSystem):
        return filesystem
    if type(filesystem).__module__.startswith("pyarrow"):
        from fsspec.implementations.arrow import ArrowFSWrapper

        return ArrowFSWrapper(filesystem)
    raise TuneConfigError(
        f"storage_filesystem={filesystem!r} is neither an fsspec filesystem nor a "
        "pyarrow.fs.FileSystem. Pass one of those (e.g. s3fs.S3FileSystem(...) "
        "or pyarrow.fs.S3FileSystem(...)), or leave it out and give storage_path "
        "a URI such as s3://bucket/prefix."
    )


def is_local_filesystem(filesystem: Any) -> bool:
    protocol = getattr(filesystem, "protocol", None)
    if isinstance(protocol, (tuple, list)):
        protocol = protocol[0] if protocol else None
    return protocol in ("file", "local")


def resolve(path: str, filesystem: Any = None) -> str:
    """``path`` as it is stored and shown: an absolute local path, a URI, or
    with ``filesystem`` the path in that filesystem (``"bucket/prefix"``)."""
    if filesystem is None or is_local_filesystem(filesystem):
        return normalize_local(path)
    return fs_path(path, filesystem).rstrip("/")


def normalize_local(path: str) -> str:
    """An absolute local path with ``~`` expanded; URIs are returned as given."""
    if is_uri(path):
        return path
    return os.path.abspath(os.path.expanduser(strip_file_scheme(path)))


def check_writable(path: str, filesystem: Any = None) -> None:
    """Fail before any trial runs when ``path`` cannot be created or written.

    A bucket is never created: a misspelled name would otherwise become a new
    bucket that holds the results where nobody looks for them.
    """
    if filesystem is None and not is_uri(path):
        _check_local_writable(path)
        return
    fs, root = get_filesystem(path, filesystem)
    probe = posixpath.join(root, _probe_name())
    try:
        if not _has_buckets(fs):
            fs.makedirs(root, exist_ok=True)
        fs.pipe_file(probe, b"ok")
        fs.rm_file(probe)
    except FileNotFoundError as exc:
        if _has_buckets(fs):
            raise _missing_bucket_error(path, fs, root, exc) from exc
        raise _unwritable_error(path, exc) from exc
    except Exception as exc:  # noqa: BLE001 - any backend error means unusable
        raise _unwritable_error(path, exc) from exc


def _check_local_writable(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, _probe_name())
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as exc:
        raise StorageError(
            f"storage path {path!r} is not writable: {exc.strerror}. Choose a "
            "folder you can write with RunConfig(storage_path=...)."
        ) from exc


def _probe_name() -> str:
    """A name no other check shares, even one from another thread of this
    process submitting to the same folder at the same moment."""
    return f".write_probe_{uuid.uuid4().hex}"


def _has_buckets(fs: Any) -> bool:
    """Object stores (s3fs, gcsfs, adlfs) name a bucket first in every path."""
    return hasattr(fs, "split_path")


def _missing_bucket_error(
    path: str, fs: Any, root: str, exc: Exception
) -> StorageError:
    bucket = fs.split_path(root)[0]
    return StorageError(
        f"storage path {path!r}: bucket {bucket!r} does not exist ({exc}). Create "
        "the bucket first (for S3: aws s3 mb s3://<bucket>) or fix its name; "
        "buckets are never created for you, so a misspelled name cannot hide "
        "results in a new one."
    )


def _unwritable_error(path: str, exc: Exception) -> StorageError:
    return StorageError(
        f"storage path {path!r} cannot be written: {exc!r}. Check the URI, the "
        "credentials and the endpoint settings (for S3: AWS_ENDPOINT_URL_S3, "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)."
    )
