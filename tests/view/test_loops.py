"""Loop folding: repeated iterations become the first one plus one block; flows and node positions survive."""
import networkx as nx
import pytest

import gradmagic
from gradmagic.view.folding import drawing_view, view_node
from gradmagic.view.loops import fold_loops
from helpers import labels_of, nodes_of_kind
from programs import LOOP_50

NESTED = """
w = torch.tensor(0.9, requires_grad=True)
h = torch.tensor(1.0)
for e in range(4):
    for t in range(10):
        h = h * w
    h = h + 1
h.backward()
"""


@pytest.fixture(scope="module")
def loop_50():
    return gradmagic.run(LOOP_50).graph


def test_a_50_step_loop_folds_into_one_block(loop_50):
    view = drawing_view(loop_50)
    assert labels_of(view, "loop") == ["loop ×49 more (line 5)"]
    assert {"h₂", "h₅₁", "loss"} <= set(labels_of(view)) and "h₃" not in labels_of(view)
    assert len(view) <= 15 and nx.is_directed_acyclic_graph(view)
    assert "a loop of 50 iterations folded (line 5)" in view.graph["hidden_note"]


def test_the_loop_block_joins_the_first_and_last_step(loop_50):
    view = drawing_view(loop_50)
    block = next(iter(nodes_of_kind(view, "loop")))
    name = {n: d["label"] for n, d in view.nodes(data=True)}
    assert sorted(name[n] for n in view.predecessors(block)) == ["h₂", "w"]
    assert [name[n] for n in view.successors(block)] == ["h₅₁"]
    assert view.edges[next(n for n in view.predecessors(block) if name[n] == "w"), block]["count"] == 49


def test_nested_loops_fold_inside_out():
    view = drawing_view(gradmagic.run(NESTED).graph, max_nodes=10)
    inner, outer = nodes_of_kind(view, "loop").values()
    assert (inner["label"], inner["caption"]) == ("loop ×9 more (line 6)", "each: mul")
    assert (outer["label"], outer["caption"]) == ("loop ×3 more (lines 6–7)", "each: mul → loop ×10 → add")
    assert "2 loops of 10 and 4 iterations folded (lines 6–7)" in view.graph["hidden_note"]


def test_folding_a_finished_view_again_keeps_its_flows(loop_50):
    full = drawing_view(loop_50, show_all=True)
    folded = fold_loops(full)
    w = next(n for n, d in full.nodes(data=True) if d.get("label") == "w")
    assert any(d["kind"] == "loop" for _, d in folded.nodes(data=True))
    assert sum(len(d["flows"]) for _, _, d in folded.out_edges(w, data=True)) == 50
    assert sum(f for _, _, d in folded.out_edges(w, data=True) for f in d["flows"]) == pytest.approx(
        sum(f for _, _, d in full.out_edges(w, data=True) for f in d["flows"]))

def test_folding_keeps_every_flow_and_where_each_node_went(loop_50):
    view = drawing_view(loop_50)
    w = next(n for n, d in view.nodes(data=True) if d.get("label") == "w")
    drawn = sum(f for _, _, d in view.out_edges(w, data=True) for f in d["flows"])
    assert drawn == pytest.approx(sum(d["flow"] for _, _, d in loop_50.out_edges(w, data=True)))
    assert drawn == pytest.approx(loop_50.nodes[w]["grad"], rel=1e-5)  # dloss/dw: the sum over all 50 steps
    block = next(n for n, d in view.nodes(data=True) if d["kind"] == "loop")
    tanh = [view_node(view, n) for n, d in loop_50.nodes(data=True) if d.get("op") == "tanh"]
    assert tanh[0] in view and tanh[1:] == [block] * 49  # the first step stays drawn, the block stands for the rest
    assert all(view_node(view, n) in view for n in loop_50 if view_node(view, n) is not None)


# A hand-unrolled Elman RNN as in the PyTorch tutorial "NLP From Scratch: Classifying Names with a
# Character-Level RNN": a fresh input each step, bound to `x` but off the autograd graph.
RNN_WITH_INPUTS = """W_xh = torch.randn(10, 16, requires_grad=True)
W_hh = torch.randn(16, 16, requires_grad=True)
h = torch.zeros(1, 16)
for t in range(60):
    x = torch.randn(1, 10)
    h = torch.tanh(x @ W_xh + h @ W_hh)
loss = h.sum()
loss.backward()
"""


@pytest.mark.parametrize("lean", [False, True])
def test_a_loop_folds_the_inputs_bound_in_its_body_also_when_no_edge_touches_them(lean):
    view = drawing_view(gradmagic.run(RNN_WITH_INPUTS, lean=lean).graph)
    assert labels_of(view, "loop") == ["loop ×59 more (line 6)"]
    xs = [label for label in labels_of(view) if label.startswith("x")]
    assert len(view) <= 16 and len(xs) <= 2, xs  # the lean capture's `x`s have no edge: 60 loose nodes before
