r"""Measures of joint tables of m discrete variables ``p[..., x1, ..., xm]``.

Variables are named by axes (one axis, or a tuple of axes acting as one variable);
axes of ``p`` that name no variable are batch axes. ``axes=None`` makes every axis a
variable. Tables are used as given (nothing is normalized).

Every measure here is a signed sum of (conditional) mutual informations, each
evaluated by :func:`jaxent.mutual_information` on a conditional table, as
:math:`\sum_z p(z)\, I(X; Y \mid Z = z)`. Its terms are KL divergences with
non-negative summands, so a measure keeps its precision where it is near 0 (nearly
independent variables), where a difference of entropies would leave rounding of
the size of the entropies themselves. No table of m variables is ever compared
with the product of its m marginals, which could underflow.
"""

from __future__ import annotations

import math
from functools import partial, reduce

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxent import _numerics as nx
from jaxent._numerics import AxisGroup, Base
from jaxent.categorical import entropy
from jaxent.checks import expects, jit_public
from jaxent.joint import mutual_information

Axes = None | AxisGroup | tuple[AxisGroup, ...]


def _variables(p: ArrayLike, axes: Axes) -> tuple[jax.Array, int, jnp.dtype]:
    """``p`` as ``[*batch, N_1, ..., N_m]`` (work dtype), ``m`` and the result dtype."""
    (p,), dtype = nx.promote(p)
    groups = nx.axis_groups(p.shape, axes)
    if not groups:
        raise ValueError(f"axes must name at least one variable; got {axes!r}")
    return nx.group_table(p, groups), len(groups), dtype


def _conditional_mi(t: jax.Array) -> jax.Array:
    """``p(z) I(X; Y | Z = z)`` for each ``z`` of a table ``t[..., z, x, y]``, in nats.

    Each slice is divided by its mass ``p(z)`` (slices of mass 0 contribute 0).
    """
    pz = jnp.sum(t, axis=(-2, -1))
    live = pz > 0
    slices = t / jnp.where(live, pz, 1)[..., None, None]
    return jnp.where(live, pz * mutual_information(slices), 0)


def _non_negative(x: jax.Array) -> jax.Array:
    # The measure is a sum of mutual informations, each >= 0; a negative total is
    # rounding (of order eps times the entropies' scale) and its true value is 0.
    # where, not maximum: a positive value keeps its whole gradient.
    return jnp.where(x < 0, 0, x)


# The kernels are jitted (m static): eagerly, one compiled program per table shape
# instead of one per operation.
@partial(jax.jit, static_argnums=1)
def _total_correlation(t: jax.Array, m: int) -> jax.Array:
    """Chain rule: ``TC = sum_{i >= 2} I(X_1, ..., X_{i-1}; X_i)`` (nats)."""
    batch, sizes = t.shape[: t.ndim - m], t.shape[t.ndim - m :]
    tc = jnp.zeros(batch, t.dtype)
    for i in range(m - 1, 0, -1):  # t is the table of X_1..X_{i+1}
        pair = t.reshape(batch + (math.prod(sizes[:i]), sizes[i]))
        tc = tc + mutual_information(pair)
        t = jnp.sum(t, axis=-1)
    return tc


@partial(jax.jit, static_argnums=1)
def _dual_total_correlation(t: jax.Array, m: int) -> jax.Array:
    """Chain rule: ``DTC = sum_{i < m} I(X_i; X_{i+1}, ..., X_m | X_1, ..., X_{i-1})``
    (nats); each term is a reshape of the whole table, no marginal to sum."""
    batch, sizes = t.shape[: t.ndim - m], t.shape[t.ndim - m :]
    dtc = jnp.zeros(batch, t.dtype)
    for i in range(m - 1):
        split = (math.prod(sizes[:i]), sizes[i], math.prod(sizes[i + 1 :]))
        dtc = dtc + jnp.sum(_conditional_mi(t.reshape(batch + split)), axis=-1)
    return dtc


@partial(jax.jit, static_argnums=1)
def _o_information(t: jax.Array, m: int) -> jax.Array:
    """``TC - DTC = sum_j TC(X_{-j}) - (m - 2) TC`` (nats), each total correlation by
    the chain rule: the m marginals of m - 1 variables cost less than the m - 1
    conditional mutual informations of the whole table that DTC takes."""
    first = t.ndim - m  # the axis of X_1
    leave_one_out = sum(
        _non_negative(_total_correlation(jnp.sum(t, axis=first + j), m - 1)) for j in range(m)
    )
    return leave_one_out - (m - 2) * _non_negative(_total_correlation(t, m))


