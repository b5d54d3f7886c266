"""Replay: re-run the recorded computation from the recorded values, in float64, with chosen tensors cut.

Used by the gradient check (finite differences need the computation again) and by `explain` (one path at a time).
It needs every value the computation starts from, so it works for small computations only: gradmagic keeps the
exact values of tensors with at most `summary.SMALL_NUMEL` elements.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..record import summary
from ..text import error_summary
from ..record.trace import Trace

__all__ = ["replay", "run_op", "custom_function", "same_value", "Replay", "ReplayError", "recorded_tensor", "record_name", "REPLAY_RTOL"]

REPLAY_RTOL = 1e-3  # how far the run (often float32) may be from the float64 re-run

_ARITY = {"__getitem__": 2, "__setitem__": 3}  # positional arguments, None included
_DOWNCASTS = (torch.Tensor.float, torch.Tensor.half, torch.Tensor.bfloat16)


class ReplayError(ValueError):
    """The recorded computation cannot be re-run from what was recorded."""


@dataclass
class Replay:
    """A float64 re-run by record: `values` as computed, `inputs` the leaves it depends on (sources and cuts)."""

    values: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    ops: list = field(default_factory=list)
    arguments: dict = field(default_factory=dict)  # op -> {record: copy of the value it was called with} (check=True)
    mismatches: list = field(default_factory=list)  # records whose re-run value is not the recorded one (check=True)


def replay(trace: Trace, roots, *, values: dict | None = None, cut=(), check: bool = False) -> Replay:
    """Re-run in float64 the recorded ops the roots depend on; sources come from their recorded values (or `values`).

    A record in `cut` is replaced downstream by a fresh leaf (`inputs[rec]`), so the gradient of a later value
    with respect to it is the derivative through ops and unlisted tensors only. `check` compares every value with
    the recorded one and keeps each op's arguments (values change later when ops work in place).
    """
    ops, sources = _plan(trace, roots)
    run, env = Replay(ops=ops), {}
    for rec in sorted(sources):
        tensor = values[rec] if values and rec in values else recorded_tensor(trace, rec)
        _bind(run, env, rec, tensor, rec in cut)
    differs = set()
    for op in ops:
        if check:
            run.arguments[op] = {r: env[r].detach().clone() for _, r in trace.inputs[op]}
        try:
            made = run_op(trace, op, env)
        except Exception as error:  # a recorded call that does not run again in float64: say which, in one line
            raise ReplayError(f"cannot re-run the computation: `{_op_text(trace, op)}` (line {trace.lines[op]}) "
                              f"failed in float64 ({error_summary(error)})") from error
        for rec, tensor in zip(trace.outputs[op], made):
            if check:
                spread = differs.intersection(run.arguments[op])
                if spread or not same_value(trace, rec, tensor):
                    differs.add(rec)
                    run.mismatches += [] if spread else [rec]  # where a difference starts, not where it spreads
            _bind(run, env, rec, tensor, rec in cut)
    return run


def _replayable(trace: Trace, op) -> bool:
    """Ops that pass gradient are re-executed; every other tensor is a constant (or leaf) from its recorded value."""
    return (op is not None and trace.op_kinds[op] == "op" and bool(trace.inputs[op]) and trace.grad_enabled[op]
            and any(trace.requires_grad[r] for r in trace.outputs[op]))


def _plan(trace: Trace, roots) -> tuple:
    """(the ops to re-run in record order, the source records they start from)."""
    ops, sources, stack, seen = set(), set(), list(roots), set()
    while stack:
        rec = stack.pop()
        if rec in seen:
            continue
        seen.add(rec)
        op = trace.producers[rec]
        if _replayable(trace, op):
            if _reentrant_checkpoint(trace.funcs[op]):
                line = trace.lines[op] or next((line for _, line, _ in trace.names.get(rec, ())), None)
                raise ReplayError(f"cannot re-run the computation: {record_name(trace, rec)} comes from "
                                  f"torch.utils.checkpoint with use_reentrant=True (line {line}), whose "
                                  "function runs unrecorded inside a custom autograd.Function; with "
                                  "use_reentrant=False its ops are recorded and can be re-run")
            ops.add(op)
            stack.extend(r for _, r in trace.inputs[op])
        elif op is not None and trace.op_kinds[op] == "grad" and trace.requires_grad[rec]:
            raise ReplayError(f"cannot re-run the computation: {record_name(trace, rec)} is a gradient computed "
                              "with create_graph=True, and gradients of gradients are not re-run")
        else:
            sources.add(rec)
    return sorted(ops), sources


def custom_function(func) -> str | None:
    """`Square.apply` for a recorded call of a custom torch.autograd.Function, else None."""
    owner = getattr(func, "__self__", None)
    return f"{owner.__name__}.apply" if isinstance(owner, type) else None


def _reentrant_checkpoint(func) -> bool:
    """Whether a recorded call is `CheckpointFunction.apply` (torch.utils.checkpoint, use_reentrant=True)."""
    return custom_function(func) == "CheckpointFunction.apply"


def _op_text(trace: Trace, op: int) -> str:
    """A recorded call's name: `Square.apply`, `mul`."""
    func = trace.funcs[op]
    return custom_function(func) or getattr(func, "__name__", str(func))


