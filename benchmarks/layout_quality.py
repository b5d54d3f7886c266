"""How readable gradmagic's default pictures are, beside Graphviz `dot` laying out the same drawing.

    python benchmarks/layout_quality.py [--only NAME] [--pictures DIR] [--details]   # NAME: seed, mlp_step, ...

Each program of benchmarks/programs/ (and examples/seed.py) runs through `gradmagic.run`; its default figure is
measured with layout_metrics.py (crossings, label-edge and node-label overlaps, size, smallest text as shown in
a 948 px notebook output, render seconds). The same drawing (the node boxes and texts gradmagic drew, unshrunk,
and its edges with their labels) is laid out by `dot -Tjson` (fixedsize boxes, edge `label`s, rankdir TB) and
measured the same way. Graphviz is for this benchmark only (`apt-get install graphviz`), never a dependency.
"""
from __future__ import annotations

import argparse
import contextlib
import html
import io
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.path import Path as CurvePath  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import layout_metrics as metrics  # noqa: E402
import gradmagic  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: name -> the cell's source file; each is modelled on a public source cited at its top.
PROGRAMS = {"seed": ROOT / "examples" / "seed.py",
            **{name: ROOT / "benchmarks" / "programs" / f"{name}.py"
               for name in ("mlp_step", "sgd_loop", "cnn_step", "transformer_step", "rnn_1000")}}
_REPEATS = 3  # render time: median of this many fresh renders
_PT_TO_PX = metrics.CSS_PX_PER_INCH / 72.0
_DOT_TIMEOUT = 120  # seconds
FIT_WIDTH, MIN_TEXT = 900.0, 9.0  # issue 10: pictures fit ~900 CSS px, text at least 9 CSS px as shown


def run_program(name: str):
    """The Result of running one program's source through gradmagic (its prints swallowed)."""
    with contextlib.redirect_stdout(io.StringIO()):
        result = gradmagic.run(PROGRAMS[name].read_text(), {})
    if result.error is not None:
        raise RuntimeError(f"{name}: the program failed: {result.error!r}")
    return result


def render_seconds(name: str) -> tuple:
    """(first Result, median seconds of Result.figure plus one Agg draw over fresh runs of the program)."""
    times, first = [], None
    for _ in range(_REPEATS):
        result = run_program(name)
        result.graph  # built outside the timer: it is the capture's cost, not the picture's
        start = time.perf_counter()
        figure = result.figure
        (figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)).draw()
        times.append(time.perf_counter() - start)
        first = first or result
    return first, statistics.median(times)


def dot_source(picture: metrics.Picture) -> str:
    """DOT text of the drawing: its node boxes and texts at full size (fixedsize), its edges and their labels."""
    scale = picture.scale
    lines = ['digraph G {', '  graph [rankdir=TB, fontname="DejaVu Sans"];',
             '  node [shape=box, style=rounded, fixedsize=true, margin=0, fontname="DejaVu Sans"];',
             '  edge [fontname="DejaVu Sans"];']
    texts = {}
    for label in picture.labels:
        texts.setdefault(label.owner, []).append(label)
    for node, (x0, y0, x1, y1) in picture.nodes.items():
        width, height = (x1 - x0) / 100 / scale, (y1 - y0) / 100 / scale
        lines.append(f'  {_quote(node)} [width={width:.4f}, height={height:.4f}, '
                     f'label={_html_label(texts.get(node, []), scale)}];')
    for edge in picture.edges:
        if edge.tail is None or edge.head is None:
            continue
        label = texts.get("edge:" + edge.key, [])
        text = f' [label={_html_label(label, scale)}]' if label else ""
        lines.append(f'  {_quote(edge.tail)} -> {_quote(edge.head)}{text};')
    return "\n".join(lines + ["}"]) + "\n"


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _html_label(labels: list, scale: float) -> str:
    """An HTML-like dot label: the texts top to bottom, each in its own font size (unshrunk)."""
    if not labels:
        return '""'
    ordered = sorted(labels, key=lambda label: -(label.box[1] + label.box[3]))
    return "<" + "<BR/>".join(f'<FONT POINT-SIZE="{label.points / scale:.2f}">{html.escape(label.text)}</FONT>'
                              for label in ordered) + ">"


