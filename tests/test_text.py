import math

import pytest
import torch

import gradmagic
from gradmagic.text import CAPTION_WIDTH, grad_summary, list_stats, number, shorten_middle, tensor_caption
from programs import SEED_3, TRANSPARENCY_SUITE

LONG_NAME = """
attention = torch.nn.ModuleDict({"self_attention": torch.nn.ModuleDict({"in_projection": torch.nn.Linear(8, 24)})})
encoder = torch.nn.ModuleDict({"layers": torch.nn.ModuleList([attention])})
del attention
loss = encoder.layers[0].self_attention.in_projection(torch.ones(8)).pow(2).sum()
loss.backward()
"""


def _lines(caption: str) -> list:
    return caption.split("\n")


def test_small_tensor_caption_shows_every_value_and_the_whole_gradient():
    source = ("w = torch.tensor([0.0352, 0.471], requires_grad=True)\n"
              "(w * torch.tensor([-0.245, 0.13])).sum().backward()")
    # 37 characters: two lines rather than one wide box
    assert tensor_caption(gradmagic.run(source).tensor("w")) == "w = [0.0352, 0.471]\n∇ [-0.245, 0.13]"


def test_short_captions_stay_on_one_line():
    source = "w = torch.tensor([2.0, 3.0], requires_grad=True)\n(w * w).sum().backward()"
    assert tensor_caption(gradmagic.run(source).tensor("w")) == "w = [2.0, 3.0] ∇ [4.0, 6.0]"


def test_large_tensor_caption_is_shape_moments_and_gradient_norm():
    namespace = {"torch": torch}
    result = gradmagic.run("w = torch.randn(8, 4, requires_grad=True)\n(w * w).sum().backward()", namespace)
    w = namespace["w"]
    expected = (f"w [8×4] μ={number(w.mean().item())} σ={number(w.std().item())} "
                f"∇‖{number(w.grad.norm().item())}‖")
    assert tensor_caption(result.tensor("w")) == expected


def test_pass_gradients_are_marked_partial_and_grad_is_marked_nabla():
    result = gradmagic.run(SEED_3)
    assert tensor_caption(result.tensor("x")) == "x = 10.0 ∇ 17200"  # x.grad
    assert tensor_caption(result.tensor("y")) == "y = 215.0 ∂ 430.0"  # dz/dy of the pass; y.grad is None


def test_long_names_are_shortened_in_the_middle_and_keep_the_gradient():
    namespace = {"torch": torch}
    result = gradmagic.run(LONG_NAME, namespace)
    weight = namespace["encoder"]["layers"][0]["self_attention"]["in_projection"].weight
    caption = tensor_caption(result.tensor("encoder.layers.0.self_attention.in_projection.weight"))
    lines = _lines(caption)
    assert all(len(line) <= CAPTION_WIDTH for line in lines), lines
    assert lines[0].startswith("encoder.layers…") and lines[0].endswith("weight [24×8]")
    assert lines[-1].endswith(f"∇‖{number(weight.grad.norm().item())}‖")


def test_tiny_tensors_of_long_numbers_keep_every_gradient_number():
    source = ("w = torch.tensor([-5.17e-08, 1.23e-07, -3.3e+05, 4.4e-09], requires_grad=True)\n"
              "(w * w * 1e10).sum().backward()")
    namespace = {"torch": torch}
    caption = tensor_caption(gradmagic.run(source, namespace).tensor("w"))
    grad = "[" + ", ".join(number(g) for g in namespace["w"].grad.tolist()) + "]"
    assert _lines(caption) == ["w = [-5.17e-08, 1.23e-07, -330000, 4.4e-09]", f"∇ {grad}"]


def test_complex_captions_show_numbers_or_the_magnitude():
    assert tensor_caption(gradmagic.run("z = torch.tensor(1+2j, requires_grad=True)\n(z * z.conj()).real.backward()")
                          .tensor("z")) == "z = 1+2j ∇ 2+4j"
    namespace = {"torch": torch}
    result = gradmagic.run("A = torch.randn(10, 10, dtype=torch.cdouble, requires_grad=True)\n"
                           "A.abs().pow(2).sum().backward()", namespace)
    A = namespace["A"]
    lines = _lines(tensor_caption(result.tensor("A")))
    assert f"|z| μ={number(A.abs().mean().item())}" in " ".join(lines)
    assert lines[-1].endswith(f"∇‖{number(A.grad.norm().item())}‖")


