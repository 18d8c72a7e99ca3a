"""Drop-in replacements for scikit-learn's mutual-information feature scores.

:func:`mutual_info_regression` and :func:`mutual_info_classif` take and return
NumPy arrays and have the signatures, defaults and semantics of the scikit-learn
functions of the same names, so they plug into
``sklearn.feature_selection.SelectKBest(score_func=...)``: continuous features
(and a continuous target) are scaled to unit standard deviation and get the same
tiny noise drawn from ``random_state``; continuous-continuous pairs use the
Kraskov–Stögbauer–Grassberger estimator, continuous-discrete pairs Ross's, and
discrete-discrete pairs the mutual information of their contingency table;
negative estimates are clipped to 0. With the same ``random_state`` the values
equal scikit-learn's (to rounding), with these differences:

- **Constant features score 0.** scikit-learn's noise is sized by the mean
  magnitude of the feature, which leaves distance ties in a constant feature and
  a spurious positive score that grows with the number of samples (scikit-learn
  issue #30772: 0.21 nats at n = 10⁶). Here a feature (or continuous target) with
  a single value has mutual information exactly 0.
- **Exact distances in small classes.** For a class with at most
  ``2 n_neighbors + 1`` samples scikit-learn's nearest-neighbour search switches to
  a formula (``|x|² - 2 x·y + |y|²``) that loses precision, which can change a
  neighbour count and the score in the third decimal; jaxent's distances are
  exact.
- ``n_jobs`` is accepted and ignored (all features are estimated in one batched,
  compiled call), and ``copy=False`` never overwrites ``X``.

The computation runs in float64 whether or not JAX's 64-bit mode is enabled:
scikit-learn's noise (1e-10 relative) is below float32 resolution.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import numpy as np

from jaxent.estimators import _knn
from jaxent.joint import mutual_information

__all__ = ["mutual_info_classif", "mutual_info_regression"]


def _float64():
    """A context in which JAX computes in float64."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # older JAX

    return enable_x64()


def _random_state(seed: Any) -> np.random.RandomState:
    """scikit-learn's ``check_random_state``: None, an int, or a RandomState."""
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.RandomState(int(seed))
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"{seed!r} cannot be used to seed a numpy.random.RandomState instance")


def _scale_columns(X: np.ndarray) -> np.ndarray:
    """``sklearn.preprocessing.scale(X, with_mean=False)`` for the columns of ``X``."""
    std = np.nanstd(X, axis=0)
    std[std < 10 * np.finfo(std.dtype).eps] = 1.0
    X /= std
    return X


def _discrete_mask(discrete_features: Any, n_features: int, sparse: bool) -> np.ndarray:
    if isinstance(discrete_features, (str, bool)):
        if isinstance(discrete_features, str):
            if discrete_features != "auto":
                raise ValueError("Invalid string value for discrete_features.")
            discrete_features = sparse
        return np.full(n_features, discrete_features, dtype=bool)
    features = np.asarray(discrete_features)
    if features.dtype == bool:
        if features.shape != (n_features,):
            raise ValueError(
                f"a boolean discrete_features mask must have one entry per feature "
                f"({n_features}); got shape {features.shape}"
            )
        return features
    mask = np.zeros(n_features, dtype=bool)
    mask[features] = True
    return mask


def _codes(column: np.ndarray) -> np.ndarray:
    """Integer labels 0 .. K-1 for the distinct values of ``column``."""
    return np.unique(column, return_inverse=True)[1].reshape(-1).astype(np.int32)


def _contingency_mi(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information (nats) of two label arrays: scikit-learn's ``mutual_info_score``."""
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1.0)
    if table.shape[0] == 1 or table.shape[1] == 1:
        return 0.0
    return float(mutual_information(table / table.sum()))


