"""Nearest-neighbour estimators of entropy, mutual information and KL divergence.

These estimate information measures of continuous distributions from samples,
``x[..., n, d]`` (``n`` points in ``d`` dimensions; any leading axes are batch axes
and broadcast like NumPy). They need no density model: each sample contributes
the log of the distance to its ``k``-th nearest neighbour.

**Neighbour search and cost.** The search is exact whatever the method: the same
k-th neighbour distances and neighbour counts as comparing every pair, so the
estimates equal brute force's up to the order of floating-point sums. With
``method="auto"`` (the default) it is chosen from the shapes: brute force for
small problems (on CPU up to 512 points in one or two dimensions, 1,536 in three,
8,192 in four, 32,768 in five, and always from six; on accelerators up to 4,096
points, and always beyond 8 dimensions), otherwise ``"sorted"``: the points are
sorted and each is compared with a fixed window of candidates, a bound along the
sort coordinates proving that nothing outside the window is closer and the rows
where the proof fails searched exactly (see :mod:`jaxent.estimators._search`).
``"sorted"`` costs ``O(n log n)`` for one-dimensional samples and about ``O(n k)``
candidate distances plus sorting in two dimensions (``n^(2 - 2/d)`` for points
filling ``d`` dimensions; the k nearest in three dimensions from 4,096 points come
from grids of cells first, about ``O(n k)`` candidates for points of smooth density),
with ``O(n (d + k))`` memory; ``"brute"`` costs
``O(k n m d)`` time for ``n`` query points against ``m`` reference points, in
blocks of about four million coordinate differences (32 MB in float64). Leading
batch axes are processed together (the sorted search) or in chunks (brute
force); a ``jax.vmap`` around these functions works too, but runs the sorted
search's data-dependent loops for the whole batch at once.

**Gradients.** The neighbour search runs without gradients; the distances to
the neighbours it selects are then recomputed from the samples, so reverse-mode
differentiation costs ``O(n d)`` memory, not ``O(n^2)``. The Kozachenko–Leonenko
entropy and the KL estimate are differentiable in the samples in this way (the
choice of neighbour is piecewise constant). The KSG estimate depends on the
samples only through neighbour *counts*, so its gradient is zero.

**Duplicate points.** Exact ties give zero distances, and the estimators do not
add noise to break them (add a little yourself, as Kraskov et al. do, if your
data are discretized). A point with ``k`` or more exact copies has
``log 0 = -inf`` in the entropy estimate, which is then ``-inf``; see each
function for the details. Gradients stay finite (the degenerate terms get a zero
gradient).
"""

from __future__ import annotations

import math
import operator
from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxent import _numerics as nx
from jaxent._numerics import Base
from jaxent.checks import expects, jit_public
from jaxent.estimators import _search as search
from jaxent.estimators._search import SearchMethod

# Coordinate differences held at once by the brute-force search: rows per block x
# reference points x dimensions.
_BLOCK_ELEMENTS = 1 << 22
_MAX_PASSES = search.MAX_PASSES
# How Ross's estimate compares a distance with the radius (see _ross_nats).
_Rounding = Literal["sklearn", "exact"]


def _check_k(k: int) -> int:
    """``k`` as a Python int; it must be concrete (it fixes shapes) and positive."""
    try:
        value = operator.index(k)
    except (TypeError, jax.errors.ConcretizationTypeError) as err:
        raise ValueError(f"k must be a concrete positive integer (static), got {k!r}") from err
    if value < 1 or isinstance(k, bool):
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return value


def _check_samples(name: str, x: jax.Array) -> None:
    if x.ndim < 2 or x.shape[-1] < 1:
        raise ValueError(
            f"{name} must be samples [..., n, d] with d >= 1 (use {name}[..., None] for "
            f"scalar samples); got shape {x.shape}"
        )


def _broadcast_batch(**arrays: jax.Array) -> tuple[list[jax.Array], tuple[int, ...]]:
    """Broadcasts the batch axes (all but the last two) of sample arrays together."""
    shapes = {n: a.shape for n, a in arrays.items()}
    try:
        batch = jnp.broadcast_shapes(*(s[:-2] for s in shapes.values()))
    except ValueError as err:
        described = " and ".join(f"{n} {s}" for n, s in shapes.items())
        raise ValueError(
            f"batch axes (all but the last two) do not broadcast: {described}"
        ) from err
    out = [jnp.broadcast_to(a, batch + a.shape[-2:]) for a in arrays.values()]
    return out, batch


def _half_log(s: jax.Array) -> jax.Array:
    """``log(sqrt(s))`` for a squared distance ``s``: ``-inf`` at 0, with gradient 0 there."""
    pos = s > 0
    return jnp.where(pos, 0.5 * jnp.log(jnp.where(pos, s, 1)), -jnp.inf)


