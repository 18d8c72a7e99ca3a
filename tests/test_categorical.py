"""Categorical measures against SciPy (float64) and closed forms."""

import chex
import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as st
from jax.test_util import check_grads
from scipy.spatial.distance import jensenshannon

import jaxent as je
from tests.utils import random_probs

# float64 inputs, float64 references: agreement to a few ulps of the sum (rtol 1e-12
# leaves room for different summation orders over up to 50 terms).
RTOL = 1e-12


def _pq(rng, shape=(6, 9)):
    return random_probs(rng, shape), random_probs(rng, shape)


@pytest.fixture
def pq(rng):
    return _pq(rng)


# Each measure gives the SciPy value eagerly and under jit (the variant fixture).


def test_entropy(variant, pq):
    p, _ = pq
    got = variant(je.entropy)(p)
    np.testing.assert_allclose(got, st.entropy(p, axis=-1), rtol=RTOL)


def test_cross_entropy(variant, pq):
    p, q = pq
    q = np.where(p > 0, q + 0.01, q)  # keep it finite
    got = variant(je.cross_entropy)(p, q)
    ref = -np.sum(sp.xlogy(p, q), axis=-1)
    np.testing.assert_allclose(got, ref, rtol=RTOL)


def test_kl_divergence(variant, pq):
    p, q = pq
    got = variant(je.kl_divergence)(p, q)
    ref = st.entropy(p, q, axis=-1)  # inf on support mismatch too
    np.testing.assert_allclose(got, ref, rtol=RTOL)


def test_js_divergence(variant, pq):
    p, q = pq
    got = variant(lambda p, q: je.js_divergence(p, q, base=2))(p, q)
    ref = jensenshannon(p, q, base=2, axis=-1) ** 2  # scipy gives the distance
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-15)


def test_total_variation_and_hellinger(variant, pq):
    p, q = pq
    tv = variant(je.total_variation)(p, q)
    np.testing.assert_allclose(tv, 0.5 * np.abs(p - q).sum(-1), rtol=RTOL)
    hd = variant(je.hellinger_distance)(p, q)
    ref = np.sqrt(0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum(-1))
    np.testing.assert_allclose(hd, ref, rtol=RTOL)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.7, 1.0 - 1e-9, 1.0, 1.0 + 1e-9, 1.6, 2.0, 7.5])
def test_renyi_and_tsallis(alpha, variant, pq):
    p, _ = pq
    support = p > 0
    if alpha == 1.0 or abs(alpha - 1) < 1e-6:
        renyi_ref = st.entropy(p, axis=-1)
        tsallis_ref = renyi_ref
    else:
        power_sum = np.sum(np.where(support, p, 1) ** alpha * support, axis=-1)
        renyi_ref = np.log(power_sum) / (1 - alpha)
        tsallis_ref = (1 - power_sum) / (alpha - 1)
    # Near alpha = 1 the closed form itself loses ~|log eps / (alpha - 1)| digits;
    # the Shannon limit is the better reference there (error O(alpha - 1)).
    tol = 1e-8 if abs(alpha - 1) < 1e-6 else 1e-11
    got = variant(lambda p: je.renyi_entropy(p, alpha))(p)
    np.testing.assert_allclose(got, renyi_ref, rtol=tol)
    got = variant(lambda p: je.tsallis_entropy(p, alpha))(p)
    np.testing.assert_allclose(got, tsallis_ref, rtol=tol, atol=1e-14)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.9, 1.0, 1.2, 2.0, 5.0])
def test_renyi_divergence(alpha, variant, pq):
    p, q = pq
    q = np.where(p > 0, q + 0.05, q)
    q = q / q.sum(-1, keepdims=True)
    if alpha == 1.0:
        ref = st.entropy(p, q, axis=-1)
    else:
        s = p > 0
        terms = np.where(s, np.where(s, p, 1) ** alpha * np.where(s, q, 1) ** (1 - alpha), 0)
        ref = np.log(terms.sum(-1)) / (alpha - 1)
    got = variant(lambda p, q: je.renyi_divergence(p, q, alpha))(p, q)
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-15)


