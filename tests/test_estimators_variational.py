"""Variational MI bounds against float64/mpmath references, closed forms and identities."""

import math
import re

import chex
import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import scipy.special as sp
from hypothesis import given
from hypothesis import strategies as hst
from hypothesis.extra import numpy as hnp

import jaxent as je
from tests.utils import examples

BOUNDS = [
    je.estimators.infonce_bound,
    je.estimators.nwj_bound,
    je.estimators.donsker_varadhan_bound,
]
INFONCE, NWJ, DV = range(3)


@jax.jit
def all_bounds(scores):
    """The three bounds at once, ``[3, *batch]``: one compilation per shape and dtype
    keeps this file fast, so most tests use scores of shape ``SHAPE``."""
    return jnp.stack([bound(scores) for bound in BOUNDS])


SHAPE = (6, 5, 5)


# References written straightforwardly from the definitions (float64 NumPy/SciPy).


def off_diagonal(s):
    n = s.shape[-1]
    return s[..., ~np.eye(n, dtype=bool)]


def ref_infonce(s):
    n = s.shape[-1]
    return np.mean(np.diagonal(s, axis1=-2, axis2=-1) - sp.logsumexp(s, axis=-1), -1) + np.log(n)


def ref_nwj(s):
    return (
        np.mean(np.diagonal(s, axis1=-2, axis2=-1), -1)
        - np.mean(np.exp(off_diagonal(s)), -1) / np.e
    )


def ref_dv(s):
    return np.mean(np.diagonal(s, axis1=-2, axis2=-1), -1) - np.log(
        np.mean(np.exp(off_diagonal(s)), -1)
    )


def all_references(s):
    with np.errstate(divide="ignore"):  # log of 0 for fully masked rows
        return np.stack([ref_infonce(s), ref_nwj(s), ref_dv(s)])


def mp_references(s):
    """30-digit references for one matrix of any magnitude (mpmath's exp never overflows)."""
    n = s.shape[-1]
    with mpmath.workdps(30):
        m = [[mpmath.mpf(float(v)) for v in row] for row in s]
        diag = mpmath.fsum(m[i][i] for i in range(n)) / n
        rows = [m[i][i] - mpmath.log(mpmath.fsum(mpmath.exp(v) for v in m[i])) for i in range(n)]
        off = mpmath.fsum(mpmath.exp(m[i][j]) for i in range(n) for j in range(n) if i != j)
        off /= n * (n - 1)
        return [
            float(mpmath.fsum(rows) / n + mpmath.log(n)),
            float(diag - off / mpmath.e),
            float(diag - mpmath.log(off)),
        ]


# float64 against float64 references: a log-sum-exp and a mean over 5-25 terms;
# rtol 1e-12 leaves room for different summation orders and the shifts.
RTOL = 1e-12


def test_random_scores_match_references(rng):
    scores = rng.normal(scale=3.0, size=SHAPE)
    np.testing.assert_allclose(all_bounds(scores), all_references(scores), rtol=RTOL, atol=1e-14)


def test_two_level_scores_closed_form():
    # Positives score a, negatives b: InfoNCE = a - log(e^a + (n-1) e^b) + log n,
    # NWJ = a - e^(b-1), DV = a - b.
    a = np.array([0.0, 2.0, -3.0, 10.0, 0.5, 30.0])[:, None, None]
    b = np.array([0.0, 0.0, 1.0, -5.0, 0.5, 29.0])[:, None, None]
    n = SHAPE[-1]
    scores = np.where(np.eye(n, dtype=bool), a, b)
    a, b = a[:, 0, 0], b[:, 0, 0]
    want = np.stack(
        [
            a - np.logaddexp(a, np.log(n - 1) + b) + np.log(n),
            a - np.exp(b - 1),
            a - b,
        ]
    )
    np.testing.assert_allclose(all_bounds(scores), want, rtol=RTOL, atol=1e-14)
    # All-zero scores: InfoNCE 0, NWJ -1/e, DV 0.
    np.testing.assert_allclose(all_bounds(scores)[:, 0], [0.0, -1 / np.e, 0.0], atol=1e-15)


