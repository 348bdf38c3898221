"""Bounding boxes of thresholded score maps, at every threshold in one pass.

The WSOL benchmark protocol (MaxBoxAcc, MaxBoxAccV2) turns a class activation
map into boxes at many thresholds. Its reference implementation thresholds the
map once per threshold and asks OpenCV for every contour of the binary mask.
This module returns exactly the same boxes, and the IoUs of those boxes with
ground-truth boxes, for all thresholds together in one compiled pass.

Reference semantics
-------------------
For a score map ``s`` with values in ``[0, 1]``:

1. ``q = (s * 255).astype(np.uint8)`` (truncation) and ``m = q.max()``.
2. Each threshold ``tau`` gives the level ``L = int(tau * m)``; the foreground
   is ``q > L``.
3. ``cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)`` lists
   the outer border of every 8-connected foreground component and the border
   of every hole (4-connected background component not touching the image
   border).
4. Each contour becomes ``[x, y, min(x + w, W - 1), min(y + h, H - 1)]`` from
   ``cv2.boundingRect``; no contour at all gives the single box
   ``[0, 0, 0, 0]``.
5. The multi-contour protocol (V2) keeps every box; the largest-contour
   protocol (V1) keeps the box of the first contour of largest
   ``cv2.contourArea`` in OpenCV's output order.

Algorithm
---------
Superlevel sets ``{q > L}`` are nested, so one sweep over the pixels in
decreasing ``q`` with a union-find (8-connectivity) visits the foreground
components of every level; the boxes of the components alive at a level are
read off the active list. Contours map to pixel sets as follows (each fact is
checked against OpenCV by the test suite):

* The outer border of a component has the bounding box of its pixels.
* A hole border runs through the foreground pixels 4-adjacent to the hole, so
  its bounding rectangle is the hole's pixel box grown by one on every side.
* Let ``t`` be the level at which a pixel joins the background connected to
  the image border (minimax of ``q`` over 4-paths to the border, from a
  flood). The hole pixels at level ``L`` are ``q <= L < t``; a sweep in
  increasing ``q`` over the pixels with ``q < t`` (4-connectivity) yields the
  holes of every level. On smooth maps this set is small.
* A component is nested in a hole iff the pixel left of its first pixel (in
  raster order) is a hole pixel.
* ``cv2.contourArea`` of an outer border is the shoelace area of the polygon
  through pixel centres. It equals a sum over 2x2 pixel windows of the filled
  component (a full window counts 1, three pixels 1/2, else 0), which splits
  into a window area of the component itself (same rule), plus, for every
  hole inside, 1/2 per window holding one of its pixels and 1 per window
  holding more, plus the window areas of the components inside the holes.
  All of these are kept incrementally per component; a hole or nested
  component is credited to the top-level component found by walking left
  from its first pixel to the outside.
* Any contour nested in a component has a strictly smaller area, except a
  hole that ties with the border around it and is listed after it. So the
  V1 contour is a top-level component of largest area. OpenCV lists
  top-level contours in decreasing raster order of their first pixel, so
  among equal areas V1 takes the component whose first pixel comes last.

Only the distinct levels among ``int(tau * m)`` are evaluated: values are
mapped to bands between consecutive levels, and a whole band enters a sweep
at once. Quantisation and the first flood pass share one raster pass, the
second flood pass also bucket-sorts the pixels by band, and the priority
flood only visits the pixels those passes leave unsettled. The kernels are
compiled with numba and cached on disk.
"""

from __future__ import annotations

import os
from pathlib import Path

import numba
import numpy as np

from hideseek.threads import kept_torch_threads

__all__ = [
    "quantize",
    "threshold_levels",
    "boxes_at_thresholds",
    "max_iou_at_thresholds",
    "max_iou_at_thresholds_batch",
    "reference_boxes_at_thresholds",
    "reference_max_iou_at_thresholds",
    "iou_matrix",
]

_N_VALUES = 256



# ---------------------------------------------------------------------------
# Input validation and the reference quantisation
# ---------------------------------------------------------------------------


def _as_scoremap(scoremap) -> np.ndarray:
    """Return ``scoremap`` as a float64 2-D array after checking its shape."""
    s = np.asarray(scoremap)
    if s.ndim != 2:
        raise ValueError(f"score map must be 2-D, got shape {s.shape}")
    if s.size == 0:
        raise ValueError("score map is empty")
    if not (np.issubdtype(s.dtype, np.number) or s.dtype == np.bool_):
        raise ValueError(f"score map must be numeric, got dtype {s.dtype}")
    if (s.shape[0] + 2) * (s.shape[1] + 2) >= 2**31:
        raise ValueError(f"score map is too large, got shape {s.shape}")
    return np.asarray(s, dtype=np.float64)


def _check_values(s: np.ndarray) -> None:
    """Raise the ValueError that explains why ``s`` is not within [0, 1]."""
    if not np.isfinite(s).all():
        raise ValueError("score map contains NaN or infinite values")
    raise ValueError(f"score map values must lie in [0, 1], got [{s.min()}, {s.max()}]")


@numba.njit(cache=True)
def _quantize_kernel(s):
    """``(s * 255)`` truncated to uint8, and whether all of ``s`` is in [0, 1]."""
    H, W = s.shape
    q = np.empty((H, W), np.uint8)
    valid = True
    for r in range(H):
        for c in range(W):
            x = s[r, c]
            if not (0.0 <= x <= 1.0):  # also false for NaN
                valid = False
                x = 0.0
            q[r, c] = np.uint8(x * 255.0)
    return q, valid


def _as_thresholds(thresholds) -> np.ndarray:
    """Return ``thresholds`` as a float64 1-D array within ``[0, 1]``."""
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"thresholds must be a non-empty 1-D sequence, got shape {t.shape}")
    if not np.isfinite(t).all() or t.min() < 0.0 or t.max() > 1.0:
        raise ValueError("thresholds must be finite and lie in [0, 1]")
    return t


