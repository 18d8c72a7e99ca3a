"""Sigmoid (binary) cross-entropy with optax's signature and PyTorch's ``pos_weight``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxent import _numerics
from jaxent.checks import expects, jit_public


@jit_public
@expects(logits="finite", labels="unit")
def sigmoid_binary_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    pos_weight: ArrayLike | None = None,
) -> jax.Array:
    r"""Elementwise cross-entropy of labels in ``[0, 1]`` against ``sigmoid(logits)``.

    A drop-in replacement for :func:`optax.losses.sigmoid_binary_cross_entropy`
    (nats, no reduction), with PyTorch's ``pos_weight``
    (``torch.nn.BCEWithLogitsLoss``): with :math:`w` = ``pos_weight``,

    .. math::
        \ell = -\bigl(w\, y \log \sigma(x) + (1 - y) \log(1 - \sigma(x))\bigr).

    Both logs are taken as ``log_sigmoid(x)`` and ``log_sigmoid(-x)``, so the loss
    and its gradient stay finite for logits up to ``±1e30``; an infinite logit is a
    certain prediction (loss 0 when it agrees with the label, ``+inf`` otherwise,
    finite gradients in both cases).

    Args:
      logits: log-odds of the positive class; floating.
      labels: targets in ``[0, 1]`` (hard or soft), broadcastable against
        ``logits``; cast to ``logits``' dtype.
      pos_weight: weight of the positive term, broadcastable (e.g. one per class
        in multi-label problems); 1 when None.

    Returns:
      The loss per element, of the broadcast shape, in ``logits``' dtype.

    Raises:
      TypeError: at trace time, for ``logits`` of a non-floating dtype.
      ValueError: at trace time, for ``logits``, ``labels`` and ``pos_weight``
        whose shapes do not broadcast.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxent import losses
      >>> logits = jnp.array([2.0, -1.0, 0.0])
      >>> labels = jnp.array([1.0, 1.0, 0.0])
      >>> print(losses.sigmoid_binary_cross_entropy(logits, labels).round(4))
      [0.1269 1.3133 0.6931]
      >>> print(losses.sigmoid_binary_cross_entropy(logits, labels, pos_weight=2.0).round(4))
      [0.2539 2.6265 0.6931]

    References:
      I. Goodfellow, Y. Bengio and A. Courville, *Deep Learning*, MIT Press,
      2016, section 6.2.2 (sigmoid units).
    """
    logits = _numerics.floating("logits", logits)
    labels = jnp.asarray(labels, logits.dtype)
    weight = jnp.ones((), logits.dtype) if pos_weight is None else pos_weight
    weight = jnp.asarray(weight, logits.dtype)
    arrays = _numerics.broadcast_all(logits=logits, labels=labels, pos_weight=weight)
    (x, y, w), out_dtype = _numerics.promote(*arrays)
    # log(1 - sigmoid(x)) = log_sigmoid(-x), the latter more numerically stable
    positive = _numerics.xmul_log(w * y, jax.nn.log_sigmoid(x))
    negative = _numerics.xmul_log(1 - y, jax.nn.log_sigmoid(-x))
    return (-(positive + negative)).astype(out_dtype)
