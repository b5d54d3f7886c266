"""The bands around the graph: the title and the legend above it, the notes under it (what is hidden or collapsed,
what edge labels and captions mean), each on a light backing."""
from __future__ import annotations

import math

import networkx as nx
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .blocks import BLOCK_KINDS
from .edges import EDGE_COLOUR, MARK_COLOUR, NO_GRAD_COLOUR
from ..graph import ROLES
from .nodes import BLOCK_BORDER, BLOCK_COLOURS, MARK_BORDER, OP_COLOURS, ROLE_COLOURS, TEXT_GREY
from .placement import MARGIN, text_width, wrap

__all__ = ["legend_items", "legend_height", "draw_legend", "caption_note", "notes_under", "notes_height",
           "draw_notes", "BACKING"]

#: A light backing under text, so it reads under any notebook theme.
BACKING = {"boxstyle": "round,pad=0.25", "fc": "white", "ec": "none", "alpha": 0.92}

_NOTE_FONT = 8.0
_NOTE_LINE = 0.17  # inches per line of the note under the picture


def legend_items(view: nx.DiGraph, *, flowing: bool, marked: bool) -> list:
    """Legend handles for the roles present, op nodes, gradient flows, dashed edges and diagnostic marks if any."""
    roles = {d.get("role") for _, d in view.nodes(data=True) if d.get("kind") == "tensor"}
    items = [Patch(facecolor=ROLE_COLOURS[r][0], edgecolor=ROLE_COLOURS[r][1], label=r) for r in ROLES if r in roles]
    if any(d.get("kind") == "op" for _, d in view.nodes(data=True)):
        items.append(Patch(facecolor=OP_COLOURS[0], edgecolor=OP_COLOURS[1], label="op"))
    kinds = {d.get("kind") for _, d in view.nodes(data=True)}
    items += [Patch(facecolor=fill, edgecolor=border, linewidth=BLOCK_BORDER, label=text)
              for kind, (fill, border, text) in BLOCK_COLOURS.items() if kind in kinds and kind in BLOCK_KINDS]
    if flowing:
        items.append(Line2D([], [], color=EDGE_COLOUR, linewidth=2.5, label="∇ flow"))
    if not all(d.get("differentiable", True) for _, _, d in view.edges(data=True)):
        items.append(Line2D([], [], color=NO_GRAD_COLOUR, linestyle="--", label="no gradient"))
    if marked:
        items.append(Patch(facecolor="white", edgecolor=MARK_COLOUR, linewidth=MARK_BORDER, label="⚠ diagnostic"))
    return items


def _legend_columns(items: list, width: float) -> int:
    """The most legend columns that fit in `width` inches (filled top to bottom, as matplotlib does)."""
    entries = [0.36 + text_width(item.get_label(), _NOTE_FONT) for item in items]
    for ncol in range(len(entries), 1, -1):
        rows, tall = divmod(len(entries), ncol)
        ends = np.cumsum([rows + 1] * tall + [rows] * (ncol - tall)).tolist()
        if sum(max(entries[a:b]) for a, b in zip([0] + ends, ends)) <= width - 0.2:
            return ncol
    return 1


def draw_legend(figure: Figure, items: list, title: str | None) -> None:
    """A small legend (and the title) on light backings in the band above the graph."""
    fw, fh = figure.get_size_inches()
    if title:
        figure.text((MARGIN + 0.05) / fw, 1 - 0.1 / fh, title, fontsize=11, ha="left", va="top", parse_math=False,
                    bbox=BACKING)
    if items:
        below = (0.4 if title else 0.05) / fh
        legend = figure.legend(handles=items, loc="upper left", bbox_to_anchor=(MARGIN / fw, 1 - below),
                               frameon=True, fancybox=True, facecolor="white", edgecolor="none", framealpha=0.92,
                               fontsize=_NOTE_FONT, ncol=_legend_columns(items, fw - 2 * MARGIN),
                               handlelength=1.4, borderaxespad=0, borderpad=0.3, columnspacing=1.0)
        legend.set_gid("legend")


def legend_height(items: list, title: str | None, width: float) -> float:
    """Inches of the band above the graph: the title's line and the legend's rows in `width` inches."""
    rows = math.ceil(len(items) / _legend_columns(items, width)) if items else 0
    return (0.35 if title else 0.0) + (0.25 * rows + 0.15 if items else 0.0)


def caption_note(lines: dict) -> str | None:
    """What ∂ in node captions means, when one shows it (∇ alone reads as the tensor's gradient)."""
    if any("∂" in text for node_lines in lines.values() for text, _ in node_lines):
        return "Captions: ∇ the tensor's .grad; ∂ the gradient that reached it in the last backward pass."
    return None


def notes_under(hidden: str | None, fitted: str | None, flows: str | None, *, width: float) -> list:
    """(gid, wrapped lines) of the notes under the picture: what is hidden or collapsed, what edge labels mean."""
    collapsed = "\n".join(n for n in (hidden, fitted) if n)
    notes = [("hidden_note", collapsed), ("flow_note", flows)]
    return [(gid, wrap(text, width, _NOTE_FONT)) for gid, text in notes if text]


def notes_height(notes: list) -> float:
    """Inches of the band under the graph that `notes` (from notes_under) take."""
    return _NOTE_LINE * sum(len(lines) for _, lines in notes) + 0.15 * len(notes)


def draw_notes(figure: Figure, notes: list) -> None:
    """The notes stacked upwards from the bottom margin, each on a light backing."""
    fw, fh = figure.get_size_inches()
    bottom = MARGIN + 0.05
    for gid, lines in reversed(notes):
        figure.text((MARGIN + 0.05) / fw, bottom / fh, "\n".join(lines), fontsize=_NOTE_FONT, ha="left",
                    va="bottom", color=TEXT_GREY, linespacing=1.5, gid=gid, parse_math=False, bbox=BACKING)
        bottom += _NOTE_LINE * len(lines) + 0.15
