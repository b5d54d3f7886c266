"""Capture stage, lean, after the run: torch's autograd graph below what the code bound, read into Records.

One op per autograd node (`TanhBackward0` is `tanh`), one record per node output (shape, dtype and device from
the node's metadata), leaves from `AccumulateGrad.variable`. Walks are iterative and mark every node they look at:
no chain of looked-at nodes grows past depths.MAX_NODE_DEPTH, counting those of earlier captures still alive.
"""
from __future__ import annotations

import bisect
import re
import weakref
from collections import Counter

import torch

from .bindings import Bindings, Seen
from .depths import DEEP_NOTE, MAX_NODE_DEPTH, UNREAD, Looked
from .records import Records, add_note, deref
from .summary import shape_of, tensor_kind
from .torchstate import version_of

__all__ = ["GraphReader", "NodeOp", "LEAN_NOTE"]

LEAN_NOTE = ("Lean capture: torch's autograd graph only, so values of named tensors only, no constants, detach, "
             ".item() or no_grad code, and no gradient flows on edges; run without --lean to record every op.")

_ACCUMULATE = type(torch.ones(1, requires_grad=True).expand(1).grad_fn.next_functions[0][0])
_CUSTOM = torch.autograd.function.BackwardCFunction


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


_NODE_OPS = weakref.WeakKeyDictionary()  # a cell's own autograd.Function classes go with their cell's re-run


def _node_op(node_class: type) -> NodeOp:
    _NODE_OPS[node_class] = op = NodeOp(node_class)
    return op


