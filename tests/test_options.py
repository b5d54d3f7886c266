import pytest
import torch

import gradmagic
from gradmagic.options import backward_problem, check_run_options, explain_problem, out_problem


def test_good_options_give_device_and_dtype(tmp_path):
    assert check_run_options(device="cpu", dtype="float64", depth=1, max_nodes=50, save=[tmp_path / "g.svg"]) == \
        (torch.device("cpu"), torch.float64)
    assert check_run_options() == (None, None)


@pytest.mark.parametrize("device, message", [
    ("mps", f"--device mps: MPS is not available on this machine (torch {torch.__version__}); available: cpu"),
    ("xpu", "--device xpu: XPU is not available on this machine"),
    ("foo", "--device foo: not a torch device; available: cpu"),
    ("meta", "--device meta: meta tensors have no values, and the capture records values; use one of: cpu"),
])
def test_a_device_this_machine_lacks_is_one_line_saying_what_is_available(device, message):
    if torch.cuda.is_available() or torch.backends.mps.is_available() or torch.xpu.is_available():
        pytest.skip("this machine has an accelerator; the message lists it")
    with pytest.raises(ValueError) as error:
        check_run_options(device=device)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_cuda_index_past_the_last_gpu_is_refused_before_anything_runs():
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ValueError, match="available: cpu"):
        check_run_options(device=f"cuda:{count}")


@pytest.mark.parametrize("options, message", [
    ({"lean": True, "explain": ["x"]}, "--explain needs the full capture"),
    ({"lean": True, "check": True}, "--check needs the full capture"),
    ({"dtype": "int8"}, "not a floating torch dtype"),
    ({"depth": -1}, "depth=-1"),
    ({"max_nodes": 0}, "max_nodes=0"),
    ({"save": ["graph.bmp"]}, "unknown suffix"),
])
def test_bad_options_are_one_line_value_errors(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as error:
        check_run_options(**options)
    assert "\n" not in str(error.value)


def test_out_may_replace_an_earlier_result_and_nothing_else():
    earlier = gradmagic.run("x = torch.ones(1)")
    namespace = {"torch": torch, "n": None, "_autograd": earlier}
    assert out_problem("_autograd", {}, namespace) is None and out_problem("g", {"x": True}, namespace) is None
    assert out_problem("torch", {}, namespace) == ("--out torch: 'torch' already holds a module, which the result "
                                                   "would replace; choose another name (default _autograd) or "
                                                   "del torch first")
    assert "'n' already holds a NoneType" in out_problem("n", {}, namespace)
    assert out_problem("x", {"x": True}, {}).startswith("--out x: the cell assigns 'x' itself")


def test_explain_names_are_found_in_the_cell_or_the_namespace_after_the_run():
    namespace = {"w": torch.ones(2), "model": torch.nn.Linear(1, 1), "n": 3}
    assert [explain_problem(name, {"h": True}, namespace) for name in ("h₂", "w", "model.weight")] == [None] * 3
    assert explain_problem("n", {"h": True, "k": False}, namespace) == (
        "--explain n: the cell assigns no 'n' and no tensor of that name exists; names to explain: h, w")


@pytest.mark.parametrize("value, message", [
    (None, "no variable 'loss' (the cell does not assign it either)"),
    (3.0, "'loss' is a float, not a tensor"),
    (torch.ones(2, requires_grad=True), "'loss' has shape (2,); backward() needs a scalar"),
    (torch.ones(()), "'loss' does not require grad"),
])
def test_backward_names_a_scalar_that_requires_grad(value, message):
    namespace = {} if value is None else {"loss": value}
    assert backward_problem("loss", namespace).startswith(f"--backward loss: {message}")
    assert backward_problem("loss", {"loss": torch.ones((), requires_grad=True)}) is None
