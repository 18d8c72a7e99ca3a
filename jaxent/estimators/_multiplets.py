r"""Every multiplet at once: a measure of all ``C(F, size)`` subsets of ``F`` variables.

With the Gaussian copula, the entropy of any subset :math:`T` of the variables
follows from one ``F × F`` covariance :math:`\hat\Sigma` of the normal scores:
:math:`\hat H(X_T) = a_{|T|} + \tfrac12 \log\det\hat\Sigma_{TT}`, where
:math:`a_m = \tfrac{m}{2}(1 + \log 2\pi)` minus the bias correction of an
:math:`m`-dimensional entropy (see :mod:`jaxent.estimators._copula`). So the
samples are rank-transformed and multiplied out once, and per multiplet only
log-determinants of its small sub-blocks remain.

**Log-determinants.** Cholesky factors are built row by row: the factor of
:math:`T \cup \{x\}` (``x`` after the members of ``T``) is the factor of
:math:`T` plus one row, found by one forward substitution, and
:math:`\log\det\hat\Sigma_{T \cup \{x\}} = \log\det\hat\Sigma_{T} + \log d^2`
with :math:`d^2` the new squared diagonal entry (a Schur complement). Within a
multiplet the factors of the sub-blocks a measure needs are built along a trie of
their prefixes, each prefix once: a multiplet of size ``k`` costs ``O(k^3)`` for
the total correlation, about ``k`` times that for the measures with the
leave-one-out entropies (dual total correlation, O- and S-information) and
``O(2^k k^2)`` for the co-information, which needs every sub-block (computed
again in each multiplet that contains it: the shared blocks are not looked up
across multiplets). The single-variable log-variances are computed once for
all multiplets, and the constants :math:`a_m` are combined once, in float64 on
the host. Each log-determinant takes the arithmetic of a row-by-row Cholesky
factorization of its sub-block, so the values equal a per-subset computation up
to rounding in a different order.

**Chunks.** The multiplets are numbered in lexicographic order (that of
``itertools.combinations``); fixed-size chunks of consecutive numbers are
unranked to their indices inside the compiled loop (a binary search in tables of
cumulative binomial coefficients per position), so nothing of size ``M`` exists
but the two outputs. One program per ``(F, size, chunk, measure)``.
"""

from __future__ import annotations

import itertools
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxent import _numerics as nx
from jaxent._numerics import Base
from jaxent.checks import expects
from jaxent.estimators._copula import _entropy_bias, _normal_scores, _sample_covariance

MEASURES = (
    "total_correlation",
    "dual_total_correlation",
    "o_information",
    "s_information",
    "co_information",
)
_METHODS = ("gaussian_copula",)
# Multiplets per chunk: one chunk works on a few dozen arrays of this length, which
# on CPU stay in cache at 4,096 (the fastest there); accelerators like longer vectors.
_CHUNK = {"cpu": 1 << 12}
_CHUNK_ACCELERATOR = 1 << 20


def _offset_tables(num: int, size: int) -> np.ndarray:
    """``t[p, c]``: the multiplets whose element ``p`` is below ``c``, ``[size, num + 1]``.

    Counted among those that agree with a given multiplet before position ``p``
    (``t[p, c] - t[p, prev + 1]`` of them when element ``p - 1`` is ``prev``).
    """
    table = np.zeros((size, num + 1), np.int64)
    for p in range(size):
        counts = [math.comb(num - 1 - c, size - 1 - p) for c in range(num)]
        table[p, 1:] = np.cumsum(counts)
    return table


def _unrank(ranks: jax.Array, tables: jax.Array, size: int) -> list[jax.Array]:
    """The multiplets of lexicographic numbers ``ranks [B]``: ``size`` arrays ``[B]``."""
    members = []
    low = jnp.zeros_like(ranks)  # the smallest element still allowed
    for p in range(size):
        table = tables[p]
        base = table[low]
        member = jnp.searchsorted(table, ranks + base, side="right").astype(ranks.dtype) - 1
        ranks = ranks - (table[member] - base)
        members.append(member)
        low = member + 1
    return members


