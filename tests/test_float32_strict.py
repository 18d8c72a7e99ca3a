"""The public functions as users run them: x64 off and strict dtype promotion.

conftest.py enables x64 for the rest of the suite (its references are float64). Here each
function runs on float32 inputs with ``jax_enable_x64`` off and
``jax_numpy_dtype_promotion="strict"`` (any implicit mixing of dtypes inside jaxent
raises at trace time), under ``jax.jit`` (one compilation per case; eager calls trace the
same code); the result must be float32 and agree with the same function on the float64
image of the inputs (x64 on) to float32 rounding.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxent as je
from jaxent import logistic, losses
from tests.utils import random_joint, random_probs

E = je.estimators
COUNT_METHODS = ("plugin", "miller_madow", "grassberger", "chao_shen", "james_stein")


@contextlib.contextmanager
def float32_strict():
    with jax.enable_x64(False), jax.numpy_dtype_promotion("strict"):
        yield


def _inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """float32 inputs (and int32 labels) shared by the cases."""
    f32 = np.float32
    a = rng.normal(size=(3, 3))
    return {
        "p": random_probs(rng, (3, 6)).astype(f32),
        "q": random_probs(rng, (3, 6), zeros=0.0).astype(f32),
        "u": rng.uniform(0.01, 0.99, size=7).astype(f32),
        "v": rng.uniform(0.01, 0.99, size=7).astype(f32),
        "z": (3 * rng.normal(size=(3, 6))).astype(f32),
        "z2": (3 * rng.normal(size=(3, 6))).astype(f32),
        "pxy": random_joint(rng, (2, 3, 4)).astype(f32),
        "cov": (a @ a.T + 3 * np.eye(3)).astype(f32),
        "mean": rng.normal(size=3).astype(f32),
        "labels": np.array([0, 5, 2], np.int32),
        "hidden": rng.normal(size=(3, 4)).astype(f32),
        "weight": rng.normal(size=(4, 6)).astype(f32),
        "counts": rng.integers(0, 6, size=(2, 8)).astype(f32),
        "x": rng.normal(size=(40, 2)).astype(f32),
        "y": rng.normal(size=(40, 1)).astype(f32),
        "xq": (rng.normal(size=(45, 2)) + 0.5).astype(f32),
        "scores": (2 * rng.normal(size=(2, 5, 5))).astype(f32),
        "w": rng.normal(size=3).astype(f32),
        "binary": rng.integers(0, 2, size=40).astype(np.int32),
    }


# (name, function of the inputs dict, rtol): rtol a few float32 ulps of the result, more
# where the float32 inputs' rounding is amplified (nearly cancelling sums, neighbour logs).
CASES = [
    ("surprisal", lambda d: je.surprisal(d["u"], base=2), 1e-6),
    ("binary_entropy", lambda d: je.binary_entropy(d["u"]), 1e-6),
    ("binary_cross_entropy", lambda d: je.binary_cross_entropy(d["u"], d["v"]), 1e-6),
    ("binary_kl_divergence", lambda d: je.binary_kl_divergence(d["u"], d["v"]), 1e-5),
    ("entropy", lambda d: je.entropy(d["p"], base="bits"), 1e-6),
    ("cross_entropy", lambda d: je.cross_entropy(d["p"], d["q"]), 1e-6),
    ("kl_divergence", lambda d: je.kl_divergence(d["p"], d["q"]), 1e-5),
    ("js_divergence", lambda d: je.js_divergence(d["p"], d["q"]), 1e-5),
    ("renyi_entropy", lambda d: je.renyi_entropy(d["p"], jnp.array([0.5, 1.0, 2.0])), 1e-5),
    ("renyi_divergence", lambda d: je.renyi_divergence(d["p"], d["q"], 2.0), 1e-5),
    ("tsallis_entropy", lambda d: je.tsallis_entropy(d["p"], 0.5), 1e-5),
    ("total_variation", lambda d: je.total_variation(d["p"], d["q"]), 1e-6),
    ("hellinger_distance", lambda d: je.hellinger_distance(d["p"], d["q"]), 1e-5),
    ("entropy_from_logits", lambda d: je.entropy_from_logits(d["z"]), 1e-5),
    ("cross_entropy_from_logits", lambda d: je.cross_entropy_from_logits(d["p"], d["z"]), 1e-6),
    ("kl_divergence_from_logits", lambda d: je.kl_divergence_from_logits(d["z"], d["z2"]), 1e-5),
    ("joint_entropy", lambda d: je.joint_entropy(d["pxy"]), 1e-6),
    ("conditional_entropy", lambda d: je.conditional_entropy(d["pxy"]), 1e-5),
    ("mutual_information", lambda d: je.mutual_information(d["pxy"]), 1e-5),
    ("variation_of_information", lambda d: je.variation_of_information(d["pxy"]), 1e-5),
    ("normalized_mutual_information", lambda d: je.normalized_mutual_information(d["pxy"]), 1e-5),
    ("gaussian_entropy", lambda d: je.gaussian_entropy(d["cov"]), 1e-6),
    (
        "gaussian_kl_divergence",
        lambda d: je.gaussian_kl_divergence(d["mean"], d["cov"], -d["mean"], 2 * d["cov"]),
        1e-5,
    ),
    ("softmax_cross_entropy", lambda d: losses.softmax_cross_entropy(d["z"], d["p"]), 1e-6),
    (
        "softmax_cross_entropy_with_integer_labels",
        lambda d: losses.softmax_cross_entropy_with_integer_labels(
            d["z"], d["labels"], label_smoothing=0.1
        ),
        1e-6,
    ),
    (
        "sigmoid_binary_cross_entropy",
        lambda d: losses.sigmoid_binary_cross_entropy(d["z"], d["p"], pos_weight=2.0),
        1e-6,
    ),
    (
        "fused_linear_cross_entropy",
        lambda d: losses.fused_linear_cross_entropy(d["hidden"], d["weight"], d["labels"]),
        1e-5,
    ),
    (
        "entropy_from_counts",
        lambda d: jnp.stack([E.entropy_from_counts(d["counts"], method=m) for m in COUNT_METHODS]),
        1e-5,
    ),
    ("kozachenko_leonenko_entropy", lambda d: E.kozachenko_leonenko_entropy(d["x"]), 1e-4),
    ("ksg_mutual_information", lambda d: E.ksg_mutual_information(d["x"], d["y"]), 1e-4),
    ("knn_kl_divergence", lambda d: E.knn_kl_divergence(d["x"], d["xq"]), 1e-4),
    (
        "variational bounds",
        lambda d: jnp.stack(
            [b(d["scores"]) for b in (E.infonce_bound, E.nwj_bound, E.donsker_varadhan_bound)]
        ),
        1e-5,
    ),
    (
        "logistic loss",
        lambda d: logistic.loss({"w": d["w"][:2], "b": d["w"][2]}, d["x"], d["binary"], l2=0.1),
        1e-5,
    ),
    (
        "gradient of kl_divergence_from_logits",
        lambda d: jax.grad(lambda z: jnp.sum(je.kl_divergence_from_logits(d["z2"], z)))(d["z"]),
        1e-5,
    ),
    (
        "gradient of cross_entropy",
        lambda d: jax.grad(lambda q: jnp.sum(je.cross_entropy(d["p"], q)))(d["q"]),
        1e-5,
    ),
]


def _float64(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in d.items()}


@pytest.mark.parametrize(("name", "fn", "rtol"), CASES, ids=[c[0] for c in CASES])
def test_float32_under_strict_promotion(name, fn, rtol, rng):
    inputs = _inputs(rng)
    want = np.asarray(fn(_float64(inputs)))  # x64 on (conftest): the float64 value
    with float32_strict():
        got = jax.jit(fn)(inputs)
    assert got.dtype == jnp.float32, name
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=1e-6)
