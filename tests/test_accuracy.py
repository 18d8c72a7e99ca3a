"""Hard-case accuracy of jaxent against mpmath at 50 significant digits.

Every reference is computed with mpmath from the *exact* floating-point values that
are fed to jaxent (each float32/float64 input ``x`` enters the reference as
``mpmath.mpf(float(x))``, never as the decimal literal it was made from), so the
error measured is jaxent's alone, not the rounding of the inputs. Measures are
evaluated exactly as defined on the given (possibly not exactly normalized) inputs:
``kl_divergence(p, q)`` is ``sum p log(p/q)`` of the cast vectors, with their exact
sums, and so on.

Relative error is ``|value - reference| / max(|reference|, tiny)`` with ``tiny`` the
dtype's smallest normal number. A reference below ``tiny`` (e.g. the entropy of
softmax(logits) whose top two logits are thousands apart, about ``e^-2500``, or ~3e-39
in float32) is an *underflow* row: XLA on CPU flushes subnormals to zero, so such a
row only asks ``|value - reference| <= tiny`` (its target is printed as 1, in units
of ``tiny``).

Targets: 1e-6 in float32 (a few ulps, ulp = 1.2e-7 relative) and 1e-14 in float64
(~45 ulps). Each (case, dtype) is a test of its own, evaluated both eagerly and
under ``jax.jit``; ``test_report`` computes the whole table itself (whatever ran
before it, on whichever xdist worker) and checks the worst relative error per
function; the table is printed at the end of the pytest run (conftest.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import jaxent as je
from tests.utils import ACCURACY_SECTION

mpmath.mp.dps = 50
mp = mpmath.mp

TARGET = {np.float32: 1e-6, np.float64: 1e-14}
DTYPES = (np.float32, np.float64)


# ----------------------------------------------------------------- mpmath helpers
def to_mp(a):
    """Exact mpmath image of a float array (scalar -> mpf, 1-d -> list of mpf)."""
    a = np.asarray(a)
    if a.ndim == 0:
        return mpmath.mpf(float(a))
    return [to_mp(x) for x in a]


def xlogy(x, y):
    return mpmath.mpf(0) if x == 0 else x * mp.log(y)


def xlog1my(x, y):
    """x log(1 - y) with log1p: at 50 digits, 1 - 1e-54 would round to 1."""
    return mpmath.mpf(0) if x == 0 else x * mp.log1p(-y)


def ref_binary_entropy(p):
    return -xlogy(p, p) - xlog1my(1 - p, p)


def ref_binary_cross_entropy(p, q):
    return -xlogy(p, q) - xlog1my(1 - p, q)


def ref_binary_kl(p, q):
    tail = mpmath.mpf(0) if p == 1 else (1 - p) * (mp.log1p(-p) - mp.log1p(-q))
    return xlogy(p, p / q) + tail


def ref_entropy(p):
    return -mp.fsum(xlogy(x, x) for x in p)


def ref_kl(p, q):
    return mp.fsum(xlogy(a, a / b) for a, b in zip(p, q))


def ref_hellinger(p, q):
    return mp.sqrt(mp.fsum((mp.sqrt(a) - mp.sqrt(b)) ** 2 for a, b in zip(p, q)) / 2)


def ref_js(p, q):
    m = [(a + b) / 2 for a, b in zip(p, q)]
    return (ref_kl(p, m) + ref_kl(q, m)) / 2


def log_softmax(z):
    """Log-softmax as (z - top) - log1p(rest): a plain log(sum exp) at 50 digits would
    round the top class's log-probability -e^-256 (logits 256 apart) to 0."""
    top = max(z)
    k = z.index(top)
    rest = mp.fsum(mp.exp(x - top) for i, x in enumerate(z) if i != k and not mp.isinf(x))
    return [mpmath.mpf("-inf") if mp.isinf(x) else (x - top) - mp.log1p(rest) for x in z]


def ref_entropy_from_logits(z):
    return -mp.fsum(mp.exp(l) * l for l in log_softmax(z) if not mp.isinf(l))


def ref_cross_entropy_from_logits(p, z):
    return -mp.fsum(a * l for a, l in zip(p, log_softmax(z)) if a != 0)


