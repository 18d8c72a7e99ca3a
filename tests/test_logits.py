"""Measures from logits against SciPy/optax in float64, with -inf masks and huge logits."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special as sp
import scipy.stats as st
from jax.test_util import check_grads

import jaxent as je
from tests.utils import random_probs

RTOL = 1e-12


@pytest.fixture
def logits(rng):
    """Two batches of logits and a batch of probabilities with zeros: z1, z2, p."""
    z1 = rng.normal(scale=3.0, size=(5, 12))
    z2 = rng.normal(scale=3.0, size=(5, 12))
    return z1, z2, random_probs(rng, (5, 12))


# Values eagerly and under jit (the variant fixture).


def test_entropy_from_logits(variant, logits):
    z1, _, _ = logits
    got = variant(je.entropy_from_logits)(z1)
    np.testing.assert_allclose(got, st.entropy(sp.softmax(z1, -1), axis=-1), rtol=RTOL)


def test_cross_entropy_from_logits(variant, logits):
    z1, _, p = logits
    got = variant(je.cross_entropy_from_logits)(p, z1)
    ref = -np.sum(p * sp.log_softmax(z1, -1), axis=-1)
    np.testing.assert_allclose(got, ref, rtol=RTOL)
    np.testing.assert_allclose(got, optax.softmax_cross_entropy(z1, p), rtol=RTOL)


def test_kl_divergence_from_logits(variant, logits):
    z1, z2, _ = logits
    got = variant(je.kl_divergence_from_logits)(z1, z2)
    ref = st.entropy(sp.softmax(z1, -1), sp.softmax(z2, -1), axis=-1)
    np.testing.assert_allclose(got, ref, rtol=1e-11)


def test_minus_inf_logits_equal_slicing(rng):
    z, z2 = rng.normal(size=(2, 4, 7))
    p = random_probs(rng, (4, 7))
    masked, masked2 = z.copy(), z2.copy()
    masked[:, 5:], masked2[:, 5:] = -np.inf, -np.inf
    p5 = random_probs(rng, (4, 5))
    pm = np.concatenate([p5, np.zeros((4, 2))], -1)
    np.testing.assert_allclose(je.entropy_from_logits(masked), je.entropy_from_logits(z[:, :5]))
    np.testing.assert_allclose(
        je.cross_entropy_from_logits(pm, masked), je.cross_entropy_from_logits(p5, z[:, :5])
    )
    np.testing.assert_allclose(
        je.kl_divergence_from_logits(masked, masked2),
        je.kl_divergence_from_logits(z[:, :5], z2[:, :5]),
    )
    keep = np.arange(7) < 5
    np.testing.assert_allclose(
        je.cross_entropy_from_logits(p, z, where=keep),
        je.cross_entropy_from_logits(p[:, :5], z[:, :5]),
    )
    np.testing.assert_allclose(
        je.entropy_from_logits(z, where=keep), je.entropy_from_logits(z[:, :5])
    )


@pytest.mark.parametrize("scale", [1.0, 1e4, 1e30])
def test_gradients_finite_with_masks_and_huge_logits(scale, rng):
    z = rng.normal(size=(3, 6)) * scale
    z[:, 0] = -np.inf
    z[0, 1] = scale  # ties and extremes
    z[0, 2] = scale
    z2 = rng.normal(size=(3, 6)) * scale
    z2[:, 0] = -np.inf
    p = random_probs(rng, (3, 6))
    p[:, 0] = 0.0
    p /= p.sum(-1, keepdims=True)
    fns = {
        "entropy": lambda z, z2: je.entropy_from_logits(z),
        "cross_entropy": lambda z, z2: je.cross_entropy_from_logits(p, z),
        "kl": lambda z, z2: je.kl_divergence_from_logits(z, z2),
        "kl_reversed": lambda z, z2: je.kl_divergence_from_logits(z2, z),
    }
    for name, fn in fns.items():
        value = fn(z, z2)
        assert not jnp.any(jnp.isnan(value)), name
        grads = jax.grad(lambda a, b, fn=fn: jnp.sum(fn(a, b)), argnums=(0, 1))(z, z2)
        chex.assert_tree_all_finite(grads)


def test_confident_cross_entropy_keeps_precision():
    # -log softmax(z)_0 = log1p(exp(-20) + exp(-25)); naive log-softmax rounds it.
    z = np.array([20.0, 0.0, -5.0], np.float32)
    got = je.cross_entropy_from_logits(np.array([1.0, 0.0, 0.0], np.float32), z)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(float(got), np.log1p(np.exp(-20.0) + np.exp(-25.0)), rtol=1e-6)


def test_support_mismatch_from_logits_is_inf():
    z = jnp.array([0.0, -jnp.inf])
    assert je.cross_entropy_from_logits(jnp.array([0.5, 0.5]), z) == jnp.inf
    assert je.kl_divergence_from_logits(jnp.array([0.0, 0.0]), z) == jnp.inf
    assert je.kl_divergence_from_logits(z, jnp.array([0.0, 0.0])) == pytest.approx(np.log(2))


@pytest.mark.parametrize(
    "fn", [je.entropy_from_logits, je.kl_divergence_from_logits, je.cross_entropy_from_logits]
)
@pytest.mark.slow
def test_check_grads(fn, rng):
    z1, z2 = rng.normal(size=(2, 3, 5))
    p = random_probs(rng, (3, 5), zeros=0.0)
    args = {
        je.entropy_from_logits: (z1,),
        je.kl_divergence_from_logits: (z1, z2),
        je.cross_entropy_from_logits: (p, z1),
    }[fn]
    check_grads(jax.jit(fn), args, order=2, modes=["fwd", "rev"])  # one program per derivative


def test_shift_invariance_and_vmap(rng):
    z = rng.normal(size=(6, 9))
    np.testing.assert_allclose(
        je.entropy_from_logits(z + 1e3), je.entropy_from_logits(z), rtol=1e-10
    )
    np.testing.assert_allclose(jax.vmap(je.entropy_from_logits)(z), je.entropy_from_logits(z))


def test_shape_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        je.cross_entropy_from_logits(jnp.ones((2, 3)) / 3, jnp.zeros((2, 4)))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_half_precision_logits(dtype, rng):
    z1, z2 = (jnp.asarray(a, dtype) for a in rng.normal(scale=3.0, size=(2, 4, 16)))
    p = jnp.asarray(random_probs(rng, (4, 16)), dtype)
    cases = {
        "entropy": (je.entropy_from_logits, (z1,)),
        "cross_entropy": (je.cross_entropy_from_logits, (p, z1)),
        "kl": (je.kl_divergence_from_logits, (z1, z2)),
    }
    for name, (fn, args) in cases.items():
        got = fn(*args)
        assert got.dtype == dtype, name
        ref = fn(*(np.asarray(a, np.float64) for a in args))  # same inputs, float64
        # Computed in float32, rounded once to the output dtype.
        rtol = 2 * float(jnp.finfo(dtype).eps) + 1e-6
        np.testing.assert_allclose(
            np.asarray(got, np.float64), ref, rtol=rtol, atol=1e-6, err_msg=name
        )


@pytest.mark.slow
@pytest.mark.parametrize("scale", [1.0, 1e30])
def test_second_order_finite_with_masks(scale):
    z = jnp.array([2.0, -jnp.inf, 0.5, -1.0]) * jnp.array([scale, 1.0, 1.0, scale])
    z2 = jnp.array([1.0, -jnp.inf, 0.0, -1.0])
    p = jnp.array([0.2, 0.0, 0.3, 0.5])
    fns = [
        je.entropy_from_logits,
        lambda z: je.cross_entropy_from_logits(p, z),
        lambda z: je.kl_divergence_from_logits(z, z2),
        lambda z: je.kl_divergence_from_logits(z2, z),
    ]
    # Each derivative jitted: one compiled program instead of one per primitive.
    for fn in fns:
        chex.assert_tree_all_finite(jax.jit(jax.hessian(fn))(z))  # forward over reverse
        chex.assert_tree_all_finite(jax.jit(jax.jacrev(jax.jacrev(fn)))(z))


@pytest.mark.parametrize("big", [1e4, 1e6, 1e10, 1e30])
def test_kl_from_logits_with_a_confident_p(big):
    # P is one-hot (to rounding), Q uniform over 3: D = log 3, whatever the logit size.
    zp = jnp.array([big, 0.0, 0.0], jnp.float32)
    got = je.kl_divergence_from_logits(zp, jnp.zeros(3, jnp.float32))
    np.testing.assert_allclose(float(got), np.log(3), rtol=1e-6)


def test_gradients_finite_for_logits_of_magnitude_1e30():
    """Logits such as [1e30, -1e30, 0, 5, -3e29] (float32) gave NaN gradients."""
    z = jnp.array([1e30, -1e30, 0.0, 5.0, -3e29], jnp.float32)
    z2 = jnp.array([-1e30, 1e30, 1.0, 0.0, 2e29], jnp.float32)
    for fn in (
        je.entropy_from_logits,
        lambda a: je.kl_divergence_from_logits(a, z2),
        lambda a: je.kl_divergence_from_logits(z2, a),
        lambda a: je.cross_entropy_from_logits(jax.nn.softmax(z2), a),
    ):
        g = jax.grad(fn)(z)
        chex.assert_tree_all_finite(g)
    # A certain prediction has entropy 0 and, to first order, no change in it.
    np.testing.assert_array_equal(jax.grad(je.entropy_from_logits)(z), 0.0)
