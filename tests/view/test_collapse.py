"""Big graphs collapse for drawing: module calls become boxes, loop iterations fold, the full graph stays whole."""
import os
import pickle
import sys

import networkx as nx
import pytest

import gradmagic
from gradmagic.view.collapse import DEFAULT_MAX_NODES, group_modules
from gradmagic.view.loops import fold_loops
from gradmagic.view.folding import drawing_view, view_node
from gradmagic.view.layout import layered_layout
from gradmagic.view.render import draw_graph
from programs import LOOP_50, SEED_3, SEED_LOOP
from helpers import labels_of, nodes_of_kind

BLOCKS = """
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.up, self.down = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)

    def forward(self, x):
        h = self.norm(x)
        att = torch.softmax(self.q(h) @ self.k(h).transpose(-2, -1), dim=-1)
        x = x + att @ self.v(h)
        return x + self.down(torch.nn.functional.gelu(self.up(x)))

model = nn.Sequential(Block(8), Block(8), Block(8))
x = torch.randn(2, 4, 8)
loss = model(x).pow(2).mean()
loss.backward()
"""

SHARED_CELL = """
import torch.nn as nn
cell = nn.Linear(3, 3)
h = torch.zeros(1, 3)
for t in range(6):
    h = torch.tanh(cell(h))
h.sum().backward()
"""

@pytest.fixture(scope="module")
def blocks():
    return gradmagic.run(BLOCKS).graph


@pytest.fixture(scope="module")
def loop_50():
    return gradmagic.run(LOOP_50).graph


def _module_ops(graph, path: str) -> int:
    """Ops the capture attributed to the module at `path` or to modules inside it."""
    return sum(1 for _, d in graph.nodes(data=True)
               if d["kind"] == "op" and (d["module"] == path or (d["module"] or "").startswith(path + ".")))


def test_depth_0_draws_one_box_for_the_model(blocks):
    view = drawing_view(blocks, depth=0)
    assert labels_of(view, "cluster") == ["model · Sequential"]
    box = next(iter(nodes_of_kind(view, "cluster")))
    assert view.nodes[box]["caption"].split("\n")[-1].startswith(f"{_module_ops(blocks, 'model'):,} ops: ")
    assert [view.nodes[n]["name"] for n in view.predecessors(box)] == ["x"]
    assert [view.nodes[n]["label"] for n in view.successors(box)] == ["pow ^2"]
    assert view.graph["hidden_note"].startswith(f"Showing {len(view)} of {len(blocks)} nodes:")


def test_depth_1_draws_one_box_per_block_in_a_chain(blocks):
    view = drawing_view(blocks, depth=1)
    assert labels_of(view, "cluster") == [f"model.{i} · Block" for i in range(3)]
    assert [d["ops"] for d in nodes_of_kind(view, "cluster").values()] == [_module_ops(blocks, f"model.{i}")
                                                                            for i in range(3)]
    chain = [view.nodes[n]["label"].split()[0] for n in nx.topological_sort(view)]
    assert chain == ["x", "model.0", "model.1", "model.2", "pow", "mean", "loss"]


def test_no_tensor_inside_a_box_is_left_drawn(blocks):
    for depth in (0, 1, 2):
        view = drawing_view(blocks, depth=depth)
        boxes = nodes_of_kind(view, "cluster")
        for node, data in nodes_of_kind(view, "tensor").items():
            made_by, used_by = set(view.predecessors(node)), set(view.successors(node))
            assert not (len(made_by) == 1 and made_by <= set(boxes) and used_by <= made_by), (depth, data["label"])
            assert not (data["param"] or "").startswith("model."), (depth, data["label"])  # parameters go inside


def test_each_call_of_a_shared_module_is_its_own_box():
    view = drawing_view(gradmagic.run(SHARED_CELL).graph, depth=0, max_nodes=1000)
    assert labels_of(view, "cluster") == [f"cell · Linear · call {i}" for i in range(1, 7)]
    assert nx.is_directed_acyclic_graph(view)


def test_max_nodes_collapses_until_it_fits_and_says_so(blocks):
    assert len(drawing_view(blocks)) <= DEFAULT_MAX_NODES
    full = drawing_view(blocks, max_nodes=10_000)  # the default: one box per leaf module call (norm, q, k, v, up, down)
    assert full.graph["module_depth"] is None and len(nodes_of_kind(full, "cluster")) == 18
    assert full.graph["hidden_note"] == (f"Showing {len(full)} of {len(blocks)} nodes: one box per leaf module call "
                                         "(18 boxes); use --all or a higher --max-nodes to see more.")
    assert len(drawing_view(blocks, max_nodes=len(full))) == len(full)
    view = drawing_view(blocks, max_nodes=30)
    assert len(view) <= 30 and view.graph["module_depth"] == 1
    assert view.graph["hidden_note"] == (f"Showing {len(view)} of {len(blocks)} nodes: modules grouped at depth 1 "
                                         "into 3 boxes; use --all, --depth 2 or a higher --max-nodes to see more.")


def test_small_graphs_are_not_collapsed():
    view = drawing_view(gradmagic.run(SEED_3).graph)
    assert not nodes_of_kind(view, "cluster") and not nodes_of_kind(view, "loop") and view.graph["hidden_note"] is None


def test_show_all_disables_collapsing(loop_50, blocks):
    for graph in (loop_50, blocks):
        view = drawing_view(graph, show_all=True, depth=0, max_nodes=5)
        assert set(view) == set(graph) and view.graph["hidden_note"] is None


