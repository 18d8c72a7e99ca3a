"""Fused linear cross-entropy vs the materialized optax loss: time and memory.

For each size ``N x D -> V`` it compiles ``jax.value_and_grad`` (with respect to
``hidden`` and ``weight``) of the mean loss two ways, on the current default device,
in the same run:

* fused: ``je.losses.fused_linear_cross_entropy(hidden, weight, labels)``;
* naive: ``optax.softmax_cross_entropy_with_integer_labels(hidden @ weight, labels)``
  on the ``[N, V]`` logits (half precision multiplied with float32 accumulation, as
  the fused loss does).

Temporary memory is XLA's own count for the compiled program
(``compiled.memory_analysis().temp_size_in_bytes``: the buffers beyond the inputs
and outputs, i.e. the peak working memory of one call), on any backend. Times are
medians of ``--repeats`` calls after one warm-up call (compilation excluded).

    python benchmarks/bench_fused_ce.py [--sizes 2048x256x32768 8192x1024x65536]
        [--dtype bfloat16] [--chunk-size N] [--repeats 5]
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxent as je

MIB = 2**20


def naive_loss(hidden, weight, labels):
    logits = jnp.matmul(hidden, weight, preferred_element_type=jnp.float32)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(loss, args, repeats: int) -> dict:
    compiled = jax.jit(jax.value_and_grad(loss, (0, 1))).lower(*args).compile()
    analysis = compiled.memory_analysis()
    jax.block_until_ready(compiled(*args))  # warm-up
    return {
        "time": median_time(lambda: compiled(*args), repeats),
        "temp": None if analysis is None else analysis.temp_size_in_bytes,
    }


def fmt_bytes(x: int | None) -> str:
    return "n/a" if x is None else f"{x / MIB:.1f} MiB"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1024x256x8192", "2048x256x32768"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument(
        "--chunk-size", type=int, default=None, help="default: chosen from the shapes"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    dtype = jnp.dtype(args.dtype)
    fused = functools.partial(je.losses.fused_linear_cross_entropy, chunk_size=args.chunk_size)

    device = jax.devices()[0]
    print(
        f"value_and_grad of the mean loss, {args.dtype}, chunk_size={args.chunk_size or 'auto'}; "
        f"jax {jax.__version__} on {device.platform} ({device.device_kind})"
    )
    print(
        "| N x D -> V | logits N*V*4 | fused time | naive time | time ratio "
        "| fused temp | naive temp | temp ratio |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in args.sizes:
        n, d, v = (int(s) for s in size.split("x"))
        keys = jax.random.split(jax.random.key(0), 3)
        hidden = jax.random.normal(keys[0], (n, d), dtype)
        weight = (jax.random.normal(keys[1], (d, v)) / np.sqrt(d)).astype(dtype)
        labels = jax.random.randint(keys[2], (n,), 0, v)
        fast = measure(fused, (hidden, weight, labels), args.repeats)
        slow = measure(naive_loss, (hidden, weight, labels), args.repeats)
        print(
            f"| {n} x {d} -> {v} | {fmt_bytes(4 * n * v)} "
            f"| {fast['time'] * 1e3:.2f} ms | {slow['time'] * 1e3:.2f} ms "
            f"| {ratio(fast['time'], slow['time'])} "
            f"| {fmt_bytes(fast['temp'])} | {fmt_bytes(slow['temp'])} "
            f"| {ratio(fast['temp'], slow['temp'])} |"
        )


if __name__ == "__main__":
    main()
