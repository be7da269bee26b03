"""Trainable wrappers: ``with_parameters`` and ``with_resources``.

A trainable is a function ``fn(config)`` or ``fn(config, **objects)``. The
wrappers only record what to pass and what to reserve; large objects are put
into the head's object store when the experiment is submitted, and each trial
process loads them from its machine's cache.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tune_client.errors import NotSerializableError, TuneConfigError


@dataclass(frozen=True)
class ObjectRef:
    """A reference to an object in the head's store, by the hash of its bytes."""

    object_id: str
    size: int = 0


@dataclass
class WrappedTrainable:
    """A trainable with its large inputs and its per-trial resources."""

    fn: Callable[..., Any]
    objects: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)

    @property
    def __name__(self) -> str:  # so naming code treats it like the function
        return getattr(self.fn, "__name__", type(self.fn).__name__)

    def __call__(self, config: dict, object_loader: Callable | None = None) -> Any:
        kwargs = {
            name: object_loader(ref) if isinstance(ref, ObjectRef) else ref
            for name, ref in self.objects.items()
        }
        return self.fn(config, **kwargs)


def _unwrap(trainable: Any) -> WrappedTrainable:
    if isinstance(trainable, WrappedTrainable):
        return WrappedTrainable(
            trainable.fn, dict(trainable.objects), dict(trainable.resources)
        )
    if not callable(trainable):
        raise TuneConfigError(
            f"the trainable {trainable!r} is not callable; pass a function "
            "fn(config) or fn(config, **objects)."
        )
    if inspect.isclass(trainable):
        raise TuneConfigError(
            f"class trainables ({trainable.__name__}) are not supported; pass a "
            "function fn(config) that calls tune.report(...)."
        )
    return WrappedTrainable(trainable)


def with_parameters(trainable: Any, **objects: Any) -> WrappedTrainable:
    """Pass large constant objects to every trial through the object store.

    Each keyword becomes a keyword argument of the trainable. The objects are
    stored once per cluster and once per machine, not once per trial.
    """
    wrapped = _unwrap(trainable)
    fn_params = inspect.signature(wrapped.fn).parameters
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in fn_params.values())
    for name in objects:
        if name not in fn_params and not takes_kwargs:
            raise TuneConfigError(
                f"with_parameters(..., {name}=...): {wrapped.__name__}() has no "
                f"parameter named {name!r}; add it to the function's signature."
            )
    wrapped.objects.update(objects)
    return wrapped


def with_resources(
    trainable: Any, resources: Mapping[str, float] | Callable | None
) -> WrappedTrainable:
    """Reserve resources per trial, e.g. ``{"cpu": 2, "gpu": 1}``."""
    wrapped = _unwrap(trainable)
    if resources is None:
        return wrapped
    if callable(resources):
        raise TuneConfigError(
            "with_resources: a function of the config is not supported; pass a "
            'dict such as {"cpu": 2, "gpu": 1}.'
        )
    normalized: dict[str, float] = {}
    for name, amount in dict(resources).items():
        key = name.lower() if name.lower() in ("cpu", "gpu", "memory") else name
        if not isinstance(amount, (int, float)) or amount < 0:
            raise TuneConfigError(
                f"with_resources: {name}={amount!r} must be a number >= 0."
            )
        normalized[key] = float(amount)
    gpus = normalized.get("gpu", 0.0)
    if gpus > 1 and not gpus.is_integer():
        raise TuneConfigError(
            f"with_resources: gpu={gpus:g} cannot be met: a trial takes a share "
            "of one GPU (below 1) or whole GPUs (1, 2, ...)."
        )
    wrapped.resources = normalized
    return wrapped


def format_resources(resources: Mapping[str, float]) -> str:
    """``2 cpu, 1.5 GiB memory``: for logs, ``tune status`` and messages."""
    return ", ".join(
        f"{v / 2**30:.1f} GiB {k}" if k == "memory" else f"{v:g} {k}"
        for k, v in sorted(resources.items())
    )


def trial_resources(trainable: WrappedTrainable) -> dict[str, float]:
    """The resources one trial reserves: one CPU unless the user said otherwise."""
    resources = dict(trainable.resources) or {"cpu": 1.0}
    resources.setdefault("cpu", 0.0)
    return {name: amount for name, amount in resources.items() if amount > 0}


def find_unpicklable(fn: Callable) -> str | None:
    """Name the global or closure variable of ``fn`` that cloudpickle rejects."""
    import cloudpickle

    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    candidates: dict[str, Any] = {}
    closure = getattr(fn, "__closure__", None) or ()
    for name, cell in zip(code.co_freevars, closure, strict=False):
        try:
            candidates[name] = cell.cell_contents
        except ValueError:
            continue
    fn_globals = getattr(fn, "__globals__", {})
    for name in code.co_names:
        if name in fn_globals:
            candidates[name] = fn_globals[name]
    for name, value in candidates.items():
        try:
            cloudpickle.dumps(value)
        except Exception:  # noqa: BLE001 - any pickling failure counts
            return f"{name} ({type(value).__name__})"
    return None


def pickle_trainable(trainable: WrappedTrainable) -> bytes:
    """cloudpickle the trainable, naming what cannot be pickled if that fails."""
    import cloudpickle

    try:
        return cloudpickle.dumps(trainable)
    except Exception as exc:
        culprit = find_unpicklable(trainable.fn)
        what = f"the variable {culprit} it refers to" if culprit else "it"
        raise NotSerializableError(
            f"the trainable {trainable.__name__}() cannot be sent to the workers: "
            f"{what} cannot be pickled ({exc}). Create such objects inside the "
            "function, or pass picklable data with tune.with_parameters()."
        ) from exc