def dot_picture(source: str) -> tuple:
    """(Picture, seconds) of `dot -Tjson` laying out `source`, in CSS px (y up)."""
    start = time.perf_counter()
    done = subprocess.run(["dot", "-Tjson"], input=source.encode(), capture_output=True, timeout=_DOT_TIMEOUT,
                          check=True)
    seconds = time.perf_counter() - start
    layout = json.loads(done.stdout)
    x0, y0, x1, y1 = (float(v) * _PT_TO_PX for v in layout["bb"].split(","))
    objects = layout.get("objects", [])
    names = {obj["_gvid"]: obj["name"] for obj in objects}
    picture = metrics.Picture(x1 - x0, y1 - y0)
    for obj in objects:
        x, y = (float(v) * _PT_TO_PX for v in obj["pos"].split(","))
        half_w, half_h = float(obj["width"]) * 50, float(obj["height"]) * 50  # inches -> half px
        picture.nodes[obj["name"]] = (x - half_w, y - half_h, x + half_w, y + half_h)
        picture.labels += _dot_texts(obj.get("_ldraw_", []), obj["name"])
    for edge in layout.get("edges", []):
        tail, head = names[edge["tail"]], names[edge["head"]]
        key = f"{tail}->{head}"
        lines = [line for ops in (edge.get("_draw_", []), edge.get("_hdraw_", [])) for line in _dot_lines(ops)]
        picture.edges.append(metrics.Edge(key, tail, head, lines))
        picture.labels += _dot_texts(edge.get("_ldraw_", []), "edge:" + key)
    return picture, seconds


