"""Gradient check: re-run the recorded computation in float64 and compare autograd with finite differences.

The replay needs every value the computation starts from, so it works for small computations only: gradmagic
keeps the exact values of tensors with at most `summary.SMALL_NUMEL` elements.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import torch

from . import summary, text
from .graph import build_graph
from .trace import Trace

__all__ = ["check_gradients", "GradCheck", "LeafCheck", "replay", "Replay", "ReplayError"]

_REPLAY_RTOL = 1e-3  # the run (often float32) against the float64 re-run
_EPS64 = torch.finfo(torch.float64).eps
_ARITY = {"__getitem__": 2, "__setitem__": 3}  # positional arguments, None included
_DOWNCASTS = (torch.Tensor.float, torch.Tensor.half, torch.Tensor.bfloat16)


class ReplayError(ValueError):
    """The recorded computation cannot be re-run from what was recorded."""


@dataclass
class Replay:
    """A float64 re-run by record: `values` as computed, `inputs` the leaves it depends on (sources and cuts)."""

    values: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    ops: list = field(default_factory=list)
    arguments: dict = field(default_factory=dict)  # op -> {record: copy of the value it was called with} (check=True)
    mismatches: list = field(default_factory=list)  # records whose re-run value is not the recorded one (check=True)


def replay(trace: Trace, roots, *, values: dict | None = None, cut=(), check: bool = False) -> Replay:
    """Re-run in float64 the recorded ops the roots depend on; sources come from their recorded values (or `values`).

    A record in `cut` is replaced downstream by a fresh leaf (`inputs[rec]`), so the gradient of a later value
    with respect to it is the derivative through ops and unlisted tensors only. `check` compares every value with
    the recorded one and keeps each op's arguments (values change later when ops work in place).
    """
    ops, sources = _plan(trace, roots)
    run, env = Replay(ops=ops), {}
    for rec in sorted(sources):
        tensor = values[rec] if values and rec in values else _recorded_tensor(trace, rec)
        _bind(run, env, rec, tensor, rec in cut)
    differs = set()
    for op in ops:
        if check:
            run.arguments[op] = {r: env[r].detach().clone() for _, r in trace.inputs[op]}
        for rec, tensor in zip(trace.outputs[op], _run_op(trace, op, env)):
            if check:
                spread = differs.intersection(run.arguments[op])
                if spread or not _same_value(trace, rec, tensor):
                    differs.add(rec)
                    run.mismatches += [] if spread else [rec]  # where a difference starts, not where it spreads
            _bind(run, env, rec, tensor, rec in cut)
    return run


def _replayable(trace: Trace, op) -> bool:
    """Ops that pass gradient are re-executed; every other tensor is a constant (or leaf) from its recorded value."""
    return (op is not None and trace.op_kinds[op] == "op" and bool(trace.inputs[op]) and trace.grad_enabled[op]
            and any(trace.requires_grad[r] for r in trace.outputs[op]))


def _plan(trace: Trace, roots) -> tuple:
    """(the ops to re-run in record order, the source records they start from)."""
    ops, sources, stack, seen = set(), set(), list(roots), set()
    while stack:
        rec = stack.pop()
        if rec in seen:
            continue
        seen.add(rec)
        op = trace.producers[rec]
        if _replayable(trace, op):
            ops.add(op)
            stack.extend(r for _, r in trace.inputs[op])
        elif op is not None and trace.op_kinds[op] == "grad" and trace.requires_grad[rec]:
            raise ReplayError(f"cannot re-run the computation: {_record_name(trace, rec)} is a gradient computed "
                              "with create_graph=True, and gradients of gradients are not re-run")
        else:
            sources.add(rec)
    return sorted(ops), sources


def _recorded_tensor(trace: Trace, rec: int) -> torch.Tensor:
    """The recorded value of a record as a tensor (floating ones in float64), a leaf if the record required grad."""
    value = trace.values[rec]
    if value is None:
        large = math.prod(trace.shapes[rec]) > summary.SMALL_NUMEL
        why = f"gradmagic keeps the values of tensors with at most {summary.SMALL_NUMEL} elements only" if large \
            else "it was overwritten before the run ended"
        raise ReplayError(f"cannot re-run the computation: the value of {_record_name(trace, rec)} was not recorded "
                          f"({why}); only small computations can be re-run")
    dtype = getattr(torch, trace.dtypes[rec])
    if dtype.is_complex:
        raise ReplayError(f"cannot re-run the computation: {_record_name(trace, rec)} is complex")
    tensor = torch.tensor(value, dtype=torch.float64 if dtype.is_floating_point else dtype)
    return tensor.requires_grad_() if trace.requires_grad[rec] and dtype.is_floating_point else tensor


def _bind(run: Replay, env: dict, rec: int, tensor: torch.Tensor, cut: bool) -> None:
    run.values[rec] = tensor
    if cut or (tensor.is_leaf and tensor.requires_grad):
        leaf = tensor if tensor.is_leaf else tensor.detach().requires_grad_()
        run.inputs[rec] = leaf
        tensor = leaf if leaf is tensor else leaf.clone()  # a clone, so in-place ops on it stay legal
    env[rec] = tensor


def _run_op(trace: Trace, op: int, env: dict) -> list:
    """Call the recorded function on the replayed tensors; the new tensors it made, in the recorder's order."""
    args, kwargs = _arguments(trace, op, env)
    inputs = [env[rec] for _, rec in trace.inputs[op]]
    versions = [t._version for t in inputs]
    out = _in_float64(trace.funcs[op])(*args, **kwargs)
    produced = [out] if isinstance(out, torch.Tensor) else \
        [o for o in out if isinstance(o, torch.Tensor)] if isinstance(out, (list, tuple)) else []
    mutated = [t for t, v in zip(inputs, versions) if t._version != v]
    made = []
    for t in (*produced, *mutated):
        if not any(t is m for m in made):
            made.append(t)
    # As the recorder did, an input handed back unchanged is not a new tensor, unless the run made one there
    # (`x.double()` is new in the run, but in the float64 re-run it hands x back): then it is a copy.
    unchanged = [any(t is i and t._version == v for i, v in zip(inputs, versions)) for t in made]
    if len(made) - sum(unchanged) >= len(trace.outputs[op]):
        made = [t for t, same in zip(made, unchanged) if not same]
    else:
        made = [t.clone() if same else t for t, same in zip(made, unchanged)]
    return [t.to("cpu", torch.float64) if t.is_floating_point() else t.cpu() for t in made]


