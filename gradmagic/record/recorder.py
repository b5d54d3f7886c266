"""Capture stage: a TorchFunctionMode that records every tensor op, and backward hooks that see every gradient.

Recording is the hot path: it appends to flat column lists (few objects the garbage collector must track)
and defers every conversion to `trace.resolve`, which runs once after the code.
"""
from __future__ import annotations

import types
import warnings
import weakref
from contextlib import ExitStack

import torch
from torch.overrides import TorchFunctionMode

from .backward_calls import kept_gradient
from .budget import Meter, as_budget, coarse_note
from .calls import EXIT, EXIT_NAMES, GRAD, HOOK, INPLACE, KINDS, OP, PASS, call_kind
from .depths import DEEP_NOTE, UNREAD, Looked
from .frames import caller_line, inside_nn_init
from .hooks import GradientHooks
from .naming import item_labels
from .optimizer_hooks import OptimizerCalls
from .patches import hook_module_calls, route_function_apply
from .records import Records, call_shapes, deref, held
from .summary import shape_of, tensor_kind
from .torchstate import forward_ad_active, inside_backward, torch_function_disabled, transform_active, \
    unseen_reads, version_of

__all__ = ["Recorder", "EXIT_NAMES"]

_TENSOR = torch.Tensor
_WRAPPER = types.MethodWrapperType
_REF = weakref.ref
_SEQUENCES = (list, tuple)
_GRAD_ATTRIBUTE = torch.Tensor.grad
_STRIDED = torch.strided
_TENSOR_ATTRIBUTES = frozenset(getattr(torch.Tensor, name) for name in ("T", "mT", "H", "mH", "real", "imag", "data")
                               if hasattr(torch.Tensor, name))


