"""The drawing view folds anonymous tensors into their ops, keeps what each drawn edge stands for, and names a
stand-in for every graph node it does not draw."""
import networkx as nx
import pytest

import gradmagic
from gradmagic.view.folding import drawing_view, view_marks, view_node
from gradmagic.text import shown_grad
from programs import DETACH, LOOP_50, MODULE_STEP, SEED_3


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


def _reference_edges(graph, view) -> dict:
    """Each graph edge mapped onto the drawn nodes standing for its ends: (a, b) -> [count, flows, grads]."""
    edges = {}
    for u, v, data in graph.edges(data=True):
        a, b = view_node(view, u), view_node(view, v)
        if a == b or a not in view or b not in view:
            continue
        edge = edges.setdefault((a, b), [0, [], []])
        edge[0] += 1
        value, stats = shown_grad(graph.nodes[v])
        if data.get("flow") is not None:
            edge[1].append(data["flow"])
        elif graph.nodes[u]["kind"] == "op" and not graph.nodes[v].get("is_leaf") and (value, stats) != (None, None):
            edge[2].append(value if value is not None else stats)
    return edges


@pytest.mark.parametrize("source", [SEED_3, LOOP_50, MODULE_STEP, DETACH])
@pytest.mark.parametrize("options", [{}, {"show_all": True}, {"max_nodes": 5}])
def test_drawn_edges_carry_exactly_what_their_graph_edges_carried(source, options):
    graph = gradmagic.run(source).graph
    view = drawing_view(graph, **options)
    drawn = {(u, v): [d["count"], sorted(map(repr, d["flows"])), sorted(map(repr, d["grads"]))]
             for u, v, d in view.edges(data=True) if not d.get("backward")}
    expected = {key: [count, sorted(map(repr, flows)), sorted(map(repr, grads))]
                for key, (count, flows, grads) in _reference_edges(graph, view).items()
                if view.nodes[key[1]]["kind"] != "optimizer" or key in drawn}  # link_backward replaced these
    assert drawn == expected
    assert all("sources" not in d for _, _, d in view.edges(data=True))
