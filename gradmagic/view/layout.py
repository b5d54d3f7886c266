"""Layout stage: deterministic layered positions of a drawing view (Sugiyama style), in either direction."""
from __future__ import annotations

import networkx as nx

from .crossings import crossing_count, order_layers

__all__ = ["layered_layout", "LayeredPositions", "RANKDIRS", "DEFAULT_RANKDIR", "PICTURE_RANKDIRS", "check_rankdir"]

#: Directions a layered picture can run: inputs left ("LR") or inputs on top ("TB").
RANKDIRS = ("LR", "TB")
#: The direction of layered_layout and draw_graph when none is given: x is the layer.
DEFAULT_RANKDIR = "LR"
#: A picture given no direction (render_figure, %%autograd, the CLI) takes the first of these that fits.
PICTURE_RANKDIRS = ("TB", "LR")

_DUMMY_SLOT = 0.5  # a long edge passing through a layer takes half a node's room there
_COMPONENT_GAP = 0.5  # extra room between unconnected parts of a picture
_PROMOTE_NODES = 300  # promotion costs O(nodes²) at worst and recurses along chains: small views only
_PROMOTE_ROUNDS = 20  # passes over all nodes; autograd views settle in two or three


class LayeredPositions(dict):
    """node -> (x, y) in layer units, plus `routes`: (u, v) -> the bend points of edges spanning layers."""

    def __init__(self, *args, routes: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.routes = routes or {}


def check_rankdir(rankdir, *, choosing: bool = False) -> None:
    """ValueError unless `rankdir` is one of RANKDIRS (or None, where the picture `choosing` may choose)."""
    if rankdir in RANKDIRS or (choosing and rankdir is None):
        return
    raise ValueError(f"rankdir={rankdir!r}: use 'LR' (inputs left, outputs right) or 'TB' (inputs top)"
                     + (", or None to choose what fits" if choosing else ""))


def layered_layout(view: nx.DiGraph, *, rankdir: str = DEFAULT_RANKDIR) -> LayeredPositions:
    """Deterministic layered positions: x = layer (inputs left), y = place across the layer ("LR"), or turned ("TB")."""
    check_rankdir(rankdir)
    nodes = list(view)
    index = {node: i for i, node in enumerate(nodes)}
    edges = [(index[u], index[v]) for u, v in view.edges()]
    tried = []  # (crossings, rank, chains, place) for each layering
    for rank in _rankings(len(nodes), edges, _topological_order(view, index)):
        layers, up, down, chains = _layer_lists(len(nodes), edges, rank)
        place = _place_components(view, index, layers, (up, down), chains)
        tried.append((crossing_count(layers, down, place), rank, chains, place))
    _, rank, chains, place = min(tried, key=lambda item: item[0])  # the first of equals
    turn = (lambda r, c: (float(r), 0.0 - c)) if rankdir == "LR" else (lambda r, c: (c + 0.0, 0.0 - r))
    positions = LayeredPositions((node, turn(rank[i], place[i])) for i, node in enumerate(nodes))
    for (i, j), chain in chains.items():
        positions.routes[nodes[i], nodes[j]] = [turn(rank[i] + k + 1, place[d]) for k, d in enumerate(chain)]
    return positions


def _topological_order(view: nx.DiGraph, index: dict) -> list:
    """Node indices in topological order; a reversed depth-first postorder if the graph has a cycle."""
    try:
        order = nx.topological_sort(view)
        return [index[n] for n in order]
    except nx.NetworkXUnfeasible:
        return [index[n] for n in reversed(list(nx.dfs_postorder_nodes(view)))]


def _rankings(count: int, edges: list, order: list) -> list:
    """Layers to try: each node as early as its inputs allow (sources just above their first consumer), and, for
    small views, nodes as late as their consumers allow, then promoted while that shortens edges in total."""
    position = [0] * count
    for at, i in enumerate(order):
        position[i] = at
    preds, succs = [[] for _ in range(count)], [[] for _ in range(count)]
    for i, j in edges:
        if position[i] < position[j]:  # back edges of a cycle do not constrain layers
            preds[j].append(i)
            succs[i].append(j)
    rank = [0] * count
    for i in order:
        rank[i] = max((rank[p] + 1 for p in preds[i]), default=0)
    for i in order:
        if not preds[i] and succs[i]:
            rank[i] = min(rank[s] for s in succs[i]) - 1
    if count > _PROMOTE_NODES:
        return [rank]
    height = [0] * count  # layers above the bottom one
    for i in reversed(order):
        height[i] = max((height[s] + 1 for s in succs[i]), default=0)
    _promote(height, preds, succs)
    top = max(height, default=0)
    return [rank, [top - h for h in height]]


def _promote(height: list, preds: list, succs: list) -> None:
    """Nikolov and Tarassov's promotion: move a node up one layer (its producers too, where they would touch it)
    whenever that leaves the edges shorter in total, until no move does."""
    for _ in range(_PROMOTE_ROUNDS):
        moved = False
        for node in range(len(height)):
            if preds[node]:
                before = list(height)
                if _promoted(node, height, preds, succs) < 0:
                    moved = True
                else:
                    height[:] = before
        if not moved:
            return


def _promoted(node: int, height: list, preds: list, succs: list) -> int:
    """Move `node` up one layer, and its producers just above it first; the change in total edge length."""
    change = sum(_promoted(p, height, preds, succs) for p in preds[node] if height[p] == height[node] + 1)
    height[node] += 1
    return change - len(preds[node]) + len(succs[node])


def _layer_lists(count: int, edges: list, rank: list):
    """Nodes per layer, with a chain of dummy slots for edges spanning layers (up to a budget)."""
    layers = [[] for _ in range(max(rank, default=-1) + 1)]
    for i in range(count):
        layers[rank[i]].append(i)
    up, down, chains = [[] for _ in range(count)], [[] for _ in range(count)], {}
    budget = 4 * count + 2000  # keeps a hub used in every layer from costing O(N^2) dummies
    for i, j in sorted(edges, key=lambda e: (rank[e[1]] - rank[e[0]], e)):
        span = rank[j] - rank[i]
        if span <= 0:
            continue
        chain = list(range(len(up), len(up) + span - 1)) if span - 1 <= budget else []
        budget -= len(chain)
        for k, d in enumerate(chain):
            up.append([]), down.append([])
            layers[rank[i] + k + 1].append(d)
        path = [i, *chain, j]
        for a, b in zip(path, path[1:]):
            down[a].append(b)
            up[b].append(a)
        if chain:
            chains[i, j] = chain
    return layers, up, down, chains


def _place_components(view: nx.DiGraph, index: dict, layers: list, links: tuple, chains: dict) -> list:
    """Each weakly connected component laid out on its own, then stacked across the layers and centred."""
    real, up = len(index), links[0]
    owner = list(range(real)) + [0] * (len(up) - real)  # a dummy belongs to its edge's source
    for (i, _), chain in chains.items():
        for d in chain:
            owner[d] = i
    groups = sorted(sorted(index[n] for n in members) for members in nx.weakly_connected_components(view))
    component = [0] * real
    for c, members in enumerate(groups):
        for i in members:
            component[i] = c
    split = [{} for _ in groups]
    for at, layer in enumerate(layers):
        for i in layer:
            split[component[owner[i]]].setdefault(at, []).append(i)
    place, size = [0.0] * len(up), [1.0] * real + [_DUMMY_SLOT] * (len(up) - real)
    end = 0.0
    for parts in split:
        own = list(parts.values())
        order_layers(own, *links, place, size)
        slots = [i for layer in own for i in layer]
        shift = end - min(place[i] - size[i] / 2 for i in slots)
        for i in slots:
            place[i] += shift
        end = max(place[i] + size[i] / 2 for i in slots) + _COMPONENT_GAP
    return [at - (end - _COMPONENT_GAP) / 2 for at in place]
