"""The worked examples of the two seed blog posts, exactly, without epsilon hacks."""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxent as je

P = jnp.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 0], jnp.float32)
Q = jnp.array([0.01, 0.02, 0.75, 0.05, 0.02, 0.1, 0.001, 0.02, 0.009, 0.02], jnp.float32)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_coins(dtype):
    fair = jnp.array([0.5, 0.5], dtype)
    heads = jnp.array([1.0, 0.0], dtype)
    assert je.entropy(fair, base=2) == 1.0
    assert je.binary_entropy(jnp.asarray(0.5, dtype), base="bits") == 1.0
    assert je.entropy(heads, base=2) == 0.0  # exactly, not 2.98e-08
    assert je.binary_entropy(jnp.asarray(1.0, dtype), base=2) == 0.0


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_biased_belief_about_a_fair_coin(dtype):
    # p = (0.5, 0.5), q = (0.7, 0.3): H(p, q) = -0.5 log2 0.7 - 0.5 log2 0.3 = 1.12577 bits.
    p, q = jnp.array([0.5, 0.5], dtype), jnp.array([0.7, 0.3], dtype)
    exact = -0.5 * np.log2(0.7) - 0.5 * np.log2(0.3)
    rtol = 1e-6 if dtype == jnp.float32 else 1e-15
    np.testing.assert_allclose(je.cross_entropy(p, q, base=2), exact, rtol=rtol)
    np.testing.assert_allclose(je.binary_cross_entropy(p[0], q[0], base=2), exact, rtol=rtol)
    assert round(float(je.cross_entropy(p, q, base=2)), 5) == 1.12577
    assert je.cross_entropy(p, q, base=2) > je.entropy(p, base=2)


def test_mnist_like_one_hot_example():
    assert je.entropy(P, base=2) == 0.0
    kl = je.kl_divergence(P, Q, base=2)
    ce = je.cross_entropy(P, Q, base=2)
    exact = -np.log2(0.75)  # 0.4150374992788438
    # float32: the correctly rounded value of 0.41503749928 is 0.41503751278 (1/2 ulp).
    ulp = np.spacing(np.float32(exact))
    assert abs(float(kl) - exact) <= ulp and abs(float(ce) - exact) <= ulp
    assert je.kl_divergence(P, P, base=2) == 0.0
    # float64: both agree with the exact value to the last bits, 0.415037 to 6 places.
    p64, q64 = np.asarray(P, np.float64), np.asarray(Q, np.float64)
    kl64, ce64 = je.kl_divergence(p64, q64, base=2), je.cross_entropy(p64, q64, base=2)
    assert abs(float(kl64) - exact) <= 2 * np.finfo(np.float64).eps
    assert round(float(kl64), 6) == round(float(ce64), 6) == 0.415037
    assert je.entropy(p64) == 0.0


def test_surprisal_in_bits_and_nats():
    assert je.surprisal(0.5, base=2) == 1.0
    np.testing.assert_allclose(je.surprisal(0.5), np.log(2), rtol=1e-15)
    np.testing.assert_allclose(je.surprisal(0.25, base="bits"), 2.0)
