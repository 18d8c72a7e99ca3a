"""Measures of joint distributions ``pxy[..., i, j] = P(X = i, Y = j)``.

X runs along axis -2, Y along axis -1; leading axes are batch axes. Marginals are
sums of the table; nothing is normalized.
"""

from __future__ import annotations

from typing import Literal, get_args

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxent import _numerics as nx
from jaxent._numerics import Base
from jaxent.categorical import entropy
from jaxent.checks import expects, jit_public


def _table(pxy: ArrayLike) -> tuple[jax.Array, jnp.dtype]:
    (pxy,), dtype = nx.promote(pxy)
    if pxy.ndim < 2:
        raise ValueError(f"pxy must have at least two axes (X, Y); got shape {pxy.shape}")
    return pxy, dtype


def _given_x(pxy: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``p(x)`` (keepdims) and ``p(y | x)`` (rows with no mass: 0)."""
    px = jnp.sum(pxy, axis=-1, keepdims=True)
    return px, pxy / jnp.where(px > 0, px, 1)


def _conditional_value(axes, pxy):
    return jnp.sum(-nx.xlogy(pxy, _given_x(pxy)[1]), axis=axes)


def _conditional_partials(pxy):
    # d/dp(x,y) = -log p(y|x); at p(x,y) = 0 the flat x log x and the row's 1 from
    # p(x) (0 in a row with no mass).
    px = jnp.sum(pxy, axis=-1, keepdims=True)
    pos = pxy > 0
    inverse = jnp.where(pos, px, 1) / jnp.where(pos, pxy, 1)  # 1 / p(y|x)
    return (jnp.where(pos, jnp.log(inverse), jnp.where(px > 0, 1, 0)),)


_conditional_sum = nx.sum_rule(_conditional_value, _conditional_partials)


def _marginals(pxy: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``p(x)``, ``p(y | x)`` (as :func:`_given_x`) and ``p(y)``, keepdims."""
    return *_given_x(pxy), jnp.sum(pxy, axis=-2, keepdims=True)


def _excess(marginal: jax.Array) -> jax.Array:
    """``sum(marginal) - 1`` over the last axis, summed accurately (the 1 is an entry of
    its own: subtracted from an entry, it would round the entry's small part away)."""
    minus_one = jnp.full(marginal.shape[:-1] + (1,), -1, marginal.dtype)
    return nx.accurate_sum(jnp.concatenate([marginal, minus_one], axis=-1), -1)


def _mi_value(axes, pxy):
    # sum_x p(x) [p(y|x) log(p(y|x)/p(y)) - p(y|x) + p(y)]: non-negative terms (kl_term),
    # no product p(x) p(y) that could underflow. Their "- p + q" parts add
    # sum_x p(x) sum_y (p(y) - p(y|x)) = T_x T_y - T_x for marginals of totals T_x, T_y
    # (equal up to rounding), taken back as T_x (1 - T_y) from the totals' excesses
    # over 1, summed accurately (the marginals are short: no pass over the table).
    px, p_y_given_x, py = _marginals(pxy)
    terms = jnp.sum(px * nx.kl_term(p_y_given_x, py, p_y_given_x - py), axis=axes)
    return terms - (1 + _excess(px[..., 0])) * _excess(py[..., 0, :])


def _mi_partials(pxy):
    # dI/dp(x,y) = log(p(y|x)/p(y)) - 1. Where p(x,y) = 0, the slopes of the conditional
    # form sum_x p(x) D(p(y|x) || p(y)) with p log p flat at 0: -log p(y) - 2, or -1 in
    # an empty row or column, 0 in both.
    px, p_y_given_x, py = _marginals(pxy)
    pos = pxy > 0
    live = jnp.log(jnp.where(pos, p_y_given_x, 1) / jnp.where(pos, py, 1)) - 1
    dead = jnp.where(px > 0, jnp.where(py > 0, -nx.safe_log(py) - 2, -1), jnp.where(py > 0, -1, 0))
    return (jnp.where(pos, live, dead),)


_mi_sum = nx.sum_rule(_mi_value, _mi_partials)


def _conditional(pxy: jax.Array) -> jax.Array:
    """H(Y | X) in nats as ``-sum p(x,y) log p(y|x)``: non-negative terms, no
    cancellation; derivatives in closed form."""
    return _conditional_sum((-2, -1), pxy)


@jit_public
@expects(pxy="joint")
def joint_entropy(pxy: ArrayLike, *, base: Base = None) -> jax.Array:
    r"""Joint entropy of X and Y.

    .. math:: H(X, Y) = -\sum_{x, y} p(x, y) \log p(x, y)

    Args:
      pxy: joint probabilities ``[..., nx, ny]``.
      base: unit of the result (see :func:`jaxent.entropy`).

    Returns:
      The entropy, with shape ``pxy.shape[:-2]``.

    Raises:
      ValueError: at trace time, for a ``pxy`` with fewer than two axes, or an
        invalid ``base``.

    Examples:
      >>> import jaxent as je
      >>> print(je.joint_entropy([[0.25, 0.25], [0.25, 0.25]], base=2))
      2.0

    References:
      T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed.,
      Wiley, 2006, section 2.2.
    """
    pxy, dtype = _table(pxy)
    h = entropy(pxy.reshape(pxy.shape[:-2] + (-1,)))
    return nx.to_units(h, base).astype(dtype)


@jit_public
@expects(pxy="joint")
def conditional_entropy(pxy: ArrayLike, *, base: Base = None) -> jax.Array:
    r"""Conditional entropy of Y given X.

    .. math:: H(Y \mid X) = -\sum_{x, y} p(x, y) \log \frac{p(x, y)}{p(x)}

    Args:
      pxy: joint probabilities ``[..., nx, ny]`` (X along -2, Y along -1).
      base: unit of the result (see :func:`jaxent.entropy`).

    Returns:
      ``H(Y|X)``, with shape ``pxy.shape[:-2]``.

    Raises:
      ValueError: at trace time, for a ``pxy`` with fewer than two axes, or an
        invalid ``base``.

    Examples:
      >>> import jaxent as je
      >>> print(je.conditional_entropy([[0.5, 0.0], [0.25, 0.25]], base=2))
      0.5

    References:
      T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed.,
      Wiley, 2006, section 2.2.
    """
    pxy, dtype = _table(pxy)
    return nx.to_units(_conditional(pxy), base).astype(dtype)


@jit_public
@expects(pxy="joint")
def mutual_information(pxy: ArrayLike, *, base: Base = None) -> jax.Array:
    r"""Mutual information of X and Y.

    .. math:: I(X; Y) = \sum_{x, y} p(x, y) \log \frac{p(x, y)}{p(x)\,p(y)}
       = D(p_{XY} \| p_X \otimes p_Y)

    Computed as :math:`\sum_x p(x)\, D(p(y \mid x) \| p(y))`, summing jaxent's
    non-negative KL terms over the whole table in one pass (plus the table total's
    correction, summed accurately), so it keeps its precision for nearly independent
    variables, is 0 (to rounding) under independence, and never forms a product of
    marginals that could underflow. Its derivative is in closed form,
    :math:`\log \frac{p(x, y)}{p(x)\,p(y)} - 1`.

    Args:
      pxy: joint probabilities ``[..., nx, ny]``.
      base: unit of the result (see :func:`jaxent.entropy`).

    Returns:
      ``I(X;Y)``, with shape ``pxy.shape[:-2]``.

    Raises:
      ValueError: at trace time, for a ``pxy`` with fewer than two axes, or an
        invalid ``base``.

    Examples:
      >>> import jaxent as je
      >>> print(je.mutual_information([[0.5, 0.0], [0.0, 0.5]], base=2))
      1.0

    References:
      T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed.,
      Wiley, 2006, sections 2.3–2.4.
    """
    pxy, dtype = _table(pxy)
    return nx.to_units(_mi_sum((-2, -1), pxy), base).astype(dtype)


@jit_public
@expects(pxy="joint")
def pointwise_mutual_information(pxy: ArrayLike, *, base: Base = None) -> jax.Array:
    r"""Pointwise mutual information of every cell of the table.

    .. math:: \mathrm{pmi}(x, y) = \log \frac{p(x, y)}{p(x)\,p(y)}

    Args:
      pxy: joint probabilities ``[..., nx, ny]``.
      base: unit of the result (see :func:`jaxent.entropy`).

    Returns:
      An array with the shape of ``pxy``; ``-inf`` wherever ``p(x, y) = 0``.

    Raises:
      ValueError: at trace time, for a ``pxy`` with fewer than two axes, or an
        invalid ``base``.

    Examples:
      >>> import jaxent as je
      >>> print(je.pointwise_mutual_information([[0.5, 0.0], [0.0, 0.5]], base=2))
      [[  1. -inf]
       [-inf   1.]]

    References:
      K. W. Church and P. Hanks, "Word association norms, mutual information, and
      lexicography", Computational Linguistics 16, 1990.
    """
    pxy, dtype = _table(pxy)
    px = jnp.sum(pxy, axis=-1, keepdims=True)
    py = jnp.sum(pxy, axis=-2, keepdims=True)
    live = pxy > 0
    ratio = jnp.where(live, pxy, 1) / jnp.where(live, px, 1) / jnp.where(live, py, 1)
    pmi = jnp.where(live, jnp.log(ratio), -jnp.inf)
    return nx.to_units(pmi, base).astype(dtype)


@jit_public
@expects(pxy="joint")
def variation_of_information(pxy: ArrayLike, *, base: Base = None) -> jax.Array:
    r"""Variation of information, a metric between the two variables.

    .. math:: \mathrm{VI}(X; Y) = H(X \mid Y) + H(Y \mid X)

    Args:
      pxy: joint probabilities ``[..., nx, ny]``.
      base: unit of the result (see :func:`jaxent.entropy`).

    Returns:
      ``VI``, with shape ``pxy.shape[:-2]``.

    Raises:
      ValueError: at trace time, for a ``pxy`` with fewer than two axes, or an
        invalid ``base``.

    Examples:
      >>> import jaxent as je
      >>> print(je.variation_of_information([[0.25, 0.25], [0.25, 0.25]], base=2))
      2.0

    References:
      M. Meilă, "Comparing clusterings—an information based distance", Journal of
      Multivariate Analysis 98, 2007.
    """
    pxy, dtype = _table(pxy)
    vi = _conditional(pxy) + _conditional(jnp.swapaxes(pxy, -1, -2))
    return nx.to_units(vi, base).astype(dtype)


# The mean of the marginal entropies in normalized_mutual_information (``average``).
Average = Literal["arithmetic", "geometric", "min", "max"]
_AVERAGES: tuple[Average, ...] = get_args(Average)


@jit_public
@expects(pxy="joint")
def normalized_mutual_information(
    pxy: ArrayLike,
    *,
    average: Average = "arithmetic",
) -> jax.Array:
    r"""Mutual information normalized by a mean of the marginal entropies.

    .. math:: \mathrm{NMI} = \frac{I(X; Y)}{\operatorname{mean}(H(X), H(Y))}

    ``average`` has scikit-learn's meanings (``normalized_mutual_info_score``'s
    ``average_method``); as there, two constant variables give 1 and a zero
    denominator otherwise gives 0. A variable is constant when one of its values
    holds all the probability; then ``H = 0`` and ``I = 0`` exactly, so one constant
    variable gives exactly 0 for every ``average``. Rounding never takes the result
    out of [0, 1]. Unitless, so no ``base``.

    Args:
      pxy: joint probabilities ``[..., nx, ny]``.
      average: ``"arithmetic"``, ``"geometric"``, ``"min"`` or ``"max"``.

    Returns:
      NMI in [0, 1], with shape ``pxy.shape[:-2]``.

    Raises:
      ValueError: at trace time, for an unknown ``average``, or a ``pxy`` with
        fewer than two axes.

    Examples:
      >>> import jaxent as je
      >>> print(je.normalized_mutual_information([[0.5, 0.0], [0.0, 0.5]]))
      1.0

    References:
      A. Strehl and J. Ghosh, "Cluster ensembles — a knowledge reuse framework
      for combining multiple partitions", Journal of Machine Learning Research 3,
      2002.

      N. X. Vinh, J. Epps and J. Bailey, "Information theoretic measures for
      clusterings comparison: variants, properties, normalization and correction
      for chance", Journal of Machine Learning Research 11, 2010.
    """
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES}; got {average!r}")
    pxy, dtype = _table(pxy)
    px, py = jnp.sum(pxy, axis=-1), jnp.sum(pxy, axis=-2)
    # A variable with one value of positive probability has H = 0 and I = 0 exactly;
    # computed, both are rounding noise (px = 1 - 1e-16 gives H(X) ~ 1e-16), and so
    # is their ratio (2.5 for a constant X with "min"). Count the support instead.
    x_const = jnp.sum(px > 0, axis=-1) <= 1
    y_const = jnp.sum(py > 0, axis=-1) <= 1
    hx = jnp.where(x_const, 0, jnp.sum(-nx.xlogy(px, px), axis=-1))
    hy = jnp.where(y_const, 0, jnp.sum(-nx.xlogy(py, py), axis=-1))
    den = {
        "arithmetic": lambda: (hx + hy) / 2,
        "geometric": lambda: nx.safe_sqrt(hx * hy),
        "min": lambda: jnp.minimum(hx, hy),
        "max": lambda: jnp.maximum(hx, hy),
    }[average]()
    mi = jnp.where(x_const | y_const, 0, mutual_information(pxy))
    nmi = jnp.where(den > 0, mi / jnp.where(den > 0, den, 1), 0)
    # I <= min(H(X), H(Y)) <= every mean: only rounding leaves [0, 1] (where, not clip,
    # so that an NMI of exactly 1 keeps its whole gradient).
    nmi = jnp.where(nmi > 1, 1, jnp.where(nmi < 0, 0, nmi))
    nmi = jnp.where(x_const & y_const, 1, nmi)
    return nmi.astype(dtype)