def _gather(a: jax.Array, index: jax.Array) -> jax.Array:
    """``a[p, index[p, i]]`` for ``a [N, m, d]`` and ``index [N, n]``: ``[N, n, d]``."""
    return jnp.take_along_axis(a, index[..., None], axis=-2)


def _flatten(batch: tuple[int, ...], *arrays: jax.Array) -> list[jax.Array]:
    return [a.reshape((math.prod(batch),) + a.shape[len(batch) :]) for a in arrays]


def _digamma(m: float, dtype: jnp.dtype) -> jax.Array:
    return jax.scipy.special.digamma(jnp.asarray(m, dtype))


def _log_unit_ball(d: int) -> float:
    """Log-volume of the Euclidean unit ball in ``d`` dimensions."""
    return d / 2 * math.log(math.pi) - math.lgamma(d / 2 + 1)


# The estimates in nats from validated inputs [N, n, d] (N flattened batch entries),
# compiled once per shape so that eager calls are as fast as jitted ones. The
# neighbour searches see the samples through stop_gradient; the distances to the
# neighbours they select are then recomputed differentiably.
@partial(jax.jit, static_argnames=("k", "block", "method"))
def _entropy_nats(x: jax.Array, *, k: int, block: int, method: SearchMethod) -> jax.Array:
    n, d = x.shape[-2:]
    stopped = jax.lax.stop_gradient(x)
    _, near = search.knn(
        stopped, stopped, k, metric="sqeuclidean", exclude_self=True, method=method, block=block
    )
    log_eps = _half_log(search.distance(x, _gather(x, near[..., k - 1]), "sqeuclidean"))
    log_volume = _digamma(n, x.dtype) - _digamma(k, x.dtype) + _log_unit_ball(d)
    return log_volume + d * jnp.mean(log_eps, axis=-1)


def _ksg_counts(
    x: jax.Array, y: jax.Array, *, k: int, block: int, method: SearchMethod
) -> tuple[jax.Array, jax.Array]:
    """KSG's ``n_x``, ``n_y`` ``[N, n]``: points strictly within the joint k-th distance."""
    z = jnp.concatenate([x, y], axis=-1)
    dist, _ = search.knn(z, z, k, metric="max", exclude_self=True, method=method, block=block)
    eps = dist[..., k - 1]
    count_x = search.count_within(x, eps, metric="max", method=method, block=block)
    count_y = search.count_within(y, eps, metric="max", method=method, block=block)
    return count_x, count_y


@partial(jax.jit, static_argnames=("k", "block", "method"))
def _ksg_nats(x: jax.Array, y: jax.Array, *, k: int, block: int, method: SearchMethod) -> jax.Array:
    # Only counts enter the estimate: no gradient flows to the samples.
    x, y = jax.lax.stop_gradient(x), jax.lax.stop_gradient(y)
    count_x, count_y = _ksg_counts(x, y, k=k, block=block, method=method)
    psi = jax.scipy.special.digamma
    marginal = psi((count_x + 1).astype(x.dtype)) + psi((count_y + 1).astype(x.dtype))
    return _digamma(k, x.dtype) + _digamma(x.shape[-2], x.dtype) - jnp.mean(marginal, axis=-1)


@partial(jax.jit, static_argnames=("k", "block", "method"))
def _kl_nats(x: jax.Array, y: jax.Array, *, k: int, block: int, method: SearchMethod) -> jax.Array:
    (n, d), m = x.shape[-2:], y.shape[-2]
    sx, sy = jax.lax.stop_gradient(x), jax.lax.stop_gradient(y)
    knn = partial(search.knn, metric="sqeuclidean", method=method, block=block)
    _, near_x = knn(sx, sx, k, exclude_self=True)
    _, near_y = knn(sx, sy, k, exclude_self=False)
    rho_sq = search.distance(x, _gather(x, near_x[..., k - 1]), "sqeuclidean")
    nu_sq = search.distance(x, _gather(y, near_y[..., k - 1]), "sqeuclidean")
    return d * jnp.mean(_half_log(nu_sq) - _half_log(rho_sq), axis=-1) + math.log(m / (n - 1))


