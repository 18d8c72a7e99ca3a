"""Nearest-neighbour estimators against scipy.spatial.cKDTree references and closed forms.

The references are written independently of jaxent: neighbour distances from a k-d tree
(float64, its own distance code), strict neighbour counts from ``query_ball_point`` with
the radius just below epsilon, and ``scipy.special.digamma``. On random data they agree
with the estimators to ~1e-10 relative. The statistical tests compare with Gaussian
closed forms, with tolerances taken from the estimators' bias and spread measured over
100 replicates (documented at each test).
"""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

import jaxent as je
from jaxent.estimators import _knn, _search

E = je.estimators

# float64 estimates vs. the k-d tree references: the same sums, rounded differently.
RTOL = 1e-10


def _kl_entropy_reference(x, k):
    n, d = x.shape
    eps = cKDTree(x).query(x, k=[k + 1], p=2)[0][:, 0]  # the nearest is the point itself
    log_ball = d / 2 * np.log(np.pi) - gammaln(d / 2 + 1)
    return digamma(n) - digamma(k) + log_ball + d * np.mean(np.log(eps))


def _ksg_reference(x, y, k):
    n = x.shape[0]
    z = np.hstack([x, y])
    eps = cKDTree(z).query(z, k=[k + 1], p=np.inf)[0][:, 0]
    # Strictly closer than eps: the largest radius below it, minus the point itself
    # (nothing is closer than eps = 0, where k copies of a point coincide).
    r = np.nextafter(eps, 0)
    nx = cKDTree(x).query_ball_point(x, r, p=np.inf, return_length=True) - 1
    ny = cKDTree(y).query_ball_point(y, r, p=np.inf, return_length=True) - 1
    nx, ny = np.where(eps > 0, nx, 0), np.where(eps > 0, ny, 0)
    return digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1))


def _kl_reference(x, y, k):
    (n, d), m = x.shape, y.shape[0]
    rho = cKDTree(x).query(x, k=[k + 1])[0][:, 0]
    nu = cKDTree(y).query(x, k=[k])[0][:, 0]
    return d * np.mean(np.log(nu / rho)) + np.log(m / (n - 1))


# Eager calls (the estimators compile their core themselves); jit and vmap are compared
# with eager calls in test_vmap_and_jit_equal_direct_calls.
@pytest.mark.parametrize(("n", "d", "k"), [(200, 1, 1), (60, 2, 3), (150, 5, 4)])
def test_entropy_matches_kdtree(n, d, k):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 2, size=d)
    got = E.kozachenko_leonenko_entropy(x, k=k)
    np.testing.assert_allclose(got, _kl_entropy_reference(x, k), rtol=RTOL)


@pytest.mark.parametrize(("n", "dx", "dy", "k"), [(60, 2, 1, 3), (300, 2, 3, 5), (100, 1, 1, 1)])
def test_ksg_matches_kdtree(n, dx, dy, k):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, dx))
    y = x[:, :1] + rng.normal(size=(n, dy))
    got = E.ksg_mutual_information(x, y, k=k)
    np.testing.assert_allclose(got, _ksg_reference(x, y, k), rtol=RTOL, atol=1e-13)


@pytest.mark.parametrize(("n", "m", "d", "k"), [(60, 65, 2, 1), (200, 150, 1, 1), (250, 300, 3, 4)])
def test_kl_matches_kdtree(n, m, d, k):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, d))
    y = 0.5 + 1.5 * rng.normal(size=(m, d))
    got = E.knn_kl_divergence(x, y, k=k)
    np.testing.assert_allclose(got, _kl_reference(x, y, k), rtol=RTOL)


@pytest.mark.parametrize("k", [3, _search.MAX_PASSES + 1])
def test_smallest_is_argmin_repeated_and_keeps_nan(k, rng):
    # The passes find argmin's column (the first minimum, ties included); a NaN comes
    # first, as from argmin and top_k, so NaN data cannot give a finite distance.
    vals = np.round(rng.normal(size=(6, 40)) * 3)  # many ties
    vals[2, 7] = vals[4, 0] = vals[4, 30] = np.nan
    index = jnp.broadcast_to(jnp.arange(40) + 100, vals.shape)
    got_v, got_i = _search.smallest(jnp.asarray(vals), index, k)
    want = np.empty((6, k), int)
    for r, row in enumerate(vals):
        row = row.copy()
        for p in range(k):
            want[r, p] = int(np.argmin(row))  # NumPy's argmin: the first NaN, if any
            row[want[r, p]] = np.inf
    np.testing.assert_array_equal(got_v, np.take_along_axis(vals, want, -1))
    if k <= _search.MAX_PASSES:  # top_k orders the NaNs and ties its own way
        np.testing.assert_array_equal(got_i, want + 100)
    assert np.isnan(got_v[2, 0]) and np.isnan(got_v[4, 0])


def test_large_k_matches_kdtree():
    # k above _MAX_PASSES takes the jax.lax.top_k path.
    k = _knn._MAX_PASSES + 4
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 120, 2))
    np.testing.assert_allclose(
        E.kozachenko_leonenko_entropy(x, k=k), _kl_entropy_reference(x, k), rtol=RTOL
    )
    np.testing.assert_allclose(
        E.ksg_mutual_information(x, y, k=k), _ksg_reference(x, y, k), rtol=RTOL, atol=1e-13
    )
    np.testing.assert_allclose(E.knn_kl_divergence(x, y, k=k), _kl_reference(x, y, k), rtol=RTOL)


