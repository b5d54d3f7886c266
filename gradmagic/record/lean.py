"""Capture stage, lean: no per-op recording; torch's own autograd graph is the record of the ops.

While the code runs, each assignment keeps the tensor it bound (its `grad_fn` keeps the graph below it alive), a
hook on its autograd node sees its gradient, and `backward()`/`autograd.grad` note their passes. walk.py reads the
autograd graph once, after the run, when `read()` is called: the same `Records` as `recorder.Recorder` fills, so
every later stage works unchanged. What it cannot see: ops off the gradient's path (constants, `.item()`,
`detach`, no_grad code), values of anonymous intermediates, and the gradient flowing along each edge.
"""
from __future__ import annotations

import weakref
from contextlib import ExitStack
from functools import partial, wraps

import torch

from . import summary
from .backward_calls import backward_tensors, batched_backward, frees_graph, hook_error, iterators_as_tuples, \
    kept_gradient
from .bindings import Bindings, Seen
from .budget import Meter, as_budget, coarse_note
from .depths import MAX_NODE_DEPTH, UNREAD, looked_elsewhere
from .frames import caller_line
from .namespace import leaves_requiring_grad, leaves_with_grad
from .naming import item_labels
from .optimizer_hooks import OptimizerCalls
from .patches import hook_module_calls, patch
from .records import Records, add_note, call_shapes
from .torchstate import forward_ad_active, gradient_accumulator, inside_backward, transform_active, unseen_by_modes
from .walk import GraphReader

__all__ = ["LeanRecorder"]

_TENSOR = torch.Tensor
_next_sequence_nr = torch._C._autograd._get_sequence_nr
# Looking at a node makes torch 2.13 keep its Python object, and freeing a long chain of such nodes recurses
# (depths.py): between two backward passes that free their graphs, at most this many are looked at while the code
# runs, fewer when earlier captures' looked-at nodes still live; the graph reader counts them in its own budget.
_LOOK_BUDGET = MAX_NODE_DEPTH // 2
# A node of torch's graph costs post-processing more than one the full capture records (module spans, stand-in
# optimizer steps, more edges a node): after a 60-s MLP training loop the lean capture took 3.7 s in a kernel
# where the full one took 2.3 s for as many nodes (the reading included).
_NODE_COST = 1.8
# Frames outside gradmagic from a backward call to the code's line: Tensor.backward, the code's line (and slack).
_BACKWARD_FRAMES = 4


