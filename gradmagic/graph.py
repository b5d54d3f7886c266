"""Graph stage: a Trace becomes the documented networkx.MultiDiGraph of tensors and ops."""
from __future__ import annotations

from collections import Counter

import networkx as nx

from .recorder import OpInfo, TensorInfo, Trace

__all__ = ["build_graph", "named_graph", "tensor_nodes", "op_label", "ROLES"]

#: Tensor roles, in the order a legend lists them.
ROLES = ("leaf", "named", "intermediate", "output", "constant")

_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")

# Operator methods reach the recorder under these names.
_OP_NAMES = {
    "__add__": "add", "__radd__": "add", "__iadd__": "add_", "__sub__": "sub", "__rsub__": "rsub",
    "__isub__": "sub_", "__mul__": "mul", "__rmul__": "mul", "__imul__": "mul_", "__truediv__": "div",
    "__div__": "div", "__rtruediv__": "rdiv", "__rdiv__": "rdiv", "__itruediv__": "div_", "__pow__": "pow",
    "__rpow__": "rpow", "__ipow__": "pow_", "__matmul__": "matmul", "__rmatmul__": "matmul", "__neg__": "neg",
    "__getitem__": "getitem", "__setitem__": "setitem", "__floordiv__": "floordiv", "__mod__": "mod",
    "__abs__": "abs", "__lt__": "lt", "__le__": "le", "__gt__": "gt", "__ge__": "ge", "__eq__": "eq",
    "__ne__": "ne", "__and__": "and", "__or__": "or", "__xor__": "xor", "__invert__": "invert",
    "__float__": "float", "__int__": "int", "__bool__": "bool", "__index__": "index",
}
# How a single Python constant folds into an op's label: `mul ×2`, `add +3`, `rsub 1−`.
_CONST_FORMS = {
    "mul": "mul ×{}", "add": "add +{}", "sub": "sub −{}", "rsub": "{} − ·", "div": "div ÷{}", "rdiv": "{} ÷ ·",
    "pow": "pow ^{}", "rpow": "{} ^ ·",
}


def build_graph(trace: Trace) -> nx.MultiDiGraph:
    """The MultiDiGraph of DESIGN.md: tensor and op nodes, one edge per argument slot and output."""
    roots = sorted({f"t{r}" for p in trace.passes for r in p.roots}, key=lambda n: int(n[1:]))
    graph = nx.MultiDiGraph(
        roots=roots,
        passes=len(trace.passes),
        pass_roots=[[f"t{r}" for r in p.roots] for p in trace.passes],
        pass_kinds=[p.kind for p in trace.passes],
        source=trace.source,
    )
    labels = _display_names(trace.tensors)
    root_set = set(roots)
    consumed = {rec for op in trace.ops for _, rec in op.inputs}
    for info in trace.tensors:
        graph.add_node(f"t{info.index}", **_tensor_attrs(info, labels, root_set, consumed, bool(trace.passes)))
    for op in trace.ops:
        graph.add_node(f"op{op.index}", **_op_attrs(op))
        differentiable = _carries_gradient(op, trace.tensors)
        for slot, rec in op.inputs:
            key = _slot_text(slot)
            graph.add_edge(f"t{rec}", f"op{op.index}", key=key, slot=key,
                           differentiable=differentiable and trace.tensors[rec].requires_grad)
        for i, rec in enumerate(op.outputs):
            graph.add_edge(f"op{op.index}", f"t{rec}", key=i, slot=f"out{i}")
    return graph


def tensor_nodes(graph: nx.MultiDiGraph, name: str | None = None) -> list:
    """Tensor node ids in record order, optionally only those named `name`."""
    return [n for n, d in graph.nodes(data=True) if d["kind"] == "tensor" and (name is None or d["name"] == name)]


def named_graph(graph: nx.MultiDiGraph) -> nx.DiGraph:
    """Named tensors only, with u -> v wherever a path joins them through ops and anonymous tensors."""
    named = {n for n in tensor_nodes(graph) if graph.nodes[n]["name"] is not None}
    contracted = nx.DiGraph()
    contracted.add_nodes_from((n, {"name": graph.nodes[n]["name"]}) for n in named)
    for source in named:
        stack, seen = list(graph.successors(source)), set()
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            if node in named:
                contracted.add_edge(source, node)
            else:
                stack.extend(graph.successors(node))
    return contracted


