"""What a capture installs in torch while its code runs, each undone by the capture's ExitStack on stop.

Everything here is process-wide for as long as a capture runs (torch offers no scoped form): module hooks, the
routing of `autograd.Function.apply`, and any attribute replaced. Each install pushes its own undo first thing, so
closing the stack (in stop(), also after an exception halfway through start()) leaves torch as it found it.
"""
from __future__ import annotations

import functools
from contextlib import ExitStack

import torch
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.overrides import handle_torch_function, has_torch_function

from .naming import on_this_thread

__all__ = ["hook_module_calls", "patch", "route_function_apply"]


def hook_module_calls(undo: ExitStack, enter, exit) -> None:
    """`enter(module, args)` before and `exit(module, args, output)` after every nn.Module call on this thread
    (torch's global forward hooks; `exit` also when the call raised)."""
    undo.callback(register_module_forward_pre_hook(on_this_thread(enter)).remove)
    undo.callback(register_module_forward_hook(on_this_thread(exit), always_call=True).remove)


def patch(undo: ExitStack, owner, name: str, value) -> None:
    """`owner.name = value` until `undo` closes; then the attribute as it was in `owner`'s own __dict__."""
    original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    undo.callback(setattr, owner, name, original)
    setattr(owner, name, value)


def route_function_apply(undo: ExitStack) -> None:
    """Custom autograd Functions' `apply` through the function modes, like torch's own ops, until `undo` closes."""
    apply = torch.autograd.Function.__dict__["apply"]
    patch(undo, torch.autograd.Function, "apply", classmethod(_routed(apply.__func__)))


def _routed(apply):
    """Function.apply that goes through the function modes like torch's own ops (torch does not route it)."""
    @functools.wraps(apply)
    def routed(cls, *args, **kwargs):
        tensors = tuple(a for a in args if isinstance(a, torch.Tensor))
        if tensors and has_torch_function(tensors):
            return handle_torch_function(getattr(cls, "apply"), tensors, *args, **kwargs)
        return apply(cls, *args, **kwargs)

    return routed
