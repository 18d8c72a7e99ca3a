"""Unit tests of the private numerical kernels in ``jaxent._numerics``.

References are exact: ``math.fsum`` (correctly rounded sums), ``fractions.Fraction``
(exact rational arithmetic on the float inputs) and mpmath at 40 digits. Each kernel
is checked in float32 and float64, at the branch points of its series, and where the
public measures rely on its derivative.
"""

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

from jaxent import _numerics as nx

DTYPES = [jnp.float32, jnp.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_two_sum_is_error_free(rng, dtype):
    # Magnitudes over many binades, both signs: s + e == a + b exactly, s == fl(a + b).
    a = (rng.standard_normal(2000) * 10.0 ** rng.integers(-8, 8, 2000)).astype(dtype)
    b = (rng.standard_normal(2000) * 10.0 ** rng.integers(-8, 8, 2000)).astype(dtype)
    s, e = jax.jit(nx.two_sum)(a, b)
    s, e = np.asarray(s), np.asarray(e)
    np.testing.assert_array_equal(s, (a + b).astype(dtype))
    for ai, bi, si, ei in zip(a, b, s, e, strict=True):
        assert Fraction(float(si)) + Fraction(float(ei)) == Fraction(float(ai)) + Fraction(
            float(bi)
        )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 1000, 5000])
def test_accurate_sum_against_fsum(rng, dtype, n):
    # Heavily cancelling terms: a + (-a) pairs of mixed scales plus a small remainder,
    # where a plain sum loses every significant bit.
    big = rng.standard_normal(n) * 1e6
    x = np.concatenate([big, -big[::-1], rng.standard_normal(n) * 1e-3])
    x = rng.permutation(x).astype(dtype)
    got = float(nx.accurate_sum(jnp.asarray(x), -1))
    want = math.fsum(map(float, x))
    eps = float(jnp.finfo(dtype).eps)
    # The documented bound: about eps |sum| + eps^2 sum |x| (here with a factor 4).
    bound = 4 * (eps * abs(want) + eps**2 * float(np.sum(np.abs(x.astype(np.float64)))))
    assert abs(got - want) <= bound, (got, want, bound)


def test_accurate_sum_with_minus_and_axis(rng):
    p = rng.dirichlet(np.ones(300), size=3)
    q = rng.dirichlet(np.ones(300), size=3)
    got = nx.accurate_sum(jnp.asarray(p.T), 0, jnp.asarray(q.T))
    want = [math.fsum([*pi, *(-qi)]) for pi, qi in zip(p, q, strict=True)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-17)
    # Its derivative is the plain sum's.
    grad = jax.grad(lambda x: nx.accurate_sum(x, -1))(jnp.asarray(p[0]))
    np.testing.assert_array_equal(grad, np.ones(300))


