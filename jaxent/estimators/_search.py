"""Exact neighbour search and neighbour counts behind the kNN estimators.

Two methods give *identical* results: the same k smallest distances (with
multiplicity) and the same counts of points strictly within a radius.

``"brute"``
  Every query against every reference point, a block of rows at a time: time
  ``O(n m d)``, memory about ``block`` coordinate differences at once.

``"sorted"``
  Any distance used here (the squared Euclidean distance, or the max-norm) is at
  least the distance along any single coordinate, computed with the same
  floating-point operations, and that one-coordinate distance only grows as one
  walks away from a query in sorted order. Every candidate that is skipped is
  skipped because such a bound proves it cannot matter, so the answer is the
  brute-force answer, ties included.

  *One dimension.* The ``k`` nearest references of a point lie among the ``k``
  nearest on each side in sorted order: a window of ``k`` shifts of the sorted
  array (grouped by label first, for searches within groups) is exact. Counts
  within a radius are two binary searches with the exact comparison.

  *Two or more dimensions.* The points are sorted along a first key coordinate
  (of the two with the widest interquartile range) and cut into strips of ``s``
  consecutive points, ``s`` sized so that a strip is a few k-th-neighbour
  distances wide; band ``j`` holds strips ``j - 1, j, j + 1`` sorted along the
  second key. Each point of strip ``j`` compares itself with the ``w`` points on
  either side of it in band ``j``: shifted slices of the band, no gathers. A row
  is settled when its k-th distance (or its counting radius) is at most the
  distance along the second key to the first point beyond its window, and at
  most the distance along the first key to strips ``j - 2`` and ``j + 2``. The
  rows left open (usually under a few percent; more for heavy-tailed or
  duplicated data) search afresh every point in the box their current k-th
  distance spans along both keys, a fixed number of rows at a time in a
  ``lax.while_loop``. For points that fill ``D`` dimensions the bands cost about
  ``n^(2 - 2/D)`` candidate distances in all (``O(n k)`` in two dimensions), plus
  sorting; only data concentrated on a set that no pair of coordinates separates
  degrades further, never beyond brute force's ``n^2``.

  *Three dimensions, k nearest, from* ``_GRID_FROM`` *references.* A grid of cells
  (about a typical k-th neighbour distance wide) along all three coordinates comes
  first: each query looks at a window of references around it, along the third
  coordinate, in each of the nine columns of cells around its own, and is settled
  when its k-th distance is at most the distance to what lies beyond those windows
  and columns. The rows left open (sparse regions; crowded windows) try grids with
  cells twice, four and eight times as wide, a quarter as many rows each time, and
  what is still open searches the last grid afresh in rings of columns around its
  own, each column's run along the third coordinate within its k-th distance, until
  what lies beyond the rings is farther (no bands are built). The candidates number
  about ``O(n k)`` for a smooth density, against ``n^(4/3)`` for the bands; the cost
  is gathers (about 5 ns each on a 2-core CPU) and the sorts of the four grids.

  Memory is ``O(n (d + k))``: the sorted copies (three per point for the bands),
  the grid's table of cells (at most about eight per reference), the per-row state,
  and the queue of open rows.

Distances are combined coordinate by coordinate in a fixed order by
:func:`distance` on both paths, so they agree bitwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, NamedTuple, get_args

import jax
import jax.numpy as jnp

# Largest k found by repeated minimum passes; beyond it, jax.lax.top_k (on CPU the
# passes are faster up to k = 64 at least: [128, 2000], k = 40: 9 vs 41 ms).
MAX_PASSES = 32

# "sorted" method: window offsets per loop step of the band scan.
_GROUP = 4
# Entries per lane of the band scan, padding included, are a multiple of this. Lanes
# of other lengths made the scan's fused loop up to 7x slower on a 2-core x86 CPU at
# some sizes (3-D entropy of 2,000 points 65 -> 13 ms, of 8,000 points 342 -> 52 ms;
# 2-D, 4,000 points 17 -> 6 ms: BENCHMARKS.md, tenth session).
_LANE_ALIGN = 64
# Strip width and window size factors (see _band_shape).
_STRIP_WIDTH = 2.0
_STRIP_WINDOW = 2.0
# Rows searched at once in boxes after the bands, and entries per row per step.
_SLOTS = 128
_BLOCK = 128
# Largest k kept by branchless insertion (beyond: merged by blocks). Insertion costs
# about 2k selects per candidate, merging a block of 4 by k minimum passes about 5k (k +
# 4) / 4 operations: 3-D n = 20,000 with k = 10 took 3.4 s against 22 s, with k = 20
# 11 s against 88 s, for 1-2 s more compiling.
_INSERT = 32
# "No entry": the reference or query index of padding.
_NONE = 2**31 - 1

# The neighbour search of the kNN estimators (their ``method`` option).
SearchMethod = Literal["auto", "sorted", "brute"]
METHODS: tuple[SearchMethod, ...] = get_args(SearchMethod)
# "sqeuclidean": squared Euclidean distance; "max": the max-norm (Chebyshev).
Metric = Literal["sqeuclidean", "max"]


def check_method(method: SearchMethod) -> SearchMethod:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


# On CPU, brute force up to this many points in d dimensions (the sorted search
# beyond; brute force at any size from six dimensions): about where the sorted search
# overtakes it once compiled, measured on a 2-core CPU (BENCHMARKS.md, thirteenth session).
_CPU_BRUTE_UP_TO = {1: 512, 2: 512, 3: 1536, 4: 8192, 5: 32768}


def choose_method(method: SearchMethod, n: int, m: int, d: int) -> Literal["sorted", "brute"]:
    """``"brute"`` or ``"sorted"`` for ``n`` queries against ``m`` points in ``d`` dims.

    On CPU the sorted search is taken where it runs faster than brute force once
    compiled (measured on a 2-core CPU, standard-normal points, k = 3, float32): above
    512 points in one or two dimensions (1,024 points: 1.2 ms against 1.6 ms), 1,536
    in three (2,048: 7.8 ms against 9.2 ms), 8,192 in four (16,384: 0.41 s against
    0.48 s), 32,768 in five (where brute force is still 1.8x faster: 1.8 s against
    3.2 s; larger sizes not measured). From six dimensions the bands along
    two coordinates settle few rows and brute force is as fast or faster, so it is
    always used. The sorted search also takes seconds longer to compile. On
    accelerators, where brute force runs as dense tiles, the sorted search is taken
    above 4,096 points (an estimate, not measured here) up to 8 dimensions.
    """
    if method != "auto":
        return method
    if jax.default_backend() == "cpu":
        up_to = _CPU_BRUTE_UP_TO.get(d)
    else:
        up_to = 4096 if d <= 8 else None
    return "brute" if up_to is None or min(n, m) <= up_to else "sorted"


def _term(a: jax.Array, b: jax.Array, metric: Metric) -> jax.Array:
    diff = a - b
    return diff * diff if metric == "sqeuclidean" else jnp.abs(diff)


def distance(a: jax.Array, b: jax.Array, metric: Metric) -> jax.Array:
    """Distance between points ``a [..., d]`` and ``b [..., d]`` (broadcast).

    ``metric`` is ``"sqeuclidean"`` (squared Euclidean: the squared coordinate
    differences added in coordinate order) or ``"max"`` (the max-norm).
    """
    d = a.shape[-1]
    return _distance_parts([a[..., c] for c in range(d)], [b[..., c] for c in range(d)], metric)


def _distance_parts(a, b, metric: Metric) -> jax.Array:
    """:func:`distance` from the coordinates as separate arrays (the same operations)."""
    out = _term(a[0], b[0], metric)
    for x, y in zip(a[1:], b[1:]):
        t = _term(x, y, metric)
        out = out + t if metric == "sqeuclidean" else jnp.maximum(out, t)
    return out


def smallest(vals: jax.Array, idx: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """The ``k`` smallest of ``vals [..., c]`` (ties keep their multiplicity), ascending,
    with the matching entries of ``idx``."""
    if k > MAX_PASSES:  # NaNs first, as from the passes below
        _, pos = jax.lax.top_k(jnp.where(jnp.isnan(vals), jnp.inf, -vals), k)
        return jnp.take_along_axis(vals, pos, axis=-1), jnp.take_along_axis(idx, pos, axis=-1)
    c = vals.shape[-1]
    col = jnp.arange(c, dtype=jnp.int32)
    out_v, out_i = [], []
    for p in range(k):
        # argmin, as the first column holding the minimum (or the first NaN, which
        # the minimum then is): plain reductions run about 4x faster than argmin's
        # reduction of (value, index) pairs on CPU.
        low = jnp.min(vals, axis=-1, keepdims=True)
        at = (vals == low) | jnp.isnan(vals)
        j = jnp.min(jnp.where(at, col, c - 1), axis=-1, keepdims=True)
        out_v.append(jnp.take_along_axis(vals, j, axis=-1))
        out_i.append(jnp.take_along_axis(idx, j, axis=-1))
        if p < k - 1:
            vals = jnp.where(col == j, jnp.inf, vals)
    return jnp.concatenate(out_v, -1), jnp.concatenate(out_i, -1)


# --------------------------------------------------------------------------- brute force


def _map_in_chunks(f: Callable, xs: tuple[jax.Array, ...], size: int):
    """``jax.vmap(f)(*xs)`` over the leading axis, ``size`` entries at a time.

    The leading axis is padded to a multiple of ``size`` (padded entries are
    computed and dropped) and the chunks run one after another under
    ``jax.lax.map``.
    """
    total = xs[0].shape[0]
    if size >= total:
        return jax.vmap(f)(*xs)
    chunks = -(-total // size)
    pad = chunks * size - total
    xs = tuple(
        jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]).reshape(
            (chunks, size) + x.shape[1:]
        )
        for x in xs
    )
    out = jax.lax.map(lambda c: jax.vmap(f)(*c), xs)
    return jax.tree.map(lambda o: o.reshape((chunks * size,) + o.shape[2:])[:total], out)


def _rowwise(
    row_fn: Callable, queries: tuple[jax.Array, ...], refs: tuple[jax.Array, ...], block: int
):
    """Applies ``row_fn(query rows..., row index, refs...)`` to every query row.

    ``queries`` are ``[N, n, ...]`` (``N`` flattened problems), ``refs``
    ``[N, m, d_b]``. Returns per-row results ``[N, n, ...]``. Blocks of rows (and,
    for small problems, groups of problems) are sized so that about ``block``
    coordinate differences exist at once.
    """
    problems, n = queries[0].shape[:2]
    row_cost = max(1, sum(r.shape[1] * r.shape[2] for r in refs))
    rows = max(1, min(n, block // row_cost))
    index = jnp.arange(n, dtype=jnp.int32)

    def solve(*args):
        q, r = args[: len(queries)], args[len(queries) :]
        return _map_in_chunks(lambda *a: row_fn(*a, *r), (*q, index), rows)

    group = max(1, min(problems, block // (row_cost * n))) if rows == n else 1
    return _map_in_chunks(solve, (*queries, *refs), group)


def _knn_brute(q, r, groups, k, metric, exclude_self, block):
    m = r.shape[1]
    col = jnp.arange(m, dtype=jnp.int32)

    def row(qi, gi, i, rs, gs):
        dist = distance(qi, rs, metric)
        skip = (col == i) if exclude_self else jnp.zeros(m, bool)
        skip |= gs[:, 0] != gi
        return smallest(jnp.where(skip, jnp.inf, dist), col, k)

    if groups is None:
        gq, gr = jnp.zeros(q.shape[:2], jnp.int32), jnp.zeros(r.shape[:2], jnp.int32)
    else:
        gq = gr = groups
    return _rowwise(row, (q, gq), (r, gr[..., None]), block)


def _count_brute(p, radius, refs, metric, block):
    n = p.shape[1]
    col = jnp.arange(n, dtype=jnp.int32)

    def row(pi, ri, i, ps, valid):
        inside = (distance(pi, ps, metric) < ri) & (col != i) & (valid[:, 0] > 0)
        return jnp.sum(inside, dtype=jnp.int32)

    valid = jnp.ones(p.shape[:2], p.dtype) if refs is None else refs.astype(p.dtype)
    return _rowwise(row, (p, radius), (p, valid[..., None]), block)


# --------------------------------------------------------------------------- sorted search


def _key_coordinates(r: jax.Array, count: int) -> jax.Array:
    """Per problem, the ``count`` coordinates of ``r [N, m, d]`` with the widest spread.

    Spread is the interquartile range of a strided subsample of at most ~2048
    points (or the full range where every interquartile range is 0). Any choice is
    exact; a wide one keeps the candidate windows short. Returns ``[N, count]``.
    """
    N, m, d = r.shape
    if d == count:
        return jnp.broadcast_to(jnp.arange(d, dtype=jnp.int32), (N, d))
    stride = max(1, m // 2048)
    sub = _sort(jnp.swapaxes(r[:, ::stride], 1, 2))  # [N, d, size]
    size = sub.shape[-1]
    iqr = sub[..., (3 * size) // 4] - sub[..., size // 4]
    full = jnp.max(r, axis=1) - jnp.min(r, axis=1)
    score = jnp.where(jnp.max(iqr, axis=-1, keepdims=True) > 0, iqr, full)
    return jnp.argsort(-score, axis=-1, stable=True)[:, :count].astype(jnp.int32)


# Two-digit keys try one sort (then a second where needed, in a lax.cond) from this many
# entries: the cond adds 0.2-0.9 s of compiling to the kNN estimators' first call, and
# saves a sort (~40 ns an entry on a 2-core CPU) per call; below it, always two sorts.
_ONE_SORT_FROM = 1 << 16
# Unsigned integer types by width: the keys and packed entries of the integer sorts.
_UNSIGNED = {32: jnp.uint32, 64: jnp.uint64}


def _unsigned_key(x: jax.Array) -> tuple[jax.Array, int]:
    """Numbers as unsigned integers of their width in the same order (floats: -0.0
    just below +0.0, NaNs last), and that width (narrower types are widened to 32
    bits first)."""
    if jnp.issubdtype(x.dtype, jnp.integer):
        width = max(32, jnp.iinfo(x.dtype).bits)
        unsigned = _UNSIGNED[width]
        if jnp.issubdtype(x.dtype, jnp.unsignedinteger):
            return x.astype(unsigned), width
        signed = {32: jnp.int32, 64: jnp.int64}[width]  # the sign bit flipped:
        bits = jax.lax.bitcast_convert_type(x.astype(signed), unsigned)
        return bits ^ unsigned(1 << (width - 1)), width
    if jnp.finfo(x.dtype).bits < 32:
        x = x.astype(jnp.float32)
    x = jnp.where(jnp.isnan(x), jnp.nan, x)
    width = jnp.finfo(x.dtype).bits
    bits = jax.lax.bitcast_convert_type(x, _UNSIGNED[width])
    sign = bits.dtype.type(1 << (width - 1))
    # Negative floats: all bits flipped (larger magnitude, smaller key); others: the sign set.
    return jnp.where(bits >= sign, ~bits, bits | sign), width


def _stable_order(key: jax.Array, width: int) -> jax.Array:
    """Stable argsort (int32) along the last axis of unsigned integer keys below
    ``2**width``.

    XLA's CPU backend sorts a single integer array 5-8x faster than it sorts a key with
    an index alongside (or floats, whose comparator orders NaNs). So the position
    (``b`` bits) is packed below a digit of the key into one unsigned integer of the
    widest enabled type (64 bits with x64, 32 without) and sorted; the digits, lowest
    first, each sort stable on the order left by the one before (least significant
    digit radix sort): ``ceil(width / (64 - b))`` sorts, or ``ceil(width / (32 - b))``,
    e.g. two for float32 keys in rows of up to 65,536 without x64, one with it. Keys of
    two digits whose low digit fits beside a rank and the position (float64 keys in
    rows of up to 2**21), ``_ONE_SORT_FROM`` or more of them, take one sort where the
    top digit alone orders them, two otherwise (a ``lax.cond``: under ``vmap`` both
    run).
    """
    n = key.shape[-1]
    b = max(1, (n - 1).bit_length())
    packing = 64 if _x64_enabled() else 32
    digit = packing - b
    if digit < 8:
        return jnp.argsort(key, axis=-1, stable=True).astype(jnp.int32)
    ptype = _UNSIGNED[packing]
    axis = key.ndim - 1

    def digit_at(shift: int, keys: jax.Array) -> jax.Array:
        return (keys >> shift).astype(ptype) & ptype((1 << min(digit, width - shift)) - 1)

    def sort_by(part: jax.Array) -> jax.Array:
        # The positions made for each sort, not shared: shared, XLA writes them out.
        position = jax.lax.broadcasted_iota(ptype, key.shape, axis)
        packed = jax.lax.sort((part << b) | position, dimension=axis)
        return (packed & ptype((1 << b) - 1)).astype(jnp.int32)

    def radix() -> jax.Array:
        order = sort_by(digit_at(0, key))
        for shift in range(digit, width, digit):
            step = sort_by(digit_at(shift, jnp.take_along_axis(key, order, axis=-1)))
            order = jnp.take_along_axis(order, step, axis=-1)
        return order

    low = width - digit
    if low <= 0 or 2 * b + low > packing or key.size < _ONE_SORT_FROM:
        return radix()
    # The top digit first: where no two keys differ only below it (continuous
    # float64 data, as a rule), that order is already sorted and stable (equal keys
    # tie on the top digit and keep their positions): one sort, not two. Otherwise
    # the runs of equal top digits are put in order by one more sort, on their rank
    # (b bits) above the low digit.
    top = sort_by(digit_at(low, key))
    ranked = jnp.take_along_axis(key, top, axis=-1)

    def refine() -> jax.Array:
        high = ranked >> low
        start = jnp.concatenate(
            [jnp.ones_like(high[..., :1], bool), high[..., 1:] != high[..., :-1]], axis=-1
        )
        run = (jnp.cumsum(start, axis=-1, dtype=jnp.int32) - 1).astype(ptype)
        step = sort_by((run << low) | (ranked.astype(ptype) & ptype((1 << low) - 1)))
        return jnp.take_along_axis(top, step, axis=-1)

    in_order = jnp.all(ranked[..., 1:] >= ranked[..., :-1])
    return jax.lax.cond(in_order, lambda: top, refine)


def argsort(x: jax.Array) -> jax.Array:
    """``jnp.argsort(x, axis=-1, stable=True)`` for floats, as int32, by integer sorts
    (see :func:`_stable_order`): -0.0 ties with +0.0."""
    return _stable_order(*_unsigned_key(jnp.where(x == 0, 0, x)))


def _sort(x: jax.Array) -> jax.Array:
    """``jnp.sort`` along the last axis, as one integer sort (see :func:`_stable_order`)."""
    key, width = _unsigned_key(x)
    key = jax.lax.sort(key, dimension=x.ndim - 1)
    sign = key.dtype.type(1 << (width - 1))
    bits = jnp.where(key >= sign, key ^ sign, ~key)
    floats = jax.lax.bitcast_convert_type(bits, {32: jnp.float32, 64: jnp.float64}[width])
    return floats.astype(x.dtype)


def _x64_enabled() -> bool:
    """Whether 64-bit types are on (``jax_enable_x64``, or a ``jax.enable_x64`` scope)."""
    return jax.dtypes.canonicalize_dtype(jnp.int64) == jnp.int64


def _positions(index: jax.Array, n: int) -> jax.Array:
    """For ``index [N, M]`` holding each of ``0 .. n - 1`` exactly once per row (other
    entries at least ``n``): where each one is, ``[N, n]`` (an inverse permutation).

    A scatter: 3-6x faster than an integer sort of ``index`` on a 2-core CPU (e.g.
    ``[100, 30,500]`` 33 ms against 95 ms)."""
    N, M = index.shape
    pos = jax.lax.broadcasted_iota(jnp.int32, (N, M), 1)
    # Other entries to distinct places beyond n (dropped): every index is unique.
    index = jnp.where(index < n, index, n + pos)
    out = jnp.zeros((N, n), jnp.int32)
    return out.at[_rows_of((N, M)), index].set(pos, mode="drop", unique_indices=True)


def _queue(todo: jax.Array) -> jax.Array:
    """The indices where ``todo [M]`` holds, first, in order (then the others, in
    order): a stable partition, as the inverse of each entry's destination (faster on
    CPU than an integer sort, and than ``jnp.nonzero``'s scatter with repeated indices)."""
    size = todo.shape[0]
    index = jnp.arange(size, dtype=jnp.int32)
    before = jnp.cumsum(todo, dtype=jnp.int32)  # todo entries up to and including i
    dest = jnp.where(todo, before - 1, before[-1] + index - before)
    return _positions(dest[None], size)[0]


