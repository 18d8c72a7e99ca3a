"""Joint-distribution measures against scikit-learn and SciPy (float64)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st
from sklearn.metrics import mutual_info_score, normalized_mutual_info_score

import jaxent as je
from tests.utils import random_joint, seeded_rng

RTOL = 1e-12


def _labels_from_counts(counts):
    """Two label arrays whose contingency table is ``counts``."""
    xs, ys = np.nonzero(counts)
    reps = counts[xs, ys]
    return np.repeat(xs, reps), np.repeat(ys, reps)


@pytest.fixture
def counts(rng):
    c = rng.integers(0, 6, size=(4, 5))
    c[0, 0] += 1
    return c


class AgainstSklearn(chex.TestCase):
    def setUp(self):
        super().setUp()
        rng = seeded_rng(self.id())
        self.counts = rng.integers(0, 6, size=(4, 5))
        self.counts[1, 2] += 1
        self.pxy = self.counts / self.counts.sum()

    @chex.variants(with_jit=True, without_jit=True)
    def test_mutual_information(self):
        ref = mutual_info_score(None, None, contingency=self.counts)
        got = self.variant(je.mutual_information)(self.pxy)
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-15)

    @chex.variants(with_jit=True, without_jit=True)
    def test_normalized_mutual_information(self):
        x, y = _labels_from_counts(self.counts)
        for average in ("arithmetic", "geometric", "min", "max"):
            ref = normalized_mutual_info_score(x, y, average_method=average)
            got = self.variant(lambda p, a=average: je.normalized_mutual_information(p, average=a))(
                self.pxy
            )
            np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-15)

    @chex.variants(with_jit=True, without_jit=True)
    def test_entropies(self):
        p = self.pxy
        hxy = st.entropy(p.ravel())
        hx, hy = st.entropy(p.sum(1)), st.entropy(p.sum(0))
        np.testing.assert_allclose(self.variant(je.joint_entropy)(p), hxy, rtol=RTOL)
        np.testing.assert_allclose(self.variant(je.conditional_entropy)(p), hxy - hx, rtol=1e-10)
        np.testing.assert_allclose(
            self.variant(je.variation_of_information)(p), 2 * hxy - hx - hy, rtol=1e-10
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


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(4,\)"):
        je.mutual_information(jnp.ones(4) / 4)
