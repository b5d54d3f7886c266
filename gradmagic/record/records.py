"""The capture's columns: what either recorder fills while code runs, and `trace.resolve` reads after it."""
from __future__ import annotations

import bisect
import weakref
from collections import Counter

import torch

from .summary import SMALL_NUMEL, shape_of
from .torchstate import version_of

__all__ = ["Records", "held", "deref", "add_note", "call_shapes", "passes_below", "NOTES"]

_REF = weakref.ref
_LONGEST_PERIOD = 2_000  # ops in one loop iteration whole_iterations looks for (a training step's ops, and more)
_TENSOR = torch.Tensor

#: What the capture says, once per run, about what it could not show: kind -> sentence.
NOTES = {
    "functorch": "torch.func transforms (vmap, grad, jacrev, ...) ran inside: their inner ops are not recorded, "
                 "only what goes in and what comes out.",
    "forward_ad": "Forward-mode AD (torch.autograd.forward_ad) ran: dual tensors show their primal values; "
                  "their tangents are not shown.",
    "meta": "Meta tensors have a shape but no data: their values and gradients show as 'meta'.",
    "sparse": "Sparse tensors show as dense values when small, else as 'sparse nnz=…' and the stats of all their "
              "elements (implicit zeros included).",
    "nested": "Nested tensors have no single shape: ragged dimensions show as *, values as stats over all their "
              "components.",
    "in_backward": "Names bound while a backward pass ran (in a custom Function's backward or a hook) are not "
                   "tracked: holding those tensors would change how autograd accumulates them into .grad.",
    "hook": "A gradient hook of gradmagic failed ({}); the backward pass ran unchanged, but gradients it would have "
            "seen are not shown.",
}


def held(t):
    """How a record keeps its tensor: the tensor itself while small (its value is read after the run), else a
    weak reference, so the capture keeps no large tensor alive."""
    return t if t.numel() <= SMALL_NUMEL else _REF(t)


def deref(obj):
    """A recorded tensor from its slot in `Records.objs` (None once a weakly held one has died)."""
    return obj() if type(obj) is _REF else obj