def test_ksg_counts_strictly_closer_points_with_ties():
    # On a grid every distance ties: eps_i = 1 and no other point is strictly closer,
    # so n_x = n_y = 0 and I = psi(1) + psi(5) - 2 psi(1) = 1 + 1/2 + 1/3 + 1/4.
    x = jnp.arange(5.0)[:, None]
    np.testing.assert_allclose(E.ksg_mutual_information(x, x, k=1), 25 / 12, rtol=1e-14)
    # Discretized data: many ties at eps, and exact duplicates.
    rng = np.random.default_rng(2)
    x = rng.integers(0, 6, size=(150, 2)).astype(float)
    y = x[:, :1] + rng.integers(0, 3, size=(150, 1))
    np.testing.assert_allclose(
        E.ksg_mutual_information(x, y, k=3), _ksg_reference(x, y, 3), rtol=RTOL
    )


@pytest.mark.slow
def test_entropy_of_gaussian_samples():
    # Closed form 1/2 log((2 pi e)^d det cov). Over 100 replicates of n = 2000 in d = 2
    # with k = 3 the estimate had bias -0.015 and standard deviation 0.028; the mean of 4
    # replicates is within bias + 4 standard errors = 0.015 + 4 * 0.014 < 0.075.
    cov = np.array([[2.0, 0.6], [0.6, 0.5]])
    x = np.random.default_rng(4).normal(size=(4, 2000, 2)) @ np.linalg.cholesky(cov).T
    exact = 0.5 * np.log((2 * np.pi * np.e) ** 2 * np.linalg.det(cov))
    assert abs(float(jnp.mean(E.kozachenko_leonenko_entropy(x))) - exact) < 0.075


@pytest.mark.parametrize(("rho", "dx", "tol"), [(0.6, 1, 0.07), (0.0, 2, 0.05)])
@pytest.mark.slow
def test_ksg_of_gaussian_samples(rho, dx, tol):
    # Closed form -1/2 log(1 - rho^2). Over 100 replicates of n = 1000 the estimate had
    # bias 0.003 (rho = 0.6) and 0.0015 (rho = 0, dx = 2) and standard deviations 0.032
    # and 0.022; tol is bias + 4 standard errors of the mean of 4 replicates. (The sorted
    # search, as "auto" picks on CPU: the shapes and method of test_sorted_ksg_matches_kdtree.)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 1000, dx))
    y = rho * x[..., :1] + math.sqrt(1 - rho**2) * rng.normal(size=(4, 1000, 1))
    exact = -0.5 * math.log(1 - rho**2)
    got = E.ksg_mutual_information(x, y, method="sorted")
    assert abs(float(jnp.mean(got)) - exact) < tol


@pytest.mark.slow
def test_kl_of_gaussian_samples():
    # Closed form between N(0, I) and N(mq, cq) in d = 2 (0.415 nats). Over 100 replicates
    # of n = m = 2000 with k = 1 the estimate had bias -0.012 and standard deviation
    # 0.055; the mean of 4 replicates is within 0.012 + 4 * 0.028 < 0.125.
    mq, cq = np.array([0.5, -0.5]), np.array([[1.5, 0.3], [0.3, 0.8]])
    rng = np.random.default_rng(6)
    x = rng.normal(size=(4, 2000, 2))
    y = rng.normal(size=(4, 2000, 2)) @ np.linalg.cholesky(cq).T + mq
    exact = 0.5 * (
        np.trace(np.linalg.inv(cq)) + mq @ np.linalg.solve(cq, mq) - 2 + np.log(np.linalg.det(cq))
    )
    assert abs(float(jnp.mean(E.knn_kl_divergence(x, y))) - exact) < 0.125


# Most tests share these shapes, so that they share compiled code: x [60, 2] and
# y [60, 1] for the entropy and KSG (k = 3), z [65, 2] for the KL estimate (k = 1).
def _samples(seed=7, n=60):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    return x, x[:, :1] + rng.normal(size=(n, 1)), rng.normal(size=(n + 5, 2)) + 0.3


def _batched():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 3, 60, 2))
    y = rng.normal(size=(3, 60, 1))  # broadcasts against x's batch shape (2, 3)
    z = rng.normal(size=(2, 1, 65, 2))
    return x, y, z


def _all_three(x, y, z, **kw):
    return (
        E.kozachenko_leonenko_entropy(x, **kw),
        E.ksg_mutual_information(x, y, **kw),
        E.knn_kl_divergence(x, z, **kw),
    )


def test_units():
    x, y, z = _samples()
    nats = _all_three(x, y, z)
    for base, scale in [(2, math.log(2)), ("bits", math.log(2)), ("bans", math.log(10))]:
        for a, b in zip(nats, _all_three(x, y, z, base=base)):
            np.testing.assert_allclose(b, a / scale, rtol=1e-14)


def test_batch_axes_equal_a_loop():
    x, y, z = _batched()
    h, mi, kl = _all_three(x, y, z)
    assert h.shape == mi.shape == kl.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            one = _all_three(x[i, j], y[j], z[i, 0])
            np.testing.assert_allclose([h[i, j], mi[i, j], kl[i, j]], one, rtol=1e-13)


def test_blocks_of_rows_and_groups_of_problems_agree(monkeypatch):
    x, y, z = _batched()
    whole = _all_three(x, y, z)
    # 1000 differences at a time: one problem at a time, in blocks of 8 rows for the
    # entropy (the last block padded), 5 for KSG, 4 for KL.
    monkeypatch.setattr(_knn, "_BLOCK_ELEMENTS", 1000)
    for a, b in zip(whole, _all_three(x, y, z)):
        np.testing.assert_array_equal(b, a)
    # 28800: whole problems for the entropy, 4 at a time (6 problems, the last group padded).
    monkeypatch.setattr(_knn, "_BLOCK_ELEMENTS", 4 * 60 * 60 * 2)
    np.testing.assert_array_equal(E.kozachenko_leonenko_entropy(x), whole[0])


