"""Crossing reduction for a layered layout: barycenter sweeps, then swaps of neighbours while they uncross edges.

Slots are node or dummy indices; `up[i]` and `down[i]` their neighbours in the layer before and after; `place[i]`
their coordinate across the layers and `size[i]` the room each takes there (dummies of long edges take less).
"""
from __future__ import annotations

import random
from bisect import bisect_right, insort

__all__ = ["order_layers", "crossing_count", "spread_in_order"]

_SWEEPS = 6  # down+up barycenter rounds; more rarely changes a picture of autograd graphs
_SWAP_ROUNDS = 4  # passes of neighbour swaps over all layers
_SWAP_SLOTS = 3000  # beyond this many slots, swaps and crossing counts cost more than they are worth
_RESTARTS, _RESTART_SLOTS = 4, 150  # shuffled starts tried on pictures of at most this many slots


def order_layers(layers: list, up: list, down: list, place: list, size: list) -> None:
    """Order each layer to cross few edges (the best of rounds of barycenter sweeps and swaps, on small graphs also
    from a few shuffled starting orders: sweeps only find local optima), then settle places."""
    slots = sum(map(len, layers))
    small = slots <= _SWAP_SLOTS
    starts = [layers] + [_shuffled(layers, seed) for seed in range(_RESTARTS if slots <= _RESTART_SLOTS else 0)]
    found = [_swept([list(layer) for layer in start], up, down, place, size, small) for start in starts]
    best = min(found, key=lambda item: item[1])[0]  # the first of equals: the unshuffled start
    for layer, kept in zip(layers, best):
        layer[:] = kept
        _spread(layer, place, size)
    for _ in range(_SWEEPS):  # then where each slot sits, keeping the order
        for sweep, neighbours in ((layers, up), (layers[::-1], down)):
            for layer in sweep:
                _settle(layer, place, size, {i: _barycenter(neighbours[i], place, place[i]) for i in layer})


def _shuffled(layers: list, seed: int) -> list:
    """The layers each in a random order, the same for the same seed (pictures are deterministic)."""
    chance = random.Random(seed)
    return [chance.sample(layer, len(layer)) for layer in layers]


def _swept(layers: list, up: list, down: list, place: list, size: list, small: bool) -> tuple:
    """(layers, crossings) of the ordering with the fewest crossings met in rounds of sweeps (and swaps if small)."""
    for layer in layers:
        _spread(layer, place, size)
    best, fewest = [list(layer) for layer in layers], crossing_count(layers, down, place) if small else 0
    for _ in range(_SWEEPS):
        for sweep, neighbours in ((layers, up), (layers[::-1], down)):
            for layer in sweep:
                target = {i: _barycenter(neighbours[i], place, place[i]) for i in layer}
                layer.sort(key=target.__getitem__)
                _spread(layer, place, size)
            if small:
                _swap_neighbours(layers, up, down, place, size)
                count = crossing_count(layers, down, place)
                if count < fewest:
                    best, fewest = [list(layer) for layer in layers], count
    return (best, fewest) if small else (layers, 0)


def crossing_count(layers: list, down: list, place: list) -> int:
    """How many pairs of edges between consecutive layers cross (ties in place do not)."""
    total = 0
    for layer in layers:
        ends = sorted((place[i], place[j]) for i in layer for j in down[i])
        seen = []
        for _, at in ends:  # edges from further left ending further right than this one cross it
            total += len(seen) - bisect_right(seen, at)
            insort(seen, at)
    return total


def _swap_neighbours(layers: list, up: list, down: list, place: list, size: list) -> None:
    """Swap neighbours in a layer while that crosses fewer edges to the layers on both sides."""
    for _ in range(_SWAP_ROUNDS):
        swapped = False
        for layer in layers:
            for k in range(len(layer) - 1):
                a, b = layer[k], layer[k + 1]
                if _swap_uncrosses(a, b, up, down, place):
                    layer[k], layer[k + 1] = b, a
                    swapped = True
            _spread(layer, place, size)
        if not swapped:
            return


def _swap_uncrosses(a: int, b: int, up: list, down: list, place: list) -> bool:
    """Whether `b` placed before `a` crosses fewer edges between them than `a` before `b` (both counted in one pass)."""
    kept = swapped = 0
    for links in (up, down):
        theirs = [place[y] for y in links[b]]
        if theirs:
            for x in links[a]:
                at = place[x]
                for other in theirs:
                    if at > other:
                        kept += 1
                    elif at < other:
                        swapped += 1
    return swapped < kept


def _barycenter(neighbours: list, place: list, default: float) -> float:
    """Mean coordinate of a slot's neighbours in the reference direction (its own if it has none)."""
    return sum(place[n] for n in neighbours) / len(neighbours) if neighbours else default


def _spread(layer: list, place: list, size: list) -> None:
    """Give the slots of one layer consecutive centred coordinates (dummies take half a slot)."""
    at = 0.0
    for i in layer:
        place[i] = at + size[i] / 2
        at += size[i]
    for i in layer:
        place[i] -= at / 2


def _settle(layer: list, place: list, size: list, target: dict) -> None:
    """Move a layer's slots as near their targets as their order and spacing allow."""
    for i, at in zip(layer, spread_in_order([target[i] for i in layer], [size[i] for i in layer])):
        place[i] = at


def spread_in_order(targets: list, sizes: list) -> list:
    """Coordinates nearest `targets` (least squares) that keep their order and neighbours (a + b) / 2 apart."""
    offsets, at = [], 0.0
    for k, size in enumerate(sizes):
        at += (sizes[k - 1] + size) / 2 if k else 0.0
        offsets.append(at)
    blocks = []  # pool adjacent violators: [sum, count] of runs that must move together
    for target, offset in zip(targets, offsets):
        blocks.append([target - offset, 1])
        while len(blocks) > 1 and blocks[-2][0] * blocks[-1][1] > blocks[-1][0] * blocks[-2][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    shifts = [total / count for total, count in blocks for _ in range(count)]
    return [offset + shift for offset, shift in zip(offsets, shifts)]