class Recorder(TorchFunctionMode):
    """Records every torch call while pushed; `records` holds what it saw, its `gradients` the backward passes."""

    lean = False

    def __init__(self, filename: str = "<gradmagic>", budget=None):
        super().__init__()
        self.filename = filename
        self.meter = Meter(as_budget(budget))
        self._coarse = False  # past the budget: ops are counted per line, not recorded
        self.records = Records()
        self.gradients = GradientHooks(self.records, self)
        self._latest: dict = {}  # id(tensor) -> newest record of it
        self._module_stack: list = []
        self._looked: Looked | None = None
        self._undo = ExitStack()  # what start() installed in torch

    @property
    def looked(self) -> Looked:
        """The autograd nodes this capture looked at (depths.py), counted from its first one."""
        if self._looked is None:
            self._looked = Looked()
        return self._looked

    @property
    def passes(self) -> int:
        """How many backward passes have run so far."""
        return len(self.records.passes)

    # ---- the hot path -------------------------------------------------------------------------

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if self._coarse:  # past the budget: count the calls that make tensors, run every call plain
            if type(func) is _WRAPPER or (KINDS.get(func) or call_kind(func)) is PASS:
                return func(*args, **kwargs) if kwargs else func(*args)
            return self._counted(func, args, kwargs)
        if type(func) is _WRAPPER:  # attribute get/set: .grad, .shape, .T, .data, ...
            if func.__name__ == "__get__":
                if func.__self__ in _TENSOR_ATTRIBUTES:  # .T, .mT, .real, .data ... make tensors: record them
                    return self._call(func, OP, args, kwargs)
                if func.__self__ is _GRAD_ATTRIBUTE:
                    with unseen_reads():
                        leaf = args[0].is_leaf
                    if not leaf:
                        return self._read_non_leaf_grad(func, args)
            return func(*args, **kwargs) if kwargs else func(*args)
        kind = KINDS.get(func) or call_kind(func)
        if kind is PASS:
            return func(*args, **kwargs) if kwargs else func(*args)
        if kind >= HOOK:
            if kind is HOOK:
                return self._note_hook(func, args, kwargs)
            return self._backward(func, kind is GRAD, args, kwargs or {})
        return self._call(func, kind, args, kwargs)

    def _call(self, func, kind, args, kwargs):
        """Run one torch call and record its tensor inputs, constants and the tensors it made or changed."""
        r = self.records
        if self._coarse or self.meter.spent(len(r.funcs), len(r.funcs) + len(r.versions)):
            return self._counted(func, args, kwargs)
        if kind is INPLACE and inside_nn_init():  # module construction: `init.ones_` arrives as a plain `fill_`
            return func(*args, **kwargs) if kwargs else func(*args)
        if transform_active():  # inside torch.func.vmap/grad/...: functorch wrappers, not the cell's own tensors
            self.records.note("functorch")
            return func(*args, **kwargs) if kwargs else func(*args)
        with unseen_reads():  # a mode of the user's sees the cell's own calls only
            tensors, inputs, consts, kind = self._inputs(args, kwargs, kind)
        out = func(*args, **kwargs) if kwargs else func(*args)
        with unseen_reads():
            self._record_call(func, kind, tensors, inputs, consts, out)
        return out

    def _counted(self, func, args, kwargs):
        """Past the budget: run the call and count it on its line."""
        self._coarse = True
        self.meter.count(caller_line(self.filename), getattr(func, "__name__", "op"))
        return func(*args, **kwargs) if kwargs else func(*args)

    def _backward(self, func, is_grad: bool, args, kwargs):
        """A backward pass, hooked and recorded (hooks.py): within the budget only (past it, counted, run plain)."""
        if self._coarse:
            return self._counted(func, args, kwargs)
        return self.gradients.run_pass(func, is_grad, args, kwargs)

    def _inputs(self, args, kwargs, kind) -> tuple:
        """(tensors, their records and slots, constants, kind) of one call's arguments; what it may change, kept."""
        tensors, inputs, consts = [], [], []
        collect = self._collect
        for slot, arg in enumerate(args):
            collect(slot, arg, tensors, inputs, consts)
        if kwargs:
            for slot, arg in kwargs.items():
                collect(slot, arg, tensors, inputs, consts)
            if kwargs.get("out") is not None or kwargs.get("inplace"):
                kind = INPLACE
        if kind is INPLACE:
            self._snapshot(inputs)
        return tensors, inputs, consts, kind

    def _record_call(self, func, kind, tensors, inputs, consts, out) -> None:
        """Record one call that ran: the tensors it made or changed (or the number an exit op returned)."""
        if kind is EXIT:
            self._add_op(func, inputs, consts, (), out if isinstance(out, (int, float, bool)) else None)
            return
        if isinstance(out, _TENSOR):
            produced = (out,)
        elif isinstance(out, _SEQUENCES):
            produced = [o for o in out if isinstance(o, _TENSOR)]
        else:
            produced = ()
        versions = self.records.versions
        mutated = [t for t, rec in zip(tensors, inputs[1::2]) if version_of(t) != versions[rec]]
        depths = self.records.depths
        depth = 1 + max([depths[rec] for rec in inputs[1::2]], default=0)
        outputs = self._outputs(produced, mutated, depth)
        if outputs or mutated:
            self._add_op(func, inputs, consts, outputs, None)

    def _collect(self, slot, arg, tensors, inputs, consts) -> None:
        if isinstance(arg, _TENSOR):
            tensors.append(arg)
            inputs += (slot, self.resolve(arg))
        elif isinstance(arg, _SEQUENCES) and arg and isinstance(arg[0], _TENSOR):  # cat, stack, foreach
            for j, item in enumerate(arg):
                if isinstance(item, _TENSOR):
                    tensors.append(item)
                    inputs += ((slot, j), self.resolve(item))
        elif arg is not None or type(slot) is int:  # `w[None]` needs its None; `dim=None` does not
            consts += (slot, arg)

    def record_of(self, t) -> int | None:
        """The record of `t` at its current version, or None (new tensor, or changed by an unseen op)."""
        rec = self._latest.get(id(t))
        return rec if rec is not None and self.records.holds(rec, t) else None

    def resolve(self, t) -> int:
        """The record of `t`, recording it as an outside input if it is new."""
        rec = self.record_of(t)
        return self._record(t, None) if rec is None else rec

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

    def _note_hook(self, func, args, kwargs):
        """`t.register_hook(fn)`: noted with its line (explain and check name hooks that change gradients)."""
        if args and isinstance(args[0], _TENSOR) and not self._coarse:
            self.records.grad_hooks.append((self.resolve(args[0]), caller_line(self.filename, 4), func.__name__))
        return func(*args, **kwargs) if kwargs else func(*args)

    def _read_non_leaf_grad(self, getter, args):
        """`y.grad` on a non-leaf: noted for the diagnostics; torch's warning still points at the user's line."""
        if transform_active() or self._coarse:
            return getter(*args)
        self.records.grad_reads.append((self.resolve(args[0]), caller_line(self.filename)))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = getter(*args)
        for warning in caught:
            warnings.warn(warning.message, warning.category, stacklevel=3)
        return value

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
        for t in (*produced, *mutated):
            rec = self.record_of(t)
            if rec is None:
                before = self._latest.get(id(t))
                outputs.append(self._record(t, op, depth))
                if before is not None and deref(r.objs[before]) is t:  # a new version of the same tensor
                    r.previous[outputs[-1]] = before
            elif r.requires_grad[rec] != t.requires_grad:  # requires_grad_() hands back the same version
                r.requires_grad[rec] = t.requires_grad
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
        r.lines.append(caller_line(self.filename))
        r.results.append(result)
        r.records_at.append(len(r.versions))

    # ---- names --------------------------------------------------------------------------------

    def label(self, value, info) -> None:
        """Name the tensor(s) an assignment just bound: `info` is (name, line, expression)."""
        if self._coarse:  # past the budget: the names are read as the run ends (finals.py)
            return
        if isinstance(value, _TENSOR):
            if transform_active():  # an assignment inside a function torch.func transforms: a wrapper tensor
                self.records.note("functorch")
                return
            if inside_backward():  # a custom backward's `grad_input = ...`: autograd steals it only if unshared
                self.records.note("in_backward")
                return
            if forward_ad_active():
                self.records.note("forward_ad")
            with torch_function_disabled():
                self.records.labels.append((self.resolve(value), info))
        elif isinstance(value, (list, tuple)):  # ints and other values bound in a loop stop here, cheaply
            for item, item_info in item_labels(value, info):
                self.label(item, item_info)

    def lookup(self, t) -> int | None:
        """The record of a tensor at its current version, if recorded (for naming after the run)."""
        with torch_function_disabled():
            return self.record_of(t)

    # ---- modules ------------------------------------------------------------------------------

    def start(self) -> None:
        """Track which nn.Module and optimizer call each op runs in, and see custom autograd Functions (undone by
        stop(), also when start() itself fails halfway)."""
        with ExitStack() as undo:
            hook_module_calls(undo, self._enter_module, self._exit_module)
            route_function_apply(undo)
            optimizers = OptimizerCalls(self.filename, self._op_count)
            self.records.optimizer_calls = optimizers.calls
            optimizers.start(undo)
            self._undo = undo.pop_all()

    def stop(self) -> None:
        """Remove everything start() installed."""
        if any(device.type == "meta" for device in set(self.records.devices)):
            self.records.note("meta")
        self._undo.close()

    def _enter_module(self, module, args):
        self._module_stack.append(module)

    def _exit_module(self, module, args, output):
        if self._module_stack and self._module_stack[-1] is module:
            self._module_stack.pop()
        if self._coarse:
            return
        with torch_function_disabled():
            self.records.module_calls.append((module, call_shapes(args), call_shapes(output)))

    def _op_count(self) -> int:
        return len(self.records.funcs)

    def fit(self, seconds: float, reason: str = "seconds") -> None:
        """Keep only the ops in detail that post-processing gets through in `seconds`; count the rest; note it."""
        r, budget = self.records, self.meter.budget
        dropped = r.keep_first(min(budget.ops, r.ops_within(budget.detail_nodes(seconds))))
        if dropped:
            self.meter.counts.update(dropped)
            self.meter.over = reason
        kept = len(self.records.versions)
        self._latest = {key: rec for key, rec in self._latest.items() if rec < kept}
        note = coarse_note(len(self.records.funcs), self.meter.counts, self.meter.over)
        if note:
            self.records.notes.append(note)

    def read(self) -> Records:
        """What the capture recorded (the full capture's columns are complete as the code ends)."""
        return self.records

    def release(self) -> None:
        """Forget every tensor, autograd node and module, so the capture keeps nothing alive."""
        self.records = Records()
        self.gradients = GradientHooks(self.records, self)
        self._latest, self._module_stack = {}, []