def test_vmap_and_jit_equal_direct_calls():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(2, 4, 60, 2))
    z = rng.normal(size=(4, 65, 2))
    direct = _all_three(x, y[..., :1], z)
    mapped = jax.jit(jax.vmap(lambda x, y, z: _all_three(x, y[:, :1], z)))(x, y, z)
    for a, b in zip(direct, mapped):
        np.testing.assert_allclose(b, a, rtol=1e-13)


@pytest.mark.slow
def test_gradients_match_finite_differences():
    # Away from ties the choice of neighbour is locally constant, so the estimates are
    # smooth in the samples. (The neighbour search is outside differentiation, so the
    # blocked search needs no separate gradient test.)
    x, _, z = _samples()
    check_grads(E.kozachenko_leonenko_entropy, (x,), order=2, modes=("rev",), eps=1e-6)
    check_grads(E.knn_kl_divergence, (x, z), order=1, eps=1e-6)


def test_ksg_gradient_is_zero():
    x, y, _ = _samples()
    gx, gy = jax.grad(lambda x, y: E.ksg_mutual_information(x, y), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, 0)
    np.testing.assert_array_equal(gy, 0)


def test_duplicate_points():
    x, y, z = _samples()
    three, four = x.copy(), x.copy()
    three[1:3] = x[0]  # x[0] three times: its 3rd neighbour is elsewhere, eps > 0
    four[1:4] = x[0]  # four times: eps = 0 for k = 3, log 0 = -inf
    assert np.isfinite(E.kozachenko_leonenko_entropy(three))
    assert E.kozachenko_leonenko_entropy(four) == -np.inf
    # KSG counts the copies as they are (eps = 0, n_x = n_y = 0): finite, = reference.
    y4 = y.copy()
    y4[1:4] = y[0]
    np.testing.assert_allclose(
        E.ksg_mutual_information(four, y4), _ksg_reference(four, y4, 3), rtol=RTOL
    )
    # rho = 0 (a point of x repeated) gives +inf; nu = 0 (a point of x in y) gives -inf.
    z0 = z.copy()
    z0[0] = x[0]
    assert E.knn_kl_divergence(three, z) == np.inf
    assert E.knn_kl_divergence(x, z0) == -np.inf
    chex.assert_tree_all_finite(jax.grad(E.kozachenko_leonenko_entropy)(four))
    chex.assert_tree_all_finite(jax.grad(E.knn_kl_divergence, argnums=(0, 1))(three, z0))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_low_precision_inputs_keep_their_dtype(dtype):
    x, y, z = _samples()
    x, y, z = (jnp.asarray(a, dtype) for a in (x, y, z))
    x64, y64, z64 = (np.asarray(a, np.float64) for a in (x, y, z))
    refs = (
        _kl_entropy_reference(x64, 3),
        _ksg_reference(x64, y64, 3),
        _kl_reference(x64, z64, 1),
    )
    for got, ref in zip(_all_three(x, y, z), refs):
        assert got.dtype == dtype
        # Computed in float32 from the rounded samples; one rounding to the output dtype.
        np.testing.assert_allclose(
            np.asarray(got, np.float64), ref, rtol=2 * float(jnp.finfo(dtype).eps), atol=1e-5
        )


def test_integer_samples_give_default_float():
    x = np.array([[0], [1], [3], [7], [8]])
    assert E.kozachenko_leonenko_entropy(x, k=1).dtype == jnp.float64
    np.testing.assert_allclose(
        E.kozachenko_leonenko_entropy(x, k=1),
        _kl_entropy_reference(x.astype(float), 1),
        rtol=RTOL,
    )


def test_invariances():
    x, y, z = _samples()
    perm = np.random.default_rng(10).permutation(len(x))
    for a, b in zip(_all_three(x, y, z), _all_three(x[perm], y[perm], z[::-1])):
        np.testing.assert_allclose(b, a, rtol=1e-13)
    # Scaling by a power of two is exact: H(2x) = H(x) + d log 2.
    np.testing.assert_allclose(
        E.kozachenko_leonenko_entropy(2 * x),
        E.kozachenko_leonenko_entropy(x) + 2 * math.log(2),
        rtol=1e-14,
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: E.kozachenko_leonenko_entropy(np.zeros(10)), r"\[\.\.\., n, d\].*\(10,\)"),
        (lambda: E.kozachenko_leonenko_entropy(np.zeros((10, 0))), r"\(10, 0\)"),
        (lambda: E.kozachenko_leonenko_entropy(np.ones((3, 2)), k=3), "n = 3.*k = 3"),
        (lambda: E.kozachenko_leonenko_entropy(np.ones((5, 2)), k=0), "got 0"),
        (lambda: E.kozachenko_leonenko_entropy(np.ones((5, 2)), k=True), "got True"),
        (lambda: E.kozachenko_leonenko_entropy(np.ones((5, 2)), k=1.5), "got 1.5"),
        (lambda: E.kozachenko_leonenko_entropy(np.ones((5, 2)), base=1), "base"),
        (lambda: E.ksg_mutual_information(np.ones((10, 1)), np.ones((9, 1))), r"n = 10.*n = 9"),
        (
            lambda: E.ksg_mutual_information(np.ones((2, 10, 1)), np.ones((3, 10, 1))),
            r"\(2, 10, 1\).*\(3, 10, 1\)",
        ),
        (lambda: E.ksg_mutual_information(np.ones((3, 1)), np.ones((3, 1)), k=3), "n = 3"),
        (lambda: E.knn_kl_divergence(np.ones((10, 2)), np.ones((10, 3))), r"d = 2.*d = 3"),
        (lambda: E.knn_kl_divergence(np.ones((1, 2)), np.ones((10, 2))), "n = 1"),
        (lambda: E.knn_kl_divergence(np.ones((10, 2)), np.ones((2, 2)), k=3), "m = 2.*k = 3"),
    ],
)
def test_bad_shapes_and_options_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_traced_k_raises():
    with pytest.raises(ValueError, match="concrete"):
        jax.jit(lambda x, k: E.kozachenko_leonenko_entropy(x, k=k))(np.ones((5, 2)), 2)


