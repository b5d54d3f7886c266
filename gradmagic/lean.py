"""Capture stage, lean: no per-op recording; torch's own autograd graph is the record of the ops.

While the code runs, each assignment keeps the tensor it bound (its `grad_fn` keeps the graph below it alive), a
hook on it sees its gradient, and `backward()`/`autograd.grad` note their passes. The autograd graph is read once,
after the run, when `records` is first asked for: the same `Records` as `recorder.Recorder` fills, so every later
stage works unchanged. What it cannot see: ops off the gradient's path (constants, `.item()`, `detach`, no_grad
code), values of anonymous intermediates, and the gradient flowing along each edge.
"""
from __future__ import annotations

import bisect
import functools
from functools import partial
import re
import weakref

import torch
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from . import summary
from .hooks import MAX_NODE_DEPTH, UNREAD, as_tensor_list, deref, kept_gradient
from .recorder import Records, caller_line
from .torchstate import torch_function_disabled

__all__ = ["LeanRecorder", "NodeOp", "LEAN_NOTE"]

LEAN_NOTE = ("Lean capture: torch's autograd graph only, so values of named tensors only, no constants, detach, "
             ".item() or no_grad code, and no gradient flows on edges; run without --lean to record every op.")

_TENSOR = torch.Tensor
_SMALL = summary.SMALL_NUMEL
_SEQUENCES = (list, tuple)
_ACCUMULATE = type(torch.ones(1, requires_grad=True).expand(1).grad_fn.next_functions[0][0])
_CUSTOM = torch.autograd.function.BackwardCFunction
_next_sequence_nr = torch._C._autograd._get_sequence_nr
# Looking at a node makes torch 2.13 keep its Python object, and freeing a long chain of such nodes recurses
# (hooks.py): between two backward passes that free their graphs, at most this many are looked at while the code
# runs; reading the graph after the run adds at most MAX_NODE_DEPTH more to any chain.
_LOOK_BUDGET = MAX_NODE_DEPTH // 2


class NodeOp:
    """Stands in `Records.funcs` for the torch op behind an autograd node: `TanhBackward0` is `tanh`."""

    __module__ = "torch"

    def __init__(self, node_class: type):
        name = re.sub(r"Backward\d*$", "", node_class.__name__)
        if issubclass(node_class, _CUSTOM):
            self.__name__ = f"{name}.apply"
        else:
            self.__name__ = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
        self.__qualname__ = self.__name__

    def __repr__(self) -> str:
        return f"<op {self.__name__}>"


_NODE_OPS: dict = {}


def _node_op(node_class: type) -> NodeOp:
    _NODE_OPS[node_class] = op = NodeOp(node_class)
    return op


class _Seen:
    """One tensor the code bound to a name or started a backward pass from: kept until the graph is read."""

    __slots__ = ("obj", "version", "grad_fn", "output_nr", "meta", "line")

    def __init__(self, t, grad_fn, line):
        self.obj = t if t.numel() <= _SMALL else weakref.ref(t)
        self.version = t._version
        self.grad_fn = grad_fn  # keeps the graph below it alive; None for leaves, UNREAD past the node budget
        self.output_nr = t.output_nr
        self.meta = None if self.obj is t else (t.shape, t.dtype, t.device, t.requires_grad)
        self.line = line

    def holds(self, t) -> bool:
        return deref(self.obj) is t and self.version == t._version


