"""The object a user holds: the graph, its picture and table, `save()`, and rich display in any front end."""
from __future__ import annotations

import base64
import ctypes
import functools
import html
import re
import uuid
from pathlib import Path

import networkx as nx
from matplotlib.backends.backend_agg import FigureCanvasAgg

from .view import export, fonts, report
from .graph import build_graph, named_graph, tensor_nodes
from .record.trace import Trace

__all__ = ["Result", "full_capture_only"]

#: Pictures wider than this (CSS px) are shown at 1:1 in a scrolling frame instead of shrinking to the page.
SCROLL_ABOVE_PX = 900
#: Summary lines in the picture's alt text.
ALT_LINES = 2
#: A warning carries its own colours (dark text on pale amber, 10:1), so it reads on light and dark pages alike.
WARNING_STYLE = "background:#fff3cd;color:#4d3800;border-left:4px solid #d39e00;padding:2px 8px;margin:4px 0"


class Result:
    """What one captured run did to tensors: `.graph` (networkx), `.figure`, `.table`, `.save(path)`."""

    def __init__(self, trace: Trace, *, error: BaseException | None = None):
        self.trace = trace  # what the run did to tensors, as plain Python columns
        self.error = error
        self.image_format = "png"
        self.show_graph = True
        self.show_table = True
        self.show_all = False
        self.rankdir: str | None = None  # None: the picture chooses (top to bottom unless only LR fits)
        self.depth: int | None = None
        self.max_nodes: int | None = None
        self.explained: list = []  # Explanations shown under the picture (%%autograd --explain NAME)
        self.gradient_check = None  # a GradCheck shown under the picture (%%autograd --check)
        self._graph: nx.MultiDiGraph | None = None
        self._figure = None
        self._diagnostics: list | None = None
        self._summary: list | None = None

    def __del__(self):
        if getattr(self, "_graph", None) is not None:
            _drop_cached_views(self._graph)

    @property
    def graph(self) -> nx.MultiDiGraph:
        """The networkx.MultiDiGraph of the graph contract (ARCHITECTURE.md), built on first use."""
        if self._graph is None:
            self._graph = build_graph(self.trace)
        return self._graph

    @property
    def figure(self):
        """The matplotlib Figure of the graph (drawn on first use, never through pyplot)."""
        if self._figure is None:
            from .view.render import render_figure

            self._figure = render_figure(self.graph, show_all=self.show_all, rankdir=self.rankdir,
                                         depth=self.depth, max_nodes=self.max_nodes, marks=self._marks())
        return self._figure

    def _marks(self) -> dict | None:
        """The nodes and edges the diagnostics point at, for the picture to mark."""
        if not self.diagnostics:
            return None
        return {"nodes": {n for d in self.diagnostics for n in d.nodes},
                "edges": {tuple(e) for d in self.diagnostics for e in d.edges}}

    @property
    def diagnostics(self) -> list:
        """What went wrong with the gradients (lost, cut, accumulated, NaN ...), each a one-line message."""
        if self._diagnostics is None:
            from .analysis.diagnose import diagnose

            self._diagnostics = diagnose(self.graph)
        return self._diagnostics

    def _summary_lines(self) -> list:
        """report.summary_lines of the graph, made once: the text, the HTML and the alt text each show it."""
        if self._summary is None:
            self._summary = report.summary_lines(self.graph)
        return self._summary

    def explain(self, name: str, root: str | None = None, *, pass_index: int | None = None, max_paths: int = 10):
        """d root / d name in one backward pass (by default the last that reached `name`) as the chain rule over
        named variables and the sum over paths (an Explanation); see gradmagic.analysis.explain.explain."""
        from .analysis.explain import explain

        self._needs_full_capture("explain()")
        return explain(self.graph, name, root=root, pass_index=pass_index, max_paths=max_paths, trace=self.trace)

    def check(self, *, eps: float = 1e-6, pass_index: int = -1):
        """The autograd gradients of one backward pass (the last by default) against central finite differences
        in float64 (a GradCheck)."""
        from .analysis.gradcheck import check_gradients

        self._needs_full_capture("check()")
        return check_gradients(self, eps=eps, pass_index=pass_index)

    def _needs_full_capture(self, what: str) -> None:
        if self.trace.lean:
            raise ValueError(full_capture_only(what, "this result is from a lean one: run it again without lean"))

    @property
    def table(self) -> str:
        """The named tensors as aligned text."""
        return report.text_table(self.graph)

    @property
    def empty(self) -> bool:
        """True when the run touched no tensor."""
        return not self.trace.num_tensors

    def __repr__(self) -> str:
        tensors = self.trace.num_tensors
        return f"<gradmagic.Result: {tensors} tensors, {len(self.trace.funcs)} ops, " \
               f"{len(self.trace.passes)} backward pass(es)>"

    def tensor(self, name: str) -> dict:
        """The attributes of the tensor `name` held when the run ended (`model.0.weight`, `xs[0]`), of one
        version by its label (`w₁`), or of the last tensor a name inside a function was bound to (`f.y`)."""
        node = self.graph.graph.get("bindings", {}).get(name)
        if node is None:
            node = next((n for n in tensor_nodes(self.graph) if self.graph.nodes[n]["label"] == name), None)
        if node is None:
            nodes = tensor_nodes(self.graph, name)
            node = nodes[-1] if nodes else None
        if node is None:
            raise KeyError(f"no tensor named {name!r}; named: {', '.join(self.names()) or 'none'}")
        return self.graph.nodes[node]

    def names(self) -> list:
        """The names of the named tensors, in the order they were bound."""
        return list(dict.fromkeys(d["name"] for _, d in self.graph.nodes(data=True)
                                  if d["kind"] == "tensor" and d["name"]))

    def named_graph(self) -> nx.DiGraph:
        """Named tensors joined wherever a path of ops and anonymous tensors connects them."""
        return named_graph(self.graph)

    def save(self, path) -> Path:
        """Write the graph (.graphml .json .dot) or its picture (.png .svg .pdf), chosen by suffix."""
        path = export.check_save_path(path)
        suffix = path.suffix.lower()
        if suffix in export.GRAPH_SUFFIXES:
            path.write_bytes(export.graph_bytes(self.graph, suffix))
        else:
            path.write_bytes(_picture_bytes(self.figure, suffix))
        return path

    def image(self, fmt: str | None = None) -> bytes:
        """The picture as PNG (2 px per CSS px, see export.png_dpi) or SVG bytes."""
        return _picture_bytes(self.figure, "." + (fmt or self.image_format))

    # ---- rich display -------------------------------------------------------------------------

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """text/plain and text/html: one output whose HTML holds the picture (stored once), the table and notes."""
        bundle = {"text/plain": self._plain_text()}
        if not self.empty:
            bundle["text/html"] = self._html()
        return bundle

    def _plain_text(self) -> str:
        parts = self._summary_lines() + [f"⚠ {d.message}" for d in self.diagnostics]
        if self.show_table and not self.empty:
            parts = [report.text_table(self.graph), "", *parts]
        parts += [str(item) for item in (*self.explained, self.gradient_check) if item is not None]
        return "\n".join(parts)

    def _html(self) -> str:
        summary = "".join(f"<p>{html.escape(line)}</p>" for line in self._summary_lines())
        summary += "".join(f"<p style='{WARNING_STYLE}'>⚠ {html.escape(d.message)}</p>" for d in self.diagnostics)
        summary += "".join(item._repr_html_() for item in (*self.explained, self.gradient_check) if item is not None)
        picture = self._picture_html() if self.show_graph else ""
        table = report.html_table(self.graph) if self.show_table else ""
        return f"<div class='gradmagic'>{picture}{table}{summary}</div>"

    def alt_text(self) -> str:
        """The picture in words, for screen readers and wherever images are not shown: the summary's first lines."""
        return "autograd graph: " + "; ".join(self._summary_lines()[:ALT_LINES])

    def _picture_html(self) -> str:
        """The picture at 1:1 CSS size (a 2x PNG, or inline SVG with unique ids), scrolling when it is too wide."""
        figure = self.figure
        width, height = export.display_size(figure)
        smallest = export.smallest_text_pt(figure)
        wide = width > SCROLL_ABOVE_PX
        attributes = f'width="{width}" height="{height}"' + \
            (f' data-min-text-pt="{smallest:g}"' if smallest is not None else "") + \
            f' style="{"max-width:none" if wide else "max-width:100%"};height:auto"'
        alt = html.escape(self.alt_text(), quote=True)
        if self.image_format == "svg":
            svg = _picture_bytes(figure, ".svg", id_prefix=f"gm{uuid.uuid4().hex[:12]}-").decode()
            element = _inline_svg(svg, f'role="img" aria-label="{alt}" {attributes}')
        else:
            data = base64.b64encode(_picture_bytes(figure, ".png")).decode()
            element = f'<img src="data:image/png;base64,{data}" alt="{alt}" {attributes}/>'
        if wide:  # px first: JupyterLab's sanitizer drops vh in untrusted notebooks and keeps the px value
            return f'<div class="gradmagic-scroll" style="max-height:700px;max-height:70vh;overflow:auto">{element}</div>'
        return element