def _take(a: jax.Array, key: jax.Array) -> jax.Array:
    """``a[b, :, key[b]]`` for ``a [N, m, d]``: ``[N, m]``."""
    return jnp.take_along_axis(a, key[:, None, None], axis=-1)[..., 0]


def _rows_of(shape: tuple[int, ...]) -> jax.Array:
    """The problem index ``b`` of every entry of an ``[N, ...]`` array."""
    return jax.lax.broadcasted_iota(jnp.int32, shape, 0)


def _get(flat: jax.Array, index: jax.Array) -> jax.Array:
    """``flat[index]`` for indices known to be in bounds."""
    return flat.at[index].get(mode="promise_in_bounds")


def _bisect(n: int, at: Callable, pred: Callable, shape) -> jax.Array:
    """First position ``p`` in ``[0, n]`` where the monotone ``pred(at(p))`` holds."""
    steps = n.bit_length()  # the steps 2**(steps - 1), ..., 2, 1 add up to at least n

    def step(i, first):
        # ``first`` entries are known to fail ``pred``; the next ``size`` too?
        size = jnp.left_shift(jnp.int32(1), steps - 1 - i)
        ahead = first + size
        fails = (ahead <= n) & ~pred(at(jnp.minimum(ahead, n) - 1))
        return jnp.where(fails, ahead, first)

    # One array carried (not two bounds): each step is one fused pass (with two, XLA's
    # CPU backend made three, each computing the comparison). A rolled loop: unrolled,
    # its gathers made programs seconds slower to compile, for no gain in run time.
    return jax.lax.fori_loop(0, steps, step, jnp.zeros(shape, jnp.int32))


