"""Gaussian-copula estimators and the all-multiplets scan, against hoi and references.

Two references that jaxent's code does not share:

* ``hoi`` (0.0.7, a test-only dependency): ``entropy_gc``, ``mi_gc`` and the metrics
  ``Oinfo``, ``TC``, ``DTC``, ``Sinfo``, ``InfoTopo``, which report bits. Run with x64 on,
  its entropies are float64 like ours (agreement ~1e-15); its metrics store their
  results in float32 (relative rounding 6e-8), and ``InfoTopo`` stores the entropies
  before their alternating sum in float32, so its co-information carries an absolute
  error of about float32's epsilon times the entropies summed.
* A float64 NumPy/SciPy reference written from Ince et al. (2017): ordinal ranks
  (``scipy.stats.rankdata(method="ordinal")``, ties by position), normal scores with
  ``scipy.special.ndtri``, ``numpy.linalg.slogdet`` and the Wishart bias terms with
  ``scipy.special.digamma``.

The statistical tests compare with Gaussian closed forms within the sampling error
(documented at each test).
"""

import functools
import itertools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import digamma, ndtri
from scipy.stats import rankdata

import jaxent as je
from jaxent.estimators._multiplets import MEASURES

E = je.estimators
# float64 against float64: the same closed forms, summed in another order.
RTOL = 1e-10


def _ref_entropy(x, bias_correction=True):
    """Gaussian-copula entropy (nats) of x [n, d], float64, from the paper's formulas."""
    n, d = x.shape
    ranks = rankdata(x, method="ordinal", axis=0)
    z = ndtri(ranks / (n + 1))
    z = z - z.mean(axis=0)
    cov = z.T @ z / (n - 1)
    h = d / 2 * (1 + np.log(2 * np.pi)) + np.linalg.slogdet(cov)[1] / 2
    if bias_correction:
        h -= (digamma((n - np.arange(1, d + 1)) / 2).sum() + d * np.log(2 / (n - 1))) / 2
    return h


def _ref_measure(x, subset, measure, bias_correction=True):
    """A measure of the variables ``subset`` of x [n, F] from reference entropies."""

    def h(cols):
        return _ref_entropy(x[:, list(cols)], bias_correction) if cols else 0.0

    k = len(subset)
    joint = h(subset)
    if measure == "co_information":
        subs = (c for m in range(1, k + 1) for c in itertools.combinations(subset, m))
        return sum((-1) ** (len(c) - 1) * h(c) for c in subs)
    tc = sum(h((j,)) for j in subset) - joint
    dtc = sum(h(tuple(s for s in subset if s != j)) for j in subset) - (k - 1) * joint
    return {
        "total_correlation": tc,
        "dual_total_correlation": dtc,
        "o_information": tc - dtc,
        "s_information": tc + dtc,
    }[measure]


def _mixed(rng, n, num):
    """Dependent non-Gaussian samples [n, num] with ties in the first column."""
    x = rng.normal(size=(n, num))
    for j in range(1, num):
        x[:, j] += 0.6 * x[:, j - 1]
    x[:, -1] = np.exp(x[:, -1])
    x[::5, 0] = 0.25  # ties, ranked by position
    return x


# ---------------------------------------------------------------- estimators


@pytest.mark.parametrize("bias_correction", [True, False])
@pytest.mark.parametrize("d", [1, 3])
def test_entropy_matches_reference(rng, d, bias_correction):
    x = _mixed(rng, 200, d)
    h = E.gaussian_copula_entropy(x, bias_correction=bias_correction)
    np.testing.assert_allclose(h, _ref_entropy(x, bias_correction), rtol=RTOL)