class LeanRecorder:
    """Keeps what the code binds and the gradients that reach it; reads the autograd graph after the run."""

    lean = True

    def __init__(self, filename: str = "<gradmagic>"):
        self.filename = filename
        self._seen: list = []  # _Seen, in the order the code bound them
        self._by_id: dict = {}  # id(tensor) -> index in _seen of its latest binding
        self._labels: list = []  # (index in _seen, (name, line, expression))
        self._grads: list = []  # (pass, index in _seen, value, version, numel)
        self._passes: list = []  # (kind, root indices, input indices)
        self._pass: int | None = None
        self._looked_at = 0  # autograd nodes looked at since a backward pass last freed a graph
        self._notes: list = []
        self._handles: list = []
        self._spans: list = []  # [module, first node number, end] per module call, in call order
        self._open: list = []
        self._patched: dict = {}
        self._records: Records | None = None
        self._grads_before: dict = {}  # id(leaf) -> (leaf, its .grad before the first backward pass through it)
        self._reader: _GraphReader | None = None

    @property
    def passes(self) -> int:
        """How many backward passes have run so far."""
        return len(self._passes)

    # ---- while the code runs: the hot path ------------------------------------------------------

    def label(self, value, info) -> None:
        """Keep the tensor(s) an assignment just bound: `info` is (name, line, expression)."""
        if isinstance(value, _TENSOR):
            self._labels.append((_unseen_by_modes(self._see, value, info[1]), info))
        elif isinstance(value, _SEQUENCES) and value and isinstance(value[0], _TENSOR):
            name, line, expr = info
            for i, item in enumerate(value):
                self.label(item, (f"{name}[{i}]", line, expr))

    def _see(self, t, line) -> int:
        """The index of `t`'s binding (new unless this version was bound before), its gradient hooked."""
        index = self._by_id.get(id(t))
        if index is not None and self._seen[index].holds(t):
            return index
        index = len(self._seen)
        if t.is_leaf:
            grad_fn = None
            if not self._passes and id(t) not in self._grads_before:  # .grad is read after the run
                self._grads_before[id(t)] = (t, None)
        elif self._looked_at < _LOOK_BUDGET:
            self._looked_at += 1
            grad_fn = t.grad_fn  # its pre-hook sees the gradient of each of its outputs
            self._handles.append(grad_fn.register_prehook(partial(self._on_grads, index, t.output_nr)))
        else:
            grad_fn = self._past_budget()
        self._seen.append(_Seen(t, grad_fn, line))
        self._by_id[id(t)] = index
        return index

    def _past_budget(self):
        """UNREAD, and a note the first time: see _LOOK_BUDGET."""
        if not self._notes:
            self._notes.append(f"More than {_LOOK_BUDGET:,} tensors were named without a backward pass in between; "
                               f"the lean capture stopped reading their autograd graph there (torch 2.13 can crash "
                               f"freeing a long chain of nodes once they were looked at from Python).")
        return UNREAD

    def _on_grads(self, index, output_nr, grad_outputs):
        grad = grad_outputs[output_nr]
        if grad is not None and self._pass is not None:
            self._grads.append((self._pass, index, *_unseen_by_modes(kept_gradient, grad)))

    def _backward(self, func, is_grad: bool, *args, **kwargs):
        """`backward()` / `autograd.grad` with the pass and its roots noted; the hooks see the gradients."""
        roots = as_tensor_list(args[0] if args else kwargs.get("tensors", kwargs.get("outputs")))
        wrt = as_tensor_list(args[1] if len(args) > 1 else kwargs.get("inputs")) if is_grad else []
        line = caller_line(self.filename, 2)
        if not self._passes:
            _unseen_by_modes(self._note_grads_before)
        self._pass = len(self._passes)
        self._passes.append(("grad" if is_grad else "backward", [_unseen_by_modes(self._see, t, line) for t in roots],
                             [_unseen_by_modes(self._see, t, line) for t in wrt]))
        out = func(*args, **kwargs)
        if _frees_graph(is_grad, args, kwargs):
            self._looked_at = 0
        if is_grad:  # autograd.grad hands the inputs' gradients back instead of accumulating them
            self._grads.extend((self._pass, index, *_unseen_by_modes(kept_gradient, g))
                               for index, g in zip(self._passes[-1][2], out) if g is not None)
        return out

    def _note_grads_before(self) -> None:
        """Before the first pass: the .grad of each leaf known so far (the code may have reset it since the start)."""
        for key, (t, _) in list(self._grads_before.items()):
            if t.grad is None:
                del self._grads_before[key]
            else:  # it may accumulate in place
                self._grads_before[key] = (t, kept_gradient(t.grad.detach().clone()))

    def _enter_module(self, module, args):
        self._open.append(len(self._spans))
        self._spans.append([module, _next_sequence_nr(), None])

    def _exit_module(self, module, args, output):
        if self._open and self._spans[self._open[-1]][0] is module:
            self._spans[self._open.pop()][2] = _next_sequence_nr()

    # ---- start and stop -----------------------------------------------------------------------

    def start(self, namespace: dict | None = None) -> None:
        """Note each nn.Module call and each backward pass (undone by stop()), and the leaves' .grad before."""
        for t in _leaves_with_grad(namespace or {}):
            self._grads_before[id(t)] = (t, None)
        self._handles += [register_module_forward_pre_hook(self._enter_module),
                          register_module_forward_hook(self._exit_module, always_call=True)]
        for name, is_grad in (("backward", False), ("grad", True)):
            original = getattr(torch.autograd, name)
            self._patched[name] = original
            noting = partial(self._backward, original, is_grad)
            setattr(torch.autograd, name, functools.wraps(original)(noting))

    def stop(self) -> None:
        """Remove every hook and give torch.autograd its own functions back."""
        for name, original in self._patched.items():
            setattr(torch.autograd, name, original)
        self._patched = {}
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # ---- after the run ------------------------------------------------------------------------

    @property
    def records(self) -> Records:
        """The autograd graph below everything the code bound, read once into the recorder's columns."""
        if self._records is None:
            self._reader = _GraphReader(self)
            self._records = self._reader.read()
        return self._records

    def lookup(self, t) -> int | None:
        """The record of a tensor at its current version, if recorded (for naming after the run)."""
        records, reader = self.records, self._reader
        index = self._by_id.get(id(t))
        if index is not None and self._seen[index].holds(t):
            return reader.record_of[index]
        if t.is_leaf or reader.stopped:
            rec = reader.leaves.get(id(t))
            return rec if rec is not None and deref(records.objs[rec]) is t else None
        rec = reader.outputs.get((t.grad_fn, t.output_nr))
        return rec if rec is not None and records.versions[rec] == t._version else None

    def release(self) -> None:
        """Forget every tensor, autograd node and module, so the capture keeps nothing alive."""
        self._seen, self._by_id, self._labels, self._grads, self._passes, self._spans = [], {}, [], [], [], []
        self._grads_before, self._reader = {}, None
        self._records = Records()