class _Blocks:
    """Log-determinants of a chunk's sub-blocks ``Σ[T, T]``, ``T`` a tuple of positions.

    Built at trace time along the trie of prefixes (each factor row once), with the
    covariance entries gathered once per pair of positions.
    """

    def __init__(self, cov: jax.Array, log_diag: jax.Array, members: list[jax.Array]):
        self.num = cov.shape[-1]
        self.flat = cov.reshape(-1)
        self.log_diag = log_diag
        self.members = members
        self.entries: dict[tuple[int, int], jax.Array] = {}
        # A factor: its rows below the diagonal, the reciprocals of its diagonal, and
        # its log-determinant.
        self.factors: dict[tuple[int, ...], tuple[list, list, jax.Array]] = {}

    def entry(self, a: int, b: int) -> jax.Array:
        if (a, b) not in self.entries:
            i, j = self.members[a], self.members[b]
            self.entries[a, b] = self.flat[i * self.num + j]
        return self.entries[a, b]

    def factor(self, block: tuple[int, ...]) -> tuple[list, list, jax.Array]:
        if block not in self.factors:
            *prefix, new = block
            if not prefix:
                var = self.entry(new, new)
                self.factors[block] = ([[]], [jax.lax.rsqrt(var)], self.log_diag[self.members[new]])
            else:
                rows, inv_diag, logdet = self.factor(tuple(prefix))
                row: list[jax.Array] = []  # forward substitution: L_prefix row = Σ[prefix, new]
                for m, old in enumerate(prefix):
                    acc = self.entry(old, new)
                    for q in range(m):
                        acc = acc - rows[m][q] * row[q]
                    row.append(acc * inv_diag[m])
                schur = self.entry(new, new) - sum(r * r for r in row)
                self.factors[block] = (
                    rows + [row],
                    inv_diag + [jax.lax.rsqrt(schur)],
                    logdet + jnp.log(schur),
                )
        return self.factors[block]

    def logdet(self, block: tuple[int, ...]) -> jax.Array:
        return self.factor(block)[2]


def _coefficients(size: int, measure: str) -> dict[tuple[int, ...], int]:
    """The measure as a signed sum of block entropies: ``{positions T: coefficient}``."""
    everything = tuple(range(size))
    if measure == "co_information":
        return {
            c: (-1) ** (m - 1)
            for m in range(1, size + 1)
            for c in itertools.combinations(everything, m)
        }
    tc: dict[tuple[int, ...], int] = {(j,): 1 for j in everything}
    tc[everything] = tc.get(everything, 0) - 1
    dtc: dict[tuple[int, ...], int] = {everything: -(size - 1)}
    for j in everything:
        others = everything[:j] + everything[j + 1 :]
        if others:
            dtc[others] = dtc.get(others, 0) + 1
    signs = {
        "total_correlation": (1, 0),
        "dual_total_correlation": (0, 1),
        "o_information": (1, -1),
        "s_information": (1, 1),
    }[measure]
    combined: dict[tuple[int, ...], int] = {}
    for sign, terms in zip(signs, (tc, dtc)):
        for block, c in terms.items():
            combined[block] = combined.get(block, 0) + sign * c
    return {block: c for block, c in combined.items() if c}


def _constant(n: int, size: int, measure: str, bias_correction: bool) -> float:
    """The part of the measure that depends on the block sizes alone, in float64.

    A block of ``m`` variables has entropy ``a_m + log det / 2`` with
    ``a_m = m (1 + log 2 pi) / 2`` minus, with the correction, the bias of
    :mod:`jaxent.estimators._copula`. Summed on the host
    (in float32 the ``a_m``, of a few nats each, would cancel to a few ulps of them).
    """

    def offset(m):
        bias = _entropy_bias(n, m) if bias_correction else 0.0
        return m / 2 * (1 + math.log(2 * math.pi)) - bias

    return sum(c * offset(len(block)) for block, c in _coefficients(size, measure).items())


