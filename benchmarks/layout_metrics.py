"""How readable a drawn graph is: edge crossings, labels on edges, overlapping texts, size and smallest text.

A `Picture` is the geometry of a drawing in CSS px at 1:1 (1 inch = 100 px, y up): node boxes, edge polylines,
text boxes. `figure_picture` reads one from a matplotlib Figure drawn by gradmagic (its artists' gids: node texts
`"{node}.{line}"`, edge arrows `"edge:{u}->{v}"`, edge labels `"flow:{u}->{v}"`); layout_quality.py reads one from
Graphviz's JSON. The metrics are pure functions of a Picture, so both drawings are measured the same way:

- crossings: pairs of edges whose polylines (curves flattened, arrowheads included) intersect anywhere except
  near a node both edges touch (within `NEAR` px of its box), counted once per pair however often they cross;
- label-edge overlaps: (edge label, other edge) pairs where the label's text box meets that edge's polyline;
- node-label overlaps: (text, node box of another node) pairs that intersect, plus pairs of texts of different
  owners (nodes, edge labels, legend, notes) whose boxes intersect;
- smallest text: the smallest font of the picture in CSS px at the scale it is shown at in a notebook output
  `OUTPUT_WIDTH` px wide (pictures wider than that are shrunk to fit).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.text import Text

__all__ = ["Picture", "Edge", "Label", "figure_picture", "labelled_nodes", "nearest_node", "crossing_pairs",
           "crossings", "label_edge_pairs", "label_edge_overlaps", "node_label_pairs", "node_label_overlaps",
           "display_scale", "smallest_text_px", "OUTPUT_WIDTH", "CSS_PX_PER_INCH", "NEAR"]

#: Width of a notebook's output area in CSS px (JupyterLab, 1400 px window); wider pictures are shrunk to it.
OUTPUT_WIDTH = 948.0
#: CSS px per inch at 1:1 (a figure saved at 100 dpi and shown at its natural size).
CSS_PX_PER_INCH = 100.0
#: px around a node's box where edges that both touch the node may meet (ports, arrowheads) without crossing.
NEAR = 15.0


@dataclass
class Edge:
    """A drawn edge: its end nodes (as named in `Picture.nodes`) and its polylines in px."""

    key: str
    tail: str | None
    head: str | None
    lines: list


@dataclass
class Label:
    """A drawn text: its box (x0, y0, x1, y1) in px, size in points at the drawn size, and what it belongs to."""

    text: str
    box: tuple
    points: float
    owner: str  # a node, "edge:{key}" for an edge label, "legend", "title", "note"


@dataclass
class Picture:
    """A drawing's geometry in CSS px at 1:1: size, node boxes (x0, y0, x1, y1), edges and texts."""

    width: float
    height: float
    nodes: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    scale: float = 1.0  # how much the drawing shrank its own boxes and fonts to fit (1: not at all)


def figure_picture(figure) -> Picture:
    """The geometry of a Figure drawn by gradmagic, drawn once with Agg to measure its texts."""
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    px = CSS_PX_PER_INCH / figure.dpi
    labels = [_label(text, renderer, px, owner) for text, owner in _figure_texts(figure)]
    labels = [label for label in labels if label is not None]
    boxes = [box for ax in figure.axes for box in _node_boxes(ax, px)]
    nodes = _name_boxes(boxes, labels)
    edges = [edge for ax in figure.axes for edge in _edges(ax, px, nodes)]
    width, height = figure.get_size_inches() * CSS_PX_PER_INCH
    return Picture(float(width), float(height), nodes, edges, labels, _drawn_scale(figure))


def _figure_texts(figure) -> list:
    """(Text, owner) of every text drawn: node lines and edge labels by gid, legend, title and notes."""
    found = []
    for ax in figure.axes:
        for text in ax.texts:
            gid = text.get_gid() or ""
            owner = "edge:" + gid[5:] if gid.startswith("flow:") else gid.rsplit(".", 1)[0] if gid else "text"
            found.append((text, owner))
    for legend in [*figure.legends, *(ax.get_legend() for ax in figure.axes)]:
        if legend is not None:
            found += [(text, "legend") for text in [*legend.get_texts(), legend.get_title()]]
    found += [(text, text.get_gid() or "title") for text in figure.texts]
    return found


def _label(text: Text, renderer, px: float, owner: str) -> Label | None:
    """A visible, non-empty text as a Label in px."""
    if not text.get_visible() or not text.get_text().strip():
        return None
    extent = text.get_window_extent(renderer)
    return Label(text.get_text(), (extent.x0 * px, extent.y0 * px, extent.x1 * px, extent.y1 * px),
                 float(text.get_fontsize()), owner)


