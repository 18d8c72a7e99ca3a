"""Mutual information and entropy from samples: jaxent against scikit-learn and SciPy.

Every peer and jaxent run side by side in this one process; the answers are checked
against each other (the worst difference is printed) and the wall times and their
ratios (peer time / jaxent time) are printed as a Markdown table.

    python benchmarks/bench_estimators.py            # everything (several minutes)
    python benchmarks/bench_estimators.py --quick    # smaller sizes, for a smoke test

Cases (issue 9, "Benchmark"):

(a) KSG, one continuous feature against a continuous target, at several n:
    ``sklearn.feature_selection.mutual_info_regression`` against
    ``jaxent.feature_selection.mutual_info_regression`` (same ``random_state``: the
    same noise, so the same answer).
(b) 100 features x n = 10,000: one ``mutual_info_regression(X, y)`` call each, and
    the same with ``mutual_info_classif`` on a 3-class target.
(c) 100 independent KSG problems of n = 2,000: scikit-learn one by one against one
    batched ``jaxent.estimators.ksg_mutual_information`` call on the same scaled,
    noised data (so the answers agree).
(d) Kozachenko–Leonenko entropy, n = 100,000 in 1-D and 3-D: jaxent against the same
    estimator written with ``scipy.spatial.cKDTree``; in 1-D also
    ``scipy.stats.differential_entropy`` (Vasicek's estimator: a different estimator,
    for scale only).
    With ``k = 20`` too, in 3-D at n = 20,000 (many neighbours: the search keeps 20).
(c) and (d) also run in float32 with x64 off, as users do by default.
(e) Entropy from histogram counts, 10,000 histograms of 100 bins, one batched call:
    the plug-in estimate against ``scipy.stats.entropy`` and Miller-Madow against the
    same plus its correction in NumPy. (The NSB estimate has no peer installed here.)

jaxent's time is the median of the warm calls after a first call that compiles (at
least ``--repeats``, more until they add up to a second; the first call's time is
printed too); a peer's time is the median of its calls, one call or as many as fit in
a second. ``--sections ac`` runs only cases (a) and (c). The script uses whatever device JAX finds, so
it runs unchanged on a GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

jax.config.update("jax_enable_x64", True)

import sklearn
from scipy import stats
from sklearn.feature_selection import mutual_info_classif as sk_classif
from sklearn.feature_selection import mutual_info_regression as sk_regression

import jaxent as je
from jaxent import feature_selection as jf


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    jax.block_until_ready(out)
    return time.perf_counter() - start, out


def _peer_time(fn, *args):
    """(median time, result) of a peer's calls: one call, or up to 30 under a second."""
    times, out = [], None
    while not times or (sum(times) < 1.0 and len(times) < 30):
        t, out = _timed(fn, *args)
        times.append(t)
    return statistics.median(times), out


def _jaxent_time(fn, repeats):
    """(first call, median of the next calls, result).

    At least ``repeats`` warm calls, and more (up to 30) until they add up to a second:
    the first few calls after compiling can be several times slower than the steady
    state, which a median of three fast calls would report."""
    first, out = _timed(fn)
    warm = []
    while len(warm) < repeats or (sum(warm) < 1.0 and len(warm) < 30):
        warm.append(_timed(fn)[0])
    return first, statistics.median(warm), out


def _worst(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)))


def _sklearn_noise(X, y, seed):
    """scikit-learn's preprocessing of continuous X and y (scale, then 1e-10 noise)."""
    rng = np.random.RandomState(seed)
    X = X / np.nanstd(X, axis=0)
    X = X + 1e-10 * np.maximum(1, np.mean(np.abs(X), axis=0)) * rng.standard_normal(X.shape)
    y = y / np.nanstd(y)
    y = y + 1e-10 * np.maximum(1, np.mean(np.abs(y))) * rng.standard_normal(y.shape)
    return X, y


def _in_float32(fn, *arrays):
    """``fn`` on float32 copies of ``arrays`` with x64 off: what a user runs by default
    (this script turns x64 on for the float64 comparisons with scikit-learn)."""
    arrays = [np.asarray(a, np.float32) for a in arrays]

    def call():
        with jax.enable_x64(False):
            return fn(*arrays)

    return call


