"""Capture stage: a TorchFunctionMode that records every tensor op, and backward hooks that see every gradient."""
from __future__ import annotations

import sys
import types
import weakref
from dataclasses import dataclass, field
from functools import partial

import torch
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode

from . import summary
from .torchstate import torch_function_disabled

__all__ = ["Recorder", "Trace", "TensorInfo", "OpInfo", "PassInfo"]

_PASS, _OP, _INPLACE, _EXIT, _BACKWARD, _GRAD = range(6)

# Calls that read metadata or print: they neither make tensors nor move values out of torch.
_PASS_NAMES = frozenset(
    "__repr__ __str__ __format__ __len__ __hash__ __contains__ __iter__ __dir__ __reduce_ex__ __setstate__ "
    "__deepcopy__ size dim ndimension numel nelement stride storage_offset is_contiguous data_ptr element_size "
    "is_floating_point is_complex is_signed get_device register_hook retain_grad _set_grad_enabled "
    "untyped_storage storage _is_view is_set_to __array_wrap__".split()
)
# Calls through which a value leaves torch: gradients cannot follow it.
_EXIT_NAMES = frozenset("item tolist numpy __float__ __int__ __bool__ __index__ __complex__ __array__".split())
_INPLACE_DUNDERS = frozenset(
    "__iadd__ __isub__ __imul__ __itruediv__ __ifloordiv__ __imod__ __ipow__ __imatmul__ __iand__ __ior__ "
    "__ixor__ __ilshift__ __irshift__ __setitem__".split()
)
_KINDS: dict = {}
_TENSOR = torch.Tensor
_WRAPPER = types.MethodWrapperType
_SEQUENCES = (list, tuple)


def _kind(func) -> int:
    """How the recorder treats `func` (cached per function)."""
    kind = _KINDS.get(func)
    if kind is None:
        name = getattr(func, "__name__", "")
        if func is torch.Tensor.backward or func is torch.autograd.backward:
            kind = _BACKWARD
        elif func is torch.autograd.grad:
            kind = _GRAD
        elif name in _PASS_NAMES:
            kind = _PASS
        elif name in _EXIT_NAMES:
            kind = _EXIT
        elif name in _INPLACE_DUNDERS or (name.endswith("_") and not name.startswith("__")):
            kind = _INPLACE
        else:
            kind = _OP
        _KINDS[func] = kind
    return kind


@dataclass
class TensorInfo:
    """One version of one tensor, as recorded."""

    index: int
    shape: tuple
    dtype: str
    device: str
    requires_grad: bool
    is_leaf: bool
    grad_fn: str | None
    version: int
    producer: int | None
    previous: int | None = None
    value: object = None
    stats: dict | None = None
    grad: object = None
    grad_stats: dict | None = None
    pass_grads: dict = field(default_factory=dict)
    names: list = field(default_factory=list)
    param: str | None = None


@dataclass
class OpInfo:
    """One recorded call: its tensor inputs by argument slot, constants, and output tensors."""

    index: int
    func: object
    inputs: list
    consts: list
    outputs: list
    grad_enabled: bool
    module: object
    line: int | None
    kind: str
    result: object = None


@dataclass
class PassInfo:
    """One backward pass (`backward()` or `autograd.grad`): where it started and what it asked for."""

    index: int
    kind: str
    roots: list
    inputs: list


@dataclass
class Trace:
    """Everything a run did to tensors, resolved to plain Python after the run."""

    tensors: list
    ops: list
    passes: list
    source: str = ""


