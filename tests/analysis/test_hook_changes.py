"""Gradient hooks that changed a gradient: autograd's value against the chain rule's, named by the tensor."""
import gradmagic
from gradmagic.analysis.hook_changes import hook_changes

from helpers import plain_namespace


def test_a_hook_that_doubles_a_gradient_is_named_with_both_values():
    source = ("x = torch.tensor([1.0, 2.0], requires_grad=True)\ny = x * 3\ny.register_hook(lambda g: g * 2)\n"
              "s = (y * y).sum()\ns.backward()\n")
    graph = gradmagic.run(source).graph
    assert plain_namespace(source)["x"].grad.tolist() == [36.0, 72.0]  # 3 · 2 · 2y
    assert hook_changes(graph, 0) == ["y has a gradient hook (line 3) that changed its gradient: autograd's "
                                      "[12.0, 24.0] vs chain rule [6.0, 12.0]"]


def test_a_hook_on_an_unnamed_tensor_is_named_by_its_expression():
    source = ("x = torch.tensor([1.0, 2.0], requires_grad=True)\nys = [x * 3]\nys[0].register_hook(lambda g: g * 2)\n"
              "s = (ys[0] * ys[0]).sum()\ns.backward()\n")
    graph = gradmagic.run(source).graph
    assert plain_namespace(source)["x"].grad.tolist() == [36.0, 72.0]
    assert hook_changes(graph, 0) == ["ys[0] has a gradient hook (line 3) that changed its gradient: autograd's "
                                      "[12.0, 24.0] vs chain rule [6.0, 12.0]"]


def test_a_hook_that_keeps_the_gradient_is_not_named():
    source = ("x = torch.tensor([1.0, 2.0], requires_grad=True)\ny = x * 3\ny.register_hook(lambda g: g + 0)\n"
              "s = (y * y).sum()\ns.backward()\n")
    assert hook_changes(gradmagic.run(source).graph, 0) == []
