"""Chi-squared, Bhattacharyya and Chernoff against SciPy, closed forms and mpmath
(40 digits), in float64; gradients against central differences."""

import chex
import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
import scipy.stats as st

import jaxent as je
from tests.utils import random_probs

# Sums of n = 6 non-negative terms (chi-squared, Bhattacharyya): a few ulps.
RTOL = 1e-14
# Chernoff: Rényi divergence at the optimum (its own few-ulp accuracy) plus the
# optimum's position, found to the last bit and entering the value only quadratically.
CHERNOFF_RTOL = 1e-13


def _mp(x):
    return [mp.mpf(float(v)) for v in x]


def _bhattacharyya_ref(p, q):
    with mp.workdps(40):
        return mp.fsum(mp.sqrt(a * b) for a, b in zip(_mp(p), _mp(q)))


def _chernoff_ref(p, q):
    """max over alpha of -log sum p^a q^(1-a), by mpmath root finding on the slope."""
    with mp.workdps(40):
        pairs = [(a, b) for a, b in zip(_mp(p), _mp(q)) if a > 0 and b > 0]

        def f(t):
            return -mp.log(mp.fsum(a**t * b ** (1 - t) for a, b in pairs))

        def slope(t):  # -f'(t): the mean of log(p/q) under w ~ p^t q^(1-t)
            w = [a**t * b ** (1 - t) for a, b in pairs]
            return mp.fsum(wi * mp.log(a / b) for wi, (a, b) in zip(w, pairs)) / mp.fsum(w)

        if slope(0) >= 0:
            return f(0)
        if slope(1) <= 0:
            return f(1)
        return f(mp.findroot(slope, (mp.mpf(0), mp.mpf(1)), solver="anderson"))


@pytest.fixture
def pair(rng):
    p = random_probs(rng, (4, 6), zeros=0.2)
    q = random_probs(rng, (4, 6), zeros=0.0)
    return p, q


def test_chi_squared_against_scipy(pair):
    p, q = pair
    ref = [st.chisquare(a, b).statistic for a, b in zip(p, q)]
    np.testing.assert_allclose(je.chi_squared_divergence(p, q), ref, rtol=RTOL)


def test_bhattacharyya_against_mpmath(pair):
    p, q = pair
    bc = [_bhattacharyya_ref(a, b) for a, b in zip(p, q)]
    np.testing.assert_allclose(je.bhattacharyya_coefficient(p, q), np.array(bc, float), rtol=RTOL)
    dist = np.array([-mp.log(c) for c in bc], float)
    np.testing.assert_allclose(je.bhattacharyya_distance(p, q), dist, rtol=RTOL)
    np.testing.assert_allclose(je.bhattacharyya_distance(p, q, base=2), dist / np.log(2), rtol=RTOL)


def test_chernoff_against_mpmath(pair):
    p, q = pair
    q = q.copy()
    q[0, 1:3] = 0.0  # a support mismatch: some p_i > 0 where q_i = 0
    q[0] /= q[0].sum()
    ref = np.array([_chernoff_ref(a, b) for a, b in zip(p, q)], float)
    np.testing.assert_allclose(je.chernoff_information(p, q), ref, rtol=CHERNOFF_RTOL)
    np.testing.assert_allclose(je.chernoff_information(q, p), ref, rtol=CHERNOFF_RTOL)


def test_chernoff_closed_forms_and_bounds(pair):
    # Disjoint but for one event: -log of the smaller mass there (1 bit here).
    assert float(je.chernoff_information([1.0, 0.0], [0.5, 0.5], base=2)) == pytest.approx(1.0)
    # Two Bernoullis p, q: the optimum solves a closed form; compare with mpmath.
    assert float(je.chernoff_information([0.9, 0.1], [0.2, 0.8])) == pytest.approx(
        float(_chernoff_ref([0.9, 0.1], [0.2, 0.8])), rel=CHERNOFF_RTOL
    )
    p, q = pair
    c = je.chernoff_information(p, q)
    # C >= -log sum sqrt(pq) (alpha = 1/2) and C <= min(KL(p||q), KL(q||p)) where finite.
    assert np.all(c >= je.bhattacharyya_distance(p, q) * (1 - 1e-15))
    assert np.all(c <= np.minimum(je.kl_divergence(p, q), je.kl_divergence(q, p)))
    assert je.chernoff_information(p[0], p[0]) == 0.0


