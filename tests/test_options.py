import pytest
import torch

from gradmagic.options import check_run_options


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
