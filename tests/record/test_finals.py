"""What gradmagic reports about a name is what that name holds when the run ends, in both captures."""
import pytest
import torch

import gradmagic
from gradmagic.record.finals import named_tensors, snapshot
from gradmagic.view.report import summary_lines, table_rows
from helpers import assert_same, captured_namespace, plain_namespace

CAPTURES = pytest.mark.parametrize("lean", [False, True], ids=["full", "lean"])


def _reported_as_held(result, namespace: dict, name: str) -> None:
    """result.tensor(name) describes the tensor `name` holds: value, exact .grad, requires_grad, leaf, metadata."""
    t = eval(name.split("[")[0], {}, namespace) if "[" not in name else eval(name, {}, namespace)
    node = result.tensor(name)
    assert node["value"] == t.tolist(), name
    grad = t.grad if t.is_leaf or t.retains_grad else None
    assert node["grad"] == (None if grad is None else grad.tolist()), name
    assert (node["requires_grad"], node["is_leaf"]) == (t.requires_grad, t.is_leaf), name
    assert (node["shape"], node["dtype"], node["device"]) == (list(t.shape), "float32", "cpu"), name


def test_named_tensors_walks_names_parameters_and_items_but_not_history():
    m = torch.nn.Linear(1, 1)
    xs, d = [torch.ones(1), 3], {"k": torch.zeros(1)}
    ns = {"a": torch.ones(1), "m": m, "xs": xs, "d": d, "_hidden": torch.ones(1), "Out": {1: torch.ones(1)}}
    assert [name for name, _ in named_tensors(ns)] == ["a", "m.weight", "m.bias", "xs[0]", "d['k']"]


def test_snapshot_keeps_one_entry_per_tensor_with_all_its_names():
    a = torch.ones(2, requires_grad=True)
    (finals,) = snapshot({"a": a, "b": a}, {})
    assert finals.names == ["a", "b"] and finals.grad is None and finals.value.tolist() == [1.0, 1.0]


@CAPTURES
def test_function_locals_are_scoped_and_never_replace_top_level_names(lean):
    source = ("x = torch.tensor(2.0, requires_grad=True)\ny = x * 10\n"
              "def f(u):\n    y = u * 3\n    return y + 1\n"
              "z = f(x)\nz.backward()\n")
    namespace, result = captured_namespace(source, lean=lean)
    assert result.tensor("y")["value"] == 20.0 and result.tensor("f.y")["value"] == 6.0
    _reported_as_held(result, namespace, "x")
    assert "f.y" in result.names() and result.tensor("x")["grad"] == 3.0


@CAPTURES
def test_aliases_resolve_to_the_same_tensor(lean):
    source = ("x = torch.tensor([1.0, 2.0], requires_grad=True)\ny = x * 2\nb = x\n"
              "xpt, ypt = x, y\nloss = ypt.sum()\nloss.backward()\n")
    namespace, result = captured_namespace(source, lean=lean)
    for name in ("x", "b", "xpt", "ypt"):
        _reported_as_held(result, namespace, name)
    assert result.tensor("b") is result.tensor("x") and result.tensor("ypt") is result.tensor("y")


@CAPTURES
def test_grad_is_exactly_dot_grad(lean):
    source = ("w = torch.tensor(2.0, requires_grad=True)\n(w * w).backward()\nw.grad = None\n"
              "x = torch.tensor(3.0, requires_grad=True)\ny = x ** 2\n(g,) = torch.autograd.grad(y, x)\n"
              "r = torch.tensor([1.0, 2.0], requires_grad=True) * 2\nr.retain_grad()\nr.sum().backward()\n")
    namespace, result = captured_namespace(source, lean=lean)
    assert result.tensor("w")["grad"] is None and result.tensor("x")["grad"] is None
    assert result.tensor("g")["value"] == 6.0 and result.tensor("y")["grad"] is None
    assert result.tensor("r")["grad"] == [1.0, 1.0] == namespace["r"].grad.tolist()


@CAPTURES
def test_requires_grad_set_in_the_cell_is_reported(lean):
    source = ("x = torch.ones(2)\nx.requires_grad = True\nv = torch.zeros(2)\nv.requires_grad_()\n"
              "y = (x * 2 + v).sum()\ny.backward()\n")
    namespace, result = captured_namespace(source, lean=lean)
    for name in ("x", "v"):
        _reported_as_held(result, namespace, name)
    assert result.tensor("x")["grad"] == [2.0, 2.0]


