import contextlib
import gc
import io
import linecache
import re
import weakref
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gradmagic
from gradmagic import runner
from gradmagic.record.budget import INTERRUPT_SECONDS, Budget
from gradmagic.view.fonts import figure_texts
from helpers import assert_same, captured_namespace, plain_namespace, reached
from programs import SEED_1, SEED_2, SEED_3, SEED_LOOP, TRANSPARENCY_SUITE


@pytest.mark.parametrize("name", sorted(TRANSPARENCY_SUITE))
def test_namespace_matches_plain_exec(name):
    source = TRANSPARENCY_SUITE[name]
    plain = plain_namespace(source)
    captured, result = captured_namespace(source)
    assert_same(plain, captured)
    assert result.graph.number_of_nodes() > 0


def test_seed_one_values_and_gradient():
    result = gradmagic.run(SEED_1)
    assert result.tensor("y")["value"] == 203.0
    assert result.tensor("x")["grad"] == 40.0


def test_seed_two_chain_rule():
    result = gradmagic.run(SEED_2)
    assert result.tensor("z")["value"] == 1021.0
    assert result.tensor("x")["grad"] == 200.0
    assert reached(result.tensor("y")) == 5.0 and result.tensor("y")["grad"] is None


def test_seed_three_gradient_sums_over_both_paths():
    namespace = {"torch": torch}
    result = gradmagic.run(SEED_3, namespace)
    node = result.tensor
    assert node("y")["value"] == 215.0 and node("b")["value"] == 300.0
    assert node("z")["value"] == pytest.approx(46225.0)
    assert node("x")["grad"] == pytest.approx(17200.0) == namespace["x"].grad.item()
    assert node("a")["grad"] == pytest.approx(1290.0) == namespace["a"].grad.item()
    assert reached(node("y")) == pytest.approx(430.0)
    assert reached(node("b")) == pytest.approx(-5.17e-8, rel=1e-3)
    assert namespace["y"].grad is None  # a non-leaf's .grad stays as in a plain run


def test_seed_three_named_graph_has_exactly_the_six_edges():
    graph = gradmagic.run(SEED_3).named_graph()
    edges = {(graph.nodes[u]["name"], graph.nodes[v]["name"]) for u, v in graph.edges}
    assert edges == {("x", "y"), ("a", "y"), ("x", "b"), ("a", "b"), ("y", "z"), ("b", "z")}


def test_fresh_namespace_has_torch():
    result = gradmagic.run("t = torch.ones(2) * 3")
    assert result.tensor("t")["value"] == [3.0, 3.0]


def test_raising_source_propagates_and_keeps_partial_result():
    namespace = {"torch": torch}
    with pytest.raises(ZeroDivisionError):
        gradmagic.run("x = torch.ones(2, requires_grad=True)\ny = x * 2\n1/0\nz = y + 1", namespace)
    partial = gradmagic.last()
    assert partial.names() == ["x", "y"]
    assert isinstance(partial.error, ZeroDivisionError)
    assert "z" not in namespace


def test_state_restored_after_raise_inside_no_grad_and_module():
    modes_before = torch._C._len_torch_function_stack()
    source = (
        "model = torch.nn.Linear(2, 2)\n"
        "with torch.no_grad():\n"
        "    model(torch.ones(2))\n"
        "    raise RuntimeError('boom')\n"
    )
    with pytest.raises(RuntimeError, match="boom"):
        gradmagic.run(source, device="cpu", dtype="float64")
    assert torch._C._len_torch_function_stack() == modes_before
    assert torch.get_default_dtype() == torch.float32
    assert torch.is_grad_enabled()
    assert torch.empty(1).device.type == "cpu"
    from torch.nn.modules import module

    assert not module._global_forward_hooks and not module._global_forward_pre_hooks


def test_state_restored_after_keyboard_interrupt():
    with pytest.raises(KeyboardInterrupt):
        gradmagic.run("x = torch.ones(1, requires_grad=True) * 2\nraise KeyboardInterrupt", dtype=torch.float64)
    assert torch._C._len_torch_function_stack() == 0
    assert torch.get_default_dtype() == torch.float32