@jit_public
@expects(x="finite")
def kozachenko_leonenko_entropy(
    x: ArrayLike, *, k: int = 3, base: Base = None, method: SearchMethod = "auto"
) -> jax.Array:
    r"""Kozachenko–Leonenko estimate of differential entropy from samples.

    .. math:: \hat H = \psi(n) - \psi(k) + \log V_d + \frac{d}{n} \sum_{i=1}^n \log
       \varepsilon_i, \qquad V_d = \frac{\pi^{d/2}}{\Gamma(d/2 + 1)}

    where :math:`\varepsilon_i` is the Euclidean distance from :math:`x_i` to its
    :math:`k`-th nearest neighbour among the other samples and :math:`V_d` the
    volume of the unit ball. Consistent for any density; the bias shrinks as
    ``n`` grows, faster for small ``d``. Larger ``k`` lowers the variance and
    raises the bias.

    If some point has ``k`` or more exact copies, its :math:`\varepsilon_i` is 0
    and the estimate is ``-inf`` (the empirical distribution has atoms); the
    gradient stays finite.

    Args:
      x: samples ``[..., n, d]`` (``n > k``); leading axes are batch axes.
      k: which neighbour (static positive integer).
      base: unit of the result: ``None``/``"nats"``, ``2``/``"bits"``,
        ``10``/``"bans"`` or any positive number.
      method: the neighbour search: ``"auto"`` (chosen from the shapes and the
        backend), ``"sorted"`` (``O(n log n)`` in one dimension, about ``O(n k)``
        candidates in two; ``O(n (d + k))`` memory) or ``"brute"`` (all pairs,
        ``O(n^2 d)`` time, blocks of ~4M differences); all give the same result.

    Returns:
      The entropy estimate, with shape ``x.shape[:-2]`` (may be negative).
      Differentiable in ``x``.

    Examples:
      Points on a line with spacing 1: every nearest-neighbour distance is 1, so
      the estimate is :math:`\psi(5) - \psi(1) + \log 2`:

      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> x = jnp.arange(5.0)[:, None]
      >>> print(f"{float(je.estimators.kozachenko_leonenko_entropy(x, k=1)):.4f}")
      2.7765

      Standard normal samples in 2 dimensions, against the closed form
      :math:`1 + \log 2\pi`; a batch of 4 data sets of 500 samples gives 4
      estimates, averaged here:

      >>> import math
      >>> import numpy as np
      >>> x = np.random.default_rng(0).normal(size=(4, 500, 2))
      >>> h = je.estimators.kozachenko_leonenko_entropy(x)
      >>> h.shape
      (4,)
      >>> bool(abs(h.mean() - (1 + math.log(2 * math.pi))) < 0.1)
      True

    References:
      L. F. Kozachenko and N. N. Leonenko, "Sample estimate of the entropy of a
      random vector", Problems of Information Transmission 23(2), 1987.
      A. Kraskov, H. Stögbauer and P. Grassberger, "Estimating mutual
      information", Physical Review E 69, 066138, 2004, eq. (20).
    """
    k = _check_k(k)
    search.check_method(method)
    (x,), dtype = nx.promote(x)
    _check_samples("x", x)
    batch, n = x.shape[:-2], x.shape[-2]
    if n <= k:
        raise ValueError(f"need more samples than k: got n = {n} (x shape {x.shape}), k = {k}")

    nx.log_base(base)
    h = _entropy_nats(*_flatten(batch, x), k=k, block=_BLOCK_ELEMENTS, method=method)
    return nx.to_units(h.reshape(batch), base).astype(dtype)


