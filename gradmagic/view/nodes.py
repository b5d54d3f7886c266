"""Nodes of the picture: the lines of text each shows, the box around them, and how both are drawn."""
from __future__ import annotations

import networkx as nx
import numpy as np
from matplotlib.collections import PatchCollection, PolyCollection
from matplotlib.patches import FancyBboxPatch

from .blocks import BLOCK_KINDS
from .edges import MARK_COLOUR
from .placement import Placement, text_width
from ..text import tensor_caption

__all__ = ["node_lines", "box_size", "draw_nodes", "node_colours", "FONT", "ROLE_COLOURS", "OP_COLOURS",
           "BLOCK_COLOURS", "BLOCK_BORDER", "MARK_BORDER", "TEXT_GREY", "MARK_TEXT", "DETAILS", "BIG_VIEW"]

#: Tensor role -> (fill, border) colours.
ROLE_COLOURS = {"leaf": ("#c7e9c0", "#31a354"), "named": ("#c6dbef", "#3182bd"),
                "intermediate": ("#e6e1f3", "#8c84c0"), "output": ("#fdd0a2", "#e6550d"),
                "constant": ("#f0f0f0", "#a0a0a0")}
#: Op nodes are neutral: (fill, border).
OP_COLOURS = ("#ffffff", "#707070")
#: Collapsed blocks, drawn with a thick border: kind -> (fill, border, legend text).
BLOCK_COLOURS = {"cluster": ("#fdf1d3", "#b7791f", "module call"), "loop": ("#dcf1ee", "#2c7a6e", "folded loop"),
                 "optimizer": ("#ece6f6", "#6b46c1", "optimizer step")}
_OTHER_BLOCK = ("#f3f3f3", "#606060", "block")  # a kind of block this module does not know yet
#: Points at full size of each kind of line a node can show.
FONT = {"tensor": 10.0, "summary": 8.5, "op": 9.0, "block": 10.0, "folded": 8.0, "caption": 8.0, "mark": 8.0}
#: Points: collapsed blocks stand out from single ops, marks from both.
BLOCK_BORDER, MARK_BORDER = 2.2, 2.6
#: Grey of secondary text, dark enough (5.7:1) on every node fill.
TEXT_GREY = "#5a5a5a"
#: Levels of detail, most first: every line, without folded values, long lines wrapped, names only, dots.
DETAILS = (4, 3, 2, 1, 0)
#: Nodes: a larger view is drawn plainly (dots as rectangles in one collection; edges as one, unlabelled).
BIG_VIEW = 300

_PAD = (0.08, 0.045)  # inches inside a box: across the text, above and below it
_DOT = 0.14  # inches: a node's size when labels would be unreadable
_MAX_CHARS = {"tensor": 44, "summary": 44, "op": 32, "block": 44, "folded": 44, "caption": 56, "mark": 44}
_UNCUT = ("tensor", "summary")  # tensor captions: text.py keeps their lines short, and the gradient is last
#: Dark red of a diagnostic's text: 5.5:1 on the palest fill, where the marks' own red would be 3.5:1.
MARK_TEXT = "#a50f15"
_TEXT_COLOURS = {"folded": TEXT_GREY, "caption": "#4a4a4a", "summary": "#333333", "mark": MARK_TEXT}
_LINE = 1.3  # line height per point of font size
_WRAP = 24  # characters: at the wrapped level of detail, longer lines are broken in two


def node_lines(data: dict, detail: int, marked: bool = False, note: str | None = None) -> list:
    """(text, font key) lines drawn in a node, a ⚠ first when marked; none when nodes are dots (detail 0)."""
    if detail == 0:
        return []
    kind = data.get("kind")
    if kind in BLOCK_KINDS:
        lines = [(data.get("label") or kind, "block")]
        if detail > 1:
            lines += _split(data.get("caption"), "caption")
    elif detail == 1:
        name = data.get("op") if kind == "op" else data.get("label")
        lines = [(name, "op" if kind == "op" else "tensor")] if name else []
    elif kind == "op":
        lines = [(data.get("label") or data.get("op") or "op", "op")]
        if detail > 3:
            lines += _split(data.get("folded"), "folded")
    else:
        first, *rest = tensor_caption(data).split("\n")
        lines = [(first, "tensor"), *((line, "summary") for line in rest)]
    if marked and lines:
        lines[0] = (f"⚠ {lines[0][0]}", lines[0][1])
    if note and detail > 1:
        lines += _split(note, "mark")
    if detail == 2:
        lines = [part for text, key in lines for part in _wrapped(text, key)]
    return [(_cut(text, key), key) for text, key in lines]


