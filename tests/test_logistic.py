"""Tests for jaxent.logistic: shapes, objective, solvers, vmap, and parity with scikit-learn."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import special
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from jaxent import logistic


def _objective(w, b, x, y, l2):
    """The penalized objective in float64 NumPy (the formula scikit-learn minimizes / (C n))."""
    w, b, x = (np.asarray(a, np.float64) for a in (w, b, x))
    z = x @ w + b
    if z.ndim == 1:
        ce = np.logaddexp(0, z) - y * z
    else:
        ce = special.logsumexp(z, axis=1) - z[np.arange(len(y)), y]
    return np.mean(ce) + l2 / 2 * np.sum(w * w)


def _problem(seed, n=60, d=3, num_classes=2, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w = rng.standard_normal((d, num_classes))
    y = np.argmax(x @ w + rng.gumbel(size=(n, num_classes)), axis=1)
    return x.astype(dtype), y


@functools.lru_cache
def _real(name):
    x, y = (load_breast_cancer if name == "breast_cancer" else load_digits)(return_X_y=True)
    return StandardScaler().fit_transform(x), y


fit = jax.jit(logistic.fit, static_argnames=("num_classes", "optimizer", "steps"))


class TestInitPredictLoss:
    def test_init_shapes_and_dtype(self):
        binary = logistic.init(4)
        chex.assert_shape([binary["w"], binary["b"]], [(4,), ()])
        multi = logistic.init(4, 3, dtype=jnp.float64)
        chex.assert_shape([multi["w"], multi["b"]], [(4, 3), (3,)])
        assert multi["w"].dtype == jnp.float64
        assert binary["w"].dtype == jnp.float32

    @pytest.mark.parametrize("num_classes", [1, 0, 2.0, True])
    def test_bad_num_classes(self, num_classes):
        with pytest.raises(ValueError, match="num_classes"):
            logistic.init(3, num_classes)

    def test_predict_proba(self):
        x, _ = _problem(0, n=5, d=3, num_classes=4)
        params = {"w": np.random.default_rng(1).standard_normal((3, 4)), "b": np.arange(4.0)}
        probs = logistic.predict_proba(params, x)
        chex.assert_shape(probs, (5, 4))
        np.testing.assert_allclose(
            probs, special.softmax(x @ params["w"] + params["b"], axis=1), rtol=1e-12
        )
        binary = {"w": params["w"][:, 0], "b": 0.5}
        np.testing.assert_allclose(
            logistic.predict_proba(binary, x), special.expit(x @ binary["w"] + 0.5), rtol=1e-12
        )

    @pytest.mark.parametrize("num_classes", [2, 3])
    def test_loss_matches_numpy_and_leaves_bias_unpenalized(self, num_classes):
        x, y = _problem(2, num_classes=num_classes)
        rng = np.random.default_rng(3)
        shape = (3,) if num_classes == 2 else (3, num_classes)
        params = {"w": rng.standard_normal(shape), "b": rng.standard_normal(shape[1:]) * 10}
        out = logistic.loss(params, x, y, l2=0.3)
        np.testing.assert_allclose(out, _objective(params["w"], params["b"], x, y, 0.3), rtol=1e-13)

    def test_shape_errors_name_the_shapes(self):
        with pytest.raises(ValueError, match=r"\(5, 2\).*\(3,\)"):
            logistic.predict_proba(logistic.init(3), jnp.zeros((5, 2)))
        with pytest.raises(ValueError, match=r"\(4,\)"):
            logistic.fit(jnp.zeros((5, 2)), jnp.zeros(4))
        with pytest.raises(ValueError, match="steps"):
            logistic.fit(jnp.zeros((5, 2)), jnp.zeros(5), steps=0)
        with pytest.raises(TypeError, match="integer"):
            logistic.fit(jnp.zeros((5, 2)), jnp.zeros(5), num_classes=3)


@pytest.mark.slow
class TestScikitLearnParity:
    """float64, default solver; scikit-learn run to tol=1e-10 to get its optimum."""

    @pytest.mark.parametrize("name", ["breast_cancer", "digits"])
    def test_matches_logistic_regression(self, name):
        x, y = _real(name)
        num_classes = int(y.max()) + 1
        n = len(y)
        C = 1.0
        l2 = 1 / (C * n)
        clf = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(x, y)
        params, losses = fit(jnp.asarray(x), jnp.asarray(y), num_classes=num_classes, l2=l2)
        if num_classes == 2:
            w_sk, b_sk = clf.coef_[0], clf.intercept_[0]
        else:
            w_sk, b_sk = clf.coef_.T, clf.intercept_
        f_sk = _objective(w_sk, b_sk, x, y, l2)
        f_je = _objective(params["w"], params["b"], x, y, l2)
        # the bar: objectives equal to 1e-6 relative (observed ~1e-12)
        np.testing.assert_allclose(f_je, f_sk, rtol=1e-6)
        # our optimum is at least as good as scikit-learn's, up to float64 rounding
        assert f_je <= f_sk * (1 + 1e-12)
        np.testing.assert_allclose(float(losses[-1]), f_je, rtol=1e-12)
        np.testing.assert_allclose(params["w"], w_sk, atol=1e-3)
        # the multinomial intercept is defined up to a shift shared by all classes
        np.testing.assert_allclose(
            params["b"] - np.mean(params["b"]), b_sk - np.mean(b_sk), atol=1e-3
        )
        probs = np.asarray(logistic.predict_proba(params, x))
        pred = (probs > 0.5).astype(int) if num_classes == 2 else probs.argmax(1)
        assert np.mean(pred == y) == clf.score(x, y)


class TestNewtonSolver:
    @pytest.mark.parametrize("num_classes", [2, 4])
    def test_losses_decrease_and_converge(self, num_classes):
        x, y = _problem(4, num_classes=num_classes)
        params, losses = fit(x, y, num_classes=num_classes, l2=0.01)
        chex.assert_shape(losses, (50,))
        assert np.all(np.diff(losses) <= 1e-15)
        grad = jax.grad(logistic.loss)(params, x, y, l2=0.01)
        chex.assert_trees_all_close(grad, jax.tree.map(jnp.zeros_like, grad), atol=1e-10)

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_separable_data_without_penalty_stays_finite(self, dtype):
        x = np.array([[-2.0, 1.0], [-1.0, -1.0], [1.0, 0.5], [3.0, -0.2]], dtype)
        y = np.array([0, 0, 1, 1])
        params, losses = fit(x, y, l2=0.0, steps=30)
        chex.assert_tree_all_finite((params, losses))
        assert params["w"].dtype == dtype
        assert np.all(np.diff(losses) <= 1e-6)
        assert losses[-1] < 1e-3

    def test_separable_multinomial_without_penalty_stays_finite(self):
        x, y = _problem(5, n=30, d=4, num_classes=3)
        x = x + 5.0 * np.eye(3, 4)[y]  # push each class far along its own axis
        params, losses = fit(x, y, num_classes=3, steps=30)
        chex.assert_tree_all_finite((params, losses))
        assert np.all(np.diff(losses) <= 1e-12)

    def test_half_precision_is_fitted_in_float32(self):
        x, y = _problem(10, n=100, d=4)
        p16, losses = fit(x.astype(np.float16), y, l2=1e-2)
        p32, _ = fit(x.astype(np.float32), y, l2=1e-2)
        assert p16["w"].dtype == losses.dtype == jnp.float16
        np.testing.assert_allclose(p16["w"], p32["w"], rtol=2e-3, atol=2e-3)

    def test_float32_reaches_float64_optimum(self):
        x, y = _problem(6, n=200, d=5)
        p32, _ = fit(x.astype(np.float32), y, l2=1e-3)
        p64, _ = fit(x, y, l2=1e-3)
        assert p32["w"].dtype == jnp.float32
        f32 = _objective(p32["w"], p32["b"], x, y, 1e-3)
        f64 = _objective(p64["w"], p64["b"], x, y, 1e-3)
        np.testing.assert_allclose(f32, f64, rtol=1e-9)  # error is quadratic in float32 rounding
        # the weights themselves, not just the objective, are converged to float32 level
        np.testing.assert_allclose(p32["w"], p64["w"], rtol=1e-5, atol=1e-6)


class TestBatching:
    def test_vmap_over_datasets_equals_single_fits(self):
        problems = [_problem(seed, n=40) for seed in range(3)]
        xs = np.stack([x for x, _ in problems])
        ys = np.stack([y for _, y in problems])
        params, losses = jax.jit(jax.vmap(logistic.fit))(xs, ys)
        chex.assert_shape([params["w"], params["b"], losses], [(3, 3), (3,), (3, 50)])
        for i, (x, y) in enumerate(problems):
            single, _ = fit(x, y)
            chex.assert_trees_all_close(
                jax.tree.map(lambda a, i=i: a[i], params), single, rtol=1e-9, atol=1e-12
            )

    def test_vmap_over_l2_equals_single_fits(self):
        x, y = _problem(7, num_classes=3)
        l2s = jnp.array([1e-3, 1e-1, 1.0])
        params, _ = jax.jit(jax.vmap(lambda l2: logistic.fit(x, y, num_classes=3, l2=l2)))(l2s)
        for i, l2 in enumerate(l2s):
            single, _ = fit(x, y, num_classes=3, l2=l2)
            # compared through the probabilities: the intercepts may differ by a shift
            # shared by all classes, which the objective does not see
            one = jax.tree.map(lambda a, i=i: a[i], params)
            chex.assert_trees_all_close(
                logistic.predict_proba(one, x), logistic.predict_proba(single, x), rtol=1e-9
            )
            chex.assert_trees_all_close(one["w"], single["w"], rtol=1e-9, atol=1e-12)
        # more penalty, smaller weights
        norms = np.linalg.norm(np.asarray(params["w"]).reshape(3, -1), axis=1)
        assert np.all(np.diff(norms) < 0)

    def test_compiles_once_for_new_data(self):
        @jax.jit
        @chex.assert_max_traces(n=1)
        def fit_one(x, y, l2):
            return logistic.fit(x, y, l2=l2)

        for seed in range(3):
            x, y = _problem(seed)
            fit_one(x, y, 0.1 * seed)


class TestOptaxSolvers:
    @pytest.mark.parametrize(
        "name,optimizer,steps,rtol",
        [
            ("adam", optax.adam(0.05), None, 1e-6),
            ("sgd", optax.sgd(0.5, momentum=0.9), 300, 1e-6),
            ("lbfgs", optax.lbfgs(), 50, 1e-12),
        ],
    )
    def test_reaches_newton_optimum(self, name, optimizer, steps, rtol):
        x, y = _problem(8, num_classes=3)
        newton, _ = fit(x, y, num_classes=3, l2=0.05)
        params, losses = fit(x, y, num_classes=3, l2=0.05, optimizer=optimizer, steps=steps)
        chex.assert_shape(losses, (steps or 500,))
        chex.assert_tree_all_finite(losses)
        f_newton = float(logistic.loss(newton, x, y, l2=0.05))
        np.testing.assert_allclose(
            float(losses[-1]), float(logistic.loss(params, x, y, l2=0.05)), rtol=1e-12
        )
        np.testing.assert_allclose(float(losses[-1]), f_newton, rtol=rtol)

    @pytest.mark.slow  # a big fit: 1025 unknowns, 200 L-BFGS steps
    def test_large_problems_default_to_lbfgs(self):
        # (d + 1) * K = 1025 unknowns: one more than the Newton solve takes
        x, y = _problem(9, n=40, d=40, num_classes=25)
        params, losses = fit(x, y, num_classes=25, l2=0.1)
        chex.assert_shape(losses, (200,))
        grad = jax.grad(logistic.loss)(params, x, y, l2=0.1)
        assert float(optax.tree.norm(grad)) < 1e-5


# Issue 11: labels out of range raised nothing (0, 1, 2 with the default num_classes=2
# gave a loss of -6.7e18; a label 5 with num_classes=3, NaN losses). Concrete labels are
# checked at once; traced ones by je.checked (tests/test_checks.py).
class TestLabelRange:
    @pytest.mark.parametrize(
        "labels, num_classes, message",
        [
            ([0, 1, 2, 0], 2, r"0/1 .* found the label 2; .* pass num_classes=3"),
            ([0, 1, 5, 2], 3, r"class ids in \[0, 3\) .* found the label 5"),
            ([0, 1, -1, 2], 3, r"found the label -1"),
            ([0.0, 1.0, 1.5, 0.0], 2, r"found the label 1\.5"),
            ([0.0, 1.0, np.nan, 0.0], 2, r"found the label nan"),
        ],
    )
    def test_out_of_range_labels_raise(self, labels, num_classes, message):
        x = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.5, -1.0]])
        with pytest.raises(ValueError, match=message):
            logistic.fit(x, np.array(labels), num_classes=num_classes)
        params = logistic.init(2, num_classes)
        with pytest.raises(ValueError, match=message):
            logistic.loss(params, x, np.array(labels))

    def test_soft_and_boundary_labels_are_accepted(self):
        # Soft binary labels and the extreme classes are valid: the objective equals
        # the float64 NumPy formula.
        x, _ = _problem(12, n=8)
        soft = np.linspace(0, 1, 8)
        params, losses = logistic.fit(x, soft, l2=0.1)
        np.testing.assert_allclose(
            losses[-1], _objective(params["w"], params["b"], x, soft, 0.1), rtol=1e-12
        )
        labels = np.array([0, 2, 1, 2, 0, 1, 2, 0])
        params, losses = logistic.fit(x, labels, num_classes=3, l2=0.1)
        np.testing.assert_allclose(
            losses[-1], _objective(params["w"], params["b"], x, labels, 0.1), rtol=1e-12
        )

    def test_traced_labels_are_left_to_checked(self):
        # Under jit the values are unknown at trace time: no error, the same program.
        x, y = _problem(13, n=8)
        params, _ = fit(x, y, l2=0.1)
        want, _ = logistic.fit(x, y, l2=0.1)
        chex.assert_trees_all_close(params, want, rtol=1e-12)
