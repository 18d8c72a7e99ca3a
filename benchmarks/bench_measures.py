"""Speed and accuracy of every measure and loss beside what a user would otherwise write.

Each row times a jaxent function (value, and gradient where it has one) against its
one-line formula, optax or SciPy equivalent, in the same run, on the same inputs:
``jax.jit``, float32 (and bfloat16 with ``--dtypes``), ``[batch, n]`` inputs (default
``[4096, 1024]``), compile excluded, median of ``--repeats`` calls with
``block_until_ready``. The ratio is jaxent's time over the baseline's (lower is better;
1.5 is the goal on a CPU). The accuracy columns give each side's worst relative error
on the hard cases of ``tests/test_accuracy.py`` (mpmath references at 50 digits) for
the functions both can compute. ``--eager`` times both sides called eagerly, as in a
notebook (no ``jax.jit`` around them; use small inputs, e.g. ``--batch 8 --n 16``, to
see the per-call cost of dispatch). ``--ops`` adds each compiled program's count of
elementwise operations on full-size arrays (value and gradient, jaxent / baseline): on
a CPU, where XLA runs a reduction and the elementwise work feeding it as one library
kernel that pays for each operation, the ratios follow these counts.

    python benchmarks/bench_measures.py [--batch 4096] [--n 1024] [--repeats 7]
        [--dtypes float32,bfloat16] [--only NAME] [--eager] [--ops]

Runs unchanged on a GPU (JAX picks the default backend).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import entr, rel_entr, xlogy

import jaxent as je
from jaxent import losses

# Baselines: the formula a user writes in one line, or optax.


def _entropy(p):
    return jnp.sum(entr(p), axis=-1)


def _cross_entropy(p, q):
    return -jnp.sum(xlogy(p, q), axis=-1)


def _kl(p, q):
    return jnp.sum(rel_entr(p, q), axis=-1)


def _js(p, q):
    m = (p + q) / 2
    return (_kl(p, m) + _kl(q, m)) / 2


def _renyi_entropy(p, a):
    return jnp.log(jnp.sum(p**a, axis=-1)) / (1 - a)


def _renyi_divergence(p, q, a):
    return jnp.log(jnp.sum(p**a * q ** (1 - a), axis=-1)) / (a - 1)


def _tsallis(p, a):
    return (1 - jnp.sum(p**a, axis=-1)) / (a - 1)


def _tv(p, q):
    return jnp.sum(jnp.abs(p - q), axis=-1) / 2


def _hellinger(p, q):
    return jnp.sqrt(jnp.sum((jnp.sqrt(p) - jnp.sqrt(q)) ** 2, axis=-1) / 2)


def _entropy_from_logits(z):
    return -jnp.sum(jax.nn.softmax(z) * jax.nn.log_softmax(z), axis=-1)


def _ce_from_logits(p, z):
    return -jnp.sum(p * jax.nn.log_softmax(z), axis=-1)


def _kl_from_logits(a, b):
    return jnp.sum(jax.nn.softmax(a) * (jax.nn.log_softmax(a) - jax.nn.log_softmax(b)), axis=-1)


def _binary_entropy(p):
    return entr(p) + entr(1 - p)


def _binary_ce(p, q):
    return -(xlogy(p, q) + xlogy(1 - p, 1 - q))


def _binary_kl(p, q):
    return rel_entr(p, q) + rel_entr(1 - p, 1 - q)


def _mi(pxy):
    px = jnp.sum(pxy, -1, keepdims=True)
    py = jnp.sum(pxy, -2, keepdims=True)
    return jnp.sum(rel_entr(pxy, px * py), axis=(-2, -1))


def _joint_entropy(pxy):
    return jnp.sum(entr(pxy), axis=(-2, -1))


def _conditional_entropy(pxy):
    return _joint_entropy(pxy) - jnp.sum(entr(jnp.sum(pxy, -1)), -1)


def _softmax_ce_int(z, y):
    return optax.losses.softmax_cross_entropy_with_integer_labels(z, y)


def _softmax_ce(z, y):
    return optax.losses.softmax_cross_entropy(z, y)


def _sigmoid_bce(z, y):
    return optax.losses.sigmoid_binary_cross_entropy(z, y)


def make_inputs(batch: int, n: int, dtype, seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)

    def probs(shape):
        w = rng.gamma(1.0, size=shape)
        return jnp.asarray(w / w.sum(-1, keepdims=True), dtype)

    side = round(np.sqrt(n))
    pxy = rng.gamma(1.0, size=(batch, side, side))
    return {
        "p": probs((batch, n)),
        "q": probs((batch, n)),
        "z": jnp.asarray(rng.normal(size=(batch, n)) * 3, dtype),
        "z2": jnp.asarray(rng.normal(size=(batch, n)) * 3, dtype),
        "labels": jnp.asarray(rng.integers(0, n, size=batch)),
        "u": jnp.asarray(rng.uniform(size=(batch, n)), dtype),
        "v": jnp.asarray(rng.uniform(size=(batch, n)), dtype),
        "pxy": jnp.asarray(pxy / pxy.sum((-2, -1), keepdims=True), dtype),
    }


def rows(x: dict[str, jax.Array]) -> list[tuple[str, Callable, Callable, tuple]]:
    """(name, jaxent function, baseline, args): every public measure and loss."""
    onehot = jax.nn.one_hot(x["labels"], x["z"].shape[-1], dtype=x["z"].dtype)
    # The order is an argument (traced), as when a user varies it: a constant 2 would
    # let XLA turn the baseline's p**2 into p*p.
    a2 = jnp.asarray(2.0, x["p"].dtype)
    return [
        ("entropy", je.entropy, _entropy, (x["p"],)),
        ("cross_entropy", je.cross_entropy, _cross_entropy, (x["p"], x["q"])),
        ("kl_divergence", je.kl_divergence, _kl, (x["p"], x["q"])),
        ("js_divergence", je.js_divergence, _js, (x["p"], x["q"])),
        ("renyi_entropy(2)", je.renyi_entropy, _renyi_entropy, (x["p"], a2)),
        ("renyi_divergence(2)", je.renyi_divergence, _renyi_divergence, (x["p"], x["q"], a2)),
        ("tsallis_entropy(2)", je.tsallis_entropy, _tsallis, (x["p"], a2)),
        ("total_variation", je.total_variation, _tv, (x["p"], x["q"])),
        ("hellinger_distance", je.hellinger_distance, _hellinger, (x["p"], x["q"])),
        ("entropy_from_logits", je.entropy_from_logits, _entropy_from_logits, (x["z"],)),
        (
            "cross_entropy_from_logits",
            je.cross_entropy_from_logits,
            _ce_from_logits,
            (x["p"], x["z"]),
        ),
        (
            "kl_divergence_from_logits",
            je.kl_divergence_from_logits,
            _kl_from_logits,
            (x["z"], x["z2"]),
        ),
        ("surprisal", je.surprisal, lambda p: -jnp.log(p), (x["u"],)),
        ("binary_entropy", je.binary_entropy, _binary_entropy, (x["u"],)),
        ("binary_cross_entropy", je.binary_cross_entropy, _binary_ce, (x["u"], x["v"])),
        ("binary_kl_divergence", je.binary_kl_divergence, _binary_kl, (x["u"], x["v"])),
        ("joint_entropy", je.joint_entropy, _joint_entropy, (x["pxy"],)),
        ("conditional_entropy", je.conditional_entropy, _conditional_entropy, (x["pxy"],)),
        ("mutual_information", je.mutual_information, _mi, (x["pxy"],)),
        (
            "losses.softmax_cross_entropy",
            losses.softmax_cross_entropy,
            _softmax_ce,
            (x["z"], onehot),
        ),
        (
            "losses.softmax_cross_entropy_with_integer_labels",
            losses.softmax_cross_entropy_with_integer_labels,
            _softmax_ce_int,
            (x["z"], x["labels"]),
        ),
        (
            "losses.sigmoid_binary_cross_entropy",
            losses.sigmoid_binary_cross_entropy,
            _sigmoid_bce,
            (x["z"], x["u"]),
        ),
    ]


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def median_time(fn: Callable, args: tuple, repeats: int, clock: str = "wall") -> float:
    """Median seconds of ``repeats`` calls after a warm-up call. ``clock="cpu"`` counts
    the process's CPU time (all threads): steadier than wall time on a shared machine."""
    now = CLOCKS[clock]
    jax.block_until_ready(fn(*args))  # compile and warm up
    times = []
    for _ in range(repeats):
        start = now()
        jax.block_until_ready(fn(*args))
        times.append(now() - start)
    return float(np.median(times))


