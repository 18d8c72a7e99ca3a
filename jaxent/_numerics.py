r"""Shared numerics: units, dtypes, shape checks, and logs with finite gradients.

Every measure in jaxent is built from the helpers here, so that each one gets the
same treatment of ``0 log 0``, ``-inf`` logits, half precision and units.

References:
  D. E. Knuth, *The Art of Computer Programming*, vol. 2, *Seminumerical
  Algorithms*, 3rd ed., Addison-Wesley, 1997, section 4.2.2 (TwoSum).

  O. Møller, "Quasi double-precision in floating point addition", BIT 5, 1965.

  W. Kahan, "Further remarks on reducing truncation errors", Communications of
  the ACM 8, 1965 (compensated summation).

  N. J. Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., SIAM,
  2002, chapter 4 (summation) and chapter 1 (``expm1(x)/x``).

  T. Ogita, S. M. Rump and S. Oishi, "Accurate sum and dot product", SIAM
  Journal on Scientific Computing 26, 2005 (cascaded summation with TwoSum).

  S. M. Rump, T. Ogita and S. Oishi, "Accurate floating-point summation part I:
  faithful rounding", SIAM Journal on Scientific Computing 31, 2008
  (ExtractScalar).

  NIST Digital Library of Mathematical Functions, section 4.37 (inverse
  hyperbolic functions: :math:`\log\frac{1 + u}{1 - u} = 2 \operatorname{artanh} u`).

  P. Blanchard, D. J. Higham and N. J. Higham, "Accurately computing the
  log-sum-exp and softmax functions", IMA Journal of Numerical Analysis 41, 2021.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple, TypeVar, overload

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

_Rows = TypeVar("_Rows")  # the row statistics a caller passes through a barrier

Base = None | float | int | str

_NAMED_BASES = {"nats": None, "bits": 2.0, "bans": 10.0}


def log_base(base: Base) -> float | None:
    """Natural log of ``base`` (None for nats), validated at trace time."""
    if isinstance(base, str):
        if base not in _NAMED_BASES:
            raise ValueError(
                f"base must be None, a positive number or one of {sorted(_NAMED_BASES)}; "
                f"got {base!r}"
            )
        base = _NAMED_BASES[base]
    if base is None:
        return None
    if isinstance(base, bool) or not isinstance(base, (int, float)):
        try:
            base = float(base)
        except jax.errors.ConcretizationTypeError as err:
            raise ValueError(
                f"base must be a concrete number, not a traced value (got {base!r}): under "
                "jax.jit make it static, e.g. jax.jit(je.kl_divergence, "
                "static_argnames='base'), or bind it first: "
                "jax.jit(functools.partial(je.kl_divergence, base=2))"
            ) from err
        except TypeError as err:
            raise ValueError(
                f"base must be None, a positive number or one of {sorted(_NAMED_BASES)}; "
                f"got {base!r}"
            ) from err
    if not (base > 0 and base != 1 and math.isfinite(base)):
        raise ValueError(f"base must be positive, finite and not 1; got {base!r}")
    return math.log(base)


def to_units(x: jax.Array, base: Base) -> jax.Array:
    """Converts a value in nats to the unit of ``base``."""
    lb = log_base(base)
    x = x if lb is None else x / jnp.asarray(lb, x.dtype)
    # Under jit XLA moves a sum's negation outside it (-sum(x) for sum(-x)), turning an
    # exact 0 into -0.0; adding +0.0 there (not foldable, no gradient) gives +0.0 back.
    return x + jax.lax.stop_gradient(jnp.where(x == 0, -x, 0))


def compute_dtype(*xs: ArrayLike) -> tuple[jnp.dtype, jnp.dtype]:
    """(computation dtype, result dtype) for inputs ``xs``.

    The result has the promoted floating dtype of the inputs (the default float for
    integer or boolean inputs); half precision is computed in float32.
    """
    dtype = jnp.result_type(*xs)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    # Not promote_types(dtype, float32): that raises under strict dtype promotion.
    work = dtype if jnp.finfo(dtype).bits >= 32 else jnp.dtype(jnp.float32)
    return work, dtype


def promote(*xs: ArrayLike) -> tuple[list[jax.Array], jnp.dtype]:
    """Casts ``xs`` to their common computation dtype; also returns the result dtype."""
    arrays = [jnp.asarray(x) for x in xs]
    work, out = compute_dtype(*arrays)
    return [a.astype(work) for a in arrays], out


def event_axis(ndim: int, axis: int) -> int:
    """Normalizes ``axis`` for an array of rank ``ndim`` (raises a clear error)."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for an input of rank {ndim}")
    return axis % ndim