def test_xlogy_and_xlog1my_at_zero():
    assert float(nx.xlogy(jnp.float64(0), jnp.float64(0))) == 0.0
    assert float(nx.xlog1my(jnp.float64(0), jnp.float64(1))) == 0.0
    gx, gy = jax.grad(nx.xlogy, argnums=(0, 1))(jnp.float64(0), jnp.float64(0))
    assert (float(gx), float(gy)) == (0.0, 0.0)
    # x log x: derivative log x + 1, taken as 0 at 0; finite everywhere.
    g = jax.vmap(jax.grad(lambda x: nx.xlogy(x, x)))(jnp.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(g, [0.0, math.log(0.5) + 1, 1.0], rtol=1e-15)
    gx, gy = jax.grad(nx.xlog1my, argnums=(0, 1))(jnp.float64(0), jnp.float64(1))
    assert np.isfinite([float(gx), float(gy)]).all()


def _mp_exprel(x):
    return mp.expm1(x) / x if x != 0 else mp.mpf(1)


def _mp_log1prel(x):
    return mp.log1p(x) / x if x != 0 else mp.mpf(1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exprel_slope_against_mpmath(dtype):
    # The series below |x| = 0.1, the closed form above (cancellation up to ~20x).
    xs = np.array([0.0, 1e-9, 1e-4, 0.0999999, 0.1, 0.1000001, 0.5, 3.0, 30.0])
    xs = np.concatenate([xs, -xs[1:]]).astype(dtype)
    got = np.asarray(jax.jit(nx.exprel_slope)(jnp.asarray(xs)), np.float64)
    with mp.workdps(40):
        want = [mp.diff(_mp_exprel, mp.mpf(float(x))) if x else mp.mpf(0.5) for x in xs]
    eps = float(jnp.finfo(dtype).eps)
    np.testing.assert_allclose(got, np.array(want, float), rtol=64 * eps, atol=0)
    # And it is exprel's derivative, also as JAX differentiates exprel.
    np.testing.assert_allclose(got, jax.vmap(jax.grad(nx.exprel))(jnp.asarray(xs)), rtol=64 * eps)


@pytest.mark.parametrize(
    ("fn", "ref"),
    [(nx.exprel, _mp_exprel), (nx.log1prel, _mp_log1prel)],
    ids=["exprel", "log1prel"],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_series_on_both_sides_of_their_cut(fn, ref, dtype):
    # The series take over below |x| = 1e-3: the value must be accurate on both sides
    # of the cut, and continuous across it.
    cut = 1e-3
    xs = np.array([0.0, 1e-12, 1e-6, cut * (1 - 1e-6), cut, cut * (1 + 1e-6), 0.1, 0.5])
    xs = np.concatenate([xs, -xs[1:]]).astype(dtype)
    got = np.asarray(jax.jit(fn)(jnp.asarray(xs)), np.float64)
    with mp.workdps(40):
        want = np.array([float(ref(mp.mpf(float(x)))) for x in xs])
    np.testing.assert_allclose(got, want, rtol=4 * float(jnp.finfo(dtype).eps), atol=0)
    # Smooth through 0: the derivative there is the series' first coefficient.
    slope = float(jax.grad(fn)(jnp.zeros((), dtype)))
    assert slope == (0.5 if fn is nx.exprel else -0.5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_term_around_the_series_cut(dtype):
    # p log(p/q) - p + q, from the artanh series for |u| = |p - q|/(p + q) below the
    # cut and from the direct formula above it: both sides agree with mpmath.
    cut = 0.15 if dtype == jnp.float64 else 1 / 3
    q = 0.3
    us = np.array([1e-9, 1e-4, 0.05, cut * 0.999, cut * 1.001, 0.6, 0.95])
    us = np.concatenate([us, -us])
    p = (q * (1 + us) / (1 - us)).astype(dtype)  # so that (p - q)/(p + q) = u
    qs = np.full_like(p, q)
    got = np.asarray(nx.kl_term(jnp.asarray(p), jnp.asarray(qs), jnp.asarray(p - qs)))
    with mp.workdps(40):
        want = []
        for pi, qi in zip(p.astype(float), qs.astype(float), strict=True):
            # The reference for the rounded float inputs, and for the rounded
            # difference the kernel is given (exact here: Sterbenz's lemma or
            # representable).
            pm, qm = mp.mpf(pi), mp.mpf(qi)
            want.append(float(pm * mp.log(pm / qm) - pm + qm))
    np.testing.assert_allclose(got, want, rtol=8 * float(jnp.finfo(dtype).eps), atol=0)


def test_kl_term_support_cases():
    p = jnp.array([0.0, 0.5, 0.0, 0.25])
    q = jnp.array([0.2, 0.0, 0.0, 0.25])
    np.testing.assert_array_equal(nx.kl_term(p, q, p - q), [0.2, np.inf, 0.0, 0.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_expm1mx_against_mpmath(dtype):
    t = np.array([-1.0, -0.3, -1e-4, 0.0, 1e-8, 1e-4, 0.3, 1.0], dtype)
    got = np.asarray(nx.expm1mx(jnp.asarray(t)), np.float64)
    with mp.workdps(40):
        want = [float(mp.expm1(mp.mpf(float(x))) - mp.mpf(float(x))) for x in t]
    np.testing.assert_allclose(got, want, rtol=4 * float(jnp.finfo(dtype).eps), atol=0)


def test_logsumexp_masks_and_extremes():
    x = jnp.array([[1e30, 1e30, -jnp.inf], [-jnp.inf, -jnp.inf, -jnp.inf], [0.0, -1e-30, 1.0]])
    got = nx.logsumexp(x, axis=-1)
    with mp.workdps(40):
        last = float(mp.log(mp.e**0 + mp.e ** mp.mpf(-1e-30) + mp.e))
    np.testing.assert_allclose(got, [1e30, -np.inf, last], rtol=1e-15)
    where = jnp.array([True, False, True])
    np.testing.assert_allclose(
        nx.logsumexp(x[2], axis=-1, where=where), float(jnp.logaddexp(0.0, 1.0)), rtol=1e-15
    )
    # Finite gradients, also for a row with no live entry.
    grads = jax.grad(
        lambda z: jnp.sum(
            jnp.where(jnp.isfinite(nx.logsumexp(z, axis=-1)), nx.logsumexp(z, axis=-1), 0)
        )
    )(x)
    assert bool(jnp.all(jnp.isfinite(grads)))


def test_type_checks_name_the_argument():
    assert nx.floating("logits", [1.0, 2.0]).dtype == jnp.result_type(float)
    with pytest.raises(TypeError, match="logits must have a floating dtype, got int"):
        nx.floating("logits", jnp.array([1, 2]))
    assert nx.class_ids("labels", [0, 2]).dtype == jnp.result_type(int)
    with pytest.raises(TypeError, match="labels must be integer class indices, got dtype float"):
        nx.class_ids("labels", jnp.array([0.0, 1.0]))


def _row_branches():
    # Row-wise branches of (a [B, 1], x [B, n], mask [B, n]) -> [B], different on purpose.
    def f0(a, x, mask):
        return jnp.sum(jnp.where(mask, jnp.sin(a * x) * x, 0), axis=-1)

    def f1(a, x, mask):
        return jnp.log(jnp.sum(jnp.where(mask, jnp.exp(a * x), 0), axis=-1)) / a[..., 0]

    return [f0, f1]


@pytest.mark.parametrize("index", [0, 1])
def test_branch_derivatives_are_the_taken_branchs(rng, index):
    a = jnp.asarray(rng.uniform(0.5, 2.0, size=(3, 1)))
    x = jnp.asarray(rng.normal(size=(3, 5)))
    mask = jnp.asarray(rng.uniform(size=(3, 5)) > 0.3)
    branches = _row_branches()

    def via_branch(a, x):
        return nx.branch(jnp.asarray(index), branches, a, x, mask)

    def direct(a, x):
        return branches[index](a, x, mask)

    np.testing.assert_allclose(via_branch(a, x), direct(a, x), rtol=1e-15)
    for transform in (jax.jacrev, jax.jacfwd):
        got = transform(via_branch, argnums=(0, 1))(a, x)
        want = transform(direct, argnums=(0, 1))(a, x)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)
    # Second order (the rule's own derivatives), and under jit.
    hess = jax.jit(jax.hessian(lambda x: jnp.sum(via_branch(a, x))))(x)
    want = jax.hessian(lambda x: jnp.sum(direct(a, x)))(x)
    np.testing.assert_allclose(hess, want, rtol=1e-12, atol=1e-15)
    # A batched index selects per row (every branch evaluated), with the same values.
    per_row = nx.branch(jnp.array([index, 1 - index, index]), branches, a, x, mask)
    np.testing.assert_allclose(per_row[0], direct(a, x)[0], rtol=1e-15)