@partial(jax.jit, static_argnames=("size", "measure", "chunk"))
def _all_multiplets(
    cov: jax.Array, constant: jax.Array, *, size: int, measure: str, chunk: int
) -> tuple[jax.Array, jax.Array]:
    num = cov.shape[-1]
    count = math.comb(num, size)
    tables = jnp.asarray(_offset_tables(num, size), jnp.int32)
    log_diag = jnp.log(jnp.diagonal(cov))

    def one_chunk(start):
        # The last chunk repeats the last multiplet past the end; cut off below. (Capped
        # before adding: start + chunk may not fit in int32.)
        ranks = start + jnp.minimum(jnp.arange(chunk, dtype=jnp.int32), count - 1 - start)
        members = _unrank(ranks, tables, size)
        blocks = _Blocks(cov, log_diag, members)
        terms = _coefficients(size, measure).items()
        value = constant + sum(c * blocks.logdet(block) for block, c in terms) / 2
        return jnp.stack(members, axis=-1), jnp.broadcast_to(value, ranks.shape)

    starts = jnp.arange(0, count, chunk, dtype=jnp.int32)
    index, value = jax.lax.map(one_chunk, starts)
    return index.reshape(-1, size)[:count], value.reshape(-1)[:count]


@jax.jit
def _copula_covariance(x: jax.Array) -> jax.Array:
    return _sample_covariance(_normal_scores(x))


def _check_size(size: int, num: int) -> int:
    try:
        value = int(size)
    except (TypeError, jax.errors.ConcretizationTypeError) as err:
        raise ValueError(f"size must be a concrete integer (static), got {size!r}") from err
    if value != size or isinstance(size, bool) or not 1 <= value <= num:
        raise ValueError(f"size must be an integer from 1 to the {num} variables; got {size!r}")
    return value


