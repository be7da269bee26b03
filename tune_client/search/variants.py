"""Turning a param_space into the configs that trials run with.

A param_space is a dict whose values are constants, nested dicts, search
domains (``tune.uniform(...)``), ``tune.sample_from(fn)`` functions or grid
axes (``tune.grid_search([...])``, i.e. ``{"grid_search": [...]}``). Grid axes
may sit at any depth of nested dicts; lists and tuples are constants.

``generate_variants`` yields one resolved config per point of the grid cross
product. The axes are ordered by key path and the first varies fastest, as in
Ray Tune. Plain domains and grid values are resolved first, then
``sample_from`` functions, in repeated passes, so a function may read any other
value, including another function's.
"""

from __future__ import annotations

import itertools
import math
import numbers
import random
import re
from collections.abc import Iterator
from typing import Any

from tune_client.errors import SearchSpaceError
from tune_client.search.sample import (
    Categorical,
    Domain,
    Function,
    _ConfigView,
    _copy_value,
    _Unresolved,
    _UnresolvedDependency,
)

__all__ = [
    "count_grid_variants",
    "flatten_dict",
    "format_config_for_name",
    "generate_variants",
    "validate_param_space",
]

GRID_KEY = "grid_search"
_NAME_LIMIT = 80
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")

Path = tuple[Any, ...]


def _is_grid(value: Any) -> bool:
    return isinstance(value, dict) and GRID_KEY in value


def _path_str(path: Path, root: str = "param_space") -> str:
    return root + "".join(f'["{key}"]' for key in path)


# ---------------------------------------------------------------------------
# validation


def validate_param_space(param_space: Any) -> None:
    """Raise SearchSpaceError, naming the key path, if the space is malformed.

    Checks: param_space is a dict; every dict key is a str; every grid_search
    holds a non-empty list and nothing else; no domain or grid_search hides in
    a list (lists are constants, so it would never be sampled); no grid_search
    inside ``choice()`` categories.
    """
    if not isinstance(param_space, dict):
        raise SearchSpaceError(
            f"param_space must be a dict mapping parameter names to values or "
            f"search domains, got {type(param_space).__name__}; e.g. "
            f'param_space={{"lr": tune.loguniform(1e-4, 1e-1)}}.'
        )
    _check_dict(param_space, (), in_choice=False)


def _check_dict(node: dict, path: Path, *, in_choice: bool) -> None:
    for key, value in node.items():
        if not in_choice and not isinstance(key, str):
            raise SearchSpaceError(
                f"{_path_str(path)}[{key!r}]: keys must be str, got "
                f"{type(key).__name__}; rename the key to a string such as "
                f'"{key}".'
            )
        _check_value(value, (*path, key), in_choice=in_choice)


def _check_value(value: Any, path: Path, *, in_choice: bool) -> None:
    """Check one value; ``in_choice`` marks a value inside choice() categories.

    Those are free-form constants (any keys), but a dict drawn from them is
    still sampled, so grid_search there, which would never expand, is refused.
    """
    if _is_grid(value):
        _check_grid(value, path, in_choice=in_choice)
    elif isinstance(value, dict):
        _check_dict(value, path, in_choice=in_choice)
    elif isinstance(value, Categorical):
        for category in value.categories:
            _check_value(category, path, in_choice=True)
    elif isinstance(value, (list, tuple)):
        _check_constant(value, path)


def _check_grid(value: dict, path: Path, *, in_choice: bool) -> None:
    where = _path_str(path)
    if in_choice:
        raise SearchSpaceError(
            f"{where}: a grid_search inside choice() categories is never "
            f"expanded; move the grid_search to its own key of param_space."
        )
    extra = sorted(str(key) for key in value if key != GRID_KEY)
    if extra:
        raise SearchSpaceError(
            f"{where}: a grid_search dict must have no other keys, found "
            f"{extra}; write tune.grid_search([...]) alone as the value."
        )
    values = value[GRID_KEY]
    if not isinstance(values, list):
        raise SearchSpaceError(
            f'{where}["grid_search"] must be a list, got '
            f"{type(values).__name__}; use tune.grid_search(values), which "
            f"makes the list."
        )
    if not values:
        raise SearchSpaceError(
            f'{where}["grid_search"] is an empty list, so no trial could run; '
            f"give it at least one value or remove the key."
        )
    for item in values:
        _check_value(item, path, in_choice=False)