def test_checked_reports_nan_samples():
    x, _, _ = _samples()
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        je.checked(E.kozachenko_leonenko_entropy)(bad)
    with pytest.raises(ValueError, match="y contains NaN"):
        je.checked(E.ksg_mutual_information)(x, bad[:, 1:])
    with pytest.raises(ValueError, match="z contains NaN"):
        je.checked(E.ksg_conditional_mutual_information)(x[:, :1], x[:, 1:], bad[:, 1:])
    with pytest.raises(ValueError, match="x contains NaN"):
        je.checked(E.ross_mutual_information)(bad, np.arange(len(x)) % 2)


# --------------------------------------------------------------------------- exact fast search
# The sorted search must give the brute-force answer exactly (same k-th distances, same
# counts) on data built to break it. The data sets are searched as one batch (one
# compiled program per method; they are the slowest to compile in this file).

_ADVERSARIAL = ("duplicates", "shared_coordinate", "far_clusters", "cauchy", "collinear", "grid")


def _adversarial(kind, n, seed=0):
    """Two problems of n points in 2-D (n is no multiple of any block size)."""
    rng = np.random.default_rng(seed)
    if kind == "duplicates":  # ~30 copies of each of 36 points
        return rng.integers(0, 6, size=(2, n, 2)).astype(float)
    if kind == "shared_coordinate":  # every point has x[:, 0] = 1.5
        x = rng.normal(size=(2, n, 2))
        x[..., 0] = 1.5
        return x
    if kind == "far_clusters":  # a third of the points 1e6 away
        x = rng.normal(size=(2, n, 2))
        x[:, : n // 3] += 1e6
        return x
    if kind == "cauchy":  # heavy tails: most points near 0, some at 1e4
        return rng.standard_cauchy(size=(2, n, 2))
    if kind == "collinear":  # on the diagonal: the two coordinates are equal
        return np.repeat(rng.normal(size=(2, n, 1)), 2, axis=-1)
    side = math.isqrt(n) + 1  # a regular grid: every distance ties with many others
    g = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)[:n]
    return np.stack([g, g[::-1]]).astype(float)


def _knn_searches(x, y, method):
    """The k nearest as KSG (joint space, max-norm), the entropy at k = 20 and the KL
    estimate (into ``y``) search them: the distances."""
    kw = {"method": method, "block": _knn._BLOCK_ELEMENTS}
    joint, _ = _search.knn(x, x, 3, metric="max", exclude_self=True, **kw)
    many, _ = _search.knn(x, x, 20, metric="sqeuclidean", exclude_self=True, **kw)
    cross, _ = _search.knn(x, y, 3, metric="sqeuclidean", exclude_self=False, **kw)
    return joint, many, cross


def _searches(x, y, method):
    """k-th neighbour distances and neighbour counts, as the estimators use them."""
    kw = {"method": method, "block": _knn._BLOCK_ELEMENTS}
    s = _search
    joint, many, cross = _knn_searches(x, y, method)
    line, _ = s.knn(x[..., :1], x[..., :1], 3, metric="sqeuclidean", exclude_self=True, **kw)
    line_cross, _ = s.knn(x[..., :1], y[..., :1], 3, metric="max", exclude_self=False, **kw)
    radius = joint[..., 2]  # KSG's n_x: in 2-D and in 1-D
    counts = s.count_within(x, radius, metric="max", dims=4, k=3, **kw)
    counts_1d = s.count_within(x[..., 1:], radius, metric="max", **kw)
    return joint, many, cross, line, line_cross, counts, counts_1d


_brute = jax.jit(lambda x, y: _searches(x, y, "brute"))
_sorted = jax.jit(lambda x, y: _searches(x, y, "sorted"))
_NAMES = ("joint", "k=20", "cross", "1-D", "1-D cross", "counts", "1-D counts")


@functools.cache
def _adversarial_batch():
    """All six kinds as one batch of 12 problems (two per kind, in _ADVERSARIAL's
    order): x [12, 1001, 2], y [12, 1003, 2]. One compiled search serves them all."""
    x = np.concatenate([_adversarial(kind, 1001) for kind in _ADVERSARIAL])
    y = np.concatenate([_adversarial(kind, 1003, seed=1)[:, ::-1] for kind in _ADVERSARIAL])
    return x, y


def _assert_searches_equal(brute, fast, kinds=_ADVERSARIAL):
    for name, a, b in zip(_NAMES, brute, fast):
        for p in range(a.shape[0]):
            np.testing.assert_array_equal(b[p], a[p], err_msg=f"{kinds[p // 2]} {p}: {name}")