class GraphReader:
    """Walks the autograd graph below each binding, in binding order, turning nodes into ops and records."""

    def __init__(self, bindings: Bindings, room: int = 10 ** 9):
        self.bindings = bindings
        self.room = room  # graph nodes (ops and records) the read may make
        self.full = False  # the room is used up: the later bindings are left out
        self.dropped: Counter = Counter()  # those bindings, as {(line, name): n}
        self.records = Records()
        self.outputs: dict = {}  # (autograd node, output_nr) -> record
        self.leaves: dict = {}  # id(leaf) -> record
        self.ops: dict = {}  # autograd node -> op
        self.numbers: list = []  # per op: the node's sequence number (when autograd made it)
        self.record_of: list = []  # index in bindings.seen -> record
        self.deepest = 0
        self.stopped = False
        self.looked = Looked()
        # looked at by this capture and no earlier one still alive (depths.py): the walk's nodes, and per node the
        # most such nodes along a chain down from it; room is kept for the bindings' nodes the run looked at and the
        # walk may not reach (at most lean's _LOOK_BUDGET between two passes that free their graphs)
        self.reserve = min(sum(_looked_at_run(seen) for seen in bindings.seen), MAX_NODE_DEPTH // 2)
        self.fresh: set = set()
        self.fresh_depth: dict = {}
        self.fresh_deepest = 0

    def read(self) -> Records:
        """The Records of everything the bindings reach (once: the reader keeps its indexes for lookups)."""
        self.record_of = rec_of = []
        for seen in self.bindings.seen:
            rec = self._record(seen)
            if rec is None:  # no room for the graph below it
                break
            rec_of.append(rec)
        self._mark_bindings()  # all of them: the run looked at nodes of those past the room too
        if self.full:
            self.dropped = self.bindings.keep_first(len(rec_of))
        r = self.records
        r.labels = [(rec_of[index], info) for index, info in self.bindings.labels]
        r.passes = [(kind, [rec_of[i] for i in roots], [rec_of[i] for i in wrt])
                    for kind, roots, wrt in self.bindings.passes]
        r.grads = [(pass_index, rec_of[index], *kept) for pass_index, index, *kept in self.bindings.grads]
        self._assign_modules()
        r.module_calls, r.optimizer_calls = self.bindings.module_calls, self.bindings.optimizer_calls
        r.notes += [*self.bindings.notes, LEAN_NOTE]
        return r

    def lookup(self, t, index: int | None) -> int | None:
        """The record of `t` at its current version: its binding's (`index` in bindings.seen), else its node's."""
        records = self.records
        if index is not None and index < len(self.record_of) and self.bindings.seen[index].holds(t):
            return self.record_of[index]
        if t.is_leaf or self.stopped:
            rec = self.leaves.get(id(t))
            return rec if rec is not None and deref(records.objs[rec]) is t else None
        rec = self.outputs.get((t.grad_fn, t.output_nr))
        return rec if rec is not None and records.versions[rec] == version_of(t) else None

    def _record(self, seen: Seen) -> int:
        t = deref(seen.obj)
        if seen.grad_fn is None or seen.grad_fn is UNREAD or self.stopped:
            rec = self._held(t, seen)
        else:
            key = (seen.grad_fn, seen.output_nr)
            if key not in self.outputs:
                self._walk(seen.grad_fn, seen.line)
                if self.full:
                    return None
            rec = self.outputs.get(key)
            if rec is None:  # past the node budget
                rec = self._held(t, seen)
        r = self.records
        r.objs[rec], r.versions[rec] = seen.obj, seen.version
        return rec

    def _held(self, t, seen: Seen | None = None) -> int:
        """A leaf, a tensor with no autograd history, or one past the node budget (`t` is None once it died)."""
        r = self.records
        if t is not None:
            rec = self.leaves.get(id(t))
            if rec is not None and r.holds(rec, t):
                return rec
        shape, dtype, device, requires_grad = seen.meta if t is None else (shape_of(t), t.dtype, t.device,
                                                                            t.requires_grad)
        kind = None if t is None else tensor_kind(t)
        if kind is not None:
            add_note(self.bindings.notes, kind)
        grad_fn = UNREAD if seen is not None and seen.grad_fn is not None else None
        rec = self._new_record(shape, dtype, device, requires_grad, grad_fn, 0, None, 0)
        if t is not None:
            r.hold(rec, t)
            self.leaves[id(t)] = rec
            before = self.bindings.grads_before.get(id(t))
            if before is not None and before[0] is t and before[1] is not None:
                r.grads_before[rec] = before[1]
        return rec

    def _new_record(self, shape, dtype, device, requires_grad, grad_fn, output_nr, producer, depth) -> int:
        return self.records.add(None, 0, shape, dtype, device, requires_grad, grad_fn, output_nr, producer, depth)

    def _walk(self, root, line) -> None:
        """Add every node below `root` not seen yet as an op, inputs first (iterative post-order).

        It stops before a chain of this capture's fresh looked-at nodes would pass its allowance (depths.py)."""
        ops, stack, found, order = self.ops, [root], set(), []
        allowance, fresh_here = self.looked.allowance - self.reserve - self.fresh_deepest, 0
        looked, room = self.looked, self.room - len(self.records.funcs) - len(self.records.versions)
        while stack:
            node = stack.pop()
            if node is None:  # marker: the node below it has all its inputs added
                order.append(stack.pop())
                continue
            if node in found or node in ops:
                continue
            if 2 * len(found) >= room:  # each node makes an op and at least one record
                self.full = True
                return
            fresh = not looked.is_marked(node)
            if fresh and fresh_here >= allowance:
                self._stop()
                return
            found.add(node)
            if fresh:
                fresh_here += 1
                self.fresh.add(node)
                looked.mark(node)
            stack += (node, None)
            stack += [n for n, _ in node.next_functions if n is not None and n.__class__ is not _ACCUMULATE]
        for node in _chronological(order, ops):
            self._add_op(node, line)

    def _add_op(self, node, line) -> None:
        r, outputs_of = self.records, self.outputs
        op = len(r.funcs)
        inputs, depth, fresh_depth = [], 0, 0
        for slot, (source, nr) in enumerate(node.next_functions):
            if source is not None:
                rec = self._held(source.variable) if source.__class__ is _ACCUMULATE else outputs_of[source, nr]
                inputs += (slot, rec)
                depth = max(depth, r.depths[rec])
                fresh_depth = max(fresh_depth, self.fresh_depth.get(source, 0))
        self.deepest = max(self.deepest, depth + 1)
        self.fresh_depth[node] = fresh_depth = fresh_depth + (node in self.fresh)
        self.fresh_deepest = max(self.fresh_deepest, fresh_depth)
        outputs = []
        for nr, meta in enumerate(node._input_metadata):
            rec = self._new_record(_node_shape(meta), meta.dtype, meta.device, True, node, nr, op, depth + 1)
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
        if DEEP_NOTE not in self.records.notes:
            self.records.notes.append(DEEP_NOTE)

    def _mark_bindings(self) -> None:
        """The bindings' nodes the run looked at and the walk did not reach, marked; the looked-at depth noted, and
        a note if the run stopped looking because earlier captures' looked-at nodes still live."""
        unread, looked = 0, self.looked
        for seen in self.bindings.seen:
            if seen.grad_fn is UNREAD and looked.allowance < MAX_NODE_DEPTH:
                self._stop()
            elif _looked_at_run(seen) and not looked.is_marked(seen.grad_fn):
                looked.mark(seen.grad_fn)
                unread += 1
        looked.reach(self.fresh_deepest + min(unread, self.reserve))

    def _assign_modules(self) -> None:
        """Each op's innermost module call: the last call, in call order, whose node numbers hold its node's."""
        modules = self.records.modules
        order = sorted(range(len(self.numbers)), key=self.numbers.__getitem__)
        numbers = [self.numbers[op] for op in order]
        for module, first, end in self.bindings.spans:
            stop = len(numbers) if end is None else bisect.bisect_left(numbers, end)
            for position in range(bisect.bisect_left(numbers, first), stop):
                modules[order[position]] = module


def _looked_at_run(seen: Seen) -> bool:
    return seen.grad_fn is not None and seen.grad_fn is not UNREAD


def _node_shape(meta) -> tuple:
    """The shape autograd noted for a node output; a nested tensor's ragged dimensions as -1 (it has no single one)."""
    try:
        return tuple(n if isinstance(n, int) else -1 for n in meta.shape)
    except RuntimeError:  # a nested output: its shape is a tensor of per-component sizes
        return (-1,)


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