def ref_kl_from_logits(zp, zq):
    lp, lq = log_softmax(zp), log_softmax(zq)
    return mp.fsum(mp.exp(a) * (a - b) for a, b in zip(lp, lq) if not mp.isinf(a))


def ref_renyi(p, alpha):
    support = [x for x in p if x > 0]
    if alpha == 0:  # Hartley: log of the support size
        return mp.log(len(support))
    if alpha == 1:  # Shannon limit
        return ref_entropy(support)
    if mp.isinf(alpha):  # min-entropy
        return -mp.log(max(support))
    return mp.log(mp.fsum(x**alpha for x in support)) / (1 - alpha)


# ----------------------------------------------------------------- input builders
def near_equal(n: int, eps: float, seed: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """p = softmax(x + eps * noise), q = softmax(x), built in float64, then cast."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    noise = rng.normal(size=n)

    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    return softmax(x + eps * noise).astype(dtype), softmax(x).astype(dtype)


def near_equal_logits(n: int, eps: float, seed: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = 3 * rng.normal(size=n)
    return x.astype(dtype), (x + eps * rng.normal(size=n)).astype(dtype)


def near_equal_with_far_event(
    n: int, eps: float, seed: int, dtype
) -> tuple[np.ndarray, np.ndarray]:
    """Near-equal logits, except the least likely event, 3 higher in the second."""
    zp, zq = near_equal_logits(n, eps, seed, np.float64)
    zq[np.argmin(zp)] += 3
    return zp.astype(dtype), zq.astype(dtype)


def spread_logits(n: int, seed: int, close: float | None, dtype) -> np.ndarray:
    """Logits uniform in [-1e4, 1e4]; with ``close``, a second logit ``close`` below the top."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1e4, 1e4, size=n)
    if close is not None:
        top = int(np.argmax(z))
        z[(top + 1) % n] = z[top] - close
    return z.astype(dtype)


def random_probs(n: int, seed: int, dtype) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.uniform(size=n)
    return (w / w.sum()).astype(dtype)


def scalars(*values):
    return lambda dtype: tuple(np.asarray(v, dtype) for v in values)


# ----------------------------------------------------------------- the cases
@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    fn: Callable  # a public jaxent function, called positionally on the inputs
    make: Callable  # dtype -> tuple of numpy inputs of that dtype
    ref: Callable  # mpmath inputs -> mpf reference
    dtypes: tuple = DTYPES

    @property
    def function(self) -> str:
        return self.fn.__name__


# Dyadic probabilities are exactly normalized in every dtype. The Rényi entropy near
# alpha = 1 is ill-conditioned in sum(p): its expansion in (alpha - 1) assumes
# sum(p) = 1, and a rounding error delta in the sum moves the exact formula
# log(sum p^alpha)/(1 - alpha) by about delta/(alpha - 1) -- 0.1 at alpha = 1 + 1e-6
# in float32. So the orders near 1 are tested on a dyadic vector only.
DYADIC = (0.5, 0.25, 0.125, 0.125)


def renyi_inputs(p, alpha):
    """(p, alpha) in the dtype; ``p`` a tuple of probabilities or a dtype -> array maker."""
    return lambda dtype: (
        p(dtype) if callable(p) else np.asarray(p, dtype),
        np.asarray(alpha, dtype),
    )


def renyi_divergence_inputs(alpha):
    """(dyadic p, uniform q, alpha): both exactly normalized (see DYADIC)."""
    return lambda dtype: (
        np.asarray(DYADIC, dtype),
        np.full(4, 0.25, dtype),
        np.asarray(alpha, dtype),
    )


def generic_probs(dtype):
    return random_probs(6, 10, dtype)


def ref_tsallis(p, alpha):
    return (1 - mp.fsum(x**alpha for x in p if x > 0)) / (alpha - 1)


def ref_renyi_divergence(p, q, alpha):
    if alpha == 1:
        return ref_kl(p, q)
    return mp.log(mp.fsum(x**alpha * y ** (1 - alpha) for x, y in zip(p, q) if x > 0)) / (alpha - 1)


F32, F64 = np.float32, np.float64
CASES: list[Case] = [
    # --- binary entropy
    Case("binary_entropy(1e-7)", je.binary_entropy, scalars(1e-7), ref_binary_entropy),
    Case("binary_entropy(1e-30)", je.binary_entropy, scalars(1e-30), ref_binary_entropy),
    Case("binary_entropy(1-1e-7)", je.binary_entropy, scalars(1 - 1e-7), ref_binary_entropy),
    Case("binary_entropy(0.3)", je.binary_entropy, scalars(0.3), ref_binary_entropy),
    # --- binary KL divergence
    Case("binary_kl(0.3, 0.3001)", je.binary_kl_divergence, scalars(0.3, 0.3001), ref_binary_kl),
    Case(
        "binary_kl(0.3, 0.3+1e-6)", je.binary_kl_divergence, scalars(0.3, 0.3 + 1e-6), ref_binary_kl
    ),
    Case("binary_kl(1e-20, 1e-10)", je.binary_kl_divergence, scalars(1e-20, 1e-10), ref_binary_kl),
    Case("binary_kl(1e-7, 1.1e-7)", je.binary_kl_divergence, scalars(1e-7, 1.1e-7), ref_binary_kl),
    Case(
        "binary_kl(1-1e-6, 1-2e-6)",
        je.binary_kl_divergence,
        scalars(1 - 1e-6, 1 - 2e-6),
        ref_binary_kl,
    ),
    Case("binary_kl(0.5, 1e-30)", je.binary_kl_divergence, scalars(0.5, 1e-30), ref_binary_kl),
    # --- binary cross-entropy
    Case(
        "binary_ce(1, 1-1e-7)",
        je.binary_cross_entropy,
        scalars(1.0, 1 - 1e-7),
        ref_binary_cross_entropy,
    ),
    Case(
        "binary_ce(0, 1e-30)",
        je.binary_cross_entropy,
        scalars(0.0, 1e-30),
        ref_binary_cross_entropy,
    ),
    Case(
        "binary_ce(1e-7, 1e-7)",
        je.binary_cross_entropy,
        scalars(1e-7, 1e-7),
        ref_binary_cross_entropy,
    ),
    Case(
        "binary_ce(1e-20, 1e-20)",
        je.binary_cross_entropy,
        scalars(1e-20, 1e-20),
        ref_binary_cross_entropy,
    ),
    Case(
        "binary_ce(0.3, 0.3001)",
        je.binary_cross_entropy,
        scalars(0.3, 0.3001),
        ref_binary_cross_entropy,
    ),
    # --- entropy
    Case(
        "entropy near-one-hot 1e-10",
        je.entropy,
        lambda dt: (np.array([1 - 3e-10, 1e-10, 2e-10], dt),),
        ref_entropy,
    ),
    Case(
        "entropy near-one-hot dyadic",
        je.entropy,
        lambda dt: (np.array([1 - 2.0**-20, 2.0**-21, 2.0**-21], dt),),
        ref_entropy,
    ),
    Case(
        "entropy [1, 1e-30, 1e-30]",
        je.entropy,
        lambda dt: (np.array([1.0, 1e-30, 1e-30], dt),),
        ref_entropy,
    ),
    Case("entropy random n=16", je.entropy, lambda dt: (random_probs(16, 0, dt),), ref_entropy),
    # --- KL divergence (reference on the cast vectors, with their exact sums)
    Case(
        "kl near-equal eps=1e-3", je.kl_divergence, lambda dt: near_equal(10, 1e-3, 1, dt), ref_kl
    ),
    Case(
        "kl near-equal eps=1e-6", je.kl_divergence, lambda dt: near_equal(10, 1e-6, 2, dt), ref_kl
    ),
    Case(
        "hellinger near-equal eps=1e-6",
        je.hellinger_distance,
        lambda dt: near_equal(10, 1e-6, 2, dt),
        ref_hellinger,
    ),
    Case(
        "hellinger far, with p_i = 0",
        je.hellinger_distance,
        lambda dt: (np.array([0.0, 0.9, 0.1], dt), np.array([0.2, 0.1, 0.7], dt)),
        ref_hellinger,
    ),
    Case(
        "kl far, with p_i = 0",
        je.kl_divergence,
        lambda dt: (np.array([0.0, 0.9, 0.1], dt), np.array([0.2, 0.1, 0.7], dt)),
        ref_kl,
    ),
    # --- JS divergence
    Case(
        "js near-equal eps=1e-3", je.js_divergence, lambda dt: near_equal(10, 1e-3, 3, dt), ref_js
    ),
    Case(
        "js near-equal eps=1e-6", je.js_divergence, lambda dt: near_equal(10, 1e-6, 4, dt), ref_js
    ),
    Case(
        "js disjoint supports",
        je.js_divergence,
        lambda dt: (np.array([0.5, 0.5, 0, 0], dt), np.array([0, 0, 0.25, 0.75], dt)),
        ref_js,
    ),
    # --- entropy from logits
    Case(
        "entropy_from_logits U[-1e4,1e4] n=8",
        je.entropy_from_logits,
        lambda dt: (spread_logits(8, 5, None, dt),),
        ref_entropy_from_logits,
    ),
    Case(
        "entropy_from_logits ±1e4, top two 3 apart",
        je.entropy_from_logits,
        lambda dt: (spread_logits(8, 6, 3.0, dt),),
        ref_entropy_from_logits,
    ),
    Case(
        "entropy_from_logits ±1e4, top two 0.5 apart",
        je.entropy_from_logits,
        lambda dt: (spread_logits(8, 7, 0.5, dt),),
        ref_entropy_from_logits,
    ),
    Case(
        "entropy_from_logits [0,-10,-20,-30,-40]",
        je.entropy_from_logits,
        lambda dt: (np.array([0.0, -10, -20, -30, -40], dt),),
        ref_entropy_from_logits,
    ),
    Case(
        "entropy_from_logits [30, 0, -inf]",
        je.entropy_from_logits,
        lambda dt: (np.array([30.0, 0.0, -np.inf], dt),),
        ref_entropy_from_logits,
    ),
    # Gap 93.3: the entropy is ~2.9e-39, subnormal in float32 (an underflow row there).
    Case(
        "entropy_from_logits [613.1231, 519.84174]",
        je.entropy_from_logits,
        lambda dt: (np.array([613.1231, 519.84174], dt),),
        ref_entropy_from_logits,
    ),
    # Large gaps between logits of different magnitude: x - max is rounded.
    Case(
        "entropy_from_logits [64.87767, 0.7857857]",
        je.entropy_from_logits,
        lambda dt: (np.array([64.87767, 0.7857857], dt),),
        ref_entropy_from_logits,
        dtypes=(F32,),
    ),
    Case(
        "entropy_from_logits [577.88230543, 0.26009745]",
        je.entropy_from_logits,
        lambda dt: (np.array([577.8823054312852, 0.2600974477372232], dt),),
        ref_entropy_from_logits,
        dtypes=(F64,),
    ),
    # --- cross-entropy from logits
    Case(
        "ce_from_logits one-hot [20,0,-5]",
        je.cross_entropy_from_logits,
        lambda dt: (np.array([1.0, 0, 0], dt), np.array([20.0, 0, -5], dt)),
        ref_cross_entropy_from_logits,
    ),
    Case(
        "ce_from_logits one-hot [40, 0]",
        je.cross_entropy_from_logits,
        lambda dt: (np.array([1.0, 0], dt), np.array([40.0, 0], dt)),
        ref_cross_entropy_from_logits,
    ),
    Case(
        "ce_from_logits soft [20,0,-5]",
        je.cross_entropy_from_logits,
        lambda dt: (np.array([0.7, 0.2, 0.1], dt), np.array([20.0, 0, -5], dt)),
        ref_cross_entropy_from_logits,
    ),
    Case(
        "ce_from_logits soft, logits ±1e4",
        je.cross_entropy_from_logits,
        lambda dt: (np.array([0.25, 0.75, 0], dt), np.array([1e4, 1e4 - 1, -1e4], dt)),
        ref_cross_entropy_from_logits,
    ),
    # --- KL divergence from logits
    Case(
        "kl_from_logits near-equal eps=1e-3",
        je.kl_divergence_from_logits,
        lambda dt: near_equal_logits(10, 1e-3, 8, dt),
        ref_kl_from_logits,
    ),
    Case(
        "kl_from_logits near-equal eps=1e-3 seed=3",
        je.kl_divergence_from_logits,
        lambda dt: near_equal_logits(10, 1e-3, 3, dt),
        ref_kl_from_logits,
    ),
    Case(
        "kl_from_logits near-equal eps=1e-6",
        je.kl_divergence_from_logits,
        lambda dt: near_equal_logits(10, 1e-6, 9, dt),
        ref_kl_from_logits,
    ),
    Case(
        "kl_from_logits near-equal eps=1e-9",
        je.kl_divergence_from_logits,
        lambda dt: near_equal_logits(10, 1e-9, 3, dt),
        ref_kl_from_logits,
        dtypes=(F64,),
    ),
    Case(
        "kl_from_logits near-equal eps=1e-12",
        je.kl_divergence_from_logits,
        lambda dt: near_equal_logits(10, 1e-12, 4, dt),
        ref_kl_from_logits,
        dtypes=(F64,),
    ),
    Case(
        "kl_from_logits near-equal, one small event far",
        je.kl_divergence_from_logits,
        lambda dt: near_equal_with_far_event(10, 1e-4, 5, dt),
        ref_kl_from_logits,
    ),
    Case(
        "kl_from_logits confident P [40,0,0,-inf] vs [0,1,2,3]",
        je.kl_divergence_from_logits,
        lambda dt: (np.array([40.0, 0, 0, -np.inf], dt), np.array([0.0, 1, 2, 3], dt)),
        ref_kl_from_logits,
    ),
    Case(
        "kl_from_logits [0,0] vs [0,-2000] (Q below exp's range)",
        je.kl_divergence_from_logits,
        lambda dt: (np.array([0.0, 0.0], dt), np.array([0.0, -2000.0], dt)),
        ref_kl_from_logits,
    ),
    Case(
        "kl_from_logits far [5,0,-5] vs [0,0,0]",
        je.kl_divergence_from_logits,
        lambda dt: (np.array([5.0, 0, -5], dt), np.array([0.0, 0, 0], dt)),
        ref_kl_from_logits,
    ),
    # --- Rényi entropy of a dyadic (exactly normalized) distribution
    *[
        Case(f"renyi dyadic alpha={a_name}", je.renyi_entropy, renyi_inputs(DYADIC, a), ref_renyi)
        for a_name, a in [
            ("0", 0.0),
            ("0.5", 0.5),
            ("0.6", 0.6),
            ("1-1e-6", 1 - 1e-6),
            ("1", 1.0),
            ("1+1e-6", 1 + 1e-6),
            ("1.4", 1.4),
            ("2", 2.0),
            ("inf", np.inf),
        ]
    ],
    # (alpha - 1) * H just below 1e-3: the edge of log1prel's series branch.
    *[
        Case(f"renyi dyadic alpha={a_name}", je.renyi_entropy, renyi_inputs(DYADIC, a), ref_renyi)
        for a_name, a in [("1-8.2e-4", 1 - 8.2e-4), ("1+8.2e-4", 1 + 8.2e-4)]
    ],
    # Rényi divergence and Tsallis entropy (same near-1 machinery), dyadic inputs.
    *[
        Case(
            f"renyi_divergence dyadic||uniform alpha={a_name}",
            je.renyi_divergence,
            renyi_divergence_inputs(a),
            ref_renyi_divergence,
        )
        for a_name, a in [
            ("0.5", 0.5),
            ("1-1e-6", 1 - 1e-6),
            ("1", 1.0),
            ("1+5.5e-3", 1 + 5.5e-3),
            ("2", 2.0),
        ]
    ],
    *[
        Case(
            f"tsallis dyadic alpha={a_name}",
            je.tsallis_entropy,
            renyi_inputs(DYADIC, a),
            ref_tsallis if a != 1 else (lambda p, a: ref_entropy(p)),
        )
        for a_name, a in [
            ("0.5", 0.5),
            ("1-4.8e-4", 1 - 4.8e-4),
            ("1", 1.0),
            ("1+1e-6", 1 + 1e-6),
            ("2", 2.0),
        ]
    ],
    # --- Rényi entropy of a generic distribution, at orders away from 1 (and at 1
    # exactly, where the value is Shannon's formula and needs no normalization).
    *[
        Case(
            f"renyi generic alpha={a_name}",
            je.renyi_entropy,
            renyi_inputs(generic_probs, a),
            ref_renyi,
        )
        for a_name, a in [
            ("0", 0.0),
            ("0.5", 0.5),
            ("1", 1.0),
            ("2", 2.0),
            ("3", 3.0),
            ("inf", np.inf),
        ]
    ],
]

# A cache of compiled functions only (results are recomputed by every test).
_JITTED: dict[Callable, Callable] = {}


def _rel_err(value: float, ref, dtype) -> float:
    tiny = mpmath.mpf(float(np.finfo(dtype).tiny))
    if mp.isinf(ref) or np.isinf(value):
        return 0.0 if value == ref else float("inf")
    return float(abs(mpmath.mpf(value) - ref) / max(abs(ref), tiny))


def evaluate(case: Case, dtype) -> dict:
    inputs = case.make(dtype)
    ref = case.ref(*(to_mp(x) for x in inputs))
    jitted = _JITTED.setdefault(case.fn, jax.jit(case.fn))
    out_eager = case.fn(*(jnp.asarray(x) for x in inputs))
    out_jit = jitted(*(jnp.asarray(x) for x in inputs))
    assert out_eager.dtype == dtype and out_jit.dtype == dtype
    underflow = abs(ref) < mpmath.mpf(float(np.finfo(dtype).tiny))
    row = {
        "case": case.name,
        "function": case.function,
        "dtype": np.dtype(dtype).name,
        "value": float(out_jit),
        "reference": ref,
        "err_jit": _rel_err(float(out_jit), ref, dtype),
        "err_eager": _rel_err(float(out_eager), ref, dtype),
        # An underflow row asks |value - reference| <= tiny (err is in units of tiny).
        "target": 1.0 if underflow else TARGET[dtype],
    }
    row["err"] = max(row["err_jit"], row["err_eager"])
    return row


def _params():
    for case in CASES:
        for dtype in case.dtypes:
            yield pytest.param(case, dtype, id=f"{case.name}-{np.dtype(dtype).name}")


@pytest.mark.parametrize(("case", "dtype"), list(_params()))
def test_accuracy(case: Case, dtype):
    row = evaluate(case, dtype)
    assert row["err"] <= row["target"], (
        f"{case.name} [{row['dtype']}]: value {row['value']!r}, reference "
        f"{mpmath.nstr(row['reference'], 20)}, relative error jit {row['err_jit']:.3g} "
        f"eager {row['err_eager']:.3g} > target {row['target']:g}"
    )


def test_report(request):
    """Computes the whole accuracy table, reports it and checks the worst case per function."""
    rows = [evaluate(case, dtype) for case in CASES for dtype in case.dtypes]
    width = max(len(r["case"]) for r in rows)
    header = (
        f"{'case':<{width}}  {'dtype':<7}  {'value':>24}  {'reference (mpmath, 50 digits)':>29}"
        f"  {'rel.err':>9}  {'target':>6}"
    )
    lines = [
        "",
        "jaxent accuracy vs mpmath (rel.err = worst of eager and jit)",
        header,
        "-" * len(header),
    ]
    for r in rows:
        lines.append(
            f"{r['case']:<{width}}  {r['dtype']:<7}  {r['value']:>24.17g}  "
            f"{mpmath.nstr(r['reference'], 17):>29}  {r['err']:>9.2e}  {r['target']:>6.0e}"
            + ("" if r["err"] <= r["target"] else "  FAIL")
        )
    lines += ["", "worst relative error per function:"]
    # Worst by err/target.
    worst: dict[tuple[str, str], dict] = {}
    for r in rows:
        k = (r["function"], r["dtype"])
        if k not in worst or r["err"] / r["target"] > worst[k]["err"] / worst[k]["target"]:
            worst[k] = r
    for (fn, dt), r in sorted(worst.items()):
        lines.append(
            f"  {fn:<28} {dt:<7}  {r['err']:9.2e}  (target {r['target']:.0e})  at {r['case']}"
        )
    # A report section travels from an xdist worker to the controller, which prints it
    # (conftest.py's pytest_terminal_summary).
    request.node.add_report_section("call", ACCURACY_SECTION, "\n".join(lines))
    bad = [
        f"{fn} [{dt}] {r['err']:.3g} at {r['case']}"
        for (fn, dt), r in worst.items()
        if r["err"] > r["target"]
    ]
    assert not bad, "worst case over target: " + "; ".join(bad)
