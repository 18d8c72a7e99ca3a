"""Elementwise measures of Bernoulli variables (probabilities in [0, 1])."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxent import _numerics as nx
from jaxent._numerics import Base
from jaxent.checks import expects, jit_public


@jit_public
@expects(p="unit")
def surprisal(p: ArrayLike, *, base: Base = None) -> jax.Array:
    r"""Self-information of an event of probability ``p``.

    .. math:: h(p) = -\log p

    Args:
      p: probabilities, any shape.
      base: unit of the result: ``None``/``"nats"``, ``2``/``"bits"``,
        ``10``/``"bans"`` or any positive number.

    Returns:
      ``-log p`` with the shape of ``p``; ``+inf`` where ``p == 0``.

    Raises:
      ValueError: at trace time, for an invalid ``base``.

    Examples:
      >>> import jaxent as je
      >>> print(je.surprisal([0.5, 0.25, 1.0], base=2))
      [1. 2. 0.]

    References:
      C. E. Shannon, "A mathematical theory of communication", Bell System
      Technical Journal 27, 1948.

      T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed.,
      Wiley, 2006, chapter 2.
    """
    (p,), dtype = nx.promote(p)
    return nx.to_units(0 - jnp.log(p), base).astype(dtype)  # +0.0 at p = 1


@jit_public
@expects(p="unit")
def binary_entropy(p: ArrayLike, *, base: Base = None) -> jax.Array:
    r"""Entropy of a Bernoulli variable with success probability ``p``.

    .. math:: H(p) = -p \log p - (1 - p) \log(1 - p)

    ``log(1 - p)`` is computed as ``log1p(-p)``, so tiny ``p`` (1e-30) keeps its
    precision; ``H(0) = H(1) = 0`` exactly.

    Args:
      p: probabilities, any shape.
      base: unit of the result (see :func:`surprisal`).

    Returns:
      The entropy, with the shape of ``p``.

    Raises:
      ValueError: at trace time, for an invalid ``base``.

    Examples:
      >>> import jaxent as je
      >>> print(je.binary_entropy([0.5, 1.0, 0.0], base="bits"))
      [1. 0. 0.]

    References:
      T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed.,
      Wiley, 2006, section 2.1.
    """
    (p,), dtype = nx.promote(p)
    h = 0 - nx.xlogy(p, p) - nx.xlog1my(1 - p, p)  # 0 - ...: H(1) is +0.0, not -0.0
    return nx.to_units(h, base).astype(dtype)


def _binary_cross_entropy_value(_, p, q):
    # 0 - ...: +0.0 for exact zeros. Each term is 0 where its weight is 0.
    return 0 - (
        jnp.where(p == 0, 0, p * jnp.log(q)) + jnp.where(p == 1, 0, (1 - p) * jnp.log1p(-q))
    )


def _binary_cross_entropy_partials(p, q):
    # d/dp = -log q + log(1 - q); d/dq = -p/q + (1 - p)/(1 - q) (0 where a weight is 0).
    log_q = jnp.where((p == 0) & (q == 0), 0, jnp.log(jnp.where(q == 0, 1, q)))
    log_q = jnp.where(q == 0, jnp.where(p == 0, 0, -jnp.inf), log_q)
    log_1mq = jnp.where(q == 1, jnp.where(p == 1, 0, -jnp.inf), jnp.log1p(-jnp.where(q == 1, 0, q)))
    dq = jnp.where(p == 0, 0, -p / jnp.where(p == 0, 1, q))
    dq = dq + jnp.where(p == 1, 0, (1 - p) / jnp.where(p == 1, 1, 1 - q))
    return log_1mq - log_q, dq


_binary_cross_entropy = nx.sum_rule(_binary_cross_entropy_value, _binary_cross_entropy_partials)


def _binary_kl_value(_, p, q):
    return nx.kl_term(p, q, p - q) + nx.kl_term(1 - p, 1 - q, q - p)


def _binary_kl_partials(p, q):
    dp, dq = nx.kl_partials(p, q)
    dp1, dq1 = nx.kl_partials(1 - p, 1 - q)
    return dp - dp1, dq - dq1


_binary_kl = nx.sum_rule(_binary_kl_value, _binary_kl_partials)


@jit_public
@expects(p="unit", q="unit")
def binary_cross_entropy(p: ArrayLike, q: ArrayLike, *, base: Base = None) -> jax.Array:
    r"""Cross-entropy of Bernoulli(``q``) relative to Bernoulli(``p``).

    .. math:: H(p, q) = -p \log q - (1 - p) \log(1 - q)

    Args:
      p: true probabilities.
      q: model probabilities, broadcastable against ``p``.
      base: unit of the result (see :func:`surprisal`).

    Returns:
      The cross-entropy, with the broadcast shape; ``+inf`` where ``q`` puts
      probability 0 on an outcome that ``p`` makes possible.

    Raises:
      ValueError: at trace time, for shapes of ``p`` and ``q`` that do not
        broadcast, or an invalid ``base``.

    Examples:
      >>> import jaxent as je
      >>> print(f"{float(je.binary_cross_entropy(0.5, 0.7, base=2)):.5f}")
      1.12577

    References:
      T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed.,
      Wiley, 2006, chapter 2.
    """
    (p, q), dtype = nx.promote(p, q)
    p, q = nx.broadcast_all(p=p, q=q)
    return nx.to_units(_binary_cross_entropy(None, p, q), base).astype(dtype)


@jit_public
@expects(p="unit", q="unit")
def binary_kl_divergence(p: ArrayLike, q: ArrayLike, *, base: Base = None) -> jax.Array:
    r"""Kullback–Leibler divergence of Bernoulli(``q``) from Bernoulli(``p``).

    .. math:: D(p \| q) = p \log\frac{p}{q} + (1 - p) \log\frac{1 - p}{1 - q}

    Evaluated as a sum of two non-negative terms ``t(p, q) + t(1-p, 1-q)`` with
    ``t(a, b) = a log(a/b) - a + b``, each accurate when ``p`` is close to ``q``.

    Args:
      p: true probabilities.
      q: model probabilities, broadcastable against ``p``.
      base: unit of the result (see :func:`surprisal`).

    Returns:
      The divergence (>= 0), with the broadcast shape; ``+inf`` on support mismatch.

    Raises:
      ValueError: at trace time, for shapes of ``p`` and ``q`` that do not
        broadcast, or an invalid ``base``.

    Examples:
      >>> import jaxent as je
      >>> print(f"{float(je.binary_kl_divergence(0.5, 0.7, base=2)):.5f}")
      0.12577

    References:
      S. Kullback and R. A. Leibler, "On information and sufficiency", Annals of
      Mathematical Statistics 22, 1951.

      T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed.,
      Wiley, 2006, section 2.3.
    """
    (p, q), dtype = nx.promote(p, q)
    p, q = nx.broadcast_all(p=p, q=q)
    return nx.to_units(_binary_kl(None, p, q), base).astype(dtype)
