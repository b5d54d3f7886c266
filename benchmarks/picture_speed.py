"""Picture speed: how long the default picture of a small model takes to draw and to display (issue 13 goal:
<= 0.1 s for <= 100 nodes drawn), side by side with torchviz + Graphviz where both are installed.

    OMP_NUM_THREADS=1 python benchmarks/picture_speed.py [--repeats N] [--only TEXT]

Per program, best of N seconds: the figure made (render_figure), `canvas.draw()` at 100 dpi, the PNG
(export.figure_bytes at png_dpi, 2 px per CSS px) and SVG bytes with their sizes, the whole display bundle
(`result._repr_mimebundle_()`, figure made afresh each time) with the picture as PNG (the default) and as
inline SVG, and torchviz's make_dot rendered by `dot` to PNG.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import gradmagic
from gradmagic.view import export
from gradmagic.view.render import render_figure

PROGRAMS = Path(__file__).parent / "programs"
NAMES = ("mlp_step", "cnn_step")


def best(fn, repeats: int) -> float:
    """The fastest of `repeats` calls of fn, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def gradmagic_row(source: str, repeats: int) -> dict:
    """Seconds (and bytes) of each step of gradmagic's picture for one program."""
    result = gradmagic.run(source, {})
    graph = result.graph
    figure = render_figure(graph)
    row = {"nodes": _boxes(figure), "figure": best(lambda: render_figure(graph), repeats),
           "draw": best(figure.canvas.draw, repeats),
           "png": best(lambda: export.figure_bytes(figure, ".png"), repeats),
           "svg": best(lambda: export.figure_bytes(figure, ".svg"), repeats)}
    row["png_kb"] = len(export.figure_bytes(figure, ".png")) / 1024
    row["svg_kb"] = len(export.figure_bytes(figure, ".svg")) / 1024

    for fmt in ("png", "svg"):
        result.image_format = fmt
        row[f"bundle {fmt}"] = best(lambda: _fresh_bundle(result), repeats)
    return row


def _fresh_bundle(result) -> dict:
    """The display bundle as a fresh result makes it: figure, picture, table, notes."""
    result._figure = None
    return result._repr_mimebundle_()


def _boxes(figure) -> int:
    """Nodes drawn: the boxes of the node collection (zorder 2)."""
    return sum(len(c.get_paths()) for c in figure.axes[0].collections if c.get_zorder() == 2)


def torchviz_row(source: str, repeats: int) -> dict | None:
    """Seconds of torchviz's make_dot rendered to PNG and SVG by `dot`, or None without torchviz or dot."""
    try:
        import torchviz
    except ImportError:
        return None
    if shutil.which("dot") is None:
        return None
    namespace = {}
    exec(compile(source, "<program>", "exec"), namespace)
    loss, model = namespace["loss"], namespace["model"]

    def render(fmt: str):
        with tempfile.TemporaryDirectory() as folder:
            torchviz.make_dot(loss, params=dict(model.named_parameters())).render(f"{folder}/g", format=fmt)

    return {"png": best(lambda: render("png"), repeats), "svg": best(lambda: render("svg"), repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="", help="run only programs whose name contains this")
    args = parser.parse_args()
    print(f"best of {args.repeats}, seconds; PNG at {export.PNG_DPI} dpi")
    header = ("figure", "draw", "png", "png KB", "svg", "svg KB", "bundle png", "bundle svg", "torchviz png",
              "torchviz svg")
    print(f"{'program':10}{'boxes':>6}" + "".join(f"{h:>13}" for h in header))
    for name in NAMES:
        if args.only not in name:
            continue
        source = (PROGRAMS / f"{name}.py").read_text()
        row, peer = gradmagic_row(source, args.repeats), torchviz_row(source, args.repeats)
        cells = [f"{row[k]:.3f}" for k in ("figure", "draw", "png")] + [f"{row['png_kb']:.0f}",
                 f"{row['svg']:.3f}", f"{row['svg_kb']:.0f}", f"{row['bundle png']:.3f}", f"{row['bundle svg']:.3f}"]
        cells += [f"{peer[k]:.3f}" for k in ("png", "svg")] if peer else ["n/a", "n/a"]
        print(f"{name:10}{row['nodes']:>6}" + "".join(f"{c:>13}" for c in cells))


if __name__ == "__main__":
    main()
