"""Tests for jaxent.losses.vocab_parallel_cross_entropy on 8 host CPU devices.

The root conftest.py asks XLA for 8 host devices before JAX starts; the class axis
of the logits is sharded over 8, 4 or 2 of them (with a batch axis beside it).
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P
from scipy import special

from jaxent import losses

# float32 against an exact float64 reference: a few ulps of the log-sum-exp.
F32_RTOL = 2e-6
# float64 against SciPy's float64, rounded in a different order.
F64_RTOL = 1e-13

B, V = 8, 32  # 32 classes: 4 per device over 8 devices


def _mesh(batch, vocab):
    if jax.device_count() < batch * vocab:
        pytest.skip(f"needs {batch * vocab} devices, got {jax.device_count()}")
    devices = jax.devices()[: batch * vocab]
    return jax.make_mesh(
        (batch, vocab), ("b", "v"), devices=devices, axis_types=(AxisType.Auto,) * 2
    )


@functools.cache
def _sharded(batch, vocab):
    """The loss over a (batch, vocab) mesh, returned once per device along "v".

    Output ``[vocab, B]``: row ``k`` is device ``k``'s copy of the per-example loss.
    """
    mesh = _mesh(batch, vocab)

    def per_device(z, y):
        return losses.vocab_parallel_cross_entropy(z, y, axis_name="v")[None]

    return jax.jit(
        jax.shard_map(per_device, mesh=mesh, in_specs=(P("b", "v"), P("b")), out_specs=P("v", "b"))
    )


@functools.cache
def _sharded_sum(batch, vocab):
    """``sum(loss)`` through shard_map (replicated output), for derivatives."""
    mesh = _mesh(batch, vocab)

    def per_device(z, y):
        loss = losses.vocab_parallel_cross_entropy(z, y, axis_name="v")
        return jax.lax.psum(jnp.sum(loss), "b")

    return jax.shard_map(per_device, mesh=mesh, in_specs=(P("b", "v"), P("b")), out_specs=P())


def _logits(seed, dtype=np.float64, b=B, v=V):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((b, v)) * 3).astype(dtype), rng.integers(0, v, size=b)


def _ref(logits, labels):
    log_p = special.log_softmax(np.asarray(logits, np.float64), axis=-1)
    return -np.take_along_axis(log_p, labels[:, None], axis=-1)[:, 0]


# ---- values --------------------------------------------------------------------------


@pytest.mark.parametrize(("batch", "vocab"), [(1, 8), (2, 4), (4, 2)])
def test_matches_reference_and_optax(batch, vocab):
    logits, labels = _logits(0, np.float32)
    out = _sharded(batch, vocab)(logits, labels)
    chex.assert_shape(out, (vocab, B))
    assert out.dtype == np.float32
    # every device along "v" holds the same loss, bit for bit
    np.testing.assert_array_equal(out, np.broadcast_to(out[0], out.shape))
    np.testing.assert_allclose(out[0], _ref(logits, labels), rtol=F32_RTOL)
    # both float32, different rounding order
    expected = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    np.testing.assert_allclose(out[0], expected, rtol=F32_RTOL)


def test_float64():
    logits, labels = _logits(1)
    out = _sharded(2, 4)(logits, labels)
    np.testing.assert_allclose(out[0], _ref(logits, labels), rtol=F64_RTOL)


def test_single_device_equals_integer_label_loss():
    logits, labels = _logits(2)
    out = _sharded(1, 1)(logits, labels)
    expected = jax.jit(losses.softmax_cross_entropy_with_integer_labels)(logits, labels)
    np.testing.assert_allclose(out[0], expected, rtol=F64_RTOL)


def test_bfloat16():
    logits, labels = _logits(3)
    z16 = jnp.asarray(logits, jnp.bfloat16)
    out = _sharded(2, 4)(z16, labels)
    assert out.dtype == jnp.bfloat16
    # the reference sees the rounded logits; one bfloat16 rounding of the result
    np.testing.assert_allclose(
        np.asarray(out[0], np.float64), _ref(np.asarray(z16), labels), rtol=2**-8
    )


def test_masked_classes_and_huge_logits():
    logits, labels = _logits(4)
    logits[0, :8] = -np.inf  # two whole shards masked on a 4-way split
    logits[1, 1::2] = -np.inf
    logits[2] *= 1e29  # magnitudes up to ~1e30
    labels[:2] = [9, 2]  # labels on unmasked classes
    out = _sharded(2, 4)(logits, labels)
    chex.assert_tree_all_finite(out)
    np.testing.assert_allclose(out[0], _ref(logits, labels), rtol=F64_RTOL)


def test_label_on_masked_class_is_inf():
    logits, labels = _logits(5)
    logits[0, 3] = -np.inf
    labels[0] = 3
    out = _sharded(2, 4)(logits, labels)
    assert out[0, 0] == np.inf
    np.testing.assert_allclose(out[0, 1:], _ref(logits, labels)[1:], rtol=F64_RTOL)


def test_confident_prediction_keeps_relative_precision():
    # loss = log1p(31 e^-30) ~ 2.9e-12, far below float32's resolution near 1.
    logits = np.zeros((B, V), np.float32)
    labels = np.arange(B) * 4
    logits[np.arange(B), labels] = 30.0
    out = _sharded(2, 4)(logits, labels)
    expected = np.log1p(31 * np.exp(-30.0))
    np.testing.assert_allclose(out[0], expected, rtol=4 * np.finfo(np.float32).eps)


def test_ties_across_shards():
    logits = np.zeros((B, V), np.float32)
    logits[:, [1, 30]] = 50.0  # equal tops on the first and last shard
    labels = np.full(B, 30)
    out = _sharded(2, 4)(logits, labels)
    np.testing.assert_allclose(out[0], np.log(2), rtol=np.finfo(np.float32).eps)


def test_out_of_range_labels_give_the_log_normalizer():
    logits, labels = _logits(6)
    labels[:3] = [-1, V, -100]
    out = _sharded(2, 4)(logits, labels)
    np.testing.assert_allclose(out[0, :3], special.logsumexp(logits[:3], axis=-1), rtol=F64_RTOL)


# ---- derivatives ---------------------------------------------------------------------


def test_gradient_equals_unsharded():
    logits, labels = _logits(10)
    logits[0, :8] = -np.inf  # masked classes get gradient 0
    logits[1] *= 1e29
    grad = jax.jit(jax.grad(_sharded_sum(2, 4)))(logits, labels)
    chex.assert_tree_all_finite(grad)
    expected = special.softmax(logits, axis=-1) - np.eye(V)[labels]
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-15)


def test_gradient_inside_shard_map_is_softmax_minus_onehot():
    logits, labels = _logits(11)
    mesh = _mesh(1, 8)
    grad_fn = jax.grad(
        lambda z, y: jnp.sum(losses.vocab_parallel_cross_entropy(z, y, axis_name="v"))
    )
    grad = jax.jit(
        jax.shard_map(grad_fn, mesh=mesh, in_specs=(P(None, "v"), P()), out_specs=P(None, "v"))
    )(logits, labels)
    expected = special.softmax(logits, axis=-1) - np.eye(V)[labels]
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-15)


def test_jvp_and_hessian_vector_product():
    logits, labels = _logits(12)
    tangent, _ = _logits(13)
    sharded = _sharded_sum(2, 4)

    def loss(z):
        return sharded(z, labels)

    def naive(z):
        return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(z, labels))

    def derivatives(fn):
        @jax.jit
        def both(z, t):
            _, jvp = jax.jvp(fn, (z,), (t,))
            _, hvp = jax.jvp(jax.grad(fn), (z,), (t,))
            return jvp, hvp

        return both(logits, tangent)

    chex.assert_trees_all_close(
        derivatives(loss),
        derivatives(naive),
        rtol=1e-11,
        atol=1e-14,
    )


# ---- errors --------------------------------------------------------------------------


def test_labels_shape_is_checked():
    mesh = _mesh(1, 2)
    fn = jax.shard_map(
        lambda z, y: losses.vocab_parallel_cross_entropy(z, y, axis_name="v"),
        mesh=mesh,
        in_specs=(P(None, "v"), P()),
        out_specs=P(),
    )
    with pytest.raises(ValueError, match=r"\(6, 4\).*\(5,\)"):
        fn(np.zeros((6, 8)), np.zeros(5, int))


def test_float_labels_are_rejected():
    with pytest.raises(TypeError, match="integer"):
        losses.vocab_parallel_cross_entropy(np.zeros((6, 8)), np.zeros(6), axis_name="v")
