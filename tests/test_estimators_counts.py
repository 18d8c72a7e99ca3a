"""entropy_from_counts against SciPy, independent float64/mpmath references and closed forms."""

import math
from functools import partial

import chex
import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given
from hypothesis import strategies as hst
from hypothesis.extra import numpy as hnp

import jaxent as je
from tests.utils import examples

entropy_from_counts = je.estimators.entropy_from_counts
METHODS = ["plugin", "miller_madow", "grassberger", "chao_shen", "james_stein"]


# References, one histogram (1-D, float64 or mpmath) at a time, written from the papers
# and from the R package `entropy` (Hausser & Strimmer), not from jaxent's code.


def ref_plugin(c):
    return st.entropy(c) if c.sum() > 0 else 0.0


def ref_miller_madow(c):
    if c.sum() == 0:
        return 0.0
    return st.entropy(c) + (np.count_nonzero(c) - 1) / (2 * c.sum())


def grassberger_number(k):
    """G(k) = psi(k) + (-1)^k/2 (psi((k+1)/2) - psi(k/2)) in 30-digit arithmetic."""
    k = mpmath.mpf(k)
    sign = 1 if int(k) % 2 == 0 else -1
    return mpmath.digamma(k) + sign * (mpmath.digamma((k + 1) / 2) - mpmath.digamma(k / 2)) / 2


def ref_grassberger(c):
    if c.sum() == 0:
        return 0.0
    with mpmath.workdps(30):
        n = mpmath.mpf(int(c.sum()))
        total = sum(int(k) * grassberger_number(int(k)) for k in c if k > 0)
        return float(mpmath.log(n) - total / n)


def ref_chao_shen(c):
    # As entropy.ChaoShen in the R package `entropy`.
    y = c[c > 0]
    if y.size == 0:
        return 0.0
    n = y.sum()
    p = y / n
    f1 = np.sum(y == 1)
    if f1 == n:
        f1 = n - 1
    pa = (1 - f1 / n) * p
    la = 1 - (1 - pa) ** n
    return -np.sum(pa * np.log(pa) / la)


def ref_james_stein(c):
    # As freqs.shrink / get.lambda.shrink in the R package `entropy`.
    n = c.sum()
    if n == 0:
        return 0.0  # jaxent's documented choice (R would give log K)
    t = 1 / c.size
    u = c / n
    if n == 1:
        lam = 1.0
    else:
        msp = np.sum((u - t) ** 2)
        lam = 1.0 if msp == 0 else np.sum(u * (1 - u) / (n - 1)) / msp
        lam = min(max(lam, 0.0), 1.0)
    return st.entropy(lam * t + (1 - lam) * u)


REFERENCES = {
    "plugin": ref_plugin,
    "miller_madow": ref_miller_madow,
    "grassberger": ref_grassberger,
    "chao_shen": ref_chao_shen,
    "james_stein": ref_james_stein,
}


def reference(method, counts):
    counts = np.asarray(counts, np.float64)
    rows = counts.reshape(-1, counts.shape[-1])
    return np.array([REFERENCES[method](r) for r in rows]).reshape(counts.shape[:-1])


def random_counts(rng, shape):
    """Integer counts with zeros, singletons and the hard rows in it."""
    c = rng.poisson(rng.gamma(0.7, 3.0, size=shape)).astype(np.int64)
    c[0] = 0
    c[0, 2] = 7  # one-hot
    c[1] = 0  # empty
    c[2] = 0
    c[2, :3] = 1  # only singletons (Chao-Shen's f1 = N)
    c[3] = 0
    c[3, -1] = 1  # a single observation (James-Stein's N = 1)
    c[4] = 5  # uniform (James-Stein's zero spread)
    return c


@partial(jax.jit, static_argnames=("axis", "base"))
def all_methods(counts, axis=-1, base=None):
    """Every method at once, ``[len(METHODS), *batch]``.

    One compilation per shape and dtype keeps this file fast, so most tests use
    ``SHAPE`` float64 counts.
    """
    return jnp.stack([entropy_from_counts(counts, method=m, axis=axis, base=base) for m in METHODS])


def all_references(counts):
    return np.stack([reference(m, counts) for m in METHODS])


SHAPE = (10, 12)


@pytest.fixture
def counts(rng):
    return random_counts(rng, SHAPE).astype(np.float64)


# float64 against float64/mpmath references: sums of up to 12 terms and a few
# digamma evaluations (accurate to ~1e-15 relative); rtol 1e-12 leaves room for
# different summation orders and the cancellation in log N - sum of Grassberger.
RTOL = 1e-12


