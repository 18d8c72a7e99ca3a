"""jaxent.feature_selection against scikit-learn's functions of the same names.

With the same random_state both add the same noise, so the estimates agree to
rounding (float64 sums in a different order): the stated tolerance is 1e-6 relative,
the observed agreement about 1e-12.
"""

import subprocess
import sys

import numpy as np
import pytest
import sklearn.feature_selection as skf
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from jaxent import feature_selection as jf

RTOL = 1e-6


def _both(name, X, y, **kw):
    return getattr(jf, name)(X, y, **kw), getattr(skf, name)(X, y, **kw)


@pytest.mark.slow
def test_regression_on_diabetes():
    X, y = load_diabetes(return_X_y=True)
    got, want = _both("mutual_info_regression", X, y, random_state=0)
    np.testing.assert_allclose(got, want, rtol=RTOL)
    # Column 1 (sex) takes two values: as a discrete feature it uses Ross's estimator
    # with the target as the continuous variable.
    mask = np.zeros(X.shape[1], bool)
    mask[1] = True
    got, want = _both("mutual_info_regression", X, y, discrete_features=mask, random_state=3)
    np.testing.assert_allclose(got, want, rtol=RTOL)
    assert got[1] > 0


@pytest.mark.parametrize("loader", [load_breast_cancer, load_wine])
def test_classification_on_real_data(loader):
    X, y = loader(return_X_y=True)
    got, want = _both("mutual_info_classif", X, y, random_state=1)
    np.testing.assert_allclose(got, want, rtol=RTOL)


@pytest.mark.slow
def test_mixed_features_and_string_labels():
    rng = np.random.default_rng(0)
    n = 500  # up to 512 points the 2-D search is brute force: quick to compile
    y = rng.choice(np.array(["a", "b", "c"]), size=n)
    code = (y == "b") + 2 * (y == "c")
    X = np.column_stack(
        [
            code + rng.normal(size=n),  # continuous, informative
            rng.normal(size=n),  # continuous, independent
            (code + rng.integers(0, 2, size=n)) % 3,  # discrete, informative
            rng.integers(0, 4, size=n),  # discrete, independent
        ]
    ).astype(float)
    for discrete in ([2, 3], np.array([False, False, True, True])):
        got, want = _both(
            "mutual_info_classif", X, y, discrete_features=discrete, n_neighbors=5, random_state=7
        )
        np.testing.assert_allclose(got, want, rtol=RTOL)
    rs = np.random.RandomState(5)
    got = jf.mutual_info_regression(X, code + 0.1 * X[:, 0], random_state=rs)
    want = skf.mutual_info_regression(
        X, code + 0.1 * X[:, 0], random_state=np.random.RandomState(5)
    )
    np.testing.assert_allclose(got, want, rtol=RTOL)


def test_select_k_best_picks_the_same_features():
    from sklearn.feature_selection import SelectKBest

    X, y = load_breast_cancer(return_X_y=True)
    ours = SelectKBest(lambda X, y: jf.mutual_info_classif(X, y, random_state=0), k=5).fit(X, y)
    theirs = SelectKBest(lambda X, y: skf.mutual_info_classif(X, y, random_state=0), k=5).fit(X, y)
    np.testing.assert_array_equal(ours.get_support(), theirs.get_support())


@pytest.mark.slow
def test_constant_feature_scores_zero():
    # scikit-learn's noise leaves ties in a constant feature; its score is then the
    # estimator's bias on tied data, not 0 (scikit-learn issue #30772).
    rng = np.random.default_rng(1)
    X = np.column_stack([np.full(500, 5.0), rng.normal(size=500)])
    y = X[:, 1] + rng.normal(size=500)
    got = jf.mutual_info_regression(X, y, random_state=0)
    assert got[0] == 0.0
    np.testing.assert_allclose(got[1], skf.mutual_info_regression(X, y, random_state=0)[1], RTOL)
    assert np.all(jf.mutual_info_classif(X, y > 0, random_state=0)[:1] == 0)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: jf.mutual_info_regression(np.ones((10, 2)), np.ones(9)), ValueError, "10.*9"),
        (lambda: jf.mutual_info_regression(np.ones(10), np.ones(10)), ValueError, "2-D"),
        (
            lambda: jf.mutual_info_regression(np.ones((4, 2)), np.ones(4), n_neighbors=4),
            ValueError,
            "n_neighbors = 4.*n_samples = 4",
        ),
        (
            lambda: jf.mutual_info_classif(np.ones((10, 2)), np.ones(10), discrete_features="x"),
            ValueError,
            "discrete_features",
        ),
        (
            lambda: jf.mutual_info_classif(np.ones((10, 2)), np.ones(10), n_neighbors=1.5),
            TypeError,
            "n_neighbors",
        ),
    ],
)
def test_bad_input_raises(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.slow
def test_float64_without_x64_enabled():
    # The test session enables x64; a fresh process shows the default configuration.
    code = (
        "import numpy as np, jax\n"
        "from sklearn.feature_selection import mutual_info_regression as sk\n"
        "from jaxent.feature_selection import mutual_info_regression as jx\n"
        "assert not jax.config.jax_enable_x64\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.normal(size=(300, 2)); y = X[:, 0] + rng.normal(size=300)\n"
        "np.testing.assert_allclose(jx(X, y, random_state=0), sk(X, y, random_state=0), rtol=1e-6)\n"
        "assert not jax.config.jax_enable_x64\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)
