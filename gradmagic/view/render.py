"""Render stage: a drawing view and its positions become a matplotlib Figure (never pyplot, no global state).

Default pictures fit a notebook: at most 9 inches wide (900 CSS px at 1 inch = 100 px) with no text under 6.5
points (9 CSS px). To get there the renderer tries, in turn: top to bottom, left to right, fewer lines of detail,
then a more collapsed view; only then dots. The background is transparent; text sits on light fills or backings,
so the picture reads on light and dark notebook themes alike.
"""
from __future__ import annotations

from typing import NamedTuple

import networkx as nx
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .edges import FLOW_FONT, draw_edges
from .flows import edge_flows, edge_texts, flow_note
from .folding import drawing_view, view_marks
from .fonts import missing_note, use_fallback
from .layout import DEFAULT_RANKDIR, PICTURE_RANKDIRS, check_rankdir, layered_layout
from .legend import (BACKING, caption_note, draw_legend, draw_notes, legend_height, legend_items, notes_height,
                     notes_under)
from .nodes import (BIG_VIEW, BLOCK_COLOURS, DETAILS, FONT, OP_COLOURS, ROLE_COLOURS, TEXT_GREY, box_size, draw_nodes,
                    node_lines)
from .placement import LAYER_GAP, MARGIN, Placement, text_width

__all__ = ["draw_graph", "render_figure", "ROLE_COLOURS", "OP_COLOURS", "BLOCK_COLOURS", "MAX_WIDTH", "MIN_POINTS"]

#: Inches: the widest default picture (a notebook's ~900 CSS px of output at 1 inch = 100 px).
MAX_WIDTH = 9.0
#: Points: the smallest text of a picture at the size it is drawn (9 CSS px).
MIN_POINTS = 6.5

_FLOW_GAP, _MAX_FLOW_GAP = 0.6, 1.0  # inches between layers with flow labels between them
_MAX_INCHES, _MIN_WIDTH = 40.0, 3.0
_MARK_KEYS = ("nodes", "edges", "notes")
_COLLAPSES = 6  # at most this many more collapsed views are tried to fit the width


class _Drawing(NamedTuple):
    """Everything a picture needs once its view, direction, detail and scale are chosen."""

    view: nx.DiGraph
    place: Placement
    lines: dict
    scale: float
    detail: int
    content: "_Content"
    note: str | None


class _Content:
    """A view's marks, flows and edge labels, worked out once however many arrangements are tried."""

    def __init__(self, view: nx.DiGraph, flows: bool, marks: dict | None):
        self.view = view
        self.marked, self.marked_edges, self.notes = view_marks(view, marks)
        passes = flows and view.graph.get("passes")
        self.found = edge_flows(view) if passes else [None] * view.number_of_edges()
        self.texts = edge_texts(view, self.found) if len(view) <= BIG_VIEW else [None] * len(self.found)
        self.flow_labels = [t for t, f in zip(self.texts, self.found) if t and f and f.text]
        self._lines = {}

    def lines(self, detail: int) -> dict:
        """node -> its (text, font key) lines at one level of detail."""
        if detail not in self._lines:
            self._lines[detail] = {n: node_lines(d, detail, n in self.marked, self.notes.get(n))
                                   for n, d in self.view.nodes(data=True)}
        return self._lines[detail]


def render_figure(graph: nx.MultiDiGraph, *, show_all: bool = False, rankdir: str | None = None,
                  title: str | None = None, depth: int | None = None, max_nodes: int | None = None,
                  flows: bool = True, marks: dict | None = None) -> Figure:
    """The picture of a captured graph: drawing_view -> layered_layout -> drawn, fitted to MAX_WIDTH unless show_all.

    `rankdir` None chooses (PICTURE_RANKDIRS): top to bottom, or left to right when only that fits. show_all draws
    everything at full size (up to 40 inches, a scrolling frame's job to show).
    """
    _check_marks(graph, marks)
    check_rankdir(rankdir, choosing=True)
    room = (_MAX_INCHES if show_all else MAX_WIDTH) - 2 * MARGIN
    directions = (rankdir,) if rankdir else PICTURE_RANKDIRS
    for view, note in _views(graph, show_all=show_all, depth=depth, max_nodes=max_nodes):
        content, layouts = _Content(view, flows, marks), {}
        for detail in DETAILS[:-1]:
            for direction in directions:
                if direction not in layouts:
                    layouts[direction] = layered_layout(view, rankdir=direction)
                drawing = _arrange(content, layouts[direction], direction, detail, room, note)
                if drawing is not None:
                    return _figure(drawing, direction, title)
    turn = "" if rankdir is None else "the other --rankdir, "
    dots = (f"Nodes drawn as dots: their labels do not fit {room + 2 * MARGIN:g} inches at a readable size; "
            f"{turn}--all or the table shows them.")
    note = "\n".join(n for n in (note, dots) if n)
    return _figure(_arrange(content, layouts[directions[0]], directions[0], 0, room, note), directions[0], title)


