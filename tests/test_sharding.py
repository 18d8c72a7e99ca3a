"""Batches sharded over simulated host devices give the single-device numbers.

Each device count runs in its own Python process (``XLA_FLAGS`` must name the count
before JAX starts), and that one process runs every check: a batch of logistic fits
at the benchmark's size (1,000 problems, n = 500, d = 20, float32 — it deadlocked
before the Newton solver stopped calling LAPACK's batched Cholesky), optax-solver
fits, ``shard_map`` around ``vmap(fit)``, the batched estimators (kNN, counts,
Gaussian copula, multiplet scans of a batch of data sets) and table measures. Every
check runs the same jitted function on unsharded inputs and on inputs whose batch
axis is sharded over all devices, and asserts the results agree (to float32
rounding: see ``RTOL``).
"""

import os
import subprocess
import sys
import textwrap

import pytest

# Each device compiles the same per-problem code for its own slice of the batch; XLA's
# CPU code generation (vectorization, order of reductions) depends on that slice's size,
# so the results agree to float32 rounding (exactly on 2 devices, within 1e-7 on 8 for
# the fits, whose weights are converged to rounding level), not always bit for bit.
RTOL, ATOL = 1e-5, 1e-6

_SCRIPT = textwrap.dedent(
    """
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import jaxent as je
    from jaxent import estimators

    devices = jax.device_count()
    assert devices == DEVICES, devices
    mesh = jax.make_mesh((devices,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    rng = np.random.default_rng(0)


    def shard(a):
        return jax.device_put(a, NamedSharding(mesh, P("batch")))


    def same(name, fn, *args):
        start = time.perf_counter()
        one = jax.block_until_ready(fn(*args))
        middle = time.perf_counter()
        many = jax.block_until_ready(fn(*map(shard, args)))
        end = time.perf_counter()
        worst = 0.0
        for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(many), strict=True):
            a, b = np.asarray(a), np.asarray(b)
            np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL, err_msg=name)
            worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b), initial=0)))
        print(f"{name}: 1 device {middle - start:.1f} s, {devices} devices "
              f"{end - middle:.1f} s, largest difference {worst:.1e}")


    def logistic_problems(b, n, d):
        x = rng.standard_normal((b, n, d)).astype(np.float32)
        w = rng.standard_normal((b, d))
        p = 1 / (1 + np.exp(-np.einsum("bnd,bd->bn", x, w)))
        return x, (rng.random((b, n)) < p).astype(np.float32)


    # The benchmark's batch of fits with the default (Newton) solver.
    x, y = logistic_problems(1000, 500, 20)
    same("newton 1000x500x20", jax.jit(jax.vmap(lambda a, b: je.logistic.fit(a, b, l2=1 / 500))), x, y)
    # Multinomial Newton, an optax solver, and each device's own loop under shard_map.
    x, y = logistic_problems(16, 40, 3)
    labels = rng.integers(0, 3, (16, 40)).astype(np.int32)
    # The softmax's biases are fixed only up to a common shift: compare probabilities.
    multinomial = jax.vmap(
        lambda a, b: je.logistic.predict_proba(je.logistic.fit(a, b, num_classes=3, l2=0.1)[0], a)
    )
    same("newton multinomial", jax.jit(multinomial), x, labels)
    adam = jax.vmap(lambda a, b: je.logistic.fit(a, b, optimizer=optax.adam(0.1), steps=20))
    same("optax adam", jax.jit(adam), x, y)
    fit = jax.vmap(lambda a, b: je.logistic.fit(a, b, l2=0.1))
    same("newton under shard_map", jax.jit(jax.shard_map(fit, mesh=mesh, in_specs=P("batch"), out_specs=P("batch"))), x, y)

    # Batched estimators: 16 problems of 64 samples.
    b, n = 16, 64
    xs = rng.standard_normal((b, n, 2)).astype(np.float32)
    ys = (xs[..., :1] + rng.standard_normal((b, n, 1))).astype(np.float32)
    zs = rng.standard_normal((b, n, 1)).astype(np.float32)
    classes = rng.integers(0, 3, (b, n)).astype(np.int32)
    counts = rng.integers(0, 20, (b, 10)).astype(np.float32)
    same("ksg_mutual_information", jax.jit(estimators.ksg_mutual_information), xs, ys)
    same("kozachenko_leonenko_entropy", jax.jit(estimators.kozachenko_leonenko_entropy), xs)
    same("knn_kl_divergence", jax.jit(estimators.knn_kl_divergence), xs, xs + 0.5)
    same("ross_mutual_information", jax.jit(estimators.ross_mutual_information), xs, classes)
    same("ksg_conditional_mutual_information", jax.jit(estimators.ksg_conditional_mutual_information), xs, ys, zs)
    for method in ("plugin", "miller_madow"):
        same(f"entropy_from_counts {method}", jax.jit(lambda c, m=method: estimators.entropy_from_counts(c, method=m)), counts)

    # Table measures over a batch of distributions.
    joint = rng.random((b, 4, 5)).astype(np.float32)
    joint /= joint.sum(axis=(-2, -1), keepdims=True)
    probs = joint.reshape(b, 20)
    same("mutual_information", jax.jit(je.mutual_information), joint)
    same("entropy", jax.jit(je.entropy), probs)
    table = rng.random((b, 2, 3, 2)).astype(np.float32)
    table /= table.sum(axis=(-3, -2, -1), keepdims=True)
    same("o_information", jax.jit(lambda t: je.o_information(t, axes=(-3, -2, -1))), table)
    same("conditional_mutual_information", jax.jit(je.conditional_mutual_information), table)
    same("entropy_from_counts nsb", jax.jit(lambda c: estimators.entropy_from_counts(c, method="nsb")), counts)

    # Gaussian-copula estimators, and multiplet scans of a batch of data sets.
    same("gaussian_copula_mutual_information", jax.jit(estimators.gaussian_copula_mutual_information), xs, ys)
    same("multiplets", jax.jit(jax.vmap(lambda a: estimators.multiplets(a, 3)[1])), rng.standard_normal((b, n, 5)).astype(np.float32))
    print("all equal")
    """
)


def _run(devices: int) -> str:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    code = _SCRIPT.replace("DEVICES", str(devices))
    code = code.replace("RTOL", repr(RTOL)).replace("ATOL", repr(ATOL))
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=root,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("devices", [2, 8])
def test_sharded_batches_match_one_device(devices):
    out = _run(devices)
    assert "all equal" in out