def test_gradient_hooks_removed_after_backward_raises(monkeypatch):
    from gradmagic.record.hooks import GradientHooks

    calls = []
    original = GradientHooks._on_grad
    monkeypatch.setattr(GradientHooks, "_on_grad", lambda self, *a: calls.append(1) or original(self, *a))
    source = (
        "x = torch.ones(3, requires_grad=True)\n"
        "y = (x * 2).sum()\n"
        "h = x.register_hook(lambda g: 1 / 0)\n"
        "y.backward(retain_graph=True)\n"
    )
    namespace = {"torch": torch}
    with pytest.raises(ZeroDivisionError):
        gradmagic.run(source, namespace)
    seen = len(calls)
    namespace["h"].remove()
    namespace["y"].backward()
    assert len(calls) == seen  # our hooks fired in the captured pass only


def test_cuda_without_cuda_fails_before_running():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    namespace = {"torch": torch}
    with pytest.raises(ValueError, match="CUDA is not available"):
        gradmagic.run("ran = True", namespace, device="cuda")
    assert "ran" not in namespace


def test_bad_dtype_is_a_value_error():
    with pytest.raises(ValueError, match="not a floating torch dtype"):
        gradmagic.run("pass", dtype="int32")


def test_dtype_applies_inside_the_run_only():
    result = gradmagic.run("t = torch.tensor(1.5)", dtype="float64")
    assert result.tensor("t")["dtype"] == "float64"
    assert torch.get_default_dtype() == torch.float32


def test_capture_names_tensors_from_caller_locals():
    x = torch.tensor(2.0, requires_grad=True)
    with gradmagic.capture() as cap:
        y = x ** 2
        y.backward()
    assert cap.result.tensor("y")["value"] == 4.0
    assert cap.tensor("x")["grad"] == 4.0 == x.grad.item()


def test_capture_entered_through_an_exit_stack_names_tensors_from_the_caller():
    x = torch.tensor(3.0, requires_grad=True)
    with contextlib.ExitStack() as stack:
        cap = stack.enter_context(gradmagic.capture())
        y = x * 2
        y.backward()
    assert cap.result.tensor("y")["value"] == 6.0
    assert cap.tensor("x")["grad"] == 2.0


@pytest.mark.parametrize("lean", [False, True])
def test_a_start_that_fails_halfway_is_undone(lean, monkeypatch):
    from gradmagic.record import optimizer_hooks

    apply, backward = torch.autograd.Function.__dict__["apply"], torch.autograd.backward
    zero_grad = torch.optim.Optimizer.__dict__["zero_grad"]
    hooks = dict(torch.nn.modules.module._global_forward_hooks)

    def broken(*args):
        raise RuntimeError("no optimizer hooks today")

    monkeypatch.setattr(optimizer_hooks, "register_optimizer_step_post_hook", broken)
    with pytest.raises(RuntimeError, match="no optimizer hooks today"):
        gradmagic.run("x = torch.ones(1)", lean=lean)
    assert torch.autograd.Function.__dict__["apply"] is apply and torch.autograd.backward is backward
    assert dict(torch.nn.modules.module._global_forward_hooks) == hooks
    assert torch.optim.Optimizer.__dict__["zero_grad"] is zero_grad
    assert not runner._active and torch._C._len_torch_function_stack() == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_matches_plain_and_keeps_values():
    source = SEED_3.replace("requires_grad=True", "requires_grad=True, device='cuda'")
    plain = plain_namespace(source)
    captured, result = captured_namespace(source)
    assert_same(plain, captured)
    assert result.tensor("x")["device"].startswith("cuda")
    assert result.tensor("x")["grad"] == pytest.approx(17200.0)


_OPS = [
    "{a} + {b}", "{a} - {b}", "{a} * {b}", "{a} / ({b} * {b} + 1)", "torch.sin({a})", "torch.tanh({a}) * {b}",
    "{a}.relu()", "({a} ** 2)", "torch.exp(-{a} * {a})", "{a}.sigmoid() + 0.5", "3 * {a} - {b}",
]


