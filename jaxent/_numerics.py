"""Shared numerics: units, dtypes, shape checks, and logs with finite gradients.

Every measure in jaxent is built from the helpers here, so that each one gets the
same treatment of ``0 log 0``, ``-inf`` logits, half precision and units.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

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
        except (TypeError, jax.errors.ConcretizationTypeError) as err:
            raise ValueError(f"base must be a concrete positive number, got {base!r}") from err
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
    xs = [jnp.asarray(x) for x in xs]
    work, out = compute_dtype(*xs)
    return [x.astype(work) for x in xs], out


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


def _top_split(
    x: jax.Array, axis: int, where: jax.Array | None
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Splits ``logsumexp`` into ``top + log1p(rest)`` (keepdims on ``axis``).

    Returns ``(top, shifted, shifted_err, log1p_rest)``: ``top`` is one maximal
    entry (0 for a row of ``-inf``), ``shifted + shifted_err = x - top`` exactly
    (TwoSum), and ``rest`` sums ``exp(x - top)`` over all entries but that one.
    Separating the largest term keeps full relative precision when it dominates
    (a confident prediction), where ``log(1 + s)`` from a rounded ``1 + s`` would
    lose ``s``; the rounding error of the shift is carried to first order, so
    ``exp(x - top)`` is accurate even when ``x`` and ``top`` differ in magnitude.
    Entries that are ``-inf`` or outside ``where`` count as zero terms.
    """
    if where is not None:
        x = jnp.where(where, x, -jnp.inf)
    idx = jnp.argmax(x, axis=axis, keepdims=True)
    top = jnp.take_along_axis(x, idx, axis=axis)
    # The top's gradient must go to exactly the one excluded entry (ties included).
    top = jnp.where(jnp.isfinite(top), top, 0)
    live = ~jnp.isneginf(x)
    shifted, err = two_sum(jnp.where(live, x, 0), -top)
    shifted = jnp.where(live, shifted, -jnp.inf)
    err = jnp.where(live, err, 0)
    is_top = jax.lax.broadcasted_iota(jnp.int32, x.shape, axis) == idx
    rest = jnp.sum(jnp.where(is_top, 0, jnp.exp(shifted) * (1 + err)), axis=axis, keepdims=True)
    return top, shifted, err, jnp.log1p(rest)