@pytest.mark.parametrize("bias_correction", [True, False])
def test_mutual_information_and_conditional_match_reference(rng, bias_correction):
    w = _mixed(rng, 150, 5)
    x, y, z = w[:, :2], w[:, 2:3], w[:, 3:]

    def h(*parts):
        return _ref_entropy(np.hstack(parts), bias_correction)

    mi = E.gaussian_copula_mutual_information(x, y, bias_correction=bias_correction)
    np.testing.assert_allclose(mi, h(x) + h(y) - h(x, y), rtol=RTOL)
    cmi = E.gaussian_copula_conditional_mutual_information(x, y, z, bias_correction=bias_correction)
    np.testing.assert_allclose(cmi, h(x, z) + h(y, z) - h(z) - h(x, y, z), rtol=RTOL)


@pytest.mark.slow  # hoi compiles each of its functions (seconds each)
@pytest.mark.filterwarnings("ignore::FutureWarning")  # hoi's own float64-to-float32 scatter
@pytest.mark.parametrize("bias_correction", [True, False])
def test_entropy_and_mi_equal_hoi(rng, bias_correction):
    hoi_entropies = pytest.importorskip("hoi.core.entropies")
    hoi_mi = pytest.importorskip("hoi.core.mi")
    w = _mixed(rng, 300, 4)
    # hoi takes [d, n] and reports bits; the brief asks for 1e-6, both are float64.
    h = E.gaussian_copula_entropy(w, bias_correction=bias_correction, base=2)
    ref = hoi_entropies.entropy_gc(jnp.asarray(w.T), bias_correction)
    np.testing.assert_allclose(h, ref, rtol=1e-12)
    x, y = w[:, :1], w[:, 1:]
    mi = E.gaussian_copula_mutual_information(x, y, bias_correction=bias_correction, base=2)
    ref = hoi_mi.mi_gc(jnp.asarray(x.T), jnp.asarray(y.T), bias_correction, True)
    np.testing.assert_allclose(mi, ref, rtol=1e-12)
    z = w[:, 3:]
    cmi = E.gaussian_copula_conditional_mutual_information(
        w[:, :1], w[:, 1:3], z, bias_correction=bias_correction, base=2
    )
    cond = hoi_mi.get_cond_mi("gc", biascorrect=bias_correction)
    ref = cond(jnp.asarray(w[:, :1].T), jnp.asarray(w[:, 1:3].T), jnp.asarray(z.T))
    np.testing.assert_allclose(cmi, ref, rtol=1e-12)


def test_invariant_under_increasing_transforms(rng):
    x, y = rng.normal(size=(2, 300, 2))
    y[:, 0] += x[:, 1]
    mi = E.gaussian_copula_mutual_information(x, y)
    moved = E.gaussian_copula_mutual_information(np.exp(x), 3 * y**3 - 7)
    assert float(mi) == float(moved)  # the same ranks: bit for bit


@pytest.mark.slow  # 40 replicates of n = 2000 (the doctests check one draw each)
def test_gaussian_samples_match_closed_forms(rng):
    # 40 replicates of n = 2000 bivariate/trivariate Gaussians. The copula of a Gaussian
    # is Gaussian, so the estimates are unbiased up to O(1/n) from the normal scores;
    # the spread of one MI estimate is about rho / sqrt(n) = 0.013 nats here, of the mean
    # of 40 replicates 0.002: 0.01 is 5 standard errors.
    reps, n, rho = 40, 2000, 0.6
    a, b, c = rng.normal(size=(3, reps, n, 1))
    x, y = a, rho * a + math.sqrt(1 - rho**2) * b
    mi = E.gaussian_copula_mutual_information(x, y)
    chex.assert_shape(mi, (reps,))
    assert abs(float(jnp.mean(mi)) + 0.5 * math.log(1 - rho**2)) < 0.01
    # Entropy of standard normal marginals with correlation rho (the copula's entropy).
    corr = np.array([[1, rho], [rho, 1]])
    h = E.gaussian_copula_entropy(np.concatenate([x, y], axis=-1))
    assert abs(float(jnp.mean(h)) - float(je.gaussian_entropy(corr))) < 0.01
    # A chain x -> y -> z: I(X; Z | Y) = 0, I(X; Y | Z) from the partial correlation.
    z = rho * y + math.sqrt(1 - rho**2) * c
    assert abs(float(jnp.mean(E.gaussian_copula_conditional_mutual_information(x, z, y)))) < 0.01
    partial = (rho - rho * rho**2) / math.sqrt((1 - rho**4) * (1 - rho**2))
    cmi = E.gaussian_copula_conditional_mutual_information(x, y, z)
    assert abs(float(jnp.mean(cmi)) + 0.5 * math.log(1 - partial**2)) < 0.01


