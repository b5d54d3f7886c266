"""Labels on edges: each on its own edge where it covers no node, no other label and no other edge."""
from __future__ import annotations

import numpy as np

__all__ = ["place_labels", "FLOW_FONT"]

#: Points at full size of the flow labels.
FLOW_FONT = 8.0

_SPOTS = (0.5, *(0.5 + s * k / 25 for k in range(1, 11) for s in (1, -1)))  # along an edge, most wanted first
_NODE_CLEARANCE = 0.04  # inches kept free around a node box for the arrowheads that reach it


def place_labels(ax, gids: list, texts: list, *, ranks: list, colours: list, curves: list, place, boxes: dict,
                 scale: float, measure) -> None:
    """Each label (None: none) on its own edge, clear of every node, other label and other edge.

    `curves` are the edges as sampled points in data inches; higher `ranks` choose first; a label with no clear spot
    is left out (the edge's width still shows the flow). `measure(text, points)` is a line's width in inches.
    """
    samples = curves
    starts = np.concatenate([s[:-1] for s in samples]) if samples else np.zeros((0, 2))
    ends = np.concatenate([s[1:] for s in samples]) if samples else np.zeros((0, 2))
    owner = np.concatenate([np.full(len(s) - 1, i) for i, s in enumerate(samples)]) if samples else np.zeros(0)
    order = sorted((i for i, text in enumerate(texts) if text), key=lambda i: (-ranks[i], i))
    taken = np.zeros((len(boxes) + len(order), 4))  # (x, y, half width, half height) of nodes, then placed labels
    taken[:len(boxes)] = [(x, y, w / 2 + _NODE_CLEARANCE, h / 2 + _NODE_CLEARANCE) for x, y, w, h in boxes.values()]
    used = len(boxes)
    bounds = (place.xmin, place.ymin, place.xmin + place.width, place.ymin + place.height)
    half_height = (FLOW_FONT * 1.25 / 72 + 0.03) / 2
    for i in order:
        half = ((measure(texts[i], FLOW_FONT) + 0.04) / 2, half_height)
        near = _segments_near(samples[i], half, starts, ends, owner, i)
        spot = _free_spot(samples[i], half, taken[:used], bounds, near)
        if spot is None:
            continue
        taken[used] = (*spot, *half)
        used += 1
        ax.text(*spot, texts[i], fontsize=FLOW_FONT * scale, ha="center", va="center", zorder=1.5, parse_math=False,
                color=colours[i], gid=gids[i],
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none"})


def _segments_near(curve: np.ndarray, half: tuple, starts: np.ndarray, ends: np.ndarray, owner: np.ndarray,
                   own: int) -> tuple:
    """(starts, ends) of the other edges' segments that come near enough to `curve` to touch a label on it."""
    low, high = curve.min(axis=0) - half, curve.max(axis=0) + half
    close = (owner != own) & np.all(np.maximum(starts, ends) >= low, axis=1) \
        & np.all(np.minimum(starts, ends) <= high, axis=1)
    return starts[close], ends[close]


def _free_spot(curve: np.ndarray, half: tuple, taken: np.ndarray, bounds: tuple, others: tuple):
    """The most wanted spot on `curve` for a box of `half` sizes clear of `taken` boxes and `others` segments."""
    length = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=1))])
    if length[-1] <= 0:
        return None
    hw, hh = half
    for share in _SPOTS:
        x, y = (float(np.interp(share * length[-1], length, curve[:, k])) for k in (0, 1))
        if x - hw < bounds[0] or y - hh < bounds[1] or x + hw > bounds[2] or y + hh > bounds[3]:
            continue
        near = np.abs(taken[:, 0] - x) < hw + taken[:, 2] + 0.01
        if np.any(near & (np.abs(taken[:, 1] - y) < hh + taken[:, 3] + 0.01)):
            continue
        if not _crosses(*others, (x - hw - 0.01, y - hh - 0.01, x + hw + 0.01, y + hh + 0.01)):
            return x, y
    return None


def _crosses(starts: np.ndarray, ends: np.ndarray, box: tuple) -> bool:
    """Whether any segment starts[k] -> ends[k] passes through the box (x0, y0, x1, y1) (Liang-Barsky clipping)."""
    if not len(starts):
        return False
    enter, leave = np.zeros(len(starts)), np.ones(len(starts))
    step = ends - starts
    for k, (low, high) in enumerate(((box[0], box[2]), (box[1], box[3]))):
        d, s = step[:, k], starts[:, k]
        flat = d == 0
        safe = np.where(flat, 1.0, d)
        t0, t1 = (low - s) / safe, (high - s) / safe
        lo, hi = np.minimum(t0, t1), np.maximum(t0, t1)
        inside = (s >= low) & (s <= high)
        lo = np.where(flat, np.where(inside, -np.inf, np.inf), lo)
        hi = np.where(flat, np.where(inside, np.inf, -np.inf), hi)
        enter, leave = np.maximum(enter, lo), np.minimum(leave, hi)
    return bool(np.any(enter <= leave))