class Records:
    """Column lists filled while code runs: one entry per tensor version, per op, per gradient seen."""

    def __init__(self):
        # one entry per tensor version ("record")
        self.objs: list = []  # held(tensor), or None for an anonymous tensor of the lean capture
        self.versions: list = []
        self.shapes: list = []
        self.dtypes: list = []
        self.devices: list = []
        self.requires_grad: list = []
        self.grad_fns: list = []
        self.output_nrs: list = []
        self.producers: list = []
        self.depths: list = []  # longest chain of recorded ops leading to the tensor
        self.snapshots: dict = {}  # record -> copy taken before an in-place op overwrote a small tensor
        self.previous: dict = {}  # record -> the record of the same tensor before an in-place op
        # one entry per op; inputs are flat (slot, record, slot, record, ...) tuples, consts (slot, value, ...)
        self.funcs: list = []
        self.inputs: list = []
        self.consts: list = []
        self.outputs: list = []
        self.grad_enabled: list = []
        self.modules: list = []
        self.lines: list = []
        self.results: list = []
        self.records_at: list = []  # how many records there were when the op was added (its outputs included)
        # names, backward passes, gradients (pass, record, value, version-or-None, numel),
        # and gradient flows along tensor->op edges (pass, op, slot, value, version-or-None, numel)
        self.labels: list = []
        self.notes: list = []  # sentences for the user about what was not recorded
        self.grad_reads: list = []  # (record, line): `.grad` read on a non-leaf (always None there)
        self.grad_hooks: list = []  # (record, line, method): register_hook / register_post_accumulate_grad_hook
        self.grads_before: dict = {}  # record of an outside leaf -> its .grad when the run first saw it
        self.passes: list = []
        self.grads: list = []
        self.flows: list = []
        # nn.Module calls (module, input shapes, output shapes) as they end; optimizer calls (optimizer_hooks.py)
        self.module_calls: list = []
        self.optimizer_calls: list = []

    def add(self, obj, version, shape, dtype, device, requires_grad, grad_fn, output_nr, producer, depth) -> int:
        """A new record from its columns' values (off the hot path: the full recorder inlines this)."""
        for column, value in ((self.objs, obj), (self.versions, version), (self.shapes, tuple(shape)),
                              (self.dtypes, dtype), (self.devices, device), (self.requires_grad, requires_grad),
                              (self.grad_fns, grad_fn), (self.output_nrs, output_nr), (self.producers, producer),
                              (self.depths, depth)):
            column.append(value)
        return len(self.objs) - 1

    def ops_within(self, nodes: int) -> int:
        """How many of the first ops, with the records made up to them, make at most `nodes` graph nodes."""
        made = self.records_at
        return bisect.bisect_right(range(len(made)), nodes, key=lambda op: op + 1 + made[op])

    def whole_iterations(self, ops: int) -> int:
        """The largest op count <= `ops` that ends a whole iteration of the loop the first `ops` ops end in (`ops`
        itself when they end in no loop): a cut there draws as a folded loop, not a half iteration's loose tensors.

        The loop's body is the shortest period its ops' (line, function) repeat with over the last two periods; an
        iteration starts as the first of them did: the first op of the body's kind opens it (an optimizer's first
        step, which makes its state, may differ from the later ones)."""
        keys = list(zip(self.lines[:ops], map(id, self.funcs[:ops])))  # ids: any function, hashable or not
        period = next((p for p in range(1, min(ops // 2, _LONGEST_PERIOD) + 1)
                       if keys[ops - p - 1] == keys[ops - 1] and keys[ops - 2 * p:ops - p] == keys[ops - p:]), None)
        if period is None:
            return ops
        body = set(keys[ops - period:])
        first = next(i for i, key in enumerate(keys) if key in body)
        opening = keys[first:first + period]
        ends = range(max(ops - period + 1, first + period), ops + 1)  # a cut there keeps one iteration ending at it
        return max(ends, key=lambda end: (_agreement(keys[end - period:end], opening), end), default=ops)

    def keep_first(self, ops: int) -> Counter:
        """Drop every op from `ops` on, and what only they made; the dropped ops counted as {(line, name): n}.

        Also mends columns an interrupt left uneven (an op or record half appended)."""
        ops = min(ops, *map(len, self._op_columns()))
        if len(self.records_at) < ops:  # filled by another recorder (lean): nothing to cut by
            return Counter()
        recs = min(self.records_at[ops - 1] if ops else 0, *map(len, self._record_columns()))
        dropped = Counter((line, getattr(func, "__name__", str(func)))
                          for func, line in zip(self.funcs[ops:], self.lines[ops:]))
        for column in self._op_columns():
            del column[ops:]
        for column in self._record_columns():
            del column[recs:]
        self._keep_records_below(recs)
        self._keep_passes_within(recs, ops)
        return dropped

    def _op_columns(self) -> tuple:
        return (self.funcs, self.inputs, self.consts, self.outputs, self.grad_enabled, self.modules, self.lines,
                self.results, self.records_at)

    def _record_columns(self) -> tuple:
        return (self.objs, self.versions, self.shapes, self.dtypes, self.devices, self.requires_grad, self.grad_fns,
                self.output_nrs, self.producers, self.depths)

    def _keep_records_below(self, recs: int) -> None:
        for table in (self.snapshots, self.previous, self.grads_before):
            for rec in [rec for rec in table if rec >= recs]:
                del table[rec]
        self.labels[:] = [label for label in self.labels if label[0] < recs]
        self.grad_reads[:] = [read for read in self.grad_reads if read[0] < recs]
        self.grad_hooks[:] = [hook for hook in self.grad_hooks if hook[0] < recs]

    def _keep_passes_within(self, recs: int, ops: int) -> None:
        """The backward passes whose roots and inputs are all kept, with their gradients on kept records and ops."""
        kept = passes_below(self.passes, recs)
        del self.passes[kept:]
        self.grads[:] = [g for g in self.grads if g[0] < kept and g[1] < recs]
        self.flows[:] = [f for f in self.flows if f[0] < kept and f[1] < ops]
        self.optimizer_calls[:] = [[*call[:4], None if call[4] is None else min(call[4], ops), *call[5:]]
                                   for call in self.optimizer_calls if call[3] < ops]

    def note(self, kind: str, *details) -> None:
        """Add the sentence NOTES[kind] (filled with `details`) unless a note of that kind is already there."""
        add_note(self.notes, kind, *details)

    def holds(self, rec: int, t) -> bool:
        """Whether record `rec` is `t` at its current version."""
        return deref(self.objs[rec]) is t and self.versions[rec] == version_of(t)

    def hold(self, rec: int, t) -> None:
        """Make record `rec` keep `t` (and its version), for its value after the run."""
        self.objs[rec] = held(t)
        self.versions[rec] = version_of(t)


def _agreement(ops: list, opening: list) -> int:
    """How many ops, from the first, one iteration shares with the loop's first iteration."""
    return next((i for i, (a, b) in enumerate(zip(ops, opening)) if a != b), min(len(ops), len(opening)))


def passes_below(passes: list, limit: int) -> int:
    """How many backward passes, from the first, start from and differentiate by indices below `limit` only
    (records, or the lean capture's bindings): those a cut at `limit` keeps."""
    return next((i for i, (_, roots, inputs) in enumerate(passes) if any(x >= limit for x in (*roots, *inputs))),
                len(passes))


def add_note(notes: list, kind: str, *details) -> None:
    """Append NOTES[kind] (filled with `details`) to `notes` unless a note of that kind is already there."""
    head = NOTES[kind].split("{")[0]
    if not any(note.startswith(head) for note in notes):
        notes.append(NOTES[kind].format(*details))


def call_shapes(value) -> tuple:
    """The shapes of the tensors in a module call's arguments or output (one level of tuples and lists deep)."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    return tuple(shape_of(t) for t in items if isinstance(t, _TENSOR))
