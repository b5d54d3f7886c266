"""Capture stage, backward calls: what a `backward()`/`autograd.grad` call starts from, and what both captures keep
of a gradient their hooks see."""
from __future__ import annotations

from collections.abc import Iterator

import torch

from . import summary
from .torchstate import functorch_wrapped

__all__ = ["kept_gradient", "backward_tensors", "iterators_as_tuples", "batched_backward", "frees_graph", "hook_error"]

_TENSOR = torch.Tensor
_STRIDED = torch.strided


def kept_gradient(grad, summarise=summary.stats_vector) -> tuple:
    """(value, None, numel): when small, its numbers (on the CPU, read at once: cheaper than a copy) or a copy
    (elsewhere, read after the run, all at once); a device-side summary vector when large. Never the gradient
    itself: autograd accumulates into a gradient no one else holds, in place, so holding one would change the
    strides and versions of the user's `.grad` tensors."""
    numel = grad.numel()
    if numel > summary.SMALL_NUMEL:
        return summarise(grad), None, numel
    if grad.is_cpu and type(grad) is _TENSOR and grad.layout is _STRIDED and not grad.is_nested:
        try:
            return grad.tolist(), None, numel  # what summary.to_python makes of a copy
        except Exception:  # noqa: BLE001 - a kind tolist cannot read (quantized): copied, summarised later
            pass
    return grad.detach().clone(), None, numel


def backward_tensors(is_grad: bool, args, kwargs) -> tuple[list, list]:
    """The tensors a backward()/autograd.grad call starts from, and those autograd.grad differentiates by."""
    roots = _tensors_in(args[0] if args else kwargs.get("tensors", kwargs.get("outputs")))
    wrt = _tensors_in(args[1] if len(args) > 1 else kwargs.get("inputs")) if is_grad else []
    return roots, wrt


def iterators_as_tuples(args, kwargs) -> tuple:
    """The call's arguments with iterators (a generator such as `model.parameters()`) read into tuples, so that
    both gradmagic and torch can go through them."""
    def read(value):
        return tuple(value) if isinstance(value, Iterator) and not isinstance(value, _TENSOR) else value

    return tuple(read(a) for a in args), {k: read(v) for k, v in kwargs.items()}


def batched_backward(is_grad: bool, args, kwargs) -> bool:
    """Whether a backward call runs batched (`is_grads_batched`, or vmap wrappers among its tensors): its gradients
    are functorch wrappers, not values gradmagic can keep."""
    if is_grad and (kwargs.get("is_grads_batched") or (len(args) > 7 and args[7])):
        return True
    arguments = [*args, *kwargs.values()]
    return any(functorch_wrapped(t) for t in _tensors_in_all(arguments))


def frees_graph(is_grad: bool, args, kwargs) -> bool:
    """Whether a backward()/autograd.grad call frees the graph it ran through (no retain_graph or create_graph)."""
    first = 3 if is_grad else 2  # (tensors, grad_tensors, retain_graph, create_graph); grad: (outputs, inputs, ...)
    retain = kwargs.get("retain_graph", args[first] if len(args) > first else None)
    create = kwargs.get("create_graph", args[first + 1] if len(args) > first + 1 else False)
    return not (retain or create)


def hook_error(error: BaseException) -> str:
    """`RuntimeError: what went wrong`, on one short line."""
    text = f"{type(error).__name__}: {error}".splitlines()[0]
    return text if len(text) <= 160 else text[:159] + "…"


def _tensors_in_all(arguments) -> list:
    """The tensors among call arguments, one level of sequences deep."""
    out = []
    for arg in arguments:
        if isinstance(arg, _TENSOR):
            out.append(arg)
        elif isinstance(arg, (list, tuple)):
            out += [t for t in arg if isinstance(t, _TENSOR)]
    return out


def _tensors_in(tensors) -> list:
    """The tensors among a backward call's `tensors`/`inputs` argument (one tensor or a sequence)."""
    if tensors is None:
        return []
    if isinstance(tensors, _TENSOR):
        return [tensors]
    return [t for t in tensors if isinstance(t, _TENSOR)]
