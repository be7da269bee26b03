"""Search-space domains: what ``tune.uniform(...)`` and its siblings return.

A domain says how to draw one value of a hyperparameter. ``generate_variants``
(in ``variants.py``) walks a param_space, draws every domain with a seeded
``random.Random`` and calls ``sample_from`` functions once the values they read
are known.

Only the standard library is imported, so the head can import this module
cheaply. Domains are plain data that the stdlib ``pickle`` handles, except the
user's callable inside a ``Function``, which callers send with cloudpickle.
"""

from __future__ import annotations

import copy
import inspect
import math
import numbers
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tune_client.errors import SearchSpaceError

__all__ = [
    "Categorical",
    "Domain",
    "Float",
    "Function",
    "Integer",
    "choice",
    "grid_search",
    "lograndint",
    "loguniform",
    "qloguniform",
    "qlograndint",
    "qrandint",
    "qrandn",
    "quniform",
    "randint",
    "randn",
    "sample_from",
    "uniform",
]

# Slack when deciding whether a float bound is itself a multiple of q, so that
# quniform(0.1, 0.3, 0.1) keeps 0.3 although 0.3 / 0.1 == 2.9999999999999996.
_MULTIPLE_SLACK = 1e-9


class Domain:
    """Base of every search domain: an object that draws one value per trial.

    Subclasses implement ``sample``. ``generate_variants`` treats any instance
    of this class found in a param_space as something to draw, so custom
    domains only need ``sample``.
    """

    def sample(self, rng: random.Random, spec: Any = None) -> Any:
        """Draw one value using ``rng``; ``spec`` is only used by ``Function``."""
        raise NotImplementedError(f"{type(self).__name__} does not define sample()")


# ---------------------------------------------------------------------------
# argument checks shared by Float and Integer


def _real(call: str, name: str, value: Any) -> float:
    """Return ``value`` if it is a finite real number, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SearchSpaceError(
            f"{call}: {name} must be a number, got {type(value).__name__} "
            f"{value!r}; pass an int or float."
        )
    if not math.isfinite(value):
        raise SearchSpaceError(
            f"{call}: {name} must be finite, got {value!r}; pass a finite number."
        )
    return value


def _integral(call: str, name: str, value: Any) -> int:
    """Return ``value`` as an int if it is a whole number, else raise."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise SearchSpaceError(
        f"{call}: {name} must be a whole number, got {type(value).__name__} "
        f"{value!r}; pass an int."
    )


def _positive_q(call: str, q: Any, *, whole: bool) -> float | int:
    """Check the quantization step: a positive number (an int if ``whole``)."""
    q = _integral(call, "q", q) if whole else _real(call, "q", q)
    if q <= 0:
        raise SearchSpaceError(
            f"{call}: q must be greater than 0, got {q!r}; pass the step size "
            f"that values are rounded to, e.g. q=1."
        )
    return q


def _snap(n: int, q: float | int) -> float:
    """Return ``n * q`` as a float without binary noise (3 * 0.1 -> 0.3)."""
    value = n * q
    if isinstance(q, float):
        exponent = Decimal(repr(float(q))).as_tuple().exponent
        if isinstance(exponent, int):
            value = round(value, max(0, -exponent))
    return float(value)


def _clamp(value: int, low: int, high: int) -> int:
    return min(max(value, low), high)


# ---------------------------------------------------------------------------
# Float


_FLOAT_SAMPLERS = ("uniform", "loguniform", "normal")