def _content(graph) -> bytes:
    """Everything a graph holds, as bytes (networkx's cached views left out)."""
    return pickle.dumps((graph.graph, list(graph.nodes(data=True)), list(graph.edges(keys=True, data=True))))


def test_drawing_never_changes_the_full_graph(loop_50, blocks):
    for graph in (loop_50, blocks):
        before = _content(graph)
        for options in ({}, {"depth": 0}, {"depth": 1, "max_nodes": 5}, {"show_all": True}):
            view = drawing_view(graph, **options)
            draw_graph(view, layered_layout(view))
        assert _content(graph) == before


def test_views_and_layouts_are_deterministic(loop_50, blocks):
    for graph, options in ((loop_50, {}), (blocks, {"depth": 1}), (blocks, {"max_nodes": 30})):
        one, two = drawing_view(graph, **options), drawing_view(graph, **options)
        assert list(one.nodes(data=True)) == list(two.nodes(data=True))
        assert list(one.edges(data=True)) == list(two.edges(data=True))
        assert layered_layout(one) == layered_layout(two)


def test_grouping_and_folding_leave_a_view_without_blocks_alone():
    view = drawing_view(gradmagic.run(SEED_3).graph)
    assert group_modules(view, 0) is view and fold_loops(view) is view


@pytest.mark.parametrize("options, message", [({"depth": -1}, "depth=-1"), ({"depth": 1.5}, "depth=1.5"),
                                              ({"max_nodes": 0}, "max_nodes=0")])
def test_bad_options_are_value_errors(loop_50, options, message):
    with pytest.raises(ValueError, match=message):
        drawing_view(loop_50, **options)


def _chain(length: int) -> nx.MultiDiGraph:
    """h₁ -> tanh -> h₂ -> tanh -> ... as the capture records it (`h = torch.tanh(h)` in a loop)."""
    graph = nx.MultiDiGraph(roots=[f"t{length}"])
    for i in range(length + 1):
        graph.add_node(f"t{i}", kind="tensor", name="h", label=f"h{i + 1}", role="named" if i else "leaf",
                       value=0.5, grad=1.0, shape=[], line=3 if i else 1)
    for i in range(length):
        graph.add_node(f"op{i}", kind="op", op="tanh", label="tanh", module=None, line=3, op_kind="op")
        graph.add_edge(f"t{i}", f"op{i}", key="0", differentiable=True)
        graph.add_edge(f"op{i}", f"t{i + 1}", key=0)
    return graph


def test_a_20000_node_chain_draws_without_recursion():
    graph = _chain(10000)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        folded = drawing_view(graph)
        full = drawing_view(graph, show_all=True)
        draw_graph(folded, layered_layout(folded))
        positions = layered_layout(full)
    finally:
        sys.setrecursionlimit(limit)
    assert len(full) == 20001 and len(folded) < 10 and positions["t10000"][0] == 20000


def test_module_boxes_stand_for_their_parameters(blocks):
    view = drawing_view(blocks, depth=1)
    weight = next(n for n, d in blocks.nodes(data=True) if d.get("param") == "model.1.up.weight")
    assert view.nodes[view_node(view, weight)]["label"].startswith("model.1 ")


def test_a_max_nodes_that_cannot_be_met_is_said_with_why():
    view = drawing_view(gradmagic.run(SEED_3).graph, max_nodes=5)
    assert len(view) == 15 and view.graph["hidden_note"] == (
        "Could not draw in 5 nodes: the smallest view has 15 (there is no module call to group and no repeated loop "
        "to fold; every named tensor and every op outside a module is drawn).")


def test_a_missed_max_nodes_follows_what_was_collapsed(blocks):
    view = drawing_view(blocks, max_nodes=3)
    assert view.graph["module_depth"] == 0 and len(view) == 5  # x, the model, pow, mean, loss
    assert view.graph["hidden_note"].endswith(
        "Could not draw in 3 nodes: the smallest view has 5 (modules are grouped at the top level; every named tensor "
        "and every op outside a module is drawn).")


def test_names_made_past_the_detail_budget_are_left_out_of_the_picture_and_said_so():
    graph = gradmagic.run(SEED_LOOP).graph  # the last iterations only counted: what a, x, y, b, z hold is loose
    view = drawing_view(graph)
    assert not any(node in view for node in graph.graph["past_detail"])
    assert "a, x, y, b and z left out: made past the detail budget (their values are in the table)" \
        in view.graph["hidden_note"]
    assert [n for n in view if view.degree(n) == 0] == []
    whole = drawing_view(graph, show_all=True)  # --all draws everything
    assert all(node in whole for node in graph.graph["past_detail"])


_VIEW_ORDER = """
import contextlib, io, sys
from pathlib import Path
import gradmagic
from gradmagic.view.folding import drawing_view
with contextlib.redirect_stdout(io.StringIO()):
    result = gradmagic.run(Path(sys.argv[1]).read_text(), {})
print(list(drawing_view(result.graph))[:50])
"""


def test_a_real_programs_picture_is_the_same_in_every_process():
    # pytorch/pytorch docs, double backward with a custom Function (tests/realworld): a view of 727 of 2,154 nodes
    import subprocess
    from pathlib import Path

    program = Path(__file__).parent.parent / "realworld" / "programs" / "double_backward_custom.py"
    orders = {subprocess.run([sys.executable, "-c", _VIEW_ORDER, str(program)], capture_output=True, text=True,
                             check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(orders) == 1 and orders.pop().startswith("[")
