"""explain(): the chain rule over named variables, and the paths whose contributions sum to the gradient."""
import math

import pytest
import torch

import gradmagic
from gradmagic.analysis.explain import explain

from helpers import plain_namespace
from programs import SEED_3

VECTOR = """
x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
W = torch.tensor([[1.0, -1.0, 0.5], [0.3, 0.2, -2.0]], requires_grad=True)
h = W @ x
g = torch.tanh(h) * x[:2]
s = x.sin()
loss = (g.sum() + (s * h.sum()).sum()) ** 2
loss.backward()
"""

MANY_PATHS = """
x = torch.tensor(0.5, requires_grad=True)
h = x
for i in range(5):
    h = h * x + h
h.backward()
"""


@pytest.fixture(scope="module")
def seed():
    return explain(gradmagic.run(SEED_3), "x")


def test_seed_gradient_is_the_sum_of_two_named_paths(seed):
    assert [p.names for p in seed.paths] == [["x", "y", "z"], ["x", "b", "z"]]
    through_y, through_b = seed.paths
    assert through_y.contribution == pytest.approx(430 * 40, rel=1e-6)
    assert through_y.factors == pytest.approx([40.0, 430.0], rel=1e-6)  # ∂y/∂x = 4x, ∂z/∂y = 2y − 1/(b·y²)
    assert through_b.contribution == pytest.approx(-5.1679586e-08 * 30, rel=1e-5)
    assert through_b.factors == pytest.approx([30.0, -5.1679586e-08], rel=1e-5)  # ∂b/∂x = 6a, ∂z/∂b = −1/(b²·y)
    x_grad = plain_namespace(SEED_3)["x"].grad.item()
    assert seed.gradient == x_grad == 17200.0
    assert seed.total == pytest.approx(x_grad, rel=1e-6)
    assert seed.rest_count == 0 and seed.rest is None


def test_seed_chain_rule_terms_come_from_the_recorded_flows(seed):
    y, b = seed.terms
    assert (y.child, y.upstream, y.contribution, y.local) == ("y", 430.0, 8600.0 + 8600.0, 40.0)
    assert (b.child, b.upstream) == ("b", pytest.approx(-5.1679586e-08, rel=1e-6))
    assert b.contribution == pytest.approx(-1.5503876e-06, rel=1e-6)  # the one flow out of x into `mul ×6`
    assert b.local == pytest.approx(30.0, rel=1e-6)


def test_seed_explanation_reads_as_the_chain_rule(seed):
    text = str(seed)
    assert text.splitlines()[0].startswith("dz/dx = 17200")
    assert "x → y → z  ∂z/∂y·∂y/∂x = 430.0 · 40.0 = 17200" in text
    assert "x → b → z  ∂z/∂b·∂b/∂x = (-5.17e-08) · 30.0 = -1.55e-06" in text
    assert "✓ matches autograd" in text
    assert "dz/dx = dz/dy·∂y/∂x + dz/db·∂b/∂x" in text
    html = seed._repr_html_()
    assert "<table>" in html and "x → b → z" in html and "430.0·40.0" in html


def test_vector_path_contributions_sum_to_the_gradient():
    ex = explain(gradmagic.run(VECTOR), "x")
    expected = plain_namespace(VECTOR)["x"].grad
    assert {tuple(p.names) for p in ex.paths} == {("x", "h", "loss"), ("x", "h", "g", "loss"), ("x", "g", "loss"),
                                                 ("x", "s", "loss")}
    total = torch.tensor([p.contribution for p in ex.paths], dtype=torch.float64).sum(0)
    assert torch.allclose(total, expected.double(), rtol=1e-5)
    assert ex.total == pytest.approx(expected.tolist(), rel=1e-5)
    assert "float64 re-run" in ex.method
    assert [p.magnitude for p in ex.paths] == sorted((p.magnitude for p in ex.paths), reverse=True)


