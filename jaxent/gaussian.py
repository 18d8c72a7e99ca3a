"""Closed forms for multivariate normal distributions."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxent import _numerics as nx
from jaxent._numerics import Base
from jaxent.checks import expects, jit_public


def _check_cov(name: str, cov: jax.Array) -> None:
    if cov.ndim < 2 or cov.shape[-1] != cov.shape[-2]:
        raise ValueError(f"{name} must be a batch of square matrices [..., d, d]; got {cov.shape}")


def _half_logdet(chol: jax.Array) -> jax.Array:
    return jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


@jit_public
@expects(cov="finite")
def gaussian_entropy(cov: ArrayLike, *, base: Base = None) -> jax.Array:
    r"""Differential entropy of a multivariate normal :math:`N(\mu, \Sigma)`.

    .. math:: h = \tfrac12 \log\det(2 \pi e \Sigma)
       = \tfrac{d}{2}(1 + \log 2\pi) + \tfrac12 \log\det\Sigma

    The log-determinant comes from a Cholesky factor (``cov`` must be symmetric
    positive definite; otherwise the result is NaN).

    Args:
      cov: covariance matrices ``[..., d, d]``.
      base: unit of the result (see :func:`jaxent.entropy`).

    Returns:
      The entropy, with shape ``cov.shape[:-2]`` (may be negative).

    Raises:
      ValueError: at trace time, for a ``cov`` that is not ``[..., d, d]``, or an
        invalid ``base``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> print(f"{float(je.gaussian_entropy(jnp.eye(1))):.6f}")
      1.418939

    References:
      T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed.,
      Wiley, 2006, chapter 8.
    """
    (cov,), dtype = nx.promote(cov)
    _check_cov("cov", cov)
    d = cov.shape[-1]
    h = d / 2 * (1 + math.log(2 * math.pi)) + _half_logdet(jnp.linalg.cholesky(cov))
    return nx.to_units(h, base).astype(dtype)


@jit_public
@expects(mean_p="finite", cov_p="finite", mean_q="finite", cov_q="finite")
def gaussian_kl_divergence(
    mean_p: ArrayLike,
    cov_p: ArrayLike,
    mean_q: ArrayLike,
    cov_q: ArrayLike,
    *,
    base: Base = None,
) -> jax.Array:
    r"""KL divergence between multivariate normals :math:`N_p` and :math:`N_q`.

    .. math:: D(N_p \| N_q) = \tfrac12 \left[\operatorname{tr}(\Sigma_q^{-1}\Sigma_p)
       + (\mu_q - \mu_p)^\top \Sigma_q^{-1} (\mu_q - \mu_p) - d
       + \log\frac{\det\Sigma_q}{\det\Sigma_p}\right]

    Uses Cholesky factors ``L_p``, ``L_q``: the trace is
    :math:`\|L_q^{-1} L_p\|_F^2` and the quadratic form :math:`\|L_q^{-1}(\mu_q -
    \mu_p)\|^2`; no matrix is inverted.

    Args:
      mean_p: ``[..., d]``.
      cov_p: ``[..., d, d]``.
      mean_q: ``[..., d]``.
      cov_q: ``[..., d, d]``; batch shapes broadcast.
      base: unit of the result (see :func:`jaxent.entropy`).

    Returns:
      The divergence, with the broadcast batch shape.

    Raises:
      ValueError: at trace time, for a covariance that is not ``[..., d, d]``, a
        mean or ``cov_q`` whose dimension differs from ``cov_p``'s, batch shapes
        that do not broadcast, or an invalid ``base``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> kl = je.gaussian_kl_divergence(jnp.zeros(2), jnp.eye(2), jnp.ones(2), jnp.eye(2))
      >>> print(f"{float(kl):.3f}")
      1.000

    References:
      S. Kullback, *Information Theory and Statistics*, Wiley, 1959.

      L. Pardo, *Statistical Inference Based on Divergence Measures*, Chapman &
      Hall/CRC, 2006.
    """
    (mp, cp, mq, cq), dtype = nx.promote(mean_p, cov_p, mean_q, cov_q)
    _check_cov("cov_p", cp)
    _check_cov("cov_q", cq)
    d = cp.shape[-1]
    for name, m, c in (("mean_p", mp, cp), ("mean_q", mq, cq), ("cov_q", cq, cp)):
        if m.ndim < 1 or m.shape[-1] != d:
            raise ValueError(
                f"{name} must have {d} dimensions to match cov_p; got shapes "
                f"mean_p {mp.shape}, cov_p {cp.shape}, mean_q {mq.shape}, cov_q {cq.shape}"
            )
    batch = jnp.broadcast_shapes(mp.shape[:-1], cp.shape[:-2], mq.shape[:-1], cq.shape[:-2])
    lp = jnp.broadcast_to(jnp.linalg.cholesky(cp), batch + (d, d))
    lq = jnp.broadcast_to(jnp.linalg.cholesky(cq), batch + (d, d))
    diff = jnp.broadcast_to(mq - mp, batch + (d,))
    solve = jax.scipy.linalg.solve_triangular
    # M = L_q^{-1} L_p is lower triangular with diagonal l_i = (L_p)_ii / (L_q)_ii, so
    # tr(M M^T) - d - log det(M M^T) = sum_i (l_i^2 - 1 - log l_i^2) + sum_{i>j} M_ij^2:
    # non-negative terms, l^2 - 1 - log l^2 = e^t - 1 - t with t = 2 log l, taken by
    # its series near 0. Nearly equal Gaussians keep their relative precision.
    m = solve(lq, lp, lower=True)
    z = solve(lq, diff[..., None], lower=True)[..., 0]
    dp = jnp.diagonal(lp, axis1=-2, axis2=-1)
    dq = jnp.diagonal(lq, axis1=-2, axis2=-1)
    t = 2 * jnp.log1p((dp - dq) / dq)
    near = jnp.abs(t) < 1
    tf = jnp.where(near, 0, t)
    diag_terms = jnp.where(near, nx.expm1mx(jnp.where(near, t, 0)), jnp.expm1(tf) - tf)
    off_diagonal = jnp.tril(m, -1)
    kl = (
        jnp.sum(diag_terms, axis=-1)
        + jnp.sum(off_diagonal**2, axis=(-2, -1))
        + jnp.sum(z**2, axis=-1)
    ) / 2
    return nx.to_units(kl, base).astype(dtype)
