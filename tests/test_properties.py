"""Property tests (hypothesis) for the identities and bounds of information measures.

Inputs are float64 probability vectors made by normalizing non-negative draws (with
exact zeros mixed in) and joint tables made the same way. Sizes come from a small
fixed set and every function is jitted once at import, so nothing retraces inside
the properties. Normalizing in float64 leaves ``sum(p) = 1`` only within a few ulps;
each tolerance below says what it absorbs.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jaxent as je
from tests.utils import examples

EXAMPLES = examples(300)  # 75 in the fast loop, 1500 with HYPOTHESIS_PROFILE=thorough

SIZES = (2, 5, 8)
SHAPES = ((2, 3), (4, 4))
TINY = np.finfo(np.float64).tiny
LN2, LN10 = math.log(2), math.log(10)

# Weights: exact zeros, ordinary values and values spanning many decades.
WEIGHTS = st.one_of(
    st.just(0.0),
    st.floats(0.0, 1.0, allow_subnormal=False),
    st.floats(1e-30, 1e-3, allow_subnormal=False),
)


def _normalize(w: np.ndarray, fallback: int) -> np.ndarray:
    w = w.copy()
    if not w.sum() > 0:
        w.flat[fallback] = 1.0
    p = w / w.sum()
    # XLA on CPU flushes subnormals to zero; keep inputs clear of that ambiguity.
    p[p < TINY] = 0.0
    return p


@st.composite
def probs(draw, n: int) -> np.ndarray:
    w = draw(hnp.arrays(np.float64, n, elements=WEIGHTS))
    return _normalize(w, draw(st.integers(0, n - 1)))


@st.composite
def prob_pair(draw) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.sampled_from(SIZES))
    return draw(probs(n)), draw(probs(n))


@st.composite
def prob_vector(draw) -> np.ndarray:
    return draw(probs(draw(st.sampled_from(SIZES))))


@st.composite
def joint_table(draw) -> np.ndarray:
    shape = draw(st.sampled_from(SHAPES))
    w = draw(hnp.arrays(np.float64, shape, elements=WEIGHTS))
    return _normalize(w, draw(st.integers(0, w.size - 1)))


@st.composite
def independent_table(draw) -> np.ndarray:
    nx_, ny = draw(st.sampled_from(SHAPES))
    return np.outer(draw(probs(nx_)), draw(probs(ny)))


# Jitted once; fixed sizes mean at most a few traces each.
entropy = jax.jit(je.entropy)
cross_entropy = jax.jit(je.cross_entropy)
kl = jax.jit(je.kl_divergence)
js = jax.jit(je.js_divergence)
renyi = jax.jit(je.renyi_entropy)
tsallis = jax.jit(je.tsallis_entropy)
tv = jax.jit(je.total_variation)
hellinger = jax.jit(je.hellinger_distance)
joint_entropy = jax.jit(je.joint_entropy)
conditional_entropy = jax.jit(je.conditional_entropy)
mutual_information = jax.jit(je.mutual_information)

# Unit conversions: one jitted function per (measure, base).
UNIT_FUNCS = {
    name: {base: jax.jit(partial(fn, base=base)) for base in (None, "bits", 2, "bans", math.e)}
    for name, fn in [
        ("entropy", je.entropy),
        ("kl_divergence", je.kl_divergence),
        ("js_divergence", je.js_divergence),
    ]
}
UNIT_JOINT = {
    base: jax.jit(partial(je.mutual_information, base=base))
    for base in (None, "bits", "bans", math.e)
}

RENYI_ALPHAS = jnp.array([0.0, 0.25, 0.5, 0.9, 0.999, 1.0, 1.001, 1.1, 2.0, 5.0, jnp.inf])


def f(x) -> float:
    return float(np.asarray(x))


# ------------------------------------------------------------------ divergences
@EXAMPLES
@given(prob_pair())
def test_gibbs_inequality(pq):
    p, q = pq
    d, h_pq, h_p = f(kl(p, q)), f(cross_entropy(p, q)), f(entropy(p))
    # sum(p), sum(q) are 1 only within ~n ulps; D on such inputs may dip below 0 by
    # |sum q - sum p| ~ 1e-15.
    assert d >= -1e-14
    # Both sums are rounded to ~n ulps of their magnitude (at most log n + tails).
    assert h_pq >= h_p - 1e-12 * max(1.0, h_p)
    assert not np.isnan(d) and not np.isnan(h_pq)


@EXAMPLES
@given(prob_pair())
def test_cross_entropy_is_entropy_plus_kl(pq):
    p, q = pq
    d, h_pq, h_p = f(kl(p, q)), f(cross_entropy(p, q)), f(entropy(p))
    support_mismatch = bool(np.any((p > 0) & (q == 0)))
    if support_mismatch:
        assert h_pq == np.inf and d == np.inf
        return
    # Three independently rounded sums of terms up to |p log q| (log q >= log 1e-308 ~ -709).
    scale = max(1.0, h_pq)
    assert abs(h_pq - (h_p + d)) <= 1e-12 * scale


@EXAMPLES
@given(prob_pair())
def test_js_bounds_and_symmetry(pq):
    p, q = pq
    a, b = f(js(p, q)), f(js(q, p))
    # The kl_term sums are non-negative term by term; the only slack is the ~1e-16
    # normalization error of the inputs.
    assert -1e-14 <= a <= LN2 + 1e-12
    # Same terms in the same order: equal up to rounding of the commuted sums.
    assert abs(a - b) <= 1e-14 * max(1.0, a)


@EXAMPLES
@given(prob_pair())
def test_tv_and_hellinger_in_unit_interval(pq):
    p, q = pq
    t, h = f(tv(p, q)), f(hellinger(p, q))
    # Sums of rounded inputs normalized to ~1e-16: a few ulps of slack above 1.
    assert 0.0 <= t <= 1.0 + 1e-12
    assert 0.0 <= h <= 1.0 + 1e-12
    if np.array_equal(p, q):
        assert t == 0.0 and h == 0.0


# ------------------------------------------------------------------ entropies
@EXAMPLES
@given(prob_vector())
def test_entropy_bounds(p):
    h = f(entropy(p))
    n = p.shape[-1]
    assert h >= 0.0  # every term -p log p is >= 0 for p in [0, 1]: no slack needed
    # Normalization error and summation rounding: a few ulps of log n.
    assert h <= math.log(n) + 1e-12


@EXAMPLES
@given(prob_vector())
def test_renyi_non_increasing_in_alpha(p):
    h = np.asarray(renyi(p, RENYI_ALPHAS))
    assert np.all(np.isfinite(h))
    # Near alpha = 1 the expansion assumes sum(p) = 1; the ~1e-16 normalization error is
    # amplified by 1/|alpha - 1| <= 1000 (alpha = 0.999, 1.001), and equal entropies
    # (uniform on the support) differ by rounding only.
    assert np.all(np.diff(h) <= 1e-12 * np.maximum(1.0, h[:-1])), h
    # Endpoints: alpha = 0 is log(support size), alpha = inf is -log max p.
    assert abs(h[0] - math.log(np.count_nonzero(p))) <= 1e-15 * max(1.0, h[0])
    assert abs(h[-1] + math.log(p.max())) <= 1e-15 * max(1.0, h[-1])
    # alpha = 1 is Shannon: the same sum, up to ~n ulps.
    assert abs(h[5] - f(entropy(p))) <= 1e-14 * max(1.0, h[5])


@EXAMPLES
@given(prob_vector())
def test_tsallis_at_one_is_shannon(p):
    # At alpha = 1 exprel(0) = 1 exactly: the same terms, summed the same way.
    assert abs(f(tsallis(p, 1.0)) - f(entropy(p))) <= 1e-14 * max(1.0, f(entropy(p)))


# ------------------------------------------------------------------ joint tables
@EXAMPLES
@given(joint_table())
def test_chain_rule(pxy):
    hxy = f(joint_entropy(pxy))
    hx = f(entropy(pxy.sum(axis=-1)))
    hy_x = f(conditional_entropy(pxy))
    # Three sums of O(1) terms, each a few ulps off; the marginal sum adds ~n ulps.
    assert abs(hxy - (hx + hy_x)) <= 1e-12 * max(1.0, hxy)


@EXAMPLES
@given(joint_table())
def test_mutual_information_identity(pxy):
    mi = f(mutual_information(pxy))
    hx = f(entropy(pxy.sum(axis=-1)))
    hy = f(entropy(pxy.sum(axis=-2)))
    hxy = f(joint_entropy(pxy))
    # The KL form of MI is non-negative up to the normalization error of the table.
    assert mi >= -1e-14
    # Four sums of O(log n) magnitude, each rounded to a few ulps.
    assert abs(mi - (hx + hy - hxy)) <= 1e-12 * max(1.0, hxy)


@EXAMPLES
@given(independent_table())
def test_mutual_information_zero_for_independent(pxy):
    # The outer product is rounded entrywise (relative 1e-16), so the table is
    # independent only up to that: MI is second order in it, far below 1e-12.
    mi = f(mutual_information(pxy))
    assert abs(mi) <= 1e-12


# Regression: the product p(x) p(y) once underflowed to 0 here and gave +inf.
@pytest.mark.parametrize(
    ("dtype", "t"), [(np.float32, 1e-20), (np.float64, 1e-160), (np.float64, 1.52348607e-240)]
)
def test_mutual_information_marginal_product_underflow(dtype, t):
    pxy = np.array([[t, 0], [0, 1 - t]], dtype)
    px, py = pxy.sum(axis=-1), pxy.sum(axis=-2)
    expected = f(je.entropy(px) + je.entropy(py) - je.joint_entropy(pxy))  # ~ t * log(1/t)
    mi = f(je.mutual_information(pxy))
    assert math.isclose(mi, expected, rel_tol=1e-5)
    assert 0.0 <= f(je.normalized_mutual_information(pxy)) <= 1.0


# ------------------------------------------------------------------ units
@examples(200)  # 15 calls per example: the slowest property here
@given(prob_pair())
def test_unit_conversion(pq):
    p, q = pq
    args = {"entropy": (p,), "kl_divergence": (p, q), "js_divergence": (p, q)}
    for name, funcs in UNIT_FUNCS.items():
        nats = f(funcs[None](*args[name]))
        if math.isinf(nats):
            assert all(f(fn(*args[name])) == np.inf for fn in funcs.values())
            continue
        # One division by a correctly rounded constant: at most ~2 ulps apart.
        assert math.isclose(
            f(funcs["bits"](*args[name])), nats / LN2, rel_tol=1e-15, abs_tol=1e-300
        )
        assert f(funcs[2](*args[name])) == f(funcs["bits"](*args[name]))
        assert math.isclose(
            f(funcs["bans"](*args[name])), nats / LN10, rel_tol=1e-15, abs_tol=1e-300
        )
        # log(e) is 1.0 in double precision: base e is exactly nats.
        assert f(funcs[math.e](*args[name])) == nats


@EXAMPLES
@given(joint_table())
def test_unit_conversion_joint(pxy):
    nats = f(UNIT_JOINT[None](pxy))
    # One division by a correctly rounded constant: at most ~2 ulps apart.
    assert math.isclose(f(UNIT_JOINT["bits"](pxy)), nats / LN2, rel_tol=1e-15, abs_tol=1e-300)
    assert math.isclose(f(UNIT_JOINT["bans"](pxy)), nats / LN10, rel_tol=1e-15, abs_tol=1e-300)
    assert f(UNIT_JOINT[math.e](pxy)) == nats
