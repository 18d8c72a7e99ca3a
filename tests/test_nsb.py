"""The NSB entropy estimate against an independent mpmath quadrature of its integral."""

import chex
import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
from scipy import integrate, special

import jaxent as je

# The quadrature truncates the prior's range at K beta = 1e-30 and 1e12 (N + K): a
# relative error near 1e-13 (measured up to 1.2e-13 on these cases).
RTOL = 1e-12

CASES = [
    [4, 2, 3, 0, 2, 4, 0, 0, 2, 1, 1],  # the docstring's histogram
    [1, 1, 1, 0, 0, 0, 0, 0, 0, 0],  # all singletons, undersampled
    [10, 0, 0],  # one bin seen: the posterior sits at beta -> 0
    [5, 5, 5, 5],  # underdispersed: the posterior has a long tail to beta -> inf
    [3, 1],
]


def _nsb_reference(counts):
    """NSB by mpmath: integrals over t = log(beta) of p(c | beta) xi'(beta) beta (and
    times E[H | c, beta]), tanh-sinh quadrature on [-40, 40] in pieces of length 8 (at
    30 digits this gives the same float64 values as pieces of length 1/2, 8x faster)."""
    with mp.workdps(30):
        c = [mp.mpf(x) for x in counts]
        k, n = len(c), sum(c)

        def weight(t):
            b = mp.exp(t)
            log_evidence = mp.loggamma(k * b) - mp.loggamma(n + k * b)
            log_evidence += mp.fsum(mp.loggamma(x + b) - mp.loggamma(b) for x in c if x > 0)
            return mp.exp(log_evidence) * (k * mp.psi(1, k * b + 1) - mp.psi(1, b + 1)) * b

        def posterior_mean(t):
            b = mp.exp(t)
            a = n + k * b
            return mp.digamma(a + 1) - mp.fsum((x + b) * mp.digamma(x + b + 1) for x in c) / a

        points = [mp.mpf(i) for i in range(-40, 41, 8)]
        z = mp.quad(weight, points)
        return mp.quad(lambda t: weight(t) * posterior_mean(t), points) / z


def _nsb_scipy(counts):
    """The same integrals in float64 with SciPy's adaptive quadrature (fast)."""
    c = np.asarray(counts, float)
    k, n = len(c), c.sum()
    seen = c[c > 0]

    def log_weight(t):
        b = np.exp(t)
        log_evidence = special.gammaln(k * b) - special.gammaln(n + k * b)
        log_evidence += np.sum(special.gammaln(seen + b) - special.gammaln(b))
        slope = k * special.polygamma(1, k * b + 1) - special.polygamma(1, b + 1)
        return log_evidence + np.log(slope) + t

    def posterior_mean(t):
        b = np.exp(t)
        a = n + k * b
        return special.digamma(a + 1) - np.sum((c + b) * special.digamma(c + b + 1)) / a

    # beta in [e^-60, e^25]: float64 log-gammas stay accurate enough there
    grid = np.linspace(-60, 25, 341)
    peak = max(log_weight(t) for t in grid)
    z = integrate.quad(
        lambda t: np.exp(log_weight(t) - peak), -60, 25, points=grid[1:-1], limit=1000
    )[0]
    h = integrate.quad(
        lambda t: np.exp(log_weight(t) - peak) * posterior_mean(t),
        -60,
        25,
        points=grid[1:-1],
        limit=1000,
    )[0]
    return h / z


@pytest.mark.slow  # mpmath quadratures: about 20 s
def test_against_mpmath_quadrature():
    ref = np.array([float(_nsb_reference(c)) for c in CASES])
    got = [je.estimators.entropy_from_counts(np.array(c), method="nsb") for c in CASES]
    np.testing.assert_allclose(got, ref, rtol=RTOL)


def test_against_scipy_quadrature():
    ref = np.array([_nsb_scipy(c) for c in CASES])
    got = [je.estimators.entropy_from_counts(np.array(c), method="nsb") for c in CASES]
    # SciPy's quad in float64 with truncation at beta = e^25: about 1e-10
    np.testing.assert_allclose(got, ref, rtol=1e-9)


def test_batched_jit_vmap_and_axis(rng):
    counts = rng.integers(0, 6, size=(5, 7)).astype(float)
    counts[0] = 0  # empty histogram: 0, like every method
    counts[1] = [0, 0, 9, 0, 0, 0, 0]
    fn = jax.jit(lambda c: je.estimators.entropy_from_counts(c, method="nsb"))
    batch = fn(counts)
    chex.assert_shape(batch, (5,))
    rows = [je.estimators.entropy_from_counts(c, method="nsb") for c in counts]
    np.testing.assert_allclose(batch, rows, rtol=1e-14)
    np.testing.assert_allclose(jax.vmap(fn)(counts), batch, rtol=1e-14)
    np.testing.assert_allclose(
        je.estimators.entropy_from_counts(counts.T, method="nsb", axis=0), batch, rtol=1e-14
    )
    assert batch[0] == 0.0
    # Between 0 and log K, above the plug-in estimate on undersampled histograms.
    assert np.all((batch >= 0) & (batch <= np.log(7)))
    plugin = je.estimators.entropy_from_counts(counts, method="plugin")
    assert np.all(batch[2:] > plugin[2:])
    np.testing.assert_allclose(
        je.estimators.entropy_from_counts(counts, method="nsb", base=2), batch / np.log(2)
    )


def test_single_bin_and_gradients():
    assert float(je.estimators.entropy_from_counts(np.array([7.0]), method="nsb")) == 0.0
    grad = jax.grad(lambda c: je.estimators.entropy_from_counts(c, method="nsb"))
    chex.assert_tree_all_finite(grad(jnp.array([4.0, 0.0, 1.0, 2.0])))


def test_float32_within_its_precision():
    counts = np.array(CASES[:4], dtype=object)
    for c in counts:
        c64 = je.estimators.entropy_from_counts(np.array(c, np.float64), method="nsb")
        c32 = je.estimators.entropy_from_counts(np.array(c, np.float32), method="nsb")
        assert c32.dtype == jnp.float32
        # measured up to 2.3e-6 (one bin seen, where the estimate is small)
        np.testing.assert_allclose(c32, c64, rtol=1e-5)
