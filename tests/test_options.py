import pytest
import torch

from gradmagic.options import check_run_options


def test_good_options_give_device_and_dtype(tmp_path):
    assert check_run_options(device="cpu", dtype="float64", depth=1, max_nodes=50, save=[tmp_path / "g.svg"]) == \
        (torch.device("cpu"), torch.float64)
    assert check_run_options() == (None, None)


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