def _unseen_by_modes(func, *args):
    """`func(*args)` with no torch function mode seeing its calls (a device context's or the user's own)."""
    if not torch._C._len_torch_function_stack():
        return func(*args)
    with torch_function_disabled():
        return func(*args)


def _chronological(order: list, done: dict) -> list:
    """The nodes in the order autograd made them, if that puts inputs first (it does unless threads made them)."""
    by_number = sorted(order, key=lambda node: node._sequence_nr())
    placed = set()
    for node in by_number:
        if any(n not in placed and n not in done for n, _ in node.next_functions
               if n is not None and n.__class__ is not _ACCUMULATE):
            return order
        placed.add(node)
    return by_number


def _frees_graph(is_grad: bool, args, kwargs) -> bool:
    """Whether a backward()/autograd.grad call frees the graph it ran through (no retain_graph or create_graph)."""
    first = 3 if is_grad else 2  # (tensors, grad_tensors, retain_graph, create_graph); grad: (outputs, inputs, ...)
    retain = kwargs.get("retain_graph", args[first] if len(args) > first else None)
    create = kwargs.get("create_graph", args[first + 1] if len(args) > first + 1 else False)
    return not (retain or create)


def _leaves_with_grad(namespace: dict):
    """The leaf tensors (module parameters included) bound in `namespace` whose .grad is set."""
    for value in list(namespace.values()):
        tensors = value.parameters() if isinstance(value, torch.nn.Module) else (value,)
        for t in tensors:
            if isinstance(t, _TENSOR) and t.is_leaf and t.grad is not None:
                yield t


