"""Thousands of logistic regressions: scikit-learn one by one vs one vmapped jaxent call.

Fits ``--problems`` independent synthetic binary problems (``n`` examples, ``d``
features, seeded) with ``LogisticRegression(C=1.0)`` (lbfgs, default tol) one after
another, and with ``jax.jit(jax.vmap(je.logistic.fit))`` in float32 with the default
(Newton) solver and ``l2 = 1/(C n)``. Compile time is excluded (one warm-up call);
times are medians of ``--repeats`` calls. Both fits are scored by the same float64
NumPy objective. scikit-learn is timed on the first ``--sklearn-fits`` problems and
its time per fit extrapolated.

    python benchmarks/bench_logistic.py [--problems 1000] [--sklearn-fits 100]

``--devices 1,2,8`` instead times the jaxent fits with the batch sharded over that many
simulated host devices (``--xla_force_host_platform_device_count``, one subprocess
each, a ``NamedSharding`` on the batch axis), same problems, and checks that every
device count gives the 1-device answers. Simulated devices share the machine's cores:
the times show the partitioning overhead, not a speed-up.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from jaxent import logistic


def make_problems(problems: int, n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((problems, n, d))
    w = rng.standard_normal((problems, d))
    logits = np.einsum("pnd,pd->pn", x, w) + rng.standard_normal((problems, 1))
    y = (rng.random((problems, n)) < 1 / (1 + np.exp(-logits))).astype(np.int64)
    return x, y


def objective(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Mean cross-entropy + l2/2 ||w||^2 per problem, in float64."""
    z = np.einsum("pnd,pd->pn", x, w) + b[:, None]
    return np.mean(np.logaddexp(0, z) - y * z, axis=1) + l2 / 2 * np.sum(w * w, axis=1)


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def sharded_worker(args: argparse.Namespace) -> None:
    """Times ``jit(vmap(fit))`` with the batch sharded over all devices; saves the fits."""
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    x, y = make_problems(args.problems, args.n, args.d, args.seed)
    mesh = jax.make_mesh((jax.device_count(),), ("batch",), axis_types=(AxisType.Auto,))
    batch = NamedSharding(mesh, P("batch"))
    xj = jax.device_put(jnp.asarray(x, jnp.float32), batch)
    yj = jax.device_put(jnp.asarray(y, jnp.float32), batch)
    fit_all = jax.jit(jax.vmap(functools.partial(logistic.fit, l2=1.0 / (args.C * args.n))))
    start = time.perf_counter()
    params, _ = jax.block_until_ready(fit_all(xj, yj))
    compile_time = time.perf_counter() - start
    run_time = median_time(lambda: jax.block_until_ready(fit_all(xj, yj)), args.repeats)
    np.savez(args.out, w=np.asarray(params["w"]), b=np.asarray(params["b"]))
    print(f"{compile_time} {run_time}")