def _as_gt_boxes(gt_boxes) -> np.ndarray:
    """Return ground-truth boxes as an int64 ``(G, 4)`` array, ``G >= 1``."""
    g = np.asarray(gt_boxes)
    if g.ndim == 1 and g.size == 4:
        g = g[None, :]
    if g.ndim != 2 or g.shape[1] != 4 or g.shape[0] == 0:
        raise ValueError(f"gt_boxes must have shape (G, 4) with G >= 1, got {g.shape}")
    if not np.issubdtype(g.dtype, np.integer):
        if not np.isfinite(g).all() or not np.array_equal(g, np.round(g)):
            raise ValueError("gt_boxes must hold integer pixel coordinates")
    return g.astype(np.int64)


def quantize(scoremap: np.ndarray) -> np.ndarray:
    """Quantise a score map to uint8 exactly as the reference protocol does.

    Parameters
    ----------
    scoremap : array_like, shape (H, W)
        Scores in ``[0, 1]``; converted to float64 first.

    Returns
    -------
    numpy.ndarray of uint8, shape (H, W)
        ``(scoremap * 255).astype(np.uint8)``, i.e. truncated.

    Raises
    ------
    ValueError
        If the map is not 2-D, not finite, or has values outside ``[0, 1]``.
    """
    s = _as_scoremap(scoremap)
    q, valid = _quantize_kernel(s)
    if not valid:
        _check_values(s)
    return q


def threshold_levels(q_max: int, thresholds) -> np.ndarray:
    """Integer levels ``int(tau * q_max)`` for each threshold ``tau``.

    Parameters
    ----------
    q_max : int
        Maximum of the quantised map.
    thresholds : array_like, shape (T,)
        Thresholds in ``[0, 1]``.

    Returns
    -------
    numpy.ndarray of int64, shape (T,)
        Levels; the foreground at threshold ``tau`` is ``q > level``. The
        float64 product and truncation match Python's ``int(tau * q_max)``.
    """
    return (_as_thresholds(thresholds) * int(q_max)).astype(np.int64)


# ---------------------------------------------------------------------------
# Neighbourhood tables
# ---------------------------------------------------------------------------

# The eight neighbours of a pixel, clockwise from north; bit b of a "ring
# mask" says whether neighbour b belongs to the set being grown.
_RING_DR = np.array([-1, -1, 0, 1, 1, 1, 0, -1], np.int64)
_RING_DC = np.array([0, 1, 1, 1, 0, -1, -1, -1], np.int64)
# The four 2x2 windows containing the centre pixel, as their other three pixels.
_WINDOWS = ((7, 0, 6), (0, 1, 2), (2, 3, 4), (4, 5, 6))


def _ring_tables():
    """Per ring mask: one neighbour of each 8-connected group, and area gains.

    Set neighbours that are 8-adjacent to each other already share a
    component, so a new pixel needs one union per group of the ring. The
    group holding the west neighbour, if set, comes first.
    ``gain_fg`` is twice the increase of the window area of a foreground set
    when the centre joins (a window holding 2 or 3 set pixels gains 1/2);
    ``gain_bg`` is the same for a hole, where each window holding at most one
    other hole pixel gains 1/2.
    """
    reps = np.zeros((256, 4), np.int64)
    n_reps = np.zeros(256, np.int64)
    gain_fg = np.zeros(256, np.int64)
    gain_bg = np.zeros(256, np.int64)
    for mask in range(256):
        members = [b for b in (6, 7, 0, 1, 2, 3, 4, 5) if mask >> b & 1]
        seen = set()
        for b in members:
            if b in seen:
                continue
            reps[mask, n_reps[mask]] = b
            n_reps[mask] += 1
            stack = [b]
            seen.add(b)
            while stack:
                a = stack.pop()
                for o in members:
                    near = max(abs(_RING_DR[a] - _RING_DR[o]), abs(_RING_DC[a] - _RING_DC[o])) == 1
                    if near and o not in seen:
                        seen.add(o)
                        stack.append(o)
        counts = [sum(mask >> b & 1 for b in window) for window in _WINDOWS]
        gain_fg[mask] = sum(k >= 2 for k in counts)
        gain_bg[mask] = sum(k <= 1 for k in counts)
    return reps, n_reps, gain_fg, gain_bg


_RING_REPS, _RING_N_REPS, _GAIN_FG, _GAIN_BG = _ring_tables()

# Columns of the component table (one row per component id).
# The top row of a component is the row of its first pixel, so it is not kept.
_SIZE, _SLOT, _X0, _X1, _Y1, _AREA2, _FIRST, _EXTRA = range(8)


# ---------------------------------------------------------------------------
# Compiled building blocks
# ---------------------------------------------------------------------------
#
# Pixels live on the map padded by one pixel on every side (padded index
# P = (r + 1) * (W + 2) + c + 1), so neighbour lookups need no bounds checks
# and padded indices keep raster order. Sorted pixel lists hold packed
# coordinates ``r << 32 | c``.
#
# The sweeps work on bands rather than values. With the sorted distinct
# levels L_0 < ... < L_{K-1}, the band of a value v is the number of levels
# below v, so the foreground at level index k is exactly ``band > k`` and the
# state of a sweep only has to be right after whole bands have entered.


@numba.njit(cache=True)
def _put_value(qp, t, hist, P, Wp, v):
    """Store value ``v`` of padded pixel ``P`` and take the first flood pass.

    ``t[P] = max(v, min(t[north], t[west]))``: an upper bound of the border
    level (see :func:`_flood_backward`), exact wherever it equals ``v``.
    """
    qp[P] = v
    t[P] = max(v, min(t[P - Wp], t[P - 1]))
    hist[v] += 1


@numba.njit(cache=True)
def _pad_scores(s):
    """Quantise a float map onto the padded grid (first flood pass included).

    Returns the padded values, the flood bound, the value histogram and
    whether all of ``s`` lies in [0, 1] (values outside count as 0 here).
    """
    H, W = s.shape
    Wp = W + 2
    qp = np.zeros((H + 2) * Wp, np.uint8)
    t = np.zeros((H + 2) * Wp, np.uint8)
    hist = np.zeros(_N_VALUES, np.int64)
    valid = True
    for r in range(H):
        for c in range(W):
            x = s[r, c]
            if not (0.0 <= x <= 1.0):  # also false for NaN
                valid = False
                x = 0.0
            _put_value(qp, t, hist, (r + 1) * Wp + c + 1, Wp, np.uint8(x * 255.0))
    return qp, t, hist, valid


