"""Capture stage: a TorchFunctionMode that records every tensor op, and backward hooks that see every gradient.

Recording is the hot path: it appends to flat column lists (few objects the garbage collector must track)
and defers every conversion to `trace.resolve`, which runs once after the code.
"""
from __future__ import annotations

import types
import warnings
import weakref

import torch
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode

from .budget import Meter, as_budget, coarse_note
from .calls import EXIT, EXIT_NAMES, GRAD, HOOK, INPLACE, KINDS, OP, PASS, call_kind, inside_nn_init, routed_apply
from .depths import DEEP_NOTE
from .hooks import UNREAD, GradientHooks, kept_gradient
from .naming import item_labels, on_this_thread
from .optimizer_hooks import OptimizerCalls
from .records import Records, call_shapes, caller_line, deref, held
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


class Recorder(GradientHooks, TorchFunctionMode):
    """Records every torch call while pushed; `records` holds what it saw."""

    lean = False

    def __init__(self, filename: str = "<gradmagic>", budget=None):
        super().__init__()
        self.filename = filename
        self.meter = Meter(as_budget(budget))
        self._coarse = False  # past the budget: ops are counted per line, not recorded
        self.records = Records()
        self._latest: dict = {}  # id(tensor) -> newest record of it
        self._module_stack: list = []
        self._node_entries: dict = {}  # autograd node -> [(output_nr, record)]
        self._indexed_upto = 0
        self._function_apply = None
        self._module_handles: list = []
        self._optimizers: OptimizerCalls | None = None
        self._pass_leaves: list = []  # (record, leaf, copy or None): leaves the running backward pass reaches

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
        self.meter.count(self._caller_line(2), getattr(func, "__name__", "op"))
        return func(*args, **kwargs) if kwargs else func(*args)

    def _backward(self, func, is_grad: bool, args, kwargs):
        """A backward pass, hooked and recorded (hooks.py): within the budget only (past it, __torch_function__
        counts it and runs it plain)."""
        if self._coarse:
            return self._counted(func, args, kwargs)
        return super()._backward(func, is_grad, args, kwargs)

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
            inputs += (slot, self._resolve(arg))
        elif isinstance(arg, _SEQUENCES) and arg and isinstance(arg[0], _TENSOR):  # cat, stack, foreach
            for j, item in enumerate(arg):
                if isinstance(item, _TENSOR):
                    tensors.append(item)
                    inputs += ((slot, j), self._resolve(item))
        elif arg is not None or type(slot) is int:  # `w[None]` needs its None; `dim=None` does not
            consts += (slot, arg)

    def _lookup(self, t) -> int | None:
        """The record of `t` at its current version, or None (new tensor, or changed by an unseen op)."""
        rec = self._latest.get(id(t))
        return rec if rec is not None and self.records.holds(rec, t) else None

    def _resolve(self, t) -> int:
        """The record of `t`, recording it as an outside input if it is new."""
        rec = self._lookup(t)
        return self._record(t, None) if rec is None else rec

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
            self.records.grad_hooks.append((self._resolve(args[0]), self._caller_line(), func.__name__))
        return func(*args, **kwargs) if kwargs else func(*args)

    def _read_non_leaf_grad(self, getter, args):
        """`y.grad` on a non-leaf: noted for the diagnostics; torch's warning still points at the user's line."""
        if transform_active() or self._coarse:
            return getter(*args)
        self.records.grad_reads.append((self._resolve(args[0]), self._caller_line(depth=2)))
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
            rec = self._lookup(t)
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
        r.lines.append(self._caller_line(4))  # _add_op <- _record_call or _grad_outputs <- the torch call
        r.results.append(result)
        r.records_at.append(len(r.versions))

    def _caller_line(self, depth: int = 3) -> int | None:
        return caller_line(self.filename, depth + 1)

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
                self.records.labels.append((self._resolve(value), info))
        elif isinstance(value, (list, tuple)):  # ints and other values bound in a loop stop here, cheaply
            for item, item_info in item_labels(value, info):
                self.label(item, item_info)

    def lookup(self, t) -> int | None:
        """The record of a tensor at its current version, if recorded (for naming after the run)."""
        with torch_function_disabled():
            return self._lookup(t)

    # ---- modules ------------------------------------------------------------------------------

    def start(self, namespace: dict | None = None) -> None:
        """Track which nn.Module each op runs in and see custom autograd Functions (undone by stop()).

        (`namespace` is not needed: a leaf's .grad before the run is noted when an op first uses it.)"""
        self._module_handles = [
            register_module_forward_pre_hook(on_this_thread(self._enter_module)),
            register_module_forward_hook(on_this_thread(self._exit_module), always_call=True),
        ]
        self._function_apply = torch.autograd.Function.__dict__["apply"]
        torch.autograd.Function.apply = classmethod(routed_apply(self._function_apply.__func__))
        self._optimizers = OptimizerCalls(self.filename, self._op_count)
        self.records.optimizer_calls = self._optimizers.calls
        self._optimizers.start()

    def stop(self) -> None:
        """Remove the module hooks and give torch.autograd.Function its own apply back."""
        if any(device.type == "meta" for device in set(self.records.devices)):
            self.records.note("meta")
        for handle in self._module_handles:
            handle.remove()
        self._module_handles = []
        if self._optimizers is not None:
            self._optimizers.stop()
            self._optimizers = None
        if self._function_apply is not None:
            torch.autograd.Function.apply = self._function_apply
            self._function_apply = None

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

    def release(self) -> None:
        """Forget every tensor, autograd node and module, so the capture keeps nothing alive."""
        self.records = Records()
        self._latest, self._node_entries, self._module_stack = {}, {}, []
