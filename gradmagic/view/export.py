"""Export stage: the graph as GraphML, node-link JSON or DOT text, and a figure as PNG, SVG or PDF."""
from __future__ import annotations

import hashlib
import io
import json
import math
import re
import struct
import zlib
from pathlib import Path

import networkx as nx

from .fonts import figure_texts
from .layout import DEFAULT_RANKDIR

__all__ = ["GRAPH_SUFFIXES", "IMAGE_SUFFIXES", "SUFFIXES", "PNG_DPI", "CSS_PX_PER_INCH", "graph_bytes", "figure_bytes",
           "check_save_path", "plain_graph", "png_dpi", "display_size", "smallest_text_pt"]

GRAPH_SUFFIXES = (".graphml", ".json", ".dot")
IMAGE_SUFFIXES = (".png", ".svg", ".pdf")
SUFFIXES = IMAGE_SUFFIXES + GRAPH_SUFFIXES

#: One figure inch is 100 CSS px at 1:1; PNGs hold twice that many pixels, so they stay crisp on a 2x screen.
CSS_PX_PER_INCH = 100
PNG_DPI = 2 * CSS_PX_PER_INCH
#: Above this many pixels at PNG_DPI a picture is rendered with fewer (down to 1:1), so no output runs to tens of MB.
PNG_MAX_PIXELS = 16_000_000
#: PNG rows left unfiltered and deflated at zlib level 1: a third of the time of Pillow's writer (which tries every row
#: filter), as few bytes on these pictures (issue 13: 0.017 against 0.047 s for a small model, 0.041 against 0.108 s
#: for the 1,000-step RNN at PNG_DPI; 167 KB against 178 KB, 328 against 330 KB).
_PNG_ZLIB_LEVEL = 1
#: The whole figure (as display_size says), its text unhinted: at 2 px per CSS px hinting buys no sharpness and costs
#: a fifth of the drawing (0.136 against 0.106 s for a small model; glyphs a hair narrower, never wider).
_PNG_RC = {"savefig.bbox": "standard", "text.hinting": "no_hinting"}


