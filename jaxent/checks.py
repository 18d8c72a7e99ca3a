"""Value checks: :func:`checked` runs a jaxent function under ``checkify``.

Each public function declares what its array arguments hold with :func:`expects`
(probability vectors, joint tables, probabilities in [0, 1], logits, samples);
``checked(fn)`` turns those declarations into runtime checks that raise a
``ValueError``-like ``checkify.JaxRuntimeError`` naming the problem.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any, Literal, TypeVar, get_args

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from jaxent import _numerics as nx

__all__ = ["checked"]

# What an argument holds, as declared with expects().
Kind = Literal["probs", "joint", "table", "unit", "finite", "counts", "classes", "labels"]
_KINDS: tuple[Kind, ...] = get_args(Kind)

_F = TypeVar("_F", bound=Callable[..., Any])


def expects(**kinds: Kind) -> Callable[[_F], _F]:
    """Declares what a function's array arguments hold, for :func:`checked`.

    ``kinds`` maps argument names to ``"probs"`` (probability vectors along
    ``axis``), ``"joint"`` (tables summing to 1 over their last two axes),
    ``"table"`` (joint tables of several variables summing to 1 over the axes
    that name a variable: ``axes``, or ``x``, ``y`` and ``z``), ``"unit"``
    (probabilities in [0, 1], elementwise), ``"finite"`` (no NaN:
    logits, samples, parameters), ``"counts"`` (finite and non-negative:
    histogram counts) or ``"classes"`` (integer class ids in ``[0, K)``, ``K`` the
    size of ``logits`` along ``axis`` or the last size of ``weight``; rows that a
    ``where`` of the labels' shape drops are not checked) or ``"labels"`` (a
    classifier's labels: in [0, 1] for two classes, hard or soft; integer class ids
    in ``[0, K)`` for ``K > 2``; ``K`` is the ``num_classes`` option, or read from
    the shape of ``params["w"]``: ``[d]`` for two classes, ``[d, K]`` otherwise).
    """
    for name, kind in kinds.items():
        if kind not in _KINDS:
            raise ValueError(f"unknown kind {kind!r} for argument {name!r}")

    def mark(fn: _F) -> _F:
        # setattr: the type _F (which keeps the decorated function's signature for type
        # checkers) declares no such attribute, so a plain assignment would not type-check.
        setattr(fn, "_jaxent_expects", dict(kinds))  # noqa: B010
        return fn

    return mark


# Arguments that are arrays (traced) although expects() does not declare them.
_ARRAY_OPTIONS = frozenset({"alpha", "where"})


def jit_public(fn: _F) -> _F:
    """Runs a public function as one compiled program, as ``jax.numpy`` does.

    ``fn`` runs under ``jax.jit``, its declared arrays and ``where`` traced, its
    options (``axis``, ``base``, a Python ``alpha``, ...) static; an ``alpha`` given
    as an array is traced. Eagerly that is one program per shape and set of options
    instead of one per operation (``kl_divergence`` of two 3-vectors: first call
    1.06 s -> 0.12 s, later calls 1.6 ms -> 31 us; an eager gradient of
    ``renyi_entropy`` recompiled its branches on every call). Inside ``jit``,
    ``grad`` or ``vmap`` the program is traced once per shape and options and
    inlined. With another option that cannot be static (e.g. a ``base`` given as an
    array), ``fn`` is called directly. Lists and tuples given for array arguments
    are made arrays first (as ``fn`` would). Apply on top of :func:`expects`.
    """
    sig = inspect.signature(fn)
    arrays = frozenset(_declared(fn)[1]) | {"where"}  # always traced
    traceable = arrays | _ARRAY_OPTIONS  # traced when not static (alpha)

    @functools.cache  # one jit per set of static names (few: the options passed)
    def compiled(static: tuple[str, ...]) -> Callable:
        return jax.jit(fn, static_argnames=static)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        values = sig.bind(*args, **kwargs).arguments
        static = tuple(n for n, v in values.items() if n not in arrays and _static(v))
        if any(n not in traceable and n not in static for n in values):
            return fn(*args, **kwargs)
        return compiled(static)(
            **{
                n: jnp.asarray(v) if n in arrays and isinstance(v, (list, tuple)) else v
                for n, v in values.items()
            }
        )

    return run  # type: ignore[return-value]


def _static(value: Any) -> bool:
    """Whether ``value`` can be a static argument of ``jax.jit``: hashable, not an array
    (a dict of parameters, say, is traced like an array)."""
    if isinstance(value, (jax.Array, np.ndarray)):
        return False
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _declared(fn: Callable) -> tuple[Callable, dict[str, str]]:
    inner = fn
    while hasattr(inner, "__wrapped__"):  # jax.jit and functools.wraps wrappers
        inner = inner.__wrapped__
    if not hasattr(inner, "_jaxent_expects"):
        raise TypeError(f"{getattr(fn, '__name__', fn)!r} is not a jaxent function checked() knows")
    return inner, inner._jaxent_expects


def default_tol(dtype: Any) -> float:
    """Tolerance on ``|sum - 1|``: the square root of the dtype's machine epsilon."""
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return math.sqrt(float(jnp.finfo(dtype).eps))


