"""Variational lower bounds on mutual information from a critic's score matrix.

``scores[..., i, j] = f(x_i, y_j)`` for a batch of ``n`` paired samples
``(x_i, y_i) ~ p(x, y)``: the diagonal holds the positive (joint) pairs, the
``n (n - 1)`` off-diagonal entries serve as samples of ``p(x) p(y)``. A score of
``-inf`` excludes a pair (its ``exp`` is 0). All bounds are in nats.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxent import _numerics as nx
from jaxent.checks import expects, jit_public


def _square(scores: ArrayLike) -> tuple[jax.Array, int, jnp.dtype]:
    """Promotes ``scores`` and checks its shape ``[..., n, n]``, ``n >= 2``."""
    (s,), dtype = nx.promote(scores)
    if s.ndim < 2 or s.shape[-1] != s.shape[-2] or s.shape[-1] < 2:
        raise ValueError(
            f"scores must be a square matrix [..., n, n] with n >= 2; got shape {s.shape}"
        )
    return s, s.shape[-1], dtype


def _diagonal(s: jax.Array) -> jax.Array:
    return jnp.diagonal(s, axis1=-2, axis2=-1)


def _off_diagonal(s: jax.Array, n: int) -> jax.Array:
    """The ``n (n - 1)`` off-diagonal entries, ``[..., n (n - 1)]``."""
    (keep,) = np.nonzero(~np.eye(n, dtype=bool).ravel())
    return s.reshape(s.shape[:-2] + (n * n,))[..., keep]


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _sum_exp(x: jax.Array, shift: float) -> jax.Array:
    """``sum_j exp(x_j - shift)`` over the last axis, from a log-sum-exp.

    No term is exponentiated on its own, so nothing overflows unless the sum
    does. The derivative ``exp(x_j - shift)`` is computed per entry: it is
    infinite only where that entry's own derivative overflows (the value is then
    ``inf`` too), and 0, never NaN, for ``-inf`` entries.
    """
    return jnp.exp(nx.logsumexp(x, axis=-1) - shift)


@_sum_exp.defjvp
def _sum_exp_jvp(shift, primals, tangents):
    (x,), (x_dot,) = primals, tangents
    return _sum_exp(x, shift), jnp.sum(jnp.exp(x - shift) * x_dot, axis=-1)


@jit_public
@expects(scores="finite")
def infonce_bound(scores: ArrayLike) -> jax.Array:
    r"""InfoNCE lower bound on the mutual information :math:`I(X; Y)`.

    .. math::

       I_\text{NCE} = \frac1n \sum_{i=1}^n \left[ s_{ii}
         - \log \sum_{j=1}^n e^{s_{ij}} \right] + \log n

    (a row-wise softmax cross-entropy of the positives, with :math:`y_j` as
    negatives for :math:`x_i`). It is at most :math:`\log n` for any scores,
    so it saturates when :math:`I(X; Y)` is large compared to :math:`\log n`.
    Each row is evaluated as :math:`-\log \sum_j e^{s_{ij} - s_{ii}}`, so scores
    of any magnitude keep the precision of their differences.

    Args:
      scores: critic values ``[..., n, n]`` with ``scores[..., i, j] = f(x_i, y_j)``,
        positives on the diagonal, ``n >= 2``; ``-inf`` excludes a pair.

    Returns:
      The bound in nats, with the batch shape ``scores.shape[:-2]``; ``-inf`` when
      a positive score is ``-inf``. Gradients are finite for finite and ``-inf``
      scores of any magnitude.

    Raises:
      ValueError: at trace time, for a shape that is not ``[..., n, n]`` with
        ``n >= 2``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> scores = 2.0 * jnp.eye(4)  # positives score 2, negatives 0
      >>> print(f"{float(je.estimators.infonce_bound(scores)):.4f}")
      1.0455

    References:
      A. van den Oord, Y. Li and O. Vinyals, "Representation learning with
      contrastive predictive coding", arXiv:1807.03748, 2018.

      B. Poole, S. Ozair, A. van den Oord, A. Alemi and G. Tucker, "On
      variational bounds of mutual information", ICML 2019.
    """
    s, n, dtype = _square(scores)
    diag = _diagonal(s)
    masked = jnp.isneginf(diag)
    # s_ii - logsumexp_j s_ij = -logsumexp_j (s_ij - s_ii); the diagonal term is exactly
    # 0 and the row value <= 0, so the bound never exceeds log n after rounding.
    rows = -nx.logsumexp(s - jnp.where(masked, 0, diag)[..., None], axis=-1)
    rows = jnp.where(masked, -jnp.inf, rows)
    return (jnp.mean(rows, axis=-1) + math.log(n)).astype(dtype)


@jit_public
@expects(scores="finite")
def nwj_bound(scores: ArrayLike) -> jax.Array:
    r"""NWJ (f-GAN KL) lower bound on the mutual information :math:`I(X; Y)`.

    .. math::

       I_\text{NWJ} = \frac1n \sum_i s_{ii}
         - \frac{1}{e\, n (n - 1)} \sum_{i \ne j} e^{s_{ij}}

    Tight, in expectation, for the critic :math:`s = 1 + \log \frac{p(x, y)}{p(x) p(y)}`.
    The second term is computed from a log-sum-exp (no score is exponentiated
    on its own).

    Args:
      scores: critic values ``[..., n, n]``, positives on the diagonal,
        ``n >= 2``; ``-inf`` excludes a pair.

    Returns:
      The bound in nats, with the batch shape ``scores.shape[:-2]``. It is
      ``-inf`` when the exponential term overflows (off-diagonal scores above
      about 88 in float32, 709 in float64). Gradients are finite wherever the
      value is, 0 for ``-inf`` scores; where the exponential term overflows they
      are infinite (the true derivative's sign), not NaN.

    Raises:
      ValueError: at trace time, for a shape that is not ``[..., n, n]`` with
        ``n >= 2``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> scores = 2.0 * jnp.eye(4)  # positives score 2, negatives 0
      >>> print(f"{float(je.estimators.nwj_bound(scores)):.4f}")
      1.6321

    References:
      X. Nguyen, M. J. Wainwright and M. I. Jordan, "Estimating divergence
      functionals and the likelihood ratio by convex risk minimization", IEEE
      Trans. Information Theory 56(11), 2010.

      S. Nowozin, B. Cseke and R. Tomioka, "f-GAN: training generative neural
      samplers using variational divergence minimization", NeurIPS 2016.

      B. Poole et al., "On variational bounds of mutual information", ICML 2019.
    """
    s, n, dtype = _square(scores)
    pairs = n * (n - 1)
    exp_term = _sum_exp(_off_diagonal(s, n), 1 + math.log(pairs))
    return (jnp.mean(_diagonal(s), axis=-1) - exp_term).astype(dtype)


@jit_public
@expects(scores="finite")
def donsker_varadhan_bound(scores: ArrayLike) -> jax.Array:
    r"""Donsker–Varadhan (MINE) lower bound on the mutual information :math:`I(X; Y)`.

    .. math::

       I_\text{DV} = \frac1n \sum_i s_{ii}
         - \log \frac{1}{n (n - 1)} \sum_{i \ne j} e^{s_{ij}}

    Invariant to adding a constant to all scores; at least the NWJ bound for the
    same scores (as :math:`\log u \le u / e`), with equality after the best
    shift. Computed with a log-sum-exp on scores centred at their largest
    off-diagonal value, so large scores keep the precision of their differences.

    Args:
      scores: critic values ``[..., n, n]``, positives on the diagonal,
        ``n >= 2``; ``-inf`` excludes a pair.

    Returns:
      The bound in nats, with the batch shape ``scores.shape[:-2]``; ``+inf``
      when every off-diagonal score is ``-inf``, ``-inf`` when a positive score
      is ``-inf``. Gradients are finite for finite and ``-inf`` scores of any
      magnitude.

    Raises:
      ValueError: at trace time, for a shape that is not ``[..., n, n]`` with
        ``n >= 2``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> scores = 2.0 * jnp.eye(4)  # positives score 2, negatives 0
      >>> print(f"{float(je.estimators.donsker_varadhan_bound(scores)):.4f}")
      2.0000

    References:
      M. D. Donsker and S. R. S. Varadhan, "Asymptotic evaluation of certain
      Markov process expectations for large time, IV", Comm. Pure Appl. Math.
      36(2), 1983.

      M. I. Belghazi et al., "Mutual information neural estimation", ICML 2018.
    """
    s, n, dtype = _square(scores)
    off = _off_diagonal(s, n)
    top = jnp.max(off, axis=-1, keepdims=True)
    # The bound is shift-invariant: centring changes neither value nor gradient.
    centre = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0))
    diag_mean = jnp.mean(_diagonal(s) - centre, axis=-1)
    log_mean = nx.logsumexp(off - centre, axis=-1) - math.log(n * (n - 1))
    bound = jnp.where(jnp.isneginf(diag_mean), -jnp.inf, diag_mean - log_mean)
    return bound.astype(dtype)
