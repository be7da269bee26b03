"""How objects are turned into bytes for the object store, and back.

Objects are cloudpickled with protocol 5; the object id is the SHA-256 of the
bytes, so the same data always gets the same id and is uploaded once.
"""

from __future__ import annotations

import hashlib
from typing import Any

import cloudpickle

from tune_client.errors import NotSerializableError


def dumps(obj: Any, name: str) -> bytes:
    """Serialize ``obj``; ``name`` says which object failed, if one does."""
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
    with open(path, "rb") as f:
        return cloudpickle.load(f)