def _num_classes(args: dict[str, Any], axis: int) -> int:
    """``K`` for class-id labels: the class axis of ``logits``, or ``weight``'s last."""
    if "logits" in args:
        return jnp.shape(args["logits"])[axis]
    return jnp.shape(args["weight"])[-1]


def _check_classes(name: str, x: jax.Array, num_classes: int, where: Any) -> None:
    ok = (x >= 0) & (x < num_classes)
    if jnp.issubdtype(x.dtype, jnp.inexact):
        ok &= x == jnp.floor(x)
    if where is not None and jnp.shape(where) == x.shape:  # a mask of rows
        ok |= ~jnp.asarray(where, bool)
    checkify.check(jnp.all(ok), f"{name} has class ids outside [0, {num_classes})")


def _classifier_classes(args: dict[str, Any]) -> int:
    """``K`` for a classifier's labels: ``num_classes``, or the shape of ``params["w"]``."""
    if "num_classes" in args:
        return args["num_classes"]
    w = args["params"]["w"]
    return 2 if jnp.ndim(w) == 1 else jnp.shape(w)[-1]


def _check_classifier_labels(name: str, y: Any, num_classes: int) -> None:
    y = jnp.asarray(y)
    if jnp.issubdtype(y.dtype, jnp.inexact):
        checkify.check(~jnp.any(jnp.isnan(y)), f"{name} contains NaN")
    if num_classes == 2:
        checkify.check(
            jnp.all((y >= 0) & (y <= 1)),
            f"{name} has labels outside [0, 1] (two classes: 0/1 or soft labels; "
            "num_classes=K for K classes)",
        )
    else:
        _check_classes(name, y, num_classes, None)