def broadcast_events(
    axis: int, where: ArrayLike | None, **arrays: jax.Array
) -> tuple[list[jax.Array], int, jax.Array | None]:
    """Broadcasts named arrays that share an event axis; raises naming the shapes.

    Returns the broadcast arrays, the non-negative event axis and the broadcast
    ``where`` mask (or None). Errors are raised at trace time.
    """
    names = list(arrays)
    shapes = {n: jnp.shape(a) for n, a in arrays.items()}
    described = " and ".join(f"{n} {s}" for n, s in shapes.items())
    if any(len(s) == 0 for s in shapes.values()):
        raise ValueError(f"inputs need an event axis; got shapes {described}")
    rank = max(len(s) for s in shapes.values())
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for shapes {described}")
    axis = axis % rank
    sizes = {n: (1,) * (rank - len(s)) + s for n, s in shapes.items()}
    events = {sizes[n][axis] for n in names}
    if len(events) > 1:
        raise ValueError(
            f"inputs must have the same number of events along axis {axis - rank}; "
            f"got shapes {described}"
        )
    try:
        shape = jnp.broadcast_shapes(*shapes.values())
    except ValueError as err:
        raise ValueError(f"input shapes do not broadcast: {described}") from err
    out = [jnp.broadcast_to(arrays[n], shape) for n in names]
    return out, axis, broadcast_where(where, shape)


def broadcast_all(**arrays: jax.Array) -> list[jax.Array]:
    """Broadcasts named elementwise inputs together; raises naming the shapes."""
    shapes = {n: jnp.shape(a) for n, a in arrays.items()}
    try:
        shape = jnp.broadcast_shapes(*shapes.values())
    except ValueError as err:
        described = ", ".join(f"{n} {s}" for n, s in shapes.items())
        raise ValueError(f"input shapes do not broadcast: {described}") from err
    return [jnp.broadcast_to(a, shape) for a in arrays.values()]


def with_param(
    param: ArrayLike, name: str, arrays: list[jax.Array], axis: int, where: jax.Array | None
) -> tuple[jax.Array, list[jax.Array], jax.Array | None]:
    """Moves the event ``axis`` last and broadcasts a per-distribution parameter
    (e.g. ``alpha``) against the batch shape, as NumPy would.

    Returns ``param[..., None]`` and the arrays (and mask) broadcast to
    ``batch + (n,)``; measures then reduce over the last axis.
    """
    arrays = [jnp.moveaxis(a, axis, -1) for a in arrays]
    if where is not None:
        where = jnp.moveaxis(where, axis, -1)
    param = jnp.asarray(param, arrays[0].dtype)
    batch = arrays[0].shape[:-1]
    try:
        batch = jnp.broadcast_shapes(param.shape, batch)
    except ValueError as err:
        raise ValueError(
            f"{name} of shape {param.shape} does not broadcast against the batch shape "
            f"{batch} (the input shape without the event axis)"
        ) from err
    full = batch + arrays[0].shape[-1:]
    arrays = [jnp.broadcast_to(a, full) for a in arrays]
    if where is not None:
        where = jnp.broadcast_to(where, full)
    return jnp.broadcast_to(param, batch)[..., None], arrays, where


@overload
def broadcast_where(where: None, shape: tuple[int, ...]) -> None: ...


@overload
def broadcast_where(where: ArrayLike, shape: tuple[int, ...]) -> jax.Array: ...


@overload
def broadcast_where(where: ArrayLike | None, shape: tuple[int, ...]) -> jax.Array | None: ...


def broadcast_where(where: ArrayLike | None, shape: tuple[int, ...]) -> jax.Array | None:
    """Broadcasts a boolean mask to ``shape``, with a clear error when it cannot."""
    if where is None:
        return None
    where = jnp.asarray(where, bool)
    try:
        return jnp.broadcast_to(where, jnp.broadcast_shapes(where.shape, shape))
    except ValueError as err:
        raise ValueError(
            f"where of shape {where.shape} does not broadcast against shape {shape}"
        ) from err


def sum_rule(
    value_fn: Callable[..., jax.Array], partials_fn: Callable[..., tuple[jax.Array, ...]]
) -> Callable[..., jax.Array]:
    """``f(axis, *xs) = value_fn(axis, *xs)`` with derivative ``sum_i partials_i dxs_i``.

    For measures that reduce elementwise terms over ``axis``: the value keeps its
    accuracy machinery (series, compensated sums) while derivatives come straight
    from the closed-form partials ``partials_fn(*xs)`` (elementwise, like ``xs``), so
    autodiff never differentiates through that machinery and higher orders
    differentiate the partials. ``axis=None`` is an elementwise measure (no sum).
    """
    f = jax.custom_jvp(value_fn, nondiff_argnums=(0,))

    def jvp(axis, primals, tangents):
        partials = partials_fn(*primals)
        tangent = sum(g * t for g, t in zip(partials, tangents))
        return f(axis, *primals), tangent if axis is None else jnp.sum(tangent, axis=axis)

    f.defjvp(jvp)
    return f