def test_identical_variables_with_pmi_critic_give_exact_mi():
    # X = Y uniform on n symbols, critic = pointwise mutual information: log n for the
    # positives, -inf (p(x, y) = 0) for every other pair. InfoNCE = log n = I(X; Y)
    # exactly; NWJ = log n; DV = +inf (the negatives' mean of exp is 0).
    n = SHAPE[-1]
    scores = np.broadcast_to(np.where(np.eye(n, dtype=bool), np.log(n), -np.inf), SHAPE)
    got = all_bounds(scores)
    np.testing.assert_allclose(got[INFONCE], np.log(n), rtol=1e-15)
    np.testing.assert_allclose(got[NWJ], np.log(n), rtol=1e-15)
    assert np.all(np.isposinf(got[DV]))
    chex.assert_tree_all_finite(_grads(scores))


@pytest.mark.slow
def test_gaussian_with_true_critic_estimates_mi():
    # Correlated standard Gaussians, rho = 0.8: I = -log(1 - rho^2)/2 = 0.5108 nats. With
    # the critic log p(y|x)/p(y) (1 + that for NWJ, which is then unbiased), each bound
    # averaged over 16 batches of 128 has a standard deviation of ~0.019 (measured over
    # 100 seeds); InfoNCE is biased low by ~0.007 at n = 128. Fixed seed; atol ~4 sigma.
    rho, batches, n = 0.8, 16, 128
    rng = np.random.default_rng(1234)
    x = rng.normal(size=(batches, n))
    y = rho * x + math.sqrt(1 - rho**2) * rng.normal(size=(batches, n))
    xi, yj = x[:, :, None], y[:, None, :]
    pmi = -0.5 * np.log(1 - rho**2) - (yj - rho * xi) ** 2 / (2 * (1 - rho**2)) + yj**2 / 2
    mi = -0.5 * math.log(1 - rho**2)
    got = np.asarray(all_bounds(np.stack([pmi, 1 + pmi]))).mean(-1)
    estimates = [got[INFONCE, 0], got[NWJ, 1], got[DV, 0]]
    np.testing.assert_allclose(estimates, mi, atol=0.08)
    assert estimates[INFONCE] <= math.log(n)


def test_masked_pairs_are_left_out(rng):
    scores = rng.normal(size=SHAPE)
    scores[:, 0, 1] = -np.inf
    scores[:, 3, :3] = -np.inf
    scores[0, ~np.eye(SHAPE[-1], dtype=bool)] = -np.inf  # batch 0: every negative masked
    got = all_bounds(scores)
    want = all_references(scores)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-14)
    assert np.isposinf(got[DV, 0])
    grads = _grads(scores)
    chex.assert_tree_all_finite(grads)
    assert np.all(np.asarray(grads)[:, np.isneginf(scores)] == 0)


def test_masked_positive_gives_minus_inf(rng):
    scores = rng.normal(size=SHAPE)
    scores[:, 2, 2] = -np.inf
    scores[1] = -np.inf  # everything masked: no NaN either
    got = all_bounds(scores)
    assert np.all(np.isneginf(got))
    chex.assert_tree_all_finite(_grads(scores))


@jax.jit
def _grads(scores):
    """Gradients of each bound (summed over the batch), ``[3, *scores.shape]``."""
    return jnp.stack([jax.grad(lambda s, b=b: b(s).sum())(scores) for b in BOUNDS])


def test_gradients_match_finite_differences(rng):
    # Directional central differences, h = 1e-6: error ~h^2 |f'''| + eps/h < 1e-9 for
    # scores of order 1; rtol 1e-7.
    scores = rng.normal(size=SHAPE)
    grads = _grads(scores)
    h = 1e-6
    for _ in range(3):
        v = rng.normal(size=SHAPE)
        fd = (all_bounds(scores + h * v) - all_bounds(scores - h * v)).sum(-1) / (2 * h)
        np.testing.assert_allclose(np.sum(grads * v, axis=(1, 2, 3)), fd, rtol=1e-7, atol=1e-9)


@jax.jit
def _hvps(scores, v):
    """Hessian-vector products (forward over reverse), ``[3, *scores.shape]``."""
    return jax.jvp(_grads, (scores,), (v,))[1]


def test_second_derivatives_match_finite_differences(rng):
    # Central differences of the (jitted) gradients, h = 1e-5: error ~h^2 |f''''| + eps/h,
    # below 1e-9 for scores of order 1; rtol 1e-6 on the products.
    scores = rng.normal(size=SHAPE)
    scores[:, 0, 1] = -np.inf  # a masked pair
    v = np.where(np.isfinite(scores), rng.normal(size=SHAPE), 0)
    h = 1e-5
    fd = (_grads(scores + h * v) - _grads(scores - h * v)) / (2 * h)
    got = _hvps(scores, v)
    chex.assert_tree_all_finite(got)
    np.testing.assert_allclose(got, np.nan_to_num(fd), rtol=1e-6, atol=1e-9)


