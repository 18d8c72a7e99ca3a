"""Tests for jaxent.losses.fused_linear_cross_entropy against optax and float64 NumPy."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import special

import jaxent as je
from jaxent import losses

# Static options as static arguments: one compilation per shape and option set.
fused = jax.jit(losses.fused_linear_cross_entropy, static_argnames=("reduction", "chunk_size"))

# float32 against an exact float64 reference: the D-term dot products round
# (~sqrt(D) ulps of |logit|), then the log-sum-exp adds a few ulps.
F32_RTOL = 1e-5
# float64 against the float64 reference: both round, in a different order.
F64_RTOL = 1e-12
# bfloat16 results: one rounding to bfloat16 (2^-8 relative) on top of float32
# accumulation; gradients, relative to their largest entry, also carry the
# rounding of each chunk's contribution.
BF16_RTOL = 1e-2

N, D, V = 13, 6, 29  # 29 classes: chunk sizes 8 and 7 leave remainders


def _inputs(seed, n=N, d=D, v=V, dtype=np.float64, scale=1.0):
    rng = np.random.default_rng(seed)
    hidden = rng.standard_normal((n, d)) * scale
    weight = rng.standard_normal((d, v)) * scale
    labels = rng.integers(0, v, size=n)
    return hidden.astype(dtype), weight.astype(dtype), labels


def _ref_losses(hidden, weight, labels):
    """Per-row loss in float64 from the materialized logits (SciPy)."""
    logits = np.asarray(hidden, np.float64) @ np.asarray(weight, np.float64)
    log_p = special.log_softmax(logits, axis=-1)
    return -np.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]


def _naive(hidden, weight, labels, where=None, reduction="mean"):
    """The materialized optax loss, the reference for derivatives."""
    loss = optax.softmax_cross_entropy_with_integer_labels(hidden @ weight, labels)
    if where is not None:
        loss = jnp.where(where, loss, 0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return jnp.sum(loss)
    count = loss.size if where is None else jnp.maximum(jnp.sum(where), 1)
    return jnp.sum(loss) / count


# Jitted: eager op-by-op dispatch of the references costs more than their compilation.
naive = jax.jit(_naive, static_argnames="reduction")


@functools.partial(jax.jit, static_argnames="chunk_size")
def losses_and_grads(hidden, weight, labels, chunk_size=8):
    """Per-row losses and the gradients of their sum, compiled as one program."""
    fn = functools.partial(losses.fused_linear_cross_entropy, chunk_size=chunk_size)
    each = fn(hidden, weight, labels, reduction="none")
    return each, jax.grad(fn, (0, 1))(hidden, weight, labels, reduction="sum")


# ---- values --------------------------------------------------------------------------


def test_matches_optax_and_float64_reference(variant):
    hidden, weight, labels = _inputs(0, dtype=np.float32)
    fn = functools.partial(losses.fused_linear_cross_entropy, reduction="none", chunk_size=7)
    out = variant(fn)(hidden, weight, labels)
    chex.assert_shape(out, (N,))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, _ref_losses(hidden, weight, labels), rtol=F32_RTOL)
    # both float32, different rounding order
    expected = optax.softmax_cross_entropy_with_integer_labels(hidden @ weight, labels)
    np.testing.assert_allclose(out, expected, rtol=F32_RTOL)


@pytest.mark.parametrize(
    ("dtype", "chunk_size"), [(np.float32, V), (np.float64, 7), (np.float64, 1)]
)
def test_chunk_sizes(dtype, chunk_size):
    hidden, weight, labels = _inputs(1, dtype=dtype)
    out = fused(hidden, weight, labels, reduction="none", chunk_size=chunk_size)
    assert out.dtype == dtype
    rtol = F32_RTOL if dtype == np.float32 else F64_RTOL
    np.testing.assert_allclose(out, _ref_losses(hidden, weight, labels), rtol=rtol)


def test_reductions():
    hidden, weight, labels = _inputs(2)

    @jax.jit
    def all_reductions(h, w, y):
        fn = losses.fused_linear_cross_entropy
        return fn(h, w, y), fn(h, w, y, reduction="sum"), fn(h, w, y, reduction="none")

    mean, total, each = all_reductions(hidden, weight, labels)
    ref = _ref_losses(hidden, weight, labels)
    np.testing.assert_allclose(mean, ref.mean(), rtol=F64_RTOL)  # the default
    np.testing.assert_allclose(total, ref.sum(), rtol=F64_RTOL)
    np.testing.assert_allclose(each, ref, rtol=F64_RTOL)


def test_batch_axes():
    hidden, weight, labels = _inputs(4, n=12)
    out = fused(hidden.reshape(3, 4, D), weight, labels.reshape(3, 4), reduction="none")
    chex.assert_shape(out, (3, 4))
    np.testing.assert_allclose(out.reshape(-1), _ref_losses(hidden, weight, labels), rtol=F64_RTOL)


def test_vmap_matches_reference():
    hidden, weight, labels = _inputs(5, n=12)
    batched = jax.vmap(functools.partial(fused, reduction="none", chunk_size=8), (0, None, 0))
    out = batched(hidden.reshape(3, 4, D), weight, labels.reshape(3, 4))
    np.testing.assert_allclose(out.reshape(-1), _ref_losses(hidden, weight, labels), rtol=F64_RTOL)


def test_narrow_integer_labels():
    # uint8 label 10 must not also match class 266 (= 10 modulo 256).
    hidden, weight, _ = _inputs(6, v=300)
    labels = np.full(N, 10)
    out = fused(hidden, weight, labels.astype(np.uint8), reduction="none", chunk_size=128)
    np.testing.assert_allclose(out, _ref_losses(hidden, weight, labels), rtol=F64_RTOL)


# ---- masks (where) -------------------------------------------------------------------


def test_where_equals_sliced_rows():
    hidden, weight, labels = _inputs(10)
    keep = np.random.default_rng(11).random(N) < 0.6

    @jax.jit
    def mean_and_sum(h, w, y, where):
        fn = functools.partial(losses.fused_linear_cross_entropy, where=where, chunk_size=8)
        return fn(h, w, y), fn(h, w, y, reduction="sum")

    out = mean_and_sum(hidden, weight, labels, keep)
    ref = _ref_losses(hidden[keep], weight, labels[keep])
    np.testing.assert_allclose(out, (ref.mean(), ref.sum()), rtol=F64_RTOL)


def test_where_none_reduction_zeroes_masked_rows():
    hidden, weight, labels = _inputs(12)
    keep = np.arange(N) % 3 != 0
    out = fused(hidden, weight, labels, where=keep, reduction="none", chunk_size=8)
    ref = _ref_losses(hidden, weight, labels)
    np.testing.assert_allclose(out, np.where(keep, ref, 0.0), rtol=F64_RTOL)


def test_nothing_kept_gives_zero_loss_and_gradients():
    hidden, weight, labels = _inputs(13)
    keep = np.zeros(N, bool)
    out, grads = jax.jit(jax.value_and_grad(fused, (0, 1)))(hidden, weight, labels, where=keep)
    assert float(out) == 0.0
    for g in grads:
        np.testing.assert_array_equal(g, 0.0)


# ---- derivatives and memory ----------------------------------------------------------


@pytest.mark.parametrize(
    ("reduction", "chunk_size", "masked"), [("mean", 8, False), ("none", 7, True)]
)
def test_gradients_match_materialized(reduction, chunk_size, masked):
    hidden, weight, labels = _inputs(20)
    where = (np.arange(N) % 4 != 1) if masked else None
    # a random cotangent weighs the rows of "none"
    cotangent = np.random.default_rng(21).standard_normal(N if reduction == "none" else ())

    def vjp(loss, **options):
        @jax.jit
        def fn(h, w):
            out, pullback = jax.vjp(lambda h, w: loss(h, w, labels, **options), h, w)
            return pullback(jnp.asarray(cotangent, out.dtype))

        return fn(hidden, weight)

    grads = vjp(fused, where=where, reduction=reduction, chunk_size=chunk_size)
    expected = vjp(_naive, where=where, reduction=reduction)
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(g, e, rtol=1e-11, atol=1e-14)
    if masked:
        np.testing.assert_array_equal(grads[0][~where], 0.0)


def test_jvp_matches_materialized():
    hidden, weight, labels = _inputs(21)
    t_hidden, t_weight, _ = _inputs(22)

    def loss(h, w):
        return losses.fused_linear_cross_entropy(h, w, labels, reduction="none", chunk_size=7)

    out, tangent = jax.jit(lambda *a: jax.jvp(loss, a[:2], a[2:]))(
        hidden, weight, t_hidden, t_weight
    )
    exp_out, exp_tangent = jax.jvp(
        lambda h, w: naive(h, w, labels, reduction="none"),
        (hidden, weight),
        (t_hidden, t_weight),
    )
    np.testing.assert_allclose(out, exp_out, rtol=F64_RTOL)
    np.testing.assert_allclose(tangent, exp_tangent, rtol=1e-11, atol=1e-14)


def test_hessian_vector_product_matches_materialized():
    hidden, weight, labels = _inputs(23)
    t_hidden, t_weight, _ = _inputs(24)

    def hvp(loss):
        grad = jax.grad(lambda h, w: loss(h, w, labels), (0, 1))
        return jax.jit(lambda *a: jax.jvp(grad, a[:2], a[2:])[1])(
            hidden, weight, t_hidden, t_weight
        )

    out = hvp(functools.partial(losses.fused_linear_cross_entropy, chunk_size=7))
    chex.assert_trees_all_close(out, hvp(_naive), rtol=1e-10, atol=1e-13)


def test_grad_of_gradient_norm_matches_materialized():
    hidden, weight, labels = _inputs(24)

    def grad_norm(loss):
        def fn(h, w):
            g = jax.grad(loss)(w, h)  # gradient with respect to weight
            return jnp.sum(g * g)

        return fn

    fused_loss = grad_norm(lambda w, h: fused(h, w, labels, chunk_size=8))
    naive_loss = grad_norm(lambda w, h: naive(h, w, labels))
    out = jax.jit(jax.grad(fused_loss, (0, 1)))(hidden, weight)
    expected = jax.jit(jax.grad(naive_loss, (0, 1)))(hidden, weight)
    chex.assert_trees_all_close(out, expected, rtol=1e-10, atol=1e-13)


def test_logits_are_never_materialized():
    n, d, v = 96, 8, 1000  # sizes appearing nowhere else in the program
    hidden, weight, labels = _inputs(25, n=n, d=d, v=v, dtype=np.float32)
    fn = jax.value_and_grad(
        functools.partial(losses.fused_linear_cross_entropy, chunk_size=128), (0, 1)
    )
    jaxpr = str(jax.make_jaxpr(fn)(hidden, weight, labels))
    assert f"[{n},{v}]" not in jaxpr
    assert f"[{n},128]" in jaxpr  # one chunk of logits at a time


def test_temporary_memory_is_far_below_the_logits():
    n, d, v, chunk = 256, 16, 8192, 256
    args = (
        jax.ShapeDtypeStruct((n, d), jnp.float32),
        jax.ShapeDtypeStruct((d, v), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )
    fn = jax.value_and_grad(
        functools.partial(losses.fused_linear_cross_entropy, chunk_size=chunk), (0, 1)
    )
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    if stats is None:
        pytest.skip("this backend reports no memory analysis")
    # a few [n, chunk] blocks (5 on CPU), against 4 * n * v bytes for the logits alone
    assert stats.temp_size_in_bytes < 4 * n * v / 4


# ---- precision -----------------------------------------------------------------------


def test_bfloat16_close_to_float64_reference():
    # float16 takes the same path (multiply in half, accumulate in float32)
    dtype = jnp.bfloat16
    hidden, weight, labels = _inputs(30, n=32, d=16, v=300, scale=0.5)
    h16, w16 = jnp.asarray(hidden, dtype), jnp.asarray(weight, dtype)
    # the reference sees the inputs rounded to the half dtype
    h64, w64 = np.asarray(h16, np.float64), np.asarray(w16, np.float64)
    out, grads = losses_and_grads(h16, w16, labels, chunk_size=128)
    assert out.dtype == dtype
    np.testing.assert_allclose(
        np.asarray(out, np.float64), _ref_losses(h64, w64, labels), rtol=BF16_RTOL
    )
    expected = jax.jit(jax.grad(functools.partial(_naive, reduction="sum"), (0, 1)))(
        h64, w64, labels
    )
    for g, e in zip(grads, expected):
        assert g.dtype == dtype
        err = np.max(np.abs(np.asarray(g, np.float64) - e)) / np.max(np.abs(e))
        assert err < BF16_RTOL, err


@pytest.mark.parametrize(
    ("hidden_dtype", "weight_dtype", "expected"),
    [
        (jnp.bfloat16, jnp.bfloat16, jnp.bfloat16),
        (jnp.float16, jnp.float16, jnp.float16),
        (jnp.bfloat16, jnp.float32, jnp.float32),
        (jnp.float32, jnp.float64, jnp.float64),
    ],
)
def test_result_dtype(hidden_dtype, weight_dtype, expected):
    hidden, weight, labels = _inputs(31)
    out = jax.eval_shape(
        losses.fused_linear_cross_entropy,
        jnp.asarray(hidden, hidden_dtype),
        jnp.asarray(weight, weight_dtype),
        labels,
    )
    assert out.dtype == expected


def test_confident_row_keeps_relative_precision():
    # logits (0, 30, -3, 0, 1): loss = log1p(e^-30 (2 + e^-3 + e)) ~ 4.5e-13,
    # far below float32's resolution of a log-sum-exp near 30.
    hidden = np.ones((2, 1), np.float32)
    weight = np.array([[0.0, 30.0, -3.0, 0.0, 1.0]], np.float32)
    out = fused(hidden, weight, np.array([1, 1]), reduction="none", chunk_size=2)
    expected = np.log1p(np.exp(-30.0) * (2 + np.exp(-3.0) + np.e))
    np.testing.assert_allclose(out, [expected] * 2, rtol=4 * np.finfo(np.float32).eps)


def test_ties_across_chunks():
    # Two equal top logits in different chunks: loss log 2 (+ tiny terms).
    hidden = np.ones((2, 1), np.float32)
    weight = np.array([[0.0, 50.0, 0.0, 0.0, 50.0]], np.float32)
    out = fused(hidden, weight, np.array([1, 4]), reduction="none", chunk_size=2)
    np.testing.assert_allclose(out, np.log(2), rtol=np.finfo(np.float32).eps)


def test_huge_logits_are_finite():
    # float32 logits of magnitude ~1e30
    hidden, weight, labels = _inputs(32, scale=1e15, dtype=np.float32)
    out, grads = losses_and_grads(hidden, weight, labels)
    chex.assert_tree_all_finite((out, grads))
    np.testing.assert_allclose(out, _ref_losses(hidden, weight, labels), rtol=F32_RTOL)


def test_out_of_range_labels_give_the_log_normalizer():
    hidden, weight, _ = _inputs(33, dtype=np.float32)
    labels = np.array([-1, V, -100, V + 5] + [0] * (N - 4))
    out, grads = losses_and_grads(hidden, weight, labels)
    chex.assert_tree_all_finite((out, grads))
    np.testing.assert_allclose(
        out[:4],
        special.logsumexp(hidden[:4].astype(np.float64) @ weight, axis=-1),
        rtol=F32_RTOL,
    )


# ---- errors --------------------------------------------------------------------------


def test_mismatched_feature_sizes_name_them():
    with pytest.raises(ValueError, match=r"\(6\).*\(5\)"):
        losses.fused_linear_cross_entropy(np.ones((4, 6)), np.ones((5, 3)), np.zeros(4, int))


def test_mismatched_labels_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        losses.fused_linear_cross_entropy(np.ones((4, 6)), np.ones((6, 3)), np.zeros(3, int))


def test_weight_must_be_a_matrix():
    with pytest.raises(ValueError, match=r"\(6, 3, 1\)"):
        losses.fused_linear_cross_entropy(np.ones((4, 6)), np.ones((6, 3, 1)), np.zeros(4, int))


def test_where_shape():
    with pytest.raises(ValueError, match=r"\(4,\).*\(2,\)"):
        losses.fused_linear_cross_entropy(
            np.ones((4, 6)), np.ones((6, 3)), np.zeros(4, int), where=np.ones(2, bool)
        )


def test_float_labels_are_rejected():
    with pytest.raises(TypeError, match="integer"):
        losses.fused_linear_cross_entropy(np.ones((4, 6)), np.ones((6, 3)), np.zeros(4))


@pytest.mark.parametrize(
    "options",
    [{"reduction": "max"}, {"chunk_size": 0}, {"chunk_size": 2.0}],
    ids=["reduction=max", "chunk_size=0", "chunk_size=2.0"],
)
def test_bad_options(options):
    with pytest.raises(ValueError):
        losses.fused_linear_cross_entropy(
            np.ones((4, 6)), np.ones((6, 3)), np.zeros(4, int), **options
        )


def test_checked_reports_nan():
    hidden, weight, labels = _inputs(40)
    hidden[0, 0] = np.nan
    with pytest.raises(ValueError, match="hidden contains NaN"):
        je.checked(losses.fused_linear_cross_entropy)(hidden, weight, labels)


# Issue 8: the default block comes from the shapes, so that the temporaries of value
# and gradient stay at most 1/8 of the materialized path's (a fixed 2,048 classes
# took 1/4 of them at V = 16,384 and 1/7.97 at V = 32,768).
def _temp_bytes(loss, n, d, v):
    args = (
        jax.ShapeDtypeStruct((n, d), jnp.float32),
        jax.ShapeDtypeStruct((d, v), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )
    stats = jax.jit(jax.value_and_grad(loss, (0, 1))).lower(*args).compile().memory_analysis()
    if stats is None:
        pytest.skip("this backend reports no memory analysis")
    return stats.temp_size_in_bytes


@pytest.mark.parametrize(
    ("n", "d", "v", "limit"),
    [
        (2048, 32, 16384, 1 / 8),  # the 1/8 where a block of 2,048 classes took 1/4
        (8192, 64, 131072, 0.05),  # the large vocabulary (D = 4,096 there)
    ],
)
def test_default_block_keeps_temporaries_a_fraction_of_the_materialized_path(n, d, v, limit):
    # compiled only, never run: XLA's own count of the temporaries (the [N, V] logits
    # and their gradient on the materialized path)
    fused_temp = _temp_bytes(losses.fused_linear_cross_entropy, n, d, v)
    naive_temp = _temp_bytes(_naive, n, d, v)
    assert naive_temp >= 2 * 4 * n * v  # the logits and their gradient, float32
    assert fused_temp <= limit * naive_temp, (fused_temp, naive_temp)


def test_auto_chunk_size_from_shapes_and_backend():
    from jaxent.losses._fused import auto_chunk_size

    # 1/32 of the classes at the sizes, powers of two, at most the ceiling
    assert auto_chunk_size(2048, 32768, platform="cpu") == 1024
    assert auto_chunk_size(2048, 16384, platform="cpu") == 512
    assert auto_chunk_size(8192, 131072, platform="cpu") == 512  # 16 MiB blocks
    assert auto_chunk_size(8192, 131072, platform="gpu") == 2048  # 64 MiB blocks
    # few rows: blocks of 256 KiB on a CPU (4 MiB on a GPU), not 32 tiny ones
    assert auto_chunk_size(16, 32768, platform="cpu") == 4096
    assert auto_chunk_size(16, 32768, platform="gpu") == 32768
    assert auto_chunk_size(64, 100_000, platform="cpu") == 2048
    # few classes: one block
    assert auto_chunk_size(13, 29, platform="cpu") == 29
    assert auto_chunk_size(0, 1000, platform="cpu") == 1000
    assert auto_chunk_size(10**6, 1000, platform="tpu") == 128  # never under a lane width


def test_default_block_matches_reference_over_several_blocks():
    # 8192 rows x 1000 classes: the default takes blocks of 128 classes (8 blocks,
    # the last one shifted), against SciPy's float64 log-softmax.
    hidden, weight, labels = _inputs(50, n=8192, d=4, v=1000)
    out = fused(hidden, weight, labels, reduction="none")
    np.testing.assert_allclose(out, _ref_losses(hidden, weight, labels), rtol=F64_RTOL)