def recorded_tensor(trace: Trace, rec: int) -> torch.Tensor:
    """The recorded value of a record as a tensor (floating ones in float64), a leaf if the record required grad."""
    value = trace.values[rec]
    if value is None:
        large = math.prod(trace.shapes[rec]) > summary.SMALL_NUMEL
        why = f"gradmagic keeps the values of tensors with at most {summary.SMALL_NUMEL} elements only" if large \
            else "it was overwritten before the run ended"
        raise ReplayError(f"cannot re-run the computation: the value of {record_name(trace, rec)} was not recorded "
                          f"({why}); only small computations can be re-run")
    if isinstance(value, dict):  # a meta, sparse or nested tensor, summarised: no plain values to re-run from
        raise ReplayError(f"cannot re-run the computation: {record_name(trace, rec)} is a {value.get('kind')} tensor")
    dtype = getattr(torch, trace.dtypes[rec])
    if dtype.is_complex:
        raise ReplayError(f"cannot re-run the computation: {record_name(trace, rec)} is complex")
    tensor = torch.tensor(value, dtype=torch.float64 if dtype.is_floating_point else dtype)
    return tensor.requires_grad_() if trace.requires_grad[rec] and dtype.is_floating_point else tensor


def _bind(run: Replay, env: dict, rec: int, tensor: torch.Tensor, cut: bool) -> None:
    """Keep a re-run value; a cut or a leaf that requires grad becomes an input the later ops see a clone of."""
    run.values[rec] = tensor
    if cut or (tensor.is_leaf and tensor.requires_grad):
        leaf = tensor if tensor.is_leaf else tensor.detach().requires_grad_()
        run.inputs[rec] = leaf
        tensor = leaf if leaf is tensor else leaf.clone()  # a clone, so in-place ops on it stay legal
    env[rec] = tensor


def run_op(trace: Trace, op: int, env: dict) -> list:
    """Call the recorded function on the replayed tensors; the new tensors it made, in the recorder's order."""
    args, kwargs = _arguments(trace, op, env)
    inputs = [env[rec] for _, rec in trace.inputs[op]]
    versions = [t._version for t in inputs]
    out = _in_float64(trace.funcs[op])(*args, **kwargs)
    produced = [out] if isinstance(out, torch.Tensor) else \
        [o for o in out if isinstance(o, torch.Tensor)] if isinstance(out, (list, tuple)) else []
    mutated = [t for t, v in zip(inputs, versions) if t._version != v]
    made = []
    for t in (*produced, *mutated):
        if not any(t is m for m in made):
            made.append(t)
    # As the recorder did, an input handed back unchanged is not a new tensor, unless the run made one there
    # (`x.double()` is new in the run, but in the float64 re-run it hands x back): then it is a copy.
    unchanged = [any(t is i and t._version == v for i, v in zip(inputs, versions)) for t in made]
    if len(made) - sum(unchanged) >= len(trace.outputs[op]):
        made = [t for t, same in zip(made, unchanged) if not same]
    else:
        made = [t.clone() if same else t for t, same in zip(made, unchanged)]
    return [t.to("cpu", torch.float64) if t.is_floating_point() else t.cpu() for t in made]


def _arguments(trace: Trace, op: int, env: dict) -> tuple:
    """Positional and keyword arguments rebuilt from the recorded slots (tensors, lists of tensors, constants)."""
    slots: dict = {slot: _in_float64(value) for slot, value in trace.consts[op]}
    for slot, rec in trace.inputs[op]:
        if isinstance(slot, tuple):  # the j-th tensor of a list argument (cat, stack)
            slots.setdefault(slot[0], _TensorList()).append(env[rec])
        else:
            slots[slot] = env[rec]
    # The recorder drops None arguments, so `w[None]` comes back as `w[]`: pad to the arity we know.
    arity = _ARITY.get(getattr(trace.funcs[op], "__name__", ""), 0)
    count = max([s + 1 for s in slots if isinstance(s, int)] + [arity])
    args = [slots.get(i) for i in range(count)]
    return ([list(a) if isinstance(a, _TensorList) else a for a in args],
            {k: list(v) if isinstance(v, _TensorList) else v for k, v in slots.items() if isinstance(k, str)})


def _in_float64(thing):
    """Keep the re-run in float64: `x.float()`, `x.half()` become `x.double()`, float dtypes become float64."""
    if isinstance(thing, torch.dtype) and thing.is_floating_point:
        return torch.float64
    if any(thing is f for f in _DOWNCASTS):
        return torch.Tensor.double
    return thing


class _TensorList(list):
    """A list argument being rebuilt from its recorded tensors."""


def record_name(trace: Trace, rec: int) -> str:
    """`w (3×4)`, or `tensor t7 (scalar)` for an unnamed record."""
    names = trace.names.get(rec)
    name = trace.params.get(rec) or (names[0][0] if names else None)
    shape = "×".join(map(str, trace.shapes[rec])) or "scalar"
    return f"{name} ({shape})" if name else f"tensor t{rec} ({shape})"


def same_value(trace: Trace, rec: int, tensor: torch.Tensor) -> bool:
    """True unless the re-run value differs from the recorded one beyond float32 rounding."""
    value = trace.values[rec]
    if value is None or not tensor.is_floating_point():
        return True
    recorded = torch.tensor(value, dtype=torch.float64)
    rtol = max(REPLAY_RTOL, 4 * torch.finfo(getattr(torch, trace.dtypes[rec])).eps)  # float16 rounds coarser
    return recorded.shape == tensor.shape and torch.allclose(tensor.detach(), recorded, rtol=rtol, atol=1e-6,
                                                             equal_nan=True)
