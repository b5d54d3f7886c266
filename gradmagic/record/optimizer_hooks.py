"""Capture stage, optimizers: which ops ran inside an optimizer's `step()` or `zero_grad()`, and its settings.

Both captures use it. Nothing runs per op: each call notes the range of op numbers it spans (the full capture
counts ops; the lean one records none) and the parameters it changed, with their versions after it.
"""
from __future__ import annotations

import functools
import inspect
from contextlib import ExitStack

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from .frames import caller_line
from .patches import patch
from .records import held
from .torchstate import torch_function_disabled

__all__ = ["OptimizerCalls", "settings_text"]

_CALLER_FRAMES = 8  # torch's hook caller <- profiling wrapper <- step's own decorators <- the code's line


class OptimizerCalls:
    """Notes every `step()` and `zero_grad()` of a torch.optim optimizer while started.

    `calls` holds [kind, optimizer, settings, first op, end op, line, [(held parameter, version after), ...]]."""

    def __init__(self, filename: str, op_count):
        self.filename = filename
        self._op_count = op_count  # () -> how many ops the capture has recorded so far
        self.calls: list = []
        self._open: list = []  # indices in calls of the calls under way
        self._settings: dict = {}  # id(optimizer) -> (its first group's values, settings_text): a loop's steps repeat

    def start(self, undo: ExitStack) -> None:
        """Global step hooks (torch.optim's own) and a noting `Optimizer.zero_grad` (torch has no hook for it), until
        `undo` closes."""
        undo.callback(self._open.clear)
        undo.callback(register_optimizer_step_pre_hook(self._enter_step).remove)
        undo.callback(register_optimizer_step_post_hook(self._exit_step).remove)
        zero_grad = torch.optim.Optimizer.__dict__["zero_grad"]
        patch(undo, torch.optim.Optimizer, "zero_grad", _noting_zero_grad(zero_grad, self))

    def enter(self, kind: str, optimizer) -> None:
        """A call begins: note who and how (a hyper-parameter may change between steps: a scheduler)."""
        self._open.append(len(self.calls))
        line = caller_line(self.filename, _CALLER_FRAMES)
        self.calls.append([kind, optimizer, self._settings_of(optimizer), self._op_count(), None, line, []])

    def _settings_of(self, optimizer) -> str:
        """settings_text(optimizer), computed again only when a value of its first group changed."""
        group = optimizer.param_groups[0] if optimizer.param_groups else {}
        values = tuple(id(v) if isinstance(v, (torch.Tensor, list)) else v for v in group.values())
        known = self._settings.get(id(optimizer))
        if known is None or known[0] != values:
            known = self._settings[id(optimizer)] = (values, settings_text(optimizer))
        return known[1]

    def exit(self, optimizer) -> None:
        """A call ends: the ops since it began are its own; note the versions of the parameters it changed."""
        if not self._open or self.calls[self._open[-1]][1] is not optimizer:
            return
        call = self.calls[self._open.pop()]
        call[4] = self._op_count()
        if call[0] == "step":
            with torch_function_disabled():
                call[6] = [(held(p), p._version) for group in optimizer.param_groups for p in group["params"]
                           if p.grad is not None]

    def _enter_step(self, optimizer, args, kwargs):
        self.enter("step", optimizer)

    def _exit_step(self, optimizer, args, kwargs):
        self.exit(optimizer)


def _noting_zero_grad(zero_grad, calls: OptimizerCalls):
    """Optimizer.zero_grad that notes its call (its ops: `zero_` when set_to_none=False)."""
    @functools.wraps(zero_grad)
    def noting(self, *args, **kwargs):
        calls.enter("zero_grad", self)
        try:
            return zero_grad(self, *args, **kwargs)
        finally:
            calls.exit(self)

    return noting


def settings_text(optimizer) -> str:
    """`lr=0.1, momentum=0.9`: the learning rate and every setting of the first group that is not the default."""
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    defaults = _defaults(type(optimizer))
    parts = [f"lr={_setting(group['lr'])}"] if "lr" in group else []
    for key, value in group.items():
        if key in ("lr", "params") or key not in defaults or isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float, tuple, torch.Tensor)) and _setting(value) != _setting(defaults[key]):
            parts.append(f"{key}={_setting(value)}")
    return ", ".join(parts)


@functools.lru_cache(maxsize=64)
def _defaults(cls: type) -> dict:
    """The keyword defaults of an optimizer class's constructor (`momentum=0` for SGD)."""
    try:
        parameters = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _setting(value) -> str:
    """`0.1`, `0.9`, `(0.9, 0.999)`: a hyper-parameter as a person writes it."""
    if isinstance(value, torch.Tensor):
        with torch_function_disabled():
            value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, tuple):
        return f"({', '.join(_setting(v) for v in value)})"
    return f"{value:g}" if isinstance(value, float) else str(value)
