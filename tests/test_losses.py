"""Tests for jaxent.losses against optax and float64 NumPy/SciPy references."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import special

import jaxent as je
from jaxent import losses

# Jitted once per input shape: far fewer compilations than eager op-by-op dispatch.
sce = jax.jit(losses.softmax_cross_entropy, static_argnames="axis")
sce_int = jax.jit(losses.softmax_cross_entropy_with_integer_labels, static_argnames="axis")
sbce = jax.jit(losses.sigmoid_binary_cross_entropy)


def _jit_grad(fn):
    return jax.jit(jax.grad(fn))


# float32 results against an exact float64 reference: a few ulps of the loss
# (log-softmax and log1p each round once, the class sum adds a few more).
F32_RTOL = 2e-6
# float64 results against SciPy's float64: the references round too.
F64_RTOL = 1e-13


def _random(seed, shape, dtype=np.float64, scale=3.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def _probs(seed, shape, zeros=True):
    """Random rows of probabilities with exact zeros in them."""
    rng = np.random.default_rng(seed)
    p = rng.random(shape)
    if zeros:
        p[rng.random(shape) < 0.3] = 0.0
    p[..., 0] += 1e-3  # no all-zero row
    return p / p.sum(-1, keepdims=True)


def _ref_softmax_ce(logits, labels, axis=-1):
    return -np.sum(labels * special.log_softmax(logits, axis=axis), axis=axis)


def _ref_sigmoid_bce(logits, labels, pos_weight=1.0):
    return -(
        pos_weight * labels * special.log_expit(logits) + (1 - labels) * special.log_expit(-logits)
    )


# ---- softmax_cross_entropy -----------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_scipy_reference(variant, dtype):
    logits = _random(0, (6, 5))
    labels = _probs(1, (6, 5))
    out = variant(losses.softmax_cross_entropy)(logits.astype(dtype), labels.astype(dtype))
    chex.assert_shape(out, (6,))
    assert out.dtype == dtype
    rtol = F32_RTOL if dtype == np.float32 else F64_RTOL
    # the reference sees the inputs rounded to dtype
    ref = _ref_softmax_ce(logits.astype(dtype).astype(np.float64), labels.astype(dtype))
    np.testing.assert_allclose(out, ref, rtol=rtol)


def test_matches_optax(variant):
    logits = _random(2, (4, 3, 7)).astype(np.float32)
    labels = _probs(3, (4, 3, 7)).astype(np.float32)
    out = variant(losses.softmax_cross_entropy)(logits, labels)
    # both float32, different rounding order
    np.testing.assert_allclose(out, optax.losses.softmax_cross_entropy(logits, labels), rtol=1e-5)


def test_gradients_match_optax():
    logits = _random(40, (4, 6))
    labels = _probs(41, (4, 6))
    ints = np.array([0, 5, 2, 3])
    pairs = [
        (lambda z: sce(z, labels).sum(), optax.losses.softmax_cross_entropy, labels),
        (
            lambda z: sce_int(z, ints).sum(),
            optax.losses.softmax_cross_entropy_with_integer_labels,
            ints,
        ),
        (lambda z: sbce(z, labels).sum(), optax.losses.sigmoid_binary_cross_entropy, labels),
    ]
    for ours, theirs, target in pairs:
        np.testing.assert_allclose(
            _jit_grad(ours)(logits),
            jax.grad(lambda z, f=theirs, t=target: f(z, t).sum())(logits),
            rtol=1e-12,
            atol=1e-15,
        )


@pytest.mark.parametrize("alpha", [0.1, 0.5, 1.0])
def test_label_smoothing_matches_optax_smooth_labels(alpha):
    logits = _random(4, (5, 6))
    labels = _probs(5, (5, 6))
    out = sce(logits, labels, label_smoothing=alpha)
    ref = optax.losses.softmax_cross_entropy(logits, optax.smooth_labels(labels, alpha))
    np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_where_equals_sliced_input():
    logits = _random(6, (4, 6))
    labels = _probs(7, (4, 6))
    keep = np.array([True, False, True, True, False, True])
    labels[:, ~keep] = 0.0
    out = sce(logits, labels, where=keep[None, :], label_smoothing=0.2)
    sliced = sce(logits[:, keep], labels[:, keep], label_smoothing=0.2)
    np.testing.assert_allclose(out, sliced, rtol=1e-14)


def test_where_matches_optax():
    logits = _random(8, (3, 5))
    labels = _probs(9, (3, 5))
    keep = np.random.default_rng(10).random((3, 5)) < 0.7
    keep[:, 0] = True
    labels = np.where(keep, labels, 0.0)
    out = sce(logits, labels, where=keep)
    ref = optax.losses.softmax_cross_entropy(logits, labels, where=keep)
    np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_neg_inf_logits_act_as_a_mask():
    logits = _random(11, (4, 5))
    labels = _probs(12, (4, 5))
    labels[:, 2] = 0.0
    masked = logits.copy()
    masked[:, 2] = -np.inf
    out = sce(masked, labels)
    keep = (np.arange(5) != 2)[None, :]  # as many dimensions as logits: a class mask
    np.testing.assert_allclose(out, sce(logits, labels, where=keep))
    grads = _jit_grad(lambda z: sce(z, labels).sum())(masked)
    chex.assert_tree_all_finite(grads)
    np.testing.assert_array_equal(grads[:, 2], 0.0)


def test_mass_on_neg_inf_logit_is_inf_with_finite_gradient():
    logits = np.array([0.0, -np.inf, 1.0])
    labels = np.array([0.5, 0.5, 0.0])
    assert sce(logits, labels) == np.inf
    chex.assert_tree_all_finite(_jit_grad(losses.softmax_cross_entropy)(logits, labels))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_have_finite_values_and_gradients(dtype):
    logits = np.array([[1e30, -1e30, 0.0], [-1e30, -1e30, 1e30], [1e30, 1e30, -1e30]], dtype)
    labels = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.5, 0.5, 0.0]], dtype)
    out = sce(logits, labels)
    np.testing.assert_allclose(out, [0.0, 1e30, np.log(2)], rtol=1e-6)
    grads = _jit_grad(lambda z: sce(z, labels, label_smoothing=0.1).sum())(logits)
    chex.assert_tree_all_finite(grads)


def test_confident_prediction_keeps_relative_precision():
    # -log softmax(z)_0 = log1p(2 e^-40) ~ 8.5e-18: lost if formed as log(1 + s)
    out = sce(np.float32([40.0, 0.0, 0.0]), np.float32([1.0, 0.0, 0.0]))
    np.testing.assert_allclose(out, 2 * np.exp(-40.0), rtol=F32_RTOL)


def test_axis_equals_moveaxis():
    logits = _random(13, (5, 3, 4))
    labels = _probs(14, (3, 4, 5))
    labels = np.moveaxis(labels, -1, 0)
    out = sce(logits, labels, axis=0)
    ref = sce(np.moveaxis(logits, 0, -1), np.moveaxis(labels, 0, -1))
    np.testing.assert_allclose(out, ref, rtol=1e-14)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_keeps_dtype(dtype):
    logits = jnp.asarray(_random(15, (3, 4)), dtype)
    labels = jnp.asarray(_probs(16, (3, 4)), dtype)
    out = sce(logits, labels)
    assert out.dtype == dtype
    ref = _ref_softmax_ce(np.asarray(logits, np.float64), np.asarray(labels, np.float64))
    np.testing.assert_allclose(np.asarray(out, np.float64), ref, rtol=1e-2)


def test_shape_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        sce(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\(5,\)"):
        sce(jnp.zeros((2, 3)), jnp.zeros((2, 3)), where=jnp.ones(5, bool))


def test_bad_smoothing_and_dtype_are_rejected():
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.softmax_cross_entropy(jnp.zeros(3), jnp.ones(3) / 3, label_smoothing=1.5)
    with pytest.raises(TypeError, match="floating"):
        sce(jnp.zeros(3, jnp.int32), jnp.ones(3) / 3)


# ---- softmax_cross_entropy_with_integer_labels ---------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_integer_labels_match_optax_and_scipy(variant, dtype):
    logits = _random(20, (8, 6)).astype(dtype)
    labels = np.random.default_rng(21).integers(0, 6, 8)
    out = variant(losses.softmax_cross_entropy_with_integer_labels)(logits, labels)
    chex.assert_shape(out, (8,))
    ref = -special.log_softmax(logits.astype(np.float64), axis=-1)[np.arange(8), labels]
    rtol = F32_RTOL if dtype == np.float32 else F64_RTOL
    np.testing.assert_allclose(out, ref, rtol=rtol)
    opt = optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels)
    np.testing.assert_allclose(out, opt, rtol=10 * rtol)


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_integer_labels_equal_one_hot_version(alpha):
    logits = _random(22, (2, 5, 4))
    labels = np.random.default_rng(23).integers(0, 4, (2, 5))
    keep = np.array([True, True, False, True])
    out = sce_int(logits, labels, where=keep, label_smoothing=alpha)
    ref = sce(logits, jax.nn.one_hot(labels, 4), where=keep, label_smoothing=alpha)
    np.testing.assert_allclose(out, ref, rtol=1e-14)


def test_integer_labels_axis():
    logits = _random(24, (4, 3))
    labels = np.array([0, 2, 1])
    out = sce_int(logits, labels, axis=0)
    ref = sce_int(logits.T, labels)
    np.testing.assert_allclose(out, ref, rtol=1e-14)


def test_out_of_range_labels_give_nan_and_zero_gradient():
    logits = _random(25, (4, 3))
    labels = np.array([0, 3, -1, 2])
    out = sce_int(logits, labels)
    np.testing.assert_array_equal(np.isnan(out), [False, True, True, False])
    grads = _jit_grad(lambda z: jnp.nansum(sce_int(z, labels)))(logits)
    chex.assert_tree_all_finite(grads)
    np.testing.assert_array_equal(grads[1:3], 0.0)


def test_integer_labels_extreme_and_masking_logits_have_finite_gradients():
    logits = np.array([[1e30, -1e30, -np.inf], [-np.inf, 0.0, 1e30]], np.float32)
    labels = np.array([0, 1])
    out = sce_int(logits, labels)
    np.testing.assert_allclose(out, [0.0, 1e30], rtol=1e-6)
    grads = jax.grad(lambda z: sce_int(z, labels, label_smoothing=0.1).sum())(logits)
    chex.assert_tree_all_finite(grads)


# Hard rows for the integer-label loss: a confident label, ties at the maximum with and
# without the label, a label just below the maximum, huge logits, masks, a long row.
_HARD_INT_ROWS = [
    ([40.0, 0.0, 0.0], 0),
    ([5.0, 5.0, 0.0], 0),
    ([5.0, 5.0, 0.0], 1),
    ([5.0, 5.0, 5.0, -3.0], 2),
    ([5.0, 5.0, 0.0], 2),
    ([1.0, 0.99999, -20.0], 1),
    ([3e29, 1e30, -1e30, 0.0], 1),
    ([3e29, 1e30, -1e30, 0.0], 0),
    ([-np.inf, 2.0, -np.inf, 1.0], 3),
    ([30.0] + [0.0] * 999, 0),
    ([0.5] * 1000, 7),
]


_grad_at_label = jax.jit(jax.grad(sce_int))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_integer_labels_hard_rows_against_mpmath(dtype):
    # The loss within the accuracy targets (float32 1e-6, float64 1e-14 relative) and
    # the gradient softmax - one_hot within a few ulps (absolute at the label, where
    # it is 1/(1 + R) - 1, as in optax), against 50-digit mpmath.
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    for row, label in _HARD_INT_ROWS:
        z = np.array(row, dtype)
        exact = [mpmath.mpf(float(v)) for v in z if v != -np.inf]
        live = [i for i, v in enumerate(z) if v != -np.inf]
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in exact))
        want = float(lse - mpmath.mpf(float(z[label])))
        y = np.int32(label)
        got = float(sce_int(z, y))
        np.testing.assert_allclose(got, want, rtol=rtol, err_msg=f"{row[:5]}, label {label}")
        grad = np.asarray(_grad_at_label(z, y), np.float64)
        soft = np.zeros(len(z))
        for i, v in zip(live, exact):
            soft[i] = float(mpmath.exp(v - lse))
        soft[label] -= 1
        atol = 4 * np.finfo(dtype).eps
        np.testing.assert_allclose(grad, soft, rtol=8 * rtol, atol=atol, err_msg=f"{row[:5]}")


def test_integer_labels_shape_and_dtype_errors():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2,\).*\(3,\)"):
        sce_int(jnp.zeros((2, 3)), jnp.zeros(3, jnp.int32))
    with pytest.raises(TypeError, match="integer"):
        sce_int(jnp.zeros((2, 3)), jnp.zeros(2))


# ---- sigmoid_binary_cross_entropy ----------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_matches_optax_and_scipy(variant, dtype):
    logits = _random(30, (5, 4), scale=10.0).astype(dtype)
    labels = np.random.default_rng(31).random((5, 4)).astype(dtype)
    labels[0] = 0.0
    labels[1] = 1.0
    out = variant(losses.sigmoid_binary_cross_entropy)(logits, labels)
    assert out.dtype == dtype
    ref = _ref_sigmoid_bce(logits.astype(np.float64), labels.astype(np.float64))
    # |logits| up to ~30: the two terms can cancel a little, so use an absolute floor
    tol = 4e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(
        out, optax.losses.sigmoid_binary_cross_entropy(logits, labels), rtol=tol, atol=tol
    )


@pytest.mark.parametrize("weight", [0.5, 3.0])
def test_pos_weight_matches_pytorch_formula(weight):
    logits = _random(32, (6,), scale=5.0)
    labels = np.random.default_rng(33).random(6)
    out = sbce(logits, labels, pos_weight=weight)
    np.testing.assert_allclose(out, _ref_sigmoid_bce(logits, labels, weight), rtol=1e-13)


def test_per_class_pos_weight_broadcasts():
    logits = _random(34, (3, 2))
    labels = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    weight = np.array([2.0, 0.5])
    out = sbce(logits, labels, pos_weight=weight)
    np.testing.assert_allclose(out, _ref_sigmoid_bce(logits, labels, weight), rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_extreme_logits(dtype):
    logits = np.array([1e30, -1e30, 1e30, -1e30, np.inf, -np.inf, np.inf, -np.inf], dtype)
    labels = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0], dtype)
    out = sbce(logits, labels, pos_weight=2.0)
    np.testing.assert_allclose(out, [0, 0, 1e30, 2e30, 0, 0, np.inf, np.inf], rtol=1e-6)
    for fn in (
        lambda z: sbce(z, labels).sum(),
        lambda z: sbce(z, labels, pos_weight=2.0).sum(),
    ):
        chex.assert_tree_all_finite(_jit_grad(fn)(logits))


def test_sigmoid_half_precision_keeps_dtype():
    out = sbce(jnp.float16([3.0, -2.0]), jnp.float16([1.0, 0.0]))
    assert out.dtype == jnp.float16
    np.testing.assert_allclose(
        np.asarray(out, np.float64),
        _ref_sigmoid_bce(np.array([3.0, -2.0]), np.array([1.0, 0.0])),
        rtol=1e-3,
    )


def test_sigmoid_shape_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        sbce(jnp.zeros((2, 3)), jnp.zeros(4))


# ---- all three losses ----------------------------------------------------------------


def test_optax_example_mask_and_tuple_axis():
    """optax's per-example ``where`` (the loss's shape) and a tuple ``axis``."""
    rng = np.random.default_rng(40)
    logits = rng.normal(size=(6, 6))  # batch size equals the number of classes
    labels = rng.dirichlet(np.ones(6), size=6)
    rows = np.array([True, False, True, True, False, True])
    out = losses.softmax_cross_entropy(logits, labels, where=rows)
    ref = optax.losses.softmax_cross_entropy(logits, labels, where=rows)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(out[~rows], 0.0)
    ids = rng.integers(0, 6, size=6)
    out = losses.softmax_cross_entropy_with_integer_labels(logits, ids, where=rows)
    ref = optax.losses.softmax_cross_entropy_with_integer_labels(logits, ids, where=rows)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-15)
    # A tuple of class axes, flattened in order (optax's docstring example).
    z = np.arange(24, dtype=np.float64).reshape(1, 2, 3, 4)
    flat = np.ravel_multi_index((np.array([[1, 2]]), np.array([[1, 3]])), (3, 4))
    out = losses.softmax_cross_entropy_with_integer_labels(z, flat, axis=(2, 3))
    ref = optax.losses.softmax_cross_entropy_with_integer_labels(z, flat, axis=(2, 3))
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    np.testing.assert_allclose(out, [[6.4587, 0.4587]], atol=1e-4)
    probs = rng.dirichlet(np.ones(12), size=(1, 2)).reshape(1, 2, 3, 4)
    out = losses.softmax_cross_entropy(z, probs, axis=(2, 3))
    ref = optax.losses.softmax_cross_entropy(z, probs, axis=(2, 3))
    np.testing.assert_allclose(out, ref, rtol=1e-12)


@pytest.mark.parametrize(
    "fn",
    [
        lambda z: losses.softmax_cross_entropy(z, jnp.zeros_like(z)),
        lambda z: losses.softmax_cross_entropy_with_integer_labels(z, jnp.zeros(z.shape[:-1], int)),
        lambda z: je.entropy_from_logits(z),
        lambda z: je.cross_entropy_from_logits(jnp.zeros_like(z), z),
        lambda z: je.kl_divergence_from_logits(z, z),
    ],
)
def test_empty_class_axis_gives_zero(fn):
    """optax's own mask test sometimes draws logits of shape [n, 0]: the loss is 0."""
    out = fn(jnp.zeros((3, 0)))
    chex.assert_shape(out, (3,))
    np.testing.assert_array_equal(out, 0.0)