@CAPTURES
def test_in_place_updates_through_another_name_give_the_new_value(lean):
    source = ("w = torch.tensor([1.0, 2.0], requires_grad=True)\nb = torch.tensor(0.5, requires_grad=True)\n"
              "def sgd(params, lr):\n    with torch.no_grad():\n        for param in params:\n"
              "            param -= lr * param.grad\n            param.grad.zero_()\n"
              "for step in range(2):\n    loss = (w * 3 + b).sum()\n    loss.backward()\n    sgd([w, b], 0.1)\n"
              "c = torch.ones(3)\nc[1:].mul_(5)\n")
    namespace, result = captured_namespace(source, lean=lean)
    for name in ("w", "b", "c"):
        _reported_as_held(result, namespace, name)
    assert_same(plain_namespace(source), namespace)
    assert not [d for d in result.diagnostics if d.kind == "no_gradient"]


@CAPTURES
def test_names_are_read_when_the_run_ends_not_when_the_result_is_first_used(lean):
    namespace, result = captured_namespace("w = torch.ones(2, requires_grad=True)\nw.sum().backward()\n", lean=lean)
    with torch.no_grad():
        namespace["w"].mul_(7)  # a later cell
    namespace["w"].grad = None
    assert result.tensor("w")["value"] == [1.0, 1.0] and result.tensor("w")["grad"] == [1.0, 1.0]


@CAPTURES
def test_parameters_reached_through_a_bound_list_keep_value_and_grad(lean):
    source = ("m = torch.nn.Linear(2, 2)\nparams = list(m.parameters())\nx = torch.randn(3, 2)\n"
              "loss = m(x).sum()\nloss.backward()\nopt = torch.optim.SGD(params, lr=0.1)\nopt.step()\n")
    namespace, result = captured_namespace(source, lean=lean)
    for name in ("m.weight", "m.bias", "params[0]"):
        node, t = result.tensor(name), dict(namespace["m"].named_parameters())[name.split(".")[-1]] \
            if name.startswith("m.") else namespace["params"][0]
        assert node["value"] == t.tolist() and node["grad"] == t.grad.tolist(), name
    assert "params[0]" in result.tensor("m.weight")["aliases"]


@CAPTURES
def test_summary_prints_each_pass_own_root_and_leaves(lean):
    source = ("u = torch.tensor(3.0, requires_grad=True)\nf = u ** 3\nf.backward()\n"
              "v = torch.tensor(2.0, requires_grad=True)\ng = v * 2\ng.backward()\n"
              "x = torch.tensor(3.0, requires_grad=True)\ny = x * x\ny.backward(retain_graph=True)\ny.backward()\n")
    _, result = captured_namespace(source, lean=lean)
    lines = summary_lines(result.graph)
    assert "df/du = 27.0" in lines and "dg/dv = 2.0" in lines and not any("dg/du" in line for line in lines)
    assert lines.count("dy/dx = 6.0") == 2 and not any("= 12.0" in line for line in lines)  # .grad is 12


@CAPTURES
def test_training_step_derivatives_name_the_weights_the_pass_used(lean):
    source = ("model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1))\n"
              "opt = torch.optim.SGD(model.parameters(), lr=0.1)\nx = torch.randn(4, 2)\n"
              "loss = model(x).pow(2).mean()\nopt.zero_grad()\nloss.backward()\nopt.step()\n")
    namespace, result = captured_namespace(source, lean=lean)
    derivatives = summary_lines(result.graph)[-1]
    assert "dloss/dmodel.0.weight" in derivatives and "dmodel.0.weight₂" not in derivatives
    assert result.tensor("model.0.weight")["value"] == namespace["model"][0].weight.tolist()


def test_table_expressions_of_in_place_versions_and_tuple_targets():
    source = "p = torch.ones(2)\nq = p * 3\nq.add_(1)\na, b = torch.ones(1) * 2, torch.ones(1) * 3\n"
    rows = {row.name: row.expression for row in table_rows(gradmagic.run(source).graph, all=True)}
    assert rows["q₁"] == "p * 3" and rows["q"] == "q.add_(1)"  # the final version under its bare name
    assert rows["a"] == "torch.ones(1) * 2" and rows["b"] == "torch.ones(1) * 3"


@CAPTURES
def test_tensors_of_earlier_cells_show_only_when_the_cell_touches_them(lean):
    namespace = {"torch": torch}
    gradmagic.run("u = torch.tensor(1.0, requires_grad=True)\nold = torch.ones(2)\n", namespace, lean=lean)
    result = gradmagic.run("x = torch.tensor(2.0, requires_grad=True)\ny = x * u\ny.backward()\n", namespace,
                           lean=lean)
    assert "old" not in result.names() and {"x", "y", "u"} <= set(result.names())
    assert result.tensor("u")["grad"] == 2.0