def test_batches_broadcast_and_equal_single_calls(rng):
    x = rng.normal(size=(3, 1, 60, 2))
    y = rng.normal(size=(4, 60, 1)) + x[0, 0, :, :1]
    mi = E.gaussian_copula_mutual_information(x, y, base="bits")
    chex.assert_shape(mi, (3, 4))
    for i, j in itertools.product(range(3), range(4)):
        single = E.gaussian_copula_mutual_information(x[i, 0], y[j], base="bits")
        np.testing.assert_allclose(mi[i, j], single, rtol=1e-12)


def test_jit_and_vmap_equal_direct_calls(rng):
    x, y, z = rng.normal(size=(3, 5, 80, 1))
    direct = E.gaussian_copula_conditional_mutual_information(x, y, z)
    jitted = jax.jit(E.gaussian_copula_conditional_mutual_information)(x, y, z)
    mapped = jax.vmap(E.gaussian_copula_conditional_mutual_information)(x, y, z)
    np.testing.assert_allclose(jitted, direct, rtol=1e-12)
    np.testing.assert_allclose(mapped, direct, rtol=1e-12)


def test_gradient_is_zero_and_finite(rng):
    x = rng.normal(size=(50, 2))
    g = jax.grad(lambda v: E.gaussian_copula_entropy(v))(x)
    assert np.all(g == 0)


def test_shape_errors_name_the_sizes(rng):
    x = rng.normal(size=(30, 2))
    with pytest.raises(ValueError, match=r"same number of paired samples.*\(30, 2\).*\(29, 1\)"):
        E.gaussian_copula_mutual_information(x, x[:29, :1])
    with pytest.raises(ValueError, match="samples \\[..., n, d\\]"):
        E.gaussian_copula_entropy(x[:, 0])
    with pytest.raises(ValueError, match="more samples than dimensions: got n = 3"):
        E.gaussian_copula_conditional_mutual_information(x[:3, :1], x[:3, 1:], x[:3, :1])
    with pytest.raises(ValueError, match="do not broadcast"):
        E.gaussian_copula_mutual_information(np.zeros((2, 9, 1)), np.zeros((3, 9, 1)))


def test_checked_reports_nan(rng):
    x = rng.normal(size=(20, 2))
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="z contains NaN"):
        je.checked(E.gaussian_copula_conditional_mutual_information)(x[:, :1], x[:, :1] * 0, x)
    with pytest.raises(ValueError, match="x contains NaN"):
        je.checked(E.multiplets)(x, 2)


def test_float32_strict_and_half_precision(rng):
    x = rng.normal(size=(100, 3))
    ref = E.gaussian_copula_mutual_information(x[:, :1], x[:, 1:])
    with jax.enable_x64(False), jax.numpy_dtype_promotion("strict"):
        f32 = x.astype(np.float32)
        mi = jax.jit(E.gaussian_copula_mutual_information)(f32[:, :1], f32[:, 1:])
        assert mi.dtype == jnp.float32
        np.testing.assert_allclose(mi, ref, atol=1e-5)  # float32 log-determinants
        _, o = E.multiplets(f32, 3, measure="co_information")
        assert o.dtype == jnp.float32
    h16 = E.gaussian_copula_entropy(jnp.asarray(x, jnp.float16))
    assert h16.dtype == jnp.float16


# ---------------------------------------------------------------- multiplets


