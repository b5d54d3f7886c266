"""What a user holds: a displayed Result keeps no pixels, and drawing it later is unseen by the user's modes."""
import gc

import torch
from matplotlib.text import Text
from torch.overrides import TorchFunctionMode

import gradmagic

CELL = "x = torch.randn(8, 8, requires_grad=True)\nw = torch.randn(8, 4, requires_grad=True)\n" \
       "y = torch.tanh(x @ w).sum()\ny.backward()"


class Count(TorchFunctionMode):
    """A user's mode that lists the torch calls it sees."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def _renderers() -> int:
    return sum(type(o).__name__ == "RendererAgg" for o in gc.get_objects())


def test_a_displayed_picture_keeps_no_pixel_buffer_and_still_draws():
    result = gradmagic.run(CELL, {"torch": torch})
    png = result.image("png")
    for fmt in ("png", "svg"):
        result.image_format = fmt
        assert "<div class='gradmagic'>" in result._repr_mimebundle_()["text/html"]
        figure = result.figure
        assert getattr(figure.canvas, "renderer", None) is None
        assert all(text._renderer is None for text in figure.findobj(Text))
    assert result.image("png") == png  # drawn again from the same figure, byte for byte


def test_dead_results_leave_no_renderer_for_the_collector():
    gc.collect()
    before = _renderers()
    enabled = gc.isenabled()
    gc.disable()  # as in a kernel, where a full collection waits for hundreds of re-runs
    try:
        for _ in range(3):
            gradmagic.run(CELL, {"torch": torch})._repr_mimebundle_()
        assert _renderers() == before
    finally:
        if enabled:
            gc.enable()


def test_a_lean_result_is_made_unseen_by_a_mode_entered_after_the_run():
    result = gradmagic.run(CELL, {"torch": torch}, lean=True)
    with Count() as mode:
        text = result._repr_mimebundle_()["text/plain"]
    assert mode.calls == []
    assert "x" in result.names() and "y" in text
