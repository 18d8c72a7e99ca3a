"""Joint-distribution measures against scikit-learn and SciPy (float64)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st
from sklearn.metrics import mutual_info_score, normalized_mutual_info_score

import jaxent as je
from tests.utils import random_joint

RTOL = 1e-12


def _labels_from_counts(counts):
    """Two label arrays whose contingency table is ``counts``."""
    xs, ys = np.nonzero(counts)
    reps = counts[xs, ys]
    return np.repeat(xs, reps), np.repeat(ys, reps)


@pytest.fixture
def counts(rng):
    """A random contingency table, not all zeros."""
    c = rng.integers(0, 6, size=(4, 5))
    c[1, 2] += 1
    return c


# Against scikit-learn, eagerly and under jit (the variant fixture).


def test_mutual_information(variant, counts):
    pxy = counts / counts.sum()
    ref = mutual_info_score(None, None, contingency=counts)
    got = variant(je.mutual_information)(pxy)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-15)


def test_normalized_mutual_information(variant, counts):
    pxy = counts / counts.sum()
    x, y = _labels_from_counts(counts)
    for average in ("arithmetic", "geometric", "min", "max"):
        ref = normalized_mutual_info_score(x, y, average_method=average)
        got = variant(lambda p, a=average: je.normalized_mutual_information(p, average=a))(pxy)
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-15)


def test_entropies(variant, counts):
    p = counts / counts.sum()
    hxy = st.entropy(p.ravel())
    hx, hy = st.entropy(p.sum(1)), st.entropy(p.sum(0))
    np.testing.assert_allclose(variant(je.joint_entropy)(p), hxy, rtol=RTOL)
    np.testing.assert_allclose(variant(je.conditional_entropy)(p), hxy - hx, rtol=1e-10)
    np.testing.assert_allclose(
        variant(je.variation_of_information)(p), 2 * hxy - hx - hy, rtol=1e-10
    )


def test_nmi_edge_cases_match_sklearn():
    # Both variables constant: sklearn returns 1.
    assert je.normalized_mutual_information(jnp.array([[1.0]])) == 1.0
    assert normalized_mutual_info_score([0, 0], [1, 1]) == 1.0
    # One constant, the other not: MI = 0.
    x, y = [0, 0, 0, 0], [0, 1, 0, 1]
    pxy = jnp.array([[0.5, 0.5]])
    for average in ("arithmetic", "geometric", "min", "max"):
        assert je.normalized_mutual_information(pxy, average=average) == pytest.approx(
            normalized_mutual_info_score(x, y, average_method=average)
        )
    with pytest.raises(ValueError, match="average"):
        je.normalized_mutual_information(pxy, average="harmonic")


def test_pointwise_mutual_information(rng):
    p = random_joint(rng, (3, 4))
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = np.where(p > 0, np.log(p / (px * py)), -np.inf)
    got = je.pointwise_mutual_information(p)
    np.testing.assert_allclose(got, ref, rtol=RTOL)
    # MI is the expectation of PMI.
    np.testing.assert_allclose(
        np.sum(np.where(p > 0, p * np.where(p > 0, got, 0), 0)),
        je.mutual_information(p),
        rtol=1e-10,
    )


def test_batches_and_vmap(rng):
    p = random_joint(rng, (6, 3, 4))
    for fn in (
        je.joint_entropy,
        je.conditional_entropy,
        je.mutual_information,
        je.variation_of_information,
        je.normalized_mutual_information,
    ):
        batch = fn(p)
        chex.assert_shape(batch, (6,))
        np.testing.assert_allclose(jax.vmap(fn)(p), batch, rtol=RTOL)
    chex.assert_shape(je.pointwise_mutual_information(p), (6, 3, 4))


def test_independent_table_has_zero_mutual_information(rng):
    px, py = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(7))
    pxy = np.outer(px, py)
    assert abs(float(je.mutual_information(pxy))) < 1e-15
    assert abs(float(je.normalized_mutual_information(pxy))) < 1e-14


def test_gradients_finite_with_zeros(rng):
    p = random_joint(rng, (3, 4), zeros=0.4)
    p[0, :] = 0.0  # a whole row of X with probability 0
    p /= p.sum()
    for fn in (
        je.joint_entropy,
        je.conditional_entropy,
        je.mutual_information,
        je.variation_of_information,
        je.normalized_mutual_information,
    ):
        chex.assert_tree_all_finite(jax.grad(fn)(p))


def test_conditional_entropy_gradient_in_closed_form(rng):
    """The closed-form derivative -log p(y|x) against autodiff of the formula
    H(X, Y) - H(X) (float64; positive entries: rounding-level agreement), and the
    conventions at zeros: 1 in a row with mass, 0 in an empty row; second order (a
    Hessian-vector product) against the formula's too."""
    p = random_joint(rng, (4, 5), zeros=0.0)
    p /= p.sum()

    def reference(t):
        return jnp.sum(jax.scipy.special.entr(t)) - jnp.sum(jax.scipy.special.entr(t.sum(-1)))

    np.testing.assert_allclose(
        jax.jit(jax.grad(je.conditional_entropy))(p),
        jax.jit(jax.grad(reference))(p),
        rtol=1e-13,
        atol=1e-15,
    )
    q = np.array([[0.5, 0.0], [0.0, 0.0], [0.25, 0.25]])
    np.testing.assert_allclose(
        jax.jit(jax.grad(je.conditional_entropy))(q),
        [[0.0, 1.0], [0.0, 0.0], [np.log(2), np.log(2)]],
    )
    v = rng.normal(size=p.shape)

    def hvp(fn):
        return jax.jit(lambda t, v: jax.jvp(jax.grad(fn), (t,), (v,))[1])

    np.testing.assert_allclose(hvp(je.conditional_entropy)(p, v), hvp(reference)(p, v), rtol=1e-12)