def test_vector_terms_sum_to_the_gradient():
    ex = explain(gradmagic.run(VECTOR), "W")
    expected = plain_namespace(VECTOR)["W"].grad
    assert [t.child for t in ex.terms] == ["h"]
    assert torch.allclose(torch.tensor(ex.terms[0].contribution), expected, rtol=1e-6)
    by_length = sorted(ex.paths, key=lambda p: len(p.names))
    assert [p.names for p in by_length] == [["W", "h", "loss"], ["W", "h", "g", "loss"]]


def test_beyond_max_paths_the_rest_is_one_line():
    ex = explain(gradmagic.run(MANY_PATHS), "x", max_paths=3)
    expected = plain_namespace(MANY_PATHS)["x"].grad.item()
    assert len(ex.paths) == 3 and ex.rest_count == 2  # x feeds each of h₁ … h₅: x → hᵢ → … → h₅
    assert ex.total == pytest.approx(expected, rel=1e-5)
    assert sum(p.contribution for p in ex.paths) + ex.rest == pytest.approx(expected, rel=1e-5)
    assert "… 2 more path(s) together" in str(ex) and "= the sum over 5 path(s)" in str(ex)


def test_root_picks_the_backward_pass():
    result = gradmagic.run("x = torch.tensor(2.0, requires_grad=True)\ny = x * x\ny.backward()\n"
                           "z = x * 5\nz.backward()\n")
    assert explain(result, "x").gradient == 5.0
    assert explain(result, "x", root="y").gradient == 4.0
    assert explain(result, "x", root="y").paths[0].names == ["x", "y"]


def test_bad_names_say_which_tensors_exist():
    result = gradmagic.run(SEED_3)
    with pytest.raises(ValueError, match=r"no tensor named 'q'; the named tensors are: a, x, y, b, z"):
        explain(result, "q")
    with pytest.raises(ValueError, match=r"root='y': no backward pass started from it; .*: z"):
        explain(result, "x", root="y")


def test_without_backward_there_is_nothing_to_explain():
    with pytest.raises(ValueError, match="no backward pass ran"):
        explain(gradmagic.run("x = torch.tensor(1.0, requires_grad=True)\ny = x * 2\n"), "x")


def test_a_cut_tensor_got_no_gradient_to_explain():
    ex = explain(gradmagic.run("x = torch.tensor(1.0, requires_grad=True)\nw = torch.tensor(2.0, requires_grad=True)\n"
                               "y = (x * w.detach()).sum()\ny.backward()\n"), "w")
    assert ex.gradient is None and ex.paths == [] and "w got no gradient" in str(ex)


def test_graph_alone_explains_scalars():
    result = gradmagic.run(SEED_3)
    ex = explain(result.graph, "a")
    assert [p.names for p in ex.paths] == [["a", "y", "z"], ["a", "b", "z"]]
    assert ex.total == pytest.approx(result.tensor("a")["grad"], rel=1e-6)
    assert math.isclose(ex.paths[0].contribution, 430 * 3, rel_tol=1e-6)


def test_one_edge_feeding_two_named_children_is_split_by_the_replay():
    result = gradmagic.run("x = torch.tensor(3.0, requires_grad=True)\ny, w = (lambda t: (t + 1, t * 3))(x * 2)\n"
                           "z = y * w\nz.backward()\n")
    ex = explain(result, "x")
    assert [(p.names, p.contribution, p.factors) for p in ex.paths] == [
        (["x", "w", "z"], 42.0, [6.0, 7.0]), (["x", "y", "z"], 36.0, [2.0, 18.0])]
    assert ex.total == result.tensor("x")["grad"] == 78.0
    graph_only = explain(result.graph, "x")
    assert graph_only.paths == [] and "pass the Result" in str(graph_only)


ZEROING_HOOK = SEED_3.replace("z = y*y", "h = y.register_hook(lambda g: g * 0)\nz = y*y")


