"""check_gradients(): autograd against float64 finite differences on a re-run of the recorded computation."""

import pytest
import torch

import gradmagic
from gradmagic.gradcheck import check_gradients
from gradmagic.replay import ReplayError, replay

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