class LeanRecorder:
    """Keeps what the code binds and the gradients that reach it; reads the autograd graph after the run."""

    lean = True

    def __init__(self, filename: str = "<gradmagic>", budget=None, namespace: dict | None = None):
        self.filename = filename
        self.meter = Meter(as_budget(budget))  # its ops: the tensors bound and kept
        self._namespace = namespace if namespace is not None else {}  # its leaves get gradient hooks each pass
        self._coarse = False  # past the budget: bindings are counted per line, not kept
        self._forget()
        self._room = (_readable_nodes(self.meter.budget), "seconds")  # graph nodes to read, and why
        self._undo = ExitStack()  # what start() installed in torch

    def _forget(self) -> None:
        """Empty bindings: nothing the code bound is kept."""
        self.bindings = Bindings()
        b = self.bindings  # its lists, by short names for the hot path
        self._seen, self._labels, self._grads, self._passes, self._grads_before = \
            b.seen, b.labels, b.grads, b.passes, b.grads_before
        self._by_id: dict = {}  # id(tensor) -> index in bindings.seen of its latest binding
        self._pass: int | None = None
        self._looked_at = 0  # autograd nodes looked at since a backward pass last freed a graph
        self._look_budget: int | None = None  # _LOOK_BUDGET less what earlier live captures looked at (once)
        self._handles: list = []  # pre-hooks on the bound tensors' nodes, removed by stop()
        self._open: list = []  # indices in bindings.spans of the module calls under way
        self._new_leaves: list = []  # weak references to the leaves bound since the last pass
        self._pass_handles: list = []  # hooks on leaves' gradient accumulators, for the running pass only
        self._records: Records | None = None
        self._reader: GraphReader | None = None

    @property
    def passes(self) -> int:
        """How many backward passes have run so far."""
        return len(self._passes)

    # ---- while the code runs: the hot path ------------------------------------------------------

    def label(self, value, info) -> None:
        """Keep the tensor(s) an assignment just bound: `info` is (name, line, expression)."""
        if isinstance(value, _TENSOR):
            if self._coarse or self.meter.spent(len(self._seen)):  # the names are read as the run ends (finals.py)
                self._coarse = True
                self.meter.count(info[1], info[0])
                return
            if transform_active():  # an assignment inside a function torch.func transforms: a wrapper tensor
                add_note(self.bindings.notes, "functorch")
                return
            if inside_backward():  # a custom backward's `grad_input = ...`: autograd steals it only if unshared
                add_note(self.bindings.notes, "in_backward")
                return
            if forward_ad_active():
                add_note(self.bindings.notes, "forward_ad")
            self._labels.append((unseen_by_modes(self._see, value, info[1]), info))
        elif isinstance(value, (list, tuple)):  # ints and other values bound in a loop stop here, cheaply
            for item, item_info in item_labels(value, info):
                self.label(item, item_info)

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
            if t.requires_grad:
                self._new_leaves.append(weakref.ref(t))
        elif self._looked_at < self._may_look():
            self._looked_at += 1
            grad_fn = t.grad_fn  # its pre-hook sees the gradient of each of its outputs
            self._handles.append(grad_fn.register_prehook(partial(self._on_grads, index, t.output_nr)))
        else:
            grad_fn = self._past_budget()
        self._seen.append(Seen(t, grad_fn, line))
        self._by_id[id(t)] = index
        return index

    def _may_look(self) -> int:
        """How many autograd nodes the run may look at between two passes that free their graphs."""
        if self._look_budget is None:
            self._look_budget = max(0, min(_LOOK_BUDGET, MAX_NODE_DEPTH - looked_elsewhere()))
        return self._look_budget

    def _past_budget(self):
        """UNREAD, and a note the first time: see _LOOK_BUDGET."""
        note = (f"More than {_LOOK_BUDGET:,} tensors were named without a backward pass in between; the lean capture "
                f"stopped reading their autograd graph there (torch 2.13 can crash freeing a long chain of nodes once "
                f"they were looked at from Python).")
        if note not in self.bindings.notes:
            self.bindings.notes.append(note)
        return UNREAD

    def _hook_leaves(self) -> None:
        """Pre-hooks, for this pass, on the gradient accumulators of the leaves bound since the last pass and of
        the namespace's leaves and module parameters: each one's own gradient (not the accumulated .grad).
        Removed after the pass: an accumulator holds its leaf, so keeping one would keep every leaf alive."""
        seen = set()
        for t in (*(ref() for ref in self._new_leaves), *leaves_requiring_grad(self._namespace)):
            accumulator = None if t is None or id(t) in seen else gradient_accumulator(t)
            if accumulator is not None:
                seen.add(id(t))
                self._pass_handles.append(accumulator.register_prehook(partial(self._on_leaf_grad, weakref.ref(t))))
        self._new_leaves = []

    def _on_leaf_grad(self, ref, grad_outputs):
        try:  # an exception here would end the user's backward(): a note instead
            t, grad = ref(), grad_outputs[0]
            if t is not None and grad is not None and self._pass is not None:  # its binding of this version
                index = unseen_by_modes(self._see, t, None)
                self._grads.append((self._pass, index, *unseen_by_modes(kept_gradient, grad, summary.norm_vector)))
        except Exception as error:  # noqa: BLE001
            add_note(self.bindings.notes, "hook", hook_error(error))

    def _on_grads(self, index, output_nr, grad_outputs):
        try:  # an exception here would end the user's backward(): a note instead
            grad = grad_outputs[output_nr]
            if grad is not None and self._pass is not None:  # a large gradient keeps its norm only: one reduction
                self._grads.append((self._pass, index, *unseen_by_modes(kept_gradient, grad, summary.norm_vector)))
        except Exception as error:  # noqa: BLE001
            add_note(self.bindings.notes, "hook", hook_error(error))

    def _backward(self, func, is_grad: bool, *args, **kwargs):
        """`backward()` / `autograd.grad` with the pass and its roots noted; the hooks see the gradients.
        One called while a pass runs (reentrant checkpointing's, inside its node's backward) is part of that pass."""
        if inside_backward():
            return func(*args, **kwargs)
        if self._coarse:  # past the budget: a plain pass (the .grad of the names is read as the run ends)
            self.meter.count(caller_line(self.filename, _BACKWARD_FRAMES), func.__name__)
            return func(*args, **kwargs)
        args, kwargs = iterators_as_tuples(args, kwargs)  # `inputs=model.parameters()` is read once
        if transform_active() or batched_backward(is_grad, args, kwargs):  # torch.func / vmap: wrapper tensors
            add_note(self.bindings.notes, "functorch")
            return func(*args, **kwargs)
        try:  # gradmagic's bookkeeping never stops the user's backward(): a note instead
            self._start_pass(is_grad, args, kwargs)
        except Exception as error:  # noqa: BLE001
            add_note(self.bindings.notes, "hook", hook_error(error))
            return func(*args, **kwargs)
        try:
            out = func(*args, **kwargs)
        finally:
            for handle in self._pass_handles:
                handle.remove()
            self._pass_handles = []
        if frees_graph(is_grad, args, kwargs):
            self._looked_at = 0
        if is_grad:  # autograd.grad hands the inputs' gradients back instead of accumulating them
            self._grads.extend((self._pass, index, *unseen_by_modes(kept_gradient, g))
                               for index, g in zip(self._passes[-1][2], out) if g is not None)
        return out

    def _start_pass(self, is_grad: bool, args, kwargs) -> None:
        """Note a pass, its roots and (autograd.grad) inputs; hook the parameters of modules bound since."""
        roots, wrt = backward_tensors(is_grad, args, kwargs)
        line = caller_line(self.filename, _BACKWARD_FRAMES)
        if not self._passes:
            unseen_by_modes(self._note_grads_before)
        unseen_by_modes(self._hook_leaves)
        self._pass = len(self._passes)
        self._passes.append(("grad" if is_grad else "backward", [unseen_by_modes(self._see, t, line) for t in roots],
                             [unseen_by_modes(self._see, t, line) for t in wrt]))

    def _note_grads_before(self) -> None:
        """Before the first pass: the .grad of each leaf known so far (the code may have reset it since the start)."""
        for key, (t, _) in list(self._grads_before.items()):
            if not t.is_leaf or t.grad is None:  # an in-place op can give a leaf a grad_fn
                del self._grads_before[key]
            else:  # it may accumulate in place
                self._grads_before[key] = (t, kept_gradient(t.grad))

    def _enter_module(self, module, args):
        spans = self.bindings.spans
        self._open.append(len(spans))
        spans.append([module, _next_sequence_nr(), None])

    def _exit_module(self, module, args, output):
        spans = self.bindings.spans
        if self._open and spans[self._open[-1]][0] is module:
            spans[self._open.pop()][2] = _next_sequence_nr()
        if self._coarse:
            return
        self.bindings.module_calls.append((module, unseen_by_modes(call_shapes, args),
                                           unseen_by_modes(call_shapes, output)))

    # ---- start and stop -----------------------------------------------------------------------

    def start(self) -> None:
        """Note each nn.Module call, optimizer call and backward pass, and the leaves' .grad before (undone by stop(),
        also when start() itself fails halfway)."""
        for t in unseen_by_modes(leaves_with_grad, self._namespace):
            self._grads_before[id(t)] = (t, None)
        with ExitStack() as undo:
            hook_module_calls(undo, self._enter_module, self._exit_module)
            for name, is_grad in (("backward", False), ("grad", True)):
                original = getattr(torch.autograd, name)
                patch(undo, torch.autograd, name, wraps(original)(partial(self._backward, original, is_grad)))
            optimizers = OptimizerCalls(self.filename, _no_ops)
            self.bindings.optimizer_calls = optimizers.calls
            optimizers.start(undo)
            self._undo = undo.pop_all()

    def stop(self) -> None:
        """Remove everything start() installed and the hooks on bound tensors' nodes; forget the namespace."""
        self._undo.close()
        for handle in self._handles:
            handle.remove()
        self._handles, self._namespace, self._new_leaves = [], {}, []

    # ---- after the run ------------------------------------------------------------------------

    def fit(self, seconds: float, reason: str = "seconds") -> None:
        """Keep the bindings, and below them the graph nodes, post-processing gets through in `seconds` (the graph
        is read by `read()`, after this); the rest are counted per line."""
        budget = self.meter.budget
        self._room = (_readable_nodes(budget, seconds), reason)
        keep = min(budget.ops, self._room[0])
        if len(self._seen) > keep:
            self._keep_first(keep)
            self.meter.over = reason

    def _keep_first(self, n: int) -> None:
        """Forget the bindings past the first `n`, counting them on their lines."""
        self.meter.counts.update(self.bindings.keep_first(n))
        self._by_id = {key: index for key, index in self._by_id.items() if index < n}

    def read(self) -> Records:
        """The autograd graph below everything the code bound, read into the recorder's columns (once, after fit)."""
        if self._records is None:
            self._reader = GraphReader(self.bindings, self._room[0])
            self._records = self._reader.read()
            self._note_coarse()
        return self._records

    def _note_coarse(self) -> None:
        """One note, first, on the bindings left out (past the budget, or with no room for the graph below them)."""
        if self._reader.dropped:
            self.meter.counts.update(self._reader.dropped)
            self.meter.over = self.meter.over or self._room[1]
        note = coarse_note(len(self._seen), self.meter.counts, self.meter.over, "bindings")
        if note:
            self._records.notes.insert(0, note)

    def lookup(self, t) -> int | None:
        """The record of a tensor at its current version, if recorded (for naming after the run)."""
        self.read()
        return self._reader.lookup(t, self._by_id.get(id(t)))

    def release(self) -> None:
        """Forget every tensor, autograd node and module, so the capture keeps nothing alive."""
        self._forget()
        self._namespace = {}
        self._records = Records()


def _readable_nodes(budget, seconds: float | None = None) -> int:
    """Nodes of torch's graph the read may make: those post-processing gets through in `seconds` (the budget's)."""
    return int(budget.detail_nodes(seconds) / _NODE_COST)


def _no_ops() -> int:
    """The lean capture records no ops while the code runs: an optimizer call spans none."""
    return 0