@jit_public
@expects(x="finite", y="finite")
def ksg_mutual_information(
    x: ArrayLike, y: ArrayLike, *, k: int = 3, base: Base = None, method: SearchMethod = "auto"
) -> jax.Array:
    r"""Kraskov–Stögbauer–Grassberger estimate of mutual information (algorithm 1).

    .. math:: \hat I(X; Y) = \psi(k) + \psi(n)
       - \frac1n \sum_{i=1}^n \left[\psi(n_x(i) + 1) + \psi(n_y(i) + 1)\right]

    with max-norm distances: :math:`\varepsilon_i` is the distance from
    :math:`(x_i, y_i)` to its :math:`k`-th nearest neighbour in the joint space,
    :math:`\max(\|x_i - x_j\|_\infty, \|y_i - y_j\|_\infty)`, and
    :math:`n_x(i) = \#\{j \ne i : \|x_i - x_j\|_\infty < \varepsilon_i\}`
    (strictly closer), :math:`n_y(i)` likewise. The estimate is nearly unbiased
    for independent variables and may be slightly negative. The max-norm makes it
    depend on the relative scales of ``x`` and ``y`` (not on their common scale):
    standardizing each coordinate first is common practice.

    The estimate depends on the samples only through neighbour counts, so it is
    piecewise constant and its gradient is zero. Exact duplicates are counted as
    they are: a point with ``k`` or more copies in the joint space has
    :math:`\varepsilon_i = 0` and :math:`n_x(i) = n_y(i) = 0`; the result stays
    finite but is biased upwards (Kraskov et al. add low-amplitude noise to
    discretized data).

    Args:
      x: samples of X, ``[..., n, dx]`` (``n > k``).
      y: paired samples of Y, ``[..., n, dy]``; the batch axes broadcast
        against those of ``x``.
      k: which neighbour in the joint space (static positive integer).
      base: unit of the result (see :func:`kozachenko_leonenko_entropy`).
      method: the neighbour search (see :func:`kozachenko_leonenko_entropy`): one
        search in the joint space, then counts along each marginal (binary
        searches for one-dimensional marginals, ``O(n log n)``); memory
        ``O(n (dx + dy + k))`` for ``"sorted"``. All methods give the same result.

    Returns:
      The mutual information estimate, with the broadcast batch shape.

    Examples:
      Correlated Gaussians, against :math:`-\tfrac12 \log(1 - \rho^2)`, averaged
      over a batch of 4 data sets of 500 samples:

      >>> import math
      >>> import numpy as np
      >>> import jaxent as je
      >>> x, noise = np.random.default_rng(0).normal(size=(2, 4, 500, 1))
      >>> y = 0.6 * x + 0.8 * noise  # correlation 0.6
      >>> mi = je.estimators.ksg_mutual_information(x, y)
      >>> bool(abs(mi.mean() - (-0.5 * math.log(1 - 0.6**2))) < 0.05)
      True

    References:
      A. Kraskov, H. Stögbauer and P. Grassberger, "Estimating mutual
      information", Physical Review E 69, 066138, 2004, eq. (8).
    """
    k = _check_k(k)
    search.check_method(method)
    (x, y), dtype = nx.promote(x, y)
    _check_samples("x", x)
    _check_samples("y", y)
    if x.shape[-2] != y.shape[-2]:
        raise ValueError(
            f"x and y must hold the same number of paired samples n; got x {x.shape} "
            f"(n = {x.shape[-2]}) and y {y.shape} (n = {y.shape[-2]})"
        )
    (x, y), batch = _broadcast_batch(x=x, y=y)
    n = x.shape[-2]
    if n <= k:
        raise ValueError(f"need more samples than k: got n = {n} (x shape {x.shape}), k = {k}")
    nx.log_base(base)
    mi = _ksg_nats(*_flatten(batch, x, y), k=k, block=_BLOCK_ELEMENTS, method=method)
    return nx.to_units(mi.reshape(batch), base).astype(dtype)


@jit_public
@expects(x="finite", y="finite")
def knn_kl_divergence(
    x: ArrayLike, y: ArrayLike, *, k: int = 1, base: Base = None, method: SearchMethod = "auto"
) -> jax.Array:
    r"""Wang–Kulkarni–Verdú nearest-neighbour estimate of :math:`D(P \| Q)`.

    .. math:: \hat D(P \| Q) = \frac{d}{n} \sum_{i=1}^n \log\frac{\nu_k(i)}{\rho_k(i)}
       + \log\frac{m}{n - 1}

    from :math:`x_1, \dots, x_n \sim P` and :math:`y_1, \dots, y_m \sim Q` in
    :math:`\mathbb{R}^d`: :math:`\rho_k(i)` is the Euclidean distance from
    :math:`x_i` to its :math:`k`-th nearest neighbour among the other
    :math:`x_j`, and :math:`\nu_k(i)` the distance from :math:`x_i` to its
    :math:`k`-th nearest neighbour among the :math:`y_j`. Consistent (as ``n``
    and ``m`` grow) but not guaranteed non-negative on finite samples.

    Zero distances are not smoothed: if some :math:`\rho_k(i) = 0` (a point of
    ``x`` with ``k`` or more exact copies in ``x``) the estimate is ``+inf``; if
    some :math:`\nu_k(i) = 0` (``k`` or more points of ``y`` equal to a point of
    ``x``) it is ``-inf``; if both occur the estimate is undefined (NaN).
    Gradients stay finite.

    Args:
      x: samples of P, ``[..., n, d]`` (``n > k`` and ``n >= 2``).
      y: samples of Q, ``[..., m, d]`` (``m >= k``); the batch axes broadcast
        against those of ``x``.
      k: which neighbour (static positive integer).
      base: unit of the result (see :func:`kozachenko_leonenko_entropy`).
      method: the neighbour search (see :func:`kozachenko_leonenko_entropy`): one
        search among ``x`` and one from ``x`` into ``y``; memory
        ``O((n + m) (d + k))`` for ``"sorted"``. All methods give the same result.

    Returns:
      The divergence estimate, with the broadcast batch shape. Differentiable
      in ``x`` and ``y``.

    Examples:
      Two unit-variance Gaussians one standard deviation apart (D = 0.5):

      >>> import numpy as np
      >>> import jaxent as je
      >>> x, y = np.random.default_rng(0).normal(size=(2, 500, 1))
      >>> kl = je.estimators.knn_kl_divergence(x, y + 1.0, k=5)
      >>> bool(abs(kl - 0.5) < 0.1)
      True

    References:
      Q. Wang, S. R. Kulkarni and S. Verdú, "Divergence estimation for
      multidimensional densities via k-nearest-neighbor distances", IEEE
      Transactions on Information Theory 55(5), 2009, eq. (5).
    """
    k = _check_k(k)
    search.check_method(method)
    (x, y), dtype = nx.promote(x, y)
    _check_samples("x", x)
    _check_samples("y", y)
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"x and y must have the same dimension d; got x {x.shape} (d = {x.shape[-1]}) "
            f"and y {y.shape} (d = {y.shape[-1]})"
        )
    (x, y), batch = _broadcast_batch(x=x, y=y)
    n, m = x.shape[-2], y.shape[-2]
    if n <= max(k, 1):
        raise ValueError(
            f"x needs more than max(k, 1) samples: got n = {n} (x shape {x.shape}), k = {k}"
        )
    if m < k:
        raise ValueError(f"y needs at least k samples: got m = {m} (y shape {y.shape}), k = {k}")

    nx.log_base(base)
    kl = _kl_nats(*_flatten(batch, x, y), k=k, block=_BLOCK_ELEMENTS, method=method)
    return nx.to_units(kl.reshape(batch), base).astype(dtype)


