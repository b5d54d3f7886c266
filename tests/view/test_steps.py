"""The model-aware default view: one box per module call, one node per optimizer step, training loops folded."""
import networkx as nx
import pytest
import torch

import gradmagic
from gradmagic.view.folding import drawing_view, view_node
from gradmagic.view.layout import layered_layout
from gradmagic.text import number
from helpers import labels_of, nodes_of_kind

MLP_STEP = """
import torch.nn as nn
import torch.nn.functional as F
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(16, 4)
target = torch.randn(16, 1)
opt.zero_grad()
loss = F.mse_loss(model(x), target)
loss.backward()
opt.step()
"""

TRAINING_LOOP = """
import torch.nn as nn
model = nn.Linear(2, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(8, 2)
y = torch.randn(8, 1)
for step in range(STEPS):
    opt.zero_grad()
    loss = ((model(x) - y)**2).mean()
    loss.backward()
    opt.step()
"""

TRANSFORMER_STEP = """
import torch.nn as nn
layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, batch_first=True, dropout=0.0)
model = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
tokens = torch.randn(4, 6, 16)
opt.zero_grad()
loss = model(tokens).pow(2).mean()
loss.backward()
opt.step()
"""


@pytest.fixture(scope="module")
def mlp_step():
    torch.manual_seed(0)
    namespace = {"torch": torch}
    return gradmagic.run(MLP_STEP, namespace).graph, namespace


def _norm(t: torch.Tensor) -> str:
    return number(t.grad.norm().item())


def test_the_mlp_step_draws_its_inputs_three_module_boxes_the_loss_and_one_optimizer_node(mlp_step):
    graph, ns = mlp_step
    view = drawing_view(graph)
    first, last = ns["model"][0], ns["model"][2]
    assert [(d["kind"], d["label"], d.get("caption")) for _, d in view.nodes(data=True)] == [
        ("tensor", "x", None), ("tensor", "target", None), ("tensor", "loss", None),
        ("cluster", "model.0 · Linear", f"[16×4] → [16×8]\nweight [8×4] ∇‖{_norm(first.weight)}‖\n"
                                        f"bias [8] ∇‖{_norm(first.bias)}‖"),
        ("cluster", "model.1 · ReLU", "[16×8] → [16×8]"),
        ("cluster", "model.2 · Linear", f"[16×8] → [16×1]\nweight [1×8] ∇‖{_norm(last.weight)}‖\n"
                                        f"bias [1] ∇‖{_norm(last.bias)}‖"),
        ("op", "mse_loss(reduction=mean)", None),
        ("optimizer", "opt.step()  SGD(lr=0.1)", "updated 4 parameters of 2 modules"),
    ]


def test_the_step_comes_after_the_backward_and_stands_for_the_post_step_parameters(mlp_step):
    graph, _ = mlp_step
    view = drawing_view(graph)
    label = {n: d["label"] for n, d in view.nodes(data=True)}
    step = next(iter(nodes_of_kind(view, "optimizer")))
    assert [label[n] for n in view.predecessors(step)] == ["loss"] and view.out_degree(step) == 0
    assert [label[n] for n in nx.topological_sort(view)][-2:] == ["loss", "opt.step()  SGD(lr=0.1)"]
    finals = [graph.graph["bindings"][f"model.{i}.{p}"] for i in (0, 2) for p in ("weight", "bias")]
    assert [view_node(view, t) for t in finals] == [step] * 4  # post-step versions folded in, still in the graph
    assert [graph.nodes[t]["label"] for t in finals] == [f"model.{i}.{p}₂" for i in (0, 2) for p in ("weight", "bias")]
    grads = [n for n, d in graph.nodes(data=True) if d["kind"] == "tensor" and (d["name"] or "").endswith(".grad")]
    assert len(grads) == 4 and {view_node(view, n) for n in grads} == {step}  # the .grad reads are no nodes
    assert {view_node(view, n) for n, d in graph.nodes(data=True) if d["kind"] == "op" and d["op"] == "add_"} == {step}


def test_show_all_still_draws_every_op_of_the_step(mlp_step):
    graph, _ = mlp_step
    view = drawing_view(graph, show_all=True)
    assert set(view) == set(graph) and not nodes_of_kind(view, "optimizer") and not nodes_of_kind(view, "cluster")
    assert [d["label"] for _, d in view.nodes(data=True) if d["kind"] == "op" and d["optimizer"] is not None] == \
        ["add_(alpha=-0.1)"] * 4


def test_depth_0_draws_the_whole_model_as_one_box(mlp_step):
    view = drawing_view(mlp_step[0], depth=0)
    assert labels_of(view, "cluster") == ["model · Sequential"]
    model = mlp_step[1]["model"]
    params = [f"{i}.{p} [{shape}] ∇‖{_norm(getattr(model[i], p))}‖"
              for i, p, shape in ((0, "weight", "8×4"), (0, "bias", "8"), (2, "weight", "1×8"), (2, "bias", "1"))]
    assert view.nodes["module:model:1"]["caption"] == "\n".join(["[16×4] → [16×1]", *params, "3 ops: linear ×2, relu"])


