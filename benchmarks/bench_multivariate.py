"""Multivariate information of every multiplet: jaxent against hoi.

Each section is a function that appends rows to one table; ``main`` runs them in one
process, prints each row as it comes and then the whole table as Markdown, with the
machine's load (``os.getloadavg``, what ``uptime`` shows) before and after.

    python benchmarks/bench_multivariate.py            # everything (about 3 minutes)
    python benchmarks/bench_multivariate.py --quick    # smaller sizes, for a smoke test
    python benchmarks/bench_multivariate.py --x64      # both libraries in float64
    python benchmarks/bench_multivariate.py --sections a   # section (a) alone
    python benchmarks/bench_multivariate.py --sections c --dit-tables 10000  # dit on all

Sections (issue 10, "Benchmark"):

(a) O-information of all triplets of F = 30 variables from n = 1,000 samples (4,060
    multiplets), Gaussian copula: ``hoi.metrics.Oinfo(x).fit(minsize=3, maxsize=3,
    method="gc")`` against ``jaxent.estimators.multiplets(x, 3, base=2)``; the values
    are compared (hoi reports bits, with the same bias correction).
(b) All multiplets of sizes 3, 4 and 5 of F = 100 variables from n = 10,000 samples
    (161,700 + 3,921,225 + 75,287,520): jaxent's time for each size; hoi's for size 3
    alone, for scale, with the values compared.
(c) Tables: total correlation and O-information of 10,000 random 4-variable tables
    (4 x 4 x 4 x 4, Dirichlet(1)) in one call each (``je.total_correlation(p, base=2)``,
    ``je.o_information(p, base=2)`` on ``p[10000, 4, 4, 4, 4]``), then S-information
    (``je.s_information``), against dit one table at a time
    (``dit.Distribution.from_ndarray`` and ``dit.multivariate.total_correlation`` /
    ``o_information`` / ``s_information``, what a dit user writes). dit takes about
    0.1 s a table, so by default it runs on the first ``--dit-tables`` (200) tables and
    its time is scaled to 10,000 (it is linear: one table after another); its values
    are compared with jaxent's on those tables. jaxent runs in float64 here, as dit
    does.

Both libraries run in JAX's default float32 unless ``--x64`` is given (hoi stores its
results in float32 either way). jaxent's time is the median of a few calls after a
first call that compiles (the first call's time is printed too); hoi's likewise the
median of its calls after the first (hoi traces its scan again on every ``fit``, so
every call pays that), except in (b), where one call of about a minute is timed whole. The script
uses whatever device JAX finds, so it runs unchanged on a GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings

import jax
import numpy as np

if "--x64" in sys.argv:
    jax.config.update("jax_enable_x64", True)

import jaxent as je

try:
    import dit
    from dit import multivariate as dit_multivariate
except ImportError:  # dit is in the dev extra too
    dit = dit_multivariate = None

try:
    import hoi
    from hoi.metrics import Oinfo
except ImportError:  # hoi is in the dev extra; without it jaxent runs alone
    hoi = Oinfo = None


def _timed(fn):
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - start, out


def _jaxent_time(fn, repeats):
    """(first call, median of the next calls, result)."""
    first, out = _timed(fn)
    warm = [_timed(fn)[0] for _ in range(repeats)]
    return first, statistics.median(warm) if warm else first, out


def _hoi_oinfo(x, size, repeats=1, warm=True):
    """hoi's O-information of every multiplet of ``size`` (bits): the median time of
    ``repeats`` calls after a first one, or with ``warm=False`` the first call alone
    (for long runs, where its compile is negligible)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hoi's float64-to-float32 scatter under x64

        def fit():
            return Oinfo(x, verbose=False).fit(minsize=size, maxsize=size, method="gc")[:, 0]

        if not warm:
            return _timed(fit)
        fit()
        times, outs = zip(*(_timed(fit) for _ in range(repeats)))
        return statistics.median(times), outs[0]


