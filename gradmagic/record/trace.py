"""After the run: the recorder's columns resolved into a Trace of plain Python (values copied once, names attached)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from . import summary
from .calls import EXIT_NAMES
from .depths import Unread
from .finals import bind_finals, grad_names
from .namespace import NamespaceIndex
from .records import deref
from .recorder import Recorder
from .torchstate import torch_function_disabled, version_of

__all__ = ["Trace", "resolve", "LEAN_HINT_OPS"]

#: A full capture of more ops than this suggests the lean one in its notes.
LEAN_HINT_OPS = 20_000


@dataclass
class Trace:
    """Everything a run did to tensors, as plain Python columns indexed by record (tensor version) and op."""

    source: str = ""
    lean: bool = False  # from the lean capture (lean.py): the autograd graph only
    # per record
    shapes: list = field(default_factory=list)
    dtypes: list = field(default_factory=list)
    devices: list = field(default_factory=list)
    requires_grad: list = field(default_factory=list)
    grad_fns: list = field(default_factory=list)  # class name of the autograd node, None for leaves, "unrecorded"
    versions: list = field(default_factory=list)
    producers: list = field(default_factory=list)
    values: list = field(default_factory=list)
    stats: list = field(default_factory=list)
    grads: list = field(default_factory=list)
    grad_stats: list = field(default_factory=list)
    previous: dict = field(default_factory=dict)
    names: dict = field(default_factory=dict)  # record -> [(name, line, expression), ...]
    params: dict = field(default_factory=dict)  # record -> module path
    pass_grads: dict = field(default_factory=dict)  # record -> {pass: value or stats}
    flows: dict = field(default_factory=dict)  # (op, slot) -> {pass: gradient sent along that tensor->op edge}
    grads_before: dict = field(default_factory=dict)  # record -> .grad of a leaf when the run first saw it
    grad_reads: list = field(default_factory=list)  # (record, line) of `.grad` read on a non-leaf
    bindings: dict = field(default_factory=dict)  # name -> record it holds when the run ended
    leaf_flags: dict = field(default_factory=dict)  # record -> is_leaf as the run ended (named tensors)
    grad_hooks: list = field(default_factory=list)  # (record, line, method) of gradient hooks the code registered
    notes: list = field(default_factory=list)  # what the capture could not record, in words
    coarse: bool = False  # some ops (or bindings) past the budget were only counted
    past_detail: set = field(default_factory=set)  # records of names' tensors made by ops only counted
    failure: str | None = None  # the line saying gradmagic's own failure made this Trace empty
    # per op
    funcs: list = field(default_factory=list)
    op_kinds: list = field(default_factory=list)  # op / exit / grad
    inputs: list = field(default_factory=list)  # [(slot, record), ...]
    consts: list = field(default_factory=list)  # [(slot, value), ...]
    outputs: list = field(default_factory=list)
    grad_enabled: list = field(default_factory=list)
    modules: list = field(default_factory=list)  # module path or None
    lines: list = field(default_factory=list)
    results: list = field(default_factory=list)
    optimizers: list = field(default_factory=list)  # index in optimizer_calls of the call the op ran in, or None
    # modules and optimizers
    module_classes: dict = field(default_factory=dict)  # module path -> class name (`model.0` -> `Linear`)
    module_calls: list = field(default_factory=list)  # {"module", "class", "inputs", "outputs"} as each call ended
    optimizer_calls: list = field(default_factory=list)  # {"call", "name", "class", "settings", "line", "updated"}
    # per backward pass: (kind, root records, input records)
    passes: list = field(default_factory=list)

    @property
    def num_tensors(self) -> int:
        return len(self.shapes)


def resolve(recorder: Recorder, namespace: dict, source: str = "", finals: list = ()) -> Trace:
    """Turn what the recorder saw into a Trace, then make it drop every tensor reference.

    `finals` (finals.snapshot of the namespace as the run ended) decide what each name holds: its record,
    a new one where the tensor changed unseen (lean capture, an op outside the capture), and its `.grad`."""
    with torch_function_disabled():  # the lean capture reads torch's graph here: no mode of the user's sees it
        r = recorder.read()
        index = NamespaceIndex(namespace)
        recorded = len(r.objs)
        bound = bind_finals(recorder, r, finals)
        trace = Trace(
            source=source,
            lean=recorder.lean,
            shapes=r.shapes,
            dtypes=_texts(r.dtypes, lambda d: str(d).removeprefix("torch.")),
            devices=_texts(r.devices, str),
            requires_grad=r.requires_grad,
            grad_fns=_texts([type(g) for g in r.grad_fns], _node_class_text),
            notes=list(r.notes),
            versions=r.versions,
            producers=r.producers,
            previous=dict(r.previous),
        )
        _attach_values(trace, r)
        _attach_grads(trace, r)
        _attach_finals(trace, bound)
        _attach_names(trace, r, index, bound)
        _attach_ops(trace, r, index)
        _attach_optimizers(trace, r, index)
        trace.passes = list(r.passes)
        trace.coarse = bool(recorder.meter.counts)
        if trace.coarse:
            trace.past_detail = {rec for _, rec in bound.values() if rec >= recorded}
    if not recorder.lean and len(r.funcs) > LEAN_HINT_OPS:
        trace.notes.append(f"The full capture recorded {len(r.funcs):,} ops (tens of µs each); %%autograd --lean "
                           f"(gradmagic.run(..., lean=True)) reads torch's autograd graph instead, at a fraction "
                           f"of the cost.")
    recorder.release()
    return trace


def _texts(items: list, text) -> list:
    """`text(item)` for each item, computed once per distinct item (dtypes, devices, node classes repeat)."""
    cache = {}
    return [cache[item] if item in cache else cache.setdefault(item, text(item)) for item in items]


def _node_class_text(cls: type) -> str | None:
    """The autograd node's class name (`MulBackward0`); None for a leaf, "unrecorded" past the node budget."""
    return None if cls is type(None) else "unrecorded" if cls is Unread else cls.__name__