def _class_sizes(labels: jax.Array) -> jax.Array:
    """How many samples share each sample's label, ``[N, n]``."""
    ordered = jnp.sort(labels, axis=-1)
    first = jax.vmap(partial(jnp.searchsorted, side="left"))(ordered, labels)
    last = jax.vmap(partial(jnp.searchsorted, side="right"))(ordered, labels)
    return (last - first).astype(jnp.int32)


@partial(jax.jit, static_argnames=("k", "block", "method", "rounding"))
def _ross_nats(
    x: jax.Array,
    labels: jax.Array,
    *,
    k: int,
    block: int,
    method: SearchMethod,
    rounding: _Rounding,
) -> jax.Array:
    """Ross's estimate from ``x [N, n, d]`` and ``labels [N, n]`` (or ``[1, n]``: the
    same labels for every problem, their class sizes counted once), in nats.

    ``rounding="sklearn"`` (one dimension) compares squared distances with the
    squared radius, as scikit-learn's k-d tree does; ``"exact"`` compares distances.
    """
    x = jax.lax.stop_gradient(x)
    size, labels = (jnp.broadcast_to(a, x.shape[:2]) for a in (_class_sizes(labels), labels))
    kept = size > 1  # a sample alone in its class has no neighbour there: left out
    k_i = jnp.clip(size - 1, 1, k)
    near, _ = search.knn(
        x, x, k, metric="max", exclude_self=True, method=method, block=block, groups=labels
    )
    d = jnp.take_along_axis(near, (k_i - 1)[..., None], axis=-1)[..., 0]
    # m_i: the kept samples (i itself included) at distance <= nextafter(d_i, 0):
    # strictly closer than d_i, or the exact copies of x_i where d_i = 0.
    r = jnp.nextafter(jnp.where(kept, d, 0), 0)
    metric: search.Metric
    if rounding == "sklearn":
        metric, radius = "sqeuclidean", jnp.nextafter(r * r, jnp.inf)
    else:
        metric, radius = "max", jnp.nextafter(r, jnp.inf)
    m = 1 + search.count_within(
        x, radius, metric=metric, method=method, block=block, dims=x.shape[-1], k=k, refs=kept
    )
    psi = jax.scipy.special.digamma
    w = kept.astype(x.dtype)
    total = jnp.sum(w, axis=-1)

    def mean(v):
        return jnp.sum(w * psi(v.astype(x.dtype)), axis=-1) / total

    return psi(total) + mean(k_i) - mean(size) - mean(m)


def _check_labels(labels: jax.Array, x: jax.Array) -> None:
    if not (jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == jnp.bool_):
        raise ValueError(
            f"labels must be integer class labels; got dtype {labels.dtype} "
            f"(labels shape {labels.shape})"
        )
    if labels.ndim < 1 or labels.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"labels [..., n] must label the n samples of x [..., n, d]; got labels "
            f"{labels.shape} and x {x.shape}"
        )
    try:  # values are checked when they are known (not under jit)
        smallest = int(jnp.min(labels)) if labels.size else 0
    except jax.errors.ConcretizationTypeError:
        return
    if smallest < 0:
        raise ValueError(f"labels must be non-negative integers; the smallest is {smallest}")


