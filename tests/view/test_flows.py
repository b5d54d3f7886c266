"""An edge's gradient flow: parts summed as the chain rule sums them, labels that say how."""
import math

import networkx as nx
import pytest

from gradmagic.view.flows import Flow, combine_flows, edge_flow, edge_texts, flow_note


def test_scalar_flows_add_up():
    assert combine_flows([215.0, 215.0]) == Flow(430.0, "430.0")  # y*y: one flow per argument
    assert combine_flows([-1.5503876511502312e-06]) == Flow(1.5503876511502312e-06, "-1.55e-06")


def test_unknown_flows_are_left_out_and_none_is_unknown():
    assert combine_flows([None, 8600.0]) == Flow(8600.0, "8600")
    assert combine_flows([None, {"numel": 4096}]) is None
    assert combine_flows([]) is None


def test_lists_of_one_shape_show_the_norm_of_their_sum():
    flow = combine_flows([[3.0, 0.0], [0.0, 4.0]])
    assert flow == Flow(5.0, "‖5.0‖")
    assert combine_flows([[[1.0, -1.0]], [[1.0, -1.0]]]).size == pytest.approx(math.sqrt(8))


def test_stats_and_mixed_shapes_show_the_sum_of_norms_as_approximate():
    assert combine_flows([{"norm": 18.7}]) == Flow(18.7, "‖18.7‖")  # one part: exact
    assert combine_flows([{"norm": 3.0}, {"norm": 4.0}]) == Flow(7.0, "≈‖7.0‖")
    assert combine_flows([[3.0, 4.0], [1.0]]) == Flow(6.0, "≈‖6.0‖")
    assert combine_flows([2.0, [3.0, 4.0]]) == Flow(7.0, "≈‖7.0‖")


def test_edges_out_of_ops_take_their_outputs_gradient_for_width_only():
    assert edge_flow({"flows": [], "grads": [430.0]}) == Flow(430.0, None)
    assert edge_flow({"flows": [1.0], "grads": [430.0]}) == Flow(1.0, "1.0")
    assert edge_flow({"count": 1}) is None


def _texts(*edges) -> list:
    """Labels of a view with one edge per (count, flows), into an op or (loop=True) a folded loop."""
    view = nx.DiGraph()
    for i, (count, flows, loop) in enumerate(edges):
        view.add_node(f"t{i}", kind="tensor")
        view.add_node(f"n{i}", kind="loop" if loop else "op")
        view.add_edge(f"t{i}", f"n{i}", count=count, flows=flows)
    return edge_texts(view, [edge_flow(d) for _, _, d in view.edges(data=True)])


def test_labels_say_how_many_gradients_they_add_and_how():
    assert _texts((2, [215.0, 215.0], False), (1, [8600.0], False), (999, [], True)) == \
        ["2 × 215.0", "8600", "999 edges"]  # y*y: two edges of 215.0 each, not `430.0 (×2)`
    assert _texts((3, [1.0, 2.0, 4.0], False), (2, [[3.0, 0.0], [0.0, 4.0]], False)) == \
        ["Σ 7.0 (3 edges)", "‖Σ‖ 5.0 (2 edges)"]
    loop = _texts((29, [{"norm": 0.2}] * 20 + [{"norm": 0.1}] * 9, True))
    assert loop == ["Σ‖·‖ 4.9 (29 steps)"]  # a folded loop: the sum of the norms of 29 iterations' gradients


def test_the_note_explains_only_the_notations_shown():
    assert flow_note([None, None]) is None
    assert flow_note(["8600", None]) == "Edge labels: the gradient that flowed back along the edge."
    note = flow_note(["‖0.3‖", "2 × 215.0", "Σ‖·‖ 4.9 (29 steps)"])
    assert "‖g‖ its norm" in note and "2\xa0×\xa0215.0: 2 edges drawn as one, 215.0 each" in note
    assert "Σ‖·‖: the sum of their norms" in note and "Σ: the sum" not in note