def _wrapped(text: str, key: str) -> list:
    """A long line as two: at ` · ` (value, then gradient) if it has one, else at the space nearest its middle."""
    if len(text) <= _WRAP or key in ("block", "op"):
        return [(text, key)]
    for mark in (" · ", " ∇", " ∂"):  # the gradient on a line of its own
        cut = text.rfind(mark)
        if cut > 0:
            return [(text[:cut], key), (text[cut + len(mark) - 1:].lstrip(" ·"), key)]
    spaces = [i for i, char in enumerate(text) if char == " "]
    if not spaces:
        return [(text, key)]
    cut = min(spaces, key=lambda i: abs(i - len(text) / 2))
    return [(text[:cut], key), (text[cut + 1:], key)]


def _split(text, key: str) -> list:
    """One (line, key) per line of a text that may hold several, none for an empty one."""
    return [(line, key) for line in str(text).split("\n") if line] if text else []


def _cut(text: str, key: str) -> str:
    """A line shortened to its kind's limit with `…` (tensor captions never: text.py bounds them)."""
    limit = _MAX_CHARS[key]
    return text if key in _UNCUT or len(text) <= limit else text[:limit - 1] + "…"


def box_size(lines: list, data: dict) -> tuple:
    """Width and height in inches of a node's box around its lines."""
    if not lines:
        return (_DOT, _DOT) if data.get("kind") == "tensor" else (_DOT * 0.7, _DOT * 0.7)
    width = max(text_width(text, FONT[key]) for text, key in lines) + 2 * _PAD[0]
    return width, sum(FONT[key] for _, key in lines) * _LINE / 72 + 2 * _PAD[1]


def draw_nodes(ax, view: nx.DiGraph, place: Placement, lines: dict, scale: float, marked: set) -> None:
    """Rounded boxes for tensors, pills for ops, thick boxes for blocks (one collection), and their text lines."""
    if len(view) > BIG_VIEW and not any(lines.values()):  # thousands of dots: rounded patches cost seconds
        ax.add_collection(_plain_boxes(view, place, marked))
    else:
        patches = [_node_patch(data, *place.box(node), marked=node in marked) for node, data in view.nodes(data=True)]
        ax.add_collection(PatchCollection(patches, match_original=True, zorder=2))
    for node in view:
        x, y = place.xy(*place.centre[node])
        heights = [FONT[key] * _LINE / 72 for _, key in lines[node]]
        top = y + sum(heights) / 2
        for (text, key), height in zip(lines[node], heights):
            ax.text(x, top - height / 2, text, fontsize=FONT[key] * scale, ha="center", va="center_baseline",
                    color=_TEXT_COLOURS.get(key, "black"), zorder=3, gid=f"{node}.{key}",
                    parse_math=False, fontweight="bold" if key == "block" else "normal")
            top -= height


def node_colours(data: dict) -> tuple:
    """(fill, border) of a node by its kind and role."""
    if data.get("kind") in BLOCK_KINDS:
        return BLOCK_COLOURS.get(data["kind"], _OTHER_BLOCK)[:2]
    return ROLE_COLOURS.get(data.get("role"), OP_COLOURS) if data.get("kind") == "tensor" else OP_COLOURS


def _node_patch(data: dict, x: float, y: float, w: float, h: float, *, marked: bool = False) -> FancyBboxPatch:
    """Rounded box (tensor), pill (op) or thick-bordered box (module call, folded loop) centred at (x, y)."""
    block = data.get("kind") in BLOCK_KINDS
    radius = min(h / 2, 0.12) if data.get("kind") == "op" else min(0.06, h / 3)
    fill, border = node_colours(data)
    width = MARK_BORDER if marked else BLOCK_BORDER if block else 1.0
    return FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=f"round,pad=0,rounding_size={radius}",
                          facecolor=fill, edgecolor=MARK_COLOUR if marked else border, linewidth=width,
                          linestyle="--" if data.get("role") == "constant" else "-")


def _plain_boxes(view: nx.DiGraph, place: Placement, marked: set) -> PolyCollection:
    """All node boxes as plain rectangles in one collection: fast for thousands of nodes."""
    boxes = np.array([place.box(node) for node in view]).reshape(-1, 4)
    x, y, hw, hh = boxes[:, 0], boxes[:, 1], boxes[:, 2] / 2, boxes[:, 3] / 2
    corners = np.stack([np.stack([x - hw, y - hh], 1), np.stack([x + hw, y - hh], 1),
                        np.stack([x + hw, y + hh], 1), np.stack([x - hw, y + hh], 1)], 1)
    colours = [(node_colours(d)[0], MARK_COLOUR if n in marked else node_colours(d)[1])
               for n, d in view.nodes(data=True)]
    widths = [MARK_BORDER if n in marked else BLOCK_BORDER if d.get("kind") in BLOCK_KINDS else 0.6
              for n, d in view.nodes(data=True)]
    return PolyCollection(corners, facecolors=[c[0] for c in colours], edgecolors=[c[1] for c in colours],
                          linewidths=widths, zorder=2)
