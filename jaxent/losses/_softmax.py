"""Softmax cross-entropy losses with optax's signatures, built on jaxent's measures."""

from __future__ import annotations

from functools import partial
from typing import overload

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxent import _numerics as nx
from jaxent.checks import expects, jit_public
from jaxent.logits import cross_entropy_core, nll_from_parts

Axis = int | tuple[int, ...]


def _floating_logits(logits: ArrayLike) -> jax.Array:
    logits = nx.floating("logits", logits)
    if logits.ndim == 0:
        raise ValueError("logits must have a class axis; got a scalar")
    return logits


def _check_smoothing(label_smoothing: ArrayLike) -> None:
    if isinstance(label_smoothing, (int, float)) and not 0 <= label_smoothing <= 1:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing}")


def _example_mask(where: ArrayLike | None, ndim: int, axis: Axis) -> jax.Array | None:
    """A ``where`` with exactly the loss's number of dimensions (``logits`` without the
    class axes) is a mask of examples, expanded along ``axis`` (optax's meaning); any
    other ``where`` masks classes, broadcasting against ``logits`` like NumPy."""
    if where is None:
        return None
    where = jnp.asarray(where, bool)
    num_class_axes = 1 if isinstance(axis, int) else len(axis)
    return jnp.expand_dims(where, axis) if where.ndim == ndim - num_class_axes else where


@overload
def _classes_last(
    axis: Axis, logits: jax.Array, mask: jax.Array | None, /
) -> tuple[int, tuple[jax.Array, jax.Array | None]]: ...


@overload
def _classes_last(
    axis: Axis, logits: jax.Array, labels: jax.Array, mask: jax.Array | None, /
) -> tuple[int, tuple[jax.Array, jax.Array, jax.Array | None]]: ...


def _classes_last(
    axis: Axis, *arrays: jax.Array | None
) -> tuple[int, tuple[jax.Array | None, ...]]:
    """Moves the class axis (or axes, flattened in order, like optax) to the end."""
    ndim = max(a.ndim for a in arrays if a is not None)
    if isinstance(axis, int):
        axis = (axis,)
    if not isinstance(axis, tuple) or not all(isinstance(a, int) for a in axis):
        raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
    axes = tuple(nx.event_axis(ndim, a) for a in axis)
    if len(set(axes)) != len(axes):
        raise ValueError(f"axis {axis} repeats an axis")
    batch = tuple(a for a in range(ndim) if a not in axes)
    out = []
    for a in arrays:
        if a is None or a.ndim < ndim:
            out.append(a)
            continue
        a = jnp.transpose(a, batch + axes)
        out.append(a.reshape(a.shape[: len(batch)] + (-1,)))
    return ndim - len(axes), tuple(out)