# Not jit_public: eagerly, the labels' values are checked (_check_labels).
@expects(x="finite")
def ross_mutual_information(
    x: ArrayLike, labels: ArrayLike, *, k: int = 3, base: Base = None, method: SearchMethod = "auto"
) -> jax.Array:
    r"""Ross's nearest-neighbour estimate of :math:`I(X; L)` for continuous ``X`` and
    discrete labels ``L``.

    .. math:: \hat I(X; L) = \psi(n) + \langle \psi(k_i) \rangle
       - \langle \psi(N_{l_i}) \rangle - \langle \psi(m_i) \rangle

    For each sample :math:`i` with label :math:`l_i`, :math:`d_i` is the distance
    (max-norm) to its :math:`k_i`-th nearest neighbour among the
    :math:`N_{l_i}` samples with the same label, and :math:`m_i` counts the
    samples of any label (:math:`i` included) closer than :math:`d_i`;
    :math:`\langle\cdot\rangle` averages over the samples. As in scikit-learn's
    ``mutual_info_classif``, a class with fewer than ``k + 1`` samples uses
    :math:`k_i = N_l - 1`, samples alone in their class are left out altogether
    (from :math:`n`, the averages and the counts :math:`m_i`), and where
    :math:`d_i = 0` (``k`` exact copies) :math:`m_i` counts the copies of
    :math:`x_i`. With no class of two or more samples the estimate is NaN. It may
    be slightly negative for independent variables (scikit-learn clips it at 0).

    Cost: the neighbour search within classes and the counts of
    :func:`ksg_mutual_information` (see ``method`` there); memory ``O(n (d + k))``
    for the sorted search.

    Args:
      x: continuous samples ``[..., n, d]``.
      labels: integer class labels ``[..., n]`` (any non-negative integers; they
        need not be contiguous); batch axes broadcast against those of ``x``.
      k: neighbours within the class (static positive integer).
      base: unit of the result (see :func:`kozachenko_leonenko_entropy`).
      method: ``"auto"``, ``"sorted"`` or ``"brute"`` (see
        :func:`kozachenko_leonenko_entropy`); all give the same result.

    Returns:
      The estimate with the broadcast batch shape. Its gradient is zero (it
      depends on the samples through neighbour counts only).

    Examples:
      Two classes whose samples do not overlap carry one bit about the label,
      :math:`\log 2` nats; the estimate is close:

      >>> import numpy as np
      >>> import jaxent as je
      >>> rng = np.random.default_rng(0)
      >>> labels = rng.integers(0, 2, size=500)
      >>> x = (labels + 0.3 * rng.uniform(size=500))[:, None]
      >>> mi = je.estimators.ross_mutual_information(x, labels, base=2)
      >>> bool(abs(mi - 1) < 0.02)
      True

    References:
      B. C. Ross, "Mutual information between discrete and continuous data sets",
      PLoS ONE 9(2), e87357, 2014.
    """
    k = _check_k(k)
    search.check_method(method)
    (x,), dtype = nx.promote(x)
    labels = jnp.asarray(labels)
    _check_samples("x", x)
    _check_labels(labels, x)
    (x, labels3), batch = _broadcast_batch(x=x, labels=labels[..., None])
    n = x.shape[-2]
    if n <= k:
        raise ValueError(f"need more samples than k: got n = {n} (x shape {x.shape}), k = {k}")
    nx.log_base(base)
    x_flat, labels_flat = _flatten(batch, x, labels3)
    mi = _ross_nats(
        x_flat,
        labels_flat[..., 0].astype(jnp.int32),
        k=k,
        block=_BLOCK_ELEMENTS,
        method=method,
        rounding="exact",
    )
    return nx.to_units(mi.reshape(batch), base).astype(dtype)


@partial(jax.jit, static_argnames=("k", "block", "method"))
def _cmi_nats(
    x: jax.Array, y: jax.Array, z: jax.Array, *, k: int, block: int, method: SearchMethod
) -> jax.Array:
    x, y, z = (jax.lax.stop_gradient(a) for a in (x, y, z))
    joint = jnp.concatenate([x, y, z], axis=-1)
    dims = joint.shape[-1]
    dist, _ = search.knn(
        joint, joint, k, metric="max", exclude_self=True, method=method, block=block
    )
    eps = dist[..., k - 1]
    count = partial(search.count_within, metric="max", method=method, block=block, dims=dims, k=k)
    count_xz = count(jnp.concatenate([x, z], axis=-1), eps)
    count_yz = count(jnp.concatenate([y, z], axis=-1), eps)
    count_z = count(z, eps)
    psi = jax.scipy.special.digamma

    def term(c):
        return psi((c + 1).astype(x.dtype))

    return _digamma(k, x.dtype) - jnp.mean(term(count_xz) + term(count_yz) - term(count_z), axis=-1)