# Layout and data movement: not counted as operations.
_MOVES = frozenset(
    [
        "parameter",
        "constant",
        "broadcast",
        "bitcast",
        "copy",
        "slice",
        "dynamic-slice",
        "reshape",
        "transpose",
        "concatenate",
        "pad",
        "reverse",
        "iota",
        "tuple",
        "get-tuple-element",
        "fusion",
        "opt-barrier",
    ]
)


def op_count(fn: Callable, args: tuple) -> int:
    """Elementwise operations on arrays of the first argument's size in the optimized
    program of ``jax.jit(fn)`` (each fused operation once)."""
    size = args[0].size
    text = jax.jit(fn).lower(*args).compile().as_text()
    count = 0
    for dims, op in re.findall(r"= \w+\[([\d,]+)\]\{[^}]*\} ([a-z-]+)\(", text):
        count += op not in _MOVES and math.prod(int(d) for d in dims.split(",")) == size
    return count


def grad_of(fn: Callable, args: tuple) -> Callable | None:
    """Gradient of the summed value in every floating argument (None if there is none)."""
    argnums = tuple(
        i for i, a in enumerate(args) if jnp.issubdtype(a.dtype, jnp.floating) and a.ndim
    )
    if not argnums:
        return None
    return jax.grad(lambda *a: jnp.sum(fn(*a).astype(jnp.float32)), argnums=argnums)