# One program per (F, size, chunk, measure): the fast tests share F = 6, chunk 4.
F, CHUNK = 6, 4
SLOW = pytest.mark.slow


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize(
    "size",
    [pytest.param(1, marks=SLOW), pytest.param(2, marks=SLOW), 3, pytest.param(4, marks=SLOW)],
)
def test_multiplets_match_reference(rng, measure, size):
    x = _mixed(rng, 120, F)
    index, value = E.multiplets(x, size, measure=measure, chunk_size=CHUNK)
    expected_index = list(itertools.combinations(range(F), size))
    assert index.dtype == jnp.int32
    np.testing.assert_array_equal(index, expected_index)
    ref = [_ref_measure(x, s, measure) for s in expected_index]
    # Values near 0 (size 1, or independent-ish variables) carry the rounding of the
    # entropies they are differences of (~1e-15 nats).
    np.testing.assert_allclose(value, ref, rtol=RTOL, atol=1e-12)


def test_multiplets_without_bias_correction_and_in_bits(rng):
    x = _mixed(rng, 90, F)
    index, value = E.multiplets(x, 3, bias_correction=False, base=2, chunk_size=CHUNK)
    ref = [_ref_measure(x, s, "o_information", False) / math.log(2) for s in index.tolist()]
    np.testing.assert_allclose(value, ref, rtol=RTOL, atol=1e-12)


