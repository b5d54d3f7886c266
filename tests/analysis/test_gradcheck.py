"""check_gradients(): autograd against float64 finite differences on a re-run of the recorded computation."""

import pytest
import torch

import gradmagic
from gradmagic.analysis.gradcheck import check_gradients
from gradmagic.analysis.replay import ReplayError, replay

from helpers import plain_namespace
from programs import IN_PLACE, MODULE_STEP, SEED_3

SQUARE = """
class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inp):
        ctx.save_for_backward(inp)
        return inp * inp

    @staticmethod
    def backward(ctx, grad):
        inp, = ctx.saved_tensors
        return FACTOR * inp * grad

x = torch.tensor([1.0, 2.0, -3.0], requires_grad=True)
y = Square.apply(x)
z = (y * torch.tensor([1.0, 0.5, 2.0])).sum()
z.backward()
"""
RIGHT, WRONG = SQUARE.replace("FACTOR", "2"), SQUARE.replace("FACTOR", "3")


def test_seed_gradients_match_finite_differences():
    check = check_gradients(gradmagic.run(SEED_3))
    plain = plain_namespace(SEED_3)
    assert check.ok and check.max_error < 1e-7
    assert [(leaf.name, leaf.autograd) for leaf in check.leaves] == [("a", 1290.0), ("x", 17200.0)]
    assert [leaf.recorded for leaf in check.leaves] == [plain["a"].grad.item(), plain["x"].grad.item()]
    assert check.leaves[1].numeric == pytest.approx(17200.0, rel=1e-7)
    assert str(check).startswith("gradient check of z (ok): max relative error")


def test_right_custom_function_passes():
    result = gradmagic.run(RIGHT)
    check = check_gradients(result)
    assert check.ok and check.suspects == []
    assert check.leaves[0].autograd == pytest.approx(plain_namespace(RIGHT)["x"].grad.tolist())


def test_wrong_custom_function_is_flagged_with_its_backward():
    result = gradmagic.run(WRONG)
    check = check_gradients(result)
    assert not check.ok and check.max_error == pytest.approx(1 / 3, rel=1e-6)
    (leaf,) = check.leaves
    assert leaf.autograd == [3.0, 3.0, -18.0] and leaf.numeric == pytest.approx([2.0, 2.0, -12.0])
    assert [(label, line) for _, label, line in check.suspects] == [("Square.apply", 14)]
    assert "the backward of `Square.apply` (line 14) disagrees with finite differences" in str(check)


def test_wrong_custom_function_is_flagged_even_where_the_recorder_misses_it():
    check = check_gradients(gradmagic.run(WRONG))
    assert not check.ok


@pytest.mark.parametrize("source", [IN_PLACE, MODULE_STEP])
def test_in_place_ops_and_modules_replay_faithfully(source):
    torch.manual_seed(0)
    check = check_gradients(gradmagic.run(source))
    assert check.ok and check.faithful and check.mismatches == []


def test_random_ops_make_the_replay_unfaithful():
    torch.manual_seed(0)
    source = ("x = torch.linspace(1, 2, 32, requires_grad=True)\n"
              "y = torch.nn.functional.dropout(x, 0.5)\ns = (y * y).sum()\ns.backward()\n")
    check = check_gradients(gradmagic.run(source))
    assert not check.ok and check.mismatches == ["y"]
    assert "random ops such as dropout cannot be re-run" in str(check)


def test_large_tensors_cannot_be_replayed():
    result = gradmagic.run("w = torch.ones(100, requires_grad=True)\nloss = (w * 2).sum()\nloss.backward()\n")
    with pytest.raises(ReplayError, match=r"the value of w \(100\) was not recorded \(gradmagic keeps the values of "
                                          r"tensors with at most 64 elements only\)"):
        check_gradients(result)


def test_without_backward_there_is_nothing_to_check():
    with pytest.raises(ValueError, match="no backward pass ran"):
        check_gradients(gradmagic.run("x = torch.tensor(1.0, requires_grad=True)\ny = x * 2\n"))


def test_replay_recomputes_recorded_values_in_float64():
    result = gradmagic.run(SEED_3)
    run = replay(result.trace, [11])
    assert run.values[11].dtype == torch.float64 and run.values[11].item() == pytest.approx(46225 + 1 / 64500)
    assert sorted(run.inputs) == [0, 1]  # a and x, the leaves


def test_a_gradient_hook_that_changed_the_gradient_is_named():
    source = SEED_3.replace("z = y*y", "h = y.register_hook(lambda g: g.clamp(-1, 1))\nz = y*y")
    check = check_gradients(gradmagic.run(source))
    plain = plain_namespace(source)
    assert not check.ok and not check.faithful
    assert [leaf.recorded for leaf in check.leaves] == [plain["a"].grad.item(), plain["x"].grad.item()]
    assert [leaf.autograd for leaf in check.leaves] == [1290.0, 17200.0]  # the re-run has no hook
    assert check.hooks == ["y has a gradient hook (line 6) that changed its gradient: autograd's 1.0 vs chain rule 430"]
    assert "the run gave x the gradient 40.0, the re-run 17200: y has a gradient hook (line 6)" in str(check)


