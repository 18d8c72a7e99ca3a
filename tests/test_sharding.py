"""Batches sharded over simulated host devices give the single-device numbers.

One Python process with 8 host devices (``XLA_FLAGS`` must name the count before JAX
starts) runs every check: a batch of logistic fits at the benchmark's size (1,000
problems, n = 500, d = 20, float32 — it deadlocked before the Newton solver stopped
calling LAPACK's batched Cholesky), optax-solver fits, ``shard_map`` around
``vmap(fit)``, the batched estimators (kNN, counts, Gaussian copula, multiplet scans of
a batch of data sets) and table measures. Every check runs the same jitted function on
unsharded inputs and on inputs whose batch axis is sharded over the first 2 devices and
over all 8, and asserts the results agree (to float32 rounding: see ``RTOL``). One
process for both meshes: the one-device reference and the import are paid once.
"""

import subprocess
import sys
import textwrap

import pytest

from tests.utils import REPO, level_flags, subprocess_env

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

    assert jax.device_count() == 8, jax.device_count()
    meshes = [
        jax.make_mesh((d,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.devices()[:d])
        for d in (2, 8)
    ]
    rng = np.random.default_rng(0)


    # fn(*args) on unsharded inputs and sharded over each mesh. A function marked
    # on_each_mesh is a function of the mesh (shard_map); its reference is the 8-device
    # program on unsharded inputs.
    def same(name, fn, *args):
        per_mesh = getattr(fn, "per_mesh", False)
        start = time.perf_counter()
        one = jax.block_until_ready((fn(meshes[-1]) if per_mesh else fn)(*args))
        times = [time.perf_counter() - start]
        for mesh in meshes:
            start = time.perf_counter()
            sharded = [jax.device_put(a, NamedSharding(mesh, P("batch"))) for a in args]
            many = jax.block_until_ready((fn(mesh) if per_mesh else fn)(*sharded))
            times.append(time.perf_counter() - start)
            worst = 0.0
            for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(many), strict=True):
                a, b = np.asarray(a), np.asarray(b)
                msg = f"{name} on {mesh.size} devices"
                np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL, err_msg=msg)
                worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b), initial=0)))
            print(f"{name}: {mesh.size} devices, largest difference {worst:.1e}")
        print(f"{name}: " + ", ".join(f"{t:.1f} s" for t in times) + " (1, 2, 8 devices)")


    def on_each_mesh(make):
        make.per_mesh = True
        return make


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
    same(
        "newton under shard_map",
        on_each_mesh(lambda mesh: jax.jit(jax.shard_map(fit, mesh=mesh, in_specs=P("batch"), out_specs=P("batch")))),
        x,
        y,
    )

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


def _run() -> str:
    # 8 devices, and the suite's optimization level (conftest.py).
    env = subprocess_env(["--xla_force_host_platform_device_count=8", *level_flags()])
    code = _SCRIPT.replace("RTOL", repr(RTOL)).replace("ATOL", repr(ATOL))
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_sharded_batches_match_one_device():
    out = _run()
    assert "all equal" in out