@jit_public
@expects(x="finite", y="finite", z="finite")
def ksg_conditional_mutual_information(
    x: ArrayLike,
    y: ArrayLike,
    z: ArrayLike,
    *,
    k: int = 3,
    base: Base = None,
    method: SearchMethod = "auto",
) -> jax.Array:
    r"""Frenzel–Pompe nearest-neighbour estimate of :math:`I(X; Y \mid Z)`.

    .. math:: \hat I(X; Y \mid Z) = \psi(k) - \frac1n \sum_{i=1}^n \left[
       \psi(n_{xz}(i) + 1) + \psi(n_{yz}(i) + 1) - \psi(n_z(i) + 1)\right]

    with max-norm distances: :math:`\varepsilon_i` is the distance from
    :math:`(x_i, y_i, z_i)` to its :math:`k`-th nearest neighbour in the joint
    space, and :math:`n_{xz}(i)` counts the other samples strictly closer than
    :math:`\varepsilon_i` in the :math:`(x, z)` space (max-norm), likewise
    :math:`n_{yz}(i)` and :math:`n_z(i)`. It is the KSG estimator (algorithm 1)
    applied to the conditional mutual information; near zero for conditionally
    independent variables (it may be slightly negative). Like
    :func:`ksg_mutual_information` it depends on the relative scales of the
    variables, and its gradient is zero.

    Cost: one neighbour search in the joint space and three counts (see
    ``method`` in :func:`kozachenko_leonenko_entropy`); the counts in spaces of two
    or more dimensions use the banded search, memory ``O(n (d + k))``.

    Args:
      x: samples of X, ``[..., n, dx]``.
      y: paired samples of Y, ``[..., n, dy]``.
      z: paired samples of the conditioning variable Z, ``[..., n, dz]``; the batch
        axes of the three broadcast together.
      k: which neighbour in the joint space (static positive integer).
      base: unit of the result (see :func:`kozachenko_leonenko_entropy`).
      method: ``"auto"``, ``"sorted"`` or ``"brute"`` (the same result).

    Returns:
      The conditional mutual information estimate, with the broadcast batch shape.

    Examples:
      X and Y both copy Z, with independent noise: dependent, but independent given
      Z, so the estimate is near 0 while :math:`I(X; Y)` is not:

      >>> import numpy as np
      >>> import jaxent as je
      >>> z, a, b = np.random.default_rng(0).normal(size=(3, 500, 1))
      >>> x, y = z + 0.5 * a, z + 0.5 * b
      >>> cmi = je.estimators.ksg_conditional_mutual_information(x, y, z)
      >>> mi = je.estimators.ksg_mutual_information(x, y)  # exact: 0.51
      >>> bool(abs(cmi) < 0.1), bool(mi > 0.4)
      (True, True)

    References:
      S. Frenzel and B. Pompe, "Partial mutual information for coupling analysis
      of multivariate time series", Physical Review Letters 99, 204101, 2007.
      M. Vejmelka and M. Paluš, "Inferring the directionality of coupling with
      conditional mutual information", Physical Review E 77, 026214, 2008.
    """
    k = _check_k(k)
    search.check_method(method)
    (x, y, z), dtype = nx.promote(x, y, z)
    for name, a in (("x", x), ("y", y), ("z", z)):
        _check_samples(name, a)
    if not x.shape[-2] == y.shape[-2] == z.shape[-2]:
        raise ValueError(
            f"x, y and z must hold the same number of paired samples n; got x {x.shape} "
            f"(n = {x.shape[-2]}), y {y.shape} (n = {y.shape[-2]}) and z {z.shape} "
            f"(n = {z.shape[-2]})"
        )
    (x, y, z), batch = _broadcast_batch(x=x, y=y, z=z)
    n = x.shape[-2]
    if n <= k:
        raise ValueError(f"need more samples than k: got n = {n} (x shape {x.shape}), k = {k}")
    nx.log_base(base)
    cmi = _cmi_nats(*_flatten(batch, x, y, z), k=k, block=_BLOCK_ELEMENTS, method=method)
    return nx.to_units(cmi.reshape(batch), base).astype(dtype)


def _embed(series: jax.Array, start: int, stop: int, lags: range) -> jax.Array:
    """``series[..., t - lag, :]`` for t in ``[start, stop)``, lags side by side."""
    return jnp.concatenate([series[..., start - lag : stop - lag, :] for lag in lags], axis=-1)


