"""Cross-entropy when the class axis of the logits is sharded across devices."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxent import _numerics
from jaxent.checks import expects


@expects(logits="finite")
def vocab_parallel_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis_name: str | tuple[str, ...],
) -> jax.Array:
    r"""Integer-label cross-entropy of class-sharded logits, inside ``shard_map``.

    For a model whose output layer is split over devices along the classes
    (Megatron-style vocabulary parallelism): each device along mesh axis
    ``axis_name`` holds a contiguous block of ``V_local`` classes, device ``k``
    classes ``[k V_local, (k + 1) V_local)``. Called inside
    :func:`jax.shard_map`, it computes

    .. math::
        \ell = \log \sum_{v=1}^{V} \exp(z_v) - z_y

    over all ``V`` classes with two collectives on ``[batch]``-sized arrays (a
    ``pmax`` and one ``psum``), never gathering the logits. The maximum is taken
    under ``stop_gradient`` (the loss does not depend on it), so the gradient on
    each shard is that shard's block of ``softmax(z) - onehot(y)``. As in
    :func:`softmax_cross_entropy_with_integer_labels`, ``-inf`` logits mask
    classes (a label on a masked class has loss ``+inf``), logits as large as
    ``1e30`` give finite values and gradients, the largest term of the sum is
    kept out of ``log1p`` so that a confident prediction's small loss keeps its
    relative precision, and half precision is computed in float32. A label
    outside ``[0, V)`` matches no class: its loss is the log-sum-exp of the
    logits (finite, never NaN).

    Args:
      logits: this device's block of the logits, ``[..., V_local]``; floating.
      labels: global class ids in ``[0, V)``, the same on every device along
        ``axis_name``, shaped like ``logits`` without the class axis.
      axis_name: the mesh axis (or tuple of axes) the class axis is sharded over.

    Returns:
      The loss per example, shaped like ``labels`` and the same on every device
      along ``axis_name``, in ``logits``' dtype.

    Raises:
      TypeError: at trace time, for ``logits`` of a non-floating dtype or
        ``labels`` of a non-integer dtype.
      ValueError: at trace time, for scalar ``logits`` or ``labels`` not shaped
        like ``logits`` without the class axis.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from jax.sharding import PartitionSpec as P
      >>> import jaxent as je
      >>> devices = jax.devices()[:2]
      >>> mesh = jax.make_mesh((len(devices),), ("v",), devices=devices,
      ...                      axis_types=(jax.sharding.AxisType.Auto,))
      >>> logits = jnp.array([[1.2, -0.8, -0.5, 0.3], [0.9, -1.2, 1.1, -jnp.inf]])
      >>> labels = jnp.array([0, 2])
      >>> loss_fn = jax.shard_map(
      ...     lambda z, y: je.losses.vocab_parallel_cross_entropy(z, y, axis_name="v"),
      ...     mesh=mesh, in_specs=(P(None, "v"), P()), out_specs=P())
      >>> print(loss_fn(logits, labels).round(4))
      [0.545  0.6518]

    References:
      Shoeybi et al., *Megatron-LM: Training Multi-Billion Parameter Language
      Models Using Model Parallelism*, 2019 (arXiv:1909.08053), section 3.
    """
    logits = _numerics.floating("logits", logits)
    labels = _numerics.class_ids("labels", labels)
    if logits.ndim == 0 or labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels must have the shape of logits without the class axis: logits "
            f"{logits.shape} needs labels {logits.shape[:-1]}, got {labels.shape}"
        )
    (z,), dtype = _numerics.promote(logits)
    local_classes = z.shape[-1]
    if labels.dtype.itemsize < 4:  # global ids and offsets do not fit narrow ints
        labels = labels.astype(jnp.int32)
    offset = jax.lax.axis_index(axis_name).astype(labels.dtype) * local_classes

    top = jax.lax.pmax(jax.lax.stop_gradient(jnp.max(z, axis=-1)), axis_name)
    rest, num_ties = _numerics.sum_exp_off_top(z, top)
    classes = offset + jax.lax.broadcasted_iota(labels.dtype, z.shape, z.ndim - 1)
    label_logit = jnp.sum(jnp.where(classes == labels[..., None], z, 0), axis=-1)
    rest, num_ties, label_logit = jax.lax.psum((rest, num_ties, label_logit), axis_name)
    # One tie is the top's own exp(0) = 1; a row of -inf logits has none (loss +inf).
    loss = (top - label_logit) + jnp.log1p(rest + jnp.maximum(num_ties - 1, 0))
    loss = jnp.where(num_ties > 0, loss, jnp.inf)
    return loss.astype(dtype)