def op_label(op: str, consts: list) -> str:
    """`mul ×2` for one folded constant, `sum(dim=1)` for several, plain `relu` for none."""
    if op == "rdiv" and consts == [("1", "1")]:
        return "reciprocal"
    if len(consts) == 1 and op in _CONST_FORMS and consts[0][0] in ("0", "1"):
        return _CONST_FORMS[op].format(consts[0][1])
    if not consts:
        return op
    args = ", ".join(text if slot.isdigit() else f"{slot}={text}" for slot, text in consts)
    return f"{op}({args})"


def _tensor_attrs(info: TensorInfo, labels: dict, roots: set, consumed: set, any_pass: bool) -> dict:
    node = f"t{info.index}"
    name, line, expr = info.names[0] if info.names else (None, None, None)
    name = info.param or name
    return {
        "kind": "tensor",
        "name": name,
        "label": labels.get(info.index),
        "aliases": [n for n, _, _ in info.names[1:]],
        "expr": expr,
        "line": line,
        "shape": list(info.shape),
        "dtype": info.dtype,
        "device": info.device,
        "requires_grad": info.requires_grad,
        "is_leaf": info.is_leaf,
        "grad_fn": info.grad_fn,
        "version": info.version,
        "previous": None if info.previous is None else f"t{info.previous}",
        "param": info.param,
        "value": info.value,
        "stats": info.stats,
        "grad": info.grad,
        "grad_stats": info.grad_stats,
        "pass_grads": info.pass_grads,
        "role": _role(node, info, name, roots, consumed, any_pass),
    }


def _role(node: str, info: TensorInfo, name, roots: set, consumed: set, any_pass: bool) -> str:
    if node in roots or (not any_pass and name and info.requires_grad and not info.is_leaf
                         and info.index not in consumed):
        return "output"
    if not info.requires_grad:
        return "constant"
    if info.is_leaf:
        return "leaf"
    return "named" if name else "intermediate"


def _op_attrs(op: OpInfo) -> dict:
    short = _short_name(op.func)
    consts = [(_slot_text(slot), _const_text(value)) for slot, value in op.consts]
    return {
        "kind": "op",
        "op": short,
        "func": _qualified_name(op.func),
        "consts": ", ".join(t if s.isdigit() else f"{s}={t}" for s, t in consts),
        "label": op_label(short, consts),
        "op_kind": op.kind,
        "module": op.module,
        "line": op.line,
        "grad_enabled": op.grad_enabled,
        "result": op.result,
    }


def _carries_gradient(op: OpInfo, tensors: list) -> bool:
    """An op passes gradient back when grad mode was on and something it made requires grad."""
    return op.kind != "exit" and op.grad_enabled and any(tensors[r].requires_grad for r in op.outputs)


def _display_names(tensors: list) -> dict:
    """Record -> `x`, or `h₁ h₂ h₃` when one name was bound to several tensors (a loop)."""
    names = {t.index: t.param or t.names[0][0] for t in tensors if t.param or t.names}
    counts, seen = Counter(names.values()), Counter()
    labels = {}
    for index, name in names.items():
        if counts[name] > 1:
            seen[name] += 1
            labels[index] = f"{name}{str(seen[name]).translate(_SUBSCRIPTS)}"
        else:
            labels[index] = name
    return labels


def _short_name(func) -> str:
    name = getattr(func, "__name__", None) or str(func)
    return _OP_NAMES.get(name, name)


def _qualified_name(func) -> str:
    name = getattr(func, "__name__", None) or str(func)
    owner = getattr(func, "__objclass__", None)
    if owner is not None or getattr(func, "__qualname__", "").startswith("Tensor."):
        return f"torch.Tensor.{name}"
    module = getattr(func, "__module__", None) or "torch"
    module = {"torch._C._nn": "torch.nn.functional", "torch._C._linalg": "torch.linalg",
              "torch._C._special": "torch.special", "torch._C._fft": "torch.fft"}.get(module, module)
    return f"{module}.{name}"


def _slot_text(slot) -> str:
    return ".".join(map(str, slot)) if isinstance(slot, tuple) else str(slot)


def _const_text(value) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
        return text + ".0" if text.lstrip("-").isdigit() else text
    text = str(value).removeprefix("torch.")
    return text if len(text) <= 24 else text[:21] + "…"