@jit_public
@expects(logits="finite", labels="probs")
def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: Axis = -1,
    where: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
) -> jax.Array:
    r"""Cross-entropy of target probabilities against ``softmax(logits)``, in nats.

    A drop-in replacement for :func:`optax.losses.softmax_cross_entropy`, with
    jaxent's numerics: ``-inf`` logits act as masks (their class has probability 0
    and a zero gradient), logits as large as ``1e30`` give finite gradients, and the
    log-probability of a confident class keeps its relative precision. The gradient
    ``sum(y) softmax(x) - y`` is computed directly. On a CPU the value and the
    gradient take 2-3x optax's time: the log-sum-exp also counts ties and carries
    the rounding of ``x - max x``, operations that XLA's CPU backend charges about
    a pass over the data each (BENCHMARKS.md).

    With smoothing :math:`\alpha` and :math:`K` the number of classes that ``where``
    keeps, the targets become :math:`\tilde y = (1 - \alpha) y + \alpha / K` on the
    kept classes and

    .. math::
        \ell = -\sum_{k\ \mathrm{kept}} \tilde y_k \log \operatorname{softmax}(x)_k ,

    the softmax itself taken over the kept classes. A row with no class kept has
    loss 0. A target with mass on a class whose logit is ``-inf`` has loss ``+inf``.

    Args:
      logits: unnormalized log-probabilities, ``[..., num_classes]``; floating.
      labels: target probabilities (e.g. one-hot), broadcastable against
        ``logits`` with the same number of classes along ``axis``. Used as given
        (not normalized).
      axis: the class axis, or a tuple of axes whose entries together are the
        classes (flattened in order, as optax does).
      where: boolean mask. With exactly the loss's number of dimensions
        (``logits``' without the class axes) it selects examples, as in optax: it
        has the shape of the loss and an example where it is False has loss 0.
        Otherwise it selects classes, broadcasting against ``logits`` like NumPy
        (e.g. of ``logits``' shape, or a row of classes for logits with two or
        more batch axes): classes where it is False are left out of the softmax
        and the sum. The number of dimensions decides, never the sizes, so the two
        meanings cannot be confused.
      label_smoothing: :math:`\alpha` in ``[0, 1]``; may be an array that
        broadcasts against the batch shape (keep its class axis of size 1).

    Returns:
      The loss per example: the broadcast shape without ``axis``, in ``logits``'
      dtype.

    Raises:
      TypeError: at trace time, for ``logits`` of a non-floating dtype, or an
        ``axis`` that is neither an int nor a tuple of ints.
      ValueError: at trace time, for scalar ``logits``, a ``label_smoothing``
        (Python number) outside ``[0, 1]``, an ``axis`` out of range or repeated,
        ``labels`` with a different number of classes or a shape that does not
        broadcast, or a ``where`` that does not fit ``logits``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxent import losses
      >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
      >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
      >>> print(losses.softmax_cross_entropy(logits, labels).round(4))
      [0.2761 2.9518]
      >>> print(losses.softmax_cross_entropy(logits, labels, label_smoothing=0.1).round(4))
      [0.3995 2.8051]
      >>> print(losses.softmax_cross_entropy(logits, labels, where=jnp.array([True, False])))
      [0.2761 0.    ]

    References:
      I. Goodfellow, Y. Bengio and A. Courville, *Deep Learning*, MIT Press,
      2016, section 6.2.2 (softmax units).

      C. Szegedy, V. Vanhoucke, S. Ioffe, J. Shlens and Z. Wojna, "Rethinking
      the Inception architecture for computer vision", CVPR 2016 (label
      smoothing).

      P. Blanchard, D. J. Higham and N. J. Higham, "Accurately computing the
      log-sum-exp and softmax functions", IMA Journal of Numerical Analysis 41,
      2021.
    """
    logits = _floating_logits(logits)
    labels = jnp.asarray(labels, logits.dtype)
    _check_smoothing(label_smoothing)
    mask = _example_mask(where, logits.ndim, axis)
    if not isinstance(axis, int):
        labels = jnp.broadcast_to(labels, jnp.broadcast_shapes(labels.shape, logits.shape))
        axis, (logits, labels, mask) = _classes_last(axis, logits, labels, mask)
    try:
        (z, labels), axis, mask = nx.broadcast_events(axis, mask, logits=logits, labels=labels)
    except ValueError as err:
        if where is not None and jnp.ndim(where) != logits.ndim:
            raise ValueError(
                f"where of shape {jnp.shape(where)} (a mask of examples: it has the "
                f"loss's number of dimensions) does not match logits {logits.shape} "
                "without the class axis"
            ) from err
        raise
    (z, labels), out_dtype = nx.promote(z, labels)
    if z.shape[axis] == 0:
        return jnp.zeros(z.shape[:axis] + z.shape[axis + 1 :], out_dtype)
    if not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0):
        keep = jnp.ones(z.shape, z.dtype) if mask is None else mask.astype(z.dtype)
        num_kept = jnp.maximum(jnp.sum(keep, axis=axis, keepdims=True), 1)
        alpha = jnp.asarray(label_smoothing, z.dtype)
        labels = (1 - alpha) * labels + alpha * keep / num_kept
    (labels,) = nx.zero_outside(mask, labels)
    return cross_entropy_core(axis, labels, nx.mask_logits(z, mask)).astype(out_dtype)