def test_large_scores_float32(rng):
    # |s| ~ 1e4 in float32: values within a few ulps of the largest score (ulp(2e4) =
    # 2^-9 ~ 2e-3, the inputs' own resolution) of 30-digit references computed from the
    # same float32 inputs; gradients finite.
    scores = (rng.normal(size=SHAPE) * 1e4).astype(np.float32)
    got = all_bounds(scores)
    assert got.dtype == jnp.float32
    want = np.array([mp_references(s) for s in scores.astype(np.float64)]).T
    np.testing.assert_allclose(got[INFONCE], want[INFONCE], rtol=1e-6, atol=8 * 2.0**-9)
    np.testing.assert_allclose(got[DV], want[DV], rtol=1e-6, atol=8 * 2.0**-9)
    # NWJ's exp term overflows (true value ~ -e^10000): -inf, gradients never NaN.
    assert np.all(np.isneginf(got[NWJ]))
    grads = np.asarray(_grads(scores))
    chex.assert_tree_all_finite(grads[[INFONCE, DV]])
    assert not np.any(np.isnan(grads[NWJ]))
    # Large positives and very negative negatives: NWJ finite with finite gradients.
    separated = np.where(np.eye(SHAPE[-1], dtype=bool), np.abs(scores), -np.abs(scores) - 100)
    got = all_bounds(separated)
    want = np.array([mp_references(s) for s in separated.astype(np.float64)]).T
    np.testing.assert_allclose(got, want, rtol=1e-6)
    chex.assert_tree_all_finite(_grads(separated))


def test_bfloat16(rng):
    scores = rng.normal(size=SHAPE)
    got = all_bounds(jnp.asarray(scores, jnp.bfloat16))
    assert got.dtype == jnp.bfloat16
    # bfloat16 inputs (8 significant bits) computed in float32, rounded once: the result
    # moves by ~2^-8 of the largest score.
    want = all_references(np.asarray(jnp.asarray(scores, jnp.bfloat16), np.float64))
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2**-7, atol=2**-7)


def test_vmap(rng):
    scores = rng.normal(size=(2,) + SHAPE)
    mapped = jax.jit(jax.vmap(all_bounds, out_axes=1))(scores)
    np.testing.assert_allclose(mapped, all_references(scores), rtol=RTOL, atol=1e-14)


def test_eager(rng):
    # The doctests' shape and dtype: eager (op-by-op) compilation is shared with them.
    scores = jnp.asarray(rng.normal(size=(4, 4)))
    for i, bound in enumerate(BOUNDS):
        want = all_references(np.asarray(scores))[i]
        np.testing.assert_allclose(bound(scores), want, rtol=RTOL, atol=1e-14)


@examples(100)
@given(hnp.arrays(np.float64, SHAPE[1:], elements=hst.floats(-30, 30)), hst.floats(-50, 50))
def test_identities_that_hold_for_any_scores(s, shift):
    n = s.shape[-1]
    best = 1 - sp.logsumexp(off_diagonal(s)) + math.log(n * (n - 1))  # NWJ's best shift
    rows = np.linspace(-20, 20, n)[:, None]
    variants = np.stack([s, s + shift, s + best, s + rows, s, s])
    got = np.asarray(all_bounds(variants))
    infonce, nwj, dv = got[:, 0]
    assert infonce <= math.log(n)  # exactly, also after rounding
    assert dv >= nwj - 1e-12  # log u <= u / e
    tol = 1e-12 * (1 + np.abs(s).max() + abs(shift))
    assert abs(got[DV, 1] - dv) <= tol  # DV is shift-invariant
    assert abs(got[NWJ, 2] - dv) <= tol  # ... and NWJ at its best shift equals it
    assert abs(got[INFONCE, 3] - infonce) <= 40 * 1e-12 + tol  # InfoNCE: row shifts


@pytest.mark.parametrize("shape", [(3, 4), (1, 1), (5,), (2, 4, 3)])
def test_bad_shapes_raise_naming_the_shape(shape):
    for bound in BOUNDS:
        with pytest.raises(ValueError, match=f"got shape {re.escape(str(shape))}"):
            bound(np.zeros(shape))


def test_checked_scores():
    # je.checked's "finite" kind is tested in test_checks.py; here only that each bound
    # declares it (running checkify on each would add seconds of compilation).
    for bound in BOUNDS:
        assert bound._jaxent_expects == {"scores": "finite"}
