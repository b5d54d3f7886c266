"""Layout stage: the graph to draw (anonymous tensors folded into their ops, big graphs collapsed) and its positions."""
from __future__ import annotations

import networkx as nx

from .blocks import view_edge
from .collapse import check_collapse_options, collapse_view
from .crossings import crossing_count, order_layers, spread_in_order
from ..text import shown_grad, tensor_caption

__all__ = ["drawing_view", "view_node", "view_marks", "layered_layout", "spread_in_order", "LayeredPositions",
           "RANKDIRS", "DEFAULT_RANKDIR", "PICTURE_RANKDIRS", "check_rankdir"]

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


def drawing_view(graph: nx.MultiDiGraph, *, show_all: bool = False, depth: int | None = None,
                 max_nodes: int | None = None) -> nx.DiGraph:
    """The DiGraph to draw: anonymous tensors folded, then modules and loops collapsed (show_all: everything).

    Each edge keeps `count` (graph edges it stands for), `differentiable`, `flows` (the gradients that arrived along
    its tensor->op graph edges in the last pass, unknown ones left out) and `grads` (the gradients of the tensors its
    op->tensor graph edges made); `graph["stand_in"]` maps each graph node not drawn itself to the node drawn for it.
    """
    check_collapse_options(depth, max_nodes)
    view = _folded_view(graph, show_all=show_all)
    if show_all:
        view.graph["hidden_note"] = None
    else:
        view = collapse_view(view, depth=depth, max_nodes=max_nodes, total=len(graph))
    _caption_folds(view, graph)  # only for the ops still drawn: captions cost more than folding
    return view


def view_node(view: nx.DiGraph, node):
    """The node of a drawing view that stands for graph node `node` (itself, its op, its box), or None if none does."""
    return node if node in view else view.graph.get("stand_in", {}).get(node)


def view_marks(view: nx.DiGraph, marks: dict | None) -> tuple:
    """(view nodes, view edges, view node -> note) standing for `marks` {"nodes", "edges", "notes"} of the graph."""
    marks = marks or {}
    nodes = {view_node(view, node) for node in [*marks.get("nodes", ()), *marks.get("notes", {})]}
    edges, notes = set(), {}
    for u, v, *_ in marks.get("edges", ()):
        a, b = view_node(view, u), view_node(view, v)
        if a is not None and a == b:  # an edge hidden inside a fold or a box marks the node drawn for both ends
            nodes.add(a)
        elif view.has_edge(a, b):
            edges.add((a, b))
    for node, text in marks.get("notes", {}).items():
        at = view_node(view, node)
        if at is not None and text:
            notes[at] = f"{notes[at]}; {text}" if at in notes else str(text)
    nodes.discard(None)
    return nodes, edges, notes


def _folded_view(graph: nx.MultiDiGraph, *, show_all: bool) -> nx.DiGraph:
    """Anonymous tensors folded into their ops, creation ops dropped (unless show_all)."""
    unused = set() if show_all else _unused_creations(graph)
    stand_in = {} if show_all else {t: op for t, op in _folded_tensors(graph).items() if t not in unused}
    dropped = set() if show_all else _dropped_creation_ops(graph, stand_in) | unused
    view = nx.DiGraph(**{**graph.graph, "show_all": show_all})
    view.add_nodes_from((n, dict(d)) for n, d in graph.nodes(data=True) if n not in stand_in and n not in dropped)
    for tensor, op in stand_in.items():
        view.nodes[op].setdefault("folded_nodes", []).append(tensor)
    made = {op: next((t for t in graph.successors(op) if t in view), None)
            for op in graph if op in dropped and op not in unused}  # graph order: sets of str are hash-ordered
    view.graph["stand_in"] = {**stand_in, **{op: t for op, t in made.items() if t is not None}}
    edges = {}
    for u, v, data in graph.edges(data=True):
        a, b = stand_in.get(u, u), stand_in.get(v, v)
        if a == b or a not in view or b not in view:
            continue
        edge = edges.setdefault((a, b), view_edge())
        edge["count"] += 1
        edge["differentiable"] = edge["differentiable"] or _edge_differentiable(graph, u, v, data)
        if data.get("flow") is not None:
            edge["flows"].append(data["flow"])
        elif graph.nodes[u].get("kind") == "op" and not graph.nodes[v].get("is_leaf") \
                and _gradient(graph.nodes[v]) is not None:  # a leaf keeps its gradient: none goes back to its op
            edge["grads"].append(_gradient(graph.nodes[v]))
    view.add_edges_from((u, v, data) for (u, v), data in edges.items())
    return view


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


def _folded_tensors(graph: nx.MultiDiGraph) -> dict:
    """Anonymous tensor (not a leaf, not an output) -> the op that made it, which will stand for it."""
    folded = {}
    for node, data in graph.nodes(data=True):
        if data["kind"] != "tensor" or data.get("name") is not None or data.get("role") in ("leaf", "output"):
            continue
        producers = [p for p in graph.predecessors(node) if graph.nodes[p]["kind"] == "op"]
        if producers:
            folded[node] = producers[0]
    return folded


def _dropped_creation_ops(graph: nx.MultiDiGraph, stand_in: dict) -> set:
    """Ops with no tensor inputs whose every output is drawn on its own (`torch.tensor(5.0)` before `a`)."""
    return {node for node, data in graph.nodes(data=True)
            if data["kind"] == "op" and graph.in_degree(node) == 0
            and not any(out in stand_in for out in graph.successors(node))}


def _unused_creations(graph: nx.MultiDiGraph) -> set:
    """Anonymous tensors made from nothing and never used (`torch.empty` inside `nn.Linear()`), with their ops."""
    unused = set()
    for node, data in graph.nodes(data=True):
        if data["kind"] == "op" and graph.in_degree(node) == 0:
            outputs = list(graph.successors(node))
            if outputs and all(graph.nodes[t]["name"] is None and graph.out_degree(t) == 0
                               and graph.nodes[t]["role"] != "output" for t in outputs):
                unused.update([node, *outputs])
    return unused


def _caption_folds(view: nx.DiGraph, graph: nx.MultiDiGraph) -> None:
    """Keep each folded tensor's caption and role on the op that now stands for it."""
    for _, op in view.nodes(data=True):
        if op.get("folded_nodes"):
            tensors = [graph.nodes[t] for t in op["folded_nodes"]]
            op["folded"] = "\n".join(tensor_caption(t) for t in tensors)
            op["folded_role"] = tensors[0].get("role")


def _gradient(tensor: dict):
    """A tensor's gradient as shown: the exact value, the stats of a large one (with its "norm"), or None."""
    value, stats = shown_grad(tensor)
    return value if value is not None else stats


def _edge_differentiable(graph: nx.MultiDiGraph, u, v, data: dict) -> bool:
    """Tensor->op edges say so themselves; op->tensor edges carry gradient when the output can take one."""
    if "differentiable" in data:
        return bool(data["differentiable"])
    op, out = graph.nodes[u], graph.nodes[v]
    return bool(op.get("grad_enabled", True) and op.get("op_kind") != "exit" and out.get("requires_grad", True))


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
