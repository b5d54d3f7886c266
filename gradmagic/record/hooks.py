"""Capture stage, gradients: hooks on the autograd nodes a backward pass runs, removed right after it.

One post-hook per node sees both the gradient that reached its outputs (the recorded tensors', non-leaves included,
with no `retain_grad`) and the gradient it sends to each input: the flow along each tensor->op edge. The full
recorder composes one `GradientHooks` and offers it the narrow `RecordedTensors` interface below.
"""
from __future__ import annotations

from functools import partial
from typing import Protocol

import torch

from . import summary
from .backward_calls import backward_tensors, batched_backward, hook_error, kept_gradient
from .depths import UNREAD, Looked
from .records import Records, deref
from .torchstate import inside_backward, torch_function_disabled, transform_active, unseen_reads, version_of

__all__ = ["GradientHooks", "RecordedTensors", "MAX_INNER_NODES", "MAX_UNKNOWN_RUN"]

MAX_INNER_NODES = 8  # autograd nodes one recorded op may expand to (`1/x`: reciprocal and mul)
# Unrecorded nodes in a row the hook walk goes through (one op's inner nodes, an LSTM's steps) before it stops.
MAX_UNKNOWN_RUN = 1_000
_TENSOR = torch.Tensor


class RecordedTensors(Protocol):
    """What the backward side asks of the recorder that owns the records."""

    looked: Looked  # the autograd nodes this capture looked at (depths.py)

    def resolve(self, t) -> int:
        """The record of `t`, recording it as an outside input if it is new."""

    def record_of(self, t) -> int | None:
        """The record of `t` at its current version, or None."""

    def newest_record(self, t) -> int | None:
        """The newest record of `t`, whatever its version."""

    def record_again(self, t) -> int:
        """A new record for `t`, changed where the capture could not see it."""

    def add_grad_op(self, func, inputs: list, produced: list) -> None:
        """Record an autograd.grad call as an op: its roots and inputs in, the gradients it returned out."""

    def too_deep(self) -> None:
        """Note that gradients deeper than the node budget are not recorded."""