@numba.njit(cache=True)
def _pad_quantized(q):
    """:func:`_pad_scores` for a map that is already quantised (uint8)."""
    H, W = q.shape
    Wp = W + 2
    qp = np.zeros((H + 2) * Wp, np.uint8)
    t = np.zeros((H + 2) * Wp, np.uint8)
    hist = np.zeros(_N_VALUES, np.int64)
    for r in range(H):
        for c in range(W):
            _put_value(qp, t, hist, (r + 1) * Wp + c + 1, Wp, q[r, c])
    return qp, t, hist


@numba.njit(cache=True)
def _distinct_levels(hist, taus):
    """Sorted distinct levels ``int(tau * m)``, each threshold's index, bands.

    ``m`` is the largest value present. ``lut[v]`` is the band of value ``v``.
    """
    m = 0
    for v in range(_N_VALUES):
        if hist[v]:
            m = v
    tau_levels = np.empty(taus.size, np.int64)
    for i in range(taus.size):
        tau_levels[i] = np.int64(taus[i] * m)
    levels = np.unique(tau_levels)
    index = np.searchsorted(levels, tau_levels)
    lut = np.empty(_N_VALUES, np.uint8)
    b = 0
    for v in range(_N_VALUES):
        while b < levels.size and levels[b] < v:
            b += 1
        lut[v] = b
    return levels, index, lut


@numba.njit(cache=True)
def _flood_backward(qp, t, lut, hist, K, H, W):
    """Second flood pass, bands, and the foreground pixels sorted by band.

    The border level ``t`` of a pixel is the minimum, over 4-connected paths
    to the image border, of the largest value on the path: at level ``L`` a
    pixel is background connected to the border iff ``t <= L``, and the
    pixels with ``q <= L < t`` are exactly the hole pixels. The forward pass
    (:func:`_put_value`) and this backward pass give an upper bound that is
    already exact wherever it equals ``q``; the other pixels are returned as
    ``unsettled`` (decreasing padded index) for :func:`_settle_pockets`.

    Returns ``tband`` (padded, the band of the bound; 0 on the padding),
    ``order`` (packed coordinates of the pixels of band >= 1, by band
    and in raster order within a band), ``starts`` (band ``b`` is
    ``order[starts[b]:starts[b + 1]]``), ``unsettled`` and its length.
    """
    Wp = W + 2
    n = (H + 2) * Wp
    starts = np.zeros(K + 2, np.int64)
    for v in range(_N_VALUES):
        if lut[v]:
            starts[lut[v] + 1] += hist[v]
    for b in range(K + 1):
        starts[b + 1] += starts[b]
    ends = starts[1:].copy()  # ends[b] = starts[b + 1]; buckets fill backwards
    order = np.empty(starts[K + 1], np.int64)
    tband = np.zeros(n, np.uint8)
    unsettled = np.empty(H * W, np.int32)
    n_unsettled = 0
    for r in range(H - 1, -1, -1):
        for c in range(W - 1, -1, -1):
            P = (r + 1) * Wp + c + 1
            v = qp[P]
            tv = max(v, min(t[P], t[P + Wp], t[P + 1]))
            t[P] = tv
            b = lut[v]
            tband[P] = lut[tv]
            if tv != v:
                unsettled[n_unsettled] = P
                n_unsettled += 1
            if b:
                ends[b] -= 1
                order[ends[b]] = r << 32 | c
    return tband, order, starts, unsettled, n_unsettled


@numba.njit(cache=True)
def _settle_pockets(qp, t, tband, lut, unsettled, n_unsettled, Wp):
    """Exact border levels of the unsettled pixels (priority flood).

    Settled neighbours of unsettled pixels seed a bucket queue; each
    unsettled pixel gets ``max(q, level)`` of the pixel that reaches it
    first. Updates ``t`` and ``tband`` in place.
    """
    state = np.zeros(t.size, np.uint8)  # 1: unsettled, 2: queued
    for i in range(n_unsettled):
        state[unsettled[i]] = 1
    head = np.full(_N_VALUES, -1, np.int32)
    nxt = np.empty(t.size, np.int32)
    for i in range(n_unsettled):
        P = unsettled[i]
        for m in (P - Wp, P + Wp, P - 1, P + 1):
            if state[m] == 0:
                state[m] = 2
                nxt[m] = head[t[m]]
                head[t[m]] = m
    for level in range(_N_VALUES):
        while head[level] != -1:
            P = head[level]
            head[level] = nxt[P]
            for m in (P - Wp, P + Wp, P - 1, P + 1):
                if state[m] == 1:
                    state[m] = 2
                    tm = max(qp[m], level)
                    t[m] = tm
                    tband[m] = lut[tm]
                    nxt[m] = head[tm]
                    head[tm] = m