@pytest.mark.parametrize("delta", [2.0**-20, 2.0**-30])
def test_nearly_equal_distributions_keep_relative_precision(delta):
    # Sums exactly 1 in float64, so that the exact value of the inputs is the reference.
    p = np.array([0.25, 0.75, 0.0])
    q = np.array([0.25 + delta, 0.75 - delta, 0.0])
    np.testing.assert_allclose(
        je.chi_squared_divergence(p, q),
        delta**2 / (0.25 + delta) + delta**2 / (0.75 - delta),
        rtol=RTOL,
    )
    bd = float(-mp.log(_bhattacharyya_ref(p, q)))
    np.testing.assert_allclose(je.bhattacharyya_distance(p, q), bd, rtol=1e-12)
    np.testing.assert_allclose(
        je.chernoff_information(p, q), float(_chernoff_ref(p, q)), rtol=1e-11
    )


def test_support_mismatch_is_inf_never_nan():
    p, q = jnp.array([0.5, 0.5, 0.0]), jnp.array([0.0, 0.5, 0.5])
    assert je.chi_squared_divergence(p, q) == jnp.inf
    assert je.chi_squared_divergence(q, q) == 0.0
    disjoint = jnp.array([0.0, 0.0, 1.0])
    assert je.bhattacharyya_coefficient(p.at[1].set(0).at[0].set(1), disjoint) == 0.0
    for fn in (je.bhattacharyya_distance, je.chernoff_information):
        assert fn(jnp.array([1.0, 0.0, 0.0]), disjoint) == jnp.inf
    fns = (
        je.chi_squared_divergence,
        je.bhattacharyya_coefficient,
        je.bhattacharyya_distance,
        je.chernoff_information,
    )
    grads = {fn: jax.jit(jax.grad(fn, argnums=(0, 1))) for fn in fns}
    for fn in fns:
        for a, b in [(p, q), (jnp.array([1.0, 0.0, 0.0]), disjoint), (p, p)]:
            chex.assert_tree_all_finite(grads[fn](a, b))


@pytest.mark.slow  # compiling the second derivatives of eight measures: about a minute
def test_gradients_match_central_differences(rng):
    # probabilities away from 0, so that the differences' truncation error stays small
    p, q = rng.dirichlet(np.full(5, 5.0)), rng.dirichlet(np.full(5, 5.0))
    v = rng.normal(size=5)
    eps = 1e-5
    fns = (
        je.chi_squared_divergence,
        je.bhattacharyya_coefficient,
        je.bhattacharyya_distance,
        je.chernoff_information,
    )

    @jax.jit
    def along(t):  # every measure with p, then q, moved along v
        return jnp.stack([fn(p + t * v, q) for fn in fns] + [fn(p, q + t * v) for fn in fns])

    first = jax.jit(jax.jacfwd(along))(0.0)
    second = jax.jit(jax.jacfwd(jax.jacrev(along)))(0.0)
    f = [np.asarray(along(t)) for t in (-eps, 0.0, eps)]
    # central differences: error ~ eps^2 f''' + rounding/eps (first),
    # eps^2 f'''' + rounding/eps^2 (second)
    np.testing.assert_allclose(first, (f[2] - f[0]) / (2 * eps), rtol=1e-6)
    np.testing.assert_allclose(second, (f[2] - 2 * f[1] + f[0]) / eps**2, rtol=1e-4)


def test_axis_where_jit_vmap(pair):
    p, q = pair
    for fn in (
        je.chi_squared_divergence,
        je.bhattacharyya_coefficient,
        je.bhattacharyya_distance,
        je.chernoff_information,
    ):
        ref = fn(p, q)
        np.testing.assert_allclose(fn(p.T, q.T, axis=0), ref, rtol=RTOL)
        np.testing.assert_allclose(jax.jit(fn)(p, q), ref, rtol=RTOL)
        np.testing.assert_allclose(jax.vmap(fn)(p, q), ref, rtol=RTOL)
        keep = np.ones(6, bool)
        keep[2] = False
        np.testing.assert_allclose(fn(p, q, where=keep), fn(p[:, keep], q[:, keep]), rtol=RTOL)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_computed_in_float32(dtype):
    p, q = jnp.array([0.5, 0.5], dtype), jnp.array([0.25, 0.75], dtype)
    for fn, ref in [
        (je.chi_squared_divergence, 1 / 3),
        (je.bhattacharyya_coefficient, np.sqrt(0.125) + np.sqrt(0.375)),
        (je.chernoff_information, float(_chernoff_ref([0.5, 0.5], [0.25, 0.75]))),
    ]:
        got = fn(p, q)
        assert got.dtype == dtype
        np.testing.assert_allclose(float(got), ref, rtol=float(jnp.finfo(dtype).eps))