@partial(jax.jit, static_argnums=1)
def _s_information(t: jax.Array, m: int) -> jax.Array:
    """``sum_i I(X_i; X_{-i})`` (nats), each term a mutual information of the whole
    table reshaped to ``[N_i, N / N_i]``: m terms (one batched call when the variables
    have one size) where ``TC + DTC`` by the chain rules takes 2 (m - 1)."""
    first = t.ndim - m
    batch, sizes = t.shape[:first], t.shape[first:]
    pairs = [
        jnp.moveaxis(t, first + i, first).reshape(batch + (n, math.prod(sizes) // n))
        for i, n in enumerate(sizes)
    ]
    if len(set(sizes)) == 1:
        return jnp.sum(mutual_information(jnp.stack(pairs, axis=first)), axis=-1)
    return reduce(jnp.add, [mutual_information(pair) for pair in pairs])


@jax.jit
def _conditional_mutual_information(t: jax.Array) -> jax.Array:
    """I(X; Y | Z) (nats) of ``t[..., z, x, y]``."""
    return _non_negative(jnp.sum(_conditional_mi(t), axis=-1))


@partial(jax.jit, static_argnums=1)
def _co_information(t: jax.Array, m: int) -> jax.Array:
    """Co-information (nats) of ``t[..., n_1, ..., n_m]``, as weighted mutual informations."""
    if m == 1:
        return entropy(t)
    # t[..., B, n_1..n_k] with signs[B]: I(X_1..X_k) = sum_b signs_b I_b, each I_b
    # weighted by its table's mass. Eliminating X_k: the marginal keeps the sign, and
    # each slice t[..., x_k] (a table conditioned on X_k = x_k, weighted) flips it.
    t = jnp.expand_dims(t, t.ndim - m)
    signs = np.ones(1)
    for k in range(m, 2, -1):
        n_k = t.shape[-1]
        both = jnp.concatenate([jnp.sum(t, axis=-1, keepdims=True), t], axis=-1)
        both = jnp.moveaxis(both, -1, -k)  # [..., B, n_k + 1, n_1..n_{k-1}]
        t = both.reshape(both.shape[: -k - 1] + (-1,) + both.shape[both.ndim - k + 1 :])
        signs = np.outer(signs, np.r_[1.0, -np.ones(n_k)]).ravel()
    return jnp.sum(jnp.asarray(signs, t.dtype) * _conditional_mi(t), axis=-1)


@jit_public
@expects(p="table")
def conditional_mutual_information(
    p: ArrayLike,
    *,
    x: AxisGroup = -3,
    y: AxisGroup = -2,
    z: AxisGroup = -1,
    base: Base = None,
) -> jax.Array:
    r"""Conditional mutual information of X and Y given Z.

    .. math:: I(X; Y \mid Z) = \sum_{x, y, z} p(x, y, z)
       \log \frac{p(x, y, z)\, p(z)}{p(x, z)\, p(y, z)}
       = \sum_z p(z)\, D\big(p(x, y \mid z) \,\|\, p(x \mid z)\, p(y \mid z)\big)

    Computed as the second form, :math:`\sum_{x,z} p(x,z)\, D(p(y \mid x, z) \|
    p(y \mid z))` with jaxent's KL: accurate for nearly conditionally independent
    variables. A negative total (rounding only, the measure being :math:`\ge 0`)
    is returned as 0.

    Args:
      p: joint probabilities, an array with an axis per variable.
      x: the axis of X, or a tuple of axes (a group of variables acting as one).
      y: the axis (or axes) of Y.
      z: the axis (or axes) of Z; ``()`` conditions on nothing, giving
        :math:`I(X; Y)`. Axes in none of ``x``, ``y``, ``z`` are batch axes.
      base: unit of the result (see :func:`jaxent.entropy`).

    Returns:
      :math:`I(X; Y \mid Z) \ge 0`, with the shape of the batch axes.

    Raises:
      TypeError: at trace time, for ``x``, ``y`` or ``z`` naming an axis by a
        non-integer.
      ValueError: at trace time, for an axis out of range or named twice among
        ``x``, ``y`` and ``z``, or an invalid ``base``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> xor = jnp.zeros((2, 2, 2)).at[0, 0, 0].set(0.25).at[0, 1, 1].set(0.25)
      >>> xor = xor.at[1, 0, 1].set(0.25).at[1, 1, 0].set(0.25)  # z = x XOR y
      >>> print(je.conditional_mutual_information(xor, base=2))
      1.0

    References:
      T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed.,
      Wiley, 2006, section 2.5.
    """
    (p,), dtype = nx.promote(p)
    groups = nx.axis_groups(p.shape, (z, x, y), "x, y, z")
    t = nx.group_table(p, groups)
    return nx.to_units(_conditional_mutual_information(t), base).astype(dtype)


@jit_public
@expects(p="table")
def co_information(p: ArrayLike, *, axes: Axes = None, base: Base = None) -> jax.Array:
    r"""Co-information (interaction information) of m variables.

    .. math:: I(X_1; \ldots; X_m) = -\sum_{\emptyset \ne S \subseteq \{1..m\}}
       (-1)^{|S|}\, H(X_S)

    Sign convention (Bell's co-information, dit's ``coinformation``): for two
    variables it is :math:`I(X_1; X_2)`, for three
    :math:`I(X; Y) - I(X; Y \mid Z)`, positive when the variables share
    redundant information and negative for synergy (xor: -1 bit); for one
    variable, its entropy. It is symmetric in the variables. (McGill's
    *interaction information* has the opposite sign for odd m.)

    Computed by the recursion :math:`I(X_1; \ldots; X_k) = I(X_1; \ldots; X_{k-1})
    - I(X_1; \ldots; X_{k-1} \mid X_k)` down to :math:`2^{m-2}`-fold weighted
    mutual informations, all evaluated in one batched call (about
    :math:`\prod_{k \ge 3}(n_k + 1)` tables of size :math:`n_1 n_2`).

    Args:
      p: joint probabilities, an array with an axis per variable.
      axes: the variables: ``None`` (every axis), or a tuple whose entries are
        axes or tuples of axes (a group of variables acting as one); other axes
        are batch axes.
      base: unit of the result (see :func:`jaxent.entropy`).

    Returns:
      The co-information, with the shape of the batch axes.

    Raises:
      TypeError: at trace time, for ``axes`` that name an axis by a non-integer.
      ValueError: at trace time, for an axis out of range or named twice, ``axes``
        that name no variable, or an invalid ``base``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> xor = jnp.zeros((2, 2, 2)).at[0, 0, 0].set(0.25).at[0, 1, 1].set(0.25)
      >>> xor = xor.at[1, 0, 1].set(0.25).at[1, 1, 0].set(0.25)
      >>> print(je.co_information(xor, base=2))
      -1.0

    References:
      A. J. Bell, "The co-information lattice", ICA 2003.

      W. J. McGill, "Multivariate information transmission", Psychometrika 19,
      1954.
    """
    t, m, dtype = _variables(p, axes)
    return nx.to_units(_co_information(t, m), base).astype(dtype)


@jit_public
@expects(p="table")
def total_correlation(p: ArrayLike, *, axes: Axes = None, base: Base = None) -> jax.Array:
    r"""Total correlation (multi-information) of m variables.

    .. math:: \mathrm{TC}(X_1, \ldots, X_m) = \sum_i H(X_i) - H(X_1, \ldots, X_m)
       = D\big(p \,\|\, p_1 \otimes \cdots \otimes p_m\big)

    Computed by the chain rule :math:`\sum_{i=2}^m I(X_1, \ldots, X_{i-1}; X_i)`:
    m - 1 mutual informations, each accurate near independence. A negative
    total (rounding only, TC being :math:`\ge 0`) is returned as 0, so an
    independent table gives 0 or a positive value of the order of rounding.

    Args:
      p: joint probabilities, an array with an axis per variable.
      axes: the variables (see :func:`co_information`); other axes are batch axes.
      base: unit of the result (see :func:`jaxent.entropy`).

    Returns:
      :math:`\mathrm{TC} \ge 0`, with the shape of the batch axes (0 for one
      variable).

    Raises:
      TypeError: at trace time, for ``axes`` that name an axis by a non-integer.
      ValueError: at trace time, for an axis out of range or named twice, ``axes``
        that name no variable, or an invalid ``base``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> giant_bit = jnp.zeros((2, 2, 2)).at[0, 0, 0].set(0.5).at[1, 1, 1].set(0.5)
      >>> print(je.total_correlation(giant_bit, base=2))
      2.0

    References:
      S. Watanabe, "Information theoretical analysis of multivariate
      correlation", IBM Journal of Research and Development 4, 1960.
    """
    t, m, dtype = _variables(p, axes)
    return nx.to_units(_non_negative(_total_correlation(t, m)), base).astype(dtype)


@jit_public
@expects(p="table")
def dual_total_correlation(p: ArrayLike, *, axes: Axes = None, base: Base = None) -> jax.Array:
    r"""Dual total correlation (binding information) of m variables.

    .. math:: \mathrm{DTC}(X_1, \ldots, X_m) = H(X_1, \ldots, X_m)
       - \sum_i H(X_i \mid X_{\{1..m\} \setminus i})

    Computed by the chain rule :math:`\sum_{i=1}^{m-1} I(X_i; X_{i+1}, \ldots,
    X_m \mid X_1, \ldots, X_{i-1})`: conditional mutual informations, each
    accurate near conditional independence, read from reshapes of the whole
    table. A negative total (rounding only, DTC being :math:`\ge 0`) is returned
    as 0.

    Args:
      p: joint probabilities, an array with an axis per variable.
      axes: the variables (see :func:`co_information`); other axes are batch axes.
      base: unit of the result (see :func:`jaxent.entropy`).

    Returns:
      :math:`\mathrm{DTC} \ge 0`, with the shape of the batch axes (0 for one
      variable).

    Raises:
      TypeError: at trace time, for ``axes`` that name an axis by a non-integer.
      ValueError: at trace time, for an axis out of range or named twice, ``axes``
        that name no variable, or an invalid ``base``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> xor = jnp.zeros((2, 2, 2)).at[0, 0, 0].set(0.25).at[0, 1, 1].set(0.25)
      >>> xor = xor.at[1, 0, 1].set(0.25).at[1, 1, 0].set(0.25)
      >>> print(je.dual_total_correlation(xor, base=2))
      2.0

    References:
      T. S. Han, "Nonnegative entropy measures of multivariate symmetric
      correlations", Information and Control 36, 1978.
    """
    t, m, dtype = _variables(p, axes)
    return nx.to_units(_non_negative(_dual_total_correlation(t, m)), base).astype(dtype)


@jit_public
@expects(p="table")
def o_information(p: ArrayLike, *, axes: Axes = None, base: Base = None) -> jax.Array:
    r"""O-information: the balance of redundancy and synergy among m variables.

    .. math:: \Omega(X_1, \ldots, X_m) = \mathrm{TC} - \mathrm{DTC}
       = (m - 2)\, H(X_1, \ldots, X_m)
       + \sum_i \big(H(X_i) - H(X_{\{1..m\} \setminus i})\big)

    Positive when redundancy dominates, negative when synergy does; 0 for two
    variables. Equal to the co-information for three variables. Computed as
    :math:`\sum_i \mathrm{TC}(X_{\{1..m\} \setminus i}) - (m - 2)\,\mathrm{TC}`,
    each total correlation a sum of mutual informations.

    Args:
      p: joint probabilities, an array with an axis per variable.
      axes: the variables (see :func:`co_information`); other axes are batch axes.
      base: unit of the result (see :func:`jaxent.entropy`).

    Returns:
      :math:`\Omega`, with the shape of the batch axes.

    Raises:
      TypeError: at trace time, for ``axes`` that name an axis by a non-integer.
      ValueError: at trace time, for an axis out of range or named twice, ``axes``
        that name no variable, or an invalid ``base``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> xor = jnp.zeros((2, 2, 2)).at[0, 0, 0].set(0.25).at[0, 1, 1].set(0.25)
      >>> xor = xor.at[1, 0, 1].set(0.25).at[1, 1, 0].set(0.25)
      >>> print(je.o_information(xor, base=2))
      -1.0

    References:
      F. E. Rosas, P. A. M. Mediano, M. Gastpar and H. J. Jensen, "Quantifying
      high-order interdependencies via multivariate extensions of the mutual
      information", Physical Review E 100, 032305, 2019.
    """
    t, m, dtype = _variables(p, axes)
    return nx.to_units(_o_information(t, m), base).astype(dtype)


@jit_public
@expects(p="table")
def s_information(p: ArrayLike, *, axes: Axes = None, base: Base = None) -> jax.Array:
    r"""S-information (exogenous information): the total of all dependencies.

    .. math:: \Sigma(X_1, \ldots, X_m) = \mathrm{TC} + \mathrm{DTC}
       = \sum_i I(X_i; X_{\{1..m\} \setminus i})

    Args:
      p: joint probabilities, an array with an axis per variable.
      axes: the variables (see :func:`co_information`); other axes are batch axes.
      base: unit of the result (see :func:`jaxent.entropy`).

    Returns:
      :math:`\Sigma \ge 0`, with the shape of the batch axes.

    Raises:
      TypeError: at trace time, for ``axes`` that name an axis by a non-integer.
      ValueError: at trace time, for an axis out of range or named twice, ``axes``
        that name no variable, or an invalid ``base``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> xor = jnp.zeros((2, 2, 2)).at[0, 0, 0].set(0.25).at[0, 1, 1].set(0.25)
      >>> xor = xor.at[1, 0, 1].set(0.25).at[1, 1, 0].set(0.25)
      >>> print(je.s_information(xor, base=2))
      3.0

    References:
      F. E. Rosas, P. A. M. Mediano, M. Gastpar and H. J. Jensen, "Quantifying
      high-order interdependencies via multivariate extensions of the mutual
      information", Physical Review E 100, 032305, 2019.
    """
    t, m, dtype = _variables(p, axes)
    return nx.to_units(_non_negative(_s_information(t, m)), base).astype(dtype)