def _differences(got, want):
    """(worst absolute difference, worst relative difference where |want| > 0.1)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    diff = np.abs(got - want)
    big = np.abs(want) > 0.1
    rel = float(np.max(diff[big] / np.abs(want[big]))) if big.any() else 0.0
    return float(np.max(diff)), rel


def _systems(rng, n, num):
    """Samples [n, num] with redundant and synergistic groups among independent ones."""
    x = rng.normal(size=(n, num))
    x[:, 1:4] += x[:, :1]  # 0..3: one signal shared (redundancy)
    x[:, 6] += x[:, 4] + x[:, 5]  # 4, 5, 6: a sum (synergy)
    x[:, 7] = np.exp(x[:, 7] + x[:, 8])  # a monotone transform: the copula ignores it
    return x


def bench_triplets(rows, args, rng):
    """(a) O-information of all triplets of F = 30 variables, n = 1,000: hoi vs jaxent."""
    n, num = (1_000, 30) if not args.quick else (500, 15)
    x = _systems(rng, n, num)
    first, warm, (_, got) = _jaxent_time(
        lambda: je.estimators.multiplets(x, 3, base=2), args.repeats
    )
    case = f"(a) O-information, all {len(got):,} triplets of F = {num}, n = {n:,}"
    if Oinfo is None:
        rows.append((case, "hoi not installed", None, first, warm, None))
        return
    peer_s, want = _hoi_oinfo(x, 3, repeats=args.repeats)
    rows.append((case, "hoi", peer_s, first, warm, _differences(got, want)))
    if not args.x64:  # each library's float32 rounding, against float64 jaxent
        with jax.enable_x64(True):
            exact = je.estimators.multiplets(x, 3, base=2)[1]
        for name, values in (("jaxent", got), ("hoi", want)):
            rows.append(
                (
                    f"(a) {name} float32 vs float64",
                    "",
                    None,
                    None,
                    None,
                    _differences(values, exact),
                )
            )


def bench_all_multiplets(rows, args, rng):
    """(b) All multiplets of sizes 3, 4, 5 of F = 100 variables, n = 10,000."""
    n, num = (10_000, 100) if not args.quick else (2_000, 40)
    x = _systems(rng, n, num)
    total = 0.0
    for size in (3, 4, 5):
        first, warm, (_, got) = _jaxent_time(
            lambda size=size: je.estimators.multiplets(x, size, base=2),
            args.repeats if size < 5 else min(args.repeats, 1),
        )
        total += warm
        case = f"(b) O-information, all {len(got):,} multiplets of size {size}, F = {num}"
        if size == 3 and Oinfo is not None and not args.skip_hoi_large:
            peer_s, want = _hoi_oinfo(x, 3, warm=False)
            rows.append((case, "hoi (first call)", peer_s, first, warm, _differences(got, want)))
        else:
            rows.append((case, "", None, first, warm, None))
        del got
    rows.append((f"(b) sizes 3, 4 and 5 together, n = {n:,}", "", None, None, total, None))


def bench_tables(rows, args, rng):
    """(c) TC and O-information, then S-information, of 10,000 random 4 x 4 x 4 x 4 tables."""
    count = 10_000 if not args.quick else 1_000
    p = rng.dirichlet(np.ones(4**4), size=count).reshape(count, 4, 4, 4, 4)
    axes = (-4, -3, -2, -1)  # the variables; the leading axis is a batch axis
    some = min(args.dit_tables, count)
    measures = [
        ("TC and O-information", ("total_correlation", "o_information")),
        ("S-information", ("s_information",)),
    ]
    for label, names in measures:

        def jaxent_measures(names=names):
            return tuple(getattr(je, name)(p, axes=axes, base=2) for name in names)

        with jax.enable_x64(True):
            first, warm, got = _jaxent_time(jaxent_measures, args.repeats)
        case = f"(c) tables: {label} of {count:,} tables 4 x 4 x 4 x 4"
        if dit is None:
            rows.append((case, "dit not installed", None, first, warm, None))
            continue

        def dit_measures(names=names):
            out = []
            for table in p[:some]:
                d = dit.Distribution.from_ndarray(table)
                out.append([getattr(dit_multivariate, name)(d) for name in names])
            return np.array(out)

        dit_s, want = _timed(dit_measures)
        got = np.stack([g[:some] for g in got], axis=-1)
        scaled = "" if some == count else f" ({some:,} timed, scaled to {count:,})"
        peer_s = dit_s * count / some
        rows.append((case, f"dit{scaled}", peer_s, first, warm, _differences(got, want)))


def _print_table(rows):
    print("| case | peer | peer time | jaxent warm | jaxent first call | ratio | worst diff |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for case, peer, peer_s, first_s, warm_s, diff in rows:
        cells = [
            case,
            peer,
            f"{peer_s:.3f} s" if peer_s is not None else "",
            f"{warm_s:.4f} s" if warm_s is not None else "",
            f"{first_s:.2f} s" if first_s is not None else "",
            f"{peer_s / warm_s:.0f}x" if peer_s is not None else "",
            f"{diff[0]:.1e} bits (rel {diff[1]:.1e})" if diff is not None else "",
        ]
        print("| " + " | ".join(cells) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--x64", action="store_true", help="float64 in both libraries")
    parser.add_argument("--skip-hoi-large", action="store_true", help="no hoi run in section (b)")
    parser.add_argument(
        "--dit-tables", type=int, default=200, help="tables dit computes in (c) (default 200)"
    )
    parser.add_argument(
        "--sections", default="abc", help="which sections to run, e.g. 'a' (default 'abc')"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()
    rows = []
    sections = {"a": bench_triplets, "b": bench_all_multiplets, "c": bench_tables}
    for section in (sections[key] for key in args.sections):
        before = len(rows)
        section(rows, args, rng)
        _print_table(rows[before:])
    load_after = os.getloadavg()

    device = jax.devices()[0]
    print()
    print(
        f"jaxent {je.__version__}, JAX {jax.__version__} on {device.platform} "
        f"({device.device_kind}), hoi {getattr(hoi, '__version__', 'absent')}, "
        f"dit {getattr(dit, '__version__', 'absent')}, "
        f"{'float64' if args.x64 else 'float32'}, {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}); load average (1, 5, 15 min) "
        f"before {', '.join(f'{v:.2f}' for v in load_before)}, "
        f"after {', '.join(f'{v:.2f}' for v in load_after)}"
    )
    print()
    _print_table(rows)


if __name__ == "__main__":
    main()