def _current(r, rec):
    """The tensor of a record if it is still alive and unchanged, else None."""
    t = deref(r.objs[rec])
    return t if t is not None and version_of(t) == r.versions[rec] else None


def _attach_values(trace: Trace, r) -> None:
    small, large, numels = [], [], []
    for rec, obj in enumerate(r.objs):
        if obj is None:  # an anonymous tensor of the lean capture: no value kept
            small.append(None)
            large.append(None)
            numels.append(0)
            continue
        snapshot = r.snapshots.get(rec)
        t = _current(r, rec)
        is_small = isinstance(obj, torch.Tensor)
        small.append(snapshot if snapshot is not None else t if is_small else None)
        large.append(summary.stats_vector(t) if t is not None and not is_small else None)
        numels.append(math.prod(r.shapes[rec]))
    trace.values = summary.to_python(small)
    trace.stats = summary.stats_dicts(large, numels)


def _attach_grads(trace: Trace, r) -> None:
    for (pass_index, rec, *_), value in zip(r.grads, _gradient_values([g[2:] for g in r.grads])):
        trace.pass_grads.setdefault(rec, {})[pass_index] = value
    for (pass_index, op, slot, *_), value in zip(r.flows, _gradient_values([f[3:] for f in r.flows])):
        trace.flows.setdefault((op, slot), {})[pass_index] = value
    trace.grads_before = dict(zip(r.grads_before, _gradient_values(list(r.grads_before.values()))))
    trace.grad_reads = list(r.grad_reads)
    trace.grad_hooks = list(getattr(r, "grad_hooks", ()))
    leaf_grads = [None if obj is None or grad_fn is not None else _leaf_grad(r, rec)
                  for rec, (obj, grad_fn) in enumerate(zip(r.objs, r.grad_fns))]
    small = [g if g is not None and summary.is_small(g) else None for g in leaf_grads]
    large = [summary.stats_vector(g) if g is not None and not summary.is_small(g) else None for g in leaf_grads]
    numels = [0 if g is None else g.numel() for g in leaf_grads]
    trace.grads, trace.grad_stats = summary.to_python(small), summary.stats_dicts(large, numels)


def _gradient_values(kept: list) -> list:
    """Python values (small) or stats dicts (large) for the recorder's (value, version, numel) triples."""
    small = summary.SMALL_NUMEL
    values = [v if n <= small and (version is None or version_of(v) == version) else None for v, version, n in kept]
    vectors = [v if n > small else None for v, _, n in kept]
    stats = summary.stats_dicts(vectors, [n for _, _, n in kept])
    return [s if s is not None else v for v, s in zip(summary.to_python(values), stats)]


def _leaf_grad(r, rec):
    """The accumulated .grad a user sees on a leaf, for the leaf's current version only."""
    t = _current(r, rec)
    return None if t is None or not (t.is_leaf or t.retains_grad) else t.grad


# ---- what the names hold when the run ended -------------------------------------------------------------


def _attach_finals(trace: Trace, bound: dict) -> None:
    """The values and `.grad` of the named tensors as they were when the run ended."""
    finals = [final for final, _ in bound.values()]
    recs = [rec for _, rec in bound.values()]
    values = summary.to_python([f.value for f in finals])
    stats = summary.stats_dicts([f.stats for f in finals], [math.prod(f.meta[0]) for f in finals])
    grads = _gradient_values([f.grad or (None, None, 0) for f in finals])
    for final, rec, value, stat, grad in zip(finals, recs, values, stats, grads):
        if value is not None or stat is not None:
            trace.values[rec], trace.stats[rec] = value, stat
        small = final.grad is None or summary.is_small_numel(final.grad[2])
        trace.grads[rec], trace.grad_stats[rec] = (grad, None) if small else (None, grad)
        trace.bindings.update(dict.fromkeys(final.names, rec))
        trace.leaf_flags[rec] = final.is_leaf


