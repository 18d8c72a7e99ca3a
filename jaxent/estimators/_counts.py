"""Entropy estimates from histogram counts: the plug-in estimate and four corrections.

All estimators reduce over the bin axis ``axis``; the other axes are batch axes.
Counts are used as given (integers or floats, no check that they are whole).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma
from jax.typing import ArrayLike

from jaxent import _numerics as nx
from jaxent._numerics import Base
from jaxent.checks import expects

# The estimators of entropy_from_counts (its ``method`` option).
CountsMethod = Literal["plugin", "miller_madow", "grassberger", "chao_shen", "james_stein"]
METHODS: tuple[CountsMethod, ...] = get_args(CountsMethod)


def _plugin(p: jax.Array) -> jax.Array:
    """``-sum p log p`` over the last axis (0 log 0 = 0, finite gradients at 0)."""
    return jnp.sum(-nx.xlogy(p, p), axis=-1)


def _miller_madow(c: jax.Array, n: jax.Array, p: jax.Array) -> jax.Array:
    bins_seen = jnp.sum(c > 0, axis=-1).astype(c.dtype)
    return _plugin(p) + (bins_seen - 1) / (2 * n)


def _grassberger(c: jax.Array, n: jax.Array, p: jax.Array) -> jax.Array:
    seen = c > 0
    cs = jnp.where(seen, c, 1)  # digamma has a pole at 0; those bins add nothing
    # (-1)^c as cos(pi r) with r = c mod 2: exact +-1 for whole counts of any size
    # (cos(pi c) itself would round pi c), smooth for fractional counts.
    sign = jnp.cos(math.pi * (cs - 2 * jnp.floor(cs / 2)))
    g = digamma(cs) + sign * (digamma((cs + 1) / 2) - digamma(cs / 2)) / 2
    return jnp.log(n) - jnp.sum(jnp.where(seen, p * g, 0), axis=-1)


def _chao_shen(c: jax.Array, n: jax.Array, p: jax.Array) -> jax.Array:
    singletons = jnp.sum(c == 1, axis=-1).astype(c.dtype)
    singletons = jnp.where(singletons == n, n - 1, singletons)  # keeps the coverage > 0
    coverage = 1 - singletons / n
    pa = coverage[..., None] * p
    # Probability that the bin is seen in n draws, 1 - (1 - pa)^n, without the
    # cancellation of the direct form for small pa. pa = 1 (one bin, no singletons)
    # gives 1 (its derivative n (1 - pa)^(n-1) is 0 there; log1p(-1) would give NaN).
    full = pa >= 1
    seen_prob = -jnp.expm1(n[..., None] * jnp.log1p(-jnp.where(full, 0, pa)))
    seen_prob = jnp.where(full | (pa <= 0), 1, seen_prob)  # pa = 0 terms are 0 anyway
    return jnp.sum(-nx.xlogy(pa, pa) / seen_prob, axis=-1)


def _james_stein(c: jax.Array, n: jax.Array, p: jax.Array) -> jax.Array:
    target = 1 / max(c.shape[-1], 1)  # no bins: an empty histogram
    spread = jnp.sum(jnp.square(target - p), axis=-1)  # squared distance to the target
    variance = 1 - jnp.sum(jnp.square(p), axis=-1)  # (n - 1) sum var(p_hat), unbiased
    # Fewer than two observations say nothing about the variance, and p_hat already
    # at the target cannot move: both shrink fully (lambda = 1), as the R package does.
    full = (n <= 1) | (spread == 0)
    lam = jnp.where(full, 1, variance / jnp.where(full, 1, (n - 1) * spread))
    lam = jnp.clip(lam, 0, 1)[..., None]
    return _plugin(lam * target + (1 - lam) * p)


_ESTIMATORS = {
    "plugin": lambda c, n, p: _plugin(p),
    "miller_madow": _miller_madow,
    "grassberger": _grassberger,
    "chao_shen": _chao_shen,
    "james_stein": _james_stein,
}


@expects(counts="counts")
def entropy_from_counts(
    counts: ArrayLike, *, method: CountsMethod = "plugin", axis: int = -1, base: Base = None
) -> jax.Array:
    r"""Shannon entropy estimated from histogram counts.

    With :math:`N = \sum_i c_i` observations in :math:`K` bins, frequencies
    :math:`\hat p_i = c_i / N` and :math:`m` bins seen (:math:`c_i > 0`):

    .. math::

       \begin{aligned}
       \hat H_\text{plugin} &= -\sum_i \hat p_i \log \hat p_i \\
       \hat H_\text{miller\_madow} &= \hat H_\text{plugin} + \frac{m - 1}{2N} \\
       \hat H_\text{grassberger} &= \log N - \frac1N \sum_i c_i\, G(c_i), \quad
         G(c) = \psi(c) + \tfrac12 (-1)^c \left(\psi\!\left(\tfrac{c+1}{2}\right)
         - \psi\!\left(\tfrac c2\right)\right) \\
       \hat H_\text{chao\_shen} &= -\sum_i \frac{\tilde p_i \log \tilde p_i}
         {1 - (1 - \tilde p_i)^N}, \quad \tilde p_i = C \hat p_i, \quad
         C = 1 - \frac{f_1}{N} \\
       \hat H_\text{james\_stein} &= -\sum_i p^\lambda_i \log p^\lambda_i, \quad
         p^\lambda = \lambda \tfrac1K + (1 - \lambda) \hat p, \quad
         \lambda = \frac{1 - \sum_i \hat p_i^2}{(N - 1) \sum_i (1/K - \hat p_i)^2}
       \end{aligned}

    - ``"plugin"``: the maximum-likelihood estimate; biased low when bins are
      undersampled. Equals ``scipy.stats.entropy(counts)``.
    - ``"miller_madow"``: adds the first-order bias correction.
    - ``"grassberger"``: Grassberger's (2003) estimator, in the form with
      :math:`\log N`. Some implementations put :math:`G(N)` in place of
      :math:`\log N`, which differs by :math:`O(1/N)`; his 1988 estimator
      uses a simpler :math:`G`. For fractional counts :math:`(-1)^c` is
      continued smoothly as :math:`\cos(\pi c)`.
    - ``"chao_shen"``: coverage-adjusted Horvitz–Thompson estimator; :math:`f_1`
      is the number of singletons (bins with :math:`c_i = 1`), taken as
      :math:`N - 1` when every observation is a singleton so that :math:`C > 0`.
    - ``"james_stein"``: plug-in entropy of frequencies shrunk towards the
      uniform distribution, the intensity :math:`\lambda` clipped to [0, 1];
      :math:`\lambda = 1` when :math:`N \le 1` or :math:`\hat p` is already
      uniform (as in the R package ``entropy``).

    Every method returns 0 for an empty histogram (all counts 0).

    Args:
      counts: non-negative counts, ``[..., K]`` (bins along ``axis``), integers
        or floats. Integer input gives the default floating dtype.
      method: one of ``"plugin"``, ``"miller_madow"``, ``"grassberger"``,
        ``"chao_shen"``, ``"james_stein"`` (static).
      axis: the bin axis.
      base: unit of the result: ``None``/``"nats"``, ``2``/``"bits"``,
        ``10``/``"bans"`` or any positive number.

    Returns:
      The estimate, with the batch shape (``counts``' shape without ``axis``).
      The plug-in estimate of a single occupied bin is exactly 0 (so is the
      James–Stein estimate once :math:`N \ge 2`).
      Differentiable in float counts.

    Examples:
      >>> import jaxent as je
      >>> counts = [4, 2, 3, 0, 2, 4, 0, 0, 2, 1, 1]
      >>> for method in ["plugin", "miller_madow", "grassberger", "chao_shen", "james_stein"]:
      ...     h = je.estimators.entropy_from_counts(counts, method=method)
      ...     print(f"{method}: {float(h):.4f}")
      plugin: 1.9684
      miller_madow: 2.1526
      grassberger: 2.1446
      chao_shen: 2.2011
      james_stein: 2.3796

    References:
      G. A. Miller, "Note on the bias of information estimates", Information
      Theory in Psychology, 1955.

      P. Grassberger, "Entropy estimates from insufficient samplings",
      arXiv:physics/0307138, 2003.

      A. Chao and T.-J. Shen, "Nonparametric estimation of Shannon's index of
      diversity when there are unseen species in sample", Environmental and
      Ecological Statistics 10, 2003.

      J. Hausser and K. Strimmer, "Entropy inference and the James-Stein
      estimator, with application to nonlinear gene association networks",
      JMLR 10, 2009.
    """
    if not isinstance(method, str) or method not in _ESTIMATORS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    (c,), dtype = nx.promote(counts)
    c = jnp.moveaxis(c, nx.event_axis(c.ndim, axis), -1)
    total = jnp.sum(c, axis=-1)
    empty = total == 0
    n = jnp.where(empty, 1, total)  # an empty histogram estimates 0 with every method
    p = c / n[..., None]
    h = jnp.where(empty, 0, _ESTIMATORS[method](c, n, p))
    return nx.to_units(h, base).astype(dtype)