@dataclass(repr=False)
class Float(Domain):
    """A float domain; build it with ``uniform``, ``loguniform`` or ``randn``.

    ``sampler`` is ``"uniform"`` or ``"loguniform"`` (both need
    ``lower < upper``; ``loguniform`` needs ``lower > 0``) or ``"normal"``
    (``lower`` and ``upper`` are None; ``mean`` and ``sd`` are used). With
    ``q`` set, values are rounded to a multiple of ``q`` that lies in
    ``[lower, upper]`` (both bounds inclusive). Fields are public so other
    searchers can translate the domain into their own space.
    """

    lower: float | None
    upper: float | None
    sampler: str = "uniform"
    q: float | None = None
    mean: float = 0.0
    sd: float = 1.0

    def __post_init__(self) -> None:
        if self.sampler not in _FLOAT_SAMPLERS:
            raise SearchSpaceError(
                f"Float(sampler={self.sampler!r}) is not a known sampler; use "
                f"one of {', '.join(_FLOAT_SAMPLERS)}."
            )
        if self.sampler == "normal":
            self._check_normal()
        else:
            self._check_bounds()
        if self.q is not None:
            self.q = _positive_q(repr(self), self.q, whole=False)
            if self.sampler != "normal":
                self._multiples()

    def __repr__(self) -> str:
        prefix = "" if self.q is None else "q"
        tail = "" if self.q is None else f", {self.q!r}"
        if self.sampler == "normal":
            return f"{prefix}randn({self.mean!r}, {self.sd!r}{tail})"
        name = "uniform" if self.sampler == "uniform" else "loguniform"
        return f"{prefix}{name}({self.lower!r}, {self.upper!r}{tail})"

    def _check_bounds(self) -> None:
        call = repr(self)
        lower = _real(call, "lower", self.lower)
        upper = _real(call, "upper", self.upper)
        if lower >= upper:
            raise SearchSpaceError(
                f"{call}: lower ({lower!r}) must be less than upper ({upper!r}); "
                f"swap them, or use a constant if you want a single value."
            )
        if self.sampler == "loguniform" and lower <= 0:
            raise SearchSpaceError(
                f"{call}: log sampling needs lower > 0, got {lower!r}; pass the "
                f"untransformed bound (e.g. 1e-4, not -4) or use uniform()."
            )

    def _check_normal(self) -> None:
        call = repr(self)
        _real(call, "mean", self.mean)
        sd = _real(call, "sd", self.sd)
        if sd <= 0:
            raise SearchSpaceError(
                f"{call}: sd must be greater than 0, got {sd!r}; pass a positive "
                f"standard deviation."
            )
        if self.lower is not None or self.upper is not None:
            raise SearchSpaceError(
                f"{call}: normal sampling has no bounds; leave lower and upper as None."
            )

    def _multiples(self) -> tuple[int, int]:
        """The first and last n with n * q inside [lower, upper]."""
        first = math.ceil(self.lower / self.q - _MULTIPLE_SLACK)
        last = math.floor(self.upper / self.q + _MULTIPLE_SLACK)
        if self.sampler == "loguniform":
            first = max(first, 1)
        if first > last:
            raise SearchSpaceError(
                f"{self!r}: no multiple of q={self.q!r} lies between "
                f"{self.lower!r} and {self.upper!r}; use a smaller q or wider "
                f"bounds."
            )
        return first, last

    def _draw(self, rng: random.Random, low: float | None, high: float | None):
        if self.sampler == "normal":
            return rng.normalvariate(self.mean, self.sd)
        if self.sampler == "uniform":
            return rng.uniform(low, high)
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
        return min(max(value, low), high)

    def sample(self, rng: random.Random, spec: Any = None) -> float:
        """Draw one float; quantized values are multiples of ``q`` in range."""
        if self.q is None:
            return float(self._draw(rng, self.lower, self.upper))
        if self.sampler == "normal":
            return _snap(round(self._draw(rng, None, None) / self.q), self.q)
        first, last = self._multiples()
        raw = self._draw(rng, first * self.q, last * self.q)
        return _snap(_clamp(round(raw / self.q), first, last), self.q)


# ---------------------------------------------------------------------------
# Integer


