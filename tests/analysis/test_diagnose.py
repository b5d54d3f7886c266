"""diagnose(): each usual gradient mistake found, explained in one line, and marked on the graph."""
import warnings

import pytest
import torch

import gradmagic
from gradmagic.analysis.diagnose import diagnose

from programs import CONTROL_FLOW, FUNCTIONS, IN_PLACE, MODULE_STEP, SEED_1, SEED_2, SEED_3


def found(source: str, namespace=None):
    """(the result, its diagnostics) for a program."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reading .grad of a non-leaf warns
        result = gradmagic.run(source, namespace)
    return result, diagnose(result.graph)


def node(result, label: str) -> str:
    return next(n for n, d in result.graph.nodes(data=True) if d.get("label") == label)


def op(result, name: str) -> str:
    return next(n for n, d in result.graph.nodes(data=True) if d.get("op") == name)


@pytest.mark.parametrize("source", [SEED_1, SEED_2, SEED_3, CONTROL_FLOW, MODULE_STEP, IN_PLACE, FUNCTIONS])
def test_clean_programs_have_no_diagnostics(source):
    torch.manual_seed(0)
    assert found(source)[1] == []


def test_unused_leaf_is_not_on_any_path():
    result, (d,) = found("w = torch.tensor(3.0, requires_grad=True)\nx = torch.tensor(2.0, requires_grad=True)\n"
                         "y = x * 2\ny.backward()\n")
    assert d.kind == "no_gradient" and d.nodes == [node(result, "w")] and d.edges == [] and d.line == 1
    assert d.message.startswith("w (line 1) requires grad but got no gradient: it is not used in computing y")


def test_detach_on_the_only_path_is_named_with_its_fix():
    result, (d,) = found("x = torch.tensor(2.0, requires_grad=True)\nloss = x.detach() * 3\n"
                         "s = loss + torch.tensor(1.0, requires_grad=True)\ns.backward()\n")
    assert d.kind == "no_gradient" and d.edges == [(node(result, "x"), op(result, "detach"), "0")]
    assert "x.detach() at line 2 cuts it off the graph, so the gradient of s cannot reach it" in d.message
    assert "Use x instead of x.detach()" in d.message


def test_no_grad_block_is_named_with_its_line():
    result, (d,) = found("w = torch.tensor(3.0, requires_grad=True)\nwith torch.no_grad():\n    c = w * 2\n"
                         "x = torch.tensor(2.0, requires_grad=True)\nz = x * c\nz.backward()\n")
    assert d.kind == "no_gradient" and d.edges == [(node(result, "w"), op(result, "mul"), "0")]
    assert "`c = w * 2` (line 3) ran under torch.no_grad()" in d.message
    assert "outside `with torch.no_grad():`" in d.message


def test_detach_that_still_leaves_a_gradient_is_a_cut():
    result, (d,) = found("x = torch.tensor([1.0, 2.0], requires_grad=True)\ny = x * x\nfrozen = y.detach()\n"
                         "z = (y + frozen * 3).sum()\nz.backward()\n")
    assert d.kind == "cut" and d.line == 3
    assert d.edges == [(node(result, "y"), op(result, "detach"), "0")] and node(result, "frozen") in d.nodes
    assert d.message.startswith("y.detach() at line 3 cuts it off the graph: frozen carries no gradient back to y")


def test_tensor_rebuilt_from_item_loses_the_path():
    result, (d,) = found("x = torch.tensor(2.0, requires_grad=True)\ny = x * 3\nv = y.item()\n"
                         "z = torch.tensor(v) * x\nz.backward()\n")
    item = op(result, "item")
    assert d.kind == "rebuilt" and d.edges == [(node(result, "y"), item, "0")] and d.line == 4
    assert ("y.item() at line 3 turns y into a plain Python number, and `tensor(6.0)` at line 4 builds a new "
            "tensor from it with no link back to y") in d.message
    assert "Keep y a tensor" in d.message


def test_leaf_whose_only_path_goes_through_float_is_explained():
    result, (d,) = found("w = torch.tensor(2.0, requires_grad=True)\nu = torch.tensor(1.0, requires_grad=True)\n"
                         "s = torch.tensor(float(w * 4)) + u\ns.backward()\n")
    assert d.kind == "no_gradient" and d.nodes[0] == node(result, "w")
    assert "float(the result of `mul ×4` (line 3)) at line 3 turns" in d.message
    assert "`tensor(8.0)` at line 3 builds a new tensor from it" in d.message


def test_gradient_accumulated_across_runs_says_the_value_before():
    namespace = {"torch": torch}
    gradmagic.run("x = torch.tensor(3.0, requires_grad=True)\n", namespace)
    gradmagic.run("y = x * x\ny.backward()\n", namespace)
    result, (d,) = found("y = x * x\ny.backward()\n", namespace)
    assert d.kind == "accumulated" and d.nodes == [node(result, "x")]
    assert d.message.startswith("x.grad already held 6.0 before this run, so backward() added this run's gradient "
                                "to it, and it is now 12.0")
    assert "`x.grad = None` (or optimizer.zero_grad())" in d.message


def test_reading_grad_of_a_non_leaf_suggests_retain_grad():
    result, (d,) = found("x = torch.tensor(3.0, requires_grad=True)\ny = x * x\nz = y * 2\nz.backward()\n"
                         "g = y.grad\n")
    assert d.kind == "nonleaf_grad" and d.nodes == [node(result, "y")] and d.line == 5
    assert d.message.startswith("line 5 reads y.grad, which is None: y is computed from other tensors (not a leaf)")
    assert "gradmagic saw its gradient: 2.0" in d.message and "Call y.retain_grad() before backward()" in d.message


def test_first_nan_value_names_the_op_and_its_inputs():
    result, (d,) = found("x = torch.tensor(2.0, requires_grad=True)\nd = x - 5\ny = torch.log(d)\n"
                         "z = y * 2\nz.backward()\n")
    assert d.kind == "nan_value" and d.line == 3 and op(result, "log") in d.nodes and node(result, "y") in d.nodes
    assert d.message.startswith("the first NaN value appears at line 3: `log` made y = nan from d = -3.0")


def test_first_infinite_gradient_names_the_op_whose_backward_made_it():
    result, (d,) = found("x = torch.tensor([0.0, 4.0], requires_grad=True)\nr = torch.sqrt(x)\n"
                         "s = r.sum()\ns.backward()\n")
    assert d.kind == "nan_grad" and d.edges == [(node(result, "x"), op(result, "sqrt"), "0")]
    assert d.message.startswith("the first inf gradient comes from `sqrt` at line 2: its backward sends [inf, 0.25] "
                                "to x (= [0.0, 4.0])")


def test_zeroed_gradient_from_an_earlier_run_is_fine():
    namespace = {"torch": torch}
    gradmagic.run("x = torch.tensor(3.0, requires_grad=True)\ny = x * x\ny.backward()\nx.grad.zero_()\n", namespace)
    assert found("y = x * x\ny.backward()\n", namespace)[1] == []


def test_comparisons_under_no_grad_are_not_cuts():
    source = ("x = torch.tensor([1.0, -2.0], requires_grad=True)\nwith torch.no_grad():\n    mask = x > 0\n"
              "y = (x * mask).sum()\ny.backward()\n")
    assert found(source)[1] == []


def test_accumulated_gradient_of_a_large_parameter_is_described_by_its_stats():
    namespace = {"torch": torch, "w": torch.ones(100, requires_grad=True)}
    source = "loss = (w * 2).sum()\nloss.backward()"
    gradmagic.run(source, namespace)
    found = [d for d in gradmagic.run(source, namespace).diagnostics if d.kind == "accumulated"]
    assert len(found) == 1 and "n=100" in found[0].message and "w" in found[0].message


def test_a_check_that_fails_is_one_incomplete_line_and_the_others_still_run(monkeypatch):
    import gradmagic.analysis.diagnose as diagnose_module

    def _cuts(graph, *args):  # a bug in one check
        raise KeyError("grad")

    monkeypatch.setattr(diagnose_module, "cuts", _cuts)
    _, diagnostics = found("w = torch.tensor(3.0, requires_grad=True)\nx = torch.tensor(2.0, requires_grad=True)\n"
                           "y = x * 2\ny.backward()\n")
    assert [d.kind for d in diagnostics] == ["no_gradient", "incomplete"]
    assert diagnostics[1].message == "gradmagic could not finish one of its checks (cuts: KeyError: 'grad')"


def test_non_leaf_grad_read_shows_the_gradient_of_its_pass():
    result, (d,) = found("x = torch.tensor(2.0, requires_grad=True)\ny = x * 3\nz = y * y\nz.backward()\n"
                         "g = y.grad\n")
    assert d.kind == "nonleaf_grad" and "(gradmagic saw its gradient: 12.0)" in d.message


# Mutants from issue 11 ---------------------------------------------------------------------------
# A NaN origin that pointed at the last NaN-making op (or at ops in text order, op10 before op2), and a leaf
# made after backward() flagged as "no gradient", survived the whole suite.

from helpers import plain_namespace  # noqa: E402

TWO_NAN_ORIGINS = """
x = torch.tensor(2.0, requires_grad=True)
d = (x - 5) * 1
y = torch.log(d)
h = (((x * 2 + 1) * 3 - 4) / 5 + 6) * 7
e = h - 100
w = torch.sqrt(e)
z = y + w
z.backward()
"""


def test_the_nan_origin_is_the_first_op_in_record_order_not_the_last():
    result, diagnostics = found(TWO_NAN_ORIGINS)
    plain = plain_namespace(TWO_NAN_ORIGINS)
    assert plain["y"].isnan() and plain["w"].isnan() and plain["e"].item() < 0  # two independent origins
    assert int(op(result, "sqrt")[2:]) >= 10 > int(op(result, "log")[2:]) >= 2  # op10 sorts before op2 as text
    (d,) = [d for d in diagnostics if d.kind == "nan_value"]
    assert d.line == 4 and op(result, "log") in d.nodes and op(result, "sqrt") not in d.nodes
    assert d.message.startswith("the first NaN value appears at line 4: `log` made y = nan from ")


def test_a_leaf_made_after_backward_is_not_flagged_as_without_gradient():
    source = ("x = torch.tensor(2.0, requires_grad=True)\ny = x * 3\ny.backward()\n"
              "w = torch.tensor(1.0, requires_grad=True)\n")
    result, diagnostics = found(source)
    assert plain_namespace(source)["w"].grad is None and result.tensor("w")["grad"] is None
    assert diagnostics == []


# Found by mutmut (scripts/mutation/run_mutmut.py diagnose, 40 of its mutants, seed 11).

def test_a_nan_gradient_is_traced_to_its_op_past_unrelated_earlier_ops():
    source = ("w = torch.tensor(1.0, requires_grad=True)\nu = w * 3\nx = torch.tensor([0.0, 4.0], requires_grad=True)\n"
              "r = torch.sqrt(x)\ns = (r * 0).sum() + u\ns.backward()\n")
    result, (d,) = found(source)
    assert plain_namespace(source)["x"].grad.isnan().tolist() == [True, False]  # 0 · inf from sqrt at 0
    assert d.kind == "nan_grad" and d.edges == [(node(result, "x"), op(result, "sqrt"), "0")] and d.line == 4
    assert d.message.startswith("the first NaN gradient comes from `sqrt` at line 4: its backward sends [nan, 0.0]")


def test_a_nan_in_a_large_tensor_is_named_from_its_summary():
    result, (d,) = found("x = torch.full((100,), 2.0, requires_grad=True)\nd = x - 5\ny = torch.log(d)\n"
                         "z = y.sum()\nz.backward()\n")
    assert result.tensor("y")["value"] is None and result.tensor("y")["stats"]["nan"]  # 100 > SMALL_NUMEL
    assert d.kind == "nan_value" and d.message.startswith("the first NaN value appears at line 3: `log` made y = ")


REBUILT_AND_DETACHED = """
x = torch.tensor(2.0, requires_grad=True)
y = x * 3
c = torch.tensor(y.item())
z = c * x
d = x.detach()
k = (d * 2 + z).sum()
k.backward()
"""


@pytest.mark.parametrize("source", [REBUILT_AND_DETACHED, CONTROL_FLOW, MODULE_STEP, IN_PLACE, FUNCTIONS])
def test_the_roots_reach_is_what_a_copy_of_the_edges_reaches(source):
    """roots_reach walks the graph's own predecessors; the reference copies every edge into a DiGraph first."""
    import networkx as nx

    from gradmagic.analysis.cuts import rebuilt_links, roots_reach

    torch.manual_seed(0)
    graph = found(source)[0].graph
    rebuilt = rebuilt_links(graph)
    flow = nx.DiGraph(graph.edges())
    flow.add_edges_from((exit_op, creation) for creation, exit_op in rebuilt.items())
    roots = set(graph.graph["roots"]) & set(flow)
    expected = roots.union(*(nx.ancestors(flow, r) for r in roots))
    assert expected and roots_reach(graph, rebuilt) == expected
    assert bool(rebuilt) == (source is REBUILT_AND_DETACHED)  # the walk also crosses a value rebuilt from .item()