def sharded(args: argparse.Namespace) -> None:
    """One subprocess per device count; prints times and the largest difference."""
    counts = [int(c) for c in args.devices.split(",")]
    print(
        f"{args.problems} binary problems, n={args.n}, d={args.d}, C={args.C}; jax "
        f"{jax.__version__}, simulated host devices on {os.cpu_count()} CPU cores"
    )
    print("| devices | first call (compile + run) | run | largest difference from 1 device |")
    print("| ---: | ---: | ---: | ---: |")
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            out = os.path.join(tmp, f"fits_{count}.npz")
            env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={count}")
            # The workers import the jaxent this process imported.
            root = os.path.dirname(os.path.dirname(os.path.abspath(logistic.__file__)))
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
            cmd = [sys.executable, __file__, "--shard-worker", "--out", out]
            for name in ("problems", "n", "d", "C", "repeats", "seed"):
                cmd += [f"--{name}", str(getattr(args, name))]
            result = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
            compile_time, run_time = map(float, result.stdout.split()[-2:])
            fits = np.load(out)
            fits = np.concatenate([fits["w"], fits["b"][:, None]], axis=1)
            if reference is None:
                reference = fits
            diff = float(np.max(np.abs(fits - reference)))
            print(f"| {count} | {compile_time:.2f} s | {run_time:.3f} s | {diff:.1e} |")
            if not np.allclose(fits, reference, rtol=1e-5, atol=1e-6):
                raise SystemExit(f"{count} devices: fits differ from the first count's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=1000)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--d", type=int, default=20)
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--sklearn-fits", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--devices", help="comma-separated simulated device counts, e.g. 1,2,8 (no sklearn)"
    )
    parser.add_argument("--shard-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.shard_worker:
        return sharded_worker(args)
    if args.devices:
        return sharded(args)
    if min(args.problems, args.n, args.d, args.sklearn_fits, args.repeats) < 1:
        parser.error("sizes, --sklearn-fits and --repeats must be positive")
    sk_fits = min(args.sklearn_fits, args.problems)

    x, y = make_problems(args.problems, args.n, args.d, args.seed)
    l2 = 1.0 / (args.C * args.n)

    sk_params = []

    def run_sklearn():
        sk_params.clear()
        for i in range(sk_fits):
            clf = LogisticRegression(C=args.C).fit(x[i], y[i])
            sk_params.append((clf.coef_[0], clf.intercept_[0]))

    # scikit-learn's time depends on its BLAS threads: on a small machine shared with
    # other work, threads oversubscribe the cores; one thread is its best case here.
    sk_time = median_time(run_sklearn, args.repeats) / sk_fits
    with threadpool_limits(limits=1):
        sk_time_1 = median_time(run_sklearn, args.repeats) / sk_fits

    xj = jnp.asarray(x, jnp.float32)
    yj = jnp.asarray(y, jnp.float32)
    fit_all = jax.jit(jax.vmap(functools.partial(logistic.fit, l2=l2)))
    jax.block_until_ready(fit_all(xj, yj))  # compile and warm up
    jax_time = median_time(lambda: jax.block_until_ready(fit_all(xj, yj)), args.repeats)
    jax_time /= args.problems
    params, losses = fit_all(xj, yj)
    steps_used = int(np.max(np.sum(np.diff(np.asarray(losses), axis=1) != 0, axis=1))) + 1

    w_sk = np.stack([w for w, _ in sk_params])
    b_sk = np.array([b for _, b in sk_params])
    f_sk = objective(w_sk, b_sk, x[:sk_fits], y[:sk_fits], l2)
    w_je = np.asarray(params["w"], np.float64)
    b_je = np.asarray(params["b"], np.float64)
    f_je = objective(w_je[:sk_fits], b_je[:sk_fits], x[:sk_fits], y[:sk_fits], l2)
    rel = (f_je - f_sk) / np.abs(f_sk)
    worst, above = float(np.max(np.abs(rel))), float(max(np.max(rel), 0.0))
    lower = int(np.sum(f_je <= f_sk))

    print(
        f"{args.problems} binary problems, n={args.n}, d={args.d}, C={args.C}; jax "
        f"{jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPU cores"
    )
    print("| method | wall time per fit | jaxent's speed-up |")
    print("| --- | ---: | ---: |")
    for label, per_fit in (
        ("default BLAS threads", sk_time),
        ("BLAS limited to 1 thread", sk_time_1),
    ):
        print(
            f"| scikit-learn LogisticRegression (lbfgs), one by one, {label} "
            f"| {per_fit * 1e3:.3f} ms | {per_fit / jax_time:.1f}x |"
        )
    print(
        f"| jaxent jit(vmap(logistic.fit)), float32 Newton, {args.problems} fits in one call "
        f"(<= {steps_used} steps) | {jax_time * 1e3:.4f} ms | |"
    )
    print(
        f"objectives (float64 evaluation, {sk_fits} problems): worst relative difference "
        f"{worst:.2e}; jaxent lower or equal on {lower}/{sk_fits}, above by at most {above:.1e}"
    )


if __name__ == "__main__":
    main()
