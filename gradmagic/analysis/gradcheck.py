"""Gradient check: re-run the recorded computation in float64 and compare autograd with finite differences."""
from __future__ import annotations

import html
from dataclasses import dataclass, field

import torch

from .. import text
from .hook_changes import hook_changes
from .reading import pass_asked
from ..graph import build_graph
from .replay import REPLAY_RTOL, Replay, ReplayError, custom_function, record_name, recorded_tensor, replay, run_op
from ..record.trace import Trace

_EPS64 = torch.finfo(torch.float64).eps

__all__ = ["check_gradients", "GradCheck", "LeafCheck"]

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
    hooks: list = field(default_factory=list)  # sentences naming gradient hooks that changed a gradient in the pass
    mismatches: list = field(default_factory=list)  # tensor nodes whose re-run value differs from the run's

    @property
    def max_error(self) -> float:
        """The largest relative error between autograd and finite differences."""
        return max((leaf.error for leaf in self.leaves), default=0.0)

    @property
    def faithful(self) -> bool:
        """True when the re-run reproduced the run's values and gradients."""
        return not self.mismatches and all(leaf.replay_error is None or leaf.replay_error <= REPLAY_RTOL
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
            if leaf.replay_error is not None and leaf.replay_error > REPLAY_RTOL:
                why = "; ".join(self.hooks) or ("the recorder missed part of the computation (a custom "
                                                "torch.autograd.Function, an attribute such as .T or .data, or a "
                                                "gradient hook the capture did not see: a module's backward hook, "
                                                "or one registered before the run)")
                out.append(f"    the run gave {leaf.name} the gradient {text.value_text(leaf.recorded, None)}, the "
                           f"re-run {text.value_text(leaf.autograd, None)}: {why}")
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
    """Re-run the recorded computation in float64 and compare each input's autograd gradient with finite differences.

    One backward pass, `pass_index` (-1: the last); "the run's" gradient is the one of that pass, not the
    accumulated `.grad`. What cannot be checked is a ValueError (ReplayError) with a one-line reason."""
    trace: Trace = getattr(result_or_trace, "trace", result_or_trace)
    graph = result_or_trace.graph if hasattr(result_or_trace, "graph") else build_graph(trace)
    p = pass_asked(len(trace.passes), pass_index, "check")
    try:
        return _check_pass(trace, graph, p, eps, tolerance)
    except ReplayError:
        raise
    except Exception as error:  # an unexpected state of the record: one line, not a traceback
        raise ReplayError(f"cannot check backward pass {p + 1}: {text.error_summary(error)}") from error


def _check_pass(trace: Trace, graph, p: int, eps: float, tolerance: float) -> GradCheck:
    """The check of pass p: each input three ways, then the ops whose own backward disagrees when it fails."""
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
            tensor = recorded_tensor(trace, rec)
        grad = next((g for t, g in zip(needed, found) if t is tensor), None)
        grad = torch.zeros_like(tensor) if grad is None else grad
        numeric = _finite_differences(trace, roots, seeds, tensor, rec, eps)
        recorded = trace.pass_grads.get(rec, {}).get(p)
        rows.append(LeafCheck(graph.nodes[f"t{rec}"]["label"] or record_name(trace, rec), f"t{rec}",
                              recorded, _rounded(grad), _rounded(numeric), _relative_error(grad, numeric, floor),
                              _replay_error(recorded, grad, floor)))
    root = _root_name(graph, roots) + (f", backward pass {p + 1} of {len(trace.passes)}" if len(trace.passes) > 1
                                       else "")
    check = GradCheck(rows, tolerance, eps, root, hooks=hook_changes(graph, p),
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
        raise ReplayError(f"cannot re-run: the gradient backward() started from at {record_name(trace, root)} "
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


def _op_backward_ok(trace: Trace, op: int, values: dict, eps: float, tolerance: float) -> bool:
    """torch.autograd.gradcheck on one recorded op, at the arguments it got in the re-run."""
    floats = [r for r, v in values.items() if v.is_floating_point()]

    def call(*xs):
        env = dict(values)
        env.update({r: x.clone() for r, x in zip(floats, xs)})
        return tuple(t for t in run_op(trace, op, env) if t.requires_grad)

    xs = tuple(values[r].detach().clone().requires_grad_() for r in floats)
    if not xs or not call(*xs):
        return True
    return torch.autograd.gradcheck(call, xs, eps=eps, atol=1e-8, rtol=max(tolerance, 1e-5), raise_exception=False)


def _op_name(trace: Trace, graph, op: int) -> str:
    """The op's label, `Square.apply` for a custom autograd.Function."""
    return custom_function(trace.funcs[op]) or graph.nodes[f"op{op}"]["label"]


def _root_name(graph, roots) -> str:
    """The roots of the pass by their labels (`t5` for an unnamed one)."""
    return ", ".join(graph.nodes[f"t{r}"]["label"] or f"t{r}" for r in roots)
