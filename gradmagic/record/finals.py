"""The tensors a namespace names when the run ends (top-level names, module parameters and buffers, items of
lists, tuples and dicts), snapshotted then: what gradmagic reports about a name is what that name holds."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import summary
from .namespace import module_tensors, public_names
from .records import deref, held
from .torchstate import torch_function_disabled, version_of

__all__ = ["Final", "snapshot", "bound_ids", "named_tensors", "grad_names", "bind_finals", "MAX_ITEMS"]

#: Items of one bound list, tuple or dict that get names of their own (`xs[0]` … `xs[63]`).
MAX_ITEMS = 64
_TENSOR = torch.Tensor
_MODULE = torch.nn.Module


def named_tensors(namespace: dict) -> list:
    """[(name, tensor)] for every tensor the namespace names, top-level names first, then module parameters and
    buffers (`model.0.weight`), then items (`xs[0]`, `d['k']`); a tensor reached twice keeps every name."""
    top, params, items = [], [], []
    for name, value in public_names(namespace):
        if isinstance(value, _TENSOR):
            top.append((name, value))
        elif isinstance(value, _MODULE):
            params += [(f"{name}.{path}", t) for path, t in module_tensors(value)]
        elif isinstance(value, (list, tuple)):
            items += [(f"{name}[{i}]", v) for i, v in enumerate(value[:MAX_ITEMS]) if isinstance(v, _TENSOR)]
        elif isinstance(value, dict):
            items += [(f"{name}[{k!r}]", v) for k, v in list(value.items())[:MAX_ITEMS]
                      if isinstance(v, _TENSOR) and isinstance(k, (str, int))]
    return top + params + items


def grad_names(tensors: list) -> dict:
    """id(x.grad) -> `x.grad` for the named leaves among `tensors` (an optimizer step reads them)."""
    names = {}
    for name, tensor in tensors:
        if tensor.is_leaf and tensor.grad is not None:
            names.setdefault(id(tensor.grad), f"{name}.grad")
    return names


@dataclass
class Final:
    """One tensor named when the run ended, as it was then (read at once: a later cell may change it)."""

    names: list  # every name it is bound to, in namespace order
    rebound: bool  # one of its names (or the module or list it comes from) was bound by the run
    obj: object  # records.held(tensor)
    version: int
    meta: tuple  # shape, dtype, device, requires_grad
    is_leaf: bool  # also False for a tensor with no grad_fn (a forward-mode dual output)
    grad_fn: object  # None for a leaf
    output_nr: int
    value: object  # a copy when small and readable, else None
    stats: object  # a stats vector when large and readable, else None
    grad: tuple | None  # (copy or stats vector, None, numel) of `.grad`, None when `.grad` is None


def bound_ids(namespace: dict) -> dict:
    """name -> id(value), to tell afterwards which names the run bound (new, or bound to another object)."""
    return {name: id(value) for name, value in list(namespace.items())}


def snapshot(namespace: dict, before: dict) -> list:
    """A Final per distinct tensor the namespace names; never raises (a tensor it cannot read is left out).
    `before` (bound_ids at the start) tells which names the run bound."""
    finals: dict = {}
    with torch_function_disabled():
        for name, t in named_tensors(namespace):
            head = _head(name)
            rebound = before.get(head) != id(namespace.get(head))
            if id(t) in finals:
                finals[id(t)].names.append(name)
                finals[id(t)].rebound |= rebound
                continue
            try:
                finals[id(t)] = _final(name, t, rebound)
            except Exception:  # a tensor subclass or kind whose state cannot be read here
                continue
    return list(finals.values())


def _head(name: str) -> str:
    """The variable a name starts from: `xs` of `xs[0]`, `model` of `model.0.weight`."""
    return name.split("[")[0].split(".")[0]


def _final(name: str, t, rebound: bool) -> Final:
    grad = t.grad if t.is_leaf or t.retains_grad else None
    return Final(
        names=[name], rebound=rebound, obj=held(t), version=version_of(t),
        meta=(summary.shape_of(t), t.dtype, t.device, t.requires_grad), is_leaf=t.is_leaf,
        grad_fn=None if t.is_leaf else t.grad_fn, output_nr=t.output_nr,
        value=t.detach().clone() if summary.is_small(t) else None,
        stats=None if summary.is_small(t) else summary.stats_vector(t),
        grad=None if grad is None else _kept(grad),
    )


def _kept(grad) -> tuple:
    """(copy or summary, None, numel): as backward_calls.kept_gradient, but a copy (`.grad` may change later)."""
    if summary.is_small(grad):
        return (grad.detach().clone(), None, grad.numel())
    return (summary.stats_vector(grad), None, grad.numel())


# ---- the records they are, after the run ------------------------------------------------------------------


def bind_finals(recorder, r, finals: list) -> dict:
    """Final -> its record: the recorded version when it is the one the names hold, else a new record
    (an update the capture did not see), linked to the earlier version of the same tensor. Tensors the run
    neither touched nor bound to a name (an earlier cell's, untouched) are left out."""
    bound, latest = {}, None
    for final in finals:
        t = deref(final.obj)
        rec = recorder.lookup(t) if t is not None else None
        if rec is not None and deref(r.objs[rec]) is None:  # an anonymous node output of the lean capture
            r.hold(rec, t)
        if rec is None or not _holds(r, rec, final):
            if latest is None:
                latest = _latest_records(r, {id(deref(f.obj)) for f in finals})
            previous = latest.get(id(t)) if t is not None else None
            if previous is None and not final.rebound:
                continue
            rec = _add_record(r, final, previous)
        r.requires_grad[rec] = final.meta[3]  # `x.requires_grad = True` keeps the version
        bound[id(final)] = (final, rec)
    return bound


def _holds(r, rec: int, final: Final) -> bool:
    shape, dtype, device, _ = final.meta
    return (deref(r.objs[rec]) is deref(final.obj) and r.versions[rec] == final.version
            and tuple(r.shapes[rec]) == shape and r.dtypes[rec] == dtype and r.devices[rec] == device)


def _latest_records(r, ids: set) -> dict:
    """id(tensor) -> its newest record, for the tensors in `ids` (one pass over the records)."""
    latest = {}
    for rec, obj in enumerate(r.objs):
        t = deref(obj)
        if t is not None and id(t) in ids:
            latest[id(t)] = rec
    return latest


def _add_record(r, final: Final, previous: int | None) -> int:
    rec = r.add(final.obj, final.version, *final.meta, final.grad_fn, final.output_nr, None, 0)
    if previous is not None:
        r.previous[rec] = previous
    return rec
