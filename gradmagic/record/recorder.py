"""Capture stage, full: a TorchFunctionMode that records every tensor op, and backward hooks that see every gradient.

The Recorder decides what each torch call is (kinds in calls.py) and what of it to record; its record book
(book.py) keeps the records, and its GradientHooks (hooks.py) run each backward pass.
"""
from __future__ import annotations

import types
import warnings
from contextlib import ExitStack

import torch
from torch.overrides import TorchFunctionMode

from .book import RecordBook
from .budget import Meter, as_budget, coarse_note
from .calls import EXIT, EXIT_NAMES, GRAD, HOOK, INPLACE, KINDS, OP, PASS, call_kind
from .frames import caller_line, inside_nn_init
from .hooks import GradientHooks
from .naming import item_labels
from .optimizer_hooks import OptimizerCalls
from .patches import hook_module_calls, route_function_apply
from .records import Records, call_shapes
from .torchstate import forward_ad_active, inside_backward, modes_pushed, torch_function_disabled, \
    transform_active, unseen_reads, version_of

__all__ = ["Recorder", "EXIT_NAMES"]

_TENSOR = torch.Tensor
_WRAPPER = types.MethodWrapperType
_SEQUENCES = (list, tuple)
_GRAD_ATTRIBUTE = torch.Tensor.grad
# gradmagic's frames from _counted out, on every path: _counted and its caller, __torch_function__ or its callees.
_OUR_FRAMES_AT_COUNTED = 2
_TENSOR_ATTRIBUTES = frozenset(getattr(torch.Tensor, name) for name in ("T", "mT", "H", "mH", "real", "imag", "data")
                               if hasattr(torch.Tensor, name))


class Recorder(RecordBook, TorchFunctionMode):
    """Records every torch call while pushed; `records` holds what it saw, its `gradients` the backward passes."""

    lean = False

    def __init__(self, filename: str = "<gradmagic>", budget=None):
        RecordBook.__init__(self, filename)
        TorchFunctionMode.__init__(self)
        self.meter = Meter(as_budget(budget))
        self._coarse = False  # past the budget: ops are counted per line, not recorded
        self.gradients = GradientHooks(self.records, self)
        self._undo = ExitStack()  # what start() installed in torch

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
        if modes_pushed():  # a mode of the user's is left: it must see the cell's own calls only
            return self._call_unseen(func, kind, args, kwargs)
        tensors, inputs, consts, kind = self._inputs(args, kwargs, kind)
        out = func(*args, **kwargs) if kwargs else func(*args)
        self._record_call(func, kind, tensors, inputs, consts, out)
        return out

    def _call_unseen(self, func, kind, args, kwargs):
        """`_call` under a mode of the user's: gradmagic's own reads of the tensors hidden from it."""
        with torch_function_disabled():
            tensors, inputs, consts, kind = self._inputs(args, kwargs, kind)
        out = func(*args, **kwargs) if kwargs else func(*args)
        with torch_function_disabled():
            self._record_call(func, kind, tensors, inputs, consts, out)
        return out

    def _counted(self, func, args, kwargs):
        """Past the budget: run the call and count it on its line."""
        self._coarse = True
        self.meter.count(caller_line(self.filename, ours=_OUR_FRAMES_AT_COUNTED), getattr(func, "__name__", "op"))
        return func(*args, **kwargs) if kwargs else func(*args)

    def _backward(self, func, is_grad: bool, args, kwargs):
        """A backward pass, hooked and recorded (hooks.py): within the budget only (past it, counted, run plain)."""
        if self._coarse:
            return self._counted(func, args, kwargs)
        return self.gradients.run_pass(func, is_grad, args, kwargs)

    def _inputs(self, args, kwargs, kind) -> tuple:
        """(tensors, their records and slots, constants, kind) of one call's arguments; what it may change, kept."""
        tensors, inputs, consts = [], [], []
        collect, resolve = self._collect, self.resolve
        for slot, arg in enumerate(args):
            if isinstance(arg, _TENSOR):  # the common case, without a call to _collect
                tensors.append(arg)
                inputs += (slot, resolve(arg))
            else:
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
        recs, versions = inputs[1::2], self.records.versions
        mutated = [t for t, rec in zip(tensors, recs) if version_of(t) != versions[rec]] if recs else ()
        outputs = self._outputs(produced, mutated, 1 + max(map(self.records.depths.__getitem__, recs), default=0))
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

    def _exit_module(self, module, args, output):
        self._leave_module(module)
        if self._coarse:
            return
        with torch_function_disabled():
            self.records.module_calls.append((module, call_shapes(args), call_shapes(output)))

    def _op_count(self) -> int:
        return len(self.records.funcs)

    def fit(self, seconds: float, reason: str = "seconds") -> None:
        """Keep only the ops in detail that post-processing gets through in `seconds`; count the rest; note it."""
        r, budget = self.records, self.meter.budget
        kept = min(budget.ops, r.ops_within(budget.detail_nodes(seconds)))
        cut = kept < len(r.funcs)
        if self._coarse or cut:  # the detail ends inside the run: at the end of a loop's iteration
            kept = r.whole_iterations(min(kept, len(r.funcs)))
        dropped = r.keep_first(kept)
        if dropped:
            self.meter.counts.update(dropped)
            self.meter.over = reason if cut else self.meter.over or reason
        self._keep_records_below(len(self.records.versions))
        note = coarse_note(len(self.records.funcs), self.meter.counts, self.meter.over)
        if note:
            self.records.notes.append(note)

    def read(self) -> Records:
        """What the capture recorded (the full capture's columns are complete as the code ends)."""
        return self.records

    def release(self) -> None:
        """Forget every tensor, autograd node and module, so the capture keeps nothing alive."""
        RecordBook.release(self)
        self.gradients = GradientHooks(self.records, self)
