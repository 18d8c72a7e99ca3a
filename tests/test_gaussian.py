"""Gaussian closed forms against scipy.stats.multivariate_normal and textbook formulas."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.stats import multivariate_normal, norm

import jaxent as je


def _spd(rng, d, batch=()):
    a = rng.normal(size=batch + (d, d))
    return a @ np.swapaxes(a, -1, -2) + d * np.eye(d)


def _kl_reference(mp, cp, mq, cq):
    """The closed form, evaluated with explicit inverses and slogdet (float64)."""
    d = mp.shape[-1]
    inv_q = np.linalg.inv(cq)
    diff = mq - mp
    return 0.5 * (
        np.trace(inv_q @ cp)
        + diff @ inv_q @ diff
        - d
        + np.linalg.slogdet(cq)[1]
        - np.linalg.slogdet(cp)[1]
    )


# Values eagerly and under jit (the variant fixture).


def test_entropy_matches_scipy(variant, rng):
    for d in (1, 3, 6):
        cov = _spd(rng, d)
        ref = multivariate_normal(mean=np.zeros(d), cov=cov).entropy()
        got = variant(je.gaussian_entropy)(cov)
        np.testing.assert_allclose(got, ref, rtol=1e-12)
        bits = variant(lambda c: je.gaussian_entropy(c, base=2))(cov)
        np.testing.assert_allclose(bits, ref / np.log(2), rtol=1e-12)


def test_kl_matches_closed_form(variant, rng):
    d = 4
    mp, mq = rng.normal(size=(2, d))
    cp, cq = _spd(rng, d), _spd(rng, d)
    got = variant(je.gaussian_kl_divergence)(mp, cp, mq, cq)
    np.testing.assert_allclose(got, _kl_reference(mp, cp, mq, cq), rtol=1e-10)


def test_univariate_kl_textbook():
    mp, sp_, mq, sq = 0.3, 1.7, -1.1, 0.6
    ref = np.log(sq / sp_) + (sp_**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5
    got = je.gaussian_kl_divergence(
        jnp.array([mp]), jnp.array([[sp_**2]]), jnp.array([mq]), jnp.array([[sq**2]])
    )
    np.testing.assert_allclose(got, ref, rtol=1e-13)
    np.testing.assert_allclose(
        je.gaussian_entropy(jnp.array([[sp_**2]])), norm(0, sp_).entropy(), rtol=1e-13
    )


def test_kl_of_identical_gaussians_is_zero_and_batches_broadcast(rng):
    cp = _spd(rng, 3, (5,))
    mp = rng.normal(size=(5, 3))
    np.testing.assert_allclose(je.gaussian_kl_divergence(mp, cp, mp, cp), 0.0, atol=1e-13)
    kl = je.gaussian_kl_divergence(mp, cp, np.zeros(3), np.eye(3))
    chex.assert_shape(kl, (5,))
    want = [_kl_reference(mp[i], cp[i], np.zeros(3), np.eye(3)) for i in range(5)]
    np.testing.assert_allclose(kl, want, rtol=1e-10)
    np.testing.assert_allclose(jax.vmap(je.gaussian_entropy)(cp), je.gaussian_entropy(cp))


@pytest.mark.slow
def test_gradients(rng):
    mp, mq = rng.normal(size=(2, 3))
    cp, cq = _spd(rng, 3), _spd(rng, 3)
    check_grads(lambda m: je.gaussian_kl_divergence(m, cp, mq, cq), (mp,), order=2)
    grads = jax.grad(je.gaussian_kl_divergence, argnums=(0, 1, 2, 3))(mp, cp, mq, cq)
    chex.assert_tree_all_finite(grads)
    # d/d mu_q of the KL is Sigma_q^{-1} (mu_q - mu_p).
    np.testing.assert_allclose(grads[2], np.linalg.solve(cq, mq - mp), rtol=1e-10)


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        je.gaussian_entropy(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"mean_q \(2,\)"):
        je.gaussian_kl_divergence(jnp.zeros(3), jnp.eye(3), jnp.zeros(2), jnp.eye(3))


def test_nearly_equal_gaussians_keep_relative_precision():
    # D = |dmu|^2 / 2 for unit covariances: 5e-9 for a shift of 1e-4, in float32 too.
    for dtype in (jnp.float32, jnp.float64):
        kl = je.gaussian_kl_divergence(
            jnp.zeros(2, dtype),
            jnp.eye(2, dtype=dtype),
            jnp.array([1e-4, 0.0], dtype),
            jnp.eye(2, dtype=dtype),
        )
        np.testing.assert_allclose(
            float(kl), np.float64(np.asarray(1e-4, dtype)) ** 2 / 2, rtol=1e-6
        )
    # Scaled covariance (float64): D = (s - 1 - log s) / 2 per dimension.
    s = 1 + 1e-5
    kl = je.gaussian_kl_divergence(jnp.zeros(1), jnp.eye(1) * s, jnp.zeros(1), jnp.eye(1))
    np.testing.assert_allclose(kl, (s - 1 - np.log(s)) / 2, rtol=1e-9)
