"""Render stage: a drawing view and its positions become a matplotlib Figure (never pyplot, no global state)."""
from __future__ import annotations

import math
from functools import lru_cache

import networkx as nx
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, findfont
from matplotlib.ft2font import FT2Font
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch, Patch

from .blocks import BLOCK_KINDS
from .edges import EDGE_COLOUR, FLOW_FONT, MARK_COLOUR, draw_edges, edge_flows, edge_texts
from .graph import ROLES
from .layout import RANKDIRS, drawing_view, layered_layout, spread_in_order, view_marks
from .text import tensor_caption

try:  # matplotlib >= 3.10 keeps FreeType load flags in an enum; older versions as module constants
    from matplotlib.ft2font import LoadFlags
    _NO_HINTING = LoadFlags.NO_HINTING
except ImportError:  # pragma: no cover - matplotlib < 3.10
    from matplotlib.ft2font import LOAD_NO_HINTING as _NO_HINTING

__all__ = ["draw_graph", "render_figure", "ROLE_COLOURS", "OP_COLOURS", "BLOCK_COLOURS"]

#: Tensor role -> (fill, border) colours.
ROLE_COLOURS = {"leaf": ("#c7e9c0", "#31a354"), "named": ("#c6dbef", "#3182bd"),
                "intermediate": ("#e6e1f3", "#8c84c0"), "output": ("#fdd0a2", "#e6550d"),
                "constant": ("#f0f0f0", "#a0a0a0")}
#: Op nodes are neutral: (fill, border).
OP_COLOURS = ("#ffffff", "#707070")
#: Collapsed blocks, drawn with a thick border: kind -> (fill, border, legend text).
BLOCK_COLOURS = {"cluster": ("#fdf1d3", "#b7791f", "module call"), "loop": ("#dcf1ee", "#2c7a6e", "folded loop"),
                 "optimizer": ("#ece6f6", "#6b46c1", "optimizer step")}

_NO_GRAD, _FOLDED = "#a8a8a8", "#6e6e6e"
_FONT = {"tensor": 10.0, "op": 9.0, "block": 10.0, "folded": 8.0, "caption": 8.0, "mark": 8.0, "note": 8.0,
         "flow": FLOW_FONT}  # points at full size
_PAD = (0.08, 0.045)  # inches inside a box: across the text, above and below it
_LAYER_GAP, _CROSS_GAP = 0.36, 0.14  # inches between layers, between neighbours within a layer
_FLOW_GAP, _MAX_FLOW_GAP = 0.5, 1.0  # inches between layers with flow labels between them
_DOT = 0.14  # inches: a node's size when labels would be unreadable
_MAX_INCHES, _MIN_SCALE, _MARGIN, _MIN_WIDTH = 40.0, 0.75, 0.15, 3.0
_BIG = 300  # nodes; above this, edges are one LineCollection without arrowheads
_MAX_CHARS = {"tensor": 44, "op": 32, "block": 44, "folded": 40, "caption": 56, "mark": 44}
_BLOCK_BORDER, _MARK_BORDER = 2.2, 2.6  # points: collapsed blocks stand out from single ops, marks from both
_MARK_KEYS = ("nodes", "edges", "notes")
_TEXT_COLOURS = {"folded": _FOLDED, "caption": _FOLDED, "mark": MARK_COLOUR}
_NOTE_LINE = 0.17  # inches per line of the note under the picture


def render_figure(graph: nx.MultiDiGraph, *, show_all: bool = False, rankdir: str = "TB", title: str | None = None,
                  depth: int | None = None, max_nodes: int | None = None, flows: bool = True,
                  marks: dict | None = None) -> Figure:
    """The picture of a captured graph: drawing_view (collapsed unless show_all) -> layered_layout -> draw_graph."""
    _check_marks(graph, marks)
    view = drawing_view(graph, show_all=show_all, depth=depth, max_nodes=max_nodes)
    return draw_graph(view, layered_layout(view, rankdir=rankdir), title=title, rankdir=rankdir, flows=flows,
                      marks=marks)


