"""How objects are turned into object files for the store, and back.

An object is written once, to a temporary file in the layout of
``object_format`` (Arrow IPC for DataFrames and tables, ``.npy`` for arrays,
cloudpickle protocol 5 with aligned out-of-band buffers for the rest); its id
is the SHA-256 of that file. The same data always gets the same id, so it is
uploaded once, and the file is streamed to the head from disk, so a large
object is never held twice in the client's memory.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cloudpickle

from tune_client import object_format
from tune_client.errors import NotSerializableError
from tune_client.trainable import ObjectRef


@dataclass
class EncodedObject:
    """An object ready to upload: its id, size and where its bytes are.

    Either ``path`` names a temporary file (removed by ``discard``) or
    ``data`` holds small bytes.
    """

    object_id: str
    size: int
    kind: str
    path: str | None = None
    data: bytes | None = None

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        """The bytes in pieces of ``chunk_size``, read through a mapping."""
        if self.data is not None:
            view = memoryview(self.data)
            for offset in range(0, max(len(view), 1), chunk_size):
                yield bytes(view[offset : offset + chunk_size])
            return
        with open(self.path, "rb") as f:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                for offset in range(0, len(mapped), chunk_size):
                    yield mapped[offset : offset + chunk_size]

    def ref(self) -> ObjectRef:
        """What trials are given in place of the object."""
        return ObjectRef(self.object_id, self.size)

    def discard(self) -> None:
        """Remove the temporary file, if any; the object stays on the head."""
        if self.path is not None:
            _remove_quietly(self.path)
            self.path = None


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def encode(obj: Any, name: str, directory: str | None = None) -> EncodedObject:
    """Write ``obj`` to a temporary object file; ``name`` is for error messages."""
    fd, path = tempfile.mkstemp(prefix="tune-object-", dir=directory)
    os.close(fd)
    try:
        kind = object_format.write(obj, path)
    except Exception as exc:
        os.remove(path)
        raise NotSerializableError(
            f"the object {name!r} ({type(obj).__name__}) cannot be pickled: {exc}. "
            "Pass data that pickle can handle, or load it inside the trainable."
        ) from exc
    size = os.path.getsize(path)
    encoded = EncodedObject(object_format.file_digest(path), size, kind, path=path)
    weakref.finalize(encoded, _remove_quietly, path)  # even if never uploaded
    return encoded


def encode_bytes(data: bytes) -> EncodedObject:
    """Bytes stored as they are (the cloudpickled trainable)."""
    return EncodedObject(object_id(data), len(data), "bytes", data=data)


def dumps(obj: Any, name: str) -> bytes:
    """Plain cloudpickle bytes of ``obj``; ``name`` says which object failed."""
    try:
        return cloudpickle.dumps(obj, protocol=5)
    except Exception as exc:
        raise NotSerializableError(
            f"the object {name!r} ({type(obj).__name__}) cannot be pickled: {exc}. "
            "Pass data that pickle can handle, or load it inside the trainable."
        ) from exc


def object_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_file(path: str) -> Any:
    """The object in an object file (or a plain cloudpickle file)."""
    return object_format.load(path)