def test_renyi_limits(rng):
    p = random_probs(rng, (5, 7))
    support = (p > 0).sum(-1)
    np.testing.assert_allclose(je.renyi_entropy(p, 0.0), np.log(support), rtol=RTOL)
    np.testing.assert_allclose(je.renyi_entropy(p, jnp.inf), -np.log(p.max(-1)), rtol=RTOL)
    np.testing.assert_allclose(je.renyi_entropy(p, 1.0), st.entropy(p, axis=-1), rtol=RTOL)


@pytest.mark.slow
def test_renyi_is_continuous_and_differentiable_at_one(rng):
    p = random_probs(rng, (9,))
    h = jax.jit(lambda a: je.renyi_entropy(p, a))  # one compilation for the checks below
    for eps in (1e-3, 1e-6, 1e-9, 1e-12):
        assert abs(h(1 + eps) - h(1.0)) < 10 * eps + 1e-15
        assert abs(h(1 - eps) - h(1.0)) < 10 * eps + 1e-15
    # d H_alpha / d alpha at 1 is -Var[log p] / 2 under p.
    logp = np.log(p[p > 0])
    var = np.sum(p[p > 0] * logp**2) - np.sum(p[p > 0] * logp) ** 2
    np.testing.assert_allclose(jax.grad(h)(1.0), -var / 2, rtol=1e-8)
    check_grads(h, (1.0,), order=2, modes=["fwd", "rev"])
    check_grads(h, (2.5,), order=2, modes=["fwd", "rev"])


def test_renyi_alpha_broadcasts_against_batch(rng):
    p = random_probs(rng, (3, 5))
    alpha = jnp.array([0.5, 1.0, 2.0])
    got = je.renyi_entropy(p, alpha)
    want = jnp.stack([je.renyi_entropy(p[i], alpha[i]) for i in range(3)])
    np.testing.assert_allclose(got, want, rtol=RTOL)
    grid = je.renyi_entropy(p[0], jnp.array([0.0, 1.0, 2.0, jnp.inf]))
    chex.assert_shape(grid, (4,))


def test_renyi_divergence_support_mismatch():
    p, q = jnp.array([0.5, 0.5, 0.0]), jnp.array([1.0, 0.0, 0.0])
    assert je.renyi_divergence(p, q, 1.0) == jnp.inf
    assert je.renyi_divergence(p, q, 2.0) == jnp.inf
    # For alpha < 1 the mismatched event just drops out: -log(sum p^a q^(1-a)) / (1 - a).
    np.testing.assert_allclose(je.renyi_divergence(p, q, 0.5), -2 * np.log(np.sqrt(0.5)))
    np.testing.assert_allclose(je.renyi_divergence(p, q, 0.9), -10 * np.log(0.5**0.9))


@pytest.mark.parametrize("fn", [je.kl_divergence, je.cross_entropy])
def test_support_mismatch_is_inf_never_nan(fn):
    p = jnp.array([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0]])
    q = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    got = fn(p, q)
    np.testing.assert_array_equal(got, [jnp.inf, jnp.inf])
    g = jax.grad(lambda q: jnp.sum(fn(p, q)))(q)
    assert not jnp.any(jnp.isnan(g))


def test_one_hot_entropy_is_exactly_zero():
    for dtype in (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64):
        h = je.entropy(jnp.eye(10, dtype=dtype))
        assert h.dtype == dtype
        np.testing.assert_array_equal(h, np.zeros(10))


def test_kl_of_identical_distributions_is_exactly_zero(rng):
    p = random_probs(rng, (4, 10))
    np.testing.assert_array_equal(je.kl_divergence(p, p), np.zeros(4))
    np.testing.assert_array_equal(je.js_divergence(p, p), np.zeros(4))


@pytest.mark.parametrize(
    "fn",
    [
        je.entropy,
        je.cross_entropy,
        je.kl_divergence,
        je.js_divergence,
        je.total_variation,
        je.hellinger_distance,
    ],
)
def test_gradients_are_finite_with_zeros(fn, rng):
    p, q = _pq(rng, (4, 8))
    p[:, 0], q[:, 0] = 0.0, 0.0  # an event outside both supports
    q = np.where(p > 0, np.maximum(q, 0.01), q)  # keep the values finite
    args = (p,) if fn is je.entropy else (p, q)
    grads = jax.grad(lambda *a: jnp.sum(fn(*a)), argnums=tuple(range(len(args))))(*args)
    chex.assert_tree_all_finite(grads)


