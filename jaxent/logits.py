"""Measures of categorical distributions given by logits (unnormalized log-probabilities).

``softmax(logits)`` is never formed naively: log-probabilities come from an
accurate log-softmax (largest term split off, ``log1p`` of the rest), ``-inf``
logits mean probability 0, and gradients with respect to logits are finite for
``-inf`` logits and for logits of magnitude up to 1e30.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from jaxent import _numerics as nx
from jaxent._numerics import Base
from jaxent.checks import expects, jit_public


def _logits_events(
    axis: int, where: ArrayLike | None, **arrays: ArrayLike
) -> tuple[list[jax.Array], int, jax.Array | None, jnp.dtype]:
    """Promotes and broadcasts logits-like inputs; folds ``where`` in as ``-inf``."""
    names = list(arrays)
    xs, dtype = nx.promote(*arrays.values())
    xs, axis, mask = nx.broadcast_events(axis, where, **dict(zip(names, xs)))
    return xs, axis, mask, dtype


def _live_nll(parts: nx.SoftmaxParts) -> jax.Array:
    """``-log softmax`` at live entries and a finite stand-in (``~max/4``) at dead ones,
    without a select (a select would keep XLA's CPU backend from fusing the caller's
    sum into the log-sum-exp chain).

    ``log1p(rest) + (shift - x)``: two non-negative terms, so the rounding of
    ``shift - x`` costs at most an ulp of the result, which its own rounding costs
    anyway (the TwoSum's correction of ``shift - x`` would change it by less)."""
    w = jnp.maximum(parts.x, -jnp.finfo(parts.x.dtype).max / 4)
    return parts.lse_rest + (parts.shift - w)


def _entropy_pieces(axis, z):
    """The softmax's parts and the entropy (0 in a row with no live entry, keepdims)."""
    parts, _ = nx.softmax_parts(z, axis).recomputed(())
    h = jnp.sum(nx.softmax_from_parts(parts) * _live_nll(parts), axis=axis, keepdims=True)
    return parts, jnp.where(parts.empty, 0, h)


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _entropy(axis, z):
    return jnp.squeeze(_entropy_pieces(axis, z)[1], axis=axis)


@_entropy.defjvp
def _entropy_jvp(axis, primals, tangents):
    (z,), (z_dot,) = primals, tangents
    parts, h = _entropy_pieces(axis, z)
    parts, h_row = parts.recomputed(h)
    # dH/dz = -P (log P + H); 0 at dead entries (P = 0, nll finite).
    tangent = jnp.sum(nx.softmax_from_parts(parts) * (_live_nll(parts) - h_row) * z_dot, axis=axis)
    return jnp.squeeze(h, axis=axis), tangent


@jit_public
@expects(logits="finite")
def entropy_from_logits(
    logits: ArrayLike, *, axis: int = -1, base: Base = None, where: ArrayLike | None = None
) -> jax.Array:
    r"""Entropy of ``softmax(logits)``.

    .. math:: H = -\sum_i \sigma(z)_i \log \sigma(z)_i

    Args:
      logits: ``[..., n]``; ``-inf`` entries have probability 0.
      axis: the event axis.
      base: unit of the result (see :func:`jaxent.entropy`).
      where: events to include; the softmax is taken over these only.

    Returns:
      The entropy, with the batch shape.

    Raises:
      ValueError: at trace time, for logits with no event axis, an ``axis`` out of
        range, a ``where`` that does not broadcast, or an invalid ``base``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> print(je.entropy_from_logits(jnp.array([[0.0, 0.0], [0.0, -jnp.inf]]), base=2))
      [1. 0.]

    References:
      T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed.,
      Wiley, 2006, section 2.1.

      P. Blanchard, D. J. Higham and N. J. Higham, "Accurately computing the
      log-sum-exp and softmax functions", IMA Journal of Numerical Analysis 41,
      2021 (the log-softmax).
    """
    (z,), axis, where, dtype = _logits_events(axis, where, logits=logits)
    if z.shape[axis] == 0:
        return jnp.zeros(z.shape[:axis] + z.shape[axis + 1 :], dtype)
    return nx.to_units(_entropy(axis, nx.mask_logits(z, where)), base).astype(dtype)


def nll_from_parts(parts: nx.SoftmaxParts) -> jax.Array:
    """``-log softmax`` at live entries, ``>= 0`` and accurate (``+inf`` at dead ones)."""
    s, err = parts.exact_shift()
    return jnp.where(parts.live, (parts.lse_rest - s) - err, jnp.inf)


def _dead_eighth(z: jax.Array) -> jax.Array:
    """``max/8`` at dead (``-inf``) entries, 0 at live ones (``|z| < max/8``), without a
    select. (An indicator times an infinite constant would be NaN at live entries.)"""
    big = jnp.finfo(z.dtype).max
    return jnp.maximum(0, -jnp.maximum(z, -big / 4) - big / 8)


def _cross_entropy_value(axis, p, z):
    # p = 0 at a dead entry adds exactly 0 (its nll is finite); mass there (p at least
    # the smallest normal) makes the flag term overflow to +inf, the cross-entropy.
    flag = _dead_eighth(z) * jnp.minimum(1, p * (1 / jnp.finfo(z.dtype).tiny))
    return jnp.sum(p * _live_nll(nx.softmax_parts(z, axis)) + flag * 16, axis=axis)


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def cross_entropy_core(axis, p, z):
    return _cross_entropy_value(axis, p, z)


def _cross_entropy_jvp(axis, primals, tangents):
    p, z = primals
    p_dot, z_dot = tangents
    tangent = 0  # the rule runs only when some tangent is nonzero
    parts = nx.softmax_parts(z, axis)
    big = jnp.finfo(z.dtype).max
    if not isinstance(z_dot, SymbolicZero):
        # d/dz = sum(p) softmax - p, 0 at dead entries (softmax is 0 there already).
        mass = jnp.sum(p, axis=axis, keepdims=True)
        grad_z = mass * nx.softmax_from_parts(parts) - p * (1 - _dead_eighth(z) * (8 / big))
        tangent = tangent + jnp.sum(grad_z * z_dot, axis=axis)
    if not isinstance(p_dot, SymbolicZero):
        # d/dp = -log q (0 at dead entries, where it is +inf).
        grad_p = _live_nll(parts) * (1 - _dead_eighth(z) * (8 / big))
        tangent = tangent + jnp.sum(grad_p * p_dot, axis=axis)
    return cross_entropy_core(axis, p, z), tangent


cross_entropy_core.defjvp(_cross_entropy_jvp, symbolic_zeros=True)


@jit_public
@expects(p="probs", logits="finite")
def cross_entropy_from_logits(
    p: ArrayLike,
    logits: ArrayLike,
    *,
    axis: int = -1,
    base: Base = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Cross-entropy of ``softmax(logits)`` relative to target probabilities ``p``.

    .. math:: H(p, \sigma(z)) = -\sum_i p_i \log \sigma(z)_i

    Args:
      p: target probabilities, ``[..., n]``.
      logits: model logits, broadcastable against ``p``.
      axis: the event axis.
      base: unit of the result (see :func:`jaxent.entropy`).
      where: events to include; the softmax is taken over these only.

    Returns:
      The cross-entropy, with the batch shape; ``+inf`` where some ``p_i > 0``
      has a ``-inf`` logit.

    Raises:
      ValueError: at trace time, for inputs with no event axis, an ``axis`` out of
        range, a different number of events in the two inputs, shapes (or a
        ``where``) that do not broadcast, or an invalid ``base``.

    Examples:
      >>> import jaxent as je
      >>> print(f"{float(je.cross_entropy_from_logits([0.0, 1.0], [0.0, 20.0])):.6g}")
      2.06115e-09

    References:
      T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed.,
      Wiley, 2006, chapter 2.

      P. Blanchard, D. J. Higham and N. J. Higham, "Accurately computing the
      log-sum-exp and softmax functions", IMA Journal of Numerical Analysis 41,
      2021 (the log-softmax).
    """
    (p, z), axis, where, dtype = _logits_events(axis, where, p=p, logits=logits)
    if z.shape[axis] == 0:
        return jnp.zeros(z.shape[:axis] + z.shape[axis + 1 :], dtype)
    (p,) = nx.zero_outside(where, p)
    return nx.to_units(cross_entropy_core(axis, p, nx.mask_logits(z, where)), base).astype(dtype)


def _kl_pieces(axis, zp, zq):
    """``(P, Q, t0, live P, live Q)`` with ``t0 = log Q - log P + delta``.

    ``delta``, one number per row, is the rounding of ``log(sum_q / sum_p)`` (a few
    ulps); each ``t0`` is otherwise ``(zq - zp) - (shift_q - shift_p)``, both
    differences split exactly (TwoSum), so entries far below either maximum keep
    their exact gap. Dead (``-inf``) logits count as ``-max/4`` there: ``t0`` is
    finite everywhere.
    """
    _, shift_p, _, _, e_p = nx.shifted_exp(zp, axis)
    _, shift_q, _, _, e_q = nx.shifted_exp(zq, axis)
    # Sums are >= 1 (the maximum adds exactly 1) unless the row has no live entry.
    sum_p = jnp.maximum(jnp.sum(e_p, axis=axis, keepdims=True), 1)
    sum_q = jnp.maximum(jnp.sum(e_q, axis=axis, keepdims=True), 1)
    floor = -jnp.finfo(zp.dtype).max / 4
    d, d_err = nx.two_sum(jnp.maximum(zq, floor), -jnp.maximum(zp, floor))
    c, c_err = nx.two_sum(shift_q, -shift_p)
    t0 = ((d - c) + (d_err - c_err)) - jnp.log(sum_q / sum_p)
    return e_p * (1 / sum_p), e_q * (1 / sum_q), t0, zp != -jnp.inf, zq != -jnp.inf


def _kl_value(axis, zp, zq):
    big_p, big_q, t0, p_live, q_live = _kl_pieces(axis, zp, zq)
    # D = sum P phi(t), phi(t) = e^t - 1 - t >= 0, t = log Q - log P = t0 - delta.
    # Near t0 = 0 the terms are P phi(t0) (a series, no cancellation); elsewhere
    # Q - P - P t0, finite where P underflows while t0 is huge, and equal to Q where
    # P = 0 < Q. Summed, A = sum of these; with X = sum over near events of
    # P expm1(t0) minus P over far ones, Y = -(Q over far events) and
    # B(x) = x - log1p(x) >= 0, exactly D = A - B(X) + B(Y): delta cancels to all
    # orders, and the corrections are second order (B(x) ~ x^2/2). When most of
    # either mass is far, delta is indeterminate from the near events but D is then
    # large (>= P_far/3) and A alone is within delta of it.
    near = jnp.abs(t0) < 1
    w = jnp.where(near, big_p * nx.expm1mx(t0), (big_q - big_p) - big_p * t0)
    w = jnp.where(p_live & ~q_live, jnp.inf, w)
    x = jnp.where(near, big_p * jnp.expm1(t0), -big_p)
    a, x = jnp.sum(w, axis=axis), jnp.sum(x, axis=axis)
    y = -jnp.sum(jnp.where(near, 0, big_q), axis=axis)
    one = jnp.ones_like(a)
    correction = nx.kl_term(one, one + y, -y) - nx.kl_term(one, one + x, -x)
    return a + jnp.where(jnp.minimum(x, y) < -0.5, 0, correction)


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _kl_divergence(axis, zp, zq):
    return _kl_value(axis, zp, zq)


@_kl_divergence.defjvp
def _kl_divergence_jvp(axis, primals, tangents):
    zp, zq = primals
    zp_dot, zq_dot = tangents
    big_p, big_q, t0, p_live, q_live = _kl_pieces(axis, zp, zq)
    # dD/dzp = P (log P/Q - D), dD/dzq = Q - P; D over the events where both live
    # (finite conventions where the value is infinite). The row's delta cancels.
    t0 = jnp.where(p_live & q_live, t0, 0)
    finite = jnp.sum(big_p * -t0, axis=axis, keepdims=True)
    grad_p = big_p * (-t0 - finite)
    grad_q = jnp.where(q_live, big_q - big_p, 0)
    tangent = jnp.sum(grad_p * zp_dot + grad_q * zq_dot, axis=axis)
    return _kl_divergence(axis, zp, zq), tangent


@jit_public
@expects(p_logits="finite", q_logits="finite")
def kl_divergence_from_logits(
    p_logits: ArrayLike,
    q_logits: ArrayLike,
    *,
    axis: int = -1,
    base: Base = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""KL divergence between ``softmax(p_logits)`` and ``softmax(q_logits)``.

    .. math:: D(P \| Q) = \sum_i P_i (\log P_i - \log Q_i), \quad
       P = \sigma(z_p),\ Q = \sigma(z_q)

    Evaluated as :math:`\sum_i P_i\,\phi(\log Q_i - \log P_i)` with
    :math:`\phi(t) = e^t - 1 - t \ge 0` (equal, since both sum to 1), where
    :math:`\log P_i - \log Q_i = (z_{p,i} - z_{q,i}) - (\mathrm{lse}(z_p) -
    \mathrm{lse}(z_q))`: no cancellation for nearly equal distributions.

    Args:
      p_logits: logits of ``P``, ``[..., n]``.
      q_logits: logits of ``Q``, broadcastable against ``p_logits``.
      axis: the event axis.
      base: unit of the result (see :func:`jaxent.entropy`).
      where: events to include; both softmaxes are taken over these only.

    Returns:
      The divergence (>= 0), with the batch shape; ``+inf`` where ``P`` puts
      mass on an event with a ``-inf`` logit in ``Q``.

    Raises:
      ValueError: at trace time, for inputs with no event axis, an ``axis`` out of
        range, a different number of events in the two inputs, shapes (or a
        ``where``) that do not broadcast, or an invalid ``base``.

    Examples:
      >>> import jaxent as je
      >>> print(f"{float(je.kl_divergence_from_logits([0.0, 0.0], [0.0, 0.0])):.1f}")
      0.0

    References:
      S. Kullback and R. A. Leibler, "On information and sufficiency", Annals of
      Mathematical Statistics 22, 1951.

      P. Blanchard, D. J. Higham and N. J. Higham, "Accurately computing the
      log-sum-exp and softmax functions", IMA Journal of Numerical Analysis 41,
      2021 (the log-softmax).
    """
    (zp, zq), axis, where, dtype = _logits_events(axis, where, p_logits=p_logits, q_logits=q_logits)
    if zp.shape[axis] == 0:
        return jnp.zeros(zp.shape[:axis] + zp.shape[axis + 1 :], dtype)
    zp, zq = nx.mask_logits(zp, where), nx.mask_logits(zq, where)
    return nx.to_units(_kl_divergence(axis, zp, zq), base).astype(dtype)