def _run_bounds(n, at, v, radius, metric, shape):
    """``[first, last)``: the run of an ascending array (``at(p)``, ``n`` entries)
    whose ``term(v, .)`` is at most ``radius`` (an exact, monotone comparison)."""
    first = _bisect(n, at, lambda a: (a >= v) | (_term(v, a, metric) <= radius), shape)
    last = _bisect(n, at, lambda a: (a > v) & ~(_term(a, v, metric) <= radius), shape)
    return first, last


class _Acc(NamedTuple):
    """What a search does with candidate distances, per query row.

    ``one(state, dist, index, param)`` folds in one candidate per row (elementwise
    arrays; None where blocks are better), ``block(...)`` a block ``[..., c]`` of them; ``threshold(state,
    param)`` is the distance below which unvisited points would still matter.
    ``param`` is a per-row input (the radius, for counts). ``pack`` turns a state
    into the result (stacked arrays).
    """

    init: Callable
    one: Callable | None
    block: Callable
    threshold: Callable
    pack: Callable


def _knn_acc(k: int) -> _Acc:
    """The ``k`` smallest distances (ascending) and their indices, ``k`` arrays each."""

    def init(shape, dtype):
        return (jnp.full(shape, jnp.inf, dtype),) * k, (jnp.zeros(shape, jnp.int32),) * k

    def one(state, v, j, param):
        # Insertion into a sorted list, without branches.
        vals, idx = state
        new_v, new_i = [], []
        for t in range(k):
            keep = v >= vals[t]
            if t == 0:
                new_v.append(jnp.where(keep, vals[t], v))
                new_i.append(jnp.where(keep, idx[t], j))
                continue
            shift = v < vals[t - 1]
            new_v.append(jnp.where(keep, vals[t], jnp.where(shift, vals[t - 1], v)))
            new_i.append(jnp.where(keep, idx[t], jnp.where(shift, idx[t - 1], j)))
        return tuple(new_v), tuple(new_i)

    def block(state, dist, index, param):
        vals, idx = pack(state)
        vals, idx = smallest(
            jnp.concatenate([vals, dist], -1), jnp.concatenate([idx, index], -1), k
        )
        return tuple(vals[..., t] for t in range(k)), tuple(idx[..., t] for t in range(k))

    def pack(state):
        return jnp.stack(state[0], -1), jnp.stack(state[1], -1)

    # Beyond _INSERT, insertion unrolled over k slots and a step's candidates makes
    # programs that are slow to compile: merge blocks by repeated minimum passes instead.
    return _Acc(init, one if k <= _INSERT else None, block, lambda s, param: s[0][k - 1], pack)


