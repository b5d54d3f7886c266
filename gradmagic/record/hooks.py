"""Capture stage, gradients: hooks on the autograd nodes a backward pass runs, removed right after it.

One post-hook per node sees both the gradient that reached its outputs (the recorded tensors', non-leaves included,
with no `retain_grad`) and the gradient it sends to each input: the flow along each tensor->op edge.
"""
from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import torch

from . import summary
from .depths import MAX_NODE_DEPTH, Looked
from .records import deref
from .torchstate import functorch_wrapped, inside_backward, torch_function_disabled, transform_active, \
    unseen_by_modes, unseen_reads, version_of

__all__ = ["GradientHooks", "kept_gradient", "backward_tensors", "iterators_as_tuples", "batched_backward", "hook_error",
           "UNREAD", "MAX_INNER_NODES", "MAX_NODE_DEPTH"]

MAX_INNER_NODES = 8  # autograd nodes one recorded op may expand to (`1/x`: reciprocal and mul)
# Unrecorded nodes in a row the hook walk goes through (one op's inner nodes, an LSTM's steps) before it stops.
MAX_UNKNOWN_RUN = 1_000
_TENSOR = torch.Tensor


class _Unread:
    """Stands for the grad_fn of a non-leaf past the node budget: known to exist, not looked at."""


UNREAD = _Unread()


class GradientHooks:
    """The Recorder's backward side: it needs `records`, `_lookup`, `_resolve`, `_outputs`, `_add_op`."""

    _looked: Looked | None = None

    @property
    def looked(self) -> Looked:
        """The autograd nodes this capture looked at (depths.py), counted from its first one."""
        if self._looked is None:
            self._looked = Looked()
        return self._looked

    def _backward(self, func, is_grad: bool, args, kwargs):
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
        root_recs = [self._resolve(t) for t in roots]
        input_recs = [self._resolve(t) for t in wrt]
        pass_index = len(self.records.passes)
        self.records.passes.append(("grad" if is_grad else "backward", root_recs, input_recs))
        try:
            looked = self.looked
            if any(not looked.fits(self.records.depths[rec]) for rec in root_recs):
                self.too_deep()
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
            self._add_op(func, inputs, (), self._outputs([g for g in out if g is not None], ()), None)
        except Exception as error:  # noqa: BLE001
            self.records.note("hook", hook_error(error))

    def _hook_graph(self, roots, pass_index, handles: list) -> None:
        """Hooks (into `handles`) on every autograd node reachable from the roots that produced a recorded tensor.

        One post-hook per node sees both the gradient that reached its outputs (the recorded tensors')
        and the gradient it sends to each input: the flow along each tensor->op edge. Ops built from several
        autograd nodes (`1/x` is reciprocal then mul) get hooks on their inner nodes too. The walk stops at the
        cell's frontier (the node of a tensor from before the run is hooked, not gone past), after a long run of
        unrecorded nodes, and where a chain would pass the node budget (depths.py): each node it looks at is marked.
        """
        self._index_nodes()
        looked, depths, producers = self.looked, self.records.depths, self.records.producers
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
                self.too_deep()
                continue
            seen.add(node)
            looked.mark(node)
            looked.reach(depth)
            if entries is None and hasattr(node, "variable"):  # AccumulateGrad: the gradient of a leaf
                self._hook_leaf(node, pass_index, handles)
                continue
            if entries:
                self._hook_op(node, entries, pass_index, handles)
                if all(producers[rec] is None for _, rec in entries):  # from before the run: the cell's frontier
                    continue
            for next_node, _ in node.next_functions:
                if next_node is not None and next_node not in seen:
                    stack.append((next_node, depth + 1, run + 1))

    def _hook_leaf(self, node, pass_index, handles: list) -> None:
        rec = self._lookup(node.variable)
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
            if self._latest.get(id(t)) == rec and (version_of(t) != r.versions[rec] or _differs(before, t)):
                if before is not None:
                    r.snapshots.setdefault(rec, before)  # the value the pass's forward computation used
                new = self._record(t, None)
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
                    self.looked.mark(next_node)
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
            for output_nr, rec in entries:
                grad = grad_outputs[output_nr] if output_nr < len(grad_outputs) else None
                if grad is not None:  # autograd threads may run with our mode active
                    grads.append((pass_index, rec, *unseen_by_modes(kept_gradient, grad)))
        except Exception as error:  # noqa: BLE001
            self.records.note("hook", hook_error(error))
        return None


def _differs(before, t) -> bool:
    """Whether a small tensor's value changed since `before` was copied (a write through `.data` keeps the version)."""
    if before is None or before.device.type != "cpu":  # comparing on a GPU would synchronise the host each pass
        return False
    with torch_function_disabled():
        return not torch.allclose(before, t.detach(), rtol=0, atol=0, equal_nan=True)


def kept_gradient(grad, summarise=summary.stats_vector) -> tuple:
    """(value, None, numel): a copy when small (read after the run, all at once), a device-side summary vector
    when large. Never the gradient itself: autograd accumulates into a gradient no one else holds, in place, so
    holding one would change the strides and versions of the user's `.grad` tensors."""
    numel = grad.numel()
    if numel > summary.SMALL_NUMEL:
        return summarise(grad), None, numel
    return grad.detach().clone(), None, numel


def backward_tensors(is_grad: bool, args, kwargs) -> tuple[list, list]:
    """The tensors a backward()/autograd.grad call starts from, and those autograd.grad differentiates by."""
    roots = _tensors_in(args[0] if args else kwargs.get("tensors", kwargs.get("outputs")))
    wrt = _tensors_in(args[1] if len(args) > 1 else kwargs.get("inputs")) if is_grad else []
    return roots, wrt


def iterators_as_tuples(args, kwargs) -> tuple:
    """The call's arguments with iterators (a generator such as `model.parameters()`) read into tuples, so that
    both gradmagic and torch can go through them."""
    def read(value):
        return tuple(value) if isinstance(value, Iterator) and not isinstance(value, _TENSOR) else value

    return tuple(read(a) for a in args), {k: read(v) for k, v in kwargs.items()}


def batched_backward(is_grad: bool, args, kwargs) -> bool:
    """Whether a backward call runs batched (`is_grads_batched`, or vmap wrappers among its tensors): its gradients
    are functorch wrappers, not values gradmagic can keep."""
    if is_grad and (kwargs.get("is_grads_batched") or (len(args) > 7 and args[7])):
        return True
    arguments = [*args, *kwargs.values()]
    return any(functorch_wrapped(t) for t in _tensors_in_all(arguments))


def hook_error(error: BaseException) -> str:
    """`RuntimeError: what went wrong`, on one short line."""
    text = f"{type(error).__name__}: {error}".splitlines()[0]
    return text if len(text) <= 160 else text[:159] + "…"


def _tensors_in_all(arguments) -> list:
    """The tensors among call arguments, one level of sequences deep."""
    out = []
    for arg in arguments:
        if isinstance(arg, _TENSOR):
            out.append(arg)
        elif isinstance(arg, (list, tuple)):
            out += [t for t in arg if isinstance(t, _TENSOR)]
    return out


def _tensors_in(tensors) -> list:
    """The tensors among a backward call's `tensors`/`inputs` argument (one tensor or a sequence)."""
    if tensors is None:
        return []
    if isinstance(tensors, _TENSOR):
        return [tensors]
    return [t for t in tensors if isinstance(t, _TENSOR)]