def _int_value(z, labels, alpha):
    """``(loss, parts, label nll, kept, mean nll over kept)`` along the last axis."""
    parts = nx.softmax_parts(z, -1)
    label_z = jnp.take_along_axis(z, labels[..., None], axis=-1, mode="clip")
    hit, hit_err = nx.two_sum(label_z, -parts.shift)
    # -log softmax at the label: lse - z_y = log1p(rest) - (z_y - top) >= 0.
    label_nll = jnp.where(label_z == -jnp.inf, jnp.inf, (parts.lse_rest - hit) - hit_err)[..., 0]
    label_kept = (label_z != -jnp.inf)[..., 0]
    loss = jnp.where(label_kept, label_nll, 0)
    if alpha is None:
        return loss, parts, None, label_kept
    nll = nll_from_parts(parts)
    kept = jnp.sum(parts.live, axis=-1, dtype=z.dtype)
    mean_nll = jnp.sum(jnp.where(parts.live, nll, 0), axis=-1) / jnp.maximum(kept, 1)
    return (1 - alpha) * loss + alpha * mean_nll, parts, mean_nll, label_kept


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def _int_label_loss(z, labels, smoothing, alpha):
    return _int_value(z, labels, alpha if smoothing else None)[0]


@_int_label_loss.defjvp
def _int_label_loss_jvp(smoothing, primals, tangents):
    z, labels, alpha = primals
    z_dot, _, alpha_dot = tangents
    loss, parts, mean_nll, label_kept = _int_value(z, labels, alpha if smoothing else None)
    # d/dz = mass softmax - target: the target is (1 - a) one_hot(y) + a keep / K.
    if smoothing:
        classes = jax.lax.broadcasted_iota(labels.dtype, z.shape, z.ndim - 1)
        one_hot = (classes == labels[..., None]) & label_kept[..., None]
        target = one_hot.astype(z.dtype)
        live = parts.live.astype(z.dtype)
        kept = jnp.maximum(jnp.sum(live, axis=-1, keepdims=True), 1)
        target = (1 - alpha[..., None]) * target + alpha[..., None] * live / kept
        mass = jnp.sum(target, axis=-1, keepdims=True)
        grad = jnp.where(parts.live, mass * nx.softmax_from_parts(parts) - target, 0)
    else:
        # Select-free (the softmax is 0 at dead entries), so it fuses with the
        # log-sum-exp chain; the one-hot is a compare with an iota inside that
        # fusion, never materialized. The target's mass is 1 where the label's
        # class is live, 0 otherwise.
        kept = label_kept.astype(z.dtype)[..., None]
        classes = jax.lax.broadcasted_iota(labels.dtype, z.shape, z.ndim - 1)
        one_hot = (classes == labels[..., None]).astype(z.dtype)
        grad = kept * (nx.softmax_from_parts(parts) - one_hot)
    tangent = jnp.sum(grad * z_dot, axis=-1)
    if smoothing:
        tangent = (
            tangent
            + (mean_nll - jnp.where(label_kept, _int_value(z, labels, None)[0], 0)) * alpha_dot
        )
    return loss, tangent