@numba.njit(cache=True)
def _sort_hole_pixels(qp, tband, lut, unsettled, n_unsettled, K, W):
    """Pixels that are hole pixels at some level (``band < tband``), by band.

    Hole pixels are unsettled, so only those are scanned. Returns packed
    coordinates in raster order within a band and ``starts`` (band ``b`` is
    ``order[starts[b]:starts[b + 1]]``).
    """
    Wp = W + 2
    starts = np.zeros(K + 2, np.int64)
    for i in range(n_unsettled):
        P = unsettled[i]
        if lut[qp[P]] < tband[P]:
            starts[lut[qp[P]] + 1] += 1
    for b in range(K + 1):
        starts[b + 1] += starts[b]
    ends = starts[1:].copy()
    order = np.empty(starts[K + 1], np.int64)
    for i in range(n_unsettled):  # decreasing raster order
        P = unsettled[i]
        b = lut[qp[P]]
        if b < tband[P]:
            ends[b] -= 1
            order[ends[b]] = (P // Wp - 1) << 32 | (P % Wp - 1)
    return order, starts


@numba.njit(cache=True)
def _ring_mask(inset, P, Wp):
    """Ring mask of the set neighbours of padded pixel ``P``."""
    return (
        inset[P - Wp]
        | inset[P - Wp + 1] << 1
        | inset[P + 1] << 2
        | inset[P + Wp + 1] << 3
        | inset[P + Wp] << 4
        | inset[P + Wp - 1] << 5
        | inset[P - 1] << 6
        | inset[P - Wp - 1] << 7
    )


@numba.njit(cache=True)
def _new_forest(n_padded, n_pixels):
    """Empty union-find over the padded grid.

    Returns ``parent`` (a pixel's parent pixel; a root holds ``~id`` of its
    component), the component table (one row per component id), the list of
    active component ids, membership flags, and ``counts`` =
    ``[active components, components ever made]``.
    """
    return (
        np.empty(n_padded, np.int32),
        np.empty((max(n_pixels, 1), 8), np.int32),
        np.empty(max(n_pixels, 1), np.int32),
        np.zeros(n_padded, np.uint8),
        np.zeros(2, np.int64),
    )


@numba.njit(cache=True)
def _find(parent, p):
    """Root pixel of ``p``, with path compression."""
    root = p
    while parent[root] >= 0:
        root = parent[root]
    while parent[p] >= 0 and parent[p] != root:
        up = parent[p]
        parent[p] = root
        p = up
    return root


@numba.njit(cache=True)
def _component(parent, p):
    """Component id of pixel ``p``."""
    return ~parent[_find(parent, p)]


@numba.njit(cache=True)
def _make_set(parent, comp, active, counts, P, r, c):
    """Start a singleton component at pixel ``P``."""
    i = counts[1]
    counts[1] += 1
    parent[P] = ~i
    comp[i, _SIZE] = 1
    comp[i, _SLOT] = counts[0]
    comp[i, _X0] = c
    comp[i, _X1] = c
    comp[i, _Y1] = r
    comp[i, _AREA2] = 0
    comp[i, _FIRST] = P
    comp[i, _EXTRA] = 0
    active[counts[0]] = i
    counts[0] += 1


@numba.njit(cache=True)
def _attach(parent, comp, root, P, r, c):
    """Add the new pixel ``P`` to the component rooted at pixel ``root``."""
    parent[P] = root
    i = ~parent[root]
    comp[i, _SIZE] += 1
    comp[i, _X0] = min(comp[i, _X0], c)
    comp[i, _X1] = max(comp[i, _X1], c)
    comp[i, _Y1] = max(comp[i, _Y1], r)
    comp[i, _FIRST] = min(comp[i, _FIRST], P)


@numba.njit(cache=True)
def _union(parent, comp, active, counts, a, b):
    """Merge the components rooted at pixels ``a`` and ``b``.

    Returns the surviving root (union by size); the absorbed component
    leaves the active list (swapped with the last entry).
    """
    if a == b:
        return a
    if comp[~parent[a], _SIZE] < comp[~parent[b], _SIZE]:
        a, b = b, a
    i, j = ~parent[a], ~parent[b]
    parent[b] = a
    comp[i, _SIZE] += comp[j, _SIZE]
    comp[i, _X0] = min(comp[i, _X0], comp[j, _X0])
    comp[i, _X1] = max(comp[i, _X1], comp[j, _X1])
    comp[i, _Y1] = max(comp[i, _Y1], comp[j, _Y1])
    comp[i, _AREA2] += comp[j, _AREA2]
    comp[i, _FIRST] = min(comp[i, _FIRST], comp[j, _FIRST])
    _deactivate(comp, active, counts, comp[j, _SLOT])
    return a


@numba.njit(cache=True)
def _deactivate(comp, active, counts, slot):
    """Drop entry ``slot`` of the active list (swap with the last entry)."""
    counts[0] -= 1
    last = active[counts[0]]
    active[slot] = last
    comp[last, _SLOT] = slot


@numba.njit(cache=True)
def _best_iou(x0, y0, x1, y1, gt):
    """Largest IoU (inclusive pixel boxes) of one box against rows of ``gt``."""
    best = 0.0
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    for g in range(gt.shape[0]):
        iw = max(0, min(x1, gt[g, 2]) - max(x0, gt[g, 0]) + 1)
        ih = max(0, min(y1, gt[g, 3]) - max(y0, gt[g, 1]) + 1)
        inter = iw * ih
        den = area + (gt[g, 2] - gt[g, 0] + 1) * (gt[g, 3] - gt[g, 1] + 1) - inter
        if den > 0:
            best = max(best, inter / den)
    return best


@numba.njit(cache=True)
def _push_row(buf, n, a, b, c, d, e):
    """Append the row ``(a, b, c, d, e)`` to a growable buffer."""
    if n == buf.shape[0]:
        grown = np.empty((max(2 * n, 16), 5), np.int64)
        grown[:n] = buf[:n]
        buf = grown
    buf[n, 0] = a
    buf[n, 1] = b
    buf[n, 2] = c
    buf[n, 3] = d
    buf[n, 4] = e
    return buf, n + 1




# ---------------------------------------------------------------------------
# Sweeps over the levels
# ---------------------------------------------------------------------------


@numba.njit(cache=True)
def _unpack(packed, Wp):
    """Row, column and padded index of a packed ``r << 32 | c`` entry."""
    r = packed >> 32
    c = packed & 0xFFFFFFFF
    return r, c, (r + 1) * Wp + c + 1


@numba.njit(cache=True)
def _sweep_holes(tband, order, starts, K, H, W, gt, collect):
    """Holes at each level: their boxes, best IoU, and what V1 needs.

    Hole pixels (``band <= k < tband`` at level index ``k``; ``order`` holds
    the pixels with ``band < tband``) enter band by band in increasing order
    with 4-connectivity. A component dies as a whole when it reaches the
    border background (``tband <= k``); it is then dropped from the active
    list.

    Returns
    -------
    ious : per level, the best IoU of a hole box against ``gt`` (0 if none)
    boxes, n_boxes : if ``collect``, rows ``(x0, y0, x1, y1, level index)``
    holes, bounds : rows ``(first pixel, twice the area, 0, 0, 0)``; the holes
        of level ``k`` are ``holes[bounds[k]:bounds[k + 1]]``
    """
    Wp = W + 2
    parent, comp, active, inset, counts = _new_forest(tband.size, order.size)
    ious = np.zeros(K)
    boxes = np.empty((0, 5), np.int64)
    n_boxes = 0
    holes = np.empty((0, 5), np.int64)
    bounds = np.zeros(K + 1, np.int64)
    for k in range(K):
        for j in range(starts[k], starts[k + 1]):
            # Add hole pixel P, merging it with its 4-connected set
            # neighbours (written out: a call per pixel costs too much).
            r, c, P = _unpack(order[j], Wp)
            root = -1
            for m in (P - Wp, P + 1, P + Wp, P - 1):
                if inset[m]:
                    other = _find(parent, m)
                    if root == -1:
                        root = other
                        _attach(parent, comp, root, P, r, c)
                    else:
                        root = _union(parent, comp, active, counts, root, other)
            if root == -1:
                _make_set(parent, comp, active, counts, P, r, c)
                root = P
            comp[~parent[root], _AREA2] += _GAIN_BG[_ring_mask(inset, P, Wp)]
            inset[P] = 1
        n_holes = bounds[k]
        s = 0
        while s < counts[0]:
            i = active[s]
            if tband[comp[i, _FIRST]] <= k:
                _deactivate(comp, active, counts, s)
                continue
            x0, y0 = comp[i, _X0] - 1, comp[i, _FIRST] // Wp - 2
            x1, y1 = min(comp[i, _X1] + 2, W - 1), min(comp[i, _Y1] + 2, H - 1)
            ious[k] = max(ious[k], _best_iou(x0, y0, x1, y1, gt))
            if collect:
                boxes, n_boxes = _push_row(boxes, n_boxes, x0, y0, x1, y1, k)
            holes, n_holes = _push_row(holes, n_holes, comp[i, _FIRST], comp[i, _AREA2], 0, 0, 0)
            s += 1
        bounds[k + 1] = n_holes
    return ious, boxes, n_boxes, holes, bounds


@numba.njit(cache=True)
def _top_level_component(parent, tband, P, k):
    """Id of the top-level component whose filled region contains ``P``.

    Walks left from ``P`` while inside filled regions (``tband > k``); the
    pixel right after the first one outside lies on the top-level component.
    """
    y = P - 1
    while tband[y] > k:
        y -= 1
    return _component(parent, y + 1)


@numba.njit(cache=True)
def _largest_component(parent, comp, active, n_active, tband, k, holes):
    """Id of the V1 contour's component: the top-level one of largest area.

    A component is nested iff the pixel left of its first pixel is a hole
    pixel. The contour area of a top-level component is its own window area
    plus those of every hole and nested component inside it (summed in the
    ``_EXTRA`` column, zero outside this function). Ties go to the latest
    first pixel, the contour OpenCV lists first.
    """
    if holes.shape[0]:
        for h in range(holes.shape[0]):
            comp[_top_level_component(parent, tband, holes[h, 0], k), _EXTRA] += holes[h, 1]
        for s in range(n_active):
            i = active[s]
            if tband[comp[i, _FIRST] - 1] > k:
                comp[_top_level_component(parent, tband, comp[i, _FIRST], k), _EXTRA] += comp[i, _AREA2]
    best = -1
    best_area = -1
    for s in range(n_active):
        i = active[s]
        if tband[comp[i, _FIRST] - 1] > k:
            continue
        area = comp[i, _AREA2] + comp[i, _EXTRA]
        if area > best_area or (area == best_area and comp[i, _FIRST] > comp[best, _FIRST]):
            best = i
            best_area = area
    if holes.shape[0]:
        for s in range(n_active):
            comp[active[s], _EXTRA] = 0
    return best


@numba.njit(cache=True)
def _sweep_components(tband, order, starts, K, H, W, gt, collect, holes, bounds):
    """Foreground components at each level: V2 boxes and the V1 box.

    Bands enter in decreasing order with 8-connectivity; after bands
    ``> k`` are in, the active components are those of level index ``k``. A
    level without foreground gives ``[0, 0, 0, 0]``.

    Returns
    -------
    ious : per level, the best IoU of an outer-border box against ``gt``
    boxes, n_boxes : if ``collect``, rows ``(x0, y0, x1, y1, level index)``
    largest : ``(K, 4)`` V1 box per level
    """
    Wp = W + 2
    parent, comp, active, inset, counts = _new_forest(tband.size, order.size)
    off = _RING_DR * Wp + _RING_DC
    ious = np.zeros(K)
    largest = np.zeros((K, 4), np.int64)
    boxes = np.empty((0, 5), np.int64)
    n_boxes = 0
    prev, root = -1, -1
    for k in range(K - 1, -1, -1):
        for j in range(starts[k + 1], starts[k + 2]):
            # Add pixel P; its set neighbours form at most four groups, each
            # already one component. (Written out here: a call per pixel
            # would cost more than the work.) If the west neighbour entered
            # just before, ``root`` is still its root.
            r, c, P = _unpack(order[j], Wp)
            mask = _ring_mask(inset, P, Wp)
            n_groups = _RING_N_REPS[mask]
            if n_groups == 0:
                _make_set(parent, comp, active, counts, P, r, c)
                root = P
            else:
                if prev != P - 1:
                    root = _find(parent, P + off[_RING_REPS[mask, 0]])
                _attach(parent, comp, root, P, r, c)
                for g in range(1, n_groups):
                    other = _find(parent, P + off[_RING_REPS[mask, g]])
                    root = _union(parent, comp, active, counts, root, other)
                comp[~parent[root], _AREA2] += _GAIN_FG[mask]
            inset[P] = 1
            prev = P
        if counts[0] == 0:
            ious[k] = _best_iou(0, 0, 0, 0, gt)
            if collect:
                boxes, n_boxes = _push_row(boxes, n_boxes, 0, 0, 0, 0, k)
            continue
        for s in range(counts[0]):
            i = active[s]
            x0, y0 = comp[i, _X0], comp[i, _FIRST] // Wp - 1
            x1, y1 = min(comp[i, _X1] + 1, W - 1), min(comp[i, _Y1] + 1, H - 1)
            ious[k] = max(ious[k], _best_iou(x0, y0, x1, y1, gt))
            if collect:
                boxes, n_boxes = _push_row(boxes, n_boxes, x0, y0, x1, y1, k)
        holes_k = holes[bounds[k] : bounds[k + 1]]
        best = _largest_component(parent, comp, active, counts[0], tband, k, holes_k)
        largest[k, 0] = comp[best, _X0]
        largest[k, 1] = comp[best, _FIRST] // Wp - 1
        largest[k, 2] = min(comp[best, _X1] + 1, W - 1)
        largest[k, 3] = min(comp[best, _Y1] + 1, H - 1)
    return ious, boxes, n_boxes, largest


@numba.njit(cache=True)
def _sweep_all(qp, t, hist, H, W, levels, lut, gt, collect):
    """Both sweeps over a padded map from :func:`_pad_scores` or
    :func:`_pad_quantized` (``qp``, ``t`` are modified) for its sorted
    distinct ``levels`` and band table ``lut``.

    Returns the V1 boxes ``(K, 4)``, the best V2 IoU per level and, if
    ``collect``, every V2 box as rows ``(x0, y0, x1, y1, level index)``.
    """
    K = levels.size
    tband, order, starts, unsettled, n_unsettled = _flood_backward(qp, t, lut, hist, K, H, W)
    _settle_pockets(qp, t, tband, lut, unsettled, n_unsettled, W + 2)
    hole_order, hole_starts = _sort_hole_pixels(qp, tband, lut, unsettled, n_unsettled, K, W)
    hole_ious, hole_boxes, n_hole_boxes, holes, bounds = _sweep_holes(
        tband, hole_order, hole_starts, K, H, W, gt, collect
    )
    ious, boxes, n_boxes, largest = _sweep_components(
        tband, order, starts, K, H, W, gt, collect, holes, bounds
    )
    all_boxes = np.concatenate((boxes[:n_boxes], hole_boxes[:n_hole_boxes]))
    return largest, np.maximum(ious, hole_ious), all_boxes


@numba.njit(cache=True)
def _max_iou_padded(qp, t, hist, H, W, taus, gt):
    """Per-threshold V1 and V2 best IoUs of one padded map."""
    levels, index, lut = _distinct_levels(hist, taus)
    largest, v2, _ = _sweep_all(qp, t, hist, H, W, levels, lut, gt, False)
    v1 = np.empty(levels.size)
    for k in range(levels.size):
        v1[k] = _best_iou(largest[k, 0], largest[k, 1], largest[k, 2], largest[k, 3], gt)
    return v1[index], v2[index]


@numba.njit(cache=True)
def _max_iou_kernel(s, taus, gt):
    """:func:`_max_iou_padded` of a float map; ``valid`` is False (and the
    IoUs meaningless) if a value lies outside [0, 1]."""
    H, W = s.shape
    qp, t, hist, valid = _pad_scores(s)
    v1, v2 = _max_iou_padded(qp, t, hist, H, W, taus, gt)
    return v1, v2, valid


@numba.njit(cache=True)
def _boxes_kernel(s, taus, collect):
    """V1 boxes per level, V2 rows, each threshold's level index, validity."""
    H, W = s.shape
    qp, t, hist, valid = _pad_scores(s)
    levels, index, lut = _distinct_levels(hist, taus)
    largest, _, rows = _sweep_all(qp, t, hist, H, W, levels, lut, np.empty((0, 4), np.int64), collect)
    return largest, rows, index, levels.size, valid


@numba.njit(cache=True, parallel=True)
def _max_iou_batch_kernel(q, taus, gt, n_gt):
    """:func:`_max_iou_padded` over a stack of quantised maps, in parallel."""
    n, H, W = q.shape
    v1 = np.empty((n, taus.size))
    v2 = np.empty((n, taus.size))
    for i in numba.prange(n):
        qp, t, hist = _pad_quantized(q[i])
        a, b = _max_iou_padded(qp, t, hist, H, W, taus, gt[i, : n_gt[i]])
        v1[i] = a
        v2[i] = b
    return v1, v2


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def _validated(scoremap, thresholds):
    """The score map as float64 and the thresholds, both checked.

    Values outside [0, 1] are found by the compiled kernels, which report
    them through a flag; a bad map is reported before bad thresholds.
    """
    s = _as_scoremap(scoremap)
    try:
        taus = _as_thresholds(thresholds)
    except ValueError:
        quantize(s)
        raise
    return s, taus


def boxes_at_thresholds(scoremap, thresholds, multi_contour: bool = True) -> list[np.ndarray]:
    """Boxes of the thresholded score map at every threshold.

    Parameters
    ----------
    scoremap : array_like, shape (H, W)
        Scores in ``[0, 1]``.
    thresholds : array_like, shape (T,)
        Thresholds in ``[0, 1]``, e.g. ``np.arange(0, 1, 0.01)``.
    multi_contour : bool, default True
        True: every contour's box (V2). False: only the box of the largest
        contour (V1), with OpenCV's tie-break.

    Returns
    -------
    list of numpy.ndarray
        Per threshold an ``(n, 4)`` int64 array of ``[x0, y0, x1, y1]`` boxes,
        the same multiset as :func:`reference_boxes_at_thresholds` (V2 rows
        may come in another order; V1 has exactly one row). A threshold with
        an empty foreground gives ``[[0, 0, 0, 0]]``.
    """
    s, taus = _validated(scoremap, thresholds)
    largest, rows, index, n_levels, valid = _boxes_kernel(s, taus, multi_contour)
    if not valid:
        _check_values(s)
    if not multi_contour:
        return [largest[k : k + 1].copy() for k in index]
    rows = rows[np.argsort(rows[:, 4], kind="stable")]
    bounds = np.searchsorted(rows[:, 4], np.arange(n_levels + 1))
    per_level = [rows[bounds[k] : bounds[k + 1], :4] for k in range(n_levels)]
    return [per_level[k].copy() for k in index]


def max_iou_at_thresholds(scoremap, thresholds, gt_boxes) -> tuple[np.ndarray, np.ndarray]:
    """Best IoU with the ground truth at every threshold, V1 and V2.

    Parameters
    ----------
    scoremap : array_like, shape (H, W)
        Scores in ``[0, 1]``.
    thresholds : array_like, shape (T,)
        Thresholds in ``[0, 1]``.
    gt_boxes : array_like, shape (G, 4)
        Integer ``[x0, y0, x1, y1]`` ground-truth boxes (inclusive), ``G >= 1``.

    Returns
    -------
    iou_v1, iou_v2 : numpy.ndarray of float64, shape (T,)
        ``iou_v1[i]``: IoU of the largest-contour box with its best GT box.
        ``iou_v2[i]``: maximum IoU over all contour boxes and all GT boxes.
    """
    gt = _as_gt_boxes(gt_boxes)
    s, taus = _validated(scoremap, thresholds)
    iou_v1, iou_v2, valid = _max_iou_kernel(s, taus, gt)
    if not valid:
        _check_values(s)
    return iou_v1, iou_v2


def max_iou_at_thresholds_batch(scoremaps, thresholds, gt_boxes_list) -> tuple[np.ndarray, np.ndarray]:
    """:func:`max_iou_at_thresholds` for a stack of maps, in parallel threads.

    Parameters
    ----------
    scoremaps : array_like, shape (N, H, W)
        Either float scores in ``[0, 1]`` (quantised here) or uint8 maps that
        are already quantised with :func:`quantize`.
    thresholds : array_like, shape (T,)
        Thresholds in ``[0, 1]``.
    gt_boxes_list : sequence of N array_like, each (G_i, 4)
        Ground-truth boxes per map.

    Returns
    -------
    iou_v1, iou_v2 : numpy.ndarray of float64, shape (N, T)
    """
    maps = np.asarray(scoremaps)
    if maps.ndim != 3:
        raise ValueError(f"score maps must have shape (N, H, W), got {maps.shape}")
    if maps.dtype == np.uint8:
        q = np.ascontiguousarray(maps)
    else:
        q = np.stack([quantize(m) for m in maps]) if len(maps) else maps.astype(np.uint8)
    if len(gt_boxes_list) != q.shape[0]:
        raise ValueError(f"got {len(gt_boxes_list)} ground-truth entries for {q.shape[0]} maps")
    if q.shape[0] and q.size == 0:
        raise ValueError(f"score maps must not be empty, got shape {q.shape}")
    taus = _as_thresholds(thresholds)
    gts = [_as_gt_boxes(g) for g in gt_boxes_list]
    n_gt = np.array([len(g) for g in gts], np.int64)
    gt = np.zeros((q.shape[0], int(n_gt.max(initial=1)), 4), np.int64)
    for i, g in enumerate(gts):
        gt[i, : len(g)] = g
    with kept_torch_threads():  # numba's first parallel launch resets OpenMP's (and so torch's) threads
        return _max_iou_batch_kernel(q, taus, gt, n_gt)


def iou_matrix(boxes_a, boxes_b) -> np.ndarray:
    """Pairwise IoU of inclusive integer boxes.

    Parameters
    ----------
    boxes_a : array_like, shape (n, 4)
    boxes_b : array_like, shape (m, 4)
        ``[x0, y0, x1, y1]`` boxes; a box covers pixels ``x0..x1`` and
        ``y0..y1``, so its area is ``(x1 - x0 + 1) * (y1 - y0 + 1)``.

    Returns
    -------
    numpy.ndarray of float64, shape (n, m)
        Intersection over union; 0 where the union is not positive.
    """
    a = np.asarray(boxes_a, dtype=np.int64).reshape(-1, 4)[:, None, :]
    b = np.asarray(boxes_b, dtype=np.int64).reshape(-1, 4)[None, :, :]
    iw = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    ih = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    den = area_a + area_b - inter
    out = np.zeros(den.shape, np.float64)
    np.divide(inter, den, out=out, where=den > 0)
    return out


# ---------------------------------------------------------------------------
# Reference: one OpenCV call per threshold
# ---------------------------------------------------------------------------


def _import_cv2():
    try:
        import cv2
    except ImportError as exc:
        raise ImportError(
            "the OpenCV reference needs cv2; install it with `pip install opencv-python-headless`"
        ) from exc
    return cv2


def _reference_boxes(cv2, q, level):
    """All contour boxes of ``q > level`` and the largest contour's box."""
    H, W = q.shape
    mask = (q > level).astype(np.uint8) * 255
    contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        empty = np.zeros((1, 4), np.int64)
        return empty, empty
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, W - 1), min(y + h, H - 1)])
    boxes = np.asarray(boxes, dtype=np.int64)
    largest = max(range(len(contours)), key=lambda i: cv2.contourArea(contours[i]))
    return boxes, boxes[largest : largest + 1]