def test_all_methods_match_references(counts):
    got = all_methods(counts)
    np.testing.assert_allclose(got, all_references(counts), rtol=RTOL, atol=1e-15)
    full = counts.sum(-1) > 0  # SciPy gives NaN for an empty histogram
    np.testing.assert_allclose(got[0, full], st.entropy(counts[full], axis=-1), rtol=RTOL)
    assert np.all(got[:, 1] == 0.0)  # an empty histogram
    # One occupied bin: plug-in and James-Stein (lambda = 0) are exactly 0. A single
    # observation is not one-hot for James-Stein (N = 1 shrinks to uniform).
    assert got[0, 0] == 0.0 and got[0, 3] == 0.0 and got[METHODS.index("james_stein"), 0] == 0.0


def test_eager_and_integer_counts():
    counts = np.array([4, 2, 3, 0, 2, 4, 0, 0, 2, 1, 1])  # the R package's example
    for method in METHODS:
        got = entropy_from_counts(counts, method=method)
        assert got.dtype == jnp.float64  # integer counts: the default float (x64 is on)
        np.testing.assert_allclose(got, reference(method, counts), rtol=RTOL, err_msg=method)


def test_grassberger_numbers_by_recursion():
    # G_1 = -gamma - log 2, G_2k = G_(2k-1) + 2/(2k-1), G_(2k+1) = G_2k: a closed form
    # without digamma. For a single occupied bin the estimate is log c - G(c).
    g = [-np.euler_gamma - math.log(2)]
    for k in range(2, 41):
        g.append(g[-1] + (2 / (k - 1) if k % 2 == 0 else 0.0))
    want = np.log(np.arange(1, 41)) - np.array(g)
    for start in range(0, 40, SHAPE[0]):
        c = np.zeros(SHAPE)
        c[:, 0] = np.arange(start + 1, start + 1 + SHAPE[0])
        got = all_methods(c)[METHODS.index("grassberger")]
        # Both sides float64 with ~1e-15 absolute error; log c - G(c) is ~1/c, hence atol.
        np.testing.assert_allclose(got, want[start : start + SHAPE[0]], rtol=1e-12, atol=1e-14)


@jax.jit
def _value_and_grad(counts):
    # A NaN or inf in any method's gradient shows in the gradient of the sum.
    return jax.value_and_grad(lambda c: all_methods(c).sum())(counts)


def test_gradients_finite_at_hard_rows(counts):
    # random_counts holds empty, one-hot, singleton-only, single-observation and uniform
    # rows: every kink of the estimators.
    _, grad = _value_and_grad(counts)
    chex.assert_tree_all_finite(grad)


def test_gradients_match_finite_differences(counts):
    # Positive fractional counts away from the estimators' thresholds (c = 0, c = 1,
    # lambda in {0, 1}), where every estimate is smooth. Central differences with
    # h = 1e-5: truncation ~h^2 |f'''| and rounding ~eps/h, both below 1e-8 here.
    rng = np.random.default_rng(0)
    c = rng.uniform(2.2, 30.0, SHAPE)
    c[::3, 1] = rng.uniform(0.2, 0.8, len(c[::3]))
    _, grad = _value_and_grad(c)
    h = 1e-5
    for _ in range(3):
        v = rng.normal(size=SHAPE)
        fd = (all_methods(c + h * v).sum() - all_methods(c - h * v).sum()) / (2 * h)
        np.testing.assert_allclose(np.sum(grad * v), fd, rtol=1e-6)


def test_axis_batch_and_vmap(counts):
    want = all_methods(counts)
    stacked = np.stack([counts.T, counts.T[:, ::-1]])  # [2, 12, 10]: bins along axis 0
    mapped = jax.vmap(partial(all_methods, axis=0), out_axes=-1)(stacked)
    chex.assert_shape(mapped, (len(METHODS), 10, 2))
    np.testing.assert_allclose(mapped[..., 0], want, rtol=RTOL)
    np.testing.assert_allclose(mapped[..., 1], want[:, ::-1], rtol=RTOL)


def test_base():
    # The unit conversion is common to all methods. The doctest's counts: eager
    # compilation is shared with it and with test_eager_and_integer_counts.
    counts = np.array([4, 2, 3, 0, 2, 4, 0, 0, 2, 1, 1])
    nats = entropy_from_counts(counts)
    np.testing.assert_allclose(entropy_from_counts(counts, base=2), nats / math.log(2), rtol=RTOL)
    np.testing.assert_allclose(
        entropy_from_counts(counts, base="bits"), nats / math.log(2), rtol=RTOL
    )
    np.testing.assert_allclose(
        entropy_from_counts(counts, base="bans"), nats / math.log(10), rtol=RTOL
    )


