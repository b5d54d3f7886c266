import networkx as nx
import torch

import gradmagic
from gradmagic.graph import op_label
from programs import SEED_3, SEED_LOOP


def test_graph_is_bipartite_multidigraph_with_an_edge_per_slot():
    graph = gradmagic.run("x = torch.tensor(3.0, requires_grad=True)\ny = x * x").graph
    assert isinstance(graph, nx.MultiDiGraph) and nx.is_directed_acyclic_graph(graph)
    x = next(n for n, d in graph.nodes(data=True) if d.get("name") == "x")
    mul = next(n for n, d in graph.nodes(data=True) if d.get("op") == "mul")
    assert sorted(graph[x][mul]) == ["0", "1"]  # x*x keeps both argument slots


def test_schema_attributes_on_every_node():
    graph = gradmagic.run(SEED_3).graph
    tensor_keys = {"kind", "name", "label", "expr", "line", "shape", "dtype", "device", "requires_grad", "is_leaf",
                   "grad_fn", "param", "value", "stats", "grad", "grad_stats", "role"}
    op_keys = {"kind", "op", "func", "consts", "module", "line", "grad_enabled", "optimizer"}
    for _, data in graph.nodes(data=True):
        assert (tensor_keys if data["kind"] == "tensor" else op_keys) <= set(data)
    assert graph.graph["roots"] and graph.graph["passes"] == 1 and graph.graph["source"] == SEED_3
    assert (graph.graph["module_classes"], graph.graph["module_calls"], graph.graph["optimizer_calls"]) == ({}, [], [])


def test_roles_of_the_seed_graph():
    result = gradmagic.run(SEED_3)
    roles = {name: result.tensor(name)["role"] for name in result.names()}
    assert roles == {"a": "leaf", "x": "leaf", "y": "named", "b": "named", "z": "output"}
    anonymous = {d["role"] for _, d in result.graph.nodes(data=True) if d["kind"] == "tensor" and not d["name"]}
    assert anonymous == {"intermediate"}


def test_expression_and_line_kept_for_named_tensors():
    y = gradmagic.run(SEED_3).tensor("y")
    assert y["expr"] == "2*x*x+3*a" and y["line"] == 4


def test_constants_fold_into_op_labels():
    labels = {d["label"] for _, d in gradmagic.run(SEED_3).graph.nodes(data=True) if d["kind"] == "op"}
    assert {"mul ×2", "mul ×3", "mul ×6", "reciprocal", "mul", "add"} <= labels
    assert op_label("sum", [("dim", "1")]) == "sum(dim=1)"


def test_no_backward_marks_unconsumed_named_tensors_as_outputs():
    result = gradmagic.run("x = torch.tensor(1.0, requires_grad=True)\ny = x * 2\nz = y + 1")
    assert result.tensor("z")["role"] == "output" and result.tensor("y")["role"] == "named"
    assert result.graph.graph["passes"] == 0 and result.tensor("x")["grad"] is None


def test_names_tensors_made_past_the_detail_budget_are_their_plain_names_holding_their_final_values():
    namespace = {"torch": torch}
    graph = gradmagic.run(SEED_LOOP, namespace).graph  # 1,000 iterations: the last ones are only counted
    bindings = graph.graph["bindings"]
    assert graph.graph["coarse"] and sorted(graph.graph["past_detail"]) == sorted(bindings.values())
    for name, node in bindings.items():
        data = graph.nodes[node]
        assert data["label"] == name and data["value"] == namespace[name].item()  # not `a₄₃₈`: it is the 1,000th
    assert graph.nodes[bindings["x"]]["grad"] == namespace["x"].grad.item() == 17200


def test_nothing_is_past_the_detail_when_every_op_is_recorded():
    graph = gradmagic.run(SEED_LOOP, {"torch": torch}, budget=100_000).graph
    assert not graph.graph["coarse"] and graph.graph["past_detail"] == []
    assert graph.nodes[graph.graph["bindings"]["z"]]["label"] == "z₁₀₀₀"