def reference_boxes_at_thresholds(scoremap, thresholds, multi_contour: bool = True) -> list[np.ndarray]:
    """Boxes per threshold from one ``cv2.findContours`` call per threshold.

    This is the reference protocol verbatim and the oracle for
    :func:`boxes_at_thresholds` (same parameters and return value, V2 rows in
    OpenCV's order). V1 takes ``max`` over the contours by
    ``cv2.contourArea``, which keeps the first of equal areas.

    Raises
    ------
    ImportError
        If OpenCV is not installed.
    """
    cv2 = _import_cv2()
    q = quantize(scoremap)
    q_max = int(q.max())
    return [
        _reference_boxes(cv2, q, int(tau * q_max))[0 if multi_contour else 1]
        for tau in _as_thresholds(thresholds)
    ]


def reference_max_iou_at_thresholds(scoremap, thresholds, gt_boxes) -> tuple[np.ndarray, np.ndarray]:
    """:func:`max_iou_at_thresholds` through the OpenCV loop and numpy IoU.

    Raises
    ------
    ImportError
        If OpenCV is not installed.
    """
    cv2 = _import_cv2()
    gt = _as_gt_boxes(gt_boxes)
    q = quantize(scoremap)
    q_max = int(q.max())
    taus = _as_thresholds(thresholds)
    iou_v1 = np.empty(taus.size)
    iou_v2 = np.empty(taus.size)
    for i, tau in enumerate(taus):
        boxes, largest = _reference_boxes(cv2, q, int(tau * q_max))
        iou_v1[i] = iou_matrix(largest, gt).max()
        iou_v2[i] = iou_matrix(boxes, gt).max()
    return iou_v1, iou_v2


