"""The layout benchmark's metrics on hand-made figures whose answers can be counted by eye."""
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    """A module of benchmarks/ imported by its path (benchmarks/ is not a package)."""
    if name not in sys.modules:
        sys.path.insert(0, str(BENCHMARKS))
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


metrics = _load("layout_metrics")

#: Four nodes at the corners of a 4 x 4 inch square: a top left, b bottom right, c top right, d bottom left.
CORNERS = {"a": (1, 5), "b": (5, 1), "c": (5, 5), "d": (1, 1)}


def _figure(edges, labels=(), *, width=6.0):
    """A figure drawn the way gradmagic draws: node boxes in a PatchCollection with texts `node.tensor`, edges as
    arrows `edge:u->v` from box to box, `labels` as (text, x, y, gid) texts; data units are inches."""
    figure = Figure(figsize=(width, 6))
    FigureCanvasAgg(figure)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, 6)
    ax.add_collection(PatchCollection([Rectangle((x - 0.3, y - 0.15), 0.6, 0.3) for x, y in CORNERS.values()]))
    for node, (x, y) in CORNERS.items():
        ax.text(x, y, node, fontsize=10, ha="center", va="center", gid=f"{node}.tensor")
    for u, v in edges:
        (x0, y0), (x1, y1) = CORNERS[u], CORNERS[v]
        ax.add_patch(FancyArrowPatch((x0, y0 - 0.15 if y1 < y0 else y0), (x1, y1 + 0.15 if y1 < y0 else y1),
                                     arrowstyle="-|>", mutation_scale=10, shrinkA=0, shrinkB=0, gid=f"edge:{u}->{v}"))
    for text, x, y, gid in labels:
        ax.text(x, y, text, fontsize=8, ha="center", va="center", gid=gid)
    return figure


def test_two_crossing_edges_are_one_crossing():
    picture = metrics.figure_picture(_figure([("a", "b"), ("c", "d")]))
    assert sorted(picture.nodes) == ["a", "b", "c", "d"] and metrics.labelled_nodes(picture) == 4
    assert [(e.tail, e.head) for e in picture.edges] == [("a", "b"), ("c", "d")]
    assert metrics.crossings(picture) == 1


def test_edges_that_only_meet_at_a_shared_node_do_not_cross():
    picture = metrics.figure_picture(_figure([("a", "b"), ("a", "d"), ("c", "b")]))
    assert metrics.crossings(picture) == 0


def test_a_label_on_another_edge_is_one_overlap():
    on_other = _figure([("a", "b"), ("c", "d")], [("8600", 3.0, 3.0, "flow:a->b")])  # on the crossing: both edges
    assert metrics.label_edge_overlaps(metrics.figure_picture(on_other)) == 1
    clear = _figure([("a", "b"), ("c", "d")], [("8600", 2.0, 4.0, "flow:a->b")])  # on a->b only, away from c->d
    assert metrics.label_edge_overlaps(metrics.figure_picture(clear)) == 0


def test_a_text_on_another_nodes_box_and_two_texts_on_each_other_are_overlaps():
    picture = metrics.figure_picture(_figure([], [("430.0", 1.0, 5.0, "flow:c->d"), ("1.0", 3.0, 3.0, "flow:a->b"),
                                                  ("2.0", 3.0, 3.0, "flow:c->d")]))
    assert metrics.node_label_overlaps(picture) == 3  # "430.0" on a's box, on a's text; "1.0" on "2.0"
    assert metrics.node_label_overlaps(metrics.figure_picture(_figure([]))) == 0


def test_size_and_smallest_text_as_shown_in_a_notebook_output():
    narrow = metrics.figure_picture(_figure([], [("1.0", 3.0, 3.0, "flow:a->b")]))
    assert (round(narrow.width), round(narrow.height)) == (600, 600)
    assert metrics.smallest_text_px(narrow) == pytest.approx(8 * 100 / 72)  # 8 pt at 1:1
    wide = metrics.figure_picture(_figure([], [("1.0", 3.0, 3.0, "flow:a->b")], width=18.96))
    assert metrics.smallest_text_px(wide) == pytest.approx(8 * 100 / 72 / 2)  # 1,896 px shown at half size


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed (benchmark only)")
def test_dot_lays_out_the_same_drawing_without_crossings():
    quality = _load("layout_quality")
    picture = metrics.figure_picture(_figure([("a", "b"), ("c", "d")], [("8600", 3.0, 3.0, "flow:a->b")]))
    drawn, _ = quality.dot_picture(quality.dot_source(picture))
    assert sorted(drawn.nodes) == ["a", "b", "c", "d"]
    assert [(e.tail, e.head) for e in drawn.edges] == [("a", "b"), ("c", "d")]
    assert [label.text for label in drawn.labels if label.owner == "edge:a->b"] == ["8600"]
    assert metrics.crossings(drawn) == 0 and metrics.label_edge_overlaps(drawn) == 0