class GradientHooks:
    """The full capture's backward side: runs each pass with hooks on its nodes and notes what they see."""

    def __init__(self, records: Records, tensors: RecordedTensors):
        self.records = records
        self.tensors = tensors
        self._node_entries: dict = {}  # autograd node -> [(output_nr, record)]
        self._indexed_upto = 0  # records indexed into _node_entries so far
        self._pass_leaves: list = []  # (record, leaf, copy or None): leaves the running backward pass reaches

    def run_pass(self, func, is_grad: bool, args, kwargs):
        """Run `backward()` / `autograd.grad` with hooks on its nodes; note the pass and its roots.

        Whatever goes wrong in gradmagic's own part becomes a note: the user's backward pass runs regardless.
        A backward called while a pass runs (from a node's backward, e.g. reentrant checkpointing) is part of
        that pass. Ops run inside a pass (gradient hooks, checkpoint's recomputation) are not recorded: torch
        pops the mode while this handler runs. Leaves they changed in place get a new record after the pass."""
        if inside_backward():
            return func(*args, **kwargs)
        if transform_active() or batched_backward(is_grad, args, kwargs):  # torch.func / vmap: wrapper tensors
            self.records.note("functorch")
            return func(*args, **kwargs)
        handles, pass_index = [], None
        self._pass_leaves = []
        try:
            with unseen_reads():
                root_recs, input_recs, pass_index = self._pass_start(is_grad, args, kwargs, handles)
        except Exception as error:  # noqa: BLE001 - never the user's problem
            self.records.note("hook", hook_error(error))
        try:
            out = func(*args, **kwargs)
        finally:
            with unseen_reads():
                self._pass_end(pass_index, handles)
        if is_grad and pass_index is not None:
            with unseen_reads():
                self._grad_outputs(func, pass_index, root_recs, input_recs, out)
        return out

    def _pass_start(self, is_grad: bool, args, kwargs, handles: list) -> tuple:
        """(records of the roots, of the inputs, pass index) of a pass about to run, its nodes hooked into `handles`."""
        roots, wrt = backward_tensors(is_grad, args, kwargs)
        root_recs = [self.tensors.resolve(t) for t in roots]
        input_recs = [self.tensors.resolve(t) for t in wrt]
        pass_index = len(self.records.passes)
        self.records.passes.append(("grad" if is_grad else "backward", root_recs, input_recs))
        try:
            looked = self.tensors.looked
            if any(not looked.fits(self.records.depths[rec]) for rec in root_recs):
                self.tensors.too_deep()
            else:
                self._hook_graph(roots, pass_index, handles)
        except Exception as error:  # noqa: BLE001 - the pass is noted all the same
            self.records.note("hook", hook_error(error))
        return root_recs, input_recs, pass_index

    def _pass_end(self, pass_index, handles: list) -> None:
        """The pass's hooks removed; leaves it changed in place recorded anew."""
        for handle in handles:
            handle.remove()
        if pass_index is not None:
            try:
                self._changed_in_backward(pass_index)
            except Exception as error:  # noqa: BLE001
                self.records.note("hook", hook_error(error))

    def _grad_outputs(self, func, pass_index: int, root_recs: list, input_recs: list, out) -> None:
        """autograd.grad hands the inputs' gradients back instead of running their AccumulateGrad nodes: record them."""
        try:
            self._on_grad(pass_index, list(enumerate(input_recs)), out)
            inputs = [item for pair in enumerate(root_recs + input_recs) for item in pair]
            self.tensors.add_grad_op(func, inputs, [g for g in out if g is not None])
        except Exception as error:  # noqa: BLE001
            self.records.note("hook", hook_error(error))

    def _hook_graph(self, roots, pass_index, handles: list) -> None:
        """Hooks (into `handles`) on every autograd node reachable from the roots that produced a recorded tensor.

        Ops built from several autograd nodes (`1/x` is reciprocal then mul) get hooks on their inner nodes too.
        The walk stops at the cell's frontier (the node of a tensor from before the run is hooked, not gone past),
        after a long run of unrecorded nodes, and where a chain would pass the node budget (depths.py): each node
        it looks at is marked."""
        self._index_nodes()
        looked, depths = self.tensors.looked, self.records.depths
        seen = set()
        stack = [(t.grad_fn, 0, 0) for t in roots if t.grad_fn is not None]  # (node, its depth, unrecorded in a row)
        while stack:
            node, depth, run = stack.pop()
            if node in seen:
                continue
            entries = self._node_entries.get(node)
            if entries:
                depth, run = max(depths[rec] for _, rec in entries), 0
            elif not looked.fits(depth) or run > MAX_UNKNOWN_RUN:
                self.tensors.too_deep()
                continue
            seen.add(node)
            looked.mark(node)
            looked.reach(depth)
            if self._hook_node(node, entries, pass_index, handles):
                stack += [(next_node, depth + 1, run + 1) for next_node, _ in node.next_functions
                          if next_node is not None and next_node not in seen]

    def _hook_node(self, node, entries, pass_index, handles: list) -> bool:
        """Hook one node the walk reached; whether the walk goes on below it."""
        if entries is None and hasattr(node, "variable"):  # AccumulateGrad: the gradient of a leaf
            self._hook_leaf(node, pass_index, handles)
            return False
        if entries:
            self._hook_op(node, entries, pass_index, handles)
            producers = self.records.producers
            return not all(producers[rec] is None for _, rec in entries)  # from before the run: the cell's frontier
        return True

    def _hook_leaf(self, node, pass_index, handles: list) -> None:
        rec = self.tensors.record_of(node.variable)
        if rec is not None:
            self._pass_leaves.append((rec, node.variable, self._small_copy(rec)))
            self._note_earlier_hook(rec, node.variable)
            handles.append(node.register_prehook(partial(self._on_grad, pass_index, [(0, rec)])))

    def _hook_op(self, node, entries, pass_index, handles: list) -> None:
        for _, rec in entries:
            self._note_earlier_hook(rec, deref(self.records.objs[rec]))
        edges = self._op_edges(node, entries[0][1])
        handles.append(node.register_hook(partial(self._on_node, pass_index, entries, edges.pop(node, ()))))
        handles.extend(inner.register_hook(partial(self._on_node, pass_index, (), inner_edges))
                       for inner, inner_edges in edges.items())

    def _changed_in_backward(self, pass_index: int) -> None:
        """Leaves changed in place while the pass ran (an optimizer step in a post-accumulate-grad hook): a new
        record for their new version, linked to the old one, and a note that the ops that did it are not recorded."""
        r, changed = self.records, []
        for rec, t, before in self._pass_leaves:
            if self.tensors.newest_record(t) == rec and (version_of(t) != r.versions[rec] or _differs(before, t)):
                if before is not None:
                    r.snapshots.setdefault(rec, before)  # the value the pass's forward computation used
                new = self.tensors.record_again(t)
                r.previous[new] = rec
                r.grads_before.pop(new, None)  # its .grad is this pass's, not one from before the run
                changed.append(rec)
        self._pass_leaves = []
        if changed:
            r.notes.append(f"{len(changed)} leaf tensor(s) changed in place during backward pass {pass_index + 1} "
                           f"(e.g. an optimizer step in a gradient hook); ops run inside a backward pass are not "
                           f"recorded, so their new values appear as new versions without the op that made them.")

    def _note_earlier_hook(self, rec, t) -> None:
        """A gradient hook on `t` that the code did not register while recorded (an earlier cell): noted, no line."""
        if t is not None and t._backward_hooks and not any(rec == noted for noted, _, _ in self.records.grad_hooks):
            self.records.grad_hooks.append((rec, None, "register_hook"))

    def _small_copy(self, rec):
        """A copy of a small recorded leaf with hooks of its own (they may change it in place during the pass:
        an optimizer step), else None: copying every leaf every pass would slow a training loop down."""
        t = self.records.objs[rec]
        if not isinstance(t, _TENSOR) or not (t._backward_hooks or getattr(t, "_post_accumulate_grad_hooks", None)):
            return None
        with torch_function_disabled():
            return t.detach().clone()

    def _index_nodes(self) -> None:
        r = self.records
        for rec in range(self._indexed_upto, len(r.grad_fns)):
            grad_fn = r.grad_fns[rec]
            if grad_fn is not None and grad_fn is not UNREAD:
                self._node_entries.setdefault(grad_fn, []).append((r.output_nrs[rec], rec))
        self._indexed_upto = len(r.grad_fns)

    def _op_edges(self, node, rec) -> dict:
        """{autograd node of the op: [(node input index, op, slot)]} for the op that made `rec`:
        which gradient each node sends down which recorded tensor->op edge."""
        r = self.records
        op = r.producers[rec]
        if op is None:
            return {}
        flat = r.inputs[op]
        inputs = list(zip(flat[::2], flat[1::2]))
        edges, used, stack, inner_seen = {}, set(), [node], {node}
        while stack and len(inner_seen) <= MAX_INNER_NODES:
            current = stack.pop()
            for i, (next_node, nr) in enumerate(current.next_functions):
                if next_node is None:
                    continue
                slot = self._matching_slot(next_node, nr, inputs, used)
                if slot is not None:
                    edges.setdefault(current, []).append((i, op, slot))
                elif next_node not in self._node_entries and not hasattr(next_node, "variable") \
                        and next_node not in inner_seen:
                    inner_seen.add(next_node)  # an inner node of the same op
                    self.tensors.looked.mark(next_node)
                    stack.append(next_node)
        return edges

    def _matching_slot(self, next_node, nr, inputs, used):
        """The first unused input slot whose recorded tensor is fed by (next_node, nr), else None."""
        r = self.records
        variable = getattr(next_node, "variable", None)
        for slot, source in inputs:
            if slot not in used and ((r.grad_fns[source] is next_node and r.output_nrs[source] == nr)
                                     or (variable is not None and deref(r.objs[source]) is variable)):
                used.add(slot)
                return slot
        return None

    # An exception in a hook would end the user's backward(): each hook catches its own and leaves a note.

    def _on_node(self, pass_index, entries, edges, grad_inputs, grad_outputs):
        try:
            if entries:
                self._on_grad(pass_index, entries, grad_outputs)
            if edges:
                flows = self.records.flows
                with torch_function_disabled():
                    for i, op, slot in edges:
                        grad = grad_inputs[i] if i < len(grad_inputs) else None
                        if grad is not None:
                            flows.append((pass_index, op, slot, *kept_gradient(grad, summary.norm_vector)))
        except Exception as error:  # noqa: BLE001
            self.records.note("hook", hook_error(error))
        return None

    def _on_grad(self, pass_index, entries, grad_outputs):
        try:
            grads = self.records.grads
            with unseen_reads():  # autograd threads may run with our mode active
                for output_nr, rec in entries:
                    grad = grad_outputs[output_nr] if output_nr < len(grad_outputs) else None
                    if grad is not None:
                        grads.append((pass_index, rec, *kept_gradient(grad)))
        except Exception as error:  # noqa: BLE001
            self.records.note("hook", hook_error(error))
        return None


def _differs(before, t) -> bool:
    """Whether a small tensor's value changed since `before` was copied (a write through `.data` keeps the version)."""
    if before is None or before.device.type != "cpu":  # comparing on a GPU would synchronise the host each pass
        return False
    with torch_function_disabled():
        return not torch.allclose(before, t.detach(), rtol=0, atol=0, equal_nan=True)