# ---------------------------------------------------------------------------
# First use: OpenCV while the compiled kernel is built in the background
# ---------------------------------------------------------------------------


def opencv_max_iou_at_thresholds(scoremap, thresholds, gt_boxes) -> tuple[np.ndarray, np.ndarray]:
    """:func:`max_iou_at_thresholds` through OpenCV, one ``findContours`` per distinct level.

    The reference protocol's numbers (same quantisation, levels, contours and IoU; the test
    suite checks it against the compiled kernel), but thresholds that map to the same
    level ``int(tau * q_max)`` share one contour search, so at most 256 searches per map
    whatever the interval. Needs no compilation: the first evaluation on a fresh install
    uses it while :func:`warm_up_in_background` builds the kernel.
    """
    cv2 = _import_cv2()
    gt = _as_gt_boxes(gt_boxes)
    s = _as_scoremap(scoremap)
    if not (np.isfinite(s).all() and s.min() >= 0 and s.max() <= 1):
        _check_values(s)
    taus = _as_thresholds(thresholds)
    q = (s * 255).astype(np.uint8)  # truncation, as :func:`quantize` (numpy: nothing to compile)
    H, W = q.shape
    levels = threshold_levels(int(q.max()), taus)
    iou_v1 = np.empty(taus.size)
    iou_v2 = np.empty(taus.size)
    for level in np.unique(levels):
        mask = cv2.threshold(q, int(level), 255, cv2.THRESH_BINARY)[1]  # 255 where q > level
        contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        if contours:
            rects = np.array([cv2.boundingRect(c) for c in contours], dtype=np.int64)
            boxes = np.stack([rects[:, 0], rects[:, 1], np.minimum(rects[:, 0] + rects[:, 2], W - 1),
                              np.minimum(rects[:, 1] + rects[:, 3], H - 1)], axis=1)
            largest = int(np.argmax([cv2.contourArea(c) for c in contours]))  # the first of equal areas
        else:
            boxes, largest = np.zeros((1, 4), np.int64), 0
        ious = iou_matrix(boxes, gt)
        at = levels == level
        iou_v1[at] = ious[largest].max()
        iou_v2[at] = ious.max()
    return iou_v1, iou_v2