class Recorder(TorchFunctionMode):
    """Records ops as compact tuples while code runs; `finish()` turns them into a Trace."""

    def __init__(self, filename: str = "<gradmagic>"):
        super().__init__()
        self.filename = filename
        self._objs: list = []  # weakref per tensor version (identity)
        self._versions: list = []
        self._meta: list = []  # (shape, dtype, device, requires_grad, grad_fn, output_nr, producer)
        self._values: list = []  # the tensor itself while small, else None
        self._snapshots: dict = {}  # record -> copy taken before an in-place op overwrote it
        self._latest: dict = {}  # id(tensor) -> newest record
        self._previous: dict = {}  # record -> the record of the same tensor before an in-place op
        self._ops: list = []
        self._labels: list = []
        self._passes: list = []
        self._grads: list = []  # (pass, record, tensor, is_stats_vector)
        self._modules: list = []
        self._node_entries: dict = {}
        self._indexed_upto = 0
        self._module_handles: list = []

    # ---- the hot path -------------------------------------------------------------------------

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if type(func) is _WRAPPER:  # attribute get/set: .grad, .shape, .data, ...
            return func(*args) if not kwargs else func(*args, **kwargs)
        kind = _KINDS.get(func)
        if kind is None:
            kind = _kind(func)
        if kwargs is None:
            kwargs = {}
        if kind is _PASS:
            return func(*args, **kwargs)
        if kind >= _BACKWARD:
            return self._backward(func, kind, args, kwargs)
        tensors, inputs, consts = self._inputs(args, kwargs)
        if kind is _INPLACE or kwargs.get("out") is not None or kwargs.get("inplace"):
            self._snapshot(inputs)
        out = func(*args, **kwargs)
        if kind is _EXIT:
            self._add_op(func, inputs, consts, (), out if isinstance(out, (int, float, bool)) else None)
            return out
        if isinstance(out, _TENSOR):
            produced = (out,)
        elif isinstance(out, _SEQUENCES):
            produced = [o for o in out if isinstance(o, _TENSOR)]
        else:
            produced = ()
        versions = self._versions
        mutated = [t for t, (_, rec) in zip(tensors, inputs) if t._version != versions[rec]]
        outputs = self._outputs(produced, mutated)
        if outputs or mutated:
            self._add_op(func, inputs, consts, outputs, None)
        return out

    def _inputs(self, args, kwargs):
        tensors, inputs, consts = [], [], []
        for slot, arg in enumerate(args):
            self._classify_arg(slot, arg, tensors, inputs, consts)
        for slot, arg in kwargs.items():
            self._classify_arg(slot, arg, tensors, inputs, consts)
        return tensors, inputs, consts

    def _classify_arg(self, slot, arg, tensors, inputs, consts):
        if isinstance(arg, _TENSOR):
            tensors.append(arg)
            inputs.append((slot, self._resolve(arg)))
        elif isinstance(arg, _SEQUENCES) and arg and isinstance(arg[0], _TENSOR):
            for j, item in enumerate(arg):
                if isinstance(item, _TENSOR):
                    tensors.append(item)
                    inputs.append(((slot, j), self._resolve(item)))
        elif arg is not None:
            consts.append((slot, arg))

    def _resolve(self, t) -> int:
        """The record of `t` at its current version, recording it as an outside input if new."""
        rec = self._latest.get(id(t))
        if rec is not None and self._objs[rec]() is t and self._versions[rec] == t._version:
            return rec
        return self._record(t, None)

    def _lookup(self, t) -> int | None:
        rec = self._latest.get(id(t))
        if rec is not None and self._objs[rec]() is t and self._versions[rec] == t._version:
            return rec
        return None

    def _record(self, t, producer) -> int:
        rec = len(self._objs)
        grad_fn = t.grad_fn
        self._objs.append(weakref.ref(t))
        self._versions.append(t._version)
        self._meta.append(
            (t.shape, t.dtype, t.device, t.requires_grad, grad_fn, t.output_nr if grad_fn is not None else 0, producer)
        )
        self._values.append(t if t.numel() <= summary.SMALL_NUMEL else None)
        self._latest[id(t)] = rec
        return rec

    def _outputs(self, produced, mutated) -> tuple:
        op = len(self._ops)
        outputs = []
        for t in (*produced, *mutated):
            rec = self._lookup(t)
            if rec is None:
                before = self._latest.get(id(t))
                outputs.append(self._record(t, op))
                if before is not None and self._objs[before]() is t:
                    self._previous[outputs[-1]] = before
            elif self._meta[rec][3] != t.requires_grad:  # requires_grad_() hands back the same version
                self._meta[rec] = (*self._meta[rec][:3], t.requires_grad, *self._meta[rec][4:])
        return tuple(outputs)

    def _snapshot(self, inputs) -> None:
        """Copy small inputs an in-place op may overwrite, so their earlier version keeps its value."""
        for _, rec in inputs:
            value = self._values[rec]
            if value is not None and rec not in self._snapshots:
                self._snapshots[rec] = value.detach().clone()

    def _add_op(self, func, inputs, consts, outputs, result) -> None:
        self._ops.append(
            (func, inputs, consts, outputs, torch.is_grad_enabled(), self._modules[-1] if self._modules else None,
             self._caller_line(), result)
        )

    def _caller_line(self) -> int | None:
        frame = sys._getframe(3)
        for _ in range(4):  # operator -> [torch's Python wrapper -> handle_torch_function] -> cell
            if frame is None:
                return None
            if frame.f_code.co_filename == self.filename:
                return frame.f_lineno
            frame = frame.f_back
        return None

    # ---- names --------------------------------------------------------------------------------

    def label(self, value, info) -> None:
        """Name the tensor(s) an assignment just bound: `info` is (name, line, expression)."""
        if isinstance(value, _TENSOR):
            with torch_function_disabled():
                self._labels.append((self._resolve(value), info))
        elif isinstance(value, _SEQUENCES) and value and isinstance(value[0], _TENSOR):
            name, line, expr = info
            for i, item in enumerate(value):
                self.label(item, (f"{name}[{i}]", line, expr))

    # ---- gradients ----------------------------------------------------------------------------

    def _backward(self, func, kind, args, kwargs):
        roots = _as_list(args[0] if args else kwargs.get("tensors", kwargs.get("outputs")))
        wrt = _as_list(args[1] if len(args) > 1 else kwargs.get("inputs")) if kind is _GRAD else []
        root_recs = [self._resolve(t) for t in roots]
        input_recs = [self._resolve(t) for t in wrt]
        pass_index = len(self._passes)
        self._passes.append(("backward" if kind is _BACKWARD else "grad", root_recs, input_recs))
        handles = self._hook_graph(roots, pass_index)
        try:
            out = func(*args, **kwargs)
        finally:
            for handle in handles:
                handle.remove()
        if kind is _GRAD:
            # autograd.grad hands the inputs' gradients back instead of running their AccumulateGrad nodes
            self._on_grad(pass_index, list(enumerate(input_recs)), out)
            grads = [g for g in out if g is not None]
            inputs = [(i, rec) for i, rec in enumerate(root_recs + input_recs)]
            self._add_op(func, inputs, [], self._outputs(grads, ()), None)
        return out

    def _hook_graph(self, roots, pass_index) -> list:
        """Pre-hooks on every autograd node reachable from the roots that produced a recorded tensor."""
        self._index_nodes()
        handles, seen = [], set()
        stack = [t.grad_fn for t in roots if t.grad_fn is not None]
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            entries = self._node_entries.get(node)
            if entries is None and hasattr(node, "variable"):  # AccumulateGrad: the gradient of a leaf
                rec = self._lookup(node.variable)
                entries = None if rec is None else [(0, rec)]
            if entries:
                handles.append(node.register_prehook(partial(self._on_grad, pass_index, entries)))
            stack.extend(n for n, _ in node.next_functions if n is not None and n not in seen)
        return handles

    def _index_nodes(self) -> None:
        for rec in range(self._indexed_upto, len(self._meta)):
            grad_fn, output_nr = self._meta[rec][4:6]
            if grad_fn is not None:
                self._node_entries.setdefault(grad_fn, []).append((output_nr, rec))
        self._indexed_upto = len(self._meta)

    def _on_grad(self, pass_index, entries, grad_outputs):
        if torch._C._len_torch_function_stack():  # autograd threads may run with our mode active
            with torch_function_disabled():
                return self._on_grad(pass_index, entries, grad_outputs)
        for output_nr, rec in entries:
            grad = grad_outputs[output_nr] if output_nr < len(grad_outputs) else None
            if grad is None:
                continue
            if grad.numel() <= summary.SMALL_NUMEL:
                self._grads.append((pass_index, rec, grad, grad._version))  # a held grad is never stolen into .grad
            else:
                self._grads.append((pass_index, rec, summary.stats_vector(grad), None))
        return None

    # ---- modules ------------------------------------------------------------------------------

    def start(self) -> None:
        """Track which nn.Module each op runs in (global module hooks, removed by stop())."""
        self._module_handles = [
            register_module_forward_pre_hook(self._enter_module),
            register_module_forward_hook(self._exit_module, always_call=True),
        ]

    def stop(self) -> None:
        """Remove the module hooks."""
        for handle in self._module_handles:
            handle.remove()
        self._module_handles = []

    def _enter_module(self, module, args):
        self._modules.append(module)

    def _exit_module(self, module, args, output):
        if self._modules and self._modules[-1] is module:
            self._modules.pop()

    # ---- after the run ------------------------------------------------------------------------

    def finish(self, namespace: dict | None = None, source: str = "") -> Trace:
        """Resolve the records into a Trace (values copied to the host once) and drop every tensor reference."""
        with torch_function_disabled():
            tensors = self._tensor_infos()
            self._attach_names(tensors, namespace or {})
            modules = _module_paths(namespace or {}, self._ops)
            ops = [self._op_info(i, op, modules) for i, op in enumerate(self._ops)]
            passes = [PassInfo(i, kind, roots, inputs) for i, (kind, roots, inputs) in enumerate(self._passes)]
        self._release()
        return Trace(tensors, ops, passes, source)

    def _tensor_infos(self) -> list:
        infos, small, large, numels = [], [], [], []
        for rec, (shape, dtype, device, requires_grad, grad_fn, _, producer) in enumerate(self._meta):
            t = self._objs[rec]()
            current = t is not None and t._version == self._versions[rec]
            infos.append(
                TensorInfo(rec, tuple(shape), str(dtype).removeprefix("torch."), str(device), requires_grad,
                           grad_fn is None, type(grad_fn).__name__ if grad_fn is not None else None,
                           self._versions[rec], producer)
            )
            value = self._snapshots.get(rec, self._values[rec] if current else None)
            small.append(value)
            large.append(summary.stats_vector(t) if value is None and current and t.numel() else None)
            numels.append(shape.numel())
        for info, value, stats in zip(infos, summary.to_python(small), summary.stats_dicts(large, numels)):
            info.value, info.stats = value, stats
        self._attach_grads(infos)
        return infos

    def _attach_grads(self, infos: list) -> None:
        small = [g if version is not None and g._version == version else None for _, _, g, version in self._grads]
        stats = [g if version is None else None for _, _, g, version in self._grads]
        numels = [self._meta[rec][0].numel() for _, rec, _, _ in self._grads]
        for (pass_index, rec, _, _), value, stat in zip(
            self._grads, summary.to_python(small), summary.stats_dicts(stats, numels)
        ):
            infos[rec].pass_grads[pass_index] = value if stat is None else stat
        leaves = [self._current_leaf_grad(rec) for rec in range(len(infos))]
        self._attach_leaf_grads(infos, leaves)

    def _current_leaf_grad(self, rec):
        t = self._objs[rec]()
        if t is None or t._version != self._versions[rec] or t.grad_fn is not None:
            return None
        return t.grad

    def _attach_leaf_grads(self, infos: list, leaf_grads: list) -> None:
        small = [g if g is not None and summary.is_small(g) else None for g in leaf_grads]
        large = [g if g is not None and not summary.is_small(g) else None for g in leaf_grads]
        vectors = [None if g is None else summary.stats_vector(g) for g in large]
        numels = [0 if g is None else g.numel() for g in large]
        for info, value, stats in zip(infos, summary.to_python(small), summary.stats_dicts(vectors, numels)):
            last = info.pass_grads[max(info.pass_grads)] if info.pass_grads else None
            if value is None and stats is None and last is not None:
                value, stats = (None, last) if isinstance(last, dict) else (last, None)
            info.grad, info.grad_stats = value, stats

    def _attach_names(self, infos: list, namespace: dict) -> None:
        for rec, before in self._previous.items():
            infos[rec].previous = before
        for rec, info in self._labels:
            infos[rec].names.append(info)
        for info in infos:  # an in-place op keeps the variable's name on the new version
            if not info.names and info.previous is not None:
                info.names = infos[info.previous].names[:1]
        for name, value in namespace.items():
            if isinstance(value, _TENSOR) and not name.startswith("_"):
                rec = self._lookup(value)
                if rec is not None and not infos[rec].names:
                    infos[rec].names.append((name, None, None))
        params = _parameter_paths(namespace)
        for rec, ref in enumerate(self._objs):
            t = ref()
            if t is not None and id(t) in params:
                infos[rec].param = params[id(t)]

    def _op_info(self, index, op, modules: dict) -> OpInfo:
        func, inputs, consts, outputs, grad_enabled, module, line, result = op
        kind = "grad" if func is torch.autograd.grad else "exit" if _kind(func) is _EXIT else "op"
        path = None if module is None else modules[id(module)]
        return OpInfo(index, func, list(inputs), list(consts), list(outputs), grad_enabled, path, line, kind, result)

    def _release(self) -> None:
        """Forget every tensor, autograd node and module, so the capture keeps nothing alive."""
        for name in ("_objs", "_versions", "_meta", "_values", "_ops", "_labels", "_passes", "_grads", "_modules"):
            setattr(self, name, [])
        self._snapshots, self._latest, self._node_entries, self._previous = {}, {}, {}, {}


def _as_list(tensors) -> list:
    if tensors is None:
        return []
    if isinstance(tensors, _TENSOR):
        return [tensors]
    return [t for t in tensors if isinstance(t, _TENSOR)]


def _parameter_paths(namespace: dict) -> dict:
    """id(parameter or buffer) -> `model.fc1.weight`, for every nn.Module bound to a name."""
    paths = {}
    for name, value in namespace.items():
        if isinstance(value, torch.nn.Module) and not name.startswith("_"):
            for path, tensor in (*value.named_parameters(), *value.named_buffers()):
                paths.setdefault(id(tensor), f"{name}.{path}")
    return paths


def _module_paths(namespace: dict, ops: list) -> dict:
    """id(module) -> dotted path from a namespace name, or the class name for unnamed modules."""
    paths = {}
    for name, value in namespace.items():
        if isinstance(value, torch.nn.Module) and not name.startswith("_"):
            for path, module in value.named_modules():
                paths.setdefault(id(module), f"{name}.{path}" if path else name)
    for op in ops:
        module = op[5]
        if module is not None and id(module) not in paths:
            paths[id(module)] = type(module).__name__
    return paths