def test_nan_counts_replace_moments_that_are_nan():
    source = "w = torch.tensor([float('nan'), 1.0, 2, 3, 4, 5.0], requires_grad=True)\n(w * 2).sum().backward()"
    assert tensor_caption(gradmagic.run(source).tensor("w")) == f"w [6] 1 nan ∇‖{number(math.sqrt(24))}‖"


def test_meta_tensors_say_meta():
    source = "x = torch.randn(3, device='meta', requires_grad=True)\n(x * 2).sum().backward()"
    assert tensor_caption(gradmagic.run(source).tensor("x")) == "x [3] meta ∇ meta"


@pytest.mark.parametrize("name", sorted(TRANSPARENCY_SUITE))
def test_every_caption_line_fits_and_every_gradient_is_shown(name):
    graph = gradmagic.run(TRANSPARENCY_SUITE[name]).graph
    for _, node in graph.nodes(data=True):
        if node["kind"] != "tensor":
            continue
        lines = _lines(tensor_caption(node))
        assert all(len(line) <= CAPTION_WIDTH for line in lines), lines
        if grad_summary(node):
            assert "∇" in lines[-1] or "∂" in lines[-1], lines


def test_list_stats_match_torch():
    values = torch.tensor([0.5, -1.25, 3.0, 2.0, -0.75])
    stats = list_stats(values.tolist())
    assert (stats["min"], stats["max"], stats["numel"]) == (-1.25, 3.0, 5)
    assert stats["mean"] == pytest.approx(values.mean().item())
    assert stats["std"] == pytest.approx(values.std().item())
    assert stats["norm"] == pytest.approx(values.norm().item())


def test_shorten_middle_keeps_the_start_and_the_end_at_a_dot():
    name = "model.encoder.layers.0.self_attn.in_proj_weight"
    assert shorten_middle(name, 33) == "model.encoder…attn.in_proj_weight"
    assert shorten_middle("short", 33) == "short"


@pytest.mark.parametrize("width", [20, 30, CAPTION_WIDTH])
def test_captions_fit_any_width_and_keep_the_gradient(width):
    graph = gradmagic.run(TRANSPARENCY_SUITE["module_step"]).graph
    for _, node in graph.nodes(data=True):
        if node["kind"] == "tensor" and grad_summary(node):
            lines = _lines(tensor_caption(node, width=width))
            assert all(len(line) <= width for line in lines) and ("∇" in lines[-1] or "∂" in lines[-1]), lines


def test_a_stepped_weight_caption_ends_with_its_whole_gradient():
    # issue 10: `model.weight₂ = [0.0352, 0.471] · ∇ [-0.245…` lost the gradient at 44 characters
    source = ("model = torch.nn.Linear(2, 1)\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
              "loss = model(torch.randn(8, 2)).pow(2).mean()\nopt.zero_grad()\nloss.backward()\nopt.step()")
    namespace = {"torch": torch}
    caption = tensor_caption(gradmagic.run(source, namespace).tensor("model.weight"))
    weight = namespace["model"].weight
    values, grads = (", ".join(number(v) for v in t.flatten().tolist()) for t in (weight.detach(), weight.grad))
    assert caption == f"model.weight₂ = [{values}]\n∇ [{grads}]"


def test_stats_of_huge_numbers_do_not_overflow():
    from gradmagic.text import list_stats

    stats = list_stats([1e200, -1e200, 3e200])
    assert stats["mean"] == pytest.approx(1e200) and stats["std"] == pytest.approx(2e200)
    assert list_stats([1e308, 1e308])["mean"] == 1e308
    assert list_stats([1.0, 2.0, 3.0])["std"] == pytest.approx(1.0)


def test_stats_of_both_infinities_are_torchs():
    values = torch.tensor([math.inf, -math.inf, 1.0])
    stats = list_stats(values.tolist())
    assert math.isnan(stats["mean"]) and math.isnan(values.mean().item())
    assert (stats["min"], stats["max"], stats["inf"]) == (-math.inf, math.inf, 2)


def test_one_norm_for_numbers_lists_and_stats():
    from gradmagic.text import norm

    assert norm(-3) == 3 and norm([[3.0], [4.0]]) == 5.0 and norm([3 + 4j]) == 5.0 and norm([]) == 0.0
    assert norm({"norm": 18.7, "numel": 4096}) == 18.7
    assert norm([1e200, 1e200]) == pytest.approx(math.sqrt(2) * 1e200)  # no overflow
    assert math.isnan(norm([math.inf, math.nan])) and math.isnan(torch.tensor([math.inf, math.nan]).norm().item())
    assert [norm(x) for x in (None, True, {"numel": 4096}, {"norm": True}, ["a"], [True])] == [None] * 6
    assert list_stats([3.0, -4.0])["norm"] == 5.0