def sum_exp_off_top(z: jax.Array, top: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(rest, ties)`` over the last axis for a row maximum ``top`` found elsewhere.

    For log-sum-exps whose maximum is known only after a reduction across blocks or
    devices (where :func:`_top_split`'s argmax cannot be taken): ``ties`` counts the
    entries equal to ``top`` and ``rest`` sums ``exp(z - top)`` over the others, as
    ``exp(z - top) - 1`` at the ties (exactly 0, with exp's derivative), so
    ``logsumexp = top + log1p(rest + ties - 1)`` keeps a confident row's precision.
    A ``top`` of ``-inf`` (no finite entry) shifts by 0 instead.
    """
    is_top = (z == top[..., None]).astype(z.dtype)
    shift = jnp.where(jnp.isfinite(top), top, 0)[..., None]
    return jnp.sum(jnp.exp(z - shift) - is_top, axis=-1), jnp.sum(is_top, axis=-1)


def two_sum(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(s, e)`` with ``s = fl(a + b)`` and ``s + e = a + b`` exactly (Knuth's TwoSum)."""
    s = a + b
    bv = s - a
    return s, (a - (s - bv)) + (b - bv)


def logsumexp(x: jax.Array, *, axis: int, where: jax.Array | None = None) -> jax.Array:
    """``log(sum(exp(x)))`` over ``axis`` with the precision of :func:`_top_split`.

    A row with no finite entry left gives ``-inf``.
    """
    axis = event_axis(x.ndim, axis)
    top, shifted, _, log1p_rest = _top_split(x, axis, where)
    empty = jnp.all(jnp.isneginf(shifted), axis=axis, keepdims=True)
    return jnp.squeeze(jnp.where(empty, -jnp.inf, top + log1p_rest), axis=axis)


def log_softmax(logits: ArrayLike, *, axis: int = -1, where: ArrayLike | None = None) -> jax.Array:
    """Accurate log-softmax: finite gradients for ``-inf`` and huge logits.

    Computed as ``(x - top) - log1p(rest)`` so that the log-probability of a
    confident class keeps its relative precision. Entries outside ``where`` get
    ``-inf``. Half precision is computed and returned in float32 (callers cast
    their final result).
    """
    return log_softmax_split(logits, axis=axis, where=where)[0]


def log_softmax_split(
    logits: ArrayLike, *, axis: int = -1, where: ArrayLike | None = None
) -> tuple[jax.Array, jax.Array]:
    """Log-softmax as a double word ``(hi, lo)``, ``hi + lo`` accurate to ~eps absolute.

    ``exp(hi) * (1 + lo)`` is then a probability with full relative precision, even
    where ``|hi|`` is large and one rounding of ``hi`` alone would cost ``|hi|`` ulps.
    """
    (logits,), _ = promote(logits)
    axis = event_axis(logits.ndim, axis)
    where = broadcast_where(where, logits.shape)
    _, shifted, err, log1p_rest = _top_split(logits, axis, where)
    hi, lo = two_sum(jnp.where(jnp.isneginf(shifted), 0, shifted), -log1p_rest)
    dead = jnp.isneginf(shifted)
    return jnp.where(dead, -jnp.inf, hi), jnp.where(dead, 0, lo + err)


def exprel(x: jax.Array) -> jax.Array:
    """``expm1(x) / x`` with the value 1 at 0, smooth (a short series near 0)."""
    small = jnp.abs(x) < 1e-3
    xs = jnp.where(small, 1, x)
    # Truncation error x^5/720 < 2e-18 relative at the cut.
    series = 1 + x * (1 / 2 + x * (1 / 6 + x * (1 / 24 + x * (1 / 120))))
    return jnp.where(small, series, jnp.expm1(xs) / xs)


def log1prel(x: jax.Array) -> jax.Array:
    """``log1p(x) / x`` with the value 1 at 0, smooth (a short series near 0)."""
    small = jnp.abs(x) < 1e-3
    xs = jnp.where(small, 1, x)
    # Truncation error x^6/7 < 2e-19 relative at the cut.
    series = 1 - x * (1 / 2 - x * (1 / 3 - x * (1 / 4 - x * (1 / 5 - x * (1 / 6)))))
    return jnp.where(small, series, jnp.log1p(xs) / xs)


def _two_sum(a: tuple[jax.Array, jax.Array], b: tuple[jax.Array, jax.Array]):
    """Adds two (value, error) pairs, keeping the rounding error (Knuth's TwoSum)."""
    s, err = two_sum(a[0], b[0])
    return s, a[1] + b[1] + err


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def accurate_sum(x: jax.Array, axis: int) -> jax.Array:
    """Sum over ``axis`` with compensated (double-word) accumulation.

    Used where a sum of exact, mostly cancelling terms must keep its few
    significant bits, such as ``sum(p - q)`` for two normalized distributions.
    """
    axis = event_axis(x.ndim, axis)
    zero = jnp.zeros((), x.dtype)
    s, err = jax.lax.reduce((x, jnp.zeros_like(x)), (zero, zero), _two_sum, (axis,))
    return s + err


@accurate_sum.defjvp
def _accurate_sum_jvp(axis, primals, tangents):
    (x,), (x_dot,) = primals, tangents
    return accurate_sum(x, axis), jnp.sum(x_dot, axis=axis)


def kl_term(p: jax.Array, q: jax.Array, diff: jax.Array) -> jax.Array:
    """``p log(p/q) - p + q`` (>= 0), given ``diff = p - q`` computed accurately.

    With ``u = (p - q)/(p + q)`` this equals ``(p + q) u^2 (A(u^2) + u B(u^2))``,
    ``A(z) = sum z^k/(2k+1)``, ``B(z) = sum z^k/(2k+3)`` (from
    ``log(p/q) = 2 artanh(u)``): no cancellation when ``p`` is close to ``q``, where
    the direct formula subtracts nearly equal numbers. Away from ``p = q`` the direct
    formula is accurate. ``+inf`` where ``p > 0 = q``; ``q`` where ``p = 0``.
    """
    total = p + q
    safe_total = jnp.where(total > 0, total, 1)
    u = diff / safe_total
    # float64 needs fewer series terms near 0 than float32 needs up to |u| = 1/3.
    cut = 0.15 if jnp.finfo(p.dtype).bits > 32 else 1 / 3
    near = jnp.abs(u) < cut
    z = u * u
    a = b = jnp.zeros_like(z)
    for k in reversed(range(10)):
        a = a * z + 1 / (2 * k + 1)
        b = b * z + 1 / (2 * k + 3)
    series = diff * u * (a + u * b)
    # Direct formula on the far branch only; near values get harmless stand-ins.
    fp = jnp.where(near, 1, p)
    fq = jnp.where(near, 2, q)
    ratio = fp / jnp.where(fq > 0, fq, 1)
    log_ratio = jnp.where(
        jnp.isfinite(ratio),
        jnp.log(jnp.where(ratio > 0, ratio, 1)),
        jnp.log(jnp.where(fp > 0, fp, 1)) - jnp.log(jnp.where(fq > 0, fq, 1)),
    )
    direct = jnp.where(fp > 0, fp * log_ratio, 0) - jnp.where(near, 1, diff)
    direct = jnp.where((fp > 0) & (fq == 0), jnp.inf, direct)
    # p = 0 gives q; the p-term's slope there is -(1 + log q), so that a KL built on
    # this has the same (finite) derivative in p as cross-entropy minus entropy.
    log_q = jnp.log(jnp.where(q > 0, q, 1))
    return jnp.where(p == 0, q - p * (1 + log_q), jnp.where(near, series, direct))


def expm1mx(t: jax.Array) -> jax.Array:
    """``exp(t) - 1 - t`` for ``|t| <= 1`` by its Taylor series (no cancellation)."""
    series = jnp.zeros_like(t)
    for k in reversed(range(2, 20)):
        series = (series + 1) * t / k
    return t * series


def safe_sqrt(x: jax.Array) -> jax.Array:
    """``sqrt(x)`` whose derivative at 0 is taken as 0 instead of ``inf``."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1)), 0)