def _arguments(trace: Trace, op: int, env: dict) -> tuple:
    """Positional and keyword arguments rebuilt from the recorded slots (tensors, lists of tensors, constants)."""
    slots: dict = {slot: _in_float64(value) for slot, value in trace.consts[op]}
    for slot, rec in trace.inputs[op]:
        if isinstance(slot, tuple):  # the j-th tensor of a list argument (cat, stack)
            slots.setdefault(slot[0], _TensorList()).append(env[rec])
        else:
            slots[slot] = env[rec]
    # The recorder drops None arguments, so `w[None]` comes back as `w[]`: pad to the arity we know.
    arity = _ARITY.get(getattr(trace.funcs[op], "__name__", ""), 0)
    count = max([s + 1 for s in slots if isinstance(s, int)] + [arity])
    args = [slots.get(i) for i in range(count)]
    return ([list(a) if isinstance(a, _TensorList) else a for a in args],
            {k: list(v) if isinstance(v, _TensorList) else v for k, v in slots.items() if isinstance(k, str)})


def _in_float64(thing):
    """Keep the re-run in float64: `x.float()`, `x.half()` become `x.double()`, float dtypes become float64."""
    if isinstance(thing, torch.dtype) and thing.is_floating_point:
        return torch.float64
    if any(thing is f for f in _DOWNCASTS):
        return torch.Tensor.double
    return thing


class _TensorList(list):
    """A list argument being rebuilt from its recorded tensors."""


def _record_name(trace: Trace, rec: int) -> str:
    names = trace.names.get(rec)
    name = trace.params.get(rec) or (names[0][0] if names else None)
    shape = "×".join(map(str, trace.shapes[rec])) or "scalar"
    return f"{name} ({shape})" if name else f"tensor t{rec} ({shape})"


# ---- the check ---------------------------------------------------------------------------------


@dataclass
class LeafCheck:
    """One input's gradient three ways: the run's, autograd's on the float64 re-run, and finite differences."""

    name: str
    node: str
    recorded: object  # what the run's backward pass gave (None if it gave nothing)
    autograd: object
    numeric: object
    error: float  # max relative error, autograd against finite differences
    replay_error: float | None  # max relative error, the run against the float64 re-run