@st.composite
def expression_programs(draw):
    """Programs of 1-6 assignments over three leaves, ending in a backward."""
    lines = [
        "p = torch.randn(3, requires_grad=True)",
        "q = torch.randn(3, requires_grad=True)",
        "r = torch.tensor(0.7, requires_grad=True)",
    ]
    names = ["p", "q", "r"]
    for i in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(_OPS))
        a, b = draw(st.sampled_from(names)), draw(st.sampled_from(names))
        lines.append(f"v{i} = {op.format(a=a, b=b)}")
        names.append(f"v{i}")
    lines.append(f"loss = ({names[-1]}).sum()")
    lines.append("loss.backward()")
    return "\n".join(lines) + "\n"


@settings(max_examples=40, deadline=None)
@given(expression_programs())
def test_random_programs_are_transparent_and_gradients_match(source):
    plain = plain_namespace(source)
    captured, result = captured_namespace(source)
    assert_same(plain, captured)
    for leaf in ("p", "q", "r"):
        grad = result.tensor(leaf)["grad"]
        expected = plain[leaf].grad
        assert (grad is None) == (expected is None)
        if expected is not None:
            assert torch.equal(torch.tensor(grad), expected)


def test_a_failure_while_resolving_never_hides_the_code_s_own_exception(monkeypatch, capsys):
    from gradmagic import runner

    monkeypatch.setattr(runner, "resolve", lambda *a, **k: 1 / 0)
    with pytest.raises(KeyError, match="mine"):
        gradmagic.run("x = torch.ones(1) * 2\nraise KeyError('mine')")
    assert gradmagic.last().empty and torch._C._len_torch_function_stack() == 0
    said = ("gradmagic: the capture failed (ZeroDivisionError: division by zero), so there is no graph; the cell's own "
            "error is unchanged.")
    assert capsys.readouterr().err == said + "\n" and gradmagic.last().trace.notes == [said]



def test_a_failure_while_resolving_a_cell_that_ran_well_is_one_line_not_an_exception(monkeypatch, capsys):
    from gradmagic import runner

    monkeypatch.setattr(runner, "resolve", lambda *a, **k: 1 / 0)
    namespace = {"torch": torch}
    result = gradmagic.run("x = torch.ones(2, requires_grad=True)\n(x * 3).sum().backward()", namespace)
    assert result.empty and result is gradmagic.last() and namespace["x"].grad.tolist() == [3.0, 3.0]
    said = ("gradmagic: the capture failed (ZeroDivisionError: division by zero), so there is no graph; the cell "
            "itself ran as usual.")
    assert capsys.readouterr().err == said + "\n" and result.trace.notes == [said]
    assert torch._C._len_torch_function_stack() == 0

@pytest.mark.parametrize("lean", [False, True], ids=["full", "lean"])
def test_gradients_keep_the_strides_and_versions_of_a_plain_run(lean):
    # autograd steals a gradient no one else holds (no copy); one the capture held would be copied instead
    source = ("model = torch.nn.Sequential(torch.nn.Linear(8, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))\n"
              "loss = model(torch.randn(4, 8)).sum()\n(gb,) = torch.autograd.grad(loss, [model[2].bias],"
              " retain_graph=True)\nloss.backward()\n")
    captured, _ = captured_namespace(source, lean=lean)
    assert_same(plain_namespace(source), captured)


@pytest.mark.parametrize("lean", [False, True], ids=["full", "lean"])
def test_names_bound_inside_a_custom_backward_do_not_change_how_grad_accumulates(lean):
    # from the torch docs' LinearFunction (notes/extending.rst): `grad_input = ...` in backward() is a label site
    source = ("class Linear(torch.autograd.Function):\n"
              "    @staticmethod\n    def forward(ctx, input, weight):\n"
              "        ctx.save_for_backward(input, weight)\n        return input.mm(weight.t())\n"
              "    @staticmethod\n    def backward(ctx, grad_output):\n        input, weight = ctx.saved_tensors\n"
              "        grad_input = grad_output.mm(weight)\n        grad_weight = grad_output.t().mm(input)\n"
              "        return grad_input, grad_weight\n"
              "x = torch.randn(4, 6, requires_grad=True)\nw = torch.randn(3, 6, requires_grad=True)\n"
              "y = Linear.apply(x, w).exp().sum()\ny.backward()\n")
    captured, result = captured_namespace(source, lean=lean)
    assert_same(plain_namespace(source), captured)
    assert any("while a backward pass ran" in note for note in result.graph.graph["notes"])