class _GraphReader:
    """Walks the autograd graph below each binding, in binding order, turning nodes into ops and records."""

    def __init__(self, recorder: LeanRecorder):
        self.recorder = recorder
        self.records = Records()
        self.outputs: dict = {}  # (autograd node, output_nr) -> record
        self.leaves: dict = {}  # id(leaf) -> record
        self.ops: dict = {}  # autograd node -> op
        self.numbers: list = []  # per op: the node's sequence number (when autograd made it)
        self.record_of: list = []  # index in the recorder's _seen -> record
        self.deepest = 0
        self.stopped = False

    def read(self) -> Records:
        self.record_of = rec_of = [self._record(seen) for seen in self.recorder._seen]
        r = self.records
        r.labels = [(rec_of[index], info) for index, info in self.recorder._labels]
        r.passes = [(kind, [rec_of[i] for i in roots], [rec_of[i] for i in wrt])
                    for kind, roots, wrt in self.recorder._passes]
        r.grads = [(pass_index, rec_of[index], *kept) for pass_index, index, *kept in self.recorder._grads]
        self._assign_modules()
        r.notes += [*self.recorder._notes, LEAN_NOTE]
        return r

    def _record(self, seen: _Seen) -> int:
        t = deref(seen.obj)
        if seen.grad_fn is None or seen.grad_fn is UNREAD or self.stopped:
            rec = self._held(t, seen)
        else:
            key = (seen.grad_fn, seen.output_nr)
            if key not in self.outputs:
                self._walk(seen.grad_fn, seen.line)
            rec = self.outputs.get(key)
            if rec is None:  # past the node budget
                rec = self._held(t, seen)
        r = self.records
        r.objs[rec], r.versions[rec] = seen.obj, seen.version
        return rec

    def _held(self, t, seen: _Seen | None = None) -> int:
        """A leaf, a tensor with no autograd history, or one past the node budget (`t` is None once it died)."""
        r = self.records
        if t is not None:
            rec = self.leaves.get(id(t))
            if rec is not None and deref(r.objs[rec]) is t and r.versions[rec] == t._version:
                return rec
        shape, dtype, device, requires_grad = seen.meta if t is None else (t.shape, t.dtype, t.device,
                                                                            t.requires_grad)
        grad_fn = UNREAD if seen is not None and seen.grad_fn is not None else None
        rec = self._new_record(shape, dtype, device, requires_grad, grad_fn, 0, None, 0)
        if t is not None:
            r.objs[rec] = t if t.numel() <= _SMALL else weakref.ref(t)
            r.versions[rec] = t._version
            self.leaves[id(t)] = rec
            before = self.recorder._grads_before.get(id(t))
            if before is not None and before[0] is t and before[1] is not None:
                r.grads_before[rec] = before[1]
        return rec

    def _new_record(self, shape, dtype, device, requires_grad, grad_fn, output_nr, producer, depth) -> int:
        r = self.records
        r.objs.append(None)
        r.versions.append(0)
        r.shapes.append(tuple(shape))
        r.dtypes.append(dtype)
        r.devices.append(device)
        r.requires_grad.append(requires_grad)
        r.grad_fns.append(grad_fn)
        r.output_nrs.append(output_nr)
        r.producers.append(producer)
        r.depths.append(depth)
        return len(r.objs) - 1

    def _walk(self, root, line) -> None:
        """Add every node below `root` not seen yet as an op, inputs first (iterative post-order).

        No chain of nodes looked at grows past MAX_NODE_DEPTH (see hooks.py): the walk stops before."""
        ops, stack, found, order = self.ops, [root], set(), []
        allowance = MAX_NODE_DEPTH - self.deepest
        while stack:
            node = stack.pop()
            if node is None:  # marker: the node below it has all its inputs added
                order.append(stack.pop())
                continue
            if node in found or node in ops:
                continue
            found.add(node)
            if len(found) > allowance:
                self._stop()
                return
            stack += (node, None)
            stack += [n for n, _ in node.next_functions if n is not None and n.__class__ is not _ACCUMULATE]
        for node in _chronological(order, ops):
            self._add_op(node, line)

    def _add_op(self, node, line) -> None:
        r, outputs_of = self.records, self.outputs
        op = len(r.funcs)
        inputs, depth = [], 0
        for slot, (source, nr) in enumerate(node.next_functions):
            if source is not None:
                rec = self._held(source.variable) if source.__class__ is _ACCUMULATE else outputs_of[source, nr]
                inputs += (slot, rec)
                depth = max(depth, r.depths[rec])
        self.deepest = max(self.deepest, depth + 1)
        outputs = []
        for nr, meta in enumerate(node._input_metadata):
            rec = self._new_record(meta.shape, meta.dtype, meta.device, True, node, nr, op, depth + 1)
            outputs_of[node, nr] = rec
            outputs.append(rec)
        self.ops[node] = op
        self.numbers.append(node._sequence_nr())
        r.funcs.append(_NODE_OPS.get(node.__class__) or _node_op(node.__class__))
        r.inputs.append(tuple(inputs))
        r.consts.append(())
        r.outputs.append(tuple(outputs))
        r.grad_enabled.append(True)
        r.modules.append(None)
        r.lines.append(line)
        r.results.append(None)

    def _stop(self) -> None:
        self.stopped = True
        self.records.notes.append(
            f"This cell's autograd graph is more than {MAX_NODE_DEPTH:,} nodes deep; the lean capture stopped reading "
            f"it there (torch 2.13 can crash freeing a deep chain once its nodes were looked at from Python).")

    def _assign_modules(self) -> None:
        """Each op's innermost module call: the last call, in call order, whose node numbers hold its node's."""
        modules = self.records.modules
        order = sorted(range(len(self.numbers)), key=self.numbers.__getitem__)
        numbers = [self.numbers[op] for op in order]
        for module, first, end in self.recorder._spans:
            stop = len(numbers) if end is None else bisect.bisect_left(numbers, end)
            for position in range(bisect.bisect_left(numbers, first), stop):
                modules[order[position]] = module