# hoi compiles each metric (seconds each): slow. The fast tests compare with the float64
# reference above, which these tests tie to hoi.
@pytest.mark.filterwarnings("ignore::FutureWarning")  # hoi's float64-to-float32 scatter
@pytest.mark.parametrize(
    ("measure", "metric", "size"),
    [
        pytest.param("o_information", "Oinfo", 3, marks=SLOW),
        pytest.param("o_information", "Oinfo", 4, marks=SLOW),
        pytest.param("total_correlation", "TC", 4, marks=SLOW),
        pytest.param("dual_total_correlation", "DTC", 4, marks=SLOW),
        pytest.param("s_information", "Sinfo", 4, marks=SLOW),
        pytest.param("co_information", "InfoTopo", 3, marks=SLOW),
        pytest.param("co_information", "InfoTopo", 4, marks=SLOW),
    ],
)
def test_multiplets_equal_hoi(rng, measure, metric, size):
    metrics = pytest.importorskip("hoi.metrics")
    x = _mixed(rng, 400, F)
    _, value = E.multiplets(x, size, measure=measure, base=2, chunk_size=CHUNK)
    ref = getattr(metrics, metric)(x, verbose=False).fit(minsize=size, maxsize=size, method="gc")
    if metric == "InfoTopo":
        # Its entropies are stored in float32 before the alternating sum over the
        # 2^size - 1 subsets: absolute error ~ eps32 * sum of |H| (up to ~2e-6 bits
        # for 4 variables here).
        np.testing.assert_allclose(value, ref[:, 0], rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_allclose(value, ref[:, 0], rtol=1e-5)  # float32 storage: 6e-8


def test_multiplets_identities(rng):
    x = _mixed(rng, 200, F)
    v = {m: E.multiplets(x, 3, measure=m, chunk_size=CHUNK)[1] for m in MEASURES}
    tc, dtc = v["total_correlation"], v["dual_total_correlation"]
    np.testing.assert_allclose(v["o_information"], tc - dtc, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(v["s_information"], tc + dtc, rtol=1e-12)
    # Co-information of three variables: I(X;Y) - I(X;Y|Z), bias corrections included.
    i, j, k = 1, 2, 4
    a, b, c = x[:, i : i + 1], x[:, j : j + 1], x[:, k : k + 1]
    co = E.gaussian_copula_mutual_information(
        a, b
    ) - E.gaussian_copula_conditional_mutual_information(a, b, c)
    rank = list(itertools.combinations(range(F), 3)).index((i, j, k))
    np.testing.assert_allclose(v["co_information"][rank], co, rtol=1e-10)
    assert np.all(np.asarray(tc) >= 0) and np.all(np.asarray(dtc) >= 0)


@pytest.mark.slow
def test_multiplets_of_pairs_are_mutual_information(rng):
    # Pairs: TC, DTC and co-information are all the (copula) mutual information.
    x = _mixed(rng, 200, F)
    index, mi = E.multiplets(x, 2, measure="total_correlation")
    for m in ("dual_total_correlation", "co_information"):
        np.testing.assert_allclose(E.multiplets(x, 2, measure=m)[1], mi, rtol=1e-12)
    i, j = index[7].tolist()
    pair = E.gaussian_copula_mutual_information(x[:, i : i + 1], x[:, j : j + 1])
    np.testing.assert_allclose(mi[7], pair, rtol=1e-10)


def test_multiplets_chunks_do_not_change_results(rng):
    x = _mixed(rng, 80, 9)
    _, whole = E.multiplets(x, 4, measure="s_information")
    for chunk in (5, 1000):
        index, value = E.multiplets(x, 4, measure="s_information", chunk_size=chunk)
        assert index.shape == (126, 4)
        np.testing.assert_allclose(value, whole, rtol=1e-14)


def test_multiplets_compile_once_per_shape(rng):
    # The same (F, size, chunk, measure) with new data or another n: no new program.
    from jaxent.estimators import _multiplets

    before = _multiplets._all_multiplets._cache_size()
    for n in (30, 31):
        E.multiplets(rng.normal(size=(n, 7)), 3, measure="dual_total_correlation", chunk_size=6)
    assert _multiplets._all_multiplets._cache_size() == before + 1


def test_multiplets_errors(rng):
    x = rng.normal(size=(10, 4))
    with pytest.raises(ValueError, match="measure must be one of"):
        E.multiplets(x, 2, measure="o_info")
    with pytest.raises(ValueError, match="method must be one of"):
        E.multiplets(x, 2, method="knn")
    with pytest.raises(ValueError, match="size must be an integer from 1 to the 4 variables"):
        E.multiplets(x, 5)
    with pytest.raises(ValueError, match="size must be an integer"):
        E.multiplets(x, 0)
    with pytest.raises(ValueError, match=r"x must be samples \[n, F\].*\(2, 10, 4\)"):
        E.multiplets(np.stack([x, x]), 2)
    with pytest.raises(ValueError, match="more samples than variables per multiplet: got n = 3"):
        E.multiplets(x[:3], 3)
    with pytest.raises(ValueError, match="C\\(200, 5\\) = 2535650040 multiplets"):
        E.multiplets(np.zeros((10, 200)), 5)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_multiplets_equal_hoi_on_a_larger_system(rng):
    metrics = pytest.importorskip("hoi.metrics")
    x = _mixed(rng, 1000, 16)
    for size in (3, 5):
        _, value = E.multiplets(x, size, base=2, chunk_size=1000)
        ref = metrics.Oinfo(x, verbose=False).fit(minsize=size, maxsize=size, method="gc")
        np.testing.assert_allclose(value, ref[:, 0], rtol=1e-5)


def test_host_digamma_matches_scipy():
    from jaxent.estimators._copula import _digamma

    for x in (0.5, 1.0, 2.5, 7.9, 8.0, 123.5, 4999.5):
        assert abs(_digamma(x) - digamma(x)) <= 1e-14 * max(1.0, abs(digamma(x)))


def test_multiplets_under_jit_and_vmap(rng):
    x = rng.normal(size=(2, 50, F))
    scan = functools.partial(E.multiplets, size=3, chunk_size=CHUNK)
    index, direct = scan(x[1])
    jit_index, jitted = jax.jit(scan)(x[1])
    np.testing.assert_array_equal(jit_index, index)
    np.testing.assert_allclose(jitted, direct, rtol=1e-12)
    batch_index, mapped = jax.vmap(scan)(x)
    chex.assert_shape((batch_index, mapped), ((2, 20, 3), (2, 20)))
    np.testing.assert_allclose(mapped[1], direct, rtol=1e-12)