def test_a_gradient_hook_that_changed_the_gradient_is_named():
    ex = explain(gradmagic.run(ZEROING_HOOK), "x")
    plain = plain_namespace(ZEROING_HOOK)["x"].grad.item()
    assert ex.gradient == pytest.approx(plain, rel=1e-6)  # the hook zeroed y's gradient: only x → b → z is left
    assert ex.total == pytest.approx(17200, rel=1e-6) and "✗ differs from autograd" in str(ex)
    assert "y has a gradient hook (line 6) that changed its gradient: autograd's 0.0 vs chain rule 430" in str(ex)
    assert "custom torch.autograd.Function" not in str(ex)


def test_a_clamping_hook_on_a_leaf_is_named():
    source = "x = torch.tensor(2.0, requires_grad=True)\nx.register_hook(lambda g: g.clamp(-1, 1))\ny = x * x\n" \
             "y.backward()\n"
    ex = explain(gradmagic.run(source), "x")
    assert ex.gradient == plain_namespace(source)["x"].grad.item() == 1.0
    assert "x has a gradient hook (line 2) that changed its gradient: autograd's 1.0 vs chain rule 4.0" in str(ex)


def test_a_hook_that_changes_nothing_is_not_blamed():
    ex = explain(gradmagic.run(SEED_3.replace("z = y*y", "h = y.register_hook(lambda g: g)\nz = y*y")), "x")
    assert ex.gradient == 17200.0 and "✓ matches autograd" in str(ex) and ex.notes == []


TWO_PASSES = """
x = torch.tensor(3.0, requires_grad=True)
y = x * x
y.backward()
z = x * 5
z.backward()
"""


def test_by_default_the_last_pass_that_reached_the_name_is_explained():
    result = gradmagic.run(TWO_PASSES + "w = torch.tensor(1.0, requires_grad=True)\nv = w * 2\nv.backward()\n")
    ex = explain(result, "x")  # pass 3 (from v) did not reach x
    assert (ex.pass_index, ex.root, ex.gradient) == (1, "z", 5.0)
    assert str(ex).startswith("dz/dx = 5.0 (autograd, backward pass 2 from z)")
    assert "x.grad is 11.0 at the end of the run" in str(ex)  # 2·3 + 5: .grad is not what is explained
    assert plain_namespace(TWO_PASSES)["x"].grad.item() == 11.0


def test_pass_index_picks_a_pass_and_its_gradient_not_the_accumulated_grad():
    result = gradmagic.run(TWO_PASSES)
    first = explain(result, "x", pass_index=0)
    assert (first.root, first.gradient, first.total) == ("y", 6.0, pytest.approx(6.0))
    assert str(first).startswith("dy/dx = 6.0 (autograd, backward pass 1 from y)")
    assert result.explain("x", pass_index=-1).gradient == 5.0
    with pytest.raises(ValueError, match=r"pass_index=2: the run had 2 backward pass\(es\)"):
        explain(result, "x", pass_index=2)


def test_a_gradient_from_before_the_run_is_not_explained_as_this_runs():
    namespace = {"torch": torch}
    exec("x = torch.tensor(3.0, requires_grad=True)\n(x * x).backward()\n", namespace)
    ex = gradmagic.run("y = x * 5\ny.backward()\n", namespace).explain("x")
    assert ex.gradient == 5.0 and ex.total == pytest.approx(5.0) and namespace["x"].grad.item() == 11.0


REENTRANT = """
from torch.utils.checkpoint import checkpoint
layer = torch.nn.Linear(2, 2)
x = torch.tensor([1.0, 2.0], requires_grad=True)
h = checkpoint(lambda a: layer(a).tanh(), x * 2, use_reentrant=REENTRANT)
loss = (h * h).sum()
loss.backward()
"""