@jit_public
@expects(source="finite", target="finite")
def transfer_entropy(
    source: ArrayLike,
    target: ArrayLike,
    *,
    k: int = 3,
    history: int = 1,
    source_history: int = 1,
    delay: int = 1,
    base: Base = None,
    method: SearchMethod = "auto",
) -> jax.Array:
    r"""Schreiber's transfer entropy from ``source`` to ``target``, by nearest neighbours.

    .. math:: T_{S \to T} = I\left(T_{t+1};\ S^{(l)}_{t+1-u} \,\middle|\,
       T^{(h)}_t\right)

    estimated with :func:`ksg_conditional_mutual_information`, where the embedding
    is exactly: :math:`T^{(h)}_t = (T_t, T_{t-1}, \dots, T_{t-h+1})` (``h =
    history``), :math:`S^{(l)}_{t+1-u} = (S_{t+1-u}, S_{t-u}, \dots,
    S_{t+2-u-l})` (``l = source_history``, ``u = delay``; ``delay=1`` uses
    :math:`S_t`, the source one step before the target's future), and one sample
    is taken for every :math:`t` at which all of them exist, :math:`t = t_0, \dots,
    T - 2` with :math:`t_0 = \max(h - 1,\ u + l - 2)`: ``n = T - 1 - t0``
    samples. Multivariate series embed each lag's ``d`` coordinates side by side.

    Cost: that of :func:`ksg_conditional_mutual_information` with ``n`` samples in
    ``d_t (1 + h) + d_s l`` dimensions.

    Args:
      source: the source series: ``[T]`` for one scalar series, otherwise
        ``[..., T, d_s]`` (time on the second-to-last axis, the ``d_s`` coordinates
        of each step on the last: use ``series[..., None]`` for a batch of scalar
        series).
      target: the target series, ``[T]`` or ``[..., T, d_t]`` (the same ``T``);
        batch axes broadcast against those of ``source``.
      k: which neighbour in the joint space (static positive integer).
      history: ``h``, the target's past steps conditioned on.
      source_history: ``l``, the source's past steps.
      delay: ``u >= 1``, the source–target lag.
      base: unit of the result (see :func:`kozachenko_leonenko_entropy`).
      method: ``"auto"``, ``"sorted"`` or ``"brute"`` (the same result).

    Returns:
      The transfer entropy estimate, with the broadcast batch shape.

    Examples:
      Y follows X with a lag of one step; nothing flows back:

      >>> import numpy as np
      >>> import jaxent as je
      >>> x = np.random.default_rng(0).normal(size=501)
      >>> noise = np.random.default_rng(1).normal(size=500)
      >>> y = np.concatenate([[0.0], 0.8 * x[:-1] + 0.6 * noise])
      >>> forward = je.estimators.transfer_entropy(x, y)  # exact: 0.51
      >>> backward = je.estimators.transfer_entropy(y, x)  # exact: 0
      >>> bool(forward > 0.4), bool(abs(backward) < 0.1)
      (True, True)

    References:
      T. Schreiber, "Measuring information transfer", Physical Review Letters 85,
      461, 2000.
      M. Wibral, R. Vicente and J. T. Lizier (eds.), "Directed Information Measures
      in Neuroscience", Springer, 2014 (the embedding and delay conventions).
    """
    lags = (("history", history), ("source_history", source_history), ("delay", delay))
    for name, value in lags:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    (source, target), dtype = nx.promote(source, target)
    for name, a in (("source", source), ("target", target)):
        if a.ndim < 1:
            raise ValueError(f"{name} must be a series [T] or [..., T, d]; got a scalar")
    source = source[:, None] if source.ndim == 1 else source
    target = target[:, None] if target.ndim == 1 else target
    T = target.shape[-2]
    if source.shape[-2] != T:
        raise ValueError(
            f"source and target must have the same length T; got source {source.shape} "
            f"and target {target.shape}"
        )
    t0 = max(history - 1, delay + source_history - 2)
    n = T - 1 - t0
    k = _check_k(k)
    if n <= k:
        raise ValueError(
            f"the series are too short: T = {T} gives n = {n} embedded samples "
            f"(history = {history}, source_history = {source_history}, delay = {delay}), "
            f"which must exceed k = {k}"
        )
    future = target[..., t0 + 1 : T, :]
    past = _embed(target, t0, T - 1, range(history))
    source_past = _embed(source, t0, T - 1, range(delay - 1, delay - 1 + source_history))
    te = ksg_conditional_mutual_information(
        future, source_past, past, k=k, base=base, method=method
    )
    return te.astype(dtype)