@pytest.mark.slow
def test_sorted_search_equals_brute_force_and_kdtree():
    # The six kinds at once (the problems of a batch share the box search's queue); one
    # search checked against both references (each costs seconds to compile and run).
    x, y = _adversarial_batch()
    fast = _sorted(x, y)
    _assert_searches_equal(_brute(x, y), fast)
    # An independent float64 reference: the max-norm distances are the same subtractions,
    # so they agree exactly; the counts are integers.
    joint, many, cross, _, _, counts, _ = fast
    for p in (6, 7):  # the Cauchy problems
        tree = cKDTree(x[p])
        eps = tree.query(x[p], k=[4], p=np.inf)[0][:, 0]
        np.testing.assert_array_equal(joint[p, :, 2], eps)
        r = np.nextafter(eps, 0)
        ref = tree.query_ball_point(x[p], r, p=np.inf, return_length=True) - 1
        np.testing.assert_array_equal(counts[p], np.where(eps > 0, ref, 0))
        # Euclidean: the tree takes a square root; compare within rounding.
        d20 = tree.query(x[p], k=[21], p=2)[0][:, 0]
        np.testing.assert_allclose(np.sqrt(many[p, :, 19]), d20, rtol=1e-15)
        nu = cKDTree(y[p]).query(x[p], k=[3], p=2)[0][:, 0]
        np.testing.assert_allclose(np.sqrt(cross[p, :, 2]), nu, rtol=1e-15)


@pytest.mark.slow
def test_rows_left_to_the_boxes_stay_exact(monkeypatch):
    # A window of one offset leaves nearly every row to the exact box search (traced
    # afresh under the patched window; brute force does not depend on it). The y of
    # each kind is paired with the x of another (the Cauchy x with duplicated y). In
    # float32 with x64 off, as users run it: the sorts then pack into 32-bit integers
    # (the test above runs the 64-bit packing).
    monkeypatch.setattr(_search, "_STRIP_WINDOW", 0.0)
    x, y = (a.astype(np.float32) for a in _adversarial_batch())
    y = np.roll(y, 6, axis=0)
    with jax.enable_x64(False):
        brute = jax.jit(lambda x, y: _searches(x, y, "brute"))(x, y)
        fast = jax.jit(lambda x, y: _searches(x, y, "sorted"))(x, y)
    _assert_searches_equal(brute, fast)


def _reference_order(v: np.ndarray) -> list:
    """Reference order: by value (-0.0 equal to +0.0), then by index."""
    return sorted(range(len(v)), key=lambda i: (float(v[i]), i))


@pytest.mark.parametrize("x64", [True, False], ids=["x64", "x32"])
def test_integer_sorts_equal_a_stable_sort(x64, rng):
    # The searches sort floats as packed integers (one digit of the key and the index
    # per sort); ties, signed zeros, infinities, huge and tiny values, several digits.
    rows = [
        np.round(rng.standard_normal(700)),  # many ties, and -0.0 from rounding
        np.where(rng.random(700) < 0.5, -0.0, 0.0),
        rng.standard_cauchy(700) * 1e30,
        np.concatenate([[np.inf, -np.inf, 1e-30, -1e-30, 1e-300], rng.standard_normal(695)]),
    ]
    with jax.enable_x64(x64):
        for dtype in [np.float32, np.float16] + ([np.float64] if x64 else []):
            with np.errstate(over="ignore"):  # huge values overflow to +-inf: kept
                x = np.stack(rows).astype(dtype)
            order = np.asarray(_search.argsort(jnp.asarray(x)))
            assert order.dtype == np.int32
            for row, got in zip(x, order):
                assert got.tolist() == _reference_order(row), dtype
            got = np.asarray(_search._sort(jnp.asarray(x)))
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, np.sort(x, axis=-1))
            np.testing.assert_array_equal(np.signbit(got).sum(-1), np.signbit(x).sum(-1))
        # Integer keys (the class labels of grouped searches), signed and unsigned.
        for labels in (rng.integers(-(2**31), 2**31 - 1, (2, 900)), rng.integers(0, 4, (2, 900))):
            for dtype in (np.int32, np.uint8, np.int8):
                g = labels.astype(dtype)
                order = np.asarray(_search._stable_order(*_search._unsigned_key(jnp.asarray(g))))
                np.testing.assert_array_equal(order, np.argsort(g, axis=-1, stable=True))
        # Positions of a permutation (entries beyond n: padding) and the queue of a mask.
        index = np.stack([rng.permutation(3000) for _ in range(3)]).astype(np.int32)
        index = np.minimum(index, 1000 + np.arange(3000) % 5).astype(np.int32)
        where = np.asarray(_search._positions(jnp.asarray(index), 1000))
        for row, pos in zip(index, where):
            np.testing.assert_array_equal(row[pos], np.arange(1000))
        todo = rng.random(3001) < 0.1
        queue = np.asarray(_search._queue(jnp.asarray(todo)))
        np.testing.assert_array_equal(queue, np.argsort(~todo, stable=True))


