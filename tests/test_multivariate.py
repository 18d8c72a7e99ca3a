"""Multivariate measures on joint tables: dit's documented values, dit itself and an
independent float64 NumPy reference (entropies of marginals), identities, batches,
transformations and gradients."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxent as je
from tests.utils import random_probs

# float64 references: the measures are sums of a few entropies (or KLs) of order 1
# nat, so a few ulps of those, absolutely.
ATOL = 1e-13

MEASURES = (
    je.co_information,
    je.total_correlation,
    je.dual_total_correlation,
    je.o_information,
    je.s_information,
)

ALL = (*MEASURES, je.conditional_mutual_information)


@jax.jit
def _every_measure(p):
    """All six measures of a 3- or 4-variable table, one compiled program per shape."""
    return jnp.stack([fn(p) for fn in ALL])


def _table(outcomes, shape):
    """A uniform table over ``outcomes`` (tuples of values), of the given shape."""
    p = np.zeros(shape)
    for o in outcomes:
        p[o] += 1.0 / len(outcomes)
    return p


XOR = _table([(x, y, x ^ y) for x in (0, 1) for y in (0, 1)], (2, 2, 2))


def _random_table(rng, shape, zeros=0.2):
    return random_probs(rng, (int(np.prod(shape)),), zeros=zeros).reshape(shape)


# ---- independent NumPy reference: entropies of marginals, float64 --------------------


def _h(p, keep):
    """Entropy (nats) of the marginal of ``p`` on the axes ``keep``."""
    drop = tuple(a for a in range(p.ndim) if a not in keep)
    q = p.sum(axis=drop).ravel()
    q = q[q > 0]
    return -np.sum(q * np.log(q))


def _reference(p):
    m = p.ndim
    every = tuple(range(m))
    h = _h(p, every)
    singles = [_h(p, (i,)) for i in every]
    others = [_h(p, tuple(j for j in every if j != i)) for i in every]
    tc = sum(singles) - h
    dtc = h - sum(h - o for o in others)
    co = -sum(
        (-1) ** len(s) * _h(p, s) for r in range(1, m + 1) for s in itertools.combinations(every, r)
    )
    return {
        "co_information": co,
        "total_correlation": tc,
        "dual_total_correlation": dtc,
        "o_information": tc - dtc,
        "s_information": tc + dtc,
    }


# ---- dit's documented values ---------------------------------------------------------


def test_xor_matches_dits_documented_values():
    assert float(je.total_correlation(XOR, base=2)) == pytest.approx(1.0, abs=1e-15)
    assert float(je.dual_total_correlation(XOR, base=2)) == pytest.approx(2.0, abs=1e-15)
    assert float(je.o_information(XOR, base=2)) == pytest.approx(-1.0, abs=1e-15)
    assert float(je.co_information(XOR, base=2)) == pytest.approx(-1.0, abs=1e-15)
    assert float(je.s_information(XOR, base=2)) == pytest.approx(3.0, abs=1e-15)


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_giant_bit_total_correlation_is_n_minus_one_bits(n):
    giant = _table([(0,) * n, (1,) * n], (2,) * n)
    assert float(je.total_correlation(giant, base=2)) == pytest.approx(n - 1, abs=1e-14)
    # every variable is a copy of one bit: DTC = 1 bit, co-information = 1 bit
    assert float(je.dual_total_correlation(giant, base=2)) == pytest.approx(1.0, abs=1e-14)
    assert float(je.co_information(giant, base=2)) == pytest.approx(1.0, abs=1e-14)


@pytest.mark.parametrize(("m", "bits"), [(2, 1.0), (3, np.log2(3)), (4, 2.0)])
def test_n_mod_m_total_correlation(m, bits):
    # dit.example_dists.n_mod_m(3, m): uniform over (x, y, (x + y) mod m)
    p = _table([(x, y, (x + y) % m) for x in range(m) for y in range(m)], (m, m, m))
    assert float(je.total_correlation(p, base=2)) == pytest.approx(bits, abs=1e-14)


# ---- against the NumPy reference and against dit -------------------------------------


@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 3, 4), (3, 2, 2, 3), (2, 2, 2, 2, 2)])
def test_against_numpy_reference(rng, shape):
    p = _random_table(rng, shape)
    ref = _reference(p)
    for fn in MEASURES:
        np.testing.assert_allclose(fn(p), ref[fn.__name__], rtol=0, atol=ATOL, err_msg=fn.__name__)


def test_conditional_mutual_information_against_numpy(rng):
    p = _random_table(rng, (3, 2, 4, 2))
    hz = _h(p, (2,))
    # I(X;Y|Z) = H(X,Z) + H(Y,Z) - H(X,Y,Z) - H(Z), X = axis 0, Y = (1, 3), Z = 2
    ref = _h(p, (0, 2)) + _h(p, (1, 2, 3)) - _h(p, (0, 1, 2, 3)) - hz
    got = je.conditional_mutual_information(p, x=0, y=(1, 3), z=2)
    np.testing.assert_allclose(got, ref, rtol=0, atol=ATOL)
    # z=() is the mutual information
    pxy = p.sum(axis=(2, 3))
    np.testing.assert_allclose(
        je.conditional_mutual_information(pxy, x=0, y=1, z=()), je.mutual_information(pxy), atol=0
    )


def test_against_dit(rng):
    dit = pytest.importorskip("dit")
    from dit import multivariate as dm

    for shape in [(2, 3, 2), (2, 2, 3, 2)]:
        p = _random_table(rng, shape)
        d = dit.Distribution.from_ndarray(p)
        for fn, ref in [
            (je.co_information, dm.coinformation),
            (je.total_correlation, dm.total_correlation),
            (je.dual_total_correlation, dm.dual_total_correlation),
            (je.o_information, dm.o_information),
            (je.s_information, dm.s_information),
        ]:
            # dit sums log2 terms of its own (float64): a few ulps of a few bits
            np.testing.assert_allclose(fn(p, base=2), ref(d), atol=1e-12, err_msg=fn.__name__)
        z = tuple(range(2, len(shape)))  # I(X0; X1 | the others)
        cmi = dm.coinformation(d, [[0], [1]], list(z))
        np.testing.assert_allclose(
            je.conditional_mutual_information(p, x=0, y=1, z=z, base=2), cmi, atol=1e-12
        )


# ---- identities ----------------------------------------------------------------------


def test_identities(rng):
    p = _random_table(rng, (2, 3, 2, 3))
    tc, dtc = je.total_correlation(p), je.dual_total_correlation(p)
    np.testing.assert_allclose(je.o_information(p), tc - dtc, atol=ATOL)
    np.testing.assert_allclose(je.s_information(p), tc + dtc, atol=ATOL)
    assert tc >= 0 and dtc >= 0
    # Chain rule of CMI: I(X; Y, W | Z) = I(X; W | Z) + I(X; Y | W, Z).
    cmi = je.conditional_mutual_information
    whole = cmi(p, x=0, y=(1, 3), z=2)
    parts = cmi(p.sum(1), x=0, y=2, z=1) + cmi(p, x=0, y=1, z=(2, 3))
    np.testing.assert_allclose(whole, parts, atol=ATOL)
    # Three variables: co-information = I(X;Y) - I(X;Y|Z) = O-information.
    q = p.sum(3)
    co = je.co_information(q)
    np.testing.assert_allclose(co, je.mutual_information(q.sum(2)) - cmi(q), atol=ATOL)
    np.testing.assert_allclose(co, je.o_information(q), atol=ATOL)


def test_symmetric_under_permuting_variables(rng):
    p = _random_table(rng, (2, 3, 3))
    base = _every_measure(p)[: len(MEASURES)]
    for perm in [(1, 0, 2), (2, 1, 0)]:
        np.testing.assert_allclose(_every_measure(p.transpose(perm))[:5], base, atol=ATOL)
    for fn in MEASURES:
        np.testing.assert_allclose(fn(p, axes=(2, 0, 1)), fn(p), atol=ATOL)


def test_independent_tables_give_exact_zeros_or_rounding_but_never_negative(rng):
    marginals = [rng.dirichlet(np.ones(n)) for n in (3, 4, 2)]
    p = np.einsum("i,j,k->ijk", *marginals)
    for fn in (je.total_correlation, je.dual_total_correlation, je.s_information):
        v = float(fn(p))
        assert 0 <= v < 1e-15, (fn.__name__, v)
    assert abs(float(je.co_information(p))) < 1e-15
    assert 0 <= float(je.conditional_mutual_information(p)) < 1e-15
    # a one-hot table: every measure is exactly 0
    point = np.zeros((2, 3, 2))
    point[1, 2, 0] = 1.0
    assert _every_measure(point).tolist() == [0.0] * len(ALL)


def test_groups_and_batch_axes(rng):
    p = _random_table(rng, (2, 3, 2))
    # a group of axes is one variable: TC of ((0, 1), 2) is I(X0,X1; X2)
    np.testing.assert_allclose(
        je.total_correlation(p, axes=((0, 1), 2)),
        je.mutual_information(p.reshape(6, 2)),
        atol=ATOL,
    )
    # axes naming no variable are batch axes, wherever they are
    batch = np.stack([_random_table(rng, (2, 3, 2)) for _ in range(4)], axis=1)  # [2, 4, 3, 2]
    ref = jax.vmap(_every_measure, in_axes=1, out_axes=1)(batch)
    np.testing.assert_allclose(ref[:, 1], _every_measure(batch[:, 1]), atol=ATOL)
    for i, fn in enumerate(MEASURES):
        got = fn(batch, axes=(0, 2, 3))
        chex.assert_shape(got, (4,))
        np.testing.assert_allclose(got, ref[i], atol=ATOL)
    got = je.conditional_mutual_information(batch, x=0, y=2, z=3)
    np.testing.assert_allclose(got, ref[-1], atol=ATOL)


def test_jit_matches_eager(variant):
    p = _random_table(np.random.default_rng(1), (2, 3, 3))
    np.testing.assert_allclose(variant(_every_measure)(p), [fn(p) for fn in ALL], atol=ATOL)


def test_gradients_finite_with_zeros(rng):
    p = _random_table(rng, (2, 3, 2), zeros=0.4)
    p[0, 1, :] = 0.0
    p /= p.sum()
    # at a one-hot table, an independent one and a functional one (xor-like) too
    point = np.zeros((2, 3, 2))
    point[0, 1, 1] = 1.0
    indep = np.einsum("i,j,k->ijk", [0.3, 0.7], [0.5, 0.25, 0.25], [0.2, 0.8])
    xor3 = _table([(x, y, (x + y) % 2) for x in (0, 1) for y in (0, 1, 2)], (2, 3, 2))
    jac = jax.jit(jax.jacrev(_every_measure))
    for table in (p, point, indep, xor3):
        chex.assert_tree_all_finite(jac(table))


def test_gradient_matches_numpy_finite_differences(rng):
    p = _random_table(rng, (2, 3, 2), zeros=0.0)
    v = rng.normal(size=p.shape)
    v -= v.mean()
    eps = 1e-6
    for fn in MEASURES:
        name = fn.__name__
        fd = (_reference(p + eps * v)[name] - _reference(p - eps * v)[name]) / (2 * eps)
        got = np.sum(np.asarray(jax.grad(fn)(p)) * v)
        # central differences: error ~ eps^2 f''' plus rounding ~ 1e-16 / eps
        np.testing.assert_allclose(got, fd, rtol=1e-7, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_half_precision_computed_in_float32(dtype):
    got = je.total_correlation(jnp.asarray(XOR, dtype), base=2)
    assert got.dtype == dtype
    assert float(got) == 1.0
    assert float(je.o_information(jnp.asarray(XOR, dtype), base=2)) == -1.0


def test_shape_errors():
    with pytest.raises(ValueError, match=r"axis -3 .*shape \(2, 2\)"):
        je.conditional_mutual_information(np.ones((2, 2)) / 4)
    with pytest.raises(ValueError, match="named twice"):
        je.total_correlation(XOR, axes=(0, 0))
    with pytest.raises(ValueError, match="named twice"):
        je.conditional_mutual_information(XOR, x=0, y=(1, 2), z=2)
    with pytest.raises(ValueError, match=r"out of range for shape \(2, 2, 2\)"):
        je.o_information(XOR, axes=(0, 3))


def test_checked_rejects_a_table_that_does_not_sum_to_one():
    batch = np.stack([XOR, XOR], axis=-1)  # batch axis last
    ok = je.checked(je.total_correlation)(batch, axes=(0, 1, 2))
    np.testing.assert_allclose(ok, [np.log(2)] * 2, atol=ATOL)
    with pytest.raises((ValueError, jax.errors.JaxRuntimeError), match="do not sum to 1"):
        je.checked(je.total_correlation)(batch)
    with pytest.raises((ValueError, jax.errors.JaxRuntimeError), match="negative"):
        je.checked(je.conditional_mutual_information)(XOR - 0.1)