@dataclass
class GradCheck:
    """Autograd against central finite differences for every input of one backward pass."""

    leaves: list
    tolerance: float
    eps: float
    root: str
    suspects: list = field(default_factory=list)  # (op node, label, line) whose own backward disagrees
    mismatches: list = field(default_factory=list)  # tensor nodes whose re-run value differs from the run's

    @property
    def max_error(self) -> float:
        """The largest relative error between autograd and finite differences."""
        return max((leaf.error for leaf in self.leaves), default=0.0)

    @property
    def faithful(self) -> bool:
        """True when the re-run reproduced the run's values and gradients."""
        return not self.mismatches and all(leaf.replay_error is None or leaf.replay_error <= _REPLAY_RTOL
                                           for leaf in self.leaves)

    @property
    def ok(self) -> bool:
        """True when every gradient matches finite differences and the re-run matches the run."""
        return self.max_error <= self.tolerance and self.faithful

    def lines(self) -> list:
        """The report, one line per input and one per problem found."""
        verdict = "ok" if self.ok else "FAILED"
        out = [f"gradient check of {self.root} ({verdict}): max relative error {self.max_error:.2e} "
               f"(tolerance {self.tolerance:.0e}, float64, eps {self.eps:.0e})"]
        for leaf in self.leaves:
            mark = "✓" if leaf.error <= self.tolerance else "✗"
            out.append(f"  {mark} {leaf.name}: autograd {text.value_text(leaf.autograd, None)}  "
                       f"finite differences {text.value_text(leaf.numeric, None)}  error {leaf.error:.1e}")
            if leaf.replay_error is not None and leaf.replay_error > _REPLAY_RTOL:
                out.append(f"    the run gave {leaf.name} the gradient {text.value_text(leaf.recorded, None)}, the "
                           f"re-run {text.value_text(leaf.autograd, None)}: the recorder missed part of the "
                           f"computation (a custom torch.autograd.Function, or an attribute such as .T or .data)")
        for node, label, line in self.suspects:
            out.append(f"  the backward of `{label}` (line {line}) disagrees with finite differences of its forward")
        if self.mismatches:
            out.append(f"  the re-run computed other values than the run for {', '.join(self.mismatches)} "
                       f"(random ops such as dropout cannot be re-run); finite differences are not reliable")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        head, *rest = self.lines()
        items = "".join(f"<li>{html.escape(line.strip())}</li>" for line in rest)
        return f"<div class='gradmagic-check'><p><b>{html.escape(head)}</b></p><ul>{items}</ul></div>"


def check_gradients(result_or_trace, *, eps: float = 1e-6, tolerance: float = 1e-5,
                    pass_index: int = -1) -> GradCheck:
    """Re-run the recorded computation in float64 and compare each input's autograd gradient with finite differences."""
    trace: Trace = getattr(result_or_trace, "trace", result_or_trace)
    graph = result_or_trace.graph if hasattr(result_or_trace, "graph") else build_graph(trace)
    if not trace.passes:
        raise ValueError("no backward pass ran, so there is no gradient to check; call .backward() on a result")
    p = range(len(trace.passes))[pass_index]
    roots = trace.passes[p][1]
    base = replay(trace, roots, check=True)
    seeds = [_seed(trace, root, p) for root in roots]
    leaves = _inputs(trace, base, p)
    tensors = [base.inputs.get(r, base.values.get(r)) for r in leaves]
    needed = [t for t in tensors if t is not None and t.requires_grad]
    found = torch.autograd.grad(_objective(base, roots, seeds), needed, allow_unused=True) if needed else ()
    f0 = _objective(base, roots, seeds).item()
    floor = 100 * _EPS64 * (abs(f0) + 1) / eps  # what finite differences cannot resolve
    rows = []
    for rec, tensor in zip(leaves, tensors):
        if tensor is None:  # the run sent it a gradient, but the re-run does not depend on it
            tensor = _recorded_tensor(trace, rec)
        grad = next((g for t, g in zip(needed, found) if t is tensor), None)
        grad = torch.zeros_like(tensor) if grad is None else grad
        numeric = _finite_differences(trace, roots, seeds, tensor, rec, eps)
        recorded = trace.pass_grads.get(rec, {}).get(p)
        rows.append(LeafCheck(graph.nodes[f"t{rec}"]["label"] or _record_name(trace, rec), f"t{rec}",
                              recorded, _rounded(grad), _rounded(numeric), _relative_error(grad, numeric, floor),
                              _replay_error(recorded, grad, floor)))
    check = GradCheck(rows, tolerance, eps, _root_name(graph, roots),
                      mismatches=[graph.nodes[f"t{r}"]["label"] or f"t{r}" for r in base.mismatches])
    if check.max_error > tolerance:
        differ = set(base.mismatches)
        check.suspects = [(f"op{op}", _op_name(trace, graph, op), trace.lines[op]) for op in base.ops
                          if not differ.intersection(trace.outputs[op])
                          and not _op_backward_ok(trace, op, base.arguments[op], eps, tolerance)]
    return check