def test_float64_argsort_by_its_top_digit_first(rng):
    # From _ONE_SORT_FROM entries, float64 keys are sorted on their top digit first;
    # a second sort runs only where keys tie on it but differ below (a lax.cond).
    n = _search._ONE_SORT_FROM // 2 + 1  # two rows: just above the threshold
    continuous = rng.standard_normal((2, n))
    # Keys that tie on the top digit (all but the low 16 bits: rows of 2**15 + 1 take
    # 16 bits of position) and differ below it, plus exact duplicates.
    ties = 1.0 + 1e-11 * rng.standard_normal((2, n))
    ties[:, ::7] = 1.0
    by_top = np.argsort(ties.view(np.uint64) >> np.uint64(16), axis=-1, stable=True)
    assert (np.diff(np.take_along_axis(ties, by_top, -1), axis=-1) < 0).any()
    with jax.enable_x64(True):
        for x in (continuous, ties, -ties):
            got = np.asarray(jax.jit(_search.argsort)(jnp.asarray(x)))
            np.testing.assert_array_equal(got, np.argsort(x, axis=-1, stable=True))


# x [4, 1000, dx] and y [4, 1000, 1] with k = 3: the shapes of test_ksg_of_gaussian_samples
# (and, for dx = 2, of test_methods_agree_under_jit_vmap_and_grad), which share the
# compiled sorted search. The joint search is in 2-D (dx = 1) or 3-D (dx = 2); x's counts
# by binary search (dx = 1) or in bands (dx = 2).
def _ksg_pairs(rng, dx, noise):
    x = rng.normal(size=(4, 1000, dx))
    return x, x[..., :1] + noise(rng, (4, 1000, 1))


@pytest.mark.parametrize("dx", [1, 2])
def test_sorted_ksg_matches_kdtree(dx):
    x, y = _ksg_pairs(np.random.default_rng(dx), dx, lambda rng, s: rng.standard_cauchy(size=s))
    got = E.ksg_mutual_information(x, y, method="sorted")
    want = [_ksg_reference(x[p], y[p], 3) for p in range(4)]
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-13)


@pytest.mark.slow
@pytest.mark.parametrize(("n", "d", "k"), [(1500, 1, 3), (1200, 3, 4)])
def test_sorted_entropy_and_kl_match_kdtree(n, d, k):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, d))
    y = 0.5 + 1.5 * rng.normal(size=(n + 17, d))
    h = E.kozachenko_leonenko_entropy(x, k=k, method="sorted")
    np.testing.assert_allclose(h, _kl_entropy_reference(x, k), rtol=RTOL)
    kl = E.knn_kl_divergence(x, y, k=k, method="sorted")
    np.testing.assert_allclose(kl, _kl_reference(x, y, k), rtol=RTOL)


@pytest.mark.slow
def test_methods_agree_under_jit_vmap_and_grad():
    # The direct (batched, sorted) call has the shapes of test_sorted_ksg_matches_kdtree[2].
    x, y = _ksg_pairs(np.random.default_rng(11), 2, lambda rng, s: rng.normal(size=s))
    direct = E.ksg_mutual_information(x, y, method="sorted")
    for method in ("brute", "sorted"):
        mapped = jax.jit(jax.vmap(lambda a, b, m=method: E.ksg_mutual_information(a, b, method=m)))
        np.testing.assert_allclose(mapped(x, y), direct, rtol=1e-13)
    # Gradients through the 2-D band search's neighbour indices; k = 1 (the sorted search
    # compiles its window as straight code, fastest for small k).
    x, _, _ = _samples()
    grads = [
        jax.grad(lambda a, m=m: E.kozachenko_leonenko_entropy(a, k=1, method=m))(x)
        for m in ("brute", "sorted")
    ]
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-13)


def test_auto_method_choice():
    assert _search.choose_method("auto", 512, 512, 2) == "brute"
    assert _search.choose_method("auto", 2000, 2000, 2) == "sorted"
    assert _search.choose_method("auto", 2000, 2000, 9) == "brute"
    if jax.default_backend() == "cpu":  # the crossover grows with the dimension
        assert _search.choose_method("auto", 1536, 1536, 3) == "brute"
        assert _search.choose_method("auto", 1537, 5000, 3) == "sorted"
        assert _search.choose_method("auto", 5000, 8192, 4) == "brute"
        assert _search.choose_method("auto", 8193, 8193, 4) == "sorted"
        assert _search.choose_method("auto", 32769, 32769, 5) == "sorted"
        assert _search.choose_method("auto", 10**6, 10**6, 6) == "brute"
    assert _search.choose_method("brute", 10**6, 10**6, 1) == "brute"
    with pytest.raises(ValueError, match="method must be one of"):
        E.ksg_mutual_information(np.ones((10, 1)), np.ones((10, 1)), method="tree")


# --------------------------------------------------------------------------- Ross


def _ross_reference(x, labels, k):
    """Ross's estimate by cKDTree (max-norm), scikit-learn's rules for small classes:
    k_i = min(k, N_l - 1), samples alone in their class left out, m_i counting i."""
    size = np.array([np.sum(labels == v) for v in labels])
    kept = size > 1
    k_i = np.minimum(k, size - 1)
    d = np.zeros(len(x))
    for v in np.unique(labels[kept]):
        sel = labels == v
        kk = min(k, sel.sum() - 1)
        d[sel] = cKDTree(x[sel]).query(x[sel], k=[kk + 1], p=np.inf)[0][:, 0]
    xs = x[kept]
    m = cKDTree(xs).query_ball_point(xs, np.nextafter(d[kept], 0), p=np.inf, return_length=True)
    return (
        digamma(kept.sum())
        + np.mean(digamma(k_i[kept]))
        - np.mean(digamma(size[kept]))
        - np.mean(digamma(m))
    )