def test_each_pass_is_checked_against_its_own_gradient():
    source = "x = torch.tensor(3.0, requires_grad=True)\ny = x * x\ny.backward()\nz = x * 5\nz.backward()\n"
    result = gradmagic.run(source)
    first, last = result.check(pass_index=0), result.check()
    assert first.ok and last.ok and plain_namespace(source)["x"].grad.item() == 11.0
    assert [(leaf.recorded, leaf.autograd) for leaf in first.leaves] == [(6.0, 6.0)]
    assert [(leaf.recorded, leaf.autograd) for leaf in last.leaves] == [(5.0, 5.0)]
    assert str(first).startswith("gradient check of y, backward pass 1 of 2 (ok)")


def test_reentrant_checkpoint_cannot_be_re_run_and_says_why():
    source = ("from torch.utils.checkpoint import checkpoint\nlayer = torch.nn.Linear(2, 2)\n"
              "x = torch.tensor([1.0, 2.0], requires_grad=True)\n"
              "h = checkpoint(lambda a: layer(a).tanh(), x * 2, use_reentrant=True)\nloss = (h * h).sum()\n"
              "loss.backward()\n")
    with pytest.raises(ReplayError, match=r"h \(2\) comes from torch.utils.checkpoint with use_reentrant=True "
                                          r"\(line 4\)"):
        check_gradients(gradmagic.run(source))
    assert check_gradients(gradmagic.run(source.replace("True", "False"))).ok


def test_an_unexpected_state_is_a_one_line_replay_error(monkeypatch):
    import gradmagic.analysis.gradcheck as gradcheck_module

    def broken(*args):
        raise KeyError(7)

    monkeypatch.setattr(gradcheck_module, "_inputs", broken)
    with pytest.raises(ReplayError, match=r"^cannot check backward pass 1: KeyError: 7$"):
        check_gradients(gradmagic.run(SEED_3))


# Mutants from issue 11 ---------------------------------------------------------------------------
# A check with tolerance 1e-2, with the mean instead of the largest error, or re-run in float32, survived the
# whole suite. SQUARE (above, after torch's own custom-Function tutorial) with a backward a little or partly wrong.

SLIGHTLY_WRONG = SQUARE.replace("FACTOR * inp * grad", "2.002 * inp * grad").replace("FACTOR", "2")
ONE_ELEMENT_WRONG = SQUARE.replace("FACTOR * inp * grad", "2 * inp * grad * torch.tensor([1.0, 1.0, 1.5])")
DOWNCASTS = """
x = torch.tensor([0.5, 1.0, -2.0], dtype=torch.float64, requires_grad=True)
a = x.float()
b = x.to(torch.float32)
z = (a * b * 3).sum()
z.backward()
"""


def test_a_backward_wrong_by_one_part_in_a_thousand_fails_the_default_check():
    check = check_gradients(gradmagic.run(SLIGHTLY_WRONG))
    assert check.tolerance == 1e-5 and not check.ok
    assert check.max_error == pytest.approx(0.002 / 2.002, rel=1e-4)
    assert str(check).startswith("gradient check of z (FAILED)")


def test_the_error_is_the_largest_over_elements_not_their_mean():
    check = check_gradients(gradmagic.run(ONE_ELEMENT_WRONG))
    (leaf,) = check.leaves
    assert leaf.autograd == [2.0, 2.0, -18.0] and leaf.numeric == pytest.approx([2.0, 2.0, -12.0])
    assert leaf.error == pytest.approx(1 / 3, rel=1e-6) and check.max_error == leaf.error and not check.ok


def test_float_casts_in_the_cell_are_re_run_in_float64():
    check = check_gradients(gradmagic.run(DOWNCASTS))
    plain = plain_namespace(DOWNCASTS)
    (leaf,) = check.leaves
    assert check.ok and check.faithful and check.max_error < 1e-8
    assert leaf.autograd == [3.0, 6.0, -12.0] == plain["x"].grad.tolist()
    assert leaf.numeric == pytest.approx([3.0, 6.0, -12.0], rel=1e-8)


# Found by mutmut (scripts/mutation/run_mutmut.py gradcheck, 40 of its mutants, seed 11).

def test_a_leaf_whose_shape_only_is_used_checks_as_a_zero_gradient():
    source = ("x = torch.tensor([1.0, -2.0], requires_grad=True)\nw = torch.ones(3, 2, requires_grad=True)\n"
              "y = (x.expand_as(w) * x).sum()\ny.backward()\n")
    check = check_gradients(gradmagic.run(source))
    plain = plain_namespace(source)
    assert check.ok and [leaf.name for leaf in check.leaves] == ["x", "w"]
    assert check.leaves[0].autograd == plain["x"].grad.tolist() == [6.0, -12.0]
    assert check.leaves[1].autograd == [[0.0, 0.0]] * 3 and plain["w"].grad is None


def test_a_trace_checks_as_its_result_does():
    result = gradmagic.run(SEED_3)
    assert str(check_gradients(result.trace)) == str(check_gradients(result))


def test_a_built_in_op_at_a_kink_is_named_as_the_suspect():
    source = "x = torch.tensor([0.0, 1.0], requires_grad=True)\ny = torch.relu(x).sum()\ny.backward()\n"
    check = check_gradients(gradmagic.run(source))
    (leaf,) = check.leaves
    assert leaf.autograd == plain_namespace(source)["x"].grad.tolist() == [0.0, 1.0]
    assert leaf.numeric == pytest.approx([0.5, 1.0]) and not check.ok
    assert [(label, line) for _, label, line in check.suspects] == [("relu", 2)]