def kl_partials(p: jax.Array, q: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Partial derivatives of the term ``p log(p/q)`` (with its ``- p + q`` part).

    ``d/dp = log(p/q) + 1``, ``d/dq = -p/q``. At ``p = 0`` the slope in ``p`` is that
    of cross-entropy minus entropy with ``p log p`` flat at 0, ``-log q``; finite
    conventions where the term is infinite (``p > 0 = q``: 1 and -1).
    """
    both = (p > 0) & (q > 0)
    log_ratio = safe_log(jnp.where(both, p, 1) / jnp.where(both, q, 1))
    dp = jnp.where(p > 0, jnp.where(q > 0, log_ratio + 1, 1), -safe_log(q))
    dq = jnp.where(p > 0, jnp.where(q > 0, -p / jnp.where(q > 0, q, 1), -1), 0)
    return dp, dq


def branch(index: jax.Array, branches: list[Callable[..., jax.Array]], *operands) -> jax.Array:
    """``branches[index](*operands)`` per batch element, computing only what is needed.

    A scalar ``index`` (one order for the whole batch, the common case) runs one
    branch with ``lax.switch``; otherwise every branch is evaluated and the results
    selected elementwise (what ``lax.switch`` does under ``vmap`` too). Each branch
    must be safe on every input.

    The branches map operands of shape ``batch + (m,)`` (any ``m``, e.g. 1 for a
    per-row parameter) to one value per batch element, ``batch``, each value
    depending on its own row only, and use no other array that is differentiated
    (pass every such array as an operand). With a scalar ``index``, derivatives come
    from the selected branch's own gradient (see :func:`_switch`), so reverse mode
    keeps one gradient per operand instead of every branch's intermediates.
    """
    if jnp.ndim(index) == 0:
        return _switch(index, tuple(branches), *operands)
    outs = [fn(*operands) for fn in branches]
    result = outs[0]
    for i, out in enumerate(outs[1:], start=1):
        result = jnp.where(index == i, out, result)
    return result


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _switch(index: jax.Array, branches: tuple[Callable[..., jax.Array], ...], *operands):
    """``lax.switch`` for row-wise branches (see :func:`branch`), with a derivative rule.

    Differentiating ``lax.switch`` itself makes every branch return the intermediates
    of every other branch (zeros for the branches not taken), written out in full: in
    reverse mode that was most of the time (Rényi entropy's gradient 4.5x its value's
    formula). Here the taken branch computes its value and, by one reverse pass with
    unit cotangents, the gradient of each row's value in each of its operands' entries
    (exact, since rows are independent); the tangent is then a row-wise sum.
    """
    return jax.lax.switch(index, branches, *operands)


@_switch.defjvp
def _switch_jvp(branches, primals, tangents):
    index, *operands = primals
    _, *operand_dots = tangents
    inexact = [jnp.issubdtype(jnp.result_type(a), jnp.inexact) for a in operands]

    def with_gradient(fn):
        def run(*ops):
            def of_inexact(*xs):
                it = iter(xs)
                return fn(*(next(it) if f else a for a, f in zip(ops, inexact)))

            value, pullback = jax.vjp(of_inexact, *(a for a, f in zip(ops, inexact) if f))
            return value, pullback(jnp.ones_like(value))

        return run

    value, grads = jax.lax.switch(index, [with_gradient(fn) for fn in branches], *operands)
    dots = [d for d, f in zip(operand_dots, inexact) if f]
    tangent = jnp.zeros_like(value)
    for g, d in zip(grads, dots):
        product = g * d
        tangent = tangent + jnp.sum(product, axis=tuple(range(value.ndim, product.ndim)))
    return value, tangent


def _varying_axes(a) -> frozenset:
    """The ``shard_map`` axes over which ``a`` varies (empty outside ``shard_map``)."""
    aval = jax.typeof(a)
    mat = getattr(aval, "mat", None)  # JAX >= 0.10; earlier releases call it ``vma``
    return mat.varying if mat is not None else getattr(aval, "vma", frozenset())


def varying_like(tree, *refs: jax.Array):
    """``tree`` cast to vary over the ``shard_map`` axes that any of ``refs`` varies over.

    A loop's carry must keep its type: a carry started from constants (zeros, a
    counter) but updated from per-device data would change from device-invariant to
    device-varying inside ``jax.shard_map``, which ``while_loop`` and ``scan`` reject.
    Outside ``shard_map`` this returns ``tree`` unchanged.
    """
    axes = frozenset().union(*map(_varying_axes, refs))
    if not axes:
        return tree

    def cast(a):
        missing = tuple(sorted(axes - _varying_axes(a)))
        return jax.lax.pcast(a, missing, to="varying") if missing else a

    return jax.tree.map(cast, tree)


def safe_log(x: jax.Array) -> jax.Array:
    """``log(x)`` where ``x > 0`` and 0 elsewhere, with finite derivatives everywhere."""
    pos = x > 0
    return jnp.where(pos, jnp.log(jnp.where(pos, x, 1)), 0)


def zero_outside(where: jax.Array | None, *xs: jax.Array) -> list[jax.Array]:
    """``xs`` with 0 where ``where`` is False (excluded events contribute nothing)."""
    return list(xs) if where is None else [jnp.where(where, x, 0) for x in xs]


def masked_sum(x: jax.Array, where: jax.Array | None, axis: int) -> jax.Array:
    """Sum over ``axis`` of the entries that ``where`` keeps (0 for the others)."""
    if where is not None:
        x = jnp.where(where, x, 0)
    return jnp.sum(x, axis=axis)


def xlogy(x: jax.Array, y: jax.Array) -> jax.Array:
    """``x * log(y)``, 0 where ``x == 0`` (even where ``y == 0``), with finite gradients.

    ``jax.scipy.special.xlogy`` has a NaN derivative at ``(0, 0)``. Here the log's
    argument is replaced by 1 there (the "double where"), so at ``x == 0`` the
    derivative in ``y`` is 0 and the one in ``x`` is ``log(y)`` (0 where ``y == 0``).
    ``xlogy(x, x)`` is ``x log x`` with derivative ``log x + 1``, taken as 0 at 0.
    """
    safe_y = jnp.where((x == 0) & (y == 0), 1, y)
    return x * jnp.log(safe_y)


def xlog1my(x: jax.Array, y: jax.Array) -> jax.Array:
    """``x * log(1 - y)`` computed with ``log1p``, the same conventions as :func:`xlogy`."""
    safe_y = jnp.where((x == 0) & (y == 1), 0, y)
    return x * jnp.log1p(-safe_y)


def xmul_log(x: jax.Array, log_y: jax.Array) -> jax.Array:
    """``x * log_y`` for a log-probability ``log_y`` that may be ``-inf``.

    The term is 0 where ``x == 0`` (also when ``log_y == -inf``) and ``-inf`` where
    ``x > 0`` meets ``log_y == -inf``; both derivatives stay finite at ``x == 0``.
    """
    return x * jnp.where((x == 0) & jnp.isneginf(log_y), 0, log_y)


def exp_mul(log_p: jax.Array, log_p_err: jax.Array | ArrayLike = 0.0) -> jax.Array:
    """``p log p`` from ``log p = log_p + log_p_err`` (a double word; ``p = exp(log p)``).

    0, with gradient 0, where ``log_p == -inf``.
    """
    dead = jnp.isneginf(log_p)
    safe = jnp.where(dead, 0, log_p)
    return jnp.where(dead, 0, jnp.exp(safe) * (1 + log_p_err) * (safe + log_p_err))


class SoftmaxParts(NamedTuple):
    """Pieces of ``log_softmax(x) = s + err - lse_rest`` over one axis (keepdims).

    ``shift`` is the row maximum (a finite stand-in in a row with no live entry,
    ``empty``, whose other pieces are then meaningless); ``s + err = x - shift``
    exactly (TwoSum) for entries within ``_FAR`` of the maximum, the only ones whose
    ``e = exp(s + err)`` can be nonzero (farther entries, dead ones included, are
    clamped there and get ``e = 0``); ``rest = sum(e) - 1 >= 0`` is computed without
    cancellation and ``lse_rest = log1p(rest)``. ``x`` is the input (``-inf`` at dead
    entries).
    """

    x: jax.Array
    empty: jax.Array
    shift: jax.Array
    s: jax.Array
    err: jax.Array
    e: jax.Array
    rest: jax.Array
    lse_rest: jax.Array

    @property
    def live(self) -> jax.Array:
        return self.x != -jnp.inf

    def recomputed(self, rows: _Rows) -> tuple[SoftmaxParts, _Rows]:
        """These parts with ``s``, ``err`` and ``e`` computed again from ``x``, for a
        pass after the row reductions; ``rows`` (the caller's row statistics, any
        pytree) is returned with them.

        Both go through an optimization barrier, so XLA neither merges the new
        elementwise values with the old (it would write those out in full for the
        later pass: on a CPU, several times the cost of recomputing them) nor moves
        the row reductions past it.
        """
        stats = (self.empty, self.shift, self.rest, self.lse_rest)
        x, (empty, shift, rest, lse_rest), rows = jax.lax.optimization_barrier(
            (self.x, stats, rows)
        )
        return SoftmaxParts(x, empty, shift, *_exp_off(x, shift), rest, lse_rest), rows

    def exact_shift(self) -> tuple[jax.Array, jax.Array]:
        """``(s, err)`` with ``s + err = x - shift`` at every live entry (no clamp)."""
        return two_sum(jnp.where(self.live, self.x, self.shift), -self.shift)


# exp(-1000) is 0 in every dtype: entries farther below the maximum are clamped.
_FAR = 1000.0


def softmax_parts(x: jax.Array, axis: int) -> SoftmaxParts:
    """Log-sum-exp split as ``top + log1p(rest)`` (see :class:`SoftmaxParts`).

    ``-inf`` entries (masks folded in by the caller) are dead: probability 0.
    Separating the largest term keeps full relative precision when it dominates (a
    confident prediction), where ``log(1 + s)`` from a rounded ``1 + s`` would lose
    ``s``; the rounding error of ``x - top`` is carried (``err``), so ``exp(x - top)``
    is accurate even when ``x`` and ``top`` differ in magnitude. The terms at the
    maximum are counted instead of found with an argmax: they contribute
    ``(ties - 1)/ties`` each to ``rest``, exactly 0 for a single maximum.

    Three reductions, each depending on the one before (a max, the count of ties,
    then ``rest``), over elementwise work with no select (rows with no live entry
    are the callers' to mask after their last reduction): XLA's CPU backend fuses
    such chains into one library kernel, as it does ``jax.nn.log_softmax``.
    Callers should chain their own reductions on ``rest`` too: independent sibling
    reductions of one input run several times slower there.

    The shifted log-sum-exp and its error analysis: Blanchard, Higham & Higham
    (2021), "Accurately computing the log-sum-exp and softmax functions".
    """
    top, shift, s, err, e = shifted_exp(x, axis)
    # 1 at the maximum, 0 below it (finite: -s <= _FAR). An entry within 1/scale of
    # the maximum counts partly as a tie; its exp is within 1/scale of 1 either way.
    scale = {32: 2.0**60, 64: 2.0**500}[jnp.finfo(x.dtype).bits]
    tie = jnp.maximum(0, 1 + s * scale)
    # >= 1 (a row with no live entry has none: counted as 1, so its pieces stay finite).
    empty = top == -jnp.inf
    ties = jnp.sum(tie, axis=axis, keepdims=True) + empty.astype(x.dtype)
    # A tie's e is 1: it adds 1 - 1/ties, so the ties together add ties - 1. (Fewer
    # elementwise operations make a faster kernel here: about one pass each.)
    rest = jnp.sum(e - tie * (1 / ties), axis=axis, keepdims=True)
    return SoftmaxParts(x, empty, shift, s, err, e, rest, jnp.log1p(rest))


def shifted_exp(x: jax.Array, axis: int) -> tuple[jax.Array, ...]:
    """``(top, shift, s, err, e)``: the row maximum ``top``, a finite ``shift`` (``top``
    unless the row has no live entry), ``s + err = x - shift`` exactly (TwoSum) within
    ``_FAR`` of the maximum (farther entries, dead ones included, are clamped there)
    and ``e = exp(s + err)``, accurate to the rounding of ``exp`` (0 for far entries).
    """
    top = jnp.max(x, axis=axis, keepdims=True)
    shift = jnp.maximum(top, -jnp.finfo(x.dtype).max / 8)
    return (top, shift, *_exp_off(x, shift))


def _exp_off(x: jax.Array, shift: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(s, err, e)`` of :func:`shifted_exp` for a given finite ``shift``."""
    # Far entries are clamped at least _FAR below the maximum, in its own scale (a
    # fixed distance would round away next to a maximum of 1e30).
    s, err = two_sum(jnp.maximum(x, shift - (jnp.abs(shift) + _FAR)), -shift)
    e = jnp.exp(s)
    return s, err, e + e * err


def sum_exp_off_top(z: jax.Array, top: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(rest, ties)`` over the last axis for a row maximum ``top`` found elsewhere.

    For log-sum-exps whose maximum is known only after a reduction across blocks or
    devices: ``ties`` counts the entries equal to ``top`` and ``rest`` sums
    ``exp(z - top)`` over the others, as ``exp(z - top) - 1`` at the ties (exactly 0,
    with exp's derivative), so ``logsumexp = top + log1p(rest + ties - 1)`` keeps a
    confident row's precision. A ``top`` of ``-inf`` (no finite entry) shifts by 0.
    """
    is_top = (z == top[..., None]).astype(z.dtype)
    shift = jnp.where(jnp.isfinite(top), top, 0)[..., None]
    return jnp.sum(jnp.exp(z - shift) - is_top, axis=-1), jnp.sum(is_top, axis=-1)


def two_sum(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(s, e)`` with ``s = fl(a + b)`` and ``s + e = a + b`` exactly (Knuth's TwoSum).

    Error-free transformation of Knuth (TAOCP vol. 2, section 4.2.2) and Møller
    (1965); no branch on the magnitudes of ``a`` and ``b``.
    """
    s = a + b
    bv = s - a
    return s, (a - (s - bv)) + (b - bv)


def floating(name: str, x: ArrayLike) -> jax.Array:
    """``x`` as an array; a ``TypeError`` naming it unless its dtype is floating."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    return x


def class_ids(name: str, x: ArrayLike) -> jax.Array:
    """``x`` as an array; a ``TypeError`` naming it unless its dtype is integer."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(f"{name} must be integer class indices, got dtype {x.dtype}")
    return x


def mask_logits(x: jax.Array, where: jax.Array | None) -> jax.Array:
    """Logits with ``-inf`` outside ``where`` (dead entries)."""
    return x if where is None else jnp.where(where, x, -jnp.inf)


def _logsumexp_value(x: jax.Array, axis: int) -> jax.Array:
    parts = softmax_parts(x, axis)
    out = jnp.where(parts.empty, -jnp.inf, parts.shift + parts.lse_rest)
    return jnp.squeeze(out, axis=axis)


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _logsumexp(x: jax.Array, axis: int) -> jax.Array:
    return _logsumexp_value(x, axis)


@_logsumexp.defjvp
def _logsumexp_jvp(axis, primals, tangents):
    (x,), (x_dot,) = primals, tangents
    parts = softmax_parts(x, axis)
    probs = softmax_from_parts(parts)
    tangent = jnp.sum(jnp.where(parts.live, probs, 0) * x_dot, axis=axis)
    return _logsumexp(x, axis), tangent


def logsumexp(x: jax.Array, *, axis: int, where: jax.Array | None = None) -> jax.Array:
    """``log(sum(exp(x)))`` over ``axis``, accurate for a dominant term (see
    :func:`softmax_parts`); its derivative is the softmax. A row with no finite entry
    left gives ``-inf``.
    """
    axis = event_axis(x.ndim, axis)
    return _logsumexp(mask_logits(x, where), axis)


def log_softmax_dw(parts: SoftmaxParts) -> tuple[jax.Array, jax.Array]:
    """Log-softmax as a double word ``(hi, lo)`` from its parts: ``hi + lo`` accurate to
    ~eps absolute, so ``exp(hi) * (1 + lo)`` is a probability with full relative
    precision even where ``|hi|`` is large. ``-inf`` (and ``lo = 0``) at dead entries.
    """
    s, err = parts.exact_shift()
    hi, lo = two_sum(s, -parts.lse_rest)
    return jnp.where(parts.live, hi, -jnp.inf), jnp.where(parts.live, lo + err, 0)


def softmax_from_parts(parts: SoftmaxParts) -> jax.Array:
    """``softmax(x)`` from its parts (0 at dead entries; meaningless in empty rows)."""
    return parts.e * (1 / (1 + parts.rest))


def exprel(x: jax.Array) -> jax.Array:
    """``expm1(x) / x`` with the value 1 at 0, smooth (a short series near 0).

    (The function ``exprel`` of the GNU Scientific Library; Higham (2002),
    chapter 1, discusses computing ``(e^x - 1)/x`` accurately.)
    """
    small = jnp.abs(x) < 1e-3
    xs = jnp.where(small, 1, x)
    # Truncation error x^5/720 < 2e-18 relative at the cut.
    series = 1 + x * (1 / 2 + x * (1 / 6 + x * (1 / 24 + x * (1 / 120))))
    return jnp.where(small, series, jnp.expm1(xs) / xs)


def exprel_slope(x: jax.Array) -> jax.Array:
    """The derivative of :func:`exprel`, ``((x - 1) e^x + 1) / x^2`` (1/2 at 0).

    Its series ``sum_k k x^(k-1)/(k+1)!`` below ``|x| = 0.1`` (9 terms: truncation
    below 1e-18 relative there); the closed form above, where it loses at most a
    factor 20 to cancellation.
    """
    small = jnp.abs(x) < 0.1
    xs = jnp.where(small, 1, x)
    series = jnp.zeros_like(x)
    for k in reversed(range(1, 10)):
        series = series * x + k / math.factorial(k + 1)
    return jnp.where(small, series, (xs * jnp.exp(xs) - jnp.expm1(xs)) / (xs * xs))


def log1prel(x: jax.Array) -> jax.Array:
    """``log1p(x) / x`` with the value 1 at 0, smooth (a short series near 0)."""
    small = jnp.abs(x) < 1e-3
    xs = jnp.where(small, 1, x)
    # Truncation error x^6/7 < 2e-19 relative at the cut.
    series = 1 - x * (1 / 2 - x * (1 / 3 - x * (1 / 4 - x * (1 / 5 - x * (1 / 6)))))
    return jnp.where(small, series, jnp.log1p(xs) / xs)


# Lanes of this many values are added by one unrolled chain of TwoSums.
_SUM_LANES = 32


def _power_of_two_above(x: jax.Array) -> jax.Array:
    """A power of two in ``(x, 4x]`` for finite ``x > 0`` (0 for 0), from the exponent bits."""
    width = jnp.finfo(x.dtype).bits
    bits = {32: jnp.uint32, 64: jnp.uint64}[width]
    mask = jnp.asarray({32: 0x7F800000, 64: 0x7FF0000000000000}[width], bits)
    floor = jax.lax.bitcast_convert_type(jax.lax.bitcast_convert_type(x, bits) & mask, x.dtype)
    return 2 * floor


def _lane_sums(x: jax.Array, minus: jax.Array | None) -> jax.Array:
    """Values with the same exact sum as ``x - minus`` over the last axis, 16x fewer.

    The last axis is laid out as ``[32, n/32]`` and the 32 rows are added lane by lane
    by a chain of TwoSums; the lane totals and their summed rounding errors come back
    as one array (one output, so XLA computes the chain once, in one vectorized pass).
    """
    n = x.shape[-1]
    width = -(-n // _SUM_LANES)
    pad = [(0, 0)] * (x.ndim - 1) + [(0, _SUM_LANES * width - n)]

    def rows(a):
        return jnp.pad(a, pad).reshape(a.shape[:-1] + (_SUM_LANES, width))

    xs = rows(x)
    ms = None if minus is None else rows(minus)

    def row(i):
        return xs[..., i, :] if ms is None else xs[..., i, :] - ms[..., i, :]

    total, carried = two_sum(row(0), row(1))
    for i in range(2, _SUM_LANES):
        total, err = two_sum(total, row(i))
        carried = carried + err
    return jnp.concatenate([total, carried], axis=-1)


def _extracted_sum(r: jax.Array) -> jax.Array:
    """Sum over the last axis of a short vector by error-free extraction.

    With ``sigma`` a power of two above ``2 n max|r|``, ``hi = (sigma + r) - sigma``
    is exact and a multiple of ``eps sigma``, so sums of ``hi`` are exact in any
    order; ``lo = r - hi`` is split once more the same way (Rump, Ogita & Oishi 2008,
    ExtractScalar). Plain sums, which every backend vectorizes.
    """
    n = r.shape[-1]
    grid = float(2 ** (2 * n - 1).bit_length())  # a power of two >= 2n
    sigma = _power_of_two_above(grid * jnp.max(jnp.abs(r), axis=-1, keepdims=True))
    hi = (sigma + r) - sigma
    lo = r - hi
    sigma = sigma * (grid * jnp.finfo(r.dtype).eps)
    hi2 = (sigma + lo) - sigma
    exact = jnp.sum(hi, axis=-1) + jnp.sum(hi2, axis=-1)
    return exact + jnp.sum(lo - hi2, axis=-1)


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def accurate_sum(x: jax.Array, axis: int, minus: jax.Array | None = None) -> jax.Array:
    """Sum of ``x`` (or of ``x - minus``) over ``axis``, accurate to a few ulps.

    Used where a sum of exact, mostly cancelling terms must keep its few
    significant bits, such as ``sum(p - q)`` for two normalized distributions
    (``minus`` lets the subtraction happen inside the summing pass). Cascaded
    summation (Ogita, Rump & Oishi 2005, "Accurate sum and dot product"): lanes of
    32 values are added by chains of TwoSums (Knuth), which keep every rounding
    error, in one vectorized pass that leaves 16x fewer values with the same sum;
    once at most 64 are left, an error-free extraction adds them. No custom
    reduction, so the speed and the precision are the same on every backend.
    The error is about ``eps |sum| + eps^2 sum |x|``.

    See Higham (2002), chapter 4, for summation methods and their error bounds, and
    Kahan (1965) for compensated summation.
    """
    axis = event_axis(x.ndim, axis)
    r = jnp.moveaxis(x, axis, -1)
    minus = None if minus is None else jnp.moveaxis(minus, axis, -1)
    if r.shape[-1] > 2 * _SUM_LANES:
        r = _lane_sums(r, minus)
        while r.shape[-1] > 2 * _SUM_LANES:
            r = _lane_sums(r, None)
    elif minus is not None:
        r = r - minus
    if r.shape[-1] <= 1:
        return jnp.sum(r, axis=-1)
    return _extracted_sum(r)


@accurate_sum.defjvp
def _accurate_sum_jvp(axis, primals, tangents):
    x, minus = primals
    x_dot, minus_dot = tangents
    tangent = jnp.sum(x_dot if minus is None else x_dot - minus_dot, axis=axis)
    return accurate_sum(x, axis, minus), tangent


def kl_term(p: jax.Array, q: jax.Array, diff: jax.Array) -> jax.Array:
    """``p log(p/q) - p + q`` (>= 0), given ``diff = p - q`` computed accurately.

    With ``u = (p - q)/(p + q)`` this equals ``(p + q) u^2 (A(u^2) + u B(u^2))``,
    ``A(z) = sum z^k/(2k+1)``, ``B(z) = sum z^k/(2k+3)`` (from
    ``log(p/q) = 2 artanh(u)``): no cancellation when ``p`` is close to ``q``, where
    the direct formula subtracts nearly equal numbers. Away from ``p = q`` (``|u|``
    above 1/3 in float32, 0.15 in float64, where the series would need more terms)
    the direct formula is accurate. ``+inf`` where ``p > 0 = q``; ``q`` where
    ``p = 0``. Value only: callers define the derivatives (``custom_jvp``).

    The series is that of :math:`2 \\operatorname{artanh}(u) = \\log\\frac{1 + u}{1 - u}`
    (NIST DLMF, section 4.37).
    """
    total = p + q
    # Expensive operations (divide, log) have one user each, so that XLA fuses the
    # whole term into one pass (it does not duplicate an expensive multi-use value).
    u = diff * (1 / jnp.where(total > 0, total, 1))
    # Terms so that the truncated tail is below the dtype's rounding at the cut.
    wide = jnp.finfo(p.dtype).bits > 32
    cut, terms = (0.15, 9) if wide else (1 / 3, 7)
    z = u * u
    a = b = jnp.zeros_like(z)
    for k in reversed(range(terms)):
        a = a * z + 1 / (2 * k + 1)
        b = b * z + 1 / (2 * k + 3)
    series = diff * u * (a + u * b)
    # p/q stays within the normal range for probabilities (subnormals are flushed on
    # CPU); one log of the ratio keeps its relative precision away from p = q.
    tiny = jnp.finfo(p.dtype).tiny
    direct = p * jnp.log(jnp.maximum(p / jnp.where(q > 0, q, 1), tiny)) - diff
    value = jnp.where(jnp.abs(u) < cut, series, direct)
    value = jnp.where(q == 0, jnp.where(p > 0, jnp.inf, 0), value)
    return jnp.where(p == 0, q, value)


def expm1mx(t: jax.Array) -> jax.Array:
    """``exp(t) - 1 - t`` for ``|t| <= 1`` by its Taylor series (no cancellation).

    Terms up to ``t^k/k!`` with ``2/(k+1)!`` below the dtype's rounding, the truncation
    relative to the value ``~t^2/2`` at ``|t| = 1``.
    """
    last = 19 if jnp.finfo(t.dtype).bits > 32 else 12
    series = jnp.zeros_like(t)
    for k in reversed(range(2, last + 1)):
        series = (series + 1) * (t * (1 / k))
    return t * series


def safe_sqrt(x: jax.Array) -> jax.Array:
    """``sqrt(x)`` whose derivative at 0 is taken as 0 instead of ``inf``."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1)), 0)


AxisGroup = int | tuple[int, ...]


def axis_groups(shape: tuple[int, ...], groups, name: str = "axes") -> tuple[tuple[int, ...], ...]:
    """Normalizes variables named by axes: each entry an axis or a tuple of axes.

    ``groups=None`` makes every axis of ``shape`` a variable. Returns one tuple of
    non-negative axes per variable; raises (at trace time, naming the shape) when an
    axis is out of range, not an integer, or named twice.
    """
    ndim = len(shape)
    if groups is None:
        return tuple((i,) for i in range(ndim))
    if isinstance(groups, int):
        groups = (groups,)
    out, seen = [], set()
    for group in groups:
        members = (group,) if isinstance(group, int) else tuple(group)
        normal = []
        for a in members:
            if isinstance(a, bool) or not isinstance(a, int):
                raise TypeError(f"{name} must name axes by integers; got {a!r}")
            if not -ndim <= a < ndim:
                raise ValueError(f"axis {a} in {name} is out of range for shape {shape}")
            if a % ndim in seen:
                raise ValueError(f"axis {a} is named twice in {name} (shape {shape})")
            seen.add(a % ndim)
            normal.append(a % ndim)
        out.append(tuple(normal))
    return tuple(out)


def group_table(p: jax.Array, groups: tuple[tuple[int, ...], ...]) -> jax.Array:
    """``p`` arranged as ``[*batch, N_1, ..., N_m]``: the axes in no group first (batch
    axes, in order), then one axis per group, of the product of its axes' sizes (1 for
    an empty group)."""
    named = [a for g in groups for a in g]
    batch = [a for a in range(p.ndim) if a not in named]
    sizes = tuple(math.prod(p.shape[a] for a in g) for g in groups)
    t = jnp.transpose(p, batch + named)
    return t.reshape(tuple(p.shape[a] for a in batch) + sizes)