@pytest.mark.parametrize("lean", [False, True], ids=["full", "lean"])
def test_adam_on_complex_parameters_runs_as_in_plain_torch(lean):
    # Adam views complex parameters as real under no_grad, then updates them in place: torch forbids reading
    # the history of such a view, so the capture must not (it raised in the user's code)
    source = ("W = torch.zeros(3, dtype=torch.cfloat, requires_grad=True)\n"
              "opt = torch.optim.Adam([W], lr=0.1)\nfor step in range(3):\n    opt.zero_grad()\n"
              "    loss = (W * (1 + 2j) - 1).abs().sum()\n    loss.backward()\n    opt.step()\n")
    captured, result = captured_namespace(source, lean=lean)
    assert_same(plain_namespace(source), captured)
    assert result.tensor("W")["value"] == captured["W"].tolist()


@pytest.mark.parametrize("lean", [False, True])
def test_a_default_dtype_the_cell_sets_stays_set_as_in_a_plain_run(lean):
    gradmagic.run("torch.set_default_dtype(torch.float64)\nx = torch.ones(2)", {"torch": torch}, lean=lean)
    try:
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(torch.float32)


def test_a_gc_freeze_the_cell_makes_stays_as_in_a_plain_run():
    import gc

    gradmagic.run("import gc\ngc.freeze()\nx = torch.ones(2)", {"torch": torch})
    try:
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    threshold = gc.get_threshold()
    gradmagic.run("x = torch.ones(2)", {"torch": torch})
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == threshold  # gradmagic leaves the collector as it was


def test_a_gc_threshold_the_cell_sets_stays_as_in_a_plain_run():
    import gc

    threshold = gc.get_threshold()
    try:
        gradmagic.run("import gc\ngc.set_threshold(500, 5, 5)\nx = torch.ones(2)", {"torch": torch})
        assert gc.get_threshold() == (500, 5, 5)
    finally:
        gc.set_threshold(*threshold)


