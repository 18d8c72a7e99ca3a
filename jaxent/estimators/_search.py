"""Exact neighbour search and neighbour counts behind the kNN estimators.

Two methods give *identical* results (the same k smallest distances, with
multiplicity, and the same counts):

``"brute"``
  Every query row against every reference point, a block of rows at a time:
  time ``O(n m d)``, memory ``O(block)`` (about ``block`` coordinate
  differences at once).

``"sorted"``
  The reference points are sorted along one *key* coordinate (the one with the
  widest interquartile range, from a subsample). Any distance used here (the
  Euclidean distance squared, or the max-norm) is at least the distance along
  the key coordinate alone, computed with the same floating-point operations,
  and that distance only grows as one walks away from a query in sorted order.
  So each query visits candidates outward from its place in the sorted order,
  first ``window`` positions on each side for every row at once, and then, for
  the rows that are not yet finished, further blocks of ``block`` positions on
  each side (a fixed number of rows at a time, taken from a queue, inside one
  ``lax.while_loop``). A row is finished when the distance along the key
  coordinate to the nearest unvisited point on either side is at least its
  current k-th smallest distance (or its counting radius): nothing unvisited can
  then be closer. The test is exact in floating point, so the answer is the
  brute-force answer. Counts within a radius in one dimension use a binary
  search with the same exact comparison instead, ``O(n log n)``.

  Time is ``O(n log n)`` for the sort plus the candidates visited: about
  ``n (2 window + d)`` when neighbours are near in the key coordinate (always in
  one dimension, usually for the two dimensions of a KSG problem), growing like
  ``n^(2 - 1/d)`` for points filling ``d`` dimensions evenly, and reaching
  ``n^2`` only when nearly all points share the key coordinate's value
  (duplicated data; the chosen key avoids constant coordinates). Memory is
  ``O(n (d + k))``: the sorted copy, per-row state, and the queue.

Distances are combined coordinate by coordinate in a fixed order by
:func:`distance`, on both paths, so they are bitwise equal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import math

import jax
import jax.numpy as jnp

# Largest k found by repeated argmin; beyond it, jax.lax.top_k.
MAX_PASSES = 16

# "sorted" method: offsets visited for every row at once, in steps of _GROUP offsets.
_GROUP = 4
# Strips: the query's own and _STRIP_RADIUS on each side; width and window factors.
_STRIP_RADIUS = 1
_STRIP_WIDTH = 2.0
_STRIP_WINDOW = 2.0
# Candidates merged into a k-smallest list one by one (beyond: by argmin passes).
_INSERT = 16
# Rows swept at once after the first window, and positions per side per sweep step.
# A row that needs the whole sorted order (an outlier far from all others along every
# coordinate but the key) takes m / _BLOCK steps of _SLOTS * 2 * _BLOCK candidates.
_SLOTS = 128
_BLOCK = 128

METHODS = ("auto", "sorted", "brute")


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def choose_method(method: str, n: int, m: int, d: int) -> str:
    """``"brute"`` or ``"sorted"`` for ``n`` queries against ``m`` points in ``d`` dims.

    On CPU brute force wins only for small problems (below a few hundred points);
    on accelerators, where it runs as dense tiles, below about 4096. In many
    dimensions the sorted sweep visits most points anyway, so brute force is used
    beyond 8 dimensions.
    """
    if method != "auto":
        return method
    small = 512 if jax.default_backend() == "cpu" else 4096
    return "brute" if min(n, m) <= small or d > 8 else "sorted"


def _term(a: jax.Array, b: jax.Array, metric: str) -> jax.Array:
    diff = a - b
    return diff * diff if metric == "sqeuclidean" else jnp.abs(diff)


def distance(a: jax.Array, b: jax.Array, metric: str) -> jax.Array:
    """Distance between points ``a [..., d]`` and ``b [..., d]`` (broadcast).

    ``metric`` is ``"sqeuclidean"`` (squared Euclidean: the squared coordinate
    differences added in coordinate order) or ``"max"`` (the max-norm).
    """
    out = _term(a[..., 0], b[..., 0], metric)
    for c in range(1, a.shape[-1]):
        t = _term(a[..., c], b[..., c], metric)
        out = out + t if metric == "sqeuclidean" else jnp.maximum(out, t)
    return out


def smallest(vals: jax.Array, idx: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """The ``k`` smallest of ``vals [..., c]`` (ties keep their multiplicity), ascending,
    with the matching entries of ``idx``."""
    if k > MAX_PASSES:
        neg, pos = jax.lax.top_k(-vals, k)
        return -neg, jnp.take_along_axis(idx, pos, axis=-1)
    col = jnp.arange(vals.shape[-1], dtype=jnp.int32)
    out_v, out_i = [], []
    for p in range(k):
        j = jnp.argmin(vals, axis=-1, keepdims=True)
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


def _count_brute(p, radius, metric, block):
    n = p.shape[1]
    col = jnp.arange(n, dtype=jnp.int32)

    def row(pi, ri, i, ps):
        inside = (distance(pi, ps, metric) < ri) & (col != i)
        return jnp.sum(inside, dtype=jnp.int32)

    return _rowwise(row, (p, radius), (p,), block)


# --------------------------------------------------------------------------- sorted sweep


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
    sub = jnp.sort(r[:, ::stride], axis=1)
    size = sub.shape[1]
    iqr = sub[:, (3 * size) // 4] - sub[:, size // 4]
    full = jnp.max(r, axis=1) - jnp.min(r, axis=1)
    score = jnp.where(jnp.max(iqr, axis=-1, keepdims=True) > 0, iqr, full)
    return jnp.argsort(-score, axis=-1, stable=True)[:, :count].astype(jnp.int32)


def _take(a: jax.Array, key: jax.Array) -> jax.Array:
    """``a[b, :, key[b]]`` for ``a [N, m, d]``: ``[N, m]``."""
    return jnp.take_along_axis(a, key[:, None, None], axis=-1)[..., 0]


def _rows_of(shape: tuple[int, ...]) -> jax.Array:
    """The problem index ``b`` of every entry of an ``[N, ...]`` array."""
    return jax.lax.broadcasted_iota(jnp.int32, shape, 0)


def _sort_along(r: jax.Array, key: jax.Array, groups: jax.Array | None = None):
    """``r [N, m, d]`` sorted along coordinate ``key [N]`` (within contiguous groups).

    Returns ``(order, rank, pts, keys)``: the original index at each sorted
    position, the sorted position of each original point, the sorted points and
    their key values.
    """
    N, m, _ = r.shape
    rkey = _take(r, key)
    order = jnp.argsort(rkey, axis=1, stable=True).astype(jnp.int32)
    if groups is not None:
        g = jnp.take_along_axis(groups, order, axis=1)
        order = jnp.take_along_axis(order, jnp.argsort(g, axis=1, stable=True), axis=1)
    rank = jnp.zeros_like(order).at[_rows_of((N, m)), order].set(
        jax.lax.broadcasted_iota(jnp.int32, (N, m), 1)
    )
    pts = jnp.take_along_axis(r, order[..., None], axis=1)
    return order, rank, pts, jnp.take_along_axis(rkey, order, axis=1)


def _sweep(
    q, qkey, order, pts, keys, left0, right0, lo, hi, acc, update, threshold, metric,
    *, window: int, drain: bool = True,
):
    """Candidates visited outward from each query's place among sorted references.

    ``q [N, n, d]`` queries with key values ``qkey [N, n]``; references sorted by
    key: ``pts [N, m, d]``, ``keys [N, m]``, with original indices ``order``. Per
    query, the first candidate positions on the left and right,
    ``left0``/``right0 [N, n]``, and the valid positions ``[lo, hi)``. ``acc`` is
    a pytree of accumulators ``[N, n, ...]``; ``update(acc, dist [..., c], index
    [..., c])`` folds in candidates (invalid ones at distance ``inf``, ``index``
    the original reference index) and ``threshold(acc)`` is the distance below
    which unvisited points would still matter. The first ``window`` offsets are visited by every row at once; with ``drain``,
    the rows not finished then are swept further, ``_SLOTS`` at a time.
    """
    N, n, d = q.shape
    m = pts.shape[1]
    flat_pts, flat_keys, flat_order = pts.reshape(-1, d), keys.reshape(-1), order.reshape(-1)

    def visit(rows, t, q, qkey, left0, right0, lo, hi):
        pos = jnp.concatenate([left0[..., None] - t, right0[..., None] + t], axis=-1)
        valid = (pos >= lo[..., None]) & (pos < hi[..., None])
        flat = rows[..., None] * m + jnp.clip(pos, 0, m - 1)
        dist = distance(q[..., None, :], flat_pts[flat], metric)
        return jnp.where(valid, dist, jnp.inf), flat_order[flat]

    def gap(rows, t, qkey, left0, right0, lo, hi):
        """Key distance to the nearest unvisited candidate, ``t`` offsets out."""
        pl, pr = left0 - t, right0 + t
        kl = flat_keys[rows * m + jnp.clip(pl, 0, m - 1)]
        kr = flat_keys[rows * m + jnp.clip(pr, 0, m - 1)]
        gl = jnp.where(pl >= lo, _term(qkey, kl, metric), jnp.inf)
        gr = jnp.where(pr < hi, _term(qkey, kr, metric), jnp.inf)
        return jnp.minimum(gl, gr)

    rows = _rows_of((N, n))
    per_row = (q, qkey, left0, right0, lo, hi)
    steps = -(-window // _GROUP)
    if steps:

        def window_step(s, acc):
            t = s * _GROUP + jnp.arange(_GROUP, dtype=jnp.int32)
            return update(acc, *visit(rows, t, *per_row))

        acc = jax.lax.fori_loop(0, steps, window_step, acc)
    reach = steps * _GROUP
    if not drain:
        return acc
    finished = threshold(acc) <= gap(rows, reach, *per_row[1:])

    # The unfinished rows, in a queue, swept further _SLOTS at a time.
    size = N * n
    acc = jax.tree.map(lambda a: a.reshape((size,) + a.shape[2:]), acc)
    todo = (~finished).reshape(-1)
    total = jnp.sum(todo, dtype=jnp.int32)
    queue = jnp.nonzero(todo, size=size, fill_value=0)[0].astype(jnp.int32)
    per_row = [a.reshape((size,) + a.shape[2:]) for a in per_row]
    slots = min(_SLOTS, size)
    empty = jnp.int32(-1)

    def refill(state):
        acc, slot_row, slot_t, slot_acc, cursor = state
        free = slot_row < 0
        take = cursor + jnp.cumsum(free, dtype=jnp.int32) - 1
        fresh = free & (take < total)
        row = jnp.where(fresh, queue[jnp.clip(take, 0, size - 1)], slot_row)
        safe = jnp.maximum(row, 0)
        slot_acc = jax.tree.map(lambda g, s: jnp.where(_bcast(fresh, s), g[safe], s), acc, slot_acc)
        slot_t = jnp.where(fresh, reach, slot_t)
        cursor = jnp.minimum(cursor + jnp.sum(free, dtype=jnp.int32), total)
        return acc, row, slot_t, slot_acc, cursor

    def step(state):
        acc, slot_row, slot_t, slot_acc, cursor = state
        safe = jnp.maximum(slot_row, 0)
        row_data = [a[safe] for a in per_row]
        prob = safe // n
        t = slot_t[:, None] + jnp.arange(_BLOCK, dtype=jnp.int32)
        slot_acc = update(slot_acc, *visit(prob, t, *row_data))
        slot_t = slot_t + _BLOCK
        fin = (slot_row >= 0) & (threshold(slot_acc) <= gap(prob, slot_t, *row_data[1:]))
        dest = jnp.where(fin, slot_row, size)
        acc = jax.tree.map(lambda g, s: g.at[dest].set(s, mode="drop"), acc, slot_acc)
        return refill((acc, jnp.where(fin, empty, slot_row), slot_t, slot_acc, cursor))

    state = (
        acc,
        jnp.full(slots, empty),
        jnp.zeros(slots, jnp.int32),
        jax.tree.map(lambda g: jnp.zeros((slots,) + g.shape[1:], g.dtype), acc),
        jnp.int32(0),
    )
    state = jax.lax.while_loop(
        lambda s: (s[4] < total) | jnp.any(s[1] >= 0), step, refill(state)
    )
    return jax.tree.map(lambda a: a.reshape((N, n) + a.shape[1:]), state[0])


def _bcast(mask: jax.Array, like: jax.Array) -> jax.Array:
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def _bisect(n: int, pred: Callable[[jax.Array], jax.Array], shape) -> jax.Array:
    """First position ``p`` in ``[0, n]`` where the monotone ``pred(p)`` holds, per entry."""
    lo = jnp.zeros(shape, jnp.int32)
    hi = jnp.full(shape, n, jnp.int32)

    def step(_, bounds):
        lo, hi = bounds
        mid = (lo + hi) // 2
        ok = pred(jnp.minimum(mid, n - 1)) & (lo < hi)
        return jnp.where(ok | (lo >= hi), lo, mid + 1), jnp.where(ok, mid, hi)

    return jax.lax.fori_loop(0, max(1, n.bit_length()), step, (lo, hi))[0]


def _strip_shape(m: int, dims: int, k: int) -> tuple[int, int]:
    """Points per strip and window per side for points filling ``dims`` dimensions.

    With ``k`` points within the k-th neighbour distance ``eps``, a strip of
    ``2 m^(1 - 1/dims) k^(1/dims)`` points is a few ``eps`` wide along its first
    key coordinate, and holds about ``2 m^(1 - 2/dims) k^(2/dims)`` points within
    ``eps`` of a query along the second; the window takes twice that.
    """
    dims = max(dims, 2)
    strip = math.ceil(_STRIP_WIDTH * m ** (1 - 1 / dims) * k ** (1 / dims))
    strip = min(max(strip, 8), m)
    reach = _STRIP_WIDTH * m ** (1 - 2 / dims) * k ** (2 / dims)
    window = _GROUP * math.ceil((_STRIP_WINDOW * reach + k + 2) / _GROUP)
    return strip, min(window, strip)


class _Strips(NamedTuple):
    """References split into strips of consecutive points along the first key
    coordinate, each strip sorted along the second (see :func:`_strips`)."""

    pts: jax.Array  # [N, S * s, d] strip after strip; padding (index m) last in each
    bkey: jax.Array  # [N, S * s] second key, inf for padding
    idx: jax.Array  # [N, S * s] original index, m for padding
    a_sorted: jax.Array  # [N, m] first key, ascending
    rank: jax.Array  # [N, m] position of each reference along the first key
    strip: int  # points per strip s


def _strips(r: jax.Array, keys: jax.Array, strip: int) -> _Strips:
    """Sorts ``r [N, m, d]`` along ``keys[:, 0]``, cuts it into strips of ``strip``
    points and sorts each strip along ``keys[:, 1]``."""
    N, m, d = r.shape
    S = -(-m // strip)
    ra, rb = _take(r, keys[:, 0]), _take(r, keys[:, 1])
    order = jnp.argsort(ra, axis=1, stable=True).astype(jnp.int32)
    rank = jnp.zeros_like(order).at[_rows_of((N, m)), order].set(
        jax.lax.broadcasted_iota(jnp.int32, (N, m), 1)
    )
    idx = jnp.concatenate([order, jnp.full((N, S * strip - m), m, jnp.int32)], axis=1)
    b = jnp.take_along_axis(rb, jnp.minimum(idx, m - 1), axis=1)
    b = jnp.where(idx < m, b, jnp.inf).reshape(N, S, strip)
    ob = jnp.argsort(b, axis=-1, stable=True)
    idx = jnp.take_along_axis(idx.reshape(N, S, strip), ob, axis=-1).reshape(N, -1)
    bkey = jnp.take_along_axis(b, ob, axis=-1).reshape(N, -1)
    pts = jnp.take_along_axis(r, jnp.minimum(idx, m - 1)[..., None], axis=1)
    return _Strips(pts, bkey, idx, jnp.take_along_axis(ra, order, axis=1), rank, strip)


def _run_bounds(n, at, v, radius, metric, shape):
    """``[first, last)``: the run of a sorted array (``at(p)``, ``n`` entries) whose
    ``term(v, .)`` is at most ``radius`` (an exact, monotone comparison)."""
    first = _bisect(n, lambda p: (at(p) >= v) | (_term(v, at(p), metric) <= radius), shape)
    last = _bisect(n, lambda p: (at(p) > v) & ~(_term(at(p), v, metric) <= radius), shape)
    return first, last


def _strip_window(q, qa, qb, home, self_index, L: _Strips, acc, update, threshold, metric, window):
    """Visits, for each query, ``window`` points on each side of it along the second
    key in its own strip and in the strips on either side; returns ``acc`` and which
    rows are finished (nothing unvisited closer than their threshold)."""
    N, n, d = q.shape
    m, s = L.a_sorted.shape[1], L.strip
    S = L.bkey.shape[1] // s
    flat_pts, flat_b, flat_idx = L.pts.reshape(-1, d), L.bkey.reshape(-1), L.idx.reshape(-1)
    rows = _rows_of((N, n))
    steps = -(-window // _GROUP)
    gap = jnp.full((N, n), jnp.inf, q.dtype)
    for shift in range(-_STRIP_RADIUS, _STRIP_RADIUS + 1):
        t = home + shift
        inside = (t >= 0) & (t < S)
        base = (rows * S + jnp.clip(t, 0, S - 1)) * s
        # The query's place in strip t along the second key.
        pos = _bisect(s, lambda p, base=base: flat_b[base + p] >= qb, (N, n))

        def window_step(step, acc, base=base, pos=pos, inside=inside):
            u = step * _GROUP + jnp.arange(_GROUP, dtype=jnp.int32)
            p = jnp.concatenate([pos[..., None] - 1 - u, pos[..., None] + u], axis=-1)
            flat = base[..., None] + jnp.clip(p, 0, s - 1)
            j = flat_idx[flat]
            valid = inside[..., None] & (p >= 0) & (p < s) & (j < m)
            valid &= j != self_index[..., None]
            dist = distance(q[..., None, :], flat_pts[flat], metric)
            return update(acc, jnp.where(valid, dist, jnp.inf), j)

        acc = jax.lax.fori_loop(0, steps, window_step, acc)
        for p in (pos - 1 - steps * _GROUP, pos + steps * _GROUP):
            edge = _term(qb, flat_b[base + jnp.clip(p, 0, s - 1)], metric)
            gap = jnp.minimum(gap, jnp.where(inside & (p >= 0) & (p < s), edge, jnp.inf))
    # Strips further out: every point there is at least this far along the first key.
    flat_a = L.a_sorted.reshape(-1)
    left, right = home - _STRIP_RADIUS - 1, home + _STRIP_RADIUS + 1
    gl = _term(qa, flat_a[rows * m + jnp.clip(left * s + s - 1, 0, m - 1)], metric)
    gr = _term(qa, flat_a[rows * m + jnp.clip(right * s, 0, m - 1)], metric)
    gap = jnp.minimum(gap, jnp.where(left >= 0, gl, jnp.inf))
    gap = jnp.minimum(gap, jnp.where(right < S, gr, jnp.inf))
    return acc, threshold(acc) <= gap


def _strip_boxes(q, qa, qb, self_index, L: _Strips, acc, update, radius, todo, metric):
    """For the rows in ``todo``, visits every reference whose distance along both keys
    is at most ``radius`` (a box: a run of strips, and a run of each strip), ``_SLOTS``
    rows at a time, ``_BLOCK`` positions per row per step; other rows keep ``acc``."""
    N, n, d = q.shape
    m, s = L.a_sorted.shape[1], L.strip
    S = L.bkey.shape[1] // s
    flat_pts, flat_b, flat_idx = L.pts.reshape(-1, d), L.bkey.reshape(-1), L.idx.reshape(-1)
    flat_a = L.a_sorted.reshape(-1)
    size = N * n
    flat = lambda a: a.reshape((size,) + a.shape[2:])  # noqa: E731
    acc = jax.tree.map(flat, acc)
    q, qa, qb, self_index, radius = map(flat, (q, qa, qb, self_index, radius))
    todo = todo.reshape(-1)
    total = jnp.sum(todo, dtype=jnp.int32)
    queue = jnp.nonzero(todo, size=size, fill_value=0)[0].astype(jnp.int32)
    slots = min(_SLOTS, size)

    def strip_run(row, t):
        """Positions of strip ``t`` (of each slot's row) within the box: ``[first, last)``."""
        base = ((row // n) * S + jnp.clip(t, 0, S - 1)) * s
        return _run_bounds(
            s, lambda p: flat_b[base + p], qb[row], radius[row], metric, row.shape
        )

    def refill(state):
        acc, row, t, p, end, t_end, slot_acc, cursor = state
        free = row < 0
        take = cursor + jnp.cumsum(free, dtype=jnp.int32) - 1
        fresh = free & (take < total)
        row = jnp.where(fresh, queue[jnp.clip(take, 0, size - 1)], row)
        safe = jnp.maximum(row, 0)
        base = (safe // n) * m
        first, last = _run_bounds(
            m, lambda i: flat_a[base + i], qa[safe], radius[safe], metric, row.shape
        )
        t0 = jnp.where(fresh, first // s, t)
        t_end = jnp.where(fresh, jnp.where(last > first, (last - 1) // s, t0 - 1), t_end)
        p0, end0 = strip_run(safe, t0)
        t, p, end = t0, jnp.where(fresh, p0, p), jnp.where(fresh, end0, end)
        slot_acc = jax.tree.map(lambda g, a: jnp.where(_bcast(fresh, a), g[safe], a), acc, slot_acc)
        cursor = jnp.minimum(cursor + jnp.sum(free, dtype=jnp.int32), total)
        return acc, row, t, p, end, t_end, slot_acc, cursor

    def step(state):
        acc, row, t, p, end, t_end, slot_acc, cursor = state
        safe = jnp.maximum(row, 0)
        pos = p[:, None] + jnp.arange(_BLOCK, dtype=jnp.int32)
        cand = ((safe // n) * S + jnp.clip(t, 0, S - 1))[:, None] * s + jnp.clip(pos, 0, s - 1)
        j = flat_idx[cand]
        valid = (row >= 0)[:, None] & (t <= t_end)[:, None] & (pos < end[:, None]) & (j < m)
        valid &= j != self_index[safe][:, None]
        dist = distance(q[safe][:, None, :], flat_pts[cand], metric)
        slot_acc = update(slot_acc, jnp.where(valid, dist, jnp.inf), j)
        p = p + _BLOCK
        # Past the end of this strip's run: the next strip's run.
        move = p >= end
        t = jnp.where(move, t + 1, t)
        p1, end1 = strip_run(safe, t)
        p, end = jnp.where(move, p1, p), jnp.where(move, end1, end)
        fin = (row >= 0) & (t > t_end)
        dest = jnp.where(fin, row, size)
        acc = jax.tree.map(lambda g, a: g.at[dest].set(a, mode="drop"), acc, slot_acc)
        row = jnp.where(fin, -1, row)
        return refill((acc, row, t, p, end, t_end, slot_acc, cursor))

    zeros = jnp.zeros(slots, jnp.int32)
    state = (
        acc, jnp.full(slots, -1, jnp.int32), zeros, zeros, zeros, zeros,
        jax.tree.map(lambda g: jnp.zeros((slots,) + g.shape[1:], g.dtype), acc),
        jnp.int32(0),
    )
    state = jax.lax.while_loop(
        lambda st: (st[7] < total) | jnp.any(st[1] >= 0), step, refill(state)
    )
    return jax.tree.map(lambda a: a.reshape((N, n) + a.shape[1:]), state[0])


def _search_sorted(
    q, r, acc, update, threshold, metric, *, exclude_self, groups, dims, k, box_radius=None
):
    """Runs the accumulator over the candidates that matter, exactly (see the module).

    ``box_radius(acc)`` (default ``threshold``): for the rows the strips do not
    settle, the radius of the box searched afresh.
    """
    N, n, d = q.shape
    m = r.shape[1]
    keys = _key_coordinates(r, min(d, 2))
    if exclude_self:
        self_index = jax.lax.broadcasted_iota(jnp.int32, (N, n), 1)
    else:
        self_index = jnp.full((N, n), -1, jnp.int32)
    if d >= 2 and groups is None:
        strip, window = _strip_shape(m, dims, k)
        L = _strips(r, keys, strip)
        qa, qb = _take(q, keys[:, 0]), _take(q, keys[:, 1])
        if exclude_self:  # the query's own strip, by its position along the first key
            home = L.rank // strip
        else:
            pos = jax.vmap(jnp.searchsorted)(L.a_sorted, qa).astype(jnp.int32)
            home = jnp.minimum(pos // strip, -(-m // strip) - 1)
        fresh = acc
        acc, done = _strip_window(
            q, qa, qb, home, self_index, L, acc, update, threshold, metric, window
        )
        radius = (threshold if box_radius is None else box_radius)(acc)
        # Rows the strips did not settle: every point in the box their threshold spans.
        acc = jax.tree.map(lambda a, f: jnp.where(_bcast(done, a), a, f), acc, fresh)
        return _strip_boxes(q, qa, qb, self_index, L, acc, update, radius, ~done, metric)

    # Groups, or one dimension: along the first key.
    order, rank, pts, skeys = _sort_along(r, keys[:, 0], groups)
    qkey = _take(q, keys[:, 0])
    if exclude_self:
        left0, right0 = rank - 1, rank + 1
    else:
        pos = jax.vmap(jnp.searchsorted)(skeys, qkey).astype(jnp.int32)
        left0, right0 = pos - 1, pos
    if groups is None:
        lo, hi = jnp.zeros((N, n), jnp.int32), jnp.full((N, n), m, jnp.int32)
    else:  # self search: each row's group is a contiguous run of the sorted order
        g = jnp.take_along_axis(groups, order, axis=1)
        lo = jnp.take_along_axis(jax.vmap(_searchsorted("left"))(g, g), rank, axis=1)
        hi = jnp.take_along_axis(jax.vmap(_searchsorted("right"))(g, g), rank, axis=1)
    # In one dimension the k nearest lie within k positions on each side.
    return _sweep(
        q, qkey, order, pts, skeys, left0, right0, lo.astype(jnp.int32), hi.astype(jnp.int32),
        acc, update, threshold, metric, window=k if d == 1 else 2 * k + 6, drain=d > 1,
    )


def _searchsorted(side: str) -> Callable:
    return lambda a, v: jnp.searchsorted(a, v, side=side)


def _insert(vals, idx, v, j):
    """Inserts ``v`` (index ``j``) into the ascending ``vals [..., k]``, dropping the last."""
    prev_v = jnp.concatenate([jnp.full_like(vals[..., :1], -jnp.inf), vals[..., :-1]], -1)
    prev_i = jnp.concatenate([idx[..., :1], idx[..., :-1]], -1)
    keep = v[..., None] >= vals
    shift = v[..., None] < prev_v
    vals = jnp.where(keep, vals, jnp.where(shift, prev_v, v[..., None]))
    idx = jnp.where(keep, idx, jnp.where(shift, prev_i, j[..., None]))
    return vals, idx


def _knn_sorted(q, r, groups, k, metric, exclude_self):
    N, n, _ = q.shape

    def update(acc, dist, index):
        vals, idx = acc
        if dist.shape[-1] > _INSERT:
            return smallest(jnp.concatenate([vals, dist], -1), jnp.concatenate([idx, index], -1), k)
        for c in range(dist.shape[-1]):
            vals, idx = _insert(vals, idx, dist[..., c], index[..., c])
        return vals, idx

    acc = (jnp.full((N, n, k), jnp.inf, q.dtype), jnp.zeros((N, n, k), jnp.int32))
    vals, idx = _search_sorted(
        q, r, acc, update, lambda a: a[0][..., k - 1], metric,
        exclude_self=exclude_self, groups=groups, dims=q.shape[-1], k=k,
    )
    return vals, jnp.clip(idx, 0, r.shape[1] - 1)


def _count_sorted_1d(p, radius, metric):
    """Counts in one dimension: two binary searches with the exact comparison."""
    N, n, _ = p.shape
    s = jnp.sort(p[..., 0], axis=1).reshape(-1)
    v = p[..., 0]
    base = _rows_of((N, n)) * n

    def at(pos):
        return s[base + pos]

    # Positions p with term(s_p, v) < radius form one run [first, last) of the sorted order.
    first = _bisect(n, lambda q: (at(q) >= v) | (_term(v, at(q), metric) < radius), (N, n))
    last = _bisect(n, lambda q: (at(q) > v) & ~(_term(at(q), v, metric) < radius), (N, n))
    return jnp.where(radius > 0, last - first - 1, 0).astype(jnp.int32)


def _count_sorted(p, radius, metric, dims, k):
    N, n, d = p.shape
    if d == 1:
        return _count_sorted_1d(p, radius, metric)

    def update(acc, dist, index):
        count, r = acc
        return count + jnp.sum(dist < r[..., None], axis=-1, dtype=jnp.int32), r

    acc = (jnp.zeros((N, n), jnp.int32), radius)
    count, _ = _search_sorted(
        p, p, acc, update, lambda a: a[1], metric,
        exclude_self=True, groups=None, dims=dims, k=k,
    )
    return count


# --------------------------------------------------------------------------- entry points


def knn(
    q: jax.Array,
    r: jax.Array,
    k: int,
    *,
    metric: str,
    exclude_self: bool,
    method: str,
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
    metric: str,
    method: str,
    block: int,
    dims: int | None = None,
    k: int = 1,
) -> jax.Array:
    """``#{j != i : distance(p_i, p_j) < radius_i}`` for ``p [N, n, d]``, ``radius [N, n]``.

    ``radius`` is typically a k-th neighbour distance in a space of ``dims``
    dimensions containing this one (it sizes the windows of the sorted search).
    """
    p, radius = jnp.asarray(p), jnp.asarray(radius)
    n, d = p.shape[1:]
    if method == "auto" and d == 1:  # binary searches: fast at any n
        method = "sorted"
    if choose_method(method, n, n, d) == "brute":
        return _count_brute(p, radius, metric, block)
    return _count_sorted(p, radius, metric, d if dims is None else dims, k)