def opencv_available() -> bool:
    """Whether cv2 imports (it is a test extra, not a core dependency)."""
    try:
        _import_cv2()
    except ImportError:
        return False
    return True


def kernel_compiled(parallel: bool = False, kind: str = "max_iou") -> bool:
    """Whether a box kernel is compiled in this process or in numba's on-disk cache for this
    source, i.e. its first call will not compile: ``kind="max_iou"`` (``parallel``: the batch
    one) or ``"boxes"`` (:func:`boxes_at_thresholds`)."""
    kernel = _boxes_kernel if kind == "boxes" else _max_iou_batch_kernel if parallel else _max_iou_kernel
    if kernel.signatures:
        return True
    try:
        return bool(kernel._cache._cache_file._load_index())  # numba's index of cached signatures
    except Exception:  # noqa: BLE001 - a numba without this layout: assume cached, let numba decide
        return True


def warm_up(parallel: bool = False) -> None:
    """Compile (or load) the box kernel for float64 maps and write numba's cache."""
    maps = np.zeros((2, 4, 4))
    gt = np.zeros((1, 4), np.int64)
    if parallel:
        max_iou_at_thresholds_batch(maps, np.array([0.5]), [gt, gt])
    else:
        max_iou_at_thresholds(maps[0], np.array([0.5]), gt)
        boxes_at_thresholds(maps[0], np.array([0.5]))


