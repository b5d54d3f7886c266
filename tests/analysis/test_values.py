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


def _exact_nonfinite(value) -> bool:
    """The reference: every number looked at, one by one."""
    stack, numbers = [value], []
    while stack:
        item = stack.pop()
        stack.extend(item) if isinstance(item, list) else numbers.append(item)
    return any(isinstance(v, float) and not math.isfinite(v) for v in numbers)


@pytest.mark.parametrize("value", [
    [1e308, 1e308], [-1e308, -1e308, 5.0], [[1e308], [1e308, NAN]], [10**400, 1.0], [10**400, NAN], [1, NAN],
    [True, 1.5], [[1.0], 2.0], [[1.0], [INF, 2.0]], [1 + 2j], [complex(NAN, 0)], [None, 1.0], ["a", NAN], [[]],
    [[-INF, INF]], [[[1.0, 2.0]], [[3.0, -INF]]],
])
def test_the_sum_shortcut_agrees_with_looking_at_every_number(value):
    # a finite float sum proves every number finite; an overflowing sum, ints, complex or odd items go the long way
    assert nonfinite(value) == _exact_nonfinite(value)


def test_the_sum_shortcut_agrees_on_many_random_lists():
    import random

    rng = random.Random(0)
    items = [0.0, 1.5, -2.0, 1e308, -1e308, NAN, INF, -INF, 3, True, 5e-324]
    for _ in range(2000):
        row = [rng.choice(items) for _ in range(rng.randint(0, 6))]
        for value in (row, [row, row[::-1]], [[row]]):
            assert nonfinite(value) == _exact_nonfinite(value), value