@jit_public
@expects(logits="finite", labels="classes")
def softmax_cross_entropy_with_integer_labels(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: Axis = -1,
    where: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
) -> jax.Array:
    r"""Cross-entropy of class indices against ``softmax(logits)``, in nats.

    A drop-in replacement for
    :func:`optax.losses.softmax_cross_entropy_with_integer_labels`:
    :func:`softmax_cross_entropy` with the one-hot target of each label,

    .. math::
        \ell = \operatorname{logsumexp}(x) - x_y = -\log \operatorname{softmax}(x)_y
        \quad (\alpha = 0),

    evaluated as ``log1p(rest) - (x_y - max x)`` (non-negative, no cancellation) from
    the label's logit, gathered, without a one-hot. The gradient
    ``softmax(x) - one_hot(y)`` is computed directly (value and gradient take 2-3x
    optax's time on a CPU, see :func:`softmax_cross_entropy`).

    Out-of-range labels (negative or ``>= num_classes``) are a user error: their
    loss is NaN (value only; the gradient of such an example is 0), so that a mean
    over a batch shows the problem instead of hiding it (``je.checked`` raises). A
    label on a class that ``where`` leaves out contributes nothing, as in
    :func:`softmax_cross_entropy`.

    Args:
      logits: unnormalized log-probabilities, ``[..., num_classes]``; floating.
      labels: integer class indices with the shape of ``logits`` without ``axis``.
      axis: the class axis, or a tuple of axes whose entries together are the
        classes; a label is then a flat index into them (as in optax).
      where: boolean mask: of ``logits``' shape (or broadcastable to it) it selects
        classes; with fewer dimensions it selects examples (optax's meaning; an
        example where it is False has loss 0). See :func:`softmax_cross_entropy`.
      label_smoothing: mixes the one-hot target with the uniform distribution over
        the kept classes, as in :func:`softmax_cross_entropy`.

    Returns:
      The loss per example, shaped like ``labels``, in ``logits``' dtype.

    Raises:
      TypeError: at trace time, for ``logits`` of a non-floating dtype, ``labels``
        of a non-integer dtype, or an ``axis`` that is neither an int nor a tuple of
        ints.
      ValueError: at trace time, for scalar ``logits``, a ``label_smoothing``
        (Python number) outside ``[0, 1]``, an ``axis`` out of range or repeated,
        ``labels`` not shaped like ``logits`` without the class axis, or a
        ``where`` that does not fit ``logits``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxent import losses
      >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
      >>> print(losses.softmax_cross_entropy_with_integer_labels(
      ...     logits, jnp.array([0, 1])).round(4))
      [0.2761 2.9518]
      >>> print(losses.softmax_cross_entropy_with_integer_labels(
      ...     logits, jnp.array([0, 3])).round(4))
      [0.2761 nan]

    References:
      Those of :func:`softmax_cross_entropy`.
    """
    logits = _floating_logits(logits)
    labels = nx.class_ids("labels", labels)
    _check_smoothing(label_smoothing)
    mask = _example_mask(where, logits.ndim, axis)
    axis, (z, mask) = _classes_last(axis, logits, mask)
    z = jnp.moveaxis(z, axis, -1)
    batch_shape = z.shape[:-1]
    if labels.shape != batch_shape:
        raise ValueError(
            f"labels must have the shape of logits without the class axis: logits "
            f"{logits.shape} needs labels {batch_shape}, got {labels.shape}"
        )
    if mask is not None:
        mask = jnp.moveaxis(nx.broadcast_where(mask, jnp.moveaxis(z, -1, axis).shape), axis, -1)
        if mask.shape != z.shape:
            assert where is not None  # mask is None exactly when where is
            raise ValueError(
                f"where of shape {jnp.shape(where)} does not match logits {logits.shape}"
            )
    (z,), out_dtype = nx.promote(z)
    num_classes = z.shape[-1]
    if num_classes == 0:
        return jnp.zeros(batch_shape, out_dtype)
    smoothing = not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0)
    alpha = jnp.broadcast_to(jnp.asarray(label_smoothing, z.dtype), batch_shape)
    loss = _int_label_loss(nx.mask_logits(z, mask), labels, smoothing, alpha)
    in_range = (labels >= 0) & (labels < num_classes)
    return jnp.where(in_range, loss, jnp.nan).astype(out_dtype)