def test_mutual_information_gradient_in_closed_form(rng):
    """The closed-form derivative log(p(x,y) / (p(x) p(y))) - 1 against autodiff of the
    formula H(X) + H(Y) - H(X, Y) (float64, positive entries, an unnormalized table
    too: rounding-level agreement) and a Hessian-vector product; at zeros, the slopes
    of the conditional form sum_x p(x) D(p(y|x) || p(y)) (autodiff of jaxent's KL):
    -log p(y) - 2 with mass in the row and column, -1 in an empty row or column."""
    entr = jax.scipy.special.entr

    def reference(t):
        return jnp.sum(entr(t.sum(-1))) + jnp.sum(entr(t.sum(-2))) - jnp.sum(entr(t))

    def grad_and_hvp(fn):  # one compiled program per function (eagerly: per operation)
        return jax.jit(lambda t, v: jax.jvp(jax.grad(fn), (t,), (v,)))

    mine, theirs = grad_and_hvp(je.mutual_information), grad_and_hvp(reference)
    for p in (random_joint(rng, (4, 5), zeros=0.0), 0.7 * random_joint(rng, (4, 5), zeros=0.0)):
        v = rng.normal(size=p.shape)
        (grad, hvp), (grad_ref, hvp_ref) = mine(p, v), theirs(p, v)
        np.testing.assert_allclose(grad, grad_ref, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(hvp, hvp_ref, rtol=1e-12)

    def conditional_form(t):
        px = t.sum(-1, keepdims=True)
        return jnp.sum(px[:, 0] * je.kl_divergence(t / jnp.where(px > 0, px, 1), t.sum(0)))

    q = jnp.array([[0.1, 0.0, 0.2, 0.0], [0.0, 0.0, 0.0, 0.0], [0.3, 0.25, 0.15, 0.0]])
    got = jax.jit(jax.grad(je.mutual_information))(q)
    np.testing.assert_allclose(got, jax.jit(jax.grad(conditional_form))(q), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got[:, 3], [-1, 0, -1])
    np.testing.assert_allclose(got[1, :3], [-1, -1, -1])
    np.testing.assert_allclose(got[0, 1], -np.log(0.25) - 2)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(4,\)"):
        je.mutual_information(jnp.ones(4) / 4)


# Issue 8: a constant variable gives an NMI of exactly 0 (rounding used to leave
# H(X) ~ 1e-16 and ratios up to 2.5), and no table gives an NMI outside [0, 1].
AVERAGES = ("arithmetic", "geometric", "min", "max")


@jax.jit
def _nmi_every_average(pxy):
    return jnp.stack([je.normalized_mutual_information(pxy, average=a) for a in AVERAGES])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nmi_is_exactly_zero_when_one_variable_is_constant(dtype):
    # The table, eagerly: H(X) came out ~1e-16 and "min" gave 2.5.
    assert (
        float(je.normalized_mutual_information(jnp.full((1, 10), 0.1, dtype), average="min")) == 0
    )
    # scikit-learn's test_exactly_zero_info_score: labels ones(size) against arange(size)
    for size in (10, 100, 10000):
        labels_a, labels_b = np.ones(size, dtype=int), np.arange(size)
        ref = [normalized_mutual_info_score(labels_a, labels_b, average_method=a) for a in AVERAGES]
        np.testing.assert_allclose(ref, 0.0, atol=1e-15)
        for table in (jnp.full((1, size), 1 / size, dtype), jnp.full((size, 1), 1 / size, dtype)):
            # exactly 0 for every average, the structural zero it is
            assert _nmi_every_average(table).tolist() == [0.0] * 4


def test_nmi_constant_variable_in_a_batch_has_finite_gradients():
    zeros = jnp.zeros((3, 4))
    tables = jnp.stack([zeros.at[1].set(0.25), zeros.at[:, 2].set(jnp.array([0.2, 0.3, 0.5]))])
    # constant X, then constant Y: 0 for every average
    assert _nmi_every_average(tables).tolist() == [[0.0, 0.0]] * 4
    grads = jax.jit(jax.jacrev(lambda p: _nmi_every_average(p).sum(-1)))(tables)
    chex.assert_tree_all_finite(grads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nmi_stays_in_unit_interval_and_matches_sklearn(dtype):
    rng = np.random.default_rng(8)
    # Perfect matches with uneven counts (NMI = 1, computed as 1 + 4e-16 or 1 + 2e-7
    # before the clamp), random tables with constant-looking sparse rows, and tables
    # with a single live row or column (NMI = 0).
    tables = []
    for _ in range(60):
        tables.append(np.diag(rng.integers(1, 7, size=5))[:, rng.permutation(5)])
        sparse = rng.integers(0, 4, size=(5, 5)) * (rng.random((5, 5)) < 0.3)
        sparse[rng.integers(5), rng.integers(5)] += 1
        tables.append(sparse)
        one_row = np.zeros((5, 5), dtype=int)
        one_row[rng.integers(5)] = rng.integers(1, 5, size=5)
        tables.append(one_row if rng.random() < 0.5 else one_row.T)
    counts = np.stack(tables)
    pxy = jnp.asarray(counts / counts.sum(axis=(1, 2), keepdims=True), dtype)
    # float64: the few ulps of a ratio of sums of logs; float32: its epsilon, a few times
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for average, got in zip(AVERAGES, np.asarray(_nmi_every_average(pxy))):
        assert np.all((got >= 0) & (got <= 1)), got[(got < 0) | (got > 1)]
        ref = [
            normalized_mutual_info_score(*_labels_from_counts(c), average_method=average)
            for c in counts
        ]
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