def _ksg(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """KSG in nats for the columns ``x [n, F]`` against ``y [n]``, one batched call."""
    if x.shape[1] == 0:
        return np.zeros(0)
    # NumPy in: one compiled call transfers them (jnp.asarray would dispatch twice more).
    mi = _knn.ksg_mutual_information(x.T[:, :, None], y[None, :, None], k=k)
    return np.asarray(mi, dtype=np.float64)


def _ross(c: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Ross in nats for continuous columns ``c [n, F]`` and labels ``[F, n]`` (or ``[n]``:
    shared, their class sizes counted once)."""
    if c.shape[1] == 0:
        return np.zeros(0)
    x = c.T[:, :, None]  # NumPy: the compiled call below transfers it
    lab = np.asarray(labels, np.int32).reshape(-1, x.shape[1])
    n = x.shape[1]
    if n <= k:
        raise ValueError(f"need more samples than n_neighbors: got n = {n}, n_neighbors = {k}")
    out = _knn._ross_nats(
        x, lab, k=k, block=_knn._BLOCK_ELEMENTS, method="auto", rounding="sklearn"
    )
    return np.asarray(out, dtype=np.float64)


def _estimate(
    X: Any,
    y: Any,
    *,
    discrete_features: Any,
    discrete_target: bool,
    n_neighbors: int,
    random_state: Any,
) -> np.ndarray:
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, numbers.Integral):
        raise TypeError(f"n_neighbors must be a positive integer; got {n_neighbors!r}")
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be a positive integer; got {n_neighbors}")
    sparse = hasattr(X, "toarray") and hasattr(X, "nnz")
    X = np.asarray(X.toarray() if sparse else X)
    if X.ndim == 1:
        raise ValueError(
            f"X must be a 2-D array [n_samples, n_features]; got shape {X.shape} "
            "(reshape a single feature with X.reshape(-1, 1))"
        )
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array [n_samples, n_features]; got shape {X.shape}")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array [n_samples]; got shape {y.shape}")
    n, n_features = X.shape
    if y.shape[0] != n:
        raise ValueError(
            f"X and y have inconsistent numbers of samples: X has {n} (shape {X.shape}), "
            f"y has {y.shape[0]}"
        )
    if n_neighbors >= n:
        raise ValueError(f"n_neighbors = {n_neighbors} must be less than n_samples = {n}")
    discrete = _discrete_mask(discrete_features, n_features, sparse)
    continuous = ~discrete
    if sparse and np.any(continuous):
        raise ValueError("Sparse matrix `X` can't have continuous features.")

    rng = _random_state(random_state)
    # Constant columns (before any noise): their mutual information is 0.
    constant = np.all(X == X[:1], axis=0) if n else np.ones(n_features, bool)
    if np.any(continuous):
        Xc = _scale_columns(np.array(X[:, continuous], dtype=np.float64))
        means = np.maximum(1, np.mean(np.abs(Xc), axis=0))
        Xc += 1e-10 * means * rng.standard_normal(size=(n, np.sum(continuous)))
    if discrete_target:
        labels = _codes(y)
        y_constant = bool(np.all(labels == labels[0]))
    else:
        y = np.array(y, dtype=np.float64)
        y_constant = bool(np.all(y == y[0]))
        std = np.nanstd(y)
        y = y / (std if std != 0 else 1.0)
        y += 1e-10 * np.maximum(1, np.mean(np.abs(y))) * rng.standard_normal(size=n)

    mi = np.zeros(n_features)
    with _float64():
        if np.any(continuous):
            if discrete_target:
                mi[continuous] = _ross(Xc, labels, n_neighbors)
            else:
                mi[continuous] = _ksg(Xc, y, n_neighbors)
        where = np.flatnonzero(discrete)
        if where.size:
            codes = np.stack([_codes(X[:, j]) for j in where])
            if discrete_target:
                mi[where] = [_contingency_mi(c, labels) for c in codes]
            else:
                mi[where] = _ross(np.repeat(y[:, None], where.size, axis=1), codes, n_neighbors)
    mi[constant] = 0.0
    if y_constant:
        mi[:] = 0.0
    return np.where(mi > 0, mi, 0.0)  # clipped at 0, as scikit-learn does (NaN too)


def mutual_info_regression(
    X: Any,
    y: Any,
    *,
    discrete_features: Any = "auto",
    n_neighbors: int = 3,
    copy: bool = True,
    random_state: Any = None,
    n_jobs: int | None = None,
) -> np.ndarray:
    r"""Mutual information between each feature and a continuous target, in nats.

    The drop-in for ``sklearn.feature_selection.mutual_info_regression``: for each
    feature :math:`X_j`, :math:`\max(0, \hat I(X_j; y))` with the
    Kraskov–Stögbauer–Grassberger estimator (algorithm 1, max-norm) for a
    continuous feature and Ross's estimator for a discrete one, after scaling the
    continuous variables by their standard deviation and adding noise of relative
    size 1e-10 drawn from ``random_state`` (features first, then the target, as
    scikit-learn draws it). See the module notes for where the values differ from
    scikit-learn's (constant features get 0).

    Cost: one batched neighbour search over all continuous features (see
    :func:`jaxent.estimators.ksg_mutual_information`), ``O(n log n)`` per feature
    for large ``n``; float64 throughout.

    Args:
      X: features ``[n_samples, n_features]`` (a dense array; a SciPy sparse
        matrix only with all features discrete).
      y: continuous target ``[n_samples]``.
      discrete_features: ``"auto"`` (discrete for sparse ``X`` only), a bool for
        all features, a boolean mask ``[n_features]`` or the indices of the
        discrete features.
      n_neighbors: ``k`` of the estimators (more: lower variance, more bias).
      copy: accepted for compatibility; ``X`` is never modified.
      random_state: None, an int or a ``numpy.random.RandomState`` for the noise.
      n_jobs: accepted for compatibility and ignored.

    Returns:
      The estimated mutual information of each feature with ``y``, a NumPy
      float64 array ``[n_features]``.

    Raises:
      TypeError: for an ``n_neighbors`` that is not an integer.
      ValueError: for an ``n_neighbors`` below 1 or not below the number of
        samples, ``X`` that is not 2-D, ``y`` that is not 1-D (or ``[n, 1]``),
        different numbers of samples in ``X`` and ``y``, an invalid
        ``discrete_features``, a sparse ``X`` with continuous features, or a
        ``random_state`` that cannot seed a ``numpy.random.RandomState``.

    Examples:
      The same numbers as scikit-learn with the same ``random_state``:

      >>> import numpy as np
      >>> from sklearn.feature_selection import mutual_info_regression as sk
      >>> from jaxent.feature_selection import mutual_info_regression
      >>> rng = np.random.default_rng(0)
      >>> X = rng.normal(size=(500, 3))
      >>> y = X[:, 0] + 0.5 * rng.normal(size=500)
      >>> mi = mutual_info_regression(X, y, random_state=0)
      >>> bool(np.allclose(mi, sk(X, y, random_state=0), rtol=1e-6))
      True
      >>> int(np.argmax(mi))
      0

    References:
      A. Kraskov, H. Stögbauer and P. Grassberger, "Estimating mutual
      information", Physical Review E 69, 066138, 2004.
      B. C. Ross, "Mutual information between discrete and continuous data sets",
      PLoS ONE 9(2), e87357, 2014.
    """
    del copy, n_jobs
    return _estimate(
        X,
        y,
        discrete_features=discrete_features,
        discrete_target=False,
        n_neighbors=n_neighbors,
        random_state=random_state,
    )


def mutual_info_classif(
    X: Any,
    y: Any,
    *,
    discrete_features: Any = "auto",
    n_neighbors: int = 3,
    copy: bool = True,
    random_state: Any = None,
    n_jobs: int | None = None,
) -> np.ndarray:
    r"""Mutual information between each feature and a discrete target, in nats.

    The drop-in for ``sklearn.feature_selection.mutual_info_classif``: for each
    feature :math:`X_j`, :math:`\max(0, \hat I(X_j; y))` with Ross's
    nearest-neighbour estimator for a continuous feature and the mutual
    information of the contingency table for a discrete one, after scaling the
    continuous features by their standard deviation and adding noise of relative
    size 1e-10 drawn from ``random_state``. A class with fewer than
    ``n_neighbors + 1`` samples uses ``k = size - 1`` within it, and samples alone
    in their class are left out, as scikit-learn does. See the module notes for
    the differences from scikit-learn.

    Cost: one batched neighbour search within classes over all continuous
    features (see :func:`jaxent.estimators.ross_mutual_information`); float64.

    Args:
      X: features ``[n_samples, n_features]``.
      y: class labels ``[n_samples]`` (any values: integers, strings...).
      discrete_features: as for :func:`mutual_info_regression`.
      n_neighbors: ``k`` of the estimator.
      copy: accepted for compatibility; ``X`` is never modified.
      random_state: None, an int or a ``numpy.random.RandomState`` for the noise.
      n_jobs: accepted for compatibility and ignored.

    Returns:
      The estimated mutual information of each feature with ``y``, a NumPy
      float64 array ``[n_features]``.

    Raises:
      TypeError: for an ``n_neighbors`` that is not an integer.
      ValueError: for an ``n_neighbors`` below 1 or not below the number of
        samples, ``X`` that is not 2-D, ``y`` that is not 1-D (or ``[n, 1]``),
        different numbers of samples in ``X`` and ``y``, an invalid
        ``discrete_features``, a sparse ``X`` with continuous features, or a
        ``random_state`` that cannot seed a ``numpy.random.RandomState``.

    Examples:
      Feature selection on scikit-learn's wine data, as with scikit-learn's
      function:

      >>> from sklearn.datasets import load_wine
      >>> from sklearn.feature_selection import SelectKBest
      >>> from jaxent.feature_selection import mutual_info_classif
      >>> X, y = load_wine(return_X_y=True)
      >>> score = lambda X, y: mutual_info_classif(X, y, random_state=0)
      >>> SelectKBest(score, k=4).fit(X, y).transform(X).shape
      (178, 4)

    References:
      B. C. Ross, "Mutual information between discrete and continuous data sets",
      PLoS ONE 9(2), e87357, 2014.
    """
    del copy, n_jobs
    return _estimate(
        X,
        y,
        discrete_features=discrete_features,
        discrete_target=True,
        n_neighbors=n_neighbors,
        random_state=random_state,
    )