def _count_acc() -> _Acc:
    """Counts of distances strictly below the per-row radius ``param``."""

    def one(state, v, j, radius):
        return state + (v < radius).astype(jnp.int32)

    def block(state, dist, index, radius):
        return state + jnp.sum(dist < radius[..., None], -1, dtype=jnp.int32)

    return _Acc(
        lambda shape, dtype: jnp.zeros(shape, jnp.int32),
        one,
        block,
        lambda s, radius: radius,
        lambda s: s,
    )


class _Lanes(NamedTuple):
    """Entries in lanes ``[N, S, L]``, each lane ascending in ``key``: an entry that
    asks (``qry`` not ``_NONE``) is compared with the reference entries (``ref`` not
    ``_NONE``) up to a window of positions before and after it in its lane."""

    pts: tuple[jax.Array, ...]  # d coordinates, [N, S, L] each
    key: jax.Array  # [N, S, L] (inf for padding)
    ref: jax.Array  # [N, S, L] reference index
    qry: jax.Array  # [N, S, L] query index
    group: jax.Array | None  # [N, S, L]: candidates must share the query's group


def _scan_lanes(lanes: _Lanes, acc: _Acc, param, window: int, metric: Metric):
    """Folds every (asking entry, reference entry) pair at most ``window`` positions
    apart in a lane into the accumulator. Returns the state and the key distance
    from each entry to the nearest entry beyond the window on either side.

    The lanes are laid end to end in one flat array, with padding between them, and
    candidates come from shifted slices of it (no gathers), a few offsets per loop
    step, so that the fold runs as one fused loop over contiguous memory.
    """
    pts, key, ref, _, group = lanes
    shape = key.shape
    steps = -(-window // _GROUP)
    reach = steps * _GROUP + 1
    # Each lane and the padding after it (at least ``reach``) fill a multiple of
    # _LANE_ALIGN entries.
    lane = -(-(shape[-1] + reach) // _LANE_ALIGN) * _LANE_ALIGN
    size = math.prod(shape[:-1]) * lane

    def flat(a, value):
        a = jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, lane - shape[-1])], constant_values=value)
        return jnp.pad(a.reshape(-1), (reach, reach), constant_values=value)

    def shifted(a, off):
        return jax.lax.dynamic_slice_in_dim(a, reach + off, size)

    # Entries that are not references (padding included) are at infinity as
    # candidates, so their distances are inf without a mask. (The samples are finite.)
    # Entries that do not ask get results too, which are dropped.
    cand_f = [flat(jnp.where(ref != _NONE, c, jnp.inf), jnp.inf) for c in pts]
    ref_f = flat(ref, _NONE)
    group_f = None if group is None else flat(group, -1)
    here = [shifted(flat(c, 0), 0) for c in pts]
    mine = None if group is None else shifted(group_f, 0)
    param_f = None if param is None else shifted(flat(param, 0), 0)

    def step(s, state):
        dists, refs = [], []
        for g in range(_GROUP):
            off = s * _GROUP + g + 1
            for o in (-off, off):
                dist = _distance_parts(here, [shifted(c, o) for c in cand_f], metric)
                if group is not None:
                    dist = jnp.where(shifted(group_f, o) == mine, dist, jnp.inf)
                dists.append(dist)
                refs.append(shifted(ref_f, o))
        if acc.one is None:  # large k: the step's candidates as one block
            return acc.block(state, jnp.stack(dists, -1), jnp.stack(refs, -1), param_f)
        for dist, j in zip(dists, refs):
            state = acc.one(state, dist, j, param_f)
        return state

    # A rolled loop: unrolling the window made programs twice as slow to compile
    # (22,000 lines of HLO in two dimensions) and was no faster to run.
    state = jax.lax.fori_loop(0, steps, step, acc.init((size,), pts[0].dtype))
    key_f = flat(key, jnp.inf)
    centre = shifted(key_f, 0)
    gap = jnp.minimum(*(_term(centre, shifted(key_f, o), metric) for o in (-reach, reach)))
    gap = jnp.where(jnp.isnan(gap), jnp.inf, gap)  # inf - inf at padding

    def unflat(a):
        return a.reshape(shape[:-1] + (lane,))[..., : shape[-1]]

    return jax.tree.map(unflat, state), unflat(gap)


def _band_shape(size: int, dims: int, k: int) -> tuple[int, int]:
    """Entries per strip, and window per side, for ``size`` points filling ``dims``
    dimensions with ``k`` of them within the k-th neighbour distance ``eps``.

    A strip of ``w size^(1 - 1/dims) k^(1/dims)`` points (``w = _STRIP_WIDTH``) is
    a few ``eps`` wide along the first key; a band of three strips holds about
    ``3 w size^(1 - 2/dims) k^(2/dims)`` points within ``eps`` of a query along the
    second key, and the window takes ``_STRIP_WINDOW`` times that on each side.
    """
    dims = max(dims, 2)
    strip = math.ceil(_STRIP_WIDTH * size ** (1 - 1 / dims) * k ** (1 / dims))
    strip = min(max(strip, 8), size)
    within = 3 * _STRIP_WIDTH * size ** (1 - 2 / dims) * k ** (2 / dims)
    window = _GROUP * math.ceil((_STRIP_WINDOW * within + k) / _GROUP)
    return strip, min(window, 3 * strip)


class _Bands(NamedTuple):
    lanes: _Lanes  # band j: strips j - 1, j, j + 1, sorted along the second key
    a: jax.Array  # [N, S, L] first key of each entry
    strip_of: jax.Array  # [N, S, L] strip of each entry (S for padding)
    a_sorted: jax.Array  # [N, U] first key of all entries, ascending
    strip: int  # entries per strip


