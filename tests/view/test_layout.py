"""The drawing view folds anonymous tensors into their ops; the layered layout is a clean DAG with few crossings."""
import itertools
from pathlib import Path

import networkx as nx
import pytest

import gradmagic
from gradmagic.view.layout import drawing_view, layered_layout, view_marks, view_node
from gradmagic.view.crossings import crossing_count, order_layers
from programs import DETACH, MODULE_STEP, SEED_3


@pytest.fixture(scope="module")
def seed_graph():
    return gradmagic.run(SEED_3).graph


def _tensor_names(view):
    return sorted(d["name"] for _, d in view.nodes(data=True) if d["kind"] == "tensor")


def test_view_keeps_exactly_the_named_tensors_and_ops(seed_graph):
    view = drawing_view(seed_graph)
    assert _tensor_names(view) == ["a", "b", "x", "y", "z"]
    assert all(d["kind"] == "op" for n, d in view.nodes(data=True) if d["kind"] != "tensor")
    assert not any(d["kind"] == "tensor" and d["name"] is None for _, d in view.nodes(data=True))


def test_creation_ops_are_dropped_and_leaves_stand_alone(seed_graph):
    view = drawing_view(seed_graph)
    assert not [n for n, d in view.nodes(data=True) if d["kind"] == "op" and d["op"] == "tensor"]
    leaves = [n for n, d in view.nodes(data=True) if d.get("name") in ("a", "x")]
    assert all(view.in_degree(n) == 0 for n in leaves)


def test_folded_op_carries_the_tensor_caption(seed_graph):
    view = drawing_view(seed_graph)
    folded = {d["label"]: d["folded"] for _, d in view.nodes(data=True) if d.get("folded")}
    assert folded["mul ×2"] == "20.0 ∂ 4300"  # 2*x with x = 10, and dz/d(2x) = x * dz/d(x*x) = 4300
    assert all(d["folded_role"] == "intermediate" for _, d in view.nodes(data=True) if d.get("folded"))


def test_folded_view_joins_named_tensors_as_the_seed_text_says(seed_graph):
    view = drawing_view(seed_graph)
    name = {n: d["name"] for n, d in view.nodes(data=True) if d["kind"] == "tensor"}
    reached = {(name[u], name[v]) for u in name for v in nx.descendants(view, u) if v in name}
    assert {("x", "y"), ("a", "y"), ("x", "b"), ("a", "b"), ("y", "z"), ("b", "z")} <= reached


def test_parallel_edges_collapse_with_a_count(seed_graph):
    view = drawing_view(seed_graph)
    y = next(n for n, d in view.nodes(data=True) if d.get("name") == "y")
    counts = sorted(view.edges[y, op]["count"] for op in view.successors(y))
    assert counts == [1, 2]  # y*y uses y twice, b*y once


def test_show_all_keeps_every_node(seed_graph):
    view = drawing_view(seed_graph, show_all=True)
    assert set(view) == set(seed_graph)
    assert view.number_of_edges() == len({(u, v) for u, v in seed_graph.edges()})


def test_detach_edge_is_not_differentiable():
    view = drawing_view(gradmagic.run(DETACH).graph)
    detach = next(n for n, d in view.nodes(data=True) if d.get("op") == "detach")
    assert not any(d["differentiable"] for _, _, d in view.in_edges(detach, data=True))


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


def test_depth_and_max_nodes_are_checked_even_with_show_all(seed_graph):
    with pytest.raises(ValueError, match="max_nodes=-3"):
        drawing_view(seed_graph, show_all=True, max_nodes=-3)


def test_view_records_no_hidden_note_when_nothing_is_collapsed(seed_graph):
    assert drawing_view(seed_graph).graph["hidden_note"] is None
    assert drawing_view(seed_graph, show_all=True).graph["hidden_note"] is None


def test_view_edges_keep_the_flows_of_the_graph_edges_they_stand_for(seed_graph):
    view = drawing_view(seed_graph)
    assert view.edges["t1", "op2"]["flows"] == [8600.0]  # x -> mul ×2
    assert view.edges["t5", "op8"]["flows"] == [215.0, 215.0]  # y*y: one flow per argument
    assert view.edges["op2", "op3"]["flows"] == [4300.0]  # through the folded 2*x
    assert view.edges["op5", "t5"] == {"count": 1, "differentiable": True, "flows": [], "grads": [430.0]}  # -> y


def test_every_graph_node_has_a_stand_in_or_is_drawn(seed_graph):
    view = drawing_view(seed_graph)
    assert view_node(view, "t1") == "t1" and view_node(view, "t2") == "op2"
    assert view_node(view, "op1") == "t1"  # the dropped torch.tensor(10.0) that made x
    assert all(view_node(view, n) in view for n in seed_graph)


def test_view_marks_map_graph_marks_onto_the_view(seed_graph):
    view = drawing_view(seed_graph)
    marks = {"nodes": {"t2"}, "edges": {("t2", "op3", "0"), ("op5", "t5", 0)}, "notes": {"t7": "a", "op7": "b"}}
    nodes, edges, notes = view_marks(view, marks)
    assert nodes == {"op2", "t7", "op7"} and edges == {("op2", "op3"), ("op5", "t5")}
    assert notes == {"t7": "a", "op7": "b"}
    assert view_marks(view, None) == (set(), set(), {})


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