def check_save_path(path) -> Path:
    """The path, or a ValueError naming what is wrong with it (suffix, missing folder)."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{str(path)!r}: unknown suffix {path.suffix or '(none)'!r}; use one of {' '.join(SUFFIXES)}")
    if not path.parent.is_dir():
        raise ValueError(f"{str(path)!r}: folder {str(path.parent)!r} does not exist")
    return path


def graph_bytes(graph: nx.MultiDiGraph, suffix: str) -> bytes:
    """The graph serialised for `.graphml`, `.json` or `.dot`."""
    suffix = suffix.lower()
    if suffix == ".graphml":
        buffer = io.BytesIO()
        nx.write_graphml(_flat_graph(graph), buffer)
        return buffer.getvalue()
    if suffix == ".json":
        data = nx.node_link_data(plain_graph(graph), edges="edges")
        return json.dumps(data, indent=1, allow_nan=False).encode()
    if suffix == ".dot":
        return _dot_text(graph).encode()
    raise ValueError(f"unknown graph suffix {suffix!r}; use one of {' '.join(GRAPH_SUFFIXES)}")


def figure_bytes(figure, suffix: str, *, id_prefix: str | None = None) -> bytes:
    """A matplotlib Figure as PNG (at png_dpi), SVG (text as <text>) or PDF bytes, with no date metadata.

    SVG element ids all start with `id_prefix`; without one, with a prefix made from the picture itself, so the
    same figure gives the same bytes and two different pictures inlined in one page share no id."""
    fmt = suffix.lower().lstrip(".")
    if fmt == "png":
        return _png(figure, png_dpi(figure))
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}[fmt]
    buffer = io.BytesIO()
    import matplotlib

    # facecolor/edgecolor "auto": the figure's own background (transparent when render.py makes it so)
    with matplotlib.rc_context({"svg.hashsalt": "gradmagic", "svg.fonttype": "none"}):
        figure.savefig(buffer, format=fmt, metadata=metadata, facecolor="auto", edgecolor="auto")
    if fmt != "svg":
        return buffer.getvalue()
    text = buffer.getvalue().decode()
    prefix = id_prefix or "gm" + hashlib.sha1(text.encode()).hexdigest()[:10] + "-"
    return _scoped_style(_prefixed_ids(text, prefix), prefix + "svg").encode()


def _png(figure, dpi: float) -> bytes:
    """The figure's RGBA pixels at `dpi` as matplotlib draws them (with _PNG_RC) for a PNG, written as one: rows
    unfiltered, deflated at _PNG_ZLIB_LEVEL, the pixel density (pHYs) and no other metadata."""
    import matplotlib
    import numpy as np

    buffer = io.BytesIO()
    with matplotlib.rc_context(_PNG_RC):
        figure.savefig(buffer, format="rgba", dpi=dpi, facecolor="auto", edgecolor="auto")
    width, height = _pixel_size(figure, dpi)
    pixels = np.frombuffer(buffer.getbuffer(), np.uint8).reshape(height, width * 4)
    rows = np.empty((height, width * 4 + 1), np.uint8)
    rows[:, 0] = 0  # each row starts with its filter type: none
    rows[:, 1:] = pixels
    per_metre = int(dpi / 0.0254 + 0.5)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA, deflate, no interlace
    return b"\x89PNG\r\n\x1a\n" + b"".join(_png_chunk(kind, data) for kind, data in (
        (b"IHDR", header), (b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)),
        (b"IDAT", zlib.compress(rows, _PNG_ZLIB_LEVEL)), (b"IEND", b"")))


def _pixel_size(figure, dpi: float) -> tuple:
    """(width, height) in pixels of the figure drawn at `dpi`, as matplotlib's canvas sizes its renderer (4.705 in at
    200 dpi is 941 px there, 940.99... in plain arithmetic)."""
    shown = figure.get_dpi()
    figure.set_dpi(dpi)
    try:
        return figure.canvas.get_width_height(physical=True)
    finally:
        figure.set_dpi(shown)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _prefixed_ids(svg: str, prefix: str) -> str:
    """The SVG with every id, and every reference to one (#id, url(#id)), starting with `prefix`."""
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    return re.sub(r'(\bid="|href="#|url\(#)([^")]+)',
                  lambda m: m.group(1) + (prefix + m.group(2) if m.group(2) in ids else m.group(2)), svg)


def _scoped_style(svg: str, root_id: str) -> str:
    """The SVG with its root given `root_id` and its style sheet's rules kept to it: inlined in a page,
    matplotlib's `*{stroke-linejoin: round}` would otherwise restyle every SVG icon of the page."""
    svg = svg.replace("<svg ", f'<svg id="{root_id}" ', 1)
    return re.sub(r"(<style[^>]*>)(.*?)(</style>)",
                  lambda m: m.group(1) + re.sub(r"(^|})\s*([^{}]+)\{", rf"\1#{root_id} \2{{", m.group(2)) + m.group(3),
                  svg, flags=re.S)


def png_dpi(figure) -> float:
    """PNG_DPI (2 px per CSS px), or less for a picture that would pass PNG_MAX_PIXELS, never under 1:1."""
    width, height = figure.get_size_inches()
    return max(CSS_PX_PER_INCH, min(PNG_DPI, math.sqrt(PNG_MAX_PIXELS / (width * height))))


def display_size(figure) -> tuple:
    """(width, height) of the figure in CSS px at 1:1 (CSS_PX_PER_INCH px per inch)."""
    width, height = figure.get_size_inches()
    return round(width * CSS_PX_PER_INCH), round(height * CSS_PX_PER_INCH)


def smallest_text_pt(figure) -> float | None:
    """The smallest font size (points) of any visible, non-empty text in the figure (legend texts included)."""
    sizes = [text.get_fontsize() for text in figure_texts(figure) if text.get_text().strip()]
    return min(sizes) if sizes else None


def plain_graph(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """A copy whose attributes are strict JSON types only: tuples as lists, dict keys as text, NaN and ±inf as
    "NaN", "Infinity", "-Infinity" (what JavaScript's Number() and Python's float() read back) and complex
    numbers as the text complex() reads back ("1+2j")."""
    out = nx.MultiDiGraph(**{k: _plain(v) for k, v in graph.graph.items()})
    out.add_nodes_from((n, {k: _plain(v) for k, v in d.items()}) for n, d in graph.nodes(data=True))
    out.add_edges_from((u, v, k, {a: _plain(b) for a, b in d.items()}) for u, v, k, d in graph.edges(keys=True, data=True))
    return out


#: How NaN (0), inf (1) and -inf (-1) are written in JSON, which has no numbers for them.
_NON_FINITE = {0: "NaN", 1: "Infinity", -1: "-Infinity"}


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return _NON_FINITE[math.copysign(1, value) if math.isinf(value) else 0]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, complex):
        return repr(value).strip("()")
    return str(value)


def _flat_graph(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """A copy GraphML can hold: scalars kept, None dropped, lists and dicts as JSON text."""
    def flat(attrs: dict) -> dict:
        return {k: v if isinstance(v, (bool, int, float, str)) else _plain(v) if isinstance(v, complex)
                else json.dumps(_plain(v), allow_nan=False) for k, v in attrs.items() if v is not None}

    out = nx.MultiDiGraph(**flat(graph.graph))
    out.add_nodes_from((n, flat(d)) for n, d in graph.nodes(data=True))
    out.add_edges_from((u, v, str(k), flat(d)) for u, v, k, d in graph.edges(keys=True, data=True))
    return out


def _dot_text(graph: nx.MultiDiGraph) -> str:
    def quote(text) -> str:
        return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    lines = ["digraph autograd {", f"  rankdir={DEFAULT_RANKDIR};"]
    for node, data in graph.nodes(data=True):
        if data["kind"] == "op":
            lines.append(f"  {quote(node)} [shape=ellipse, label={quote(data['label'])}];")
        else:
            label = data["label"] or data["grad_fn"] or "tensor"
            lines.append(f"  {quote(node)} [shape=box, label={quote(label)}, role={quote(data['role'])}];")
    for u, v, data in graph.edges(data=True):
        style = ", style=dashed" if data.get("differentiable") is False else ""
        lines.append(f"  {quote(u)} -> {quote(v)} [label={quote(data['slot'])}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
