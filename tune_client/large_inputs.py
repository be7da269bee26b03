"""Large values that would otherwise be copied into every trial's metadata.

A value in ``param_space`` is written into each trial's ``params.json``,
``params.pkl`` and every message about the trial. One larger than
``LARGE_VALUE_BYTES`` is moved into the object store instead, with a warning
that recommends ``tune.with_parameters``: the trial still receives the real
value (``resolve_refs`` puts it back in the trial process), and the trial's
metadata holds only an ``ObjectRef``.

A trainable that captures large data (free variables, or globals it uses) is
pickled with that data into every trial start; ``closure_warning`` names the
captured variables so the user can pass them with ``with_parameters``.
"""

from __future__ import annotations

import os
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

import cloudpickle

from tune_client.search.sample import Categorical, Domain
from tune_client.trainable import ObjectRef

LARGE_VALUE_BYTES = 1 << 20
GRID_KEY = "grid_search"
_NOT_DATA = (
    types.ModuleType,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
)
Store = Callable[[Any, str], ObjectRef]


def approx_size(value: Any) -> int:
    """Bytes ``value`` takes when pickled, estimated cheaply for array-likes."""
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return len(value)
    if isinstance(value, (int, float, bool, complex, type(None))):
        return 16
    nbytes = getattr(value, "nbytes", None)
    has_objects = getattr(getattr(value, "dtype", None), "hasobject", False)
    if isinstance(nbytes, int) and not has_objects:
        return nbytes
    memory_usage = getattr(value, "memory_usage", None)
    if callable(memory_usage) and type(value).__module__.startswith("pandas"):
        usage = memory_usage(index=True, deep=False)
        return int(getattr(usage, "sum", lambda: usage)())
    try:
        return len(cloudpickle.dumps(value, protocol=5))
    except Exception:  # noqa: BLE001 - unpicklable values are reported elsewhere
        return 0


def _is_grid(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {GRID_KEY}


def move_large_values(
    param_space: dict, store: Store, limit: int = LARGE_VALUE_BYTES
) -> dict:
    """A copy of ``param_space`` whose large constants are ``ObjectRef``s.

    ``store(value, path)`` puts one value into the object store. Constants,
    grid_search entries and choice() categories are looked at; the user's
    param_space is left as it was.
    """
    return {
        key: _move(value, f"param_space[{key!r}]", store, limit)
        for key, value in param_space.items()
    }


def _move(value: Any, path: str, store: Store, limit: int) -> Any:
    if _is_grid(value):
        return {
            GRID_KEY: [
                _move(v, f"{path}[grid_search {i}]", store, limit)
                for i, v in enumerate(value[GRID_KEY])
            ]
        }
    if isinstance(value, dict):
        return {k: _move(v, f"{path}[{k!r}]", store, limit) for k, v in value.items()}
    if isinstance(value, Categorical):
        categories = [
            _move(v, f"{path}[choice {i}]", store, limit)
            for i, v in enumerate(value.categories)
        ]
        if all(a is b for a, b in zip(categories, value.categories, strict=True)):
            return value
        return Categorical(categories)
    if isinstance(value, (Domain, ObjectRef)):
        return value
    size = approx_size(value)
    if size <= limit:
        return value
    warnings.warn(
        f"{path} is {_mib(size)} ({type(value).__name__}); values this large are "
        "not written into trial metadata, so it was put into the object store "
        "and each trial still receives it. Pass large data with "
        "tune.with_parameters(trainable, name=value) instead, so it is shared "
        "without a copy per trial.",
        UserWarning,
        stacklevel=_user_stacklevel(),
    )
    return store(value, path)


def resolve_refs(value: Any, load: Callable[[ObjectRef], Any]) -> Any:
    """``value`` with each ``ObjectRef`` inside dicts, lists and tuples loaded."""
    if isinstance(value, ObjectRef):
        return load(value)
    if isinstance(value, dict):
        return {k: resolve_refs(v, load) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and any(_has_ref(v) for v in value):
        return type(value)(resolve_refs(v, load) for v in value)
    return value


def ref_ids(value: Any) -> list[str]:
    """The ids of every ``ObjectRef`` in a param_space (choice() included)."""
    if isinstance(value, ObjectRef):
        return [value.object_id]
    if isinstance(value, Categorical):
        value = value.categories
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [i for item in value for i in ref_ids(item)]
    return []


def _has_ref(value: Any) -> bool:
    if isinstance(value, ObjectRef):
        return True
    if isinstance(value, dict):
        return any(_has_ref(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_ref(v) for v in value)
    return False


# ---- what a trainable captures ----------------------------------------------


def captured_variables(fn: Callable) -> dict[str, Any]:
    """The free variables and the globals ``fn`` (and code nested in it) uses."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return {}
    captured: dict[str, Any] = {}
    closure = getattr(fn, "__closure__", None) or ()
    for name, cell in zip(code.co_freevars, closure, strict=False):
        try:
            captured[name] = cell.cell_contents
        except ValueError:
            continue
    fn_globals = getattr(fn, "__globals__", {})
    for name in _global_names(code):
        if name in fn_globals:
            captured.setdefault(name, fn_globals[name])
    return {
        name: value
        for name, value in captured.items()
        if not isinstance(value, _NOT_DATA)
    }


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def closure_warning(fn: Callable, pickled_size: int, limit: int = LARGE_VALUE_BYTES):
    """Warn, naming the variables, when ``fn`` carries more than ``limit`` bytes.

    ``pickled_size`` (the size of the pickled trainable) gates the check, so
    small trainables cost nothing here.
    """
    if pickled_size <= limit:
        return
    sizes = {name: approx_size(v) for name, v in captured_variables(fn).items()}
    large = sorted((n for n in sizes if sizes[n] > limit // 16), key=sizes.get)[::-1]
    if not large or sum(sizes.values()) <= limit:
        return
    listed = ", ".join(f"{name} ({_mib(sizes[name])})" for name in large)
    name = getattr(fn, "__name__", "the trainable")
    warnings.warn(
        f"{name}() captures {listed}: it is pickled into every trial start. "
        f"Pass it with tune.with_parameters({name}, {large[0]}=...) instead, "
        "so it is stored once per machine and shared without a copy.",
        UserWarning,
        stacklevel=_user_stacklevel(),
    )


def _user_stacklevel() -> int:
    """The stacklevel of the first caller outside this package (the user's line)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"