def test_kl_gradient_in_q_is_zero_outside_support_of_p(rng):
    p, q = random_probs(rng, (3, 8), zeros=0.0), random_probs(rng, (3, 8), zeros=0.0)
    p[:, :3] = 0.0
    p /= p.sum(-1, keepdims=True)
    q[:, 1] = 0.0  # also q = 0 there
    g = jax.grad(lambda q: jnp.sum(je.kl_divergence(p, q)))(q)
    np.testing.assert_array_equal(g[:, :3], 0.0)
    np.testing.assert_allclose(g[:, 3:], -p[:, 3:] / q[:, 3:], rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(
    "fn",
    [je.entropy, je.cross_entropy, je.kl_divergence, je.js_divergence, je.hellinger_distance],
)
def test_check_grads_on_the_interior(fn, rng):
    # Entries bounded away from 0 keep finite differences (eps 1e-6) accurate.
    p, q = (x / x.sum(-1, keepdims=True) for x in rng.uniform(0.5, 1.5, (2, 3, 5)))
    args = (p,) if fn is je.entropy else (p, q)
    check_grads(jax.jit(fn), args, order=2, modes=["fwd", "rev"], eps=1e-6)


def test_vmap_matches_batch(rng):
    p, q = _pq(rng, (7, 5))
    for fn in (je.entropy, je.kl_divergence, je.js_divergence, je.cross_entropy):
        args = (p,) if fn is je.entropy else (p, q)
        np.testing.assert_allclose(jax.vmap(fn)(*args), fn(*args), rtol=RTOL)
    got = jax.vmap(je.renyi_entropy, in_axes=(0, 0))(p, jnp.linspace(0.0, 3.0, 7))
    want = je.renyi_entropy(p, jnp.linspace(0.0, 3.0, 7))
    np.testing.assert_allclose(got, want, rtol=RTOL)


def test_axis_matches_moveaxis(rng):
    p, q = _pq(rng, (4, 6, 3))
    got = je.kl_divergence(p, q, axis=1)
    want = je.kl_divergence(np.moveaxis(p, 1, -1), np.moveaxis(q, 1, -1))
    np.testing.assert_allclose(got, want, rtol=RTOL)
    np.testing.assert_allclose(
        je.renyi_entropy(p, 2.0, axis=0), je.renyi_entropy(np.moveaxis(p, 0, -1), 2.0), rtol=RTOL
    )


def test_where_matches_slicing(rng):
    p, q = _pq(rng, (5, 8))
    keep = np.arange(8) < 5
    for fn in (
        je.entropy,
        je.cross_entropy,
        je.kl_divergence,
        je.js_divergence,
        je.total_variation,
    ):
        args = (p,) if fn is je.entropy else (p, q)
        sliced = tuple(a[:, :5] for a in args)
        np.testing.assert_allclose(fn(*args, where=keep), fn(*sliced), rtol=RTOL)
    np.testing.assert_allclose(
        je.renyi_entropy(p, 0.5, where=keep), je.renyi_entropy(p[:, :5], 0.5), rtol=RTOL
    )


def test_broadcasting_of_batch_axes(rng):
    p = random_probs(rng, (4, 6))
    q = random_probs(rng, (6,))
    chex.assert_shape(je.kl_divergence(p, q), (4,))
    np.testing.assert_allclose(je.kl_divergence(p, q), st.entropy(p, q[None], axis=-1), rtol=RTOL)


@pytest.mark.parametrize(
    "base, factor",
    [
        (None, 1.0),
        ("nats", 1.0),
        ("bits", np.log(2)),
        (2, np.log(2)),
        ("bans", np.log(10)),
        (10, np.log(10)),
        (np.e, 1.0),
        (3.5, np.log(3.5)),
    ],
)
def test_units(base, factor, rng):
    p = random_probs(rng, (3, 6))
    np.testing.assert_allclose(je.entropy(p, base=base), st.entropy(p, axis=-1) / factor, rtol=RTOL)


@pytest.mark.parametrize("base", [0, -2, 1, "bit", float("inf")])
def test_bad_base_is_rejected(base):
    with pytest.raises(ValueError, match="base"):
        je.entropy(jnp.array([0.5, 0.5]), base=base)


def test_shape_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        je.kl_divergence(jnp.ones(3) / 3, jnp.ones(4) / 4)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(5, 3\)"):
        jax.jit(je.js_divergence)(jnp.ones((2, 3)) / 3, jnp.ones((5, 3)) / 3)
    with pytest.raises(ValueError, match="alpha"):
        je.renyi_entropy(jnp.ones((2, 3)) / 3, jnp.ones(4))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_is_computed_in_float32(dtype, rng):
    p, q = _pq(rng, (4, 64))
    ph, qh = jnp.asarray(p, dtype), jnp.asarray(q, dtype)
    for fn in (je.entropy, je.kl_divergence, je.cross_entropy, je.js_divergence):
        args = (ph,) if fn is je.entropy else (ph, qh)
        got = fn(*args)
        assert got.dtype == dtype
        # Reference: the same half-precision inputs, upcast, in float64.
        ref = fn(*(np.asarray(a, np.float64) for a in args))
        # One rounding to the half dtype at the end: 2^-8 (bf16) / 2^-11 (f16) relative.
        rtol = 2 * float(jnp.finfo(dtype).eps)
        np.testing.assert_allclose(np.asarray(got, np.float64), ref, rtol=rtol)


def test_float32_stays_float32(rng):
    p, q = (jnp.asarray(a, jnp.float32) for a in _pq(rng))
    for fn in (je.entropy, je.kl_divergence, je.renyi_entropy):
        args = (p,) if fn is je.entropy else (p, q) if fn is je.kl_divergence else (p, 2.0)
        assert fn(*args).dtype == jnp.float32


def test_works_inside_scan(rng):
    p, q = _pq(rng, (5, 4))

    def step(carry, pq):
        return carry + je.kl_divergence(*pq), je.entropy(pq[0])

    total, hs = jax.lax.scan(step, 0.0, (p, q))
    np.testing.assert_allclose(total, st.entropy(p, q, axis=-1).sum(), rtol=RTOL)
    np.testing.assert_allclose(hs, st.entropy(p, axis=-1), rtol=RTOL)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 1.3, 2.0, np.inf])