@expects(x="finite")
def multiplets(
    x: ArrayLike,
    size: int,
    *,
    measure: str = "o_information",
    method: str = "gaussian_copula",
    bias_correction: bool = True,
    base: Base = None,
    chunk_size: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    r"""A multivariate measure of every subset of ``size`` variables, from samples.

    For samples ``x[n, F]`` of ``F`` variables and each of the
    :math:`M = \binom{F}{\text{size}}` multiplets :math:`S` of ``size`` of them
    (``k`` below), with :math:`\hat H` the Gaussian-copula entropy of
    :func:`~jaxent.estimators.gaussian_copula_entropy`:

    .. math::

       \begin{aligned}
       \mathrm{TC}(S) &= \sum_{j \in S} \hat H(X_j) - \hat H(X_S) \\
       \mathrm{DTC}(S) &= \sum_{j \in S} \hat H(X_{S \setminus j}) - (k - 1)\, \hat H(X_S) \\
       \Omega(S) &= \mathrm{TC}(S) - \mathrm{DTC}(S), \qquad
       \Sigma(S) = \mathrm{TC}(S) + \mathrm{DTC}(S) \\
       \mathrm{CoI}(S) &= -\sum_{\emptyset \ne T \subseteq S} (-1)^{|T|} \hat H(X_T)
       \end{aligned}

    for ``measure`` = ``"total_correlation"``, ``"dual_total_correlation"``,
    ``"o_information"`` (> 0: redundancy dominates, < 0: synergy),
    ``"s_information"`` and ``"co_information"`` (for three variables
    :math:`I(X;Y) - I(X;Y \mid Z)`; the sign convention of dit and ``hoi``'s
    ``InfoTopo``). The samples are rank-transformed and their ``F × F``
    covariance formed once; per multiplet only small log-determinants remain,
    computed in chunks inside one compiled loop (memory ``O(chunk · 2^k)``
    besides the outputs; the co-information's program holds :math:`2^k - 1` blocks,
    and its compilation grows with them: about 20 s at ``size = 8`` on a 2-core
    CPU). With the defaults the values equal ``hoi``'s
    ``Oinfo(x).fit(minsize=size, maxsize=size, method="gc")`` (and ``TC``,
    ``DTC``, ``Sinfo``, ``InfoTopo``), which report bits: use ``base=2``.

    Args:
      x: samples ``[n, F]`` of ``F`` variables (``n > size``).
      size: the number of variables in each multiplet, ``1 ≤ size ≤ F``
        (static).
      measure: one of the five measures above (static).
      method: how entropies are estimated; ``"gaussian_copula"`` (the only one
        for now).
      bias_correction: correct each entropy's bias as
        :func:`~jaxent.estimators.gaussian_copula_entropy` does (static; on by
        default, as in ``hoi``).
      base: unit of the result (see :func:`gaussian_copula_entropy`).
      chunk_size: multiplets per chunk of the compiled loop (static; default
        4,096 on CPU, 2^20 on accelerators). Memory grows with it, the result
        does not change.

    A multiplet whose copula covariance is singular (e.g. two variables with the
    same ranks: one an increasing function of the other) has no finite Gaussian
    entropy: its value is ``±inf`` or NaN, as with a Cholesky factor per subset.

    Returns:
      ``(index, value)``: ``index [M, size]`` (int32) lists each multiplet's
      variables in increasing order, the multiplets in lexicographic order (that
      of ``itertools.combinations(range(F), size)``); ``value [M]`` the measure.

    Raises:
      ValueError: at trace time, for an unknown ``measure`` or ``method``, ``x``
        that is not ``[n, F]``, a ``size`` that is not a concrete integer from 1 to
        ``F``, ``n <= size``, more multiplets than int32 can number, or an invalid
        ``base``.

    Examples:
      Three noisy copies of one signal are redundant; two independent signals
      with their sum are synergistic:

      >>> import numpy as np
      >>> import jaxent as je
      >>> a, b, c, d, e = np.random.default_rng(0).normal(size=(5, 2000))
      >>> x = np.stack([a + 0.3 * c, a + 0.3 * d, a + 0.3 * e, b, a + b], axis=1)
      >>> index, o = je.estimators.multiplets(x, 3)
      >>> index[0].tolist(), round(float(o[0]), 1)  # {0, 1, 2}: redundant
      ([0, 1, 2], 0.8)
      >>> index[5].tolist(), round(float(o[5]), 1)  # {0, 3, 4}: synergistic
      ([0, 3, 4], -0.9)

    References:
      R. A. A. Ince et al., "A statistical framework for neuroimaging data
      analysis based on mutual information estimated via a Gaussian copula",
      Human Brain Mapping 38, 1541–1573, 2017.
      F. E. Rosas, P. A. M. Mediano, M. Gastpar and H. J. Jensen, "Quantifying
      high-order interdependencies via multivariate extensions of the mutual
      information", Physical Review E 100, 032305, 2019.
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}; got {measure!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}; got {method!r}")
    (x,), dtype = nx.promote(x)
    if x.ndim != 2:
        raise ValueError(f"x must be samples [n, F] of F variables; got shape {x.shape}")
    n, num = x.shape
    size = _check_size(size, num)
    if n <= size:
        raise ValueError(
            f"need more samples than variables per multiplet: got n = {n} (x shape "
            f"{x.shape}), size = {size}"
        )
    count = math.comb(num, size)
    if count >= 2**31:
        raise ValueError(f"C({num}, {size}) = {count} multiplets is more than int32 numbers them")
    if chunk_size is None:
        chunk_size = _CHUNK.get(jax.default_backend(), _CHUNK_ACCELERATOR)
    chunk = min(int(chunk_size), count)
    nx.log_base(base)
    constant = jnp.asarray(_constant(n, size, measure, bool(bias_correction)), x.dtype)
    cov = _copula_covariance(x)
    index, value = _all_multiplets(cov, constant, size=size, measure=measure, chunk=chunk)
    return index, nx.to_units(value, base).astype(dtype)