def full_capture_only(what: str, remedy: str) -> str:
    """Why `what` cannot be had from a lean capture, and `remedy`: one message for every front end."""
    return f"{what} needs the full capture (every op, constant and gradient flow); {remedy}"


def _picture_bytes(figure, suffix: str, **options) -> bytes:
    """export.figure_bytes, leaving no pixels behind (a later draw makes them again)."""
    try:
        return export.figure_bytes(figure, suffix, **options)
    finally:
        _forget_pixels(figure)
        _return_freed_memory()


def _forget_pixels(figure) -> None:
    """Drop the pixel buffer (MBs at 2 px per CSS px) the last draw left: Agg keeps it on the canvas and every
    matplotlib Text keeps the renderer it drew with (`Text._renderer`, None until drawn); artists live in reference
    cycles, so a figure no longer used would hold its buffer until a full collection, one per re-run."""
    FigureCanvasAgg(figure)
    for text in fonts.figure_texts(figure):
        text._renderer = None


def _return_freed_memory() -> None:
    """Hand the C heap's free pages back to the system where the C library can (glibc's malloc_trim): glibc keeps
    what drawing and a replaced result freed, so a re-run's resident set would stay at the high-water mark of the
    old result and the new one side by side (~13 MB more for a 300-step RNN). Costs ~0.3 ms (~20 ms on a
    fragmented 2 GB heap)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache  # no arguments: one entry
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none."""
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:  # no C library to load symbols from
        return None


def _drop_cached_views(graph: nx.Graph) -> None:
    """Let reference counting free a graph no longer used: networkx caches its views (`.nodes`, `.edges`, ...) on
    the graph and each view holds the graph, a cycle that only a full collection frees (~9 MB for the 5,000 ops of
    a 300-step RNN; one per re-run until then). A view dropped here is made again on its next use."""
    for name in _cached_views(type(graph)) & vars(graph).keys():
        del vars(graph)[name]


@functools.cache  # one entry per graph class (results hold MultiDiGraphs only)
def _cached_views(graph_class: type) -> frozenset:
    """The names of the views networkx caches on graphs of `graph_class` (its cached properties)."""
    return frozenset(name for cls in graph_class.__mro__ for name, attr in vars(cls).items()
                     if isinstance(attr, functools.cached_property))


def _inline_svg(svg: str, attributes: str) -> str:
    """Matplotlib's SVG file as an element inside HTML: no XML prolog, its root sized by `attributes`."""
    root = svg.index("<svg")
    head_end = svg.index(">", root)
    head = re.sub(r'\s(width|height)="[^"]*"', "", svg[root:head_end])
    return f"{head} {attributes}{svg[head_end:]}"
