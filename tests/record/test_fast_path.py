"""The recorder's shortcuts give what the longer way gave: lines without walking gradmagic's own frames, small
gradients kept as numbers instead of copies."""
import math
import textwrap

import pytest
import torch

import gradmagic
from gradmagic.record import book, recorder, summary
from gradmagic.record.backward_calls import kept_gradient
from programs import AUTOGRAD_GRAD, DETACH, FUNCTIONS, MODULE_STEP, OPTIMIZER_IN_BACKWARD, SEED_3, STEP_WITH_MOMENTUM

PROGRAMS = [SEED_3, FUNCTIONS, MODULE_STEP, AUTOGRAD_GRAD, DETACH, OPTIMIZER_IN_BACKWARD, STEP_WITH_MOMENTUM]
SEED_LOOP = "for _ in range(30):" + textwrap.indent(SEED_3, "    ")  # z = ... on line 6


def _columns(result) -> dict:
    """What a trace recorded, as text (NaN compares equal to itself)."""
    trace = result.trace
    return {name: repr(getattr(trace, name)) for name in ("lines", "notes", "values", "grads", "pass_grads", "flows",
                                                          "grads_before", "inputs", "outputs", "names")}


def _run(source: str, budget=None) -> dict:
    torch.manual_seed(0)
    return _columns(gradmagic.run(source, {"torch": torch}, budget=budget))


@pytest.mark.parametrize("budget", [None, 20])
def test_lines_skipping_gradmagics_own_frames_are_those_of_the_whole_walk(monkeypatch, budget):
    fast = [_run(source, budget) for source in [*PROGRAMS, SEED_LOOP]]
    monkeypatch.setattr(book, "_OUR_FRAMES_AT_ADD_OP", 0)
    monkeypatch.setattr(recorder, "_OUR_FRAMES_AT_COUNTED", 0)
    walked = [_run(source, budget) for source in [*PROGRAMS, SEED_LOOP]]
    assert fast == walked
    if budget:  # past the budget the ops are counted per line: the walk found those lines too
        assert "line 6: mul" in fast[-1]["notes"]


def _copied(grad, summarise=summary.stats_vector) -> tuple:
    """kept_gradient as it was: a copy of every small gradient, read after the run."""
    numel = grad.numel()
    return (summarise(grad), None, numel) if numel > summary.SMALL_NUMEL else (grad.detach().clone(), None, numel)


def test_gradients_kept_as_numbers_resolve_as_the_copies_did(monkeypatch):
    fast = [_run(source) for source in [*PROGRAMS, SEED_LOOP]]
    monkeypatch.setattr("gradmagic.record.hooks.kept_gradient", _copied)
    monkeypatch.setattr("gradmagic.record.book.kept_gradient", _copied)
    copied = [_run(source) for source in [*PROGRAMS, SEED_LOOP]]
    assert fast == copied


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.complex64,
                                   torch.int64])
def test_a_small_cpu_gradient_is_kept_as_the_numbers_of_its_copy(dtype):
    for grad in (torch.tensor(2.5), torch.arange(6.0).reshape(2, 3).t(), torch.tensor([math.nan, math.inf, -1.0])):
        grad = grad.to(dtype) if dtype.is_floating_point or dtype.is_complex else grad.nan_to_num().to(dtype)
        value, version, numel = kept_gradient(grad)
        assert (version, numel) == (None, grad.numel())
        assert repr(value) == repr(summary.to_python([grad.clone()])[0])
        assert not isinstance(value, torch.Tensor)


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
def test_gradients_tolist_cannot_read_are_still_copied():
    grad = torch.quantize_per_tensor(torch.tensor([1.0, 2.0]), 0.1, 0, torch.quint8)
    value, _, _ = kept_gradient(grad)
    assert isinstance(value, torch.Tensor) and torch.equal(value.dequantize(), grad.dequantize())
    large = torch.ones(summary.SMALL_NUMEL + 1)
    assert torch.equal(kept_gradient(large)[0], summary.stats_vector(large))
