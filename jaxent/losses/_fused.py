"""Cross-entropy of a linear layer's output, without materializing the logits."""

from __future__ import annotations

import math
from typing import Literal, get_args

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxent import _numerics
from jaxent.checks import expects, jit_public

# How fused_linear_cross_entropy reduces the per-row losses (its ``reduction`` option).
Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS: tuple[Reduction, ...] = get_args(Reduction)

# Sizes of one [N, chunk] block of logits, in elements (4 bytes each in float32).
# On a CPU, measured at N = 64, 512 and 2,048 (V = 32,768; noisy, a shared machine):
# blocks of 256 to 2,048 classes take the same time, larger ones up to 1.4x longer;
# so a block is never larger than 16 MiB, and not split below 256 KiB (a few rows: a
# few blocks, not many tiny ones). On GPU and TPU, where every block costs kernel
# launches, larger bounds (a guess, not measured).
_BLOCK_FLOOR = {"cpu": 2**16}
_BLOCK_FLOOR_ACCELERATOR = 2**20
_BLOCK_CEILING = {"cpu": 2**22}
_BLOCK_CEILING_ACCELERATOR = 2**24
_LOGITS_FRACTION = 32  # a block is at most 1/32 of the [N, V] logits
_MIN_CHUNK = 128  # a TPU's lane width; narrower products waste the matrix unit


