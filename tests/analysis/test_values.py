"""values.py: NaN and inf found in every shape the graph keeps a value in, as torch.isfinite finds them."""
import math

import pytest
import torch

from gradmagic.analysis.values import nonfinite, nonfinite_kind

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("value", [
    0.5, 3, True, [1.0, 2.0], [[1e308, -1e308], [0.0, 5e-324]], [[1, 2], [3, 4]], [True, False], [], [[1.0], [2.0, 3.0]],
    None,
])
def test_finite_values_are_finite(value):
    assert not nonfinite(value)


@pytest.mark.parametrize("value", [NAN, INF, -INF, [1.0, NAN], [[1.0, 2.0], [3.0, -INF]], [[[0.0]], [[NAN]]],
                                   [[1.0], [2.0, NAN]]])
def test_nan_and_inf_anywhere_are_found(value):
    assert nonfinite(value)


def test_agrees_with_torch_on_a_real_gradient():
    x = torch.tensor([[0.0, 1.0], [4.0, 9.0]], requires_grad=True)
    x.sqrt().sum().backward()
    assert nonfinite(x.grad.tolist()) == (not torch.isfinite(x.grad).all().item())
    assert nonfinite_kind(x.grad.tolist()) == "inf"


def test_stats_dicts_answer_from_their_counts():
    assert nonfinite(None, {"nan": 2, "inf": 0}) and nonfinite({"inf": 1}) and not nonfinite(None, {"nan": 0})