def _bands(u, keys, strip, ref, qry, groups) -> _Bands:
    """Sorts the entries ``u [N, U, d]`` along ``keys[:, 0]``, cuts them into strips of
    ``strip`` entries and forms band ``j`` from strips ``j - 1, j, j + 1``, sorted
    along ``keys[:, 1]``. Only the entries of strip ``j`` ask in band ``j``."""
    N, U, d = u.shape
    S = -(-U // strip)
    ua, ub = _take(u, keys[:, 0]), _take(u, keys[:, 1])
    order = argsort(ua)
    cut = jnp.pad(order, [(0, 0), (0, S * strip - U)], constant_values=U)
    cut = jnp.pad(cut.reshape(N, S, strip), [(0, 0), (1, 1), (0, 0)], constant_values=U)
    entry = jnp.concatenate([cut[:, :-2], cut[:, 1:-1], cut[:, 2:]], axis=-1)
    side = jnp.repeat(jnp.arange(-1, 2, dtype=jnp.int32), strip)
    sid = jnp.broadcast_to(jnp.arange(S, dtype=jnp.int32)[:, None] + side, entry.shape)
    middle = jnp.broadcast_to(side == 0, entry.shape)
    rows = _rows_of(entry.shape)
    real = entry < U
    bkey = jnp.where(real, ub[rows, jnp.minimum(entry, U - 1)], jnp.inf)
    by_b = argsort(bkey)
    entry, bkey, sid, middle = (
        jnp.take_along_axis(a, by_b, axis=-1) for a in (entry, bkey, sid, middle)
    )
    real = entry < U
    safe = jnp.minimum(entry, U - 1)
    lanes = _Lanes(
        pts=tuple(u[rows, safe, c] for c in range(d)),
        key=bkey,
        ref=jnp.where(real, ref[rows, safe], _NONE),
        qry=jnp.where(real & middle, qry[rows, safe], _NONE),
        group=None if groups is None else jnp.where(real, groups[rows, safe], -1),
    )
    a_sorted = jnp.take_along_axis(ua, order, axis=1)
    return _Bands(lanes, ua[rows, safe], jnp.where(real, sid, S), a_sorted, strip)


def _band_search(q, r, acc, param, metric, *, exclude_self, groups, dims, k, refs=None):
    """The sorted search for ``d >= 2``: bands, then boxes for the rows they leave open
    (the k nearest in three dimensions from ``_GRID_FROM`` references without groups:
    grids instead, :func:`_grid_knn`).

    ``refs [N, m]`` (bool, self search only): the references that count."""
    N, n, _ = q.shape
    m = r.shape[1]
    iota_n = jax.lax.broadcasted_iota(jnp.int32, (N, n), 1)
    if exclude_self:
        u, qry = r, iota_n
        ref = iota_n if refs is None else jnp.where(refs, iota_n, _NONE)
    else:
        u = jnp.concatenate([q, r], axis=1)
        none_n, none_m = jnp.full((N, n), _NONE, jnp.int32), jnp.full((N, m), _NONE, jnp.int32)
        ref = jnp.concatenate([none_n, jax.lax.broadcasted_iota(jnp.int32, (N, m), 1)], 1)
        qry = jnp.concatenate([iota_n, none_m], axis=1)
    U = u.shape[1]
    keys = _key_coordinates(u, 2)
    if q.shape[-1] == 3 and param is None and groups is None and m >= _GRID_FROM:
        return _grid_knn(q, r, keys, k, metric, exclude_self=exclude_self)
    strip, window = _band_shape(U, dims, k)
    B = _bands(u, keys, strip, ref, qry, groups)
    qkeys = [_take(q, keys[:, c]) for c in range(2)]
    own = iota_n if exclude_self else jnp.full((N, n), -1, jnp.int32)
    S = B.lanes.key.shape[1]
    lane_rows = _rows_of(B.lanes.key.shape)
    asks = B.lanes.qry != _NONE
    qsafe = jnp.where(asks, B.lanes.qry, 0)
    lane_param = None if param is None else param[lane_rows, qsafe]
    state, gap = _scan_lanes(B.lanes, acc, lane_param, window, metric)
    # Strips beyond the band: at least this far along the first key.
    band = jax.lax.broadcasted_iota(jnp.int32, (N, S), 1)
    below = B.a_sorted[_rows_of((N, S)), jnp.clip((band - 1) * strip - 1, 0, U - 1)]
    above = B.a_sorted[_rows_of((N, S)), jnp.clip((band + 2) * strip, 0, U - 1)]
    gap_below = jnp.where((band >= 2)[..., None], _term(B.a, below[..., None], metric), jnp.inf)
    gap_above = jnp.where((band + 2 < S)[..., None], _term(B.a, above[..., None], metric), jnp.inf)
    gap = jnp.minimum(gap, jnp.minimum(gap_below, gap_above))
    done = acc.threshold(state, lane_param) <= gap
    # Back to the queries: each asks in exactly one band.
    where = _positions(B.lanes.qry.reshape(N, -1), n)

    def to_queries(a):
        a = a.reshape((N, -1) + a.shape[3:])
        return jnp.take_along_axis(a, where.reshape(where.shape + (1,) * (a.ndim - 2)), axis=1)

    out = jax.tree.map(to_queries, acc.pack(state))
    done = to_queries(done)
    return _band_boxes(q, qkeys, own, groups, B, acc, param, out, ~done, metric)


def _fill_slots(row, cursor, queue, total, acc, state, dtype):
    """The free slots of a box search (``row < 0``) take the next rows of ``queue``
    (``total`` rows to take, ``cursor`` taken so far) with a fresh ``state``: returns
    the rows, which slots took one, the state and the new cursor."""
    free = row < 0
    take = cursor + jnp.cumsum(free, dtype=jnp.int32) - 1
    fresh = free & (take < total)
    row = jnp.where(fresh, queue[jnp.clip(take, 0, queue.shape[0] - 1)], row)
    state = jax.tree.map(lambda a, b: jnp.where(fresh, a, b), acc.init(row.shape, dtype), state)
    cursor = jnp.minimum(cursor + jnp.sum(free, dtype=jnp.int32), total)
    return row, fresh, state, cursor


def _band_boxes(q, qkeys, own, groups, B: _Bands, acc, param, out, todo, metric):
    """Exact answers for the rows in ``todo``: every reference within the box of
    half-width ``threshold`` (along both keys) around the query, afresh. The box
    is a run of strips, and a run of each band along the second key; rows are
    taken ``_SLOTS`` at a time, ``_BLOCK`` entries per row per step."""
    N, n, d = q.shape
    S, L = B.lanes.key.shape[1:]
    s = B.strip
    U = B.a_sorted.shape[1]
    size = N * n
    flat = lambda a: a.reshape((size,) + a.shape[2:])
    qa, qb, own = flat(qkeys[0]), flat(qkeys[1]), flat(own)
    q_parts = [q[..., c].reshape(-1) for c in range(d)]
    lane_key = B.lanes.key.reshape(-1)
    lane_ref = B.lanes.ref.reshape(-1)
    lane_sid = B.strip_of.reshape(-1)
    lane_pts = [c.reshape(-1) for c in B.lanes.pts]
    # B.lanes.group is None exactly when groups is (see _bands).
    lane_group = None if B.lanes.group is None else B.lanes.group.reshape(-1)
    q_group = None if groups is None else flat(groups)
    a_sorted = B.a_sorted.reshape(-1)
    param = None if param is None else flat(param)
    packed = jax.tree.map(flat, out)
    dtype = q.dtype
    # The half-width of each row's box: what the bands found (or the radius).
    radius = flat(out[0][..., -1]) if param is None else param
    todo = todo.reshape(-1)
    total = jnp.sum(todo, dtype=jnp.int32)
    queue = _queue(todo)
    slots = min(_SLOTS, size)

    def band_run(row, c):
        base = ((row // n) * S + jnp.minimum(c, S - 1)) * L
        return _run_bounds(
            L, lambda p: _get(lane_key, base + p), qb[row], radius[row], metric, row.shape
        )

    def refill(st, move):
        # New rows into the free slots; the run of the current band for them and
        # for the rows that ``move`` to the next band.
        packed, row, c, p, end, t0, t1, state, cursor = st
        row, fresh, state, cursor = _fill_slots(row, cursor, queue, total, acc, state, dtype)
        safe = jnp.maximum(row, 0)
        base = (safe // n) * U
        first, last = _run_bounds(
            U, lambda i: _get(a_sorted, base + i), qa[safe], radius[safe], metric, row.shape
        )
        t0 = jnp.where(fresh, first // s, t0)
        t1 = jnp.where(fresh, jnp.where(last > first, (last - 1) // s, first // s - 1), t1)
        c = jnp.where(fresh, t0 + 1, c)
        p1, end1 = band_run(safe, c)
        new_run = fresh | move
        p, end = jnp.where(new_run, p1, p), jnp.where(new_run, end1, end)
        return packed, row, c, p, end, t0, t1, state, cursor

    def step(st):
        # Rows in the slots take one block of their band's run (none at the start,
        # when every slot is free), then free slots are refilled.
        packed, row, c, p, end, t0, t1, state, cursor = st
        safe = jnp.maximum(row, 0)
        pos = p[:, None] + jnp.arange(_BLOCK, dtype=jnp.int32)
        base = ((safe // n) * S + jnp.minimum(c, S - 1)) * L
        idx = base[:, None] + jnp.clip(pos, 0, L - 1)
        j, sid = _get(lane_ref, idx), _get(lane_sid, idx)
        valid = (row >= 0)[:, None] & (pos < end[:, None]) & (j != _NONE)
        valid &= sid >= jnp.maximum(c - 1, t0)[:, None]
        valid &= sid <= jnp.minimum(c + 1, t1)[:, None]
        valid &= j != own[safe][:, None]
        if groups is not None:
            valid &= _get(lane_group, idx) == q_group[safe][:, None]
        dist = _distance_parts(
            [qc[safe][:, None] for qc in q_parts], [_get(pc, idx) for pc in lane_pts], metric
        )
        row_param = None if param is None else param[safe]
        state = acc.block(state, jnp.where(valid, dist, jnp.inf), j, row_param)
        p = p + _BLOCK
        move = p >= end  # this band's run is done: the band three strips on
        c = jnp.where(move, c + 3, c)
        fin = (row >= 0) & (c - 1 > t1)
        dest = jnp.where(fin, row, size)
        packed = jax.tree.map(lambda g, a: g.at[dest].set(a, mode="drop"), packed, acc.pack(state))
        row = jnp.where(fin, -1, row)
        return refill((packed, row, c, p, end, t0, t1, state, cursor), move & ~fin)

    zeros = jnp.zeros(slots, jnp.int32)
    st = (
        packed,
        jnp.full(slots, -1, jnp.int32),
        zeros,
        zeros,
        zeros,
        zeros,
        zeros,
        acc.init((slots,), dtype),
        jnp.int32(0),
    )
    st = jax.lax.while_loop(lambda st: (st[8] < total) | jnp.any(st[1] >= 0), step, st)
    return jax.tree.map(lambda a: a.reshape((N, n) + a.shape[1:]), st[0])


def _line_search(q, r, acc, param, metric, *, exclude_self, groups, k):
    """The sorted search in one dimension: the ``k`` nearest references lie among the
    ``k`` nearest on each side in sorted order, so a window of ``k`` is exact."""
    N, n, _ = q.shape
    m = r.shape[1]
    if exclude_self:  # one lane, sorted by (group, value): shifts of the sorted order
        order = argsort(r[..., 0])
        if groups is not None:
            g = jnp.take_along_axis(groups, order, axis=1)
            order = jnp.take_along_axis(order, _stable_order(*_unsigned_key(g)), axis=1)
        order = order.astype(jnp.int32)
        sort = lambda a: jnp.take_along_axis(a, order, axis=1)[:, None]
        lanes = _Lanes(
            pts=(sort(r[..., 0]),),
            key=sort(r[..., 0]),
            ref=order[:, None],
            qry=order[:, None],
            group=None if groups is None else sort(groups),
        )
        lane_param = None if param is None else sort(param)
        state, _ = _scan_lanes(lanes, acc, lane_param, k, metric)
        where = _positions(order, n)
        return jax.tree.map(
            lambda a: jnp.take_along_axis(
                a[:, 0], where.reshape(where.shape + (1,) * (a.ndim - 3)), axis=1
            ),
            acc.pack(state),
        )
    # Queries against other references: the references on either side of each query.
    order = argsort(r[..., 0])
    s = jnp.take_along_axis(r[..., 0], order, axis=1)
    pos = jax.vmap(jnp.searchsorted)(s, q[..., 0]).astype(jnp.int32)
    base = _rows_of((N, n)) * m
    flat_s, flat_order = s.reshape(-1), order.reshape(-1)
    state = acc.init((N, n), q.dtype)
    for t in range(k):
        for p in (pos - 1 - t, pos + t):
            ok = (p >= 0) & (p < m)
            at = base + jnp.clip(p, 0, m - 1)
            dist = _term(q[..., 0], _get(flat_s, at), metric)
            dist, j = jnp.where(ok, dist, jnp.inf), _get(flat_order, at)
            if acc.one is None:
                state = acc.block(state, dist[..., None], j[..., None], param)
            else:
                state = acc.one(state, dist, j, param)
    return acc.pack(state)


# --------------------------------------------------------------------------- grid (3-D)

# The grid of the sorted search in three dimensions, from this many references (below
# it the bands are as fast: 3-D standard normal, n = 2,048: 26 ms against 22 ms with
# the bands; n = 5,000: 42 against 53 ms; BENCHMARKS.md, fourteenth session).
_GRID_FROM = 4096
# Cells this many typical k-th neighbour distances wide; windows along the third
# coordinate this many times the references expected within that distance of a query
# (2 _GRID_CELL**2 k / volume of the unit ball, per column).
_GRID_CELL = 1.2
_GRID_SLACK = 3.0
# The grids for the rows left open: cells and windows this many times as long, for at
# most this share (1 / s) of the rows, the open ones first.
_GRID_RETRIES = ((2, 2, 4), (4, 4, 16), (8, 8, 64))
# The typical k-th neighbour distance from a pilot search among this many references.
_PILOT = 1024
# Steps of the bisection that centres a window on the query: it finds the place in
# cells of fewer than 2**_GRID_BISECT references (elsewhere the window is off centre,
# which the check of the row's answer accounts for).
_GRID_BISECT = 5


def _grid_shape(m: int, k: int, metric: Metric) -> tuple[int, int]:
    """Cells per axis (two of them beyond the central 98% of the points), and the window
    of candidates taken from each of the nine columns around a query."""
    cells = math.ceil(2 * (m / k) ** (1 / 3)) + 2
    volume = 4 * math.pi / 3 if metric == "sqeuclidean" else 8.0
    expected = 2 * _GRID_CELL**2 * k / volume
    return cells, math.ceil(_GRID_SLACK * expected) + 2


def _typical_length(q, r, k, metric, exclude_self) -> jax.Array:
    """Per problem, the median k-th neighbour distance (as a length) of a strided sample
    of the references, scaled from the sample's size to all ``m`` references."""
    n = q.shape[1]
    m = r.shape[1]
    size = min(m, _PILOT)
    rs = r[:, :: m // size][:, :size]
    qs = rs if exclude_self else q[:, :: max(1, n // 256)][:, :256]
    dist, _ = _knn_brute(qs, rs, None, k, metric, exclude_self, 1 << 18)
    kth = dist[..., k - 1]
    length = jnp.sqrt(kth) if metric == "sqeuclidean" else kth
    return jnp.median(length, axis=-1) * (size / m) ** (1 / 3)


class _Grid(NamedTuple):
    """References sorted by column (cells along the first two key coordinates) and then
    along the third; flat over the problems."""

    lo: jax.Array  # [N, 3] where cell 1 starts along each key coordinate
    h: jax.Array  # [N] cell width
    start: jax.Array  # [N (G^3 + 1)] where each cell's references start (flat position)
    c: jax.Array  # [N m] third key coordinate, sorted
    pts: jax.Array  # [N m, d] the points, sorted
    order: jax.Array  # [N m] the reference index of each sorted entry
    where: jax.Array  # [N m] the flat sorted position of each reference
    below: tuple[jax.Array, jax.Array]  # [N G]: largest key coordinate in cells <= t
    above: tuple[jax.Array, jax.Array]  # [N G]: smallest key coordinate in cells >= t


def _cell(x, lo, h, G):
    """Cell ``0 .. G - 1`` of ``x`` (monotone in ``x``; NaN in cell 0)."""
    t = (x - lo) / h + 1
    return jnp.minimum(jnp.where(t >= 0, t, 0), G - 1).astype(jnp.int32)


def _grid(r, rk, lo, h, G) -> _Grid:
    N, m, d = r.shape
    rows = _rows_of((N, m))
    rcell = [_cell(a, lo[:, c, None], h[:, None], G) for c, a in enumerate(rk)]
    column = rcell[0] * G + rcell[1]
    order = argsort(rk[2])
    col_key = jnp.take_along_axis(column, order, axis=1).astype(jnp.uint32)
    order = jnp.take_along_axis(order, _stable_order(col_key, (G * G - 1).bit_length()), axis=1)
    sort = lambda a: jnp.take_along_axis(a, order, axis=1).reshape(-1)
    counts = jnp.zeros((N, G**3), jnp.int32).at[rows, column * G + rcell[2]].add(1)
    start = jnp.pad(jnp.cumsum(counts, axis=1, dtype=jnp.int32), [(0, 0), (1, 0)])
    below, above = [], []
    for c in range(2):
        big = jnp.full((N, G), -jnp.inf, r.dtype).at[rows, rcell[c]].max(rk[c])
        small = jnp.full((N, G), jnp.inf, r.dtype).at[rows, rcell[c]].min(rk[c])
        below.append(jax.lax.cummax(big, axis=1).reshape(-1))
        above.append(jax.lax.cummin(small, axis=1, reverse=True).reshape(-1))
    return _Grid(
        lo,
        h,
        (start + _rows_of((N, 1)) * m).reshape(-1),
        sort(rk[2]),
        jnp.stack([sort(r[..., c]) for c in range(d)], axis=-1),
        order.reshape(-1),
        (_positions(order, m) + _rows_of((N, 1)) * m).reshape(-1),
        (below[0], below[1]),
        (above[0], above[1]),
    )


def _own_position(grid: _Grid, prob, own):
    """The sorted position of each query's own reference (None in a cross search)."""
    if own is None:
        return None
    return _get(grid.where, prob * (grid.c.shape[0] // grid.h.shape[0]) + own)


def _column(grid: _Grid, G, prob, ca, cb):
    """Column ``(ca, cb)`` of problem ``prob``: its place in the table of cells, the
    sorted positions ``[first, end)`` of its references, and whether it is in the grid
    (``first`` and ``end`` are those of the nearest column when it is not)."""
    inside = (ca >= 0) & (ca < G) & (cb >= 0) & (cb < G)
    col = prob * (G**3 + 1) + (jnp.clip(ca, 0, G - 1) * G + jnp.clip(cb, 0, G - 1)) * G
    return col, _get(grid.start, col), _get(grid.start, col + G), inside


def _beyond_columns(grid: _Grid, G, prob, cell, qk, reach, metric):
    """A lower bound on the distance from queries (problem ``prob``; cells ``cell`` and
    coordinates ``qk`` along the first two keys) to every reference ``reach`` or more
    cells away along either key: from the running maxima and minima of the cells."""
    gap = jnp.full(prob.shape, jnp.inf, qk[0].dtype)
    for c in range(2):
        t = cell[c]
        lower = _get(grid.below[c], prob * G + jnp.clip(t - reach, 0, G - 1))
        upper = _get(grid.above[c], prob * G + jnp.clip(t + reach, 0, G - 1))
        gap = jnp.minimum(gap, jnp.where(t >= reach, _term(qk[c], lower, metric), jnp.inf))
        gap = jnp.minimum(gap, jnp.where(t + reach < G, _term(upper, qk[c], metric), jnp.inf))
    return gap


def _grid_rows(grid: _Grid, G, W, prob, q, qk, own, k, metric):
    """The k nearest of flat query rows (``prob [R]``: their problem; ``q``, ``qk``:
    coordinates and key coordinates, ``[R]`` each) among ``W`` references from each of
    the nine columns around them, and whether that is exact."""
    acc = _knn_acc(k)
    size = grid.c.shape[0]
    own = _own_position(grid, prob, own)  # the query's own entry, skipped
    lo, h = grid.lo[prob], grid.h[prob]
    cell = [_cell(a, lo[:, c], h, G) for c, a in enumerate(qk)]
    gap = _beyond_columns(grid, G, prob, cell, qk, 2, metric)
    steps = (W + _GROUP - 1) // _GROUP
    W = steps * _GROUP

    def visit(i, carry):
        # Column i // steps, part i % steps of its window (the column's gaps are taken
        # at every part: the same values).
        state, gap = carry
        c, part = i // steps, i % steps
        col, first, end, inside = _column(grid, G, prob, cell[0] + c // 3 - 1, cell[1] + c % 3 - 1)
        # The window is centred on the first reference at or above the query along
        # the third key: found in the query's cell (up to 2**_GRID_BISECT entries).
        here = col + cell[2]
        p, stop = _get(grid.start, here), _get(grid.start, here + 1)
        for s in reversed(range(_GRID_BISECT)):
            ahead = p + (1 << s)
            below = _get(grid.c, jnp.clip(ahead - 1, 0, size - 1)) < qk[2]
            p = jnp.where((ahead <= stop) & below, ahead, p)
        p0 = p - W // 2
        dists, refs = [], []
        for g in range(_GROUP):
            p = p0 + part * _GROUP + g
            at = jnp.clip(p, 0, size - 1)
            ok = inside & (p >= first) & (p < end)
            if own is not None:
                ok &= at != own
            cand = grid.pts.at[at].get(mode="promise_in_bounds")
            dist = _distance_parts(q, [cand[:, c] for c in range(len(q))], metric)
            dists.append(jnp.where(ok, dist, jnp.inf))
            refs.append(at)
        if acc.one is None:
            state = acc.block(state, jnp.stack(dists, -1), jnp.stack(refs, -1), None)
        else:
            for dist, j in zip(dists, refs):
                state = acc.one(state, dist, j, None)
        # The references just outside the window bound those beyond it, unless they
        # lie on the query's other side (the cell held more than the bisection saw).
        before = _get(grid.c, jnp.clip(p0 - 1, 0, size - 1))
        low = jnp.where(before <= qk[2], _term(qk[2], before, metric), 0)
        low = jnp.where(inside & (p0 > first), low, jnp.inf)
        beyond = _get(grid.c, jnp.clip(p0 + W, 0, size - 1))
        high = jnp.where(beyond >= qk[2], _term(beyond, qk[2], metric), 0)
        high = jnp.where(inside & (p0 + W < end), high, jnp.inf)
        return state, jnp.minimum(gap, jnp.minimum(low, high))

    state, gap = jax.lax.fori_loop(0, 9 * steps, visit, (acc.init(prob.shape, q[0].dtype), gap))
    vals, at = acc.pack(state)
    return (vals, _get(grid.order, at)), acc.threshold(state, None) <= gap


def _grid_again(grid, G, W, take, rows, out, done, k, metric):
    """:func:`_grid_rows` for up to ``take`` of the flat rows ``rows`` (problem,
    coordinates, key coordinates, own index), the open ones first; the others keep
    ``out`` and ``done``."""
    pick = _queue(~done)[:take]
    prob, q, qk, own = jax.tree.map(lambda a: a[pick], rows)
    new, ok = _grid_rows(grid, G, W, prob, q, qk, own, k, metric)
    ok &= ~done[pick]  # rows that were done keep their answer
    out = jax.tree.map(lambda a, b: a.at[pick].set(jnp.where(ok[:, None], b, a[pick])), out, new)
    return out, done.at[pick].set(done[pick] | ok)


def _grid_knn(q, r, keys, k, metric, *, exclude_self):
    """The k nearest by grids of cells along three coordinates.

    The three coordinates are cut into cells of one width (``_GRID_CELL`` typical k-th
    neighbour distances at first; the outermost cells of each axis also hold the points
    beyond the central 98%), and the references sorted by column (the cells along the
    first two) and then along the third. Each query takes, from each of the nine
    columns around its own, ``W`` consecutive references centred on its place along the
    third coordinate. A row is exact when its k-th distance is at most the distance along
    the third coordinate to the references just outside those windows, and along the
    first two to the references in cells two or more away (from running maxima and
    minima of the cells' coordinates: a point's cell is monotone in each coordinate).
    The rows left open (sparse regions, where the k-th distance outgrows the cells, or
    crowded windows) are taken again on coarser grids with longer windows, fewer of them
    each time (``_GRID_RETRIES``), and what is still open by :func:`_grid_boxes` on the
    last grid. Returns the k smallest distances and their indices, ``[N, n, k]`` each.
    """
    N, n, _ = q.shape
    m = r.shape[1]
    G, W = _grid_shape(m, k, metric)
    third = 3 - keys[:, 0] - keys[:, 1]
    keys = jnp.stack([keys[:, 0], keys[:, 1], third], axis=1)
    rk = [_take(r, keys[:, c]) for c in range(3)]
    qk = [_take(q, keys[:, c]).reshape(-1) for c in range(3)]
    q_parts = [q[..., c].reshape(-1) for c in range(3)]
    # The central 98% of a strided sample along each axis, and the cell width.
    stride = max(1, m // 2048)
    sub = _sort(jnp.stack([a[:, ::stride] for a in rk], axis=1))  # [N, 3, size]
    size = sub.shape[-1]
    lo, hi = sub[..., size // 100], sub[..., size - 1 - size // 100]
    h = jnp.maximum(
        _GRID_CELL * _typical_length(q, r, k, metric, exclude_self),
        jnp.max(hi - lo, axis=-1) / (G - 2),
    )
    prob = _rows_of((N, n)).reshape(-1)
    own = jax.lax.broadcasted_iota(jnp.int32, (N, n), 1).reshape(-1) if exclude_self else None
    grid = _grid(r, rk, lo, h, G)
    out, done = _grid_rows(grid, G, W, prob, q_parts, qk, own, k, metric)
    rows = (prob, q_parts, qk, own)
    for wider, longer, share in _GRID_RETRIES:
        grid = _grid(r, rk, lo, h * wider, G)
        take = -(-N * n // share)
        out, done = _grid_again(grid, G, W * longer, take, rows, out, done, k, metric)
    out = _grid_boxes(grid, G, rows, out, done, k, metric)
    return jax.tree.map(lambda a: a.reshape((N, n) + a.shape[1:]), out)


def _grid_boxes(grid: _Grid, G, rows, out, done, k, metric):
    """Exact answers for the flat rows not ``done``, afresh: the columns of cells around
    the query in rings of growing distance (its own column, then the eight around it,
    ...), in each the run along the third key within the radius, until the references
    beyond the rings seen are farther than the row's k-th distance (from the running
    maxima and minima of the cells). The radius is the smaller of that k-th distance so
    far and the one in ``out`` (a bound: k references are that close). Rows are taken
    ``_SLOTS`` at a time, ``_BLOCK`` entries of a run per row per step."""
    prob, q, qk, own = rows
    acc = _knn_acc(k)
    size = grid.c.shape[0]
    m = size // grid.h.shape[0]
    own = _own_position(grid, prob, own)  # the query's own entry, skipped
    bound = out[0][:, -1]
    todo = ~done
    total = jnp.sum(todo, dtype=jnp.int32)
    queue = _queue(todo)
    slots = min(_SLOTS, prob.shape[0])
    home = [_cell(qk[c], grid.lo[prob, c], grid.h[prob], G) for c in range(2)]

    def radius(row, state):
        return jnp.minimum(bound[row], acc.threshold(state, None))

    def run(row, rho, i, state):
        # Column i of ring rho around the row's own, and its run along the third key.
        side, j = i // jnp.maximum(2 * rho, 1), i % jnp.maximum(2 * rho, 1)
        da = jnp.select([side == 0, side == 1, side == 2], [j - rho, rho, rho - j], -rho)
        db = jnp.select([side == 0, side == 1, side == 2], [-rho, j - rho, rho], rho - j)
        _, first, end, inside = _column(grid, G, prob[row], home[0][row] + da, home[1][row] + db)
        count = jnp.where(inside, end - first, 0)
        # Past the column's end the run reads inf (beyond any query), so both ends
        # stop at most there.
        at = lambda p: jnp.where(p < count, _get(grid.c, jnp.clip(first + p, 0, size - 1)), jnp.inf)
        lo, hi = _run_bounds(m, at, qk[2][row], radius(row, state), metric, row.shape)
        return first + jnp.minimum(lo, count), first + jnp.minimum(hi, count)

    def beyond(row, rho):  # a lower bound on the distance to all outside rings 0 .. rho
        cell, key = [t[row] for t in home], [a[row] for a in qk[:2]]
        return _beyond_columns(grid, G, prob[row], cell, key, rho + 1, metric)

    def refill(st, move):
        # New rows into the free slots, and the run of the next column for them and
        # for the rows that ``move`` on.
        packed, row, rho, i, p, end, state, cursor = st
        row, fresh, state, cursor = _fill_slots(row, cursor, queue, total, acc, state, q[0].dtype)
        rho, i = jnp.where(fresh, 0, rho), jnp.where(fresh, 0, i)
        safe = jnp.maximum(row, 0)
        p1, end1 = run(safe, rho, i, state)
        new_run = fresh | move
        p, end = jnp.where(new_run, p1, p), jnp.where(new_run, end1, end)
        return packed, row, rho, i, p, end, state, cursor

    def step(st):
        packed, row, rho, i, p, end, state, cursor = st
        safe = jnp.maximum(row, 0)
        pos = p[:, None] + jnp.arange(_BLOCK, dtype=jnp.int32)
        at = jnp.minimum(pos, size - 1)
        valid = (row >= 0)[:, None] & (pos < end[:, None])
        if own is not None:
            valid &= at != own[safe][:, None]
        cand = grid.pts.at[at].get(mode="promise_in_bounds")
        dist = _distance_parts(
            [a[safe][:, None] for a in q], [cand[..., c] for c in range(len(q))], metric
        )
        state = acc.block(state, jnp.where(valid, dist, jnp.inf), at, None)
        p = p + _BLOCK
        move = p >= end  # this column's run is done: the next column
        i = jnp.where(move, i + 1, i)
        ring_done = i >= jnp.maximum(8 * rho, 1)
        fin = (row >= 0) & ring_done & (acc.threshold(state, None) <= beyond(safe, rho))
        rho, i = jnp.where(ring_done, rho + 1, rho), jnp.where(ring_done, 0, i)
        dest = jnp.where(fin, row, prob.shape[0])
        vals, pos = acc.pack(state)
        found = (vals, _get(grid.order, pos))
        packed = jax.tree.map(lambda g, a: g.at[dest].set(a, mode="drop"), packed, found)
        row = jnp.where(fin, -1, row)
        return refill((packed, row, rho, i, p, end, state, cursor), move & ~fin)

    zeros = jnp.zeros(slots, jnp.int32)
    st = (out, jnp.full(slots, -1, jnp.int32), zeros, zeros, zeros, zeros)
    st = refill((*st, acc.init((slots,), q[0].dtype), jnp.int32(0)), jnp.zeros(slots, bool))
    st = jax.lax.while_loop(lambda st: (st[-1] < total) | jnp.any(st[1] >= 0), step, st)
    return st[0]


def _knn_sorted(q, r, groups, k, metric, exclude_self):
    acc = _knn_acc(k)
    if q.shape[-1] == 1:
        return _line_search(q, r, acc, None, metric, exclude_self=exclude_self, groups=groups, k=k)
    return _band_search(
        q,
        r,
        acc,
        None,
        metric,
        exclude_self=exclude_self,
        groups=groups,
        dims=q.shape[-1],
        k=k,
    )


def _count_sorted_1d(p, radius, refs, metric):
    """Counts in one dimension: two binary searches with the exact comparison."""
    N, n, _ = p.shape
    v = p[..., 0]
    if refs is None:
        s = _sort(v)
    else:  # prefix sums of the references among the sorted values
        order = argsort(v)
        s = jnp.take_along_axis(v, order, axis=1)
        is_ref = jnp.take_along_axis(refs, order, axis=1).astype(jnp.int32)
        before = jnp.pad(jnp.cumsum(is_ref, axis=1, dtype=jnp.int32), [(0, 0), (1, 0)])
    s = s.reshape(-1)
    base = _rows_of((N, n)) * n
    at = lambda i: _get(s, base + i)
    # The points at term(v, .) < radius are one run [first, last) of the sorted order.
    first = _bisect(n, at, lambda a: (a >= v) | (_term(v, a, metric) < radius), (N, n))
    last = _bisect(n, at, lambda a: (a > v) & ~(_term(a, v, metric) < radius), (N, n))
    if refs is None:
        return jnp.where(radius > 0, last - first - 1, 0).astype(jnp.int32)
    inside = jnp.take_along_axis(before, last, axis=1) - jnp.take_along_axis(before, first, axis=1)
    return inside - (refs & (radius > 0)).astype(jnp.int32)


def _count_sorted(p, radius, refs, metric, dims, k):
    if p.shape[-1] == 1:
        return _count_sorted_1d(p, radius, refs, metric)
    return _band_search(
        p,
        p,
        _count_acc(),
        radius,
        metric,
        exclude_self=True,
        groups=None,
        dims=dims,
        k=k,
        refs=refs,
    )


# --------------------------------------------------------------------------- entry points


def knn(
    q: jax.Array,
    r: jax.Array,
    k: int,
    *,
    metric: Metric,
    exclude_self: bool,
    method: SearchMethod,
    block: int,
    groups: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """The ``k`` nearest references of each query: distances and indices ``[N, n, k]``.

    ``q [N, n, d]``, ``r [N, m, d]`` (``N`` independent problems). With
    ``exclude_self`` (``q`` is ``r``) a row does not count itself; with ``groups
    [N, n]`` (self search only) it sees only the points of its own group (missing
    neighbours have distance ``inf``). Distances are in the ``metric``'s units
    (squared for ``"sqeuclidean"``), ascending; among exact ties the indices may
    differ between methods, the distances do not.
    """
    q, r = jnp.asarray(q), jnp.asarray(r)
    method = choose_method(method, q.shape[1], r.shape[1], q.shape[2])
    if method == "brute":
        return _knn_brute(q, r, groups, k, metric, exclude_self, block)
    return _knn_sorted(q, r, groups, k, metric, exclude_self)


def count_within(
    p: jax.Array,
    radius: jax.Array,
    *,
    metric: Metric,
    method: SearchMethod,
    block: int,
    dims: int | None = None,
    k: int = 1,
    refs: jax.Array | None = None,
) -> jax.Array:
    """``#{j != i : distance(p_i, p_j) < radius_i}`` for ``p [N, n, d]``, ``radius [N, n]``.

    ``radius`` is typically a k-th neighbour distance in a space of ``dims``
    dimensions containing this one (it sizes the windows of the sorted search).
    With ``refs [N, n]`` (bool), only the points it marks are counted.
    """
    p, radius = jnp.asarray(p), jnp.asarray(radius)
    n, d = p.shape[1:]
    if method == "auto" and d == 1:  # binary searches: fast at any n
        method = "sorted"
    if choose_method(method, n, n, d) == "brute":
        return _count_brute(p, radius, refs, metric, block)
    return _count_sorted(p, radius, refs, metric, d if dims is None else dims, k)