def auto_chunk_size(rows: int, num_classes: int, *, platform: str | None = None) -> int:
    """Classes per block for ``rows`` rows and ``num_classes`` classes on a backend.

    A power of two (at least 128, at most ``num_classes``), as large as allowed by:

    * memory: a ``[rows, chunk]`` block is at most 1/32 of the ``[rows, V]``
      logits. A few blocks are alive at once (4 in XLA's CPU schedule), so the
      value and gradient need about 1/16 of the temporaries of the materialized
      path, which keeps the logits and their gradient;
    * speed: a block holds at most 16 MiB of float32 logits on a CPU (64 MiB on GPU
      and TPU), where larger matrix products are no faster; memory then falls
      further for large ``rows * V``;
    * small problems: blocks under 256 KiB on a CPU (4 MiB on GPU and TPU) are not
      split further, so that a few rows take a few blocks, not many tiny ones.

    Args:
      rows: ``N``, the number of rows (all batch axes together).
      num_classes: ``V``.
      platform: ``"cpu"``, ``"gpu"``, ``"tpu"``...; ``None`` for
        :func:`jax.default_backend`.

    Returns:
      The block size, a Python int.

    Examples:
      >>> from jaxent.losses._fused import auto_chunk_size
      >>> auto_chunk_size(2048, 32768, platform="cpu")
      1024
      >>> auto_chunk_size(8192, 131072, platform="cpu")
      512
      >>> auto_chunk_size(8192, 131072, platform="gpu")
      2048
      >>> auto_chunk_size(16, 32768, platform="cpu")  # a few rows: blocks of 256 KiB
      4096
    """
    platform = jax.default_backend() if platform is None else platform
    floor = _BLOCK_FLOOR.get(platform, _BLOCK_FLOOR_ACCELERATOR)
    ceiling = _BLOCK_CEILING.get(platform, _BLOCK_CEILING_ACCELERATOR)
    rows = max(rows, 1)
    target = max(num_classes // _LOGITS_FRACTION, floor // rows)
    target = min(target, ceiling // rows)
    chunk = max(_MIN_CHUNK, 1 << (max(target, 1).bit_length() - 1))  # a power of 2 <= target
    return min(chunk, num_classes)


def _check_inputs(
    hidden: jax.Array, weight: jax.Array, labels: jax.Array, where: ArrayLike | None
) -> jax.Array | None:
    """Validates dtypes and shapes at trace time; returns the mask as a boolean array."""
    _numerics.floating("hidden", hidden)
    _numerics.floating("weight", weight)
    _numerics.class_ids("labels", labels)
    if hidden.ndim < 1 or weight.ndim != 2:
        raise ValueError(
            f"hidden must be [..., D] and weight [D, V]; got hidden {hidden.shape} "
            f"and weight {weight.shape}"
        )
    if hidden.shape[-1] != weight.shape[0]:
        raise ValueError(
            f"hidden's last axis ({hidden.shape[-1]}) must match weight's first axis "
            f"({weight.shape[0]}): hidden {hidden.shape}, weight {weight.shape}"
        )
    if weight.shape[1] == 0:
        raise ValueError(f"weight needs at least one class; got weight {weight.shape}")
    if labels.shape != hidden.shape[:-1]:
        raise ValueError(
            f"labels must have the shape of hidden without its last axis: hidden "
            f"{hidden.shape} needs labels {hidden.shape[:-1]}, got {labels.shape}"
        )
    if where is None:
        return None
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
        raise TypeError(f"where must be a boolean mask, got dtype {where.dtype}")
    if where.shape != labels.shape:
        raise ValueError(f"where must have the shape of labels {labels.shape}, got {where.shape}")
    return where


def _chunked_logsumexp(
    hidden: jax.Array, weight: jax.Array, labels: jax.Array, chunk_size: int, work: jnp.dtype
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One pass over vocabulary chunks: ``(top, rest, label_logit)`` per row.

    ``logsumexp(logits) = top + log1p(rest)``, where ``top`` is the row's largest
    logit (under ``stop_gradient``; the value does not depend on it) and ``rest``
    sums ``exp(logit - top)`` over all classes but one copy of the top. Keeping the
    top's ``exp(0) = 1`` out of the sum lets ``log1p`` keep the relative precision of
    a confident row's small loss. Only one ``[N, chunk]`` block of logits lives at
    a time, in the forward pass and (through ``jax.checkpoint``) in the backward
    pass, which recomputes each block from the small per-row carries.
    """
    num_classes = weight.shape[1]
    num_chunks = -(-num_classes // chunk_size)
    starts = jnp.arange(num_chunks, dtype=labels.dtype) * chunk_size
    in_dtype = weight.dtype
    rows = hidden.shape[0]

    def body(carry, start):
        top, rest, label_logit = carry
        # Blocks are sliced in place (no copy of weight; the weight gradient is
        # accumulated in place by XLA). The last block is shifted left to fit, and
        # the classes it shares with the block before are masked out.
        offset = jnp.minimum(start, num_classes - chunk_size)
        w = jax.lax.dynamic_slice_in_dim(weight, offset, chunk_size, axis=1)
        # Half precision multiplies in its own dtype and accumulates in float32.
        z = jnp.matmul(hidden.astype(in_dtype), w, preferred_element_type=work)
        classes = offset + jax.lax.broadcasted_iota(labels.dtype, z.shape, 1)
        is_label = classes == labels[:, None]
        if num_classes % chunk_size:
            seen = classes < start
            z = jnp.where(seen, -jnp.inf, z)
            is_label = is_label & ~seen
        new_top = jax.lax.stop_gradient(jnp.maximum(top, jnp.max(z, axis=1)))
        wins = new_top > top
        chunk_rest, num_ties = _numerics.sum_exp_off_top(z, new_top)
        # When the top moves into this chunk, one of its ties is the new top's 1.
        old = jnp.where(wins, (1 + rest) * jnp.exp(top - new_top), rest)
        rest = old + chunk_rest + (num_ties - wins.astype(work))
        label_logit = label_logit + jnp.sum(jnp.where(is_label, z, 0), axis=1)
        return (new_top, rest, label_logit), None

    init = (
        jnp.full((rows,), -jnp.inf, work),
        jnp.zeros((rows,), work),
        jnp.zeros((rows,), work),
    )
    carry, _ = jax.lax.scan(jax.checkpoint(body, prevent_cse=False), init, starts)
    return carry


@jit_public
@expects(hidden="finite", weight="finite", labels="classes")
def fused_linear_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
    chunk_size: int | None = None,
) -> jax.Array:
    r"""Cross-entropy of ``hidden @ weight`` against integer labels, chunked over classes.

    The loss of an output layer (language-model head) computed without the
    ``[N, V]`` logits: a :func:`jax.lax.scan` over blocks of ``chunk_size``
    classes keeps a running maximum, the rescaled sum of exponentials and the
    label's logit per row (an online log-sum-exp), and :func:`jax.checkpoint`
    makes the backward pass recompute each block of logits instead of storing
    it. Memory beyond the inputs and their gradients is a few ``[N, chunk_size]``
    blocks, in the forward pass, under :func:`jax.grad` and :func:`jax.jvp`
    alike; higher derivatives work too. The result equals
    :func:`softmax_cross_entropy_with_integer_labels` of ``hidden @ weight``:

    .. math::
        \ell_n = \log \sum_{v=1}^{V} \exp(h_n^\top w_v) - h_n^\top w_{y_n} ,

    where :math:`w_v` is column :math:`v` of ``weight``, reduced over the rows
    that ``where`` keeps.

    Half-precision inputs are multiplied in their own dtype with float32
    accumulation (``preferred_element_type``), and the log-sum-exp runs in
    float32; the loss has the inputs' (promoted) floating dtype. A label outside
    ``[0, V)`` matches no class: its row's loss is the log-sum-exp of its logits
    (finite, never NaN; the gradient is the softmax);
    :func:`jaxent.checked` reports such labels. Rows to ignore, such as
    padding marked ``-100`` in PyTorch's convention, belong in ``where``
    (``where=labels >= 0``).

    Args:
      hidden: activations ``[..., D]`` (``[N, D]`` for ``N`` rows); floating.
      weight: output projection ``[D, V]`` for ``V`` classes; floating.
      labels: integer class ids, the shape of ``hidden`` without its last axis.
      where: boolean mask with the shape of ``labels``; rows where it is False
        have loss 0, no gradient, and do not count in the mean.
      reduction: ``"mean"`` (over the kept rows; 0 when none is kept), ``"sum"``
        or ``"none"``.
      chunk_size: classes per block (static). ``None`` (the default) chooses it
        from ``N``, ``V`` and the backend: a power of two near ``V / 32``, so that
        the temporaries of value and gradient stay under 1/8 of the materialized
        path's, with blocks of 256 KiB to 16 MiB of float32 logits on a CPU (4 to
        64 MiB on GPU and TPU). Larger blocks make bigger matrix products and take
        more memory: about ``N * chunk_size`` float32 values per live block.
        ``V`` need not be a multiple of it.

    Returns:
      A scalar for ``"mean"`` and ``"sum"``; the loss per row, shaped like
      ``labels``, for ``"none"``. In the floating dtype of ``hidden`` and
      ``weight`` promoted together.

    Raises:
      TypeError: at trace time, for ``hidden`` or ``weight`` of a non-floating
        dtype, ``labels`` of a non-integer dtype, or a non-boolean ``where``.
      ValueError: at trace time, for shapes other than ``hidden [..., D]``,
        ``weight [D, V]`` (``V >= 1``) and ``labels`` (and ``where``) shaped like
        ``hidden`` without its last axis, an unknown ``reduction``, or a
        ``chunk_size`` that is not a positive int or None.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> hidden = jnp.array([[1.0, -0.5], [0.2, 0.3], [-1.0, 2.0]])
      >>> weight = jnp.array([[0.5, -1.0, 0.3, 0.0], [1.5, 0.2, -0.7, 0.4]])
      >>> labels = jnp.array([0, 3, 1])
      >>> loss = je.losses.fused_linear_cross_entropy(hidden, weight, labels, chunk_size=3)
      >>> print(f"{float(loss):.4f}")
      1.5089
      >>> print(je.losses.fused_linear_cross_entropy(
      ...     hidden, weight, labels, reduction="none").round(4))
      [1.597  1.4041 1.5256]
      >>> grads = jax.grad(je.losses.fused_linear_cross_entropy, argnums=(0, 1))(
      ...     hidden, weight, labels)
      >>> print(grads[1].shape)
      (2, 4)

    References:
      Wijmans et al., *Cut Your Losses in Large-Vocabulary Language Models*,
      ICLR 2025 (arXiv:2411.09009). Milakov and Gimelshein, *Online normalizer
      calculation for softmax*, 2018 (arXiv:1805.02867).
    """
    hidden = jnp.asarray(hidden)
    weight = jnp.asarray(weight)
    labels = jnp.asarray(labels)
    where = _check_inputs(hidden, weight, labels, where)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")

    work, dtype = _numerics.compute_dtype(hidden, weight)
    batch_shape = labels.shape
    dim, num_classes = weight.shape
    # Activations in the work dtype so that their gradient accumulates in it across
    # chunks; each block casts them back to the input dtype for the product.
    flat_hidden = hidden.reshape(math.prod(batch_shape), dim).astype(work)
    # Class ids are compared with block offsets: no narrow integer overflow.
    flat_labels = labels.reshape(-1)
    if flat_labels.dtype.itemsize < 4:
        flat_labels = flat_labels.astype(jnp.int32)
    if chunk_size is None:
        chunk_size = auto_chunk_size(flat_labels.size, num_classes)
    top, rest, label_logit = _chunked_logsumexp(
        flat_hidden,
        weight.astype(dtype),
        flat_labels,
        min(chunk_size, num_classes),
        work,
    )
    # Both terms come from the same logits: for a label in range the loss is >= 0,
    # and exactly log1p(rest) when the label holds the top logit.
    loss = (top - label_logit) + jnp.log1p(rest)
    if where is not None:
        keep = where.reshape(-1)
        loss = jnp.where(keep, loss, 0)
    if reduction == "none":
        return loss.reshape(batch_shape).astype(dtype)
    total = jnp.sum(loss)
    if reduction == "sum":
        return total.astype(dtype)
    count = loss.size if where is None else jnp.sum(keep)
    return (total / jnp.maximum(count, 1).astype(work)).astype(dtype)