def _kl_entropy_kdtree(x, k=3):
    n, d = x.shape
    eps = cKDTree(x).query(x, k=[k + 1], p=2)[0][:, 0]
    log_ball = d / 2 * np.log(np.pi) - gammaln(d / 2 + 1)
    return digamma(n) - digamma(k) + log_ball + d * np.mean(np.log(eps))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--repeats", type=int, default=3, help="fewest warm calls")
    parser.add_argument(
        "--sections", default="abcde", help="which cases to run, e.g. 'ac' (default: all)"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []

    def record(case, peer, peer_s, first_s, warm_s, diff):
        rows.append((case, peer, peer_s, first_s, warm_s, peer_s / warm_s, diff))
        print(
            f"  {case}: {peer} {peer_s:.3f} s, jaxent {warm_s:.4f} s "
            f"(first {first_s:.1f} s), {peer_s / warm_s:.1f}x, worst diff {diff:.1e}",
            flush=True,
        )

    def versus(case, peer, peer_fn, jaxent_fn):
        """Times a peer and jaxent on the same problem and records the row; returns
        jaxent's (first, warm, result) for reuse against another peer."""
        peer_s, want = _peer_time(peer_fn)
        first, warm, got = _jaxent_time(jaxent_fn, args.repeats)
        record(case, peer, peer_s, first, warm, _worst(got, want))
        return first, warm, got

    if "a" in args.sections:
        # (a) one feature against a continuous target.
        sizes = [2_000, 40_000] if args.quick else [2_000, 40_000, 171_522, 1_000_000]
        for n in sizes:
            x = rng.normal(size=(n, 1))
            y = x[:, 0] + rng.normal(size=n)
            versus(
                f"(a) KSG, 1 feature, n = {n:,}",
                "scikit-learn",
                lambda x=x, y=y: sk_regression(x, y, random_state=0),
                lambda x=x, y=y: jf.mutual_info_regression(x, y, random_state=0),
            )

    if "b" in args.sections:
        # (b) 100 features x 10,000 samples, one call each.
        n, f = (2_000, 20) if args.quick else (10_000, 100)
        X = rng.normal(size=(n, f))
        y = X[:, :5].sum(axis=1) + rng.normal(size=n)
        labels = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))
        for name, sk_fn, jx_fn, target in [
            ("regression", sk_regression, jf.mutual_info_regression, y),
            ("classif, 3 classes", sk_classif, jf.mutual_info_classif, labels),
        ]:
            versus(
                f"(b) {f} features x n = {n:,}, {name}",
                "scikit-learn",
                lambda fn=sk_fn, t=target: fn(X, t, random_state=0),
                lambda fn=jx_fn, t=target: fn(X, t, random_state=0),
            )

    if "c" in args.sections:
        # (c) 100 independent problems of 2,000, batched against a loop.
        problems, n = (20, 2_000) if args.quick else (100, 2_000)
        xs = rng.normal(size=(problems, n))
        ys = 0.6 * xs + 0.8 * rng.normal(size=(problems, n))
        start = time.perf_counter()
        want = [sk_regression(xs[p][:, None], ys[p], random_state=p)[0] for p in range(problems)]
        peer_s = time.perf_counter() - start
        noised = [_sklearn_noise(xs[p][:, None], ys[p], p) for p in range(problems)]
        bx = np.stack([a for a, _ in noised])
        by = np.stack([b for _, b in noised])[..., None]
        first, warm, got = _jaxent_time(
            lambda: je.estimators.ksg_mutual_information(bx, by), args.repeats
        )
        record(
            f"(c) {problems} KSG problems of n = {n:,}, one batched call",
            "scikit-learn loop",
            peer_s,
            first,
            warm,
            _worst(np.maximum(got, 0), want),
        )
        first, warm, got = _jaxent_time(
            _in_float32(je.estimators.ksg_mutual_information, bx, by), args.repeats
        )
        record(
            "(c) the same in float32, x64 off",
            "scikit-learn loop",
            peer_s,
            first,
            warm,
            _worst(np.maximum(got, 0), want),
        )

    if "d" in args.sections:
        # (d) Kozachenko-Leonenko entropy.
        n = 20_000 if args.quick else 100_000
        for d in (1, 3):
            x = rng.normal(size=(n, d))
            first, warm, got = versus(
                f"(d) Kozachenko-Leonenko, n = {n:,}, d = {d}",
                "SciPy cKDTree",
                lambda x=x: _kl_entropy_kdtree(x),
                lambda x=x: je.estimators.kozachenko_leonenko_entropy(x),
            )
            versus(
                "(d) the same in float32, x64 off",
                "SciPy cKDTree",
                lambda x=x: _kl_entropy_kdtree(x),
                _in_float32(je.estimators.kozachenko_leonenko_entropy, x),
            )
            if d == 1:
                peer_s, other = _peer_time(stats.differential_entropy, x[:, 0])
                record(
                    f"(d) entropy, n = {n:,}, d = 1 (Vasicek: another estimator)",
                    "scipy.stats.differential_entropy",
                    peer_s,
                    first,
                    warm,
                    _worst(got, other),
                )

        x = rng.normal(size=(n // 5, 3))
        versus(
            f"(d) Kozachenko-Leonenko, k = 20, n = {n // 5:,}, d = 3",
            "SciPy cKDTree",
            lambda x=x: _kl_entropy_kdtree(x, k=20),
            lambda x=x: je.estimators.kozachenko_leonenko_entropy(x, k=20),
        )

    if "e" in args.sections:
        # (e) Entropy from counts, batched.
        counts = rng.poisson(rng.uniform(0.1, 5.0, size=(10_000, 1)), size=(10_000, 100))
        counts = counts.astype(float)

        def miller_madow(c):
            n, seen = c.sum(axis=-1), (c > 0).sum(axis=-1)
            return stats.entropy(c, axis=-1) + (seen - 1) / (2 * n)

        for method, peer, peer_fn in [
            ("plugin", "scipy.stats.entropy", lambda: stats.entropy(counts, axis=-1)),
            ("miller_madow", "scipy.stats.entropy + correction", lambda: miller_madow(counts)),
        ]:
            fn = jax.jit(lambda c, m=method: je.estimators.entropy_from_counts(c, method=m))
            versus(
                f"(e) entropy_from_counts, {method}, 10,000 x 100 bins",
                peer,
                peer_fn,
                lambda fn=fn: fn(counts),
            )

    device = jax.devices()[0]
    print()
    print(
        f"jaxent {je.__version__}, JAX {jax.__version__} on {device.platform} "
        f"({device.device_kind}), scikit-learn {sklearn.__version__}, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})"
    )
    print()
    print("| case | peer | peer time | jaxent warm | jaxent first call | ratio | worst diff |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for case, peer, peer_s, first_s, warm_s, ratio, diff in rows:
        print(
            f"| {case} | {peer} | {peer_s:.3f} s | {warm_s:.4f} s | {first_s:.1f} s "
            f"| {ratio:.1f}x | {diff:.1e} |"
        )


if __name__ == "__main__":
    main()