def test_float32_and_bfloat16(counts):
    counts = np.minimum(counts, 256)  # integers up to 256 are exact in bfloat16
    want = all_references(counts)
    got32 = all_methods(jnp.asarray(counts, jnp.float32))
    assert got32.dtype == jnp.float32
    # float32: a few ulps of the terms (each up to ~log N) on a sum of 12 terms.
    np.testing.assert_allclose(got32, want, rtol=1e-5, atol=1e-6)
    got16 = all_methods(jnp.asarray(counts, jnp.bfloat16))
    assert got16.dtype == jnp.bfloat16
    # Computed in float32, rounded once to bfloat16 (8 significant bits: 2^-8 relative).
    np.testing.assert_allclose(np.asarray(got16, np.float64), want, rtol=2**-8, atol=1e-6)
    assert got32[0, 0] == 0.0 and got16[0, 0] == 0.0  # one-hot


def test_large_counts(rng):
    counts = rng.integers(10**8, 10**9, size=SHAPE).astype(np.float64)
    counts[:, 0] = 0
    counts[0, 1] = 1  # a singleton among huge counts
    want = all_references(counts)
    np.testing.assert_allclose(all_methods(counts), want, rtol=1e-11)
    # The corrections are O(K/N): every method agrees with the plug-in to ~1e-8.
    np.testing.assert_allclose(
        want, np.broadcast_to(st.entropy(counts, axis=-1), want.shape), atol=1e-7
    )
    # float32 (counts rounded to float32 first): log N ~ 23 in each term, so ~1e-5.
    c32 = counts.astype(np.float32)
    np.testing.assert_allclose(all_methods(c32), all_references(c32), rtol=2e-5)


def test_chao_shen_with_low_coverage():
    # 1999 singletons and one doubleton: coverage C = 2/2001, so p_a ~ 5e-7 and
    # 1 - (1 - p_a)^N ~ 1e-3. Computing (1 - p_a)^N directly loses |log eps / log p_a|
    # of the digits (all of them in float32); expm1/log1p keep full precision.
    counts = np.ones((1, 2000))
    counts[0, 0] = 2
    with mpmath.workdps(40):
        n = mpmath.mpf(2001)
        coverage = 1 - mpmath.mpf(1999) / n
        h = mpmath.mpf(0)
        for c in (2, 1):
            pa = coverage * c / n
            term = -pa * mpmath.log(pa) / (1 - (1 - pa) ** n)
            h += term * (1 if c == 2 else 1999)
        want = float(h)
    chao_shen = jax.jit(partial(entropy_from_counts, method="chao_shen"))
    np.testing.assert_allclose(chao_shen(counts), [want], rtol=1e-13)  # float64: ~10 ulps
    # float32: ~1e-6 relative (log of the 2000-term sum's rounding).
    np.testing.assert_allclose(chao_shen(counts.astype(np.float32)), [want], rtol=2e-6)


@examples(100)
@given(hnp.arrays(np.float64, SHAPE[-1], elements=hst.integers(0, 50).map(float)))
def test_bounds_that_hold_for_any_counts(counts):
    tiled = np.broadcast_to(counts, SHAPE)  # SHAPE: reuses the compiled function
    hs = dict(zip(METHODS, np.asarray(all_methods(tiled))[:, 0].tolist()))
    assert all(np.isfinite(h) for h in hs.values())
    # Plug-in <= log(bins seen); Miller-Madow adds a non-negative term (once a bin is seen);
    # the shrinkage estimate lies between the plug-in and the uniform distribution's log K.
    assert 0 <= hs["plugin"] <= math.log(max(np.count_nonzero(counts), 1)) + 1e-12
    assert hs["miller_madow"] >= hs["plugin"] - 1e-12
    assert hs["plugin"] - 1e-12 <= hs["james_stein"] <= math.log(counts.size) + 1e-12
    assert hs["chao_shen"] >= 0


def test_no_bins_is_an_empty_histogram():
    assert np.all(all_methods(np.zeros((2, 0))) == 0.0)


def test_unknown_method_names_the_allowed_ones():
    with pytest.raises(ValueError, match="'plugin', 'miller_madow', .*'nsb'.*got 'bayes'"):
        entropy_from_counts([1, 2], method="bayes")


def test_scalar_counts_raise():
    with pytest.raises(ValueError, match="rank 0"):
        entropy_from_counts(3.0)


def test_checked_counts():
    safe = je.checked(entropy_from_counts)
    counts = jnp.array([[3.0, 0.0, 2.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(safe(counts), entropy_from_counts(counts))
    with pytest.raises(ValueError, match="counts has negative counts"):
        safe(counts.at[0, 1].set(-1.0))
    with pytest.raises(ValueError, match="counts contains inf"):
        safe(counts.at[0, 1].set(jnp.inf))
    with pytest.raises(ValueError, match="counts contains NaN"):
        safe(counts.at[1, 1].set(jnp.nan))