def _node_boxes(ax, px: float) -> list:
    """Boxes (x0, y0, x1, y1) in px of the node patches: collections other than lines, and patches not edges."""
    paths = []
    for collection in ax.collections:
        if not isinstance(collection, LineCollection):
            paths += [path.transformed(collection.get_transform()) for path in collection.get_paths()]
    paths += [patch.get_path().transformed(patch.get_transform()) for patch in ax.patches
              if not (patch.get_gid() or "").startswith("edge:")]
    return [tuple(float(v) * px for v in path.get_extents().extents) for path in paths if len(path.vertices)]


def _name_boxes(boxes: list, labels: list) -> dict:
    """node -> box: the node whose text centre a box holds (smallest box first); boxes without text `#box{i}`."""
    named, free = {}, list(range(len(boxes)))
    centres = {}
    for label in labels:
        if not label.owner.startswith("edge:") and label.owner not in ("legend", "title", "text", "hidden_note"):
            centres.setdefault(label.owner, ((label.box[0] + label.box[2]) / 2, (label.box[1] + label.box[3]) / 2))
    for node, (x, y) in centres.items():
        holding = [i for i in free if boxes[i][0] <= x <= boxes[i][2] and boxes[i][1] <= y <= boxes[i][3]]
        if holding:
            i = min(holding, key=lambda k: (boxes[k][2] - boxes[k][0]) * (boxes[k][3] - boxes[k][1]))
            named[node] = boxes[i]
            free.remove(i)
    named.update((f"#box{i}", boxes[i]) for i in free)
    return named


def _edges(ax, px: float, nodes: dict) -> list:
    """Edge arrows (gid `edge:u->v`) and plain line collections as Edges, their ends matched to node boxes."""
    edges = []
    for patch in ax.patches:
        gid = patch.get_gid() or ""
        if gid.startswith("edge:"):
            lines = patch.get_path().transformed(patch.get_transform()).to_polygons(closed_only=False)
            edges.append(_edge(gid[5:], [np.asarray(line) * px for line in lines], nodes))
    for collection in ax.collections:
        if isinstance(collection, LineCollection):
            transform = collection.get_transform()
            for i, segment in enumerate(collection.get_segments()):
                edges.append(_edge(f"line{i}", [transform.transform(np.asarray(segment)) * px], nodes))
    return [edge for edge in edges if edge.lines and len(edge.lines[0])]


def _edge(key: str, lines: list, nodes: dict) -> Edge:
    """An Edge whose tail and head are the nodes nearest the first and last point of its first polyline."""
    shaft = lines[0] if lines else np.zeros((0, 2))
    return Edge(key, nearest_node(shaft[0], nodes), nearest_node(shaft[-1], nodes), lines) if len(shaft) \
        else Edge(key, None, None, lines)


def nearest_node(point, nodes: dict) -> str | None:
    """The node whose box is nearest `point` (distance 0 inside), None if there are no nodes."""
    if not nodes:
        return None
    names = list(nodes)
    boxes = np.array([nodes[n] for n in names])
    dx = np.maximum(np.maximum(boxes[:, 0] - point[0], point[0] - boxes[:, 2]), 0)
    dy = np.maximum(np.maximum(boxes[:, 1] - point[1], point[1] - boxes[:, 3]), 0)
    return names[int(np.argmin(dx * dx + dy * dy))]


def _drawn_scale(figure) -> float:
    """How much gradmagic shrank its drawing: its axes' data units are inches at full size (1: not shrunk)."""
    for ax in figure.axes:
        if ax.patches or ax.collections:
            (x0, _), (x1, _) = ax.transData.transform([(0.0, 0.0), (1.0, 0.0)])
            inches = abs(x1 - x0) / figure.dpi
            return float(min(1.0, max(inches, 0.05)))
    return 1.0


def labelled_nodes(picture: Picture) -> int:
    """How many nodes carry at least one text (a picture of dots has none)."""
    return len(set(picture.nodes) & {label.owner for label in picture.labels})


def crossing_pairs(picture: Picture, *, near: float = NEAR) -> list:
    """(edge, edge) pairs whose polylines intersect away from the nodes both touch."""
    pairs = []
    extents = [_extent(edge.lines) for edge in picture.edges]
    for i, one in enumerate(picture.edges):
        for j in range(i + 1, len(picture.edges)):
            other = picture.edges[j]
            if not _boxes_meet(extents[i], extents[j]):
                continue
            shared = [picture.nodes[n] for n in {one.tail, one.head} & {other.tail, other.head} if n in picture.nodes]
            points = _intersections(one.lines, other.lines)
            if any(not any(_inside(p, _grow(box, near)) for box in shared) for p in points):
                pairs.append((one, other))
    return pairs