def _warm_up_lock_path(parallel: bool):
    """One lock file per kernel and numba cache: where a build for this cache is under way."""
    import hashlib
    import tempfile

    key = f"{Path(__file__).resolve()}|{os.environ.get('NUMBA_CACHE_DIR', '')}|{bool(parallel)}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"hideseek-boxes-warm-up-{digest}.lock"


def warm_up_in_background(parallel: bool = False):
    """Start a detached process that runs :func:`warm_up` (it outlives the caller, so the
    next evaluation finds the kernel in the cache); returns the ``Popen`` or None.

    At most one build per kernel and cache runs at a time: the child holds an exclusive
    ``flock`` on a lock file for its lifetime (inherited from the caller, which takes it
    without waiting); while one runs, further calls start nothing and return None. Many
    evaluations in a row on a cold cache (a script, a test suite) therefore never pile up
    compilers.
    """
    import subprocess
    import sys

    code = f"from hideseek.localization.boxes import warm_up; warm_up(parallel={bool(parallel)})"
    lock_fd = None
    try:
        import fcntl

        lock_fd = os.open(_warm_up_lock_path(parallel), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a build is under way
            os.close(lock_fd)
            return None
    except (ImportError, OSError):  # no flock here: start the build anyway
        lock_fd = None
    try:
        return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                pass_fds=() if lock_fd is None else (lock_fd,))
    except OSError:
        return None
    finally:
        if lock_fd is not None:
            os.close(lock_fd)  # the child keeps the lock through its inherited descriptor


if __name__ == "__main__":  # pragma: no cover - ``python -m hideseek.localization.boxes``: build the kernels now
    warm_up(False)
    warm_up(True)