def _table_axes(args: dict[str, Any], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The axes that name a variable of a multivariate table (the others are batch axes)."""
    if "axes" in args:
        groups = nx.axis_groups(shape, args["axes"])
    else:
        groups = nx.axis_groups(shape, tuple(args[k] for k in ("x", "y", "z")), "x, y, z")
    return tuple(a for g in groups for a in g)


def _check(name: str, kind: str, x: jax.Array, axis: Any, where: Any, tol: float | None) -> None:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    checkify.check(~jnp.any(jnp.isnan(x)), f"{name} contains NaN")
    if kind == "finite":
        return
    if kind == "counts":
        checkify.check(~jnp.any(jnp.isinf(x)), f"{name} contains inf")
        checkify.check(jnp.all(x >= 0), f"{name} has negative counts")
        return
    checkify.check(jnp.all(x >= 0), f"{name} has negative probabilities")
    if kind == "unit":
        checkify.check(jnp.all(x <= 1), f"{name} has probabilities greater than 1")
        return
    t = default_tol(x.dtype) if tol is None else tol
    x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    if kind == "table":
        total = jnp.sum(x32, axis=axis)
        msg = (
            f"{name} has tables that do not sum to 1 over their variables' axes (tolerance {t:.3g})"
        )
    elif kind == "probs":
        kept = x32 if where is None else jnp.where(where, x32, 0)
        total = jnp.sum(kept, axis=axis)
        msg = f"{name} has rows along axis {axis} that do not sum to 1 (tolerance {t:.3g})"
    else:
        total = jnp.sum(x32, axis=(-2, -1))
        msg = f"{name} has joint tables (last two axes) that do not sum to 1 (tolerance {t:.3g})"
    checkify.check(jnp.all(jnp.abs(total - 1) <= t), msg)


# Options that stay static although they may be Python floats: the unit (``base`` is
# turned into a constant at trace time and must be concrete).
_STATIC_NAMES = frozenset({"base"})
# Ranges of float options that the functions check only when the value is a Python
# number; traced here, they are checked with the arrays instead.
_OPTION_RANGES = {"label_smoothing": (0.0, 1.0)}


def _static_option(name: str, value: Any, default: Any) -> bool:
    """Whether an option is a static argument of the compiled check, or traced.

    Hashable non-array options (``axis``, ``num_classes``, strings, ints) stay
    static. Python floats (``l2``, ``label_smoothing``) are traced, so that a new
    value does not recompile; a float equal to its default stays static (the
    default call keeps its program), and so does ``base``.
    """
    if (
        isinstance(value, (float, np.floating))
        and name not in _STATIC_NAMES
        and not (isinstance(default, float) and value == default)
    ):
        return False
    return _static(value)


def _check_option(name: str, value: Any) -> None:
    lo, hi = _OPTION_RANGES[name]
    checkify.check(jnp.all((value >= lo) & (value <= hi)), f"{name} must lie in [{lo:g}, {hi:g}]")


def checked(fn: Callable, *, tol: float | None = None) -> Callable:
    """Returns ``fn`` with value checks on its inputs, raising on bad values.

    The returned function has ``fn``'s signature. It runs ``fn`` (jitted or not)
    under :mod:`jax.experimental.checkify`, compiled, after checking each array
    argument for what ``fn`` declares it holds: no NaN anywhere; probabilities
    non-negative; probability vectors summing to 1 along ``axis`` (over the
    entries ``where`` keeps); joint tables summing to 1 over their last two axes;
    elementwise probabilities at most 1. Call it from Python, not from inside
    another ``jax.jit``: checkify cannot raise there.

    The compiled program is cached per set of static options (``axis``, ``base``,
    ints, strings). Python float options (``l2``, ``label_smoothing``) are traced,
    so a new value does not recompile (a float equal to its default stays static);
    ``label_smoothing`` is checked to lie in [0, 1].

    Args:
      fn: a public jaxent function (or ``jax.jit`` of one).
      tol: tolerance on ``|sum - 1|``; default ``sqrt(eps)`` of the input's dtype
        (3.5e-4 for float32, 1.5e-8 for float64, 0.031 for float16).

    Returns:
      The checked function. It raises ``checkify.JaxRuntimeError`` (a
      ``ValueError``) whose message names the argument and the problem.

    Raises:
      TypeError: for an ``fn`` that is not a jaxent function (one that declares
        its arguments with ``expects``). The checked function raises as described
        under Returns.

    Examples:
      >>> import jaxent as je
      >>> safe_kl = je.checked(je.kl_divergence)
      >>> print(f"{float(safe_kl([0.5, 0.5], [0.25, 0.75])):.4f}")
      0.1438
      >>> safe_kl([0.5, 0.6], [0.25, 0.75])
      Traceback (most recent call last):
      ...
      jax._src.checkify.JaxRuntimeError: p has rows along axis -1 that do not sum to 1 (tolerance ...)...
    """
    inner, kinds = _declared(fn)
    sig = inspect.signature(inner)
    arrays = [n for n in sig.parameters if n in kinds or n in _ARRAY_OPTIONS]

    @functools.lru_cache(maxsize=64)
    def compiled(static_items: tuple) -> Callable:
        static = dict(static_items)
        axis = static.get("axis", -1)

        def body(dyn):
            for name, kind in kinds.items():
                if name in dyn and kind == "classes":
                    _check_classes(name, dyn[name], _num_classes(dyn, axis), dyn.get("where"))
                elif name in dyn and kind == "labels":
                    _check_classifier_labels(
                        name, dyn[name], _classifier_classes({**dyn, **static})
                    )
                elif name in dyn and kind == "table":
                    table_axes = _table_axes(static, jnp.shape(dyn[name]))
                    _check(name, kind, dyn[name], table_axes, None, tol)
                elif name in dyn:
                    _check(name, kind, dyn[name], axis, dyn.get("where"), tol)
            for name in _OPTION_RANGES.keys() & dyn.keys():
                _check_option(name, dyn[name])
            return inner(**dyn, **static)  # inner: fn without its jit, static args stay static

        return jax.jit(checkify.checkify(body))

    @functools.wraps(inner)
    def run(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        dynamic = {
            n: v
            for n, v in bound.arguments.items()
            if v is not None
            and (n in arrays or not _static_option(n, v, sig.parameters[n].default))
        }
        static = tuple((n, v) for n, v in bound.arguments.items() if n not in dynamic)
        err, out = compiled(static)(dynamic)
        err.throw()
        return out

    return run