@pytest.mark.parametrize("lean", [False, True])
def test_a_3_step_training_loop_reads_step_1_then_the_folded_rest_in_order(lean):
    torch.manual_seed(0)
    view = drawing_view(gradmagic.run(TRAINING_LOOP.replace("STEPS", "3"), lean=lean).graph)
    label = {n: d["label"] for n, d in view.nodes(data=True)}
    order = [label[n] for n in nx.topological_sort(view) if label[n] not in ("x", "y")]
    sub, pow_, mean = ("sub", "pow ^2", "mean") if not lean else ("sub", "pow", "mean")
    assert order == ["model · Linear · call 1", sub, pow_, mean, "loss₁", "opt.step()  SGD(lr=0.1)",
                     "loop ×2 more (line 9)", "loss₃"]
    assert labels_of(view, "cluster") == ["model · Linear · call 1"]
    loop = nodes_of_kind(view, "loop")
    assert [d["caption"] for d in loop.values()] == ["each: model → sub → pow → mean → opt.step()  SGD(lr=0.1)"]
    positions = layered_layout(view, rankdir="TB")
    by_label = {label[n]: positions[n][1] for n in view}
    assert by_label["loss₁"] > by_label["opt.step()  SGD(lr=0.1)"] > by_label["loop ×2 more (line 9)"] > by_label["loss₃"]


def test_a_100_step_training_loop_folds_the_same_way():
    torch.manual_seed(0)
    graph = gradmagic.run(TRAINING_LOOP.replace("STEPS", "100")).graph
    view = drawing_view(graph)
    assert labels_of(view, "loop") == ["loop ×99 more (line 9)"] and len(view) == 10
    assert labels_of(view) == ["x", "y", "loss₁", "loss₁₀₀"]
    assert view.graph["hidden_note"] == (
        f"Showing 10 of {len(graph):,} nodes: a loop of 100 iterations folded (line 9); one box per leaf module call "
        "(1 box); 1 optimizer step drawn as one node each; use --all or a higher --max-nodes to see more.")


def test_a_transformer_step_draws_one_box_per_leaf_module_and_leaves_out_the_prototype_layer():
    torch.manual_seed(0)
    view = drawing_view(gradmagic.run(TRANSFORMER_STEP).graph)
    boxes = labels_of(view, "cluster")
    parts = ("self_attn", "norm1 · LayerNorm", "linear1 · Linear", "linear2 · Linear", "norm2 · LayerNorm")
    assert boxes == [f"model.layers.{i}.{part}" for i in (0, 1) for part in parts] and max(map(len, boxes)) <= 44
    attention = next(d for d in nodes_of_kind(view, "cluster").values() if "self_attn" in d["label"])
    assert attention["caption"].split("\n")[0] == "MultiheadAttention · [4×6×16] ×3 → [4×6×16]"  # too long above
    assert labels_of(view, "optimizer") == ["opt.step()  Adam(lr=0.001)"]
    assert not [d for _, d in view.nodes(data=True) if d.get("op") in ("data", "clone")]  # deepcopy of `layer`
    assert not [d for _, d in view.nodes(data=True) if (d.get("name") or "").startswith("layer.")]
    assert "12 parameters of modules never called left out" in view.graph["hidden_note"] and len(view) <= 25


def test_zero_grad_s_ops_are_no_nodes_of_their_own():
    from programs import STEP_WITH_MOMENTUM

    torch.manual_seed(0)
    graph = gradmagic.run(STEP_WITH_MOMENTUM).graph
    view = drawing_view(graph)
    step = next(iter(nodes_of_kind(view, "optimizer")))
    assert labels_of(view, "optimizer") == ["opt.step()  SGD(lr=0.1, momentum=0.9)"]
    zeroed = [n for n, d in graph.nodes(data=True) if d["kind"] == "op" and d["op"] == "zero_"]
    assert len(zeroed) == 2 and {view_node(view, n) for n in zeroed} == {step}
    assert not [d for _, d in view.nodes(data=True) if d["kind"] == "op" and d.get("optimizer") is not None]


def test_max_nodes_below_the_smallest_training_view_says_what_was_already_folded(mlp_step):
    view = drawing_view(mlp_step[0], max_nodes=5)
    assert len(view) == 6 and view.graph["module_depth"] == 0  # x, target, model, mse_loss, loss, opt.step()
    assert view.graph["hidden_note"].endswith(
        "Could not draw in 5 nodes: the smallest view has 6 (modules are grouped at the top level and optimizer steps "
        "are one node each; every named tensor and every op outside a module is drawn).")


def test_a_max_nodes_the_unfolded_loop_fits_draws_every_step_in_order():
    torch.manual_seed(0)
    view = drawing_view(gradmagic.run(TRAINING_LOOP.replace("STEPS", "3")).graph, max_nodes=100)
    label = {n: d["label"] for n, d in view.nodes(data=True)}
    step = ["sub", "pow ^2", "mean"]
    assert [label[n] for n in nx.topological_sort(view) if label[n] not in ("x", "y")] == [
        "model · Linear · call 1", *step, "loss₁", "opt.step()  SGD(lr=0.1)",
        "model · Linear · call 2", *step, "loss₂", "opt.step()  SGD(lr=0.1)",
        "model · Linear · call 3", *step, "loss₃", "opt.step()  SGD(lr=0.1)"]
    assert not nodes_of_kind(view, "loop") and len(view) == 20


def test_each_zero_grad_joins_the_next_step_of_its_own_optimizer_or_the_last_one():
    from gradmagic.view.steps import _steps_of

    calls = [{"call": c, "name": n, "class": "SGD"} for c, n in
             [("zero_grad", "a"), ("zero_grad", "b"), ("step", "b"), ("step", "a"), ("zero_grad", "a"),
              ("step", "a"), ("zero_grad", "b"), ("zero_grad", "c")]]
    assert _steps_of(calls) == [3, 2, 2, 3, 5, 5, 2, None]