def _dot_lines(ops: list) -> list:
    """Polylines in px of dot's xdot drawing ops: Bézier curves flattened, polygons closed."""
    lines = []
    for op in ops:
        points = np.asarray(op.get("points", []), dtype=float) * _PT_TO_PX
        if op["op"] in ("b", "B") and len(points) >= 4:
            codes = [CurvePath.MOVETO] + [CurvePath.CURVE4] * (3 * ((len(points) - 1) // 3))
            path = CurvePath(points[:len(codes)], codes)
            lines += [np.asarray(p) for p in path.to_polygons(closed_only=False)]
        elif op["op"] in ("p", "P") and len(points):
            lines.append(np.vstack([points, points[:1]]))
    return lines


def _dot_texts(ops: list, owner: str) -> list:
    """Labels from dot's text ops: box from the baseline point, width and alignment, the last font size set."""
    found, size = [], 14.0
    for op in ops:
        if op["op"] == "F":
            size = float(op["size"])
        elif op["op"] == "T":
            x, y = (float(v) * _PT_TO_PX for v in op["pt"])
            width = float(op["width"]) * _PT_TO_PX
            left = {"l": x, "r": x - width}.get(op.get("align"), x - width / 2)
            box = (left, y - 0.24 * size * _PT_TO_PX, left + width, y + 0.93 * size * _PT_TO_PX)
            found.append(metrics.Label(op["text"], box, size, owner))
    return found


def measure(picture: metrics.Picture) -> dict:
    """The metrics of one drawing, as table cells (and the raw numbers the goals need)."""
    smallest = metrics.smallest_text_px(picture)
    return {"cross": metrics.crossings(picture), "lab-edge": metrics.label_edge_overlaps(picture),
            "node-lab": metrics.node_label_overlaps(picture), "size px": f"{picture.width:.0f}x{picture.height:.0f}",
            "text px": "-" if smallest is None else f"{smallest:.1f}", "width": picture.width, "smallest": smallest}


def details(picture: metrics.Picture) -> list:
    """Lines naming each crossing and overlap of a drawing by its nodes' first texts."""
    first = {}
    for label in sorted(picture.labels, key=lambda label: -label.box[3]):
        first.setdefault(label.owner, label.text.split("\n")[0][:28])

    def edge(e: metrics.Edge) -> str:
        return f"{first.get(e.tail, e.tail)} -> {first.get(e.head, e.head)}"

    lines = [f"  cross: {edge(one)}  X  {edge(other)}" for one, other in metrics.crossing_pairs(picture)]
    lines += [f"  label {label.text!r} on edge {edge(on)}" for label, on in metrics.label_edge_pairs(picture)]
    lines += [f"  text {text.text!r} on {first.get(on, on) if isinstance(on, str) else repr(on.text)}"
              for text, on in metrics.node_label_pairs(picture)]
    return lines


def benchmark(name: str, pictures: Path | None = None, *, explain: bool = False) -> dict:
    """One row: gradmagic's picture of program `name` measured, and dot's layout of the same drawing."""
    result, seconds = render_seconds(name)
    picture = metrics.figure_picture(result.figure)
    if explain:
        print(f"{name}:", *details(picture) or ["  no crossings or overlaps"], sep="\n")
    labelled = metrics.labelled_nodes(picture)
    row = {"graph": name, "nodes": f"{labelled}/{len(picture.nodes)}", "edges": len(picture.edges),
           "gm": {**measure(picture), "s": f"{seconds:.2f}"}, "dot": None, "unlabelled": len(picture.nodes) - labelled}
    if pictures is not None:
        result.figure.savefig(pictures / f"{name}.png", dpi=metrics.CSS_PX_PER_INCH)
    if shutil.which("dot") is not None:
        source = dot_source(picture)
        drawn, dot_seconds = dot_picture(source)
        row["dot"] = {**measure(drawn), "s": f"{dot_seconds:.2f}"}
        if pictures is not None:
            subprocess.run(["dot", "-Tpng", "-Gdpi=100", "-o", str(pictures / f"{name}.dot.png")],
                           input=source.encode(), check=True, timeout=_DOT_TIMEOUT)
    return row


def missed_goals(row: dict) -> str:
    """Issue 10's goals gradmagic's picture misses: more crossings than dot, labels on edges or nodes, wider than
    `FIT_WIDTH` px, text under `MIN_TEXT` px as shown, nodes drawn without text (dots)."""
    gm, dot = row["gm"], row["dot"]
    missed = {"cross": dot is not None and gm["cross"] > dot["cross"], "lab-edge": gm["lab-edge"] > 0,
              "node-lab": gm["node-lab"] > 0, "width": gm["width"] > FIT_WIDTH,
              "text": gm["smallest"] is not None and gm["smallest"] < MIN_TEXT, "dots": row["unlabelled"] > 0}
    return ",".join(goal for goal, failed in missed.items() if failed) or "none"


_CELLS = ("cross", "lab-edge", "node-lab", "size px", "text px", "s")
_WIDTHS = (5, 8, 8, 10, 7, 6)


def table(rows: list) -> str:
    """The rows side by side: gradmagic's columns, dot's, and the goals gradmagic misses."""
    group = " ".join(f"{c:>{w}}" for c, w in zip(_CELLS, _WIDTHS))
    span = len(group)
    lines = [f"{'':18} {'':>15}  {'gradmagic':^{span}}  |  {'dot':^{span}}  |",
             f"{'graph':18} {'nodes':>9} {'edges':>5}  {group}  |  {group}  |  missed goals"]
    for row in rows:
        gm = " ".join(f"{row['gm'][c]!s:>{w}}" for c, w in zip(_CELLS, _WIDTHS))
        dot = " ".join(f"{row['dot'][c]!s:>{w}}" for c, w in zip(_CELLS, _WIDTHS)) if row["dot"] \
            else f"{'dot: not installed':^{span}}"
        lines.append(f"{row['graph']:18} {row['nodes']:>9} {row['edges']:>5}  {gm}  |  {dot}  |  {missed_goals(row)}")
    return "\n".join(lines)


_LEGEND = ("nodes: with text/drawn; cross: edge pairs crossing away from shared nodes; lab-edge: edge labels on "
           "another edge; node-lab: texts on another node's box or another owner's text; size: px at 100 dpi; text px: "
           "smallest text as shown in a {output:.0f} px output; s: Result.figure + Agg draw, median of {repeats} "
           "(dot: dot -Tjson). Goals: crossings <= dot, no overlaps, width <= {fit:.0f} px, text >= {text:.0f} px. "
           "Total {total:.0f} s.")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(PROGRAMS), help="measure one program")
    parser.add_argument("--pictures", type=Path, metavar="DIR", help="also write NAME.png and NAME.dot.png there")
    parser.add_argument("--details", action="store_true", help="name gradmagic's crossings and overlaps")
    args = parser.parse_args(argv)
    if args.pictures:
        args.pictures.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    names = [args.only] if args.only else list(PROGRAMS)
    rows = [benchmark(name, args.pictures, explain=args.details) for name in names]
    print(table(rows))
    print(_LEGEND.format(output=metrics.OUTPUT_WIDTH, repeats=_REPEATS, fit=FIT_WIDTH, text=MIN_TEXT,
                         total=time.perf_counter() - start))


if __name__ == "__main__":
    main()
