"""Measures of categorical distributions given by logits (unnormalized log-probabilities).

``softmax(logits)`` is never formed naively: log-probabilities come from an
accurate log-softmax (largest term split off, ``log1p`` of the rest), ``-inf``
logits mean probability 0, and gradients with respect to logits are finite for
``-inf`` logits and for logits of magnitude up to 1e30.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxent import _numerics as nx
from jaxent._numerics import Base
from jaxent.checks import expects


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

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> print(je.entropy_from_logits(jnp.array([[0.0, 0.0], [0.0, -jnp.inf]]), base=2))
      [1. 0.]
    """
    (logits,), dtype = nx.promote(logits)
    (logits,), axis, where = nx.broadcast_events(axis, where, logits=logits)
    log_q, log_q_err = nx.log_softmax_split(logits, axis=axis, where=where)
    h = jnp.sum(-nx.exp_mul(log_q, log_q_err), axis=axis)
    return nx.to_units(h, base).astype(dtype)


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

    Example:
      >>> import jaxent as je
      >>> print(f"{float(je.cross_entropy_from_logits([0.0, 1.0], [0.0, 20.0])):.6g}")
      2.06115e-09
    """
    (p, logits), dtype = nx.promote(p, logits)
    (p, logits), axis, where = nx.broadcast_events(axis, where, p=p, logits=logits)
    log_q = nx.log_softmax(logits, axis=axis, where=where)
    h = nx.masked_sum(-nx.xmul_log(p, log_q), where, axis)
    return nx.to_units(h, base).astype(dtype)


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

    Example:
      >>> import jaxent as je
      >>> print(f"{float(je.kl_divergence_from_logits([0.0, 0.0], [0.0, 0.0])):.1f}")
      0.0
    """
    (zp, zq), dtype = nx.promote(p_logits, q_logits)
    (zp, zq), axis, where = nx.broadcast_events(axis, where, p_logits=zp, q_logits=zq)
    log_p, log_p_err = nx.log_softmax_split(zp, axis=axis, where=where)
    log_q = nx.log_softmax(zq, axis=axis, where=where)
    live = jnp.isfinite(log_p) & jnp.isfinite(log_q)
    big_p = jnp.exp(jnp.where(live, log_p, -jnp.inf)) * (1 + log_p_err)
    big_q = jnp.exp(jnp.where(live, log_q, -jnp.inf))
    # t = log Q - log P = d - (lse(zq) - lse(zp)) with d = zq - zp. When every |d| < 1
    # the lse gap is log(sum P e^d) = log1p(sum P expm1(d)), free of the rounding of
    # two nearly equal log-sum-exps; otherwise t is the difference of the two
    # log-softmaxes (each accurate, even for a confident P with huge logits).
    d = jnp.where(live, zq - zp, 0)
    q_only = jnp.isneginf(log_p) & jnp.isfinite(log_q)  # mass the P-weighted sum misses
    close = jnp.all((jnp.abs(d) < 1) & ~q_only, axis=axis, keepdims=True)
    near_gap = jnp.log1p(
        jnp.sum(big_p * jnp.expm1(jnp.where(close, d, 0)), axis=axis, keepdims=True)
    )
    t = jnp.where(live & close, d - near_gap, jnp.where(live, log_q - log_p, 0))
    near = jnp.abs(t) < 1
    far_t = jnp.where(near, 0, t)
    # P phi(t) = Q - P - P t; the series near 0 avoids the cancellation, and the
    # direct form stays finite where P underflows while t is huge.
    terms = jnp.where(
        near, big_p * nx.expm1mx(jnp.where(near, t, 0)), big_q - big_p - big_p * far_t
    )
    # P_i = 0 < Q_i adds Q_i; P_i > 0 = Q_i makes the divergence infinite.
    terms = terms + jnp.where(jnp.isneginf(log_p), jnp.exp(log_q), 0)
    terms = jnp.where(jnp.isfinite(log_p) & jnp.isneginf(log_q), jnp.inf, terms)
    return nx.to_units(jnp.sum(terms, axis=axis), base).astype(dtype)
