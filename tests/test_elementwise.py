"""Bernoulli measures against scipy.special (float64)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sp
from jax.test_util import check_grads

import jaxent as je

RTOL = 1e-13  # one or two roundings in float64


def _probs(rng, n=64):
    p = rng.random(n)
    p[:4] = [0.0, 1.0, 0.5, 1e-300]
    return p


@pytest.fixture
def pq(rng):
    return _probs(rng), rng.random(64)


# Values eagerly and under jit (the variant fixture).


def test_surprisal(variant, pq):
    p, _ = pq
    with np.errstate(divide="ignore"):
        ref = -np.log(p)
    np.testing.assert_allclose(variant(je.surprisal)(p), ref, rtol=RTOL)
    bits = variant(lambda p: je.surprisal(p, base=2))(p)
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(bits, -np.log2(p), rtol=RTOL)


def test_binary_entropy(variant, pq):
    p, _ = pq
    # entr(1 - p) would lose the term ~p at p = 1e-300; xlog1py keeps it.
    ref = sp.entr(p) - sp.xlog1py(1 - p, -p)
    np.testing.assert_allclose(variant(je.binary_entropy)(p), ref, rtol=RTOL)


def test_binary_cross_entropy(variant, pq):
    p, q = pq
    ref = -sp.xlogy(p, q) - sp.xlog1py(1 - p, -q)
    got = variant(je.binary_cross_entropy)(p, q)
    np.testing.assert_allclose(got, ref, rtol=RTOL)


def test_binary_kl_divergence(variant, pq):
    p, q = pq
    ref = sp.rel_entr(p, q) + sp.rel_entr(1 - p, 1 - q)
    got = variant(je.binary_kl_divergence)(p, q)
    # rel_entr itself rounds log(p/q) and the two terms can cancel: 1e-11.
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-300)


def test_endpoints_are_exact():
    np.testing.assert_array_equal(je.binary_entropy(jnp.array([0.0, 1.0])), [0.0, 0.0])
    assert je.binary_entropy(0.5, base=2) == 1.0
    assert je.surprisal(0.0) == jnp.inf
    assert je.surprisal(1.0) == 0.0


def test_support_mismatch_is_inf():
    np.testing.assert_array_equal(
        je.binary_cross_entropy(jnp.array([1.0, 0.0, 0.5]), jnp.array([0.0, 1.0, 1.0])), jnp.inf
    )
    np.testing.assert_array_equal(
        je.binary_kl_divergence(jnp.array([1.0, 0.0, 0.5]), jnp.array([0.0, 1.0, 1.0])), jnp.inf
    )
    assert je.binary_kl_divergence(1.0, 1.0) == 0.0
    assert je.binary_cross_entropy(1.0, 1.0) == 0.0


@pytest.mark.parametrize(
    "fn", [je.binary_entropy, je.binary_cross_entropy, je.binary_kl_divergence]
)
def test_gradients_finite_at_the_edges(fn):
    p = jnp.array([0.0, 1.0, 0.0, 1.0, 0.3])
    q = jnp.array([0.0, 1.0, 0.4, 0.6, 0.3])
    args = (p,) if fn is je.binary_entropy else (p, q)
    grads = jax.grad(lambda *a: jnp.sum(fn(*a)), argnums=tuple(range(len(args))))(*args)
    chex.assert_tree_all_finite(grads)
    if fn is je.binary_kl_divergence:
        # d/dq of D(p||q) is (q - p) / (q (1 - q)); 0 at p = q (also at the edges).
        np.testing.assert_allclose(grads[1], [1.0, -1.0, 1 / 0.6, -0.4 / 0.24, 0.0], rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(
    "fn", [je.binary_entropy, je.binary_cross_entropy, je.binary_kl_divergence, je.surprisal]
)
def test_check_grads(fn):
    p, q = jnp.array([0.1, 0.5, 0.93]), jnp.array([0.2, 0.45, 0.9])
    args = (p,) if fn in (je.binary_entropy, je.surprisal) else (p, q)
    check_grads(jax.jit(fn), args, order=2, modes=["fwd", "rev"])  # one program per derivative


def test_vmap_and_broadcast():
    p = jnp.linspace(0.0, 1.0, 11)
    q = jnp.linspace(0.05, 0.95, 7)
    grid = je.binary_kl_divergence(p[:, None], q[None, :])
    chex.assert_shape(grid, (11, 7))
    np.testing.assert_allclose(jax.vmap(je.binary_kl_divergence, (0, None))(p, q), grid)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_dtype_is_kept(dtype):
    p = jnp.asarray([0.1, 0.5, 0.99], dtype)
    for fn in (je.surprisal, je.binary_entropy):
        assert fn(p).dtype == dtype
    assert je.binary_cross_entropy(p, p).dtype == dtype
    # Small p in half precision: computed in float32, so -p log p is not lost.
    tiny = jnp.asarray(1e-4, dtype)
    ref = float(je.binary_entropy(np.float64(tiny)))
    np.testing.assert_allclose(
        float(je.binary_entropy(tiny)), ref, rtol=float(jnp.finfo(dtype).eps)
    )


def test_shape_mismatch_names_the_shapes():
    for fn in (je.binary_cross_entropy, je.binary_kl_divergence):
        with pytest.raises(ValueError, match=r"p \(3,\), q \(4,\)"):
            jax.jit(fn)(jnp.full(3, 0.5), jnp.full(4, 0.5))