def test_renyi_and_tsallis_gradients_finite_with_zeros(alpha, rng):
    p = np.concatenate([np.zeros((4, 1)), random_probs(rng, (4, 5))], axis=-1)
    p[0] = [0, 0, 0, 0, 0, 1.0]  # a one-hot row
    q = np.where(p > 0, np.maximum(random_probs(rng, (4, 6)), 0.01), 0.0)
    fns = (
        lambda p, q, a: je.renyi_entropy(p, a),
        lambda p, q, a: je.renyi_divergence(p, q, a),
        lambda p, q, a: je.tsallis_entropy(p, a),
    )
    for fn in fns:
        grads = jax.grad(lambda p, q, a, fn=fn: jnp.sum(fn(p, q, a)), argnums=(0, 1, 2))(
            p, q, alpha
        )
        chex.assert_tree_all_finite(grads)


@pytest.mark.slow
def test_check_grads_renyi_family(rng):
    p, q = (x / x.sum(-1, keepdims=True) for x in rng.uniform(0.5, 1.5, (2, 3, 5)))
    # eps 1e-6: the third derivatives are large (Hessian entries ~50), so the default
    # finite-difference step leaves a truncation error above check_grads' tolerance.
    # Second order in reverse mode (which differentiates the first-order rules, as
    # forward over forward would, at half the compile time), first order in both.
    second = {"order": 2, "modes": ["rev"], "eps": 1e-6}
    first = {"order": 1, "modes": ["fwd"], "eps": 1e-6}
    # The order is an argument of the jitted functions, not a constant, and all orders
    # run in this one test (one process): the large derivative graphs of the series
    # near alpha = 1 compile once, not once per order.
    renyi, divergence, tsallis = map(
        jax.jit, (je.renyi_entropy, je.renyi_divergence, je.tsallis_entropy)
    )
    for alpha in (0.5, 1.0, 2.0):
        for kw in (second, first):
            check_grads(lambda p, a=alpha: renyi(p, a), (p,), **kw)
            check_grads(lambda p, q, a=alpha: divergence(p, q, a), (p, q), **kw)
            check_grads(lambda p, a=alpha: tsallis(p, a), (p,), **kw)
        check_grads(lambda a: divergence(p, q, a), (alpha,), order=1, modes=["fwd", "rev"])