def draw_graph(view: nx.DiGraph, positions: dict, *, title: str | None = None, rankdir: str = DEFAULT_RANKDIR,
               flows: bool = True, marks: dict | None = None) -> Figure:
    """A Figure of `view` with nodes at layered `positions` (layer units), inputs left ("LR") or top ("TB").

    `flows`: after a backward pass, each edge is as wide as the gradient that flowed along it and labelled with it
    (see gradmagic.view.edges). `marks`: {"nodes": graph nodes, "edges": (u, v, key) graph edges, "notes": {node: text}}
    drawn red on whatever stands for them in the view, a ⚠ before the node's first line and its note under it.
    """
    check_rankdir(rankdir)
    missing = [n for n in view if n not in positions]
    if missing:
        raise ValueError(f"positions has no entry for {len(missing)} node(s), e.g. {missing[0]!r}; "
                         "use layered_layout(view) for the same view")
    content, room = _Content(view, flows, marks), _MAX_INCHES - 2 * MARGIN
    for detail in DETAILS:
        drawing = _arrange(content, positions, rankdir, detail, room, None)
        if drawing is not None:
            return _figure(drawing, rankdir, title)


def _views(graph: nx.MultiDiGraph, *, show_all: bool, depth, max_nodes):
    """(view, note): the view asked for, then (unless show_all or max_nodes) ever more collapsed ones, saying so."""
    view = drawing_view(graph, show_all=show_all, depth=depth, max_nodes=max_nodes)
    yield view, None
    if show_all or max_nodes is not None:  # a limit the user chose is kept, even when it does not fit
        return
    size, target = len(view), len(view) // 2
    for _ in range(_COLLAPSES):
        smaller = drawing_view(graph, depth=depth, max_nodes=target) if target >= 1 else view
        if len(smaller) >= size:  # collapsing cannot go further
            return
        yield smaller, (f"Collapsed from {len(view)} to {len(smaller)} nodes to fit {MAX_WIDTH:g} inches "
                        "(--all or --max-nodes N to expand).")
        size, target = len(smaller), len(smaller) // 2


def _arrange(content: _Content, positions: dict, rankdir: str, detail: int, room: float,
             note: str | None) -> _Drawing | None:
    """The drawing at one level of detail scaled to `room` inches wide, or None if its text would be too small."""
    lines = content.lines(detail)
    smallest = min([FONT[key] for ls in lines.values() for _, key in ls]
                   + ([FLOW_FONT] if detail and content.flow_labels else []), default=None)
    least = MIN_POINTS / smallest if smallest else 0.0
    if detail and not _layers_fit(positions, rankdir, room, least):
        return None
    sizes = {n: box_size(lines[n], d) for n, d in content.view.nodes(data=True)}
    for gap in _gaps(rankdir, content.flow_labels if detail else []):
        place = Placement(positions, sizes, rankdir, gap)
        scale = min(1.0, room / place.width, (_MAX_INCHES - 1.0) / place.height)
        if scale >= least or detail == 0:
            return _Drawing(content.view, place, lines, scale, detail, content, note)
    return None


def _layers_fit(positions: dict, rankdir: str, room: float, least: float) -> bool:
    """Whether the layers alone, with only the gaps between them, leave room for readable text."""
    along = {round(x if rankdir == "LR" else y, 6) for x, y in positions.values()}
    return len(along) * LAYER_GAP * least <= (room if rankdir == "LR" else _MAX_INCHES)


def _gaps(rankdir: str, flow_labels: list) -> list:
    """Gaps between layers to try: room for the flow labels between them (if any), then the plain gap."""
    if not flow_labels:
        return [LAYER_GAP]
    widest = max(text_width(t, FLOW_FONT) for t in flow_labels)
    roomy = _FLOW_GAP if rankdir == "TB" else min(_MAX_FLOW_GAP, max(_FLOW_GAP, widest + 0.15))
    return list(dict.fromkeys((roomy, LAYER_GAP)))


def _figure(drawing: _Drawing, rankdir: str, title: str | None) -> Figure:
    """The Figure: legend band on top, the graph, the notes band under it; transparent behind everything."""
    view, place, scale, content = drawing.view, drawing.place, drawing.scale, drawing.content
    items = legend_items(view, flowing=any(content.found), marked=bool(content.marked or content.marked_edges))
    width, height = place.width * scale, place.height * scale
    fw = max(width, _MIN_WIDTH) + 2 * MARGIN
    top = legend_height(items, title, fw - 2 * MARGIN)
    labelled = drawing.detail > 0 and any(content.texts)
    legend = [flow_note(content.texts) if labelled else None, caption_note(drawing.lines),
              missing_note(drawing.lines)]
    notes = notes_under(view.graph.get("hidden_note"), drawing.note, " ".join(n for n in legend if n) or None,
                        width=fw - 2 * MARGIN - 0.1)
    band = notes_height(notes)
    figure = Figure(figsize=(fw, height + 2 * MARGIN + top + band))
    figure.set_facecolor((1.0, 1.0, 1.0, 0.0))  # the notebook's own background shows, light or dark
    FigureCanvasAgg(figure)
    fh = figure.get_figheight()
    ax = figure.add_axes(((fw - width) / 2 / fw, (MARGIN + band) / fh, width / fw, height / fh))
    ax.set_axis_off()
    ax.set_xlim(place.xmin, place.xmin + place.width)
    ax.set_ylim(place.ymin, place.ymin + place.height)
    if not view:
        ax.text(0.5, 0.5, "(no tensors recorded)", transform=ax.transAxes, ha="center", va="center",
                fontsize=FONT["tensor"], color=TEXT_GREY, bbox=BACKING)
    boxes = {node: place.box(node) for node in view}
    draw_edges(ax, view, place, boxes, scale, found=content.found, texts=content.texts if drawing.detail else None,
               plain=len(view) > BIG_VIEW, marked=content.marked_edges, measure=text_width)
    draw_nodes(ax, view, place, drawing.lines, scale, content.marked)
    draw_legend(figure, items, title)
    draw_notes(figure, notes)
    use_fallback(figure)  # after every text is placed: fonts for any script
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
