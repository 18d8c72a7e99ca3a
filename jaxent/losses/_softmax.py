"""Softmax cross-entropy losses with optax's signatures, built on jaxent's measures."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxent import _numerics
from jaxent.checks import expects
from jaxent.logits import cross_entropy_from_logits


def _floating_logits(logits: ArrayLike) -> jax.Array:
    logits = jnp.asarray(logits)
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise TypeError(f"logits must have a floating dtype, got {logits.dtype}")
    return logits


def _check_smoothing(label_smoothing: ArrayLike) -> None:
    if isinstance(label_smoothing, (int, float)) and not 0 <= label_smoothing <= 1:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing}")


@expects(logits="finite", labels="probs")
def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
) -> jax.Array:
    r"""Cross-entropy of target probabilities against ``softmax(logits)``, in nats.

    A drop-in replacement for :func:`optax.losses.softmax_cross_entropy`, with
    jaxent's numerics: ``-inf`` logits act as masks (their class has probability 0
    and a zero gradient), logits as large as ``1e30`` give finite gradients, and the
    log-probability of a confident class keeps its relative precision.

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
      axis: the class axis.
      where: boolean mask broadcastable against ``logits`` (NumPy rules: a
        per-example mask of shape ``[batch]`` is written ``mask[:, None]``);
        classes where it is False are left out of the softmax and the sum.
      label_smoothing: :math:`\alpha` in ``[0, 1]``; may be an array that
        broadcasts against the batch shape (keep its class axis of size 1).

    Returns:
      The loss per example: the broadcast shape without ``axis``, in ``logits``'
      dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxent import losses
      >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
      >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
      >>> print(losses.softmax_cross_entropy(logits, labels).round(4))
      [0.2761 2.9518]
      >>> print(losses.softmax_cross_entropy(logits, labels, label_smoothing=0.1).round(4))
      [0.3995 2.8051]
    """
    logits = _floating_logits(logits)
    labels = jnp.asarray(labels, logits.dtype)
    _check_smoothing(label_smoothing)
    (logits, labels), axis, where = _numerics.broadcast_events(
        axis, where, logits=logits, labels=labels
    )
    keep = jnp.ones(logits.shape, logits.dtype) if where is None else where.astype(logits.dtype)
    num_kept = jnp.maximum(jnp.sum(keep, axis=axis, keepdims=True), 1)
    alpha = jnp.asarray(label_smoothing, logits.dtype)
    smoothed = (1 - alpha) * labels + alpha * keep / num_kept
    return cross_entropy_from_logits(smoothed, logits, axis=axis, where=where)


@expects(logits="finite", labels="classes")
def softmax_cross_entropy_with_integer_labels(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
) -> jax.Array:
    r"""Cross-entropy of class indices against ``softmax(logits)``, in nats.

    A drop-in replacement for
    :func:`optax.losses.softmax_cross_entropy_with_integer_labels`:
    :func:`softmax_cross_entropy` with the one-hot target of each label,

    .. math::
        \ell = -\log \operatorname{softmax}(x)_y
        \quad (\alpha = 0).

    Out-of-range labels (negative or ``>= num_classes``) are a user error: their
    loss is NaN (value only; the gradient of such an example is 0), so that a mean
    over a batch shows the problem instead of hiding it. A label on a class that
    ``where`` leaves out contributes nothing, as in :func:`softmax_cross_entropy`.

    Args:
      logits: unnormalized log-probabilities, ``[..., num_classes]``; floating.
      labels: integer class indices with the shape of ``logits`` without ``axis``.
      axis: the class axis (one axis).
      where: boolean mask broadcastable against ``logits``; classes where it is
        False are left out.
      label_smoothing: mixes the one-hot target with the uniform distribution over
        the kept classes, as in :func:`softmax_cross_entropy`.

    Returns:
      The loss per example, shaped like ``labels``, in ``logits``' dtype.

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
    """
    logits = _floating_logits(logits)
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if logits.ndim == 0:
        raise ValueError("logits must have a class axis; got a scalar")
    axis = _numerics.event_axis(logits.ndim, axis)
    batch_shape = logits.shape[:axis] + logits.shape[axis + 1 :]
    if labels.shape != batch_shape:
        raise ValueError(
            f"labels must have the shape of logits without axis {axis}: logits "
            f"{logits.shape} needs labels {batch_shape}, got {labels.shape}"
        )
    num_classes = logits.shape[axis]
    labels = jnp.expand_dims(labels, axis)
    classes = jax.lax.broadcasted_iota(labels.dtype, logits.shape, axis)
    one_hot = (classes == labels).astype(logits.dtype)
    loss = softmax_cross_entropy(
        logits, one_hot, axis=axis, where=where, label_smoothing=label_smoothing
    )
    in_range = jnp.squeeze((labels >= 0) & (labels < num_classes), axis)
    return jnp.where(in_range, loss, jnp.nan)
