"""The suite compiles with LLVM's optimizations off (conftest.py); users run the default.

What makes that safe: the optimizations do not change the arithmetic beyond rounding.
XLA's CPU backend runs without fast-math at every level; at the default level some
sums and products are evaluated in another order or fused (a multiply-add), which
moves results by a few ulps and nothing more. This test checks that on a spread of the
library's programs (elementwise, reductions, compensated sums, series, loops, sorts,
gradients; float32 and float64): each is computed here, at the suite's level, and in a
fresh process at XLA's default level. Measured: at most 2.3 machine epsilons times the
result's largest entry.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxent as je
from jaxent import estimators, logistic, losses
from tests.utils import REPO, level_flags, subprocess_env


def results() -> dict[str, np.ndarray]:
    """Elementwise, reduction, loop, sort and gradient programs, float32 and float64."""
    rng = np.random.default_rng(11)
    p = rng.dirichlet(np.full(50, 0.3), size=8)
    q = rng.dirichlet(np.full(50, 0.3), size=8)
    logits = rng.standard_normal((8, 50))
    labels = rng.integers(0, 50, 8)
    x = rng.standard_normal((600, 1))  # above 512: the sorted search
    y = x + rng.standard_normal((600, 1))
    table = rng.random((2, 3, 4))
    table /= table.sum()
    xs, ys = rng.standard_normal((40, 3)), (rng.random(40) < 0.5).astype(float)
    out = {}
    for dtype in (jnp.float32, jnp.float64):
        tag = jnp.dtype(dtype).name
        P, Q, Z = (jnp.asarray(a, dtype) for a in (p, q, logits))
        out[f"entropy {tag}"] = je.entropy(P)
        out[f"kl {tag}"] = je.kl_divergence(P, Q)
        out[f"renyi {tag}"] = je.renyi_divergence(P, Q, alpha=0.7)
        out[f"js {tag}"] = je.js_divergence(P, Q)
        target = optax.smooth_labels(jax.nn.one_hot(labels, 50, dtype=dtype), 0.1)
        grad = jax.grad(lambda z, t: losses.softmax_cross_entropy(z, t).sum())
        out[f"ce grad {tag}"] = jax.jit(grad)(Z, target)
        out[f"entropy from logits {tag}"] = jax.jit(je.entropy_from_logits)(Z)
    out["ksg"] = jax.jit(estimators.ksg_mutual_information)(x, y)
    out["o-information"] = je.o_information(jnp.asarray(table), axes=(0, 1, 2))
    out["nsb"] = estimators.entropy_from_counts(jnp.asarray([5.0, 3, 0, 1, 9]), method="nsb")
    out["logistic fit"] = logistic.fit(xs, ys, l2=0.1)[0]["w"]
    return {name: np.asarray(value) for name, value in out.items()}


# The difference allowed, in machine epsilons times each result's largest entry (the
# largest seen was 2.3).
EPS = 8

_SCRIPT = """
import sys
import jax
import numpy as np
jax.config.update("jax_enable_x64", True)
from tests.test_xla_levels import results
np.savez(sys.argv[1], **results())
"""


@pytest.mark.slow
def test_default_level_gives_the_same_numbers_to_rounding(tmp_path):
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if f not in level_flags()]
    env = subprocess_env(flags, JAX_ENABLE_X64="1")
    path = tmp_path / "default.npz"
    run = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=REPO,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    here = results()
    with np.load(path) as default:
        assert sorted(default.files) == sorted(here)
        for name, value in here.items():
            other = default[name]
            assert (value.dtype, value.shape) == (other.dtype, other.shape), name
            scale = np.max(np.abs(other), initial=0)
            np.testing.assert_allclose(
                value, other, rtol=0, atol=EPS * np.finfo(value.dtype).eps * scale, err_msg=name
            )