def _attach_names(trace: Trace, r, index: NamespaceIndex, bound: dict) -> None:
    """Each record's names: the cell's assignments, the names it holds at the end first, module paths."""
    for rec, info in r.labels:
        trace.names.setdefault(rec, []).append(info)
    for rec, before in sorted(trace.previous.items()):  # an in-place op keeps the variable's name
        if rec not in trace.names and before in trace.names:
            name, line, _ = trace.names[before][0]
            trace.names[rec] = [(name, line, _changed_by(trace, r, rec))]
    params = index.parameter_paths
    for rec, obj in enumerate(r.objs):
        t = deref(obj)
        if t is not None and id(t) in params:
            trace.params[rec] = params[id(t)]
    for final, rec in bound.values():
        _put_first(trace, rec, [name for name in final.names if name != trace.params.get(rec)])
    grads = grad_names([(name, deref(final.obj)) for final, _ in bound.values() for name in final.names
                        if deref(final.obj) is not None])
    for rec, obj in enumerate(r.objs):
        t = deref(obj)
        if t is not None and id(t) in grads and rec not in trace.names and rec not in trace.params:
            trace.names[rec] = [(grads[id(t)], None, None)]


def _put_first(trace: Trace, rec: int, final_names: list) -> None:
    """The names a record holds at the end first, then the cell's top-level names, then scoped ones (`f.y`)."""
    names = trace.names.setdefault(rec, [])
    known = {name for name, _, _ in names}
    line, expr = (names[0][1], names[0][2]) if names else (None, None)
    names += [(name, line, expr) for name in final_names if name not in known]
    names.sort(key=lambda info: (info[0] not in final_names, _scoped(info[0])))


def _scoped(name: str) -> bool:
    """A name bound inside a function or class of the cell (`f.y`, `Net.forward.h`; not `d['a.b']`)."""
    return "." in name.split("[")[0]


def _changed_by(trace: Trace, r, rec: int) -> str:
    """The source line of the op that changed a tensor in place (`q.add_(1)`), as the new version's expression."""
    op = r.producers[rec]
    line = r.lines[op] if op is not None else None
    lines = trace.source.splitlines()
    return lines[line - 1].strip() if line and line <= len(lines) else "(changed in place)"


def _attach_ops(trace: Trace, r, index: NamespaceIndex) -> None:
    called = [module for module, _, _ in r.module_calls]
    paths = {id(m): index.module_path(m) for m in [*r.modules, *called] if m is not None}
    trace.funcs = r.funcs
    trace.op_kinds = ["grad" if f is torch.autograd.grad else "exit" if getattr(f, "__name__", "") in EXIT_NAMES
                      else "op" for f in r.funcs]
    trace.inputs = [list(zip(flat[::2], flat[1::2])) for flat in r.inputs]
    trace.consts = [list(zip(flat[::2], flat[1::2])) for flat in r.consts]
    trace.outputs = r.outputs
    trace.grad_enabled = r.grad_enabled
    trace.modules = [None if m is None else paths[id(m)] for m in r.modules]
    trace.lines = r.lines
    trace.results = r.results
    trace.module_classes = {paths[id(m)]: type(m).__name__ for m in [*r.modules, *called] if m is not None}
    trace.module_calls = [{"module": paths[id(m)], "class": type(m).__name__, "inputs": [list(s) for s in inputs],
                           "outputs": [list(s) for s in outputs]} for m, inputs, outputs in r.module_calls]


def _attach_optimizers(trace: Trace, r, index: NamespaceIndex) -> None:
    """Each optimizer call with its name in the namespace, settings, line and the records it updated; each op's call."""
    trace.optimizers = [None] * len(r.funcs)
    if not r.optimizer_calls:
        return
    names = index.optimizer_names
    stepped = {id(deref(p)) for call in r.optimizer_calls for p, _ in call[6]}
    versions = {(id(t), version): rec for rec, (t, version) in enumerate(zip(map(deref, r.objs), r.versions))
                if id(t) in stepped}
    for position, (kind, optimizer, settings, first, end, line, updated) in enumerate(r.optimizer_calls):
        end = len(r.funcs) if end is None else end  # a call that raised
        trace.optimizers[first:end] = [position] * (end - first)
        recs = [versions.get((id(deref(p)), version)) for p, version in updated]
        trace.optimizer_calls.append({"call": kind, "name": names.get(id(optimizer)), "class": type(optimizer).__name__,
                                      "settings": settings, "line": line, "updated": [r for r in recs if r is not None]})