@pytest.mark.slow
@pytest.mark.parametrize("method", ["brute", "sorted"])
@pytest.mark.parametrize(("batch", "n", "d"), [(4, 1000, 1), (1, 403, 2)])
def test_ross_matches_kdtree(batch, n, d, method):
    # d = 1: the shapes of test_ross_of_separated_classes, which shares the sorted search.
    rng = np.random.default_rng(n)
    labels = rng.integers(0, 4, size=(batch, n))
    labels[:, :2] = 7  # a class of two samples (k_i = 1) ...
    labels[:, 2] = 9  # ... and a sample alone in its class (left out)
    x = rng.normal(size=(batch, n, d)) + 0.4 * labels[..., None]
    got = E.ross_mutual_information(x, labels, method=method)
    want = [_ross_reference(x[p], labels[p], 3) for p in range(batch)]
    np.testing.assert_allclose(got, want, rtol=RTOL)


def test_ross_of_separated_classes():
    # Classes on disjoint intervals: I(X; L) = H(L) = log 2. Over 100 replicates of
    # n = 1000 the estimate had bias -0.004 and standard deviation 0.0013. (The sorted
    # search, as "auto" picks on CPU: the shapes and method of test_ross_matches_kdtree.)
    rng = np.random.default_rng(12)
    labels = rng.integers(0, 2, size=(4, 1000))
    x = (labels + 0.5 * rng.uniform(size=(4, 1000)))[..., None]
    got = E.ross_mutual_information(x, labels, method="sorted")
    assert got.shape == (4,)
    np.testing.assert_allclose(got, math.log(2), atol=0.015)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: E.ross_mutual_information(np.ones((10, 1)), np.ones(10)), "integer.*float"),
        (lambda: E.ross_mutual_information(np.ones((10, 1)), -np.ones(10, int)), "non-negative"),
        (
            lambda: E.ross_mutual_information(np.ones((10, 1)), np.ones(9, int)),
            r"\(9,\).*\(10, 1\)",
        ),
        (lambda: E.ross_mutual_information(np.ones((3, 1)), np.ones(3, int), k=3), "n = 3"),
    ],
)
def test_ross_bad_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------- CMI and TE


def _cmi_reference(x, y, z, k):
    """Frenzel–Pompe by cKDTree: strict counts as query_ball_point below epsilon."""
    joint = np.hstack([x, y, z])
    eps = cKDTree(joint).query(joint, k=[k + 1], p=np.inf)[0][:, 0]
    r = np.nextafter(eps, 0)

    def count(a):
        return cKDTree(a).query_ball_point(a, r, p=np.inf, return_length=True) - 1

    xz, yz = np.hstack([x, z]), np.hstack([y, z])
    return digamma(k) - np.mean(
        digamma(count(xz) + 1) + digamma(count(yz) + 1) - digamma(count(z) + 1)
    )


def _gaussian_cmi(cov, ix, iy, iz):
    det = np.linalg.det

    def sub(idx):
        return det(cov[np.ix_(idx, idx)])

    return 0.5 * np.log(sub(ix + iz) * sub(iy + iz) / (sub(iz) * sub(ix + iy + iz)))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["brute", "sorted"])
@pytest.mark.parametrize(("batch", "n", "dz", "k"), [(4, 2000, 1, 3), (1, 700, 2, 4)])
def test_cmi_matches_kdtree(batch, n, dz, k, method):
    # dz = 1: the shapes and k of test_cmi_of_gaussian_samples and
    # test_transfer_entropy_of_linear_gaussian_pair, which share the sorted search.
    rng = np.random.default_rng(n)
    z = rng.standard_cauchy(size=(batch, n, dz))
    x = z[..., :1] + rng.normal(size=(batch, n, 1))
    y = 0.5 * x + z[..., -1:] + rng.normal(size=(batch, n, 1))
    got = E.ksg_conditional_mutual_information(x, y, z, k=k, method=method)
    want = [_cmi_reference(x[p], y[p], z[p], k) for p in range(batch)]
    np.testing.assert_allclose(got, want, rtol=RTOL)


@pytest.mark.slow
def test_cmi_of_gaussian_samples():
    # Over 20 replicates of n = 2000 the estimate of this 0.067-nat CMI had bias -0.0004
    # and standard deviation 0.014; the mean of 4 is within 0.0004 + 4 * 0.0072 < 0.03.
    cov = np.array([[1.0, 0.5, 0.6], [0.5, 1.0, 0.4], [0.6, 0.4, 1.0]])
    s = np.random.default_rng(13).normal(size=(4, 2000, 3)) @ np.linalg.cholesky(cov).T
    # (The sorted search, as "auto" picks on CPU: see test_cmi_matches_kdtree.)
    got = E.ksg_conditional_mutual_information(s[..., :1], s[..., 1:2], s[..., 2:], method="sorted")
    assert abs(float(jnp.mean(got)) - _gaussian_cmi(cov, [0], [1], [2])) < 0.03


def _ar_pair(rng, replicates, T, a=0.5, b=0.4, c=0.6):
    """X_{t+1} = a X_t + e, Y_{t+1} = b Y_t + c X_t + f (unit noises), stationary."""
    x = np.zeros((replicates, T + 500))
    y = np.zeros_like(x)
    noise = rng.normal(size=(2,) + x.shape)
    for t in range(x.shape[1] - 1):
        x[:, t + 1] = a * x[:, t] + noise[0, :, t]
        y[:, t + 1] = b * y[:, t] + c * x[:, t] + noise[1, :, t]
    return x[:, 500:], y[:, 500:]