def crossings(picture: Picture, *, near: float = NEAR) -> int:
    """How many pairs of edges cross (see crossing_pairs)."""
    return len(crossing_pairs(picture, near=near))


def label_edge_pairs(picture: Picture) -> list:
    """(edge label, edge) pairs where the label's box meets an edge other than its own."""
    return [(label, edge) for label in picture.labels if label.owner.startswith("edge:") for edge in picture.edges
            if "edge:" + edge.key != label.owner and any(_line_meets_box(line, label.box) for line in edge.lines)]


def label_edge_overlaps(picture: Picture) -> int:
    """How many edge labels sit on other edges, counted per (label, edge) pair."""
    return len(label_edge_pairs(picture))


def node_label_pairs(picture: Picture) -> list:
    """(text, node) pairs where a text meets another node's box, and (text, text) pairs of different owners."""
    on_nodes = [(label, node) for label in picture.labels for node, box in picture.nodes.items()
                if node != label.owner and _boxes_meet(label.box, box)]
    labels = picture.labels
    return on_nodes + [(one, other) for i, one in enumerate(labels) for other in labels[i + 1:]
                       if one.owner != other.owner and _boxes_meet(one.box, other.box)]


def node_label_overlaps(picture: Picture) -> int:
    """How many texts sit on another node's box or on another owner's text, counted per pair."""
    return len(node_label_pairs(picture))


def display_scale(width_px: float, output_width: float = OUTPUT_WIDTH) -> float:
    """The scale a picture `width_px` wide is shown at in an output area `output_width` px wide."""
    return min(1.0, output_width / width_px) if width_px > 0 else 1.0


def smallest_text_px(picture: Picture, output_width: float = OUTPUT_WIDTH) -> float | None:
    """The smallest text's height in CSS px as shown: font points x 100/72 x display scale (None: no text)."""
    if not picture.labels:
        return None
    points = min(label.points for label in picture.labels)
    return points * CSS_PX_PER_INCH / 72.0 * display_scale(picture.width, output_width)


def _extent(lines: list) -> tuple:
    points = np.concatenate(lines) if lines else np.zeros((1, 2))
    return (*points.min(axis=0), *points.max(axis=0))


def _boxes_meet(a: tuple, b: tuple) -> bool:
    """Whether two boxes (x0, y0, x1, y1) share more than an edge."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _grow(box: tuple, by: float) -> tuple:
    return box[0] - by, box[1] - by, box[2] + by, box[3] + by


def _inside(point, box: tuple) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _segments(lines: list) -> tuple:
    """Start and end points of every segment of some polylines, as two (n, 2) arrays."""
    starts = [line[:-1] for line in lines if len(line) > 1]
    ends = [line[1:] for line in lines if len(line) > 1]
    return (np.concatenate(starts), np.concatenate(ends)) if starts else (np.zeros((0, 2)), np.zeros((0, 2)))


def _intersections(one: list, other: list) -> np.ndarray:
    """Points where a segment of `one` meets a segment of `other` (collinear overlaps left out)."""
    (p, p2), (q, q2) = _segments(one), _segments(other)
    r, s = (p2 - p)[:, None, :], (q2 - q)[None, :, :]
    qp = q[None, :, :] - p[:, None, :]
    denom = r[..., 0] * s[..., 1] - r[..., 1] * s[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (qp[..., 0] * s[..., 1] - qp[..., 1] * s[..., 0]) / denom
        u = (qp[..., 0] * r[..., 1] - qp[..., 1] * r[..., 0]) / denom
    hit = (denom != 0) & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
    rows, cols = np.nonzero(hit)
    return p[rows] + t[rows, cols][:, None] * (p2 - p)[rows]


def _line_meets_box(line: np.ndarray, box: tuple) -> bool:
    """Whether a polyline has a point inside `box` or crosses one of its sides."""
    line = np.asarray(line)
    if len(line) == 0:
        return False
    if np.any((line[:, 0] > box[0]) & (line[:, 0] < box[2]) & (line[:, 1] > box[1]) & (line[:, 1] < box[3])):
        return True
    x0, y0, x1, y1 = box
    sides = [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])]
    return len(line) > 1 and len(_intersections([line], sides)) > 0