def accuracy() -> dict[str, tuple[float, float]]:
    """Worst relative error per public function on the mpmath hard cases (float32):
    jaxent's and the naive formula's, from ``tests/test_accuracy.py``."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    import test_accuracy as acc

    naive = {
        "entropy": _entropy,
        "kl_divergence": _kl,
        "js_divergence": _js,
        "entropy_from_logits": _entropy_from_logits,
        "cross_entropy_from_logits": _ce_from_logits,
        "kl_divergence_from_logits": _kl_from_logits,
        "binary_entropy": _binary_entropy,
        "binary_cross_entropy": _binary_ce,
        "binary_kl_divergence": _binary_kl,
    }
    worst: dict[str, tuple[float, float]] = {}
    for case in acc.CASES:
        if np.float32 not in case.dtypes:
            continue
        inputs = case.make(np.float32)
        ref = case.ref(*[acc.to_mp(a) for a in inputs])
        tiny = float(np.finfo(np.float32).tiny)
        if abs(float(ref)) < tiny:  # an underflow row: only |error| <= tiny is asked
            continue

        def rel(value, ref=ref, tiny=tiny):
            value = float(value)
            if not np.isfinite(value):
                return float("inf") if value != float(ref) else 0.0
            return abs(value - float(ref)) / max(abs(float(ref)), tiny)

        mine = rel(case.fn(*inputs))
        base = naive.get(case.function)
        theirs = rel(jax.jit(base)(*inputs)) if base is not None else float("nan")
        old = worst.get(case.function, (0.0, 0.0))
        # nan (no naive formula here) must not be lost to max(0.0, nan) = 0.0.
        worst[case.function] = (max(old[0], mine), theirs if base is None else max(old[1], theirs))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dtypes", default="float32")
    parser.add_argument("--only", default=None, help="substring of the names to run")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--eager", action="store_true", help="call both sides without jit")
    parser.add_argument("--ops", action="store_true", help="count each program's operations")
    args = parser.parse_args()
    compiled = (lambda f: f) if args.eager else jax.jit

    print(
        f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}"
    )
    mode = "eager" if args.eager else "jit"
    print(f"inputs [{args.batch}, {args.n}], {mode}, median of {args.repeats}, {args.clock} ms\n")
    worst = {} if args.no_accuracy else accuracy()
    header = "| function | dtype | jaxent | baseline | ratio | grad jaxent | grad baseline | grad ratio |"
    if worst:
        header += " worst rel. err. jaxent | naive |"
    if args.ops:
        header += " ops jaxent / baseline | grad ops |"
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
    for dtype in args.dtypes.split(","):
        x = make_inputs(args.batch, args.n, jnp.dtype(dtype))
        for name, fn, base, fargs in rows(x):
            if args.only and args.only not in name:
                continue
            t_fn = median_time(compiled(fn), fargs, args.repeats, args.clock)
            t_base = median_time(compiled(base), fargs, args.repeats, args.clock)
            line = f"| `{name}` | {dtype} | {1e3 * t_fn:.2f} | {1e3 * t_base:.2f} | {t_fn / t_base:.2f} |"
            g_fn, g_base = grad_of(fn, fargs), grad_of(base, fargs)
            if g_fn is None:
                line += " | | |"
            else:
                tg_fn = median_time(compiled(g_fn), fargs, args.repeats, args.clock)
                tg_base = median_time(compiled(g_base), fargs, args.repeats, args.clock)
                line += f" {1e3 * tg_fn:.2f} | {1e3 * tg_base:.2f} | {tg_fn / tg_base:.2f} |"
            if worst:
                key = name.split("(")[0].removeprefix("losses.")
                mine, theirs = worst.get(key, (float("nan"), float("nan")))
                line += f" {mine:.1e} | {theirs:.1e} |"
            if args.ops:
                line += f" {op_count(fn, fargs)} / {op_count(base, fargs)} |"
                if g_fn is not None:
                    line += f" {op_count(g_fn, fargs)} / {op_count(g_base, fargs)} |"
                else:
                    line += " |"
            print(line, flush=True)


if __name__ == "__main__":
    main()
