"""Capture stage, full: the record book of tensor versions and ops, which record each tensor is, and new ones.

Recording is the hot path: it appends to flat column lists (few objects the garbage collector must track)
and defers every conversion to `trace.resolve`, which runs once after the code. The Recorder decides what each
torch call is; this book keeps what it recorded.
"""
from __future__ import annotations

import weakref

import torch

from .backward_calls import kept_gradient
from .depths import DEEP_NOTE, UNREAD, Looked
from .frames import caller_line
from .records import Records, deref, held
from .summary import shape_of, tensor_kind
from .torchstate import torch_function_disabled, version_of

__all__ = ["RecordBook"]

_REF = weakref.ref
_STRIDED = torch.strided
# gradmagic's frames from _add_op out, on every path: _add_op, the recorder's _record_call, _call and
# __torch_function__, or the hooks' add_grad_op, _grad_outputs, run_pass, ... (caller_line walks past any more).
_OUR_FRAMES_AT_ADD_OP = 4


class RecordBook:
    """The full capture's records: one per tensor version, one op per recorded call, and the module each ran in."""

    def __init__(self, filename: str):
        self.filename = filename
        self.records = Records()
        self._latest: dict = {}  # id(tensor) -> newest record of it
        self._module_stack: list = []
        self._looked: Looked | None = None

    @property
    def looked(self) -> Looked:
        """The autograd nodes this capture looked at (depths.py), counted from its first one."""
        if self._looked is None:
            self._looked = Looked()
        return self._looked

    def record_of(self, t) -> int | None:
        """The record of `t` at its current version, or None (new tensor, or changed by an unseen op)."""
        rec = self._latest.get(id(t))
        return rec if rec is not None and self.records.holds(rec, t) else None

    def resolve(self, t) -> int:
        """The record of `t`, recording it as an outside input if it is new."""
        rec = self._latest.get(id(t))  # record_of, inlined: once per tensor argument of every call
        if rec is not None:
            r = self.records
            obj = r.objs[rec]
            if (obj() if type(obj) is _REF else obj) is t and r.versions[rec] == version_of(t):
                return rec
        return self._record(t, None)

    def newest_record(self, t) -> int | None:
        """The newest record of `t`, whatever its version."""
        return self._latest.get(id(t))

    def record_again(self, t) -> int:
        """A new record for `t`, changed where the capture could not see it (inside a backward pass)."""
        return self._record(t, None)

    def add_grad_op(self, func, inputs: list, produced: list) -> None:
        """Record an autograd.grad call as an op: its roots and inputs in, the gradients it returned out."""
        self._add_op(func, inputs, (), self._outputs(produced, ()), None)

    def _record(self, t, producer, depth: int = 0) -> int:
        r = self.records
        rec = len(r.versions)
        try:
            shape = tuple(t.shape) if t.layout is _STRIDED else None
        except RuntimeError:  # a strided nested tensor has no single shape
            shape = None
        if shape is None:
            shape = self._unusual(t)
        grad_fn = self._grad_fn(t, depth)
        r.objs.append(held(t))
        r.versions.append(version_of(t))
        r.shapes.append(shape)
        r.dtypes.append(t.dtype)
        r.devices.append(t.device)
        r.requires_grad.append(t.requires_grad)
        r.grad_fns.append(grad_fn)
        r.output_nrs.append(0 if grad_fn is None or grad_fn is UNREAD else t.output_nr)
        r.producers.append(producer)
        r.depths.append(depth)
        self._latest[id(t)] = rec
        if producer is None and grad_fn is None and t.grad is not None:  # a leaf from before the run
            r.grads_before[rec] = kept_gradient(t.grad)  # a copy: .grad may accumulate in place
        return rec

    def _unusual(self, t) -> tuple:
        """The shape of a sparse or nested tensor (ragged dimensions as -1), noting what the values will show."""
        kind = tensor_kind(t)
        if kind is not None:
            self.records.note(kind)
        return shape_of(t)

    def _grad_fn(self, t, depth: int):
        """`t.grad_fn`, marked as looked at, unless that would put a chain past the node budget (depths.py)."""
        try:
            if t.is_leaf:
                return None
        except RuntimeError:  # a no_grad view whose base changed in place: torch forbids reading its history
            return UNREAD
        looked = self.looked
        if depth <= looked.allowance:
            grad_fn = t.grad_fn
            looked.mark(grad_fn)
            looked.reach(depth)
            return grad_fn
        self.too_deep()
        return UNREAD

    def too_deep(self) -> None:
        """Say once that gradients deeper than the node budget are not recorded."""
        if DEEP_NOTE not in self.records.notes:
            self.records.notes.append(DEEP_NOTE)

    def _outputs(self, produced, mutated, depth: int = 0) -> tuple:
        r = self.records
        op = len(r.funcs)
        outputs = []
        latest = self._latest
        for t in (*produced, *mutated):
            before = latest.get(id(t))
            if before is None:  # a new tensor (record_of, inlined: once per output of every call)
                outputs.append(self._record(t, op, depth))
            elif not r.holds(before, t):
                outputs.append(self._record(t, op, depth))
                if deref(r.objs[before]) is t:  # a new version of the same tensor
                    r.previous[outputs[-1]] = before
            elif r.requires_grad[before] != t.requires_grad:  # requires_grad_() hands back the same version
                r.requires_grad[before] = t.requires_grad
        return tuple(outputs)

    def _snapshot(self, inputs) -> None:
        """Copy small inputs an in-place op may overwrite, so their earlier version keeps its value."""
        r = self.records
        for rec in inputs[1::2]:
            obj = r.objs[rec]
            if type(obj) is not _REF and rec not in r.snapshots:
                r.snapshots[rec] = obj.detach().clone()

    def _add_op(self, func, inputs, consts, outputs, result) -> None:
        r = self.records
        r.funcs.append(func)
        r.inputs.append(tuple(inputs))
        r.consts.append(tuple(consts))
        r.outputs.append(outputs)
        r.grad_enabled.append(torch.is_grad_enabled())
        r.modules.append(self._module_stack[-1] if self._module_stack else None)
        r.lines.append(caller_line(self.filename, ours=_OUR_FRAMES_AT_ADD_OP))
        r.results.append(result)
        r.records_at.append(len(r.versions))

    def lookup(self, t) -> int | None:
        """The record of a tensor at its current version, if recorded (for naming after the run)."""
        with torch_function_disabled():
            return self.record_of(t)

    def _enter_module(self, module, args):
        self._module_stack.append(module)

    def _leave_module(self, module) -> None:
        if self._module_stack and self._module_stack[-1] is module:
            self._module_stack.pop()

    def _keep_records_below(self, kept: int) -> None:
        """Forget which tensors the records from `kept` on were (the records were cut)."""
        self._latest = {key: rec for key, rec in self._latest.items() if rec < kept}

    def release(self) -> None:
        """Forget every tensor, autograd node and module, so the capture keeps nothing alive."""
        self.records = Records()
        self._latest, self._module_stack = {}, []