def draw_graph(view: nx.DiGraph, positions: dict, *, title: str | None = None, rankdir: str = "LR",
               flows: bool = True, marks: dict | None = None) -> Figure:
    """A Figure of `view` with nodes at layered `positions` (layer units), inputs left ("LR") or top ("TB").

    `flows`: after a backward pass, each edge is as wide as the gradient that flowed along it and labelled with it
    (see gradmagic.edges). `marks`: {"nodes": graph nodes, "edges": (u, v, key) graph edges, "notes": {node: text}}
    drawn red on whatever stands for them in the view, a ⚠ before the node's first line and its note under it.
    """
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir={rankdir!r}: use 'LR' (inputs left, outputs right) or 'TB' (inputs top)")
    missing = [n for n in view if n not in positions]
    if missing:
        raise ValueError(f"positions has no entry for {len(missing)} node(s), e.g. {missing[0]!r}; "
                         "use layered_layout(view) for the same view")
    marked, marked_edges, notes = view_marks(view, marks)
    found = edge_flows(view) if flows and view.graph.get("passes") else [None] * view.number_of_edges()
    items = _legend_items(view, flowing=any(found), marked=bool(marked or marked_edges))
    texts = edge_texts(view, found) if len(view) <= _BIG else [None] * len(found)
    room = _MAX_INCHES - 2 * _MARGIN
    flow_labels = [t for t, f in zip(texts, found) if t and f and f.text]
    for detail, gap in _details(positions, rankdir, room, flow_labels):  # most detail first, then dots
        lines = {n: _node_lines(d, detail, n in marked, notes.get(n)) for n, d in view.nodes(data=True)}
        place = _Placement(positions, {n: _box_size(lines[n], d) for n, d in view.nodes(data=True)}, rankdir, gap)
        scale = min(1.0, room / place.width, (room - 1.0) / place.height)
        if scale >= _MIN_SCALE or detail == 0:
            break
    width, height = place.width * scale, place.height * scale
    fw = max(width, _MIN_WIDTH) + 2 * _MARGIN
    rows = math.ceil(len(items) / _legend_columns(items, fw - 2 * _MARGIN))
    top = (0.35 if title else 0.0) + (0.25 * rows + 0.1 if items else 0.0)
    note = _wrap(view.graph.get("hidden_note") or "", fw - 2 * _MARGIN, _FONT["note"])
    band = _NOTE_LINE * len(note) + 0.1 if note else 0.0
    figure = Figure(figsize=(fw, height + 2 * _MARGIN + top + band))
    FigureCanvasAgg(figure)
    fh = figure.get_figheight()
    ax = figure.add_axes(((fw - width) / 2 / fw, (_MARGIN + band) / fh, width / fw, height / fh))
    ax.set_axis_off()
    ax.set_xlim(place.xmin, place.xmin + place.width)
    ax.set_ylim(place.ymin, place.ymin + place.height)
    if not view:
        ax.text(0.5, 0.5, "(no tensors recorded)", transform=ax.transAxes, ha="center", va="center",
                fontsize=_FONT["tensor"], color=_FOLDED)
    boxes = {node: _node_box(place, node) for node in view}
    draw_edges(ax, view, place, boxes, scale, found=found, texts=texts if detail else None, plain=len(view) > _BIG,
               marked=marked_edges, measure=_text_width)
    _draw_nodes(ax, view, place, lines, scale, marked)
    _draw_legend(figure, items, title)
    if note:
        figure.text(_MARGIN / fw, _MARGIN / fh, "\n".join(note), fontsize=_FONT["note"], ha="left", va="bottom",
                    color=_FOLDED, linespacing=1.5, gid="hidden_note", parse_math=False)
    return figure