def _check_constant(value: Any, path: Path) -> None:
    """Lists are passed through as they are: refuse domains hidden in them."""
    items = value.values() if isinstance(value, dict) else value
    for item in items:
        if isinstance(item, Domain) or _is_grid(item):
            raise SearchSpaceError(
                f"{_path_str(path)}: a list holds {item!r}, but lists are "
                f"constants and are not sampled; give each entry its own key "
                f'(e.g. {{"layer_0": ..., "layer_1": ...}}) or use '
                f"tune.choice([...]) to pick among whole lists."
            )
        if isinstance(item, (list, tuple, dict)):
            _check_constant(item, path)


# ---------------------------------------------------------------------------
# counting and expanding the grid


def count_grid_variants(param_space: dict) -> int:
    """How many configs one pass of ``generate_variants`` yields.

    That is the product of the grid axes' sizes (1 without grid_search); a grid
    value that holds its own grid_search counts as that many values.
    """
    validate_param_space(param_space)
    return _count(param_space)


def _count(value: Any) -> int:
    if _is_grid(value):
        return sum(_count(item) for item in value[GRID_KEY])
    if isinstance(value, dict):
        return math.prod(_count(item) for item in value.values())
    return 1


def _grid_axes(node: dict, path: Path) -> list[tuple[Path, list]]:
    axes: list[tuple[Path, list]] = []
    for key, value in node.items():
        if _is_grid(value):
            axes.append(((*path, key), value[GRID_KEY]))
        elif isinstance(value, dict):
            axes.extend(_grid_axes(value, (*path, key)))
    return axes


def _copy_tree(node: dict) -> dict:
    """Copy the nested dicts (not the leaves) so paths can be reassigned."""
    return {
        key: _copy_tree(value)
        if isinstance(value, dict) and not _is_grid(value)
        else value
        for key, value in node.items()
    }


def _set_path(node: dict, path: Path, value: Any) -> None:
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _expand_grid(space: dict) -> Iterator[dict]:
    """Yield the space once per grid point; the first sorted axis varies fastest."""
    axes = sorted(_grid_axes(space, ()), key=lambda axis: axis[0])
    if not axes:
        yield space
        return
    # itertools.product varies its last argument fastest, so feed it reversed.
    for combo in itertools.product(*(values for _, values in reversed(axes))):
        variant = _copy_tree(space)
        for (path, _), value in zip(axes, reversed(combo), strict=True):
            _set_path(variant, path, value)
        # A chosen grid value may hold further grid axes.
        yield from _expand_grid(variant)


# ---------------------------------------------------------------------------
# sampling


def generate_variants(
    param_space: dict,
    rng: random.Random,
    *,
    constant_grid_search: bool = False,
) -> Iterator[dict]:
    """Yield one resolved config per grid point of ``param_space``.

    Random domains are drawn from ``rng`` for every config, so the same rng
    state gives the same configs (``sample_from`` functions get no rng: they
    are only reproducible if they seed themselves). With
    ``constant_grid_search`` the plain domains are drawn once and shared by all
    grid points of this pass. The space is validated before this returns;
    errors in ``sample_from`` functions surface while iterating.
    """
    validate_param_space(param_space)
    return _variants(param_space, rng, constant_grid_search)


def _variants(space: dict, rng: random.Random, constant: bool) -> Iterator[dict]:
    if constant:
        space = _build(space, rng, (), None)
    for variant in _expand_grid(space):
        pending: list[tuple[Path, Function]] = []
        config = _build(variant, rng, (), pending)
        _resolve_functions(config, pending, rng)
        yield config