def _inputs(trace: Trace, run: Replay, p: int) -> list:
    """The records to check: leaves of the re-run, and leaves (or `autograd.grad` inputs) the pass sent gradient to."""
    wrt = set(trace.passes[p][2])
    reached = {rec for rec, grads in trace.pass_grads.items() if p in grads
               and trace.dtypes[rec].startswith(("float", "bfloat")) and (trace.grad_fns[rec] is None or rec in wrt)}
    leaves = {rec for rec, t in run.inputs.items() if t.requires_grad and t.is_floating_point()}
    return sorted((leaves | reached) - set(trace.passes[p][1]))


def _rounded(t: torch.Tensor):
    """Python numbers rounded to 7 significant digits (1290.0, not 1289.9999999998)."""
    rounded = [float(f"{v:.7g}") for v in t.detach().reshape(-1).tolist()]
    return torch.tensor(rounded, dtype=torch.float64).reshape(t.shape).tolist()


def _seed(trace: Trace, root: int, p: int) -> torch.Tensor:
    """The gradient the pass started from at `root` (1 for `loss.backward()`)."""
    value = trace.pass_grads.get(root, {}).get(p)
    if value is None or isinstance(value, dict):
        raise ReplayError(f"cannot re-run: the gradient backward() started from at {_record_name(trace, root)} "
                          "was not recorded")
    return torch.tensor(value, dtype=torch.float64)


def _objective(run: Replay, roots, seeds) -> torch.Tensor:
    """Σ root·seed: the scalar whose gradient the backward pass computed."""
    return sum((run.values[r] * s).sum() for r, s in zip(roots, seeds))


def _finite_differences(trace: Trace, roots, seeds, leaf: torch.Tensor, rec: int, eps: float) -> torch.Tensor:
    """Central differences of the objective along each element of one input."""
    base = leaf.detach()
    numeric = torch.zeros_like(base)
    with torch.no_grad():
        for i in range(base.numel()):
            sides = []
            for step in (eps, -eps):
                moved = base.clone()
                moved.view(-1)[i] += step
                sides.append(_objective(replay(trace, roots, values={rec: moved}), roots, seeds).item())
            numeric.view(-1)[i] = (sides[0] - sides[1]) / (2 * eps)
    return numeric


def _relative_error(a: torch.Tensor, b: torch.Tensor, floor: float) -> float:
    """max |a−b| / max(|a|, |b|, floor), elementwise."""
    if a.numel() == 0:
        return 0.0
    scale = torch.maximum(a.abs(), b.abs()).clamp(min=floor)
    return ((a - b).abs() / scale).max().item()


def _replay_error(recorded, replayed: torch.Tensor, floor: float) -> float | None:
    """How far the run's own gradient is from the re-run's (None when the run recorded none)."""
    if recorded is None or isinstance(recorded, dict):
        return None
    return _relative_error(torch.tensor(recorded, dtype=torch.float64), replayed.detach(), floor)


def _same_value(trace: Trace, rec: int, tensor: torch.Tensor) -> bool:
    """True unless the re-run value differs from the recorded one beyond float32 rounding."""
    value = trace.values[rec]
    if value is None or not tensor.is_floating_point():
        return True
    recorded = torch.tensor(value, dtype=torch.float64)
    rtol = max(_REPLAY_RTOL, 4 * torch.finfo(getattr(torch, trace.dtypes[rec])).eps)  # float16 rounds coarser
    return recorded.shape == tensor.shape and torch.allclose(tensor.detach(), recorded, rtol=rtol, atol=1e-6,
                                                             equal_nan=True)


def _op_backward_ok(trace: Trace, op: int, values: dict, eps: float, tolerance: float) -> bool:
    """torch.autograd.gradcheck on one recorded op, at the arguments it got in the re-run."""
    floats = [r for r, v in values.items() if v.is_floating_point()]

    def call(*xs):
        env = dict(values)
        env.update({r: x.clone() for r, x in zip(floats, xs)})
        return tuple(t for t in _run_op(trace, op, env) if t.requires_grad)

    xs = tuple(values[r].detach().clone().requires_grad_() for r in floats)
    if not xs or not call(*xs):
        return True
    return torch.autograd.gradcheck(call, xs, eps=eps, atol=1e-8, rtol=max(tolerance, 1e-5), raise_exception=False)


def _op_name(trace: Trace, graph, op: int) -> str:
    """The op's label, `Square.apply` for a custom autograd.Function."""
    owner = getattr(trace.funcs[op], "__self__", None)
    return f"{owner.__name__}.apply" if isinstance(owner, type) else graph.nodes[f"op{op}"]["label"]


def _root_name(graph, roots) -> str:
    return ", ".join(graph.nodes[f"t{r}"]["label"] or f"t{r}" for r in roots)