@dataclass(repr=False)
class Integer(Domain):
    """An integer domain; build it with ``randint``, ``qrandint``, ``lograndint``.

    ``upper`` is exclusive here, as in Ray: ``qrandint(1, 10)`` (whose upper is
    inclusive) is stored as ``Integer(1, 11, q=1)``. ``sampler`` is
    ``"uniform"`` or ``"loguniform"`` (which needs ``lower >= 1``). With ``q``
    set, values are rounded to a multiple of ``q`` in ``[lower, upper - 1]``.
    """

    lower: int
    upper: int
    sampler: str = "uniform"
    q: int | None = None

    def __post_init__(self) -> None:
        if self.sampler not in ("uniform", "loguniform"):
            raise SearchSpaceError(
                f"Integer(sampler={self.sampler!r}) is not a known sampler; use "
                f"uniform or loguniform."
            )
        call = repr(self)
        self.lower = _integral(call, "lower", self.lower)
        self.upper = _integral(call, "upper", self.upper)
        if self.q is not None:
            self.q = _positive_q(call, self.q, whole=True)
        self._check_bounds()
        if self.q is not None:
            self._multiples()

    def __repr__(self) -> str:
        name = "randint" if self.sampler == "uniform" else "lograndint"
        if self.q is None:
            return f"{name}({self.lower!r}, {self.upper!r})"
        return f"q{name}({self.lower!r}, {_minus_one(self.upper)!r}, {self.q!r})"

    def _check_bounds(self) -> None:
        if self.lower >= self.upper:
            if self.q is None:
                rule = f"must be less than upper ({self.upper}), which is exclusive"
            else:
                rule = f"must not exceed upper ({self.upper - 1})"
            raise SearchSpaceError(
                f"{self!r}: lower ({self.lower}) {rule}; swap the bounds or use a "
                f"constant."
            )
        if self.sampler == "loguniform" and self.lower <= 0:
            raise SearchSpaceError(
                f"{self!r}: log sampling needs lower >= 1, got {self.lower}; use "
                f"randint() for ranges that start at 0 or below."
            )

    def _multiples(self) -> tuple[int, int]:
        """The first and last n with n * q inside [lower, upper - 1]."""
        first = -(-self.lower // self.q)
        last = (self.upper - 1) // self.q
        if self.sampler == "loguniform":
            first = max(first, 1)
        if first > last:
            raise SearchSpaceError(
                f"{self!r}: no multiple of q={self.q} lies between {self.lower} "
                f"and {self.upper - 1}; use a smaller q or wider bounds."
            )
        return first, last

    def sample(self, rng: random.Random, spec: Any = None) -> int:
        """Draw one int in ``[lower, upper)``; quantized: a multiple of ``q``."""
        if self.q is None:
            if self.sampler == "uniform":
                return rng.randrange(self.lower, self.upper)
            log_low, log_high = math.log(self.lower), math.log(self.upper)
            value = math.floor(math.exp(rng.uniform(log_low, log_high)))
            return _clamp(value, self.lower, self.upper - 1)
        first, last = self._multiples()
        low, high = first * self.q, last * self.q
        if self.sampler == "uniform":
            raw = rng.randint(low, high)
        else:
            raw = math.exp(rng.uniform(math.log(low), math.log(high)))
        return _clamp(round(raw / self.q), first, last) * self.q


def _minus_one(value: Any) -> Any:
    return value - 1 if isinstance(value, numbers.Real) else value


# ---------------------------------------------------------------------------
# Categorical


@dataclass(repr=False)
class Categorical(Domain):
    """A choice among ``categories`` (a non-empty list), each equally likely.

    A drawn list or dict is a fresh copy, so trials never share it. A drawn dict
    may itself hold domains; ``generate_variants`` samples those too.
    """

    categories: list

    def __post_init__(self) -> None:
        self.categories = _as_value_list("choice", self.categories)
        if not self.categories:
            raise SearchSpaceError(
                "choice([]): categories is empty; pass at least one value, "
                "e.g. choice(['adam', 'sgd'])."
            )

    def __repr__(self) -> str:
        return f"choice({self.categories!r})"

    def sample(self, rng: random.Random, spec: Any = None) -> Any:
        """Return one of the categories, chosen uniformly."""
        return _copy_value(rng.choice(self.categories))


def _as_value_list(call: str, values: Any) -> list:
    """Turn an ordered iterable into a list; reject strings and mappings."""
    if isinstance(values, (str, bytes, Mapping)):
        raise SearchSpaceError(
            f"{call}({values!r}): pass a list of values, e.g. {call}([1, 2, 3]); "
            f"a {type(values).__name__} is not accepted."
        )
    if isinstance(values, (set, frozenset)):
        raise SearchSpaceError(
            f"{call}({values!r}): a set has no stable order, so seeded runs would "
            f"differ; pass a list, e.g. {call}(sorted(values))."
        )
    try:
        return list(values)
    except TypeError:
        raise SearchSpaceError(
            f"{call}({values!r}): values must be a list (or another iterable); "
            f"got {type(values).__name__}."
        ) from None


# ---------------------------------------------------------------------------
# Function (sample_from) and the view of the config it reads


class _Unresolved:
    """Placeholder for a sample_from value that has not been computed yet."""

    __slots__ = ("path",)

    def __init__(self, path: tuple[str, ...]) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"<unresolved {'/'.join(self.path)}>"


class _UnresolvedDependency(Exception):
    """Raised inside a sample_from function that read a not-yet-known value."""

    def __init__(self, path: tuple[str, ...]) -> None:
        super().__init__(f"{'/'.join(path)} is not resolved yet")
        self.path = path


def _guard(value: Any) -> Any:
    if isinstance(value, _Unresolved):
        raise _UnresolvedDependency(value.path)
    if isinstance(value, dict) and not isinstance(value, _ConfigView):
        return _ConfigView(value)
    return value


class _ConfigView(dict):
    """The config a sample_from function sees, in both of Ray's styles.

    ``spec.config.a``, ``spec.config["a"]``, ``spec["config"]["a"]`` (Ray's
    spec style) and ``config["a"]``, ``config.a`` (Ray's newer config style)
    all work: ``.config`` is the view itself, and so is ``["config"]`` unless
    the config has its own key "config". Reading a value that another
    sample_from has not produced yet raises ``_UnresolvedDependency``.
    """

    @property
    def config(self) -> _ConfigView:
        return self

    def __getitem__(self, key: Any) -> Any:
        if key == "config" and not dict.__contains__(self, "config"):
            return self
        return _guard(dict.__getitem__(self, key))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or not dict.__contains__(self, name):
            raise AttributeError(
                f"the config has no key {name!r}; its keys are {list(self)}"
            )
        return self[name]

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if dict.__contains__(self, key) else default

    def values(self) -> list:  # type: ignore[override]
        return [self[key] for key in self]

    def items(self) -> list:  # type: ignore[override]
        return [(key, self[key]) for key in self]


def _takes_spec(func: Callable) -> bool:
    """True if ``func`` takes one positional argument, False if it takes none."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(None)
        return True
    except TypeError:
        pass
    try:
        signature.bind()
        return False
    except TypeError:
        raise SearchSpaceError(
            f"sample_from({_func_name(func)}): the function must take one "
            f"argument (spec) or none, but its signature is {signature}; e.g. "
            f"sample_from(lambda spec: spec.config.a * 2)."
        ) from None


def _func_name(func: Any) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


@dataclass(repr=False)
class Function(Domain):
    """A value computed by the user's ``func``: what ``sample_from`` returns.

    ``func`` is called with a spec whose ``.config`` holds the values already
    resolved for this trial (``spec.config.a`` or ``spec.config["a"]``), or
    with no argument if it takes none.
    """

    func: Callable

    def __post_init__(self) -> None:
        if not callable(self.func):
            raise SearchSpaceError(
                f"sample_from({self.func!r}): expected a function, got "
                f"{type(self.func).__name__}; pass e.g. "
                f"sample_from(lambda spec: spec.config.a * 2)."
            )
        self.pass_spec = _takes_spec(self.func)

    def __repr__(self) -> str:
        return f"sample_from({_func_name(self.func)})"

    def sample(self, rng: random.Random, spec: Any = None) -> Any:
        """Call the function; ``spec`` is the config resolved so far (a dict)."""
        if not self.pass_spec:
            return self.func()
        view = spec if isinstance(spec, _ConfigView) else _ConfigView(spec or {})
        return self.func(view)


def _copy_value(value: Any) -> Any:
    """Copy plain containers so trials never share them; keep other objects."""
    if isinstance(value, dict):
        return {key: _copy_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_value(item) for item in value]
    if isinstance(value, (set, tuple)):
        return copy.deepcopy(value)
    return value


# ---------------------------------------------------------------------------
# the public constructors, with Ray Tune's names and signatures


def uniform(lower: float, upper: float) -> Float:
    """A float drawn uniformly from ``[lower, upper]``."""
    return Float(lower, upper)


def quniform(lower: float, upper: float, q: float) -> Float:
    """A uniform float rounded to a multiple of ``q``; both bounds inclusive."""
    return Float(lower, upper, q=q)


def loguniform(lower: float, upper: float, base: float = 10) -> Float:
    """A float whose logarithm is uniform: for ranges over orders of magnitude.

    ``lower`` must be > 0. ``base`` is accepted for compatibility; the
    distribution does not depend on it.
    """
    _check_base("loguniform", base)
    return Float(lower, upper, sampler="loguniform")


def qloguniform(lower: float, upper: float, q: float, base: float = 10) -> Float:
    """A log-uniform float rounded to a multiple of ``q``; bounds inclusive."""
    _check_base("qloguniform", base)
    return Float(lower, upper, sampler="loguniform", q=q)


def randn(mean: float = 0.0, sd: float = 1.0) -> Float:
    """A float drawn from a normal distribution; ``sd`` must be > 0."""
    return Float(None, None, sampler="normal", mean=mean, sd=sd)


def qrandn(mean: float, sd: float, q: float) -> Float:
    """A normal float rounded to a multiple of ``q``."""
    return Float(None, None, sampler="normal", q=q, mean=mean, sd=sd)


def randint(lower: int, upper: int) -> Integer:
    """An int drawn uniformly; ``lower`` inclusive, ``upper`` exclusive."""
    return Integer(lower, upper)


def qrandint(lower: int, upper: int, q: int = 1) -> Integer:
    """A uniform int rounded to a multiple of ``q``; BOTH bounds inclusive."""
    upper = _integral(f"qrandint({lower!r}, {upper!r}, {q!r})", "upper", upper)
    return Integer(lower, upper + 1, q=q)


def lograndint(lower: int, upper: int, base: float = 10) -> Integer:
    """A log-uniform int; ``lower`` (>= 1) inclusive, ``upper`` exclusive."""
    _check_base("lograndint", base)
    return Integer(lower, upper, sampler="loguniform")


def qlograndint(lower: int, upper: int, q: int, base: float = 10) -> Integer:
    """A log-uniform int rounded to a multiple of ``q``; both bounds inclusive."""
    _check_base("qlograndint", base)
    upper = _integral(f"qlograndint({lower!r}, {upper!r}, {q!r})", "upper", upper)
    return Integer(lower, upper + 1, sampler="loguniform", q=q)


def choice(categories: list) -> Categorical:
    """One of ``categories`` (a non-empty list), each equally likely."""
    return Categorical(categories)


def grid_search(values: list) -> dict[str, list]:
    """Try every one of ``values``: returns ``{"grid_search": list(values)}``.

    Several grid axes combine as a cross product, and the whole grid is
    repeated ``num_samples`` times.
    """
    values = _as_value_list("grid_search", values)
    if not values:
        raise SearchSpaceError(
            "grid_search([]): values is empty; pass at least one value, e.g. "
            "grid_search([0.01, 0.1])."
        )
    return {"grid_search": values}


def sample_from(func: Callable) -> Function:
    """A value computed per trial by ``func(spec)`` (or ``func()``).

    ``spec.config`` holds the trial's other values, resolved first, with
    attribute and item access: ``sample_from(lambda spec: spec.config.a * 2)``.
    Functions may read other ``sample_from`` values as long as there is no
    cycle.
    """
    return Function(func)


def _check_base(call: str, base: Any) -> None:
    _real(call, "base", base)
    if base <= 0 or base == 1:
        raise SearchSpaceError(
            f"{call}: base must be > 0 and not 1, got {base!r}; leave it at the "
            f"default 10."
        )