def _check_marks(graph: nx.MultiDiGraph, marks: dict | None) -> None:
    """ValueError unless `marks` has only nodes, edges and notes, all of them in `graph`."""
    if marks is None:
        return
    if not isinstance(marks, dict) or set(marks) - set(_MARK_KEYS):
        extra = sorted(map(str, set(marks) - set(_MARK_KEYS))) if isinstance(marks, dict) else type(marks).__name__
        raise ValueError(f"marks: {extra} not understood; use a dict with {', '.join(_MARK_KEYS)}")
    nodes = [n for n in [*marks.get("nodes", ()), *marks.get("notes", {})] if n not in graph]
    edges = [e for e in marks.get("edges", ()) if not (len(e) == 3 and graph.has_edge(*e))]
    if nodes or edges:
        raise ValueError(f"marks names {(nodes or edges)[0]!r}, which is not a node or (u, v, key) edge of this graph")


def _details(positions: dict, rankdir: str, room: float, flow_labels: list) -> list:
    """(detail, layer gap) to try in turn: full labels, without folded values, names only, dots; each first with
    room between the layers for the flow labels, if any; only dots when the layers alone cannot fit readably."""
    along = {round(x if rankdir == "LR" else y, 6) for x, y in positions.values()}
    if len(along) * _LAYER_GAP * _MIN_SCALE > room:
        return [(0, _LAYER_GAP)]
    roomy = _LAYER_GAP if not flow_labels else _FLOW_GAP if rankdir == "TB" else \
        min(_MAX_FLOW_GAP, max(_FLOW_GAP, max(_text_width(t, _FONT["flow"]) for t in flow_labels) + 0.15))
    return [(detail, gap) for detail in (3, 2, 1) for gap in dict.fromkeys((roomy, _LAYER_GAP))] + [(0, _LAYER_GAP)]


def _wrap(text: str, width: float, size: float) -> list:
    """Lines of `text` no wider than `width` inches at font `size`, broken between words."""
    lines = []
    for word in text.split():
        if lines and _text_width(f"{lines[-1]} {word}", size) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