@pytest.mark.slow
def test_transfer_entropy_of_linear_gaussian_pair():
    # Exact TE X -> Y (history 1) is the Gaussian CMI of (Y_{t+1}; X_t | Y_t) under the
    # stationary covariance. Over 20 replicates of T = 1501: bias 0.004, standard
    # deviation 0.017 (reverse direction, true 0: mean 0.002, deviation 0.014); T = 2001
    # here (n = 2000, the shapes of test_cmi_of_gaussian_samples, whose compiled sorted
    # search this shares) only shrinks the deviations, so the bounds stay conservative.
    from scipy.linalg import solve_discrete_lyapunov

    a, b, c = 0.5, 0.4, 0.6
    A = np.array([[a, 0.0], [c, b]])
    S = solve_discrete_lyapunov(A, np.eye(2))
    ahead = (A @ S)[1]  # Cov(Y_{t+1}, (X_t, Y_t))
    cov = np.array(
        [[S[1, 1], ahead[0], ahead[1]], [ahead[0], S[0, 0], S[0, 1]], [ahead[1], S[0, 1], S[1, 1]]]
    )
    exact = _gaussian_cmi(cov, [0], [1], [2])
    x, y = _ar_pair(np.random.default_rng(14), 4, 2001)
    forward = E.transfer_entropy(x[..., None], y[..., None], method="sorted")
    backward = E.transfer_entropy(y[..., None], x[..., None], method="sorted")
    assert abs(float(jnp.mean(forward)) - exact) < 0.004 + 4 * 0.0084
    assert abs(float(jnp.mean(backward))) < 0.002 + 4 * 0.007


def test_transfer_entropy_embedding_convention():
    # history h = 2, source_history l = 3, delay u = 2: t0 = max(h - 1, u + l - 2) = 3,
    # samples t = 3 .. T - 2; target future T_{t+1}, target past (T_t, T_{t-1}), source
    # past (S_{t-1}, S_{t-2}, S_{t-3}).
    rng = np.random.default_rng(15)
    T = 400
    s, t = rng.normal(size=(2, T))
    ts = np.arange(3, T - 1)
    future = t[ts + 1][:, None]
    past = np.stack([t[ts], t[ts - 1]], -1)
    source_past = np.stack([s[ts - 1], s[ts - 2], s[ts - 3]], -1)
    want = E.ksg_conditional_mutual_information(future, source_past, past, k=4)
    got = E.transfer_entropy(s, t, k=4, history=2, source_history=3, delay=2)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: E.transfer_entropy(np.ones(10), np.ones(11)), r"same length.*\(10, 1\)"),
        (lambda: E.transfer_entropy(np.ones(10), np.ones(10), delay=0), "delay"),
        (lambda: E.transfer_entropy(np.ones(6), np.ones(6), history=3), "n = 3.*k = 3"),
        (
            lambda: E.ksg_conditional_mutual_information(
                np.ones((10, 1)), np.ones((10, 1)), np.ones((9, 1))
            ),
            "n = 9",
        ),
    ],
)
def test_cmi_and_te_bad_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _adversarial_3d(n, seed):
    """Six kinds of 3-D data, one problem each: [6, n, 3]."""
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(n, 3))
    shared = rng.normal(size=(n, 3))
    shared[:, 1] = 1.5  # every point shares one coordinate
    far = rng.normal(size=(n, 3))
    far[: n // 3] += 1e6  # a third of the points 1e6 away
    diagonal = np.repeat(rng.normal(size=(n, 1)), 3, axis=-1)
    return np.stack(
        [
            normal,
            np.round(rng.normal(size=(n, 3)), 1),  # many exact duplicates
            shared,
            far,
            rng.standard_cauchy(size=(n, 3)),
            diagonal,
        ]
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "x64, retries",
    [(True, _search._GRID_RETRIES), (False, ())],
    ids=["float64", "float32-no-retries"],
)
def test_grid_search_equals_brute_force(x64, retries, monkeypatch):
    # In three dimensions the sorted search starts with grids of cells (from _GRID_FROM
    # references; here from 1,000, traced afresh), takes the rows they leave open again
    # on coarser grids (_GRID_RETRIES; none in float32, so that more rows reach the
    # boxes) and the rest by rings of cells (_grid_boxes). All must give the
    # brute-force distances, on the adversarial kinds (n not a multiple of anything).
    monkeypatch.setattr(_search, "_GRID_FROM", 1000)
    monkeypatch.setattr(_search, "_GRID_RETRIES", retries)
    open_rows = []
    boxes = _search._grid_boxes

    def counted(grid, G, rows, out, done, *args):
        jax.debug.callback(lambda s: open_rows.append(int(s)), jnp.sum(~done))
        return boxes(grid, G, rows, out, done, *args)

    monkeypatch.setattr(_search, "_grid_boxes", counted)
    n = 1357
    x, y = _adversarial_3d(n, 0), np.roll(_adversarial_3d(n + 29, 1), 1, axis=0)
    kinds = ("normal", "duplicates", "shared", "far", "cauchy", "diagonal")
    with jax.enable_x64(x64):
        dtype = np.float64 if x64 else np.float32
        x, y = x.astype(dtype), y.astype(dtype)
        brute = jax.jit(lambda x, y: _knn_searches(x, y, "brute"))(x, y)
        fast = jax.jit(lambda x, y: _knn_searches(x, y, "sorted"))(x, y)
    jax.effects_barrier()  # the callbacks have run
    # One grid search each (joint, k = 20, cross), and each left rows to the boxes.
    assert len(open_rows) == 3 and min(open_rows) > 0, open_rows
    for name, a, b in zip(("joint", "k=20", "cross"), brute, fast):
        for p, kind in enumerate(kinds):
            np.testing.assert_array_equal(b[p], a[p], err_msg=f"{kind}: {name}")
