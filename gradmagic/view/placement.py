"""Placement of a picture in inches: text widths, node centres and edge bends from layered positions and box sizes."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .fonts import advance
from .crossings import spread_in_order

__all__ = ["Placement", "text_width", "wrap", "LAYER_GAP", "CROSS_GAP", "MARGIN"]

#: Inches between layers, between neighbours within a layer.
LAYER_GAP, CROSS_GAP = 0.36, 0.14
#: Inches of empty border around a picture.
MARGIN = 0.15


@lru_cache(maxsize=4096)
def text_width(text: str, size: float) -> float:
    """Width in inches of one line of text, with room for hinting, which widens small text on screen by up to 10%."""
    return sum(advance(char) for char in text) * size / 72 * 1.1


def wrap(text: str, width: float, size: float) -> list:
    """Lines of `text` no wider than `width` inches at font `size`, broken between words (kept lines kept)."""
    lines = []
    for paragraph in text.split("\n"):
        start = len(lines)
        for word in paragraph.split(" "):  # not at no-break spaces (`2 × 215.0` stays whole)
            if not word:
                continue
            if len(lines) > start and text_width(f"{lines[-1]} {word}", size) <= width:
                lines[-1] = f"{lines[-1]} {word}"
            else:
                lines.append(word)
    return lines


class Placement:
    """Node centres and edge bends in inches, from positions in layer units and box sizes."""

    def __init__(self, positions: dict, sizes: dict, rankdir: str, gap: float = LAYER_GAP):
        self.lr, self.gap = rankdir == "LR", gap
        # (along, across): along the layers and across them, whatever the direction
        self.sizes = {n: (w, h) if self.lr else (h, w) for n, (w, h) in sizes.items()}
        split = {n: self._split(positions[n]) for n in sizes}
        routes = getattr(positions, "routes", {})
        bends = {e: [self._split(p) for p in r] for e, r in routes.items() if e[0] in sizes and e[1] in sizes}
        self._along(split)
        layers = {}  # layer -> [(across in layer units, room across in inches, node or (edge, bend index))]
        for n, (a, c) in split.items():
            layers.setdefault(round(a, 6), []).append((c, self.sizes[n][1] + CROSS_GAP, n))
        for e, points in bends.items():
            for k, (a, c) in enumerate(points):
                layers.setdefault(round(a, 6), []).append((c, 2 * CROSS_GAP, (e, k)))
        across = sorted(s[1] for s in self.sizes.values())
        unit = (across[len(across) // 4] if across else 0.0) + CROSS_GAP  # small: packing spreads what is crowded
        placed = {}
        for items in layers.values():
            items.sort(key=lambda item: item[0])
            coords = spread_in_order([c * unit for c, _, _ in items], [room for _, room, _ in items])
            placed.update((ref, coord) for (_, _, ref), coord in zip(items, coords))
        self.centre = {n: (self._at(a), placed[n]) for n, (a, _) in split.items()}
        self.bends = {e: [(self._at(a), placed[e, k]) for k, (a, _) in enumerate(p)] for e, p in bends.items()}
        self._bounds(sizes)

    def _split(self, point) -> tuple:
        x, y = point
        return (x, y) if self.lr else (-y, x)

    def _along(self, split: dict) -> None:
        """Layer centres in inches: each layer as deep as its deepest box, with a gap for the arrows."""
        depth = {}
        for n, (a, _) in split.items():
            depth[round(a, 6)] = max(depth.get(round(a, 6), 0.0), self.sizes[n][0])
        keys = sorted(depth) or [0.0]
        widths = [depth.get(k, 0.0) for k in keys]
        centres = np.cumsum([0.0] + [(p + q) / 2 + self.gap for p, q in zip(widths, widths[1:])])
        self._keys, self._centres = np.array(keys), centres
        self._centre_of = dict(zip(keys, centres.tolist()))

    def _at(self, along: float) -> float:
        """Inches along the layers of a layer coordinate (between layers for hand-made positions)."""
        at = self._centre_of.get(round(along, 6))
        return at if at is not None else float(np.interp(along, self._keys, self._centres))

    def xy(self, along: float, across: float) -> tuple:
        """A point of the along/across frame in figure data coordinates."""
        return (along, across) if self.lr else (across, -along)

    def box(self, node) -> tuple:
        """(x, y, width, height) of a node's box in figure data coordinates (inches)."""
        x, y = self.xy(*self.centre[node])
        w, h = self.sizes[node] if self.lr else self.sizes[node][::-1]
        return x, y, w, h

    def _bounds(self, sizes: dict) -> None:
        """The data box holding every node and every bend point of a routed edge."""
        boxes = [(*self.xy(*self.centre[n]), w / 2, h / 2) for n, (w, h) in sizes.items()]
        boxes += [(*self.xy(*p), 0.0, 0.0) for route in self.bends.values() for p in route]
        boxes = boxes or [(0.0, 0.0, 0.0, 0.0)]
        self.xmin = min(x - hw for x, _, hw, _ in boxes) - 0.05
        self.ymin = min(y - hh for _, y, _, hh in boxes) - 0.05
        self.width = max(x + hw for x, _, hw, _ in boxes) + 0.05 - self.xmin
        self.height = max(y + hh for _, y, _, hh in boxes) + 0.05 - self.ymin

    def edge_points(self, u, v, out_port: float, in_port: float) -> list:
        """The bend points of edge u -> v in the along/across frame, leaving u and entering v at their sides."""
        (au, cu), (av, cv) = self.centre[u], self.centre[v]
        middle = self.bends.get((u, v), [])
        if av <= au:  # not forward (a cycle or hand-made positions): centre to centre
            return [(au, cu), (av, cv)]
        return [(au + self.sizes[u][0] / 2, cu + out_port), *middle, (av - self.sizes[v][0] / 2, cv + in_port)]