class _Placement:
    """Node centres and edge bends in inches, from positions in layer units and box sizes."""

    def __init__(self, positions: dict, sizes: dict, rankdir: str, gap: float = _LAYER_GAP):
        self.lr, self.gap = rankdir == "LR", gap
        # (along, across): along the layers and across them, whatever the direction
        self.sizes = {n: (w, h) if self.lr else (h, w) for n, (w, h) in sizes.items()}
        split = {n: self._split(positions[n]) for n in sizes}
        routes = getattr(positions, "routes", {})
        bends = {e: [self._split(p) for p in r] for e, r in routes.items() if e[0] in sizes and e[1] in sizes}
        self._along(split)
        layers = {}  # layer -> [(across in layer units, room across in inches, node or (edge, bend index))]
        for n, (a, c) in split.items():
            layers.setdefault(round(a, 6), []).append((c, self.sizes[n][1] + _CROSS_GAP, n))
        for e, points in bends.items():
            for k, (a, c) in enumerate(points):
                layers.setdefault(round(a, 6), []).append((c, 2 * _CROSS_GAP, (e, k)))
        across = sorted(s[1] for s in self.sizes.values())
        unit = (across[len(across) // 4] if across else 0.0) + _CROSS_GAP  # small: packing spreads what is crowded
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


def _node_lines(data: dict, detail: int, marked: bool = False, note: str | None = None) -> list:
    """(text, font key) lines drawn in a node, a ⚠ first when marked; none when nodes are dots."""
    if detail == 0:
        return []
    if data.get("kind") in BLOCK_KINDS:
        lines = [(data.get("label") or data["kind"], "block")]
        if data.get("caption") and detail > 1:
            lines.append((data["caption"], "caption"))
    elif detail == 1:
        name = data.get("op") if data.get("kind") == "op" else data.get("label")
        lines = [(name, "op" if data.get("kind") == "op" else "tensor")] if name else []
    elif data.get("kind") == "op":
        lines = [(data.get("label") or data.get("op") or "op", "op")]
        if data.get("folded") and detail > 2:
            lines.append((data["folded"], "folded"))
    else:
        lines = [(tensor_caption(data), "tensor")]
    if marked and lines:
        lines[0] = (f"⚠ {lines[0][0]}", lines[0][1])
    if note and detail > 1:
        lines.append((note, "mark"))
    return [(text if len(text) <= _MAX_CHARS[key] else text[:_MAX_CHARS[key] - 1] + "…", key) for text, key in lines]


def _box_size(lines: list, data: dict) -> tuple:
    """Width and height in inches of a node's box around its lines."""
    if not lines:
        return (_DOT, _DOT) if data.get("kind") == "tensor" else (_DOT * 0.7, _DOT * 0.7)
    width = max(_text_width(text, _FONT[key]) for text, key in lines) + 2 * _PAD[0]
    return width, sum(_FONT[key] for _, key in lines) * 1.3 / 72 + 2 * _PAD[1]


@lru_cache(maxsize=None)
def _advance(char: str) -> float:
    """Unhinted advance width of one character, in points per point of font size (the default font)."""
    font = _font()
    return font.load_char(ord(char), flags=_NO_HINTING).linearHoriAdvance / 65536 / 100


@lru_cache(maxsize=1)
def _font() -> FT2Font:
    font = FT2Font(findfont(FontProperties()))
    font.set_size(100, 72)
    return font


def _text_width(text: str, size: float) -> float:
    """Width in inches of one line of text, with room for hinting, which widens small text on screen by up to 10%."""
    return sum(_advance(char) for char in text) * size / 72 * 1.1


def _draw_nodes(ax, view: nx.DiGraph, place: _Placement, lines: dict, scale: float, marked: set) -> None:
    """Rounded boxes for tensors, pills for ops, thick boxes for blocks (one collection), and their text lines."""
    if len(view) > _BIG and not any(lines.values()):  # thousands of dots: rounded patches cost seconds
        ax.add_collection(_plain_boxes(view, place, marked))
    else:
        patches = [_node_patch(data, *_node_box(place, node), marked=node in marked)
                   for node, data in view.nodes(data=True)]
        ax.add_collection(PatchCollection(patches, match_original=True, zorder=2))
    for node in view:
        x, y = place.xy(*place.centre[node])
        heights = [_FONT[key] * 1.3 / 72 for _, key in lines[node]]
        top = y + sum(heights) / 2
        for (text, key), height in zip(lines[node], heights):
            ax.text(x, top - height / 2, text, fontsize=_FONT[key] * scale, ha="center", va="center_baseline",
                    color=_TEXT_COLOURS.get(key, "black"), zorder=3, gid=f"{node}.{key}",
                    parse_math=False, fontweight="bold" if key == "block" else "normal")
            top -= height


def _node_box(place: _Placement, node) -> tuple:
    """(x, y, width, height) of a node's box in figure data coordinates (inches)."""
    x, y = place.xy(*place.centre[node])
    w, h = place.sizes[node] if place.lr else place.sizes[node][::-1]
    return x, y, w, h


def _node_colours(data: dict) -> tuple:
    """(fill, border) of a node by its kind and role."""
    if data.get("kind") in BLOCK_KINDS:
        return BLOCK_COLOURS[data["kind"]][:2]
    return ROLE_COLOURS.get(data.get("role"), OP_COLOURS) if data.get("kind") == "tensor" else OP_COLOURS


def _node_patch(data: dict, x: float, y: float, w: float, h: float, *, marked: bool = False) -> FancyBboxPatch:
    """Rounded box (tensor), pill (op) or thick-bordered box (module call, folded loop) centred at (x, y)."""
    block = data.get("kind") in BLOCK_KINDS
    radius = h / 2 if data.get("kind") == "op" else min(0.06, h / 3)
    fill, border = _node_colours(data)
    width = _MARK_BORDER if marked else _BLOCK_BORDER if block else 1.0
    return FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=f"round,pad=0,rounding_size={radius}",
                          facecolor=fill, edgecolor=MARK_COLOUR if marked else border, linewidth=width,
                          linestyle="--" if data.get("role") == "constant" else "-")


def _plain_boxes(view: nx.DiGraph, place: _Placement, marked: set) -> PolyCollection:
    """All node boxes as plain rectangles in one collection: fast for thousands of nodes."""
    boxes = np.array([_node_box(place, node) for node in view]).reshape(-1, 4)
    x, y, hw, hh = boxes[:, 0], boxes[:, 1], boxes[:, 2] / 2, boxes[:, 3] / 2
    corners = np.stack([np.stack([x - hw, y - hh], 1), np.stack([x + hw, y - hh], 1),
                        np.stack([x + hw, y + hh], 1), np.stack([x - hw, y + hh], 1)], 1)
    colours = [(_node_colours(d)[0], MARK_COLOUR if n in marked else _node_colours(d)[1])
               for n, d in view.nodes(data=True)]
    widths = [_MARK_BORDER if n in marked else _BLOCK_BORDER if d.get("kind") in BLOCK_KINDS else 0.6
              for n, d in view.nodes(data=True)]
    return PolyCollection(corners, facecolors=[c[0] for c in colours], edgecolors=[c[1] for c in colours],
                          linewidths=widths, zorder=2)


def _legend_items(view: nx.DiGraph, *, flowing: bool, marked: bool) -> list:
    """Legend handles for the roles present, op nodes, gradient flows, dashed edges and diagnostic marks if any."""
    roles = {d.get("role") for _, d in view.nodes(data=True) if d.get("kind") == "tensor"}
    items = [Patch(facecolor=ROLE_COLOURS[r][0], edgecolor=ROLE_COLOURS[r][1], label=r) for r in ROLES if r in roles]
    if any(d.get("kind") == "op" for _, d in view.nodes(data=True)):
        items.append(Patch(facecolor=OP_COLOURS[0], edgecolor=OP_COLOURS[1], label="op"))
    kinds = {d.get("kind") for _, d in view.nodes(data=True)}
    items += [Patch(facecolor=fill, edgecolor=border, linewidth=_BLOCK_BORDER, label=text)
              for kind, (fill, border, text) in BLOCK_COLOURS.items() if kind in kinds]
    if flowing:
        items.append(Line2D([], [], color=EDGE_COLOUR, linewidth=2.5, label="∇ flow"))
    if not all(d.get("differentiable", True) for _, _, d in view.edges(data=True)):
        items.append(Line2D([], [], color=_NO_GRAD, linestyle="--", label="no gradient"))
    if marked:
        items.append(Patch(facecolor="white", edgecolor=MARK_COLOUR, linewidth=_MARK_BORDER, label="⚠ diagnostic"))
    return items


def _legend_columns(items: list, width: float) -> int:
    """The most legend columns that fit in `width` inches (filled top to bottom, as matplotlib does)."""
    entries = [0.36 + _text_width(item.get_label(), _FONT["note"]) for item in items]
    for ncol in range(len(entries), 1, -1):
        rows, tall = divmod(len(entries), ncol)
        ends = np.cumsum([rows + 1] * tall + [rows] * (ncol - tall)).tolist()
        if sum(max(entries[a:b]) for a, b in zip([0] + ends, ends)) <= width:
            return ncol
    return 1


def _draw_legend(figure: Figure, items: list, title: str | None) -> None:
    """A small legend (and the title) in the band above the graph."""
    fw, fh = figure.get_size_inches()
    if title:
        figure.text(_MARGIN / fw, 1 - 0.08 / fh, title, fontsize=11, ha="left", va="top", parse_math=False)
    if items:
        below = (0.35 if title else 0.05) / fh
        figure.legend(handles=items, loc="upper left", bbox_to_anchor=(_MARGIN / fw, 1 - below), frameon=False,
                      fontsize=_FONT["note"], ncol=_legend_columns(items, fw - 2 * _MARGIN), handlelength=1.4,
                      borderaxespad=0, borderpad=0, columnspacing=1.0)