def test_a_mode_the_cell_enters_and_leaves_entered_survives_the_device_context():
    from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack

    class Passing(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    namespace = {"torch": torch, "Passing": Passing}
    try:
        gradmagic.run("mode = Passing()\nmode.__enter__()\nx = torch.ones(2)", namespace, device="cpu")
        assert _get_current_function_mode_stack() == [namespace["mode"]]
        assert namespace["x"].device.type == "cpu"
    finally:
        while _get_current_function_mode_stack():
            torch._C._pop_torch_function_stack()


@pytest.mark.parametrize("lean", [False, True])
def test_tensors_made_in_inference_mode_run_as_in_a_plain_run(lean):
    """Inference tensors keep no version counter (torch raises on `_version`); the cell must not notice."""
    source = ("with torch.inference_mode():\n    a = torch.randn(3)\n    a.add_(1)\nb = a * 2\n"
              "w = torch.ones(3, requires_grad=True)\nloss = (w * b).sum()\nloss.backward()")
    (captured, result), plain = captured_namespace(source, lean=lean), plain_namespace(source)
    assert_same(plain, captured)
    assert result.error is None and result.tensor("a")["value"] == pytest.approx(plain["a"].tolist())
    assert result.figure is not None and "b" in result.table


def test_a_mode_the_user_entered_sees_only_the_cell_s_own_calls():
    """gradmagic's own reads (`.grad_fn`, `._version`, hooks) stay invisible to a user's TorchFunctionMode."""
    from collections import Counter

    from torch.overrides import TorchFunctionMode

    class Counting(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.calls = Counter()

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.calls[getattr(func, "__qualname__", str(func))] += 1
            return func(*args, **(kwargs or {}))

    source = "a = torch.ones(2, requires_grad=True)\nb = (a * 2).sum()\nb.backward()\nc = a.grad * 3"
    seen = []
    for run in (lambda: exec(source, {"torch": torch}), lambda: gradmagic.run(source, {"torch": torch})):
        with Counting() as mode:
            run()
        seen.append(mode.calls)
    assert seen[1] == seen[0] and sum(seen[0].values()) >= 5


LONG_LOOP = """x = torch.tensor([1.0, 2.0], requires_grad=True)
h = x
for i in range(1000):
    h = h * 0.99 + 1
loss = h.sum()
loss.backward()
"""


# A training loop written by others: pytorch/tutorials examples_nn/polynomial_optim.py (tests/realworld), 300 steps
# of 15 ops each (forward, loss, RMSprop's step).
POLYNOMIAL = (Path(__file__).parent / "realworld" / "programs" / "polynomial_optim.py").read_text()


def _picture_texts(result) -> list:
    return [text.get_text() for text in figure_texts(result.figure)]


def test_past_the_budget_the_detail_ends_with_a_whole_loop_iteration_and_the_picture_folds_it():
    result = gradmagic.run(SEED_LOOP, {"torch": torch})
    detail = int(re.search(r"Recorded the first ([0-9,]+) ops", result.trace.notes[0]).group(1).replace(",", ""))
    assert detail % 12 == 0 and len(result.trace.funcs) == detail
    texts = _picture_texts(result)
    assert "a₁ = 5.0 ∇ 1290" in texts and any(text.startswith("loop ×") for text in texts)


def test_past_the_budget_a_training_loop_is_drawn_as_whole_steps_not_a_half_step_after_the_loop():
    details, boxes = set(), []
    for ops in range(300, 316):  # budgets ending the detail at each op of one training step
        with contextlib.redirect_stdout(io.StringIO()):  # the program prints its loss
            result = gradmagic.run(POLYNOMIAL, {}, budget=ops)
        details.add(len(result.trace.funcs))
        boxes.append(sum("Linear · call" in text for text in _picture_texts(result)))
    assert len(details) <= 2 and boxes == [1] * 16  # the loop's first call of model.0, no second after the loop


@pytest.mark.parametrize("lean", [False, True], ids=["full", "lean"])
def test_past_the_budget_the_capture_counts_per_line_and_names_still_hold_their_final_values(lean):
    namespace = {"torch": torch}
    result = gradmagic.run(LONG_LOOP, namespace, budget=200, lean=lean)
    # x and its first 199 h's: 200 bindings; x and the first 99 iterations: 199 ops (the detail ends with a whole one)
    what, rest = ("200 bindings", "803 bindings") if lean else ("199 ops", "1,804 ops")
    head = (f"Recorded the first {what} in detail; the remaining {rest} as counts per line (the budget was spent: "
            f"line 4: ")
    assert [note for note in result.trace.notes if note.startswith("Recorded")] == [
        head + ("h ×801; line 5: loss ×1" if lean else "add ×901, mul ×901; line 5: sum ×1")
        + "; line 6: backward ×1"
        + "). %%autograd --budget ops=N (gradmagic.run(..., budget=...)) records more."]
    assert lean or len(result.trace.funcs) == 199
    h_end = pytest.approx(100 - 99 * 0.99 ** 1000, rel=1e-5)
    assert result.tensor("h")["value"] == namespace["h"].tolist() == [h_end, h_end]
    assert result.tensor("x")["grad"] == namespace["x"].grad.tolist() == [pytest.approx(0.99 ** 1000, rel=1e-4)] * 2
    assert result.tensor("loss")["value"] == namespace["loss"].item()


def test_the_memory_budget_turns_the_capture_coarse(monkeypatch):
    from gradmagic.record import budget

    monkeypatch.setattr(budget, "_CHECK_EVERY", 64)
    reads = iter(range(0, 10 ** 9, 2 ** 20))  # the process grows 1 MB between two reads of its memory
    monkeypatch.setattr(budget, "_rss", lambda: next(reads))  # freed memory reused would not show in the real RSS
    source = "kept = []\nfor i in range(200):\n    kept.append(torch.ones(65536) + i)\n"
    result = gradmagic.run(source, budget="memory=4MB")
    assert len(result.trace.funcs) == 5 * 64  # spent at the fifth read: 5 MB > 4 MB
    assert "(the memory budget was spent: line 3: " in result.trace.notes[-1]


def test_after_ctrl_c_only_what_draws_within_the_second_is_kept_in_detail():
    source = "h = torch.ones(2)\nfor i in range(2000):\n    h = h + 1\nraise KeyboardInterrupt"
    with pytest.raises(KeyboardInterrupt):
        gradmagic.run(source)
    trace = gradmagic.last().trace
    room = Budget().detail_nodes(INTERRUPT_SECONDS / 4)  # 875 graph nodes: each op and its h
    assert room - 2 < len(trace.funcs) + trace.num_tensors - 1 <= room  # less h's final value, one record more
    assert trace.lines == [1] + [3] * (room // 2 - 1)
    kept = room // 2
    assert trace.notes == [f"Recorded the first {kept} ops in detail; the remaining {2001 - kept:,} ops as counts per "
                           f"line (the cell was interrupted: line 3: add ×{2001 - kept:,}). %%autograd --budget ops=N "
                           f"(gradmagic.run(..., budget=...)) records more."]
    assert gradmagic.last().tensor("h")["value"] == [2001.0, 2001.0]


def test_a_second_ctrl_c_while_resolving_gives_one_line_and_no_traceback(monkeypatch, capsys):
    from gradmagic import runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "resolve", interrupted)
    namespace = {"torch": torch}
    result = gradmagic.run("x = torch.ones(2) * 3", namespace)
    said = "gradmagic: post-processing interrupted; the result so far is in gradmagic.last()"
    assert capsys.readouterr().err == said + "\n"
    assert result is gradmagic.last() and result.empty and namespace["x"].tolist() == [3.0, 3.0]
    assert torch._C._len_torch_function_stack() == 0


def test_a_lean_result_keeps_no_bound_tensor_alive():
    import weakref

    namespace = {"torch": torch}
    result = gradmagic.run("big = torch.ones(1000, 1000, requires_grad=True)\nloss = (big * 2).sum()\n"
                           "loss.backward()\nmodel = torch.nn.Linear(2, 2)", namespace, lean=True)
    big = weakref.ref(namespace["big"])
    del namespace["big"], namespace["loss"]
    assert big() is None  # the graph is read as the cell ends: the result holds no tensor (issue 11: 386 MB held)
    assert result.tensor("big")["shape"] == [1000, 1000]  # what the name held when the cell ended


def test_re_runs_keep_the_source_lines_of_the_last_hundred_runs_only():
    for _ in range(130):
        gradmagic.run("a = 1", {})
    with pytest.raises(ZeroDivisionError) as raised:
        gradmagic.run("a = 1\nb = 1 / 0", {})
    cell = raised.traceback[-1]  # the run's own source still shows in its traceback
    assert linecache.getline(str(cell.path), cell.lineno + 1) == "b = 1 / 0"
    assert sum(name.startswith("<gradmagic-") for name in linecache.cache) == 100


# A custom autograd.Function as in the PyTorch tutorial "Learning PyTorch with Examples" (LegendrePolynomial3),
# reduced to a square.
CUSTOM_FUNCTION_CELL = """class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return 2 * x * grad

x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
y = Square.apply(x).sum()
y.backward()
"""


def test_lean_re_runs_keep_no_autograd_function_class_of_an_earlier_run():
    namespace = {"torch": torch}
    gradmagic.run(CUSTOM_FUNCTION_CELL, namespace, lean=True)._repr_mimebundle_()
    first = weakref.ref(namespace["Square"]._backward_cls)
    for _ in range(2):
        result = gradmagic.run(CUSTOM_FUNCTION_CELL, namespace, lean=True)
    assert result.tensor("x")["grad"] == [2.0, -4.0, 6.0]
    gc.collect()
    assert first() is None
