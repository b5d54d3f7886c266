"""The layered layout is a clean DAG with few crossings, in either direction."""
import itertools
from pathlib import Path

import networkx as nx
import pytest

import gradmagic
from gradmagic.view.folding import drawing_view
from gradmagic.view.layout import layered_layout
from gradmagic.view.crossings import crossing_count, order_layers
from programs import MODULE_STEP, SEED_3


@pytest.fixture(scope="module")
def seed_graph():
    return gradmagic.run(SEED_3).graph


def test_every_edge_goes_to_a_later_layer(seed_graph):
    view = drawing_view(seed_graph)
    positions = layered_layout(view)
    assert all(positions[u][0] < positions[v][0] for u, v in view.edges())
    top_down = layered_layout(view, rankdir="TB")
    assert all(top_down[u][1] > top_down[v][1] for u, v in view.edges())


def test_layout_is_deterministic_and_nodes_do_not_share_positions(seed_graph):
    view = drawing_view(seed_graph, show_all=True)
    first, second = layered_layout(view), layered_layout(drawing_view(seed_graph, show_all=True))
    assert first == second and first.routes == second.routes
    assert len(set(first.values())) == len(first)


def test_top_to_bottom_is_left_to_right_turned(seed_graph):
    view = drawing_view(seed_graph)
    lr, tb = layered_layout(view, rankdir="LR"), layered_layout(view, rankdir="TB")
    assert {n: (-y, -x) for n, (x, y) in tb.items()} == lr


def test_inputs_come_first(seed_graph):
    view = drawing_view(seed_graph)
    positions = layered_layout(view)
    x = {view.nodes[n].get("name"): p[0] for n, p in positions.items()}
    assert x["x"] == 0 and x["z"] == max(x.values())
    for name in ("x", "a"):  # each input just before the ops that use it (not all in one row)
        node = next(n for n in view if view.nodes[n].get("name") == name)
        assert min(positions[s][0] for s in view.successors(node)) == x[name] + 1


def _layout_metrics():
    """The layout benchmark's metrics module (benchmarks/ is not a package)."""
    import importlib.util
    import sys

    folder = Path(__file__).resolve().parents[2] / "benchmarks"
    if "layout_metrics" not in sys.modules:
        spec = importlib.util.spec_from_file_location("layout_metrics", folder / "layout_metrics.py")
        sys.modules["layout_metrics"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["layout_metrics"])
    return sys.modules["layout_metrics"]


@pytest.mark.parametrize("program, dot", [("seed", 0), ("sgd_loop", 0), ("rnn_1000", 1)])
def test_pictures_cross_no_more_edges_than_graphviz_dot(seed_graph, program, dot):
    """Crossings of the drawn default picture, counted by the layout benchmark; `dot`: what Graphviz dot's layout
    of the same drawing crosses (BENCHMARKS.md). Inputs in one row, or sweeps from one start, crossed more."""
    from gradmagic.view.render import render_figure

    folder = Path(__file__).resolve().parents[2] / "benchmarks" / "programs"
    graph = seed_graph if program == "seed" else gradmagic.run((folder / f"{program}.py").read_text(), {}).graph
    metrics = _layout_metrics()
    assert metrics.crossings(metrics.figure_picture(render_figure(graph))) <= dot


def test_bad_rankdir_is_a_value_error(seed_graph):
    with pytest.raises(ValueError, match="rankdir='RL'"):
        layered_layout(drawing_view(seed_graph), rankdir="RL")


def test_only_a_picture_may_leave_the_direction_to_choose(seed_graph):
    from gradmagic.view.render import draw_graph, render_figure

    view, both = drawing_view(seed_graph), r"rankdir=.*: use 'LR' \(inputs left, outputs right\) or 'TB' \(inputs top\)"
    with pytest.raises(ValueError, match=both + "$"):
        draw_graph(view, layered_layout(view), rankdir=None)
    with pytest.raises(ValueError, match=both + ", or None to choose what fits$"):
        render_figure(seed_graph, rankdir="RL")


def test_empty_single_and_disconnected_graphs():
    assert layered_layout(nx.DiGraph()) == {}
    assert layered_layout(nx.empty_graph(["a"], nx.DiGraph)) == {"a": (0.0, 0.0)}
    two = nx.DiGraph([("a", "b"), ("c", "d")])
    positions = layered_layout(two)
    assert len(set(positions.values())) == 4 and positions["a"][0] == positions["c"][0] == 0


def test_long_chain_lays_out_without_recursion():
    chain = nx.path_graph(5000, create_using=nx.DiGraph)
    positions = layered_layout(chain)
    assert positions[4999] == (4999.0, 0.0)


def test_edges_spanning_layers_get_bend_points():
    graph = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")])
    positions = layered_layout(graph)
    assert [x for x, _ in positions.routes["a", "d"]] == [1.0, 2.0]
    assert all(y != positions["b"][1] for _, y in positions.routes["a", "d"][:1])


def test_a_cycle_still_gets_positions():
    positions = layered_layout(nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a")]))
    assert len(set(positions.values())) == 3


# ---- crossings ------------------------------------------------------------------------------------------

def _crossing_pairs(view, positions) -> int:
    """Pairs of edges whose straight runs (through their bend points) cross, in layer units."""
    runs = [[positions[u], *positions.routes.get((u, v), []), positions[v]] for u, v in view.edges()]
    segments = [(i, p, q) for i, run in enumerate(runs) for p, q in zip(run, run[1:])]

    def side(p, q, r):
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
    pairs = set()
    for (i, a, b), (j, c, d) in itertools.combinations(segments, 2):
        if i != j and side(a, b, c) * side(a, b, d) < 0 and side(c, d, a) * side(c, d, b) < 0:
            pairs.add((min(i, j), max(i, j)))
    return len(pairs)


def test_crossing_count_counts_pairs_of_edges_that_cross():
    layers, place = [[0, 1], [2, 3]], [0.0, 1.0, 0.0, 1.0]
    assert crossing_count(layers, [[3], [2], [], []], place) == 1  # a->d and b->c
    assert crossing_count(layers, [[2], [3], [], []], place) == 0
    assert crossing_count(layers, [[2, 3], [2, 3], [], []], place) == 1  # only a->d crosses b->c


def test_a_training_step_lays_out_with_few_crossings():
    view = drawing_view(gradmagic.run(MODULE_STEP).graph)
    positions = layered_layout(view, rankdir="TB")
    assert _crossing_pairs(view, positions) <= 10  # 19 with barycenter sweeps alone; Graphviz dot draws 5


def test_swaps_never_leave_more_crossings_than_the_sweeps_found():
    layers, place = [[0, 1, 2], [3, 4, 5]], [0.0] * 6
    up, down = [[], [], [], [2], [1], [0]], [[5], [4], [3], [], [], []]  # a mirror: every pair crosses at first
    order_layers(layers, up, down, place, [1.0] * 6)
    assert crossing_count(layers, down, place) == 0
