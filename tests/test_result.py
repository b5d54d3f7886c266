"""What a user holds: a displayed Result keeps no pixels, and drawing it later is unseen by the user's modes."""
import gc
import os
import weakref
from pathlib import Path

import pytest
import torch
from matplotlib.text import Text
from torch.overrides import TorchFunctionMode

import gradmagic
from gradmagic.result import _malloc_trim
from gradmagic.view.collapse import collapse_view
from gradmagic.view.folding import _folded_view
from gradmagic.view.fonts import figure_texts
from programs import SEED_3

CELL = "x = torch.randn(8, 8, requires_grad=True)\nw = torch.randn(8, 4, requires_grad=True)\n" \
       "y = torch.tanh(x @ w).sum()\ny.backward()"

# A 100-step Elman RNN unrolled by hand: benchmarks/soak.py's RNN_CELL (after the PyTorch tutorial "NLP From
# Scratch: Classifying Names"), shortened.
RNN_CELL = """torch.manual_seed(0)
W_xh = torch.randn(8, 16, requires_grad=True)
W_hh = (torch.randn(16, 16) * 0.1).requires_grad_()
xs = torch.randn(100, 8)
h = torch.zeros(16)
for t in range(100):
    h = torch.tanh(xs[t] @ W_xh + h @ W_hh)
loss = h.pow(2).sum()
loss.backward()
"""


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


def test_re_runs_free_the_replaced_results_graph_without_waiting_for_a_full_collection():
    namespace = {"torch": torch}
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()  # as in a kernel between full collections
    try:
        result = gradmagic.run(RNN_CELL, namespace)
        result._repr_mimebundle_()
        graph, before = weakref.ref(result.graph), len(gc.get_objects())
        for _ in range(3):
            result = gradmagic.run(RNN_CELL, namespace)
            result._repr_mimebundle_()
        assert graph() is None
        # What stays for the collector is the figure (matplotlib's artists are cycles): ~13,000 objects a re-run;
        # ~20,000 while networkx's cached views kept each replaced graph alive too.
        assert (len(gc.get_objects()) - before) / 3 < 16_000
    finally:
        if enabled:
            gc.enable()


def _resident_mb() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm") or _malloc_trim() is None, reason="glibc on Linux only")
def test_drawing_hands_the_heaps_free_pages_back_to_the_system():
    result = gradmagic.run(CELL, {"torch": torch})
    result.image()
    # 30 MB freed in 20 KB holes between blocks still in use: glibc keeps such pages resident until trimmed.
    blocks = [(bytearray(20_000), bytearray(1_000)) for _ in range(1_500)]
    kept = [small for _, small in blocks]
    del blocks
    freed_but_resident = _resident_mb()
    result.image()
    assert freed_but_resident - _resident_mb() > 20
    assert len(kept) == 1_500


def test_a_lean_result_is_made_unseen_by_a_mode_entered_after_the_run():
    result = gradmagic.run(CELL, {"torch": torch}, lean=True)
    with Count() as mode:
        text = result._repr_mimebundle_()["text/plain"]
    assert mode.calls == []
    assert "x" in result.names() and "y" in text


# The issue-13 programs: the seed, one MLP training step (after the PyTorch tutorial "Learning PyTorch with Examples")
# and a 1,000-step RNN (after d2l.ai's RNN from scratch), as benchmarks/ measures them.
PROGRAMS = Path(__file__).parent.parent / "benchmarks" / "programs"
DRAWN_IN_FULL = {"seed": SEED_3, "mlp step": (PROGRAMS / "mlp_step.py").read_text(),
                 "rnn 1000": (PROGRAMS / "rnn_1000.py").read_text()}


def _shown(result) -> tuple:
    """Everything the default display shows: the picture (bytes and texts), the table, the summary, diagnostics."""
    texts = [text.get_text() for text in figure_texts(result.figure)]
    return result.image("png"), texts, result.table, result._summary_lines(), [d.message for d in result.diagnostics]


@pytest.mark.parametrize("source", DRAWN_IN_FULL.values(), ids=DRAWN_IN_FULL.keys())
def test_the_default_display_shows_what_a_capture_of_every_op_in_detail_shows(source):
    default = gradmagic.run(source, {"torch": torch})
    detailed = gradmagic.run(source, {"torch": torch}, budget=1_000_000)
    assert not default.trace.coarse and len(default.graph) == len(detailed.graph)
    assert _shown(default) == _shown(detailed)
    sketch = _folded_view(default.graph, show_all=False)  # the fast path: a Sketch of dicts, then networkx
    assert _view_dump(collapse_view(sketch, total=len(default.graph))) == \
        _view_dump(collapse_view(sketch.to_digraph(), total=len(default.graph)))


def _view_dump(view) -> tuple:
    return list(view.nodes(data=True)), list(view.edges(data=True)), dict(view.graph)