def _build(
    node: Any,
    rng: random.Random,
    path: Path,
    pending: list[tuple[Path, Function]] | None,
) -> Any:
    """Copy ``node`` with plain domains drawn.

    Functions become placeholders listed in ``pending``; with ``pending`` None
    they, and grid axes, are kept for a later pass.
    """
    if isinstance(node, Function):
        if pending is None:
            return node
        pending.append((path, node))
        return _Unresolved(path)
    if isinstance(node, Domain):
        # A drawn choice may be a dict that holds further domains.
        return _build(node.sample(rng), rng, path, pending)
    if _is_grid(node):
        return node
    if isinstance(node, dict):
        return {
            key: _build(value, rng, (*path, key), pending)
            for key, value in node.items()
        }
    return _copy_value(node)


def _resolve_functions(
    config: dict, pending: list[tuple[Path, Function]], rng: random.Random
) -> None:
    """Call sample_from functions in passes until all are resolved."""
    while pending:
        waiting: list[tuple[Path, Function, Path]] = []
        for path, function in pending:
            try:
                value = function.sample(rng, _ConfigView(config))
            except _UnresolvedDependency as dependency:
                waiting.append((path, function, dependency.path))
                continue
            except SearchSpaceError:
                raise
            except Exception as exc:
                raise SearchSpaceError(
                    f"{_path_str(path)}: {function!r} raised "
                    f"{type(exc).__name__}: {exc}; fix the function (it gets a "
                    f"spec whose .config holds the trial's other values)."
                ) from exc
            _set_path(config, path, value)
        if len(waiting) == len(pending):
            raise _cycle_error(waiting)
        pending = [(path, function) for path, function, _ in waiting]


def _cycle_error(waiting: list[tuple[Path, Function, Path]]) -> SearchSpaceError:
    reads = "; ".join(
        f"{_path_str(path)} reads {_path_str(needed)}" for path, _, needed in waiting
    )
    return SearchSpaceError(
        f"cannot resolve sample_from at {_path_str(waiting[0][0])}: {reads}, and "
        f"none of these can run first (a cycle); change one function so it does "
        f"not read the others."
    )


# ---------------------------------------------------------------------------
# flattening and naming


def flatten_dict(d: dict, prefix: str = "", sep: str = "/") -> dict:
    """Flatten nested dicts: ``{"a": {"b": 1}}`` -> ``{"a/b": 1}``.

    A non-empty ``prefix`` is joined with ``sep`` too:
    ``flatten_dict(config, prefix="config")`` gives ``config/a/b`` columns.
    Empty nested dicts are kept as values. Keys are turned into str.
    """
    flat: dict = {}
    for key, value in d.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten_dict(value, name, sep))
        else:
            flat[name] = value
    return flat


def format_config_for_name(config: dict) -> str:
    """A short ``a=1.2346,b=x`` tag of a resolved config, safe in folder names.

    Nested keys are joined with ".", floats keep 5 significant digits, other
    characters outside ``[A-Za-z0-9_.=,-]`` become "_", and whole ``key=value``
    parts are dropped once the tag would pass 80 characters.
    """
    parts = [
        f"{_safe(key)}={_safe(_format_value(value))}"
        for key, value in flatten_dict(config, sep=".").items()
    ]
    if not parts:
        return ""
    name = parts[0][:_NAME_LIMIT]
    for part in parts[1:]:
        if len(name) + 1 + len(part) > _NAME_LIMIT:
            break
        name = f"{name},{part}"
    return name


def _format_value(value: Any) -> str:
    if isinstance(value, numbers.Integral):
        return str(value)
    if isinstance(value, numbers.Real):
        return f"{float(value):.5g}".replace("e+", "e")
    return str(value)


def _safe(text: str) -> str:
    return _UNSAFE_NAME_CHARS.sub("_", text)