def test_reentrant_checkpoint_is_explained_from_the_flows_without_raising():
    source = REENTRANT.replace("REENTRANT", "True")
    ex = explain(gradmagic.run(source), "x")
    assert ex.gradient == pytest.approx(plain_namespace(source)["x"].grad.tolist(), rel=1e-6)
    assert [t.child for t in ex.terms] == ["h"] and ex.terms[0].contribution == pytest.approx(ex.gradient)
    assert "torch.utils.checkpoint with use_reentrant=True (line 5)" in str(ex)


def test_non_reentrant_checkpoint_paths_add_up():
    source = REENTRANT.replace("REENTRANT", "False")
    ex = explain(gradmagic.run(source), "x")
    assert ex.gradient == pytest.approx(plain_namespace(source)["x"].grad.tolist(), rel=1e-6)
    assert "✓ matches autograd" in str(ex)


def test_an_unexpected_state_is_a_note_not_an_exception(monkeypatch):
    import gradmagic.analysis.explain as explain_module

    def broken(*args):
        raise KeyError("t99")

    monkeypatch.setattr(explain_module, "_named_children", broken)
    ex = explain(gradmagic.run(SEED_3), "x")
    assert ex.gradient == 17200.0 and ex.notes == ["gradmagic could not explain x further (KeyError: 't99')"]


def test_a_root_that_did_not_start_the_pass_asked_for_is_a_value_error():
    with pytest.raises(ValueError, match=r"root='z' did not start backward pass 1; it started from: y"):
        explain(gradmagic.run(TWO_PASSES), "x", root="z", pass_index=0)


def test_a_hook_registered_before_the_run_is_named_too():
    namespace = {"torch": torch}
    exec("x = torch.tensor(2.0, requires_grad=True)\nx.register_hook(lambda g: g * 0)\n", namespace)
    ex = gradmagic.run("y = x * x\ny.backward()\n", namespace).explain("x")
    assert ex.gradient == namespace["x"].grad.item() == 0.0
    assert ex.notes == ["x has a gradient hook (registered before the run) that changed its gradient: autograd's 0.0 "
                        "vs chain rule 4.0"]


def test_a_grad_set_by_passes_past_the_budget_is_not_called_accumulated():
    # found on CUDA (pytorch/examples actor_critic): .grad reset each step, later steps past the detail budget
    source = ("w = torch.tensor([1.0, 2.0], requires_grad=True)\nfor i in range(3000):\n    w.grad = None\n"
              "    y = (w * (i + 1.0)).sum() * 2 + 1\n    y.backward()\n")
    namespace = {"torch": torch}
    result = gradmagic.run(source, namespace)
    ex = result.explain("w")
    recorded = result.graph.graph["passes"]
    assert result.graph.graph["coarse"] and recorded < 3000 and namespace["w"].grad.tolist() == [6000.0, 6000.0]
    assert ex.gradient == [2.0 * recorded] * 2 and ex.pass_index == recorded - 1
    assert any("ran after the capture's detail budget" in note and f"the last of the {recorded} recorded" in note
               for note in ex.notes), ex.notes


def test_the_note_reads_the_grad_of_a_parameter_stepped_past_the_budget_from_its_bound_version():
    # pytorch/examples actor_critic on CUDA: explain() picks the parameter's version of the recorded pass, whose
    # .grad is the one its name holds at the end
    source = ("w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))\nopt = torch.optim.SGD([w], lr=0.001)\n"
              "for i in range(3000):\n    opt.zero_grad()\n    loss = (w * (i + 1.0)).sum()\n    loss.backward()\n"
              "    opt.step()\n")
    namespace = {"torch": torch}
    ex = gradmagic.run(source, namespace).explain("w")
    assert namespace["w"].grad.tolist() == [3000.0, 3000.0] and ex.gradient != [3000.0, 3000.0]
    assert any("ran after the capture's detail budget" in note and "[3000, 3000]" in note for note in ex.notes), \
        ex.notes
