"""The object file: one immutable object laid out so readers can memory-map it.

Every object in the head's store and in a worker's cache is one file in this
layout, and its object id is the SHA-256 of the whole file::

    offset 0     header, 64 bytes: magic b"TUNEOBJ1", kind (8 bytes, NUL
                 padded), offset and length of the metadata (two uint64 LE)
    offset 64    payload, by kind (below)
    at the end   metadata: JSON saying where the payload's parts are

Kinds:

- ``numpy``: a numpy array as a genuine ``.npy`` file (numpy pads its header
  to 64 bytes, so the data is 64-byte aligned). Readers map it copy-on-write:
  the array is writable, and only the pages a trial writes become private.
  Arrays of Python objects go the ``pickle`` way instead.
- ``arrow``: a ``pyarrow.Table`` as an Arrow IPC file, read back zero-copy.
- ``pandas``: a DataFrame as an Arrow IPC file with pandas' metadata. Numeric
  columns without nulls come back zero-copy (one block per column) and are
  read-only, as Arrow makes them; ``df.copy()`` gives a writable frame. A
  frame Arrow cannot round-trip faithfully (mixed-type object columns,
  duplicate column names, ``attrs``...) is stored as ``pickle`` instead.
- ``pickle``: cloudpickle protocol 5; the pickle stream, then every
  out-of-band buffer (numpy arrays, Arrow buffers...) at a 64-byte aligned
  offset. Readers rebuild the object with ``pickle.loads(stream,
  buffers=[slices of a copy-on-write mapping])``, so large buffers are not
  copied either.

Files that do not start with the magic are plain cloudpickle (the trainable
is kept that way, since the head also writes it into the experiment folder).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import pickle
import struct
from typing import Any

import cloudpickle
import numpy as np

MAGIC = b"TUNEOBJ1"
HEADER = struct.Struct("<8s8sQQ32x")
ALIGN = 64
KINDS = ("numpy", "arrow", "pandas", "pickle")
PROBE_ROWS = 8


def _pad(f: Any, align: int = ALIGN) -> int:
    """Write zeros up to the next multiple of ``align``; return the offset."""
    offset = f.tell()
    gap = -offset % align
    if gap:
        f.write(b"\0" * gap)
    return offset + gap


def _finish(f: Any, kind: str, meta: dict) -> None:
    """Append the metadata and point the header at it."""
    meta_offset = _pad(f, 8)
    data = json.dumps(meta).encode()
    f.write(data)
    f.seek(0)
    f.write(HEADER.pack(MAGIC, kind.encode(), meta_offset, len(data)))


# ---- writing -----------------------------------------------------


# Below this a DataFrame is pickled: copying it costs less than loading Arrow.
ARROW_MIN_BYTES = 1 << 20


def choose_kind(obj: Any) -> str:
    """The layout ``obj`` is written in (see the module docstring)."""
    if isinstance(obj, np.ndarray) and type(obj) is np.ndarray:
        return "pickle" if obj.dtype.hasobject else "numpy"
    module = type(obj).__module__.split(".")[0]
    if module == "pyarrow":
        import pyarrow as pa

        if type(obj) is pa.Table:
            return "arrow"
    if module == "pandas":
        import pandas as pd

        if (
            type(obj) is pd.DataFrame
            and _frame_bytes(obj) >= ARROW_MIN_BYTES
            and _arrow_keeps(obj)
        ):
            return "pandas"
    return "pickle"


def _frame_bytes(frame: Any) -> int:
    return int(frame.memory_usage(index=True, deep=False).sum())


def write(obj: Any, path: str) -> str:
    """Write ``obj`` to ``path`` in its layout; return the kind used.

    Large buffers go from the object's memory to the file without an
    intermediate copy. Raises whatever pickling raises for objects that
    cannot be pickled.
    """
    kind = choose_kind(obj)
    with open(path, "wb") as f:
        f.write(b"\0" * HEADER.size)
        meta = _WRITERS[kind](obj, f)
        _finish(f, kind, meta)
    return kind


def _write_numpy(array: np.ndarray, f: Any) -> dict:
    start = f.tell()
    np.lib.format.write_array(f, array, allow_pickle=False)
    end = f.tell()
    return {
        "offset": end - array.nbytes,
        "shape": list(array.shape),
        "dtype": np.lib.format.dtype_to_descr(array.dtype),
        "fortran_order": bool(
            array.flags.f_contiguous and not array.flags.c_contiguous
        ),
        "npy": [start, end - start],
    }


def _write_ipc(table: Any, f: Any) -> dict:
    import pyarrow as pa

    start = f.tell()
    f.flush()
    sink = pa.PythonFile(f, mode="w")  # not closed: that would close ``f``
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    sink.flush()
    return {"ipc": [start, f.tell() - start]}


def _write_arrow(table: Any, f: Any) -> dict:
    return _write_ipc(table, f)


def _write_pandas(frame: Any, f: Any) -> dict:
    import pyarrow as pa

    return _write_ipc(pa.Table.from_pandas(frame), f)


def _write_pickle(obj: Any, f: Any) -> dict:
    buffers: list[pickle.PickleBuffer] = []
    stream = cloudpickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    start = f.tell()
    f.write(stream)
    placed = []
    for buffer in buffers:
        raw = buffer.raw()
        offset = _pad(f)
        f.write(raw)
        placed.append([offset, raw.nbytes])
    return {"pickle": [start, len(stream)], "buffers": placed}


_WRITERS = {
    "numpy": _write_numpy,
    "arrow": _write_arrow,
    "pandas": _write_pandas,
    "pickle": _write_pickle,
}


def _arrow_keeps(frame: Any) -> bool:
    """True when Arrow round-trips ``frame`` exactly (tried on its first rows).

    The probe converts a few rows both ways and compares them with pandas'
    own equality check, so dtypes, categories, time zones, index kinds and
    names are all covered without converting the whole frame twice.
    """
    import pandas as pd
    import pyarrow as pa

    if frame.attrs or not frame.columns.is_unique:
        return False
    probe = frame.iloc[:PROBE_ROWS]
    try:
        back = pa.Table.from_pandas(probe).to_pandas()
        pd.testing.assert_frame_equal(back, probe, check_flags=True)
    except (AssertionError, pa.ArrowException, TypeError, ValueError):
        return False
    return True


# ---- reading -------------------------------------------------------


def read_header(path: str) -> tuple[str, dict] | None:
    """The kind and metadata of an object file; None for plain cloudpickle."""
    with open(path, "rb") as f:
        head = f.read(HEADER.size)
        if len(head) < HEADER.size or not head.startswith(MAGIC):
            return None
        _, kind, meta_offset, meta_len = HEADER.unpack(head)
        f.seek(meta_offset)
        meta = json.loads(f.read(meta_len))
    return kind.rstrip(b"\0").decode(), meta


def load(path: str) -> Any:
    """The object in ``path``, mapping its large parts instead of copying them.

    The mapping lives as long as the returned object (or anything sharing its
    buffers) does.
    """
    header = read_header(path)
    if header is None:
        with open(path, "rb") as f:
            return cloudpickle.load(f)
    kind, meta = header
    return _READERS[kind](path, meta)


def _read_numpy(path: str, meta: dict) -> np.ndarray:
    dtype = np.lib.format.descr_to_dtype(meta["dtype"])
    shape = tuple(meta["shape"])
    if 0 in shape or dtype.itemsize == 0:
        return np.zeros(shape, dtype=dtype)
    order = "F" if meta["fortran_order"] else "C"
    return np.memmap(
        path, dtype=dtype, mode="c", offset=meta["offset"], shape=shape, order=order
    )


def _read_table(path: str, meta: dict) -> Any:
    import pyarrow as pa

    start, length = meta["ipc"]
    whole = pa.memory_map(path, "r").read_buffer()
    return pa.ipc.open_file(pa.BufferReader(whole.slice(start, length))).read_all()


def _read_pandas(path: str, meta: dict) -> Any:
    return _read_table(path, meta).to_pandas(split_blocks=True)


def _read_pickle(path: str, meta: dict) -> Any:
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    view = memoryview(mapped)
    start, length = meta["pickle"]
    buffers = [view[offset : offset + size] for offset, size in meta["buffers"]]
    return pickle.loads(view[start : start + length], buffers=buffers)


_READERS = {
    "numpy": _read_numpy,
    "arrow": _read_table,
    "pandas": _read_pandas,
    "pickle": _read_pickle,
}


def file_digest(path: str) -> str:
    """SHA-256 of a file, read through a mapping (no copy into the heap)."""
    digest = hashlib.sha256()
    if os.path.getsize(path) == 0:
        return digest.hexdigest()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        step = 64 * 1024 * 1024
        view = memoryview(m)
        for offset in range(0, len(m), step):
            digest.update(view[offset : offset + step])
        view.release()
    return digest.hexdigest()