def test_hellinger_of_nearly_equal_distributions():
    p = np.array([0.3, 0.7])
    q = np.array([0.3 + 1e-6, 0.7 - 1e-6])
    # sqrt(p) - sqrt(q) = (p - q) / (sqrt(p) + sqrt(q)), evaluated in float64.
    exact = np.sqrt(0.5 * np.sum(((p - q) / (np.sqrt(p) + np.sqrt(q))) ** 2))
    got = je.hellinger_distance(jnp.asarray(p, jnp.float32), jnp.asarray(q, jnp.float32))
    # float32 inputs: q is rounded, so compare with the exact value for the rounded inputs.
    p32, q32 = np.float64(np.float32(p)), np.float64(np.float32(q))
    exact32 = np.sqrt(0.5 * np.sum(((p32 - q32) / (np.sqrt(p32) + np.sqrt(q32))) ** 2))
    np.testing.assert_allclose(float(got), exact32, rtol=1e-6)
    np.testing.assert_allclose(je.hellinger_distance(p, q), exact, rtol=1e-12)


def _renyi_mpmath(p, q, alpha) -> float:
    """Rényi divergence at 40 digits (the exponents a and 1 - a sum to exactly 1)."""
    with mpmath.workdps(40):
        mp_p, mp_q = (list(map(mpmath.mpf, map(float, a))) for a in (p, q))
        a = mpmath.mpf(alpha)
        total = mpmath.fsum(x**a * y ** (1 - a) for x, y in zip(mp_p, mp_q))
        return float(mpmath.log(total) / (a - 1))


@pytest.mark.parametrize("alpha", [0.3, 0.6, 0.9, 1.2, 1.49, 2.0])
def test_renyi_divergence_of_nearly_equal_distributions(alpha):
    # Dyadic and exactly normalized in float32, so the reference is unambiguous.
    p = np.array([0.5, 0.25, 0.25], np.float32)
    q = np.array([0.5 + 2**-20, 0.25 - 2**-21, 0.25 - 2**-21], np.float32)
    ref = _renyi_mpmath(p, q, alpha)
    got = je.renyi_divergence(p, q, alpha)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(float(got), ref, rtol=1e-6)  # a few float32 ulps


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha", [0.3, 0.7, 1.5, 4.0])
def test_renyi_and_chernoff_with_a_ratio_below_the_rounding_of_p_minus_q(dtype, alpha):
    # p_0 / q_0 = 1e-30: p_0 - q_0 rounds to -q_0, so log1p((p - q)/q) would be -inf
    # (it made the divergence NaN; beyond a factor of two the log ratio is now taken
    # from the mantissas and exponents).
    p = np.array([1e-30, 0.25, 0.75], dtype)
    q = np.array([0.5, 0.25, 0.25], dtype)
    ref = _renyi_mpmath(p, q, alpha)
    got = je.renyi_divergence(p, q, alpha)
    assert got.dtype == dtype
    np.testing.assert_allclose(float(got), ref, rtol=1e-5 if dtype == np.float32 else RTOL)
    assert np.isfinite(float(je.chernoff_information(p, q)))


def test_traced_base_error_suggests_static_argnames():
    with pytest.raises(ValueError, match="static_argnames='base'"):
        jax.jit(je.kl_divergence)(jnp.array([0.5, 0.5]), jnp.array([0.5, 0.5]), base=2.0)
    with pytest.raises(ValueError, match="positive number"):
        je.entropy(jnp.array([0.5, 0.5]), base=[2])


@pytest.mark.parametrize("tiny", [2.2250738585072014e-308, 3e-308, 1e-300])
def test_js_finite_next_to_the_smallest_normal(tiny):
    # Regression: m = (p + q)/2 flushed to 0 on CPU for q just above the smallest
    # normal, and the KL to m became +inf. JS <= log 2 always; the exact value is
    # tiny*log(2)/2 (from q log(q/m) with m = q/2), which may itself flush to 0.
    p, q = np.array([1.0, 0.0]), np.array([1.0, tiny])
    got = np.asarray([je.js_divergence(p, q), je.js_divergence(q, p)])
    assert np.all(np.isfinite(got)) and np.all(got >= 0)
    np.testing.assert_allclose(got, tiny * np.log(2) / 2, rtol=1e-12, atol=2.3e-308)
    chex.assert_tree_all_finite(jax.grad(je.js_divergence, argnums=(0, 1))(p, q))
