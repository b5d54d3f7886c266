"""Graph stage: a Trace becomes the documented networkx.MultiDiGraph of tensors and ops."""
from __future__ import annotations

from collections import Counter

import networkx as nx

from .record.trace import Trace

__all__ = ["build_graph", "named_graph", "first_reached", "tensor_nodes", "op_label", "label_name", "ROLES"]

#: Tensor roles, in the order a legend lists them.
ROLES = ("leaf", "named", "intermediate", "output", "constant")

_SUBSCRIPT_DIGITS = "₀₁₂₃₄₅₆₇₈₉"
_SUBSCRIPTS = str.maketrans("0123456789", _SUBSCRIPT_DIGITS)

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
    """The graph contract (ARCHITECTURE.md): tensor and op nodes, one edge per argument slot and output."""
    roots = sorted({r for _, pass_roots, _ in trace.passes for r in pass_roots})
    graph = nx.MultiDiGraph(
        roots=[f"t{r}" for r in roots],
        passes=len(trace.passes),
        pass_roots=[[f"t{r}" for r in pass_roots] for _, pass_roots, _ in trace.passes],
        pass_kinds=[kind for kind, _, _ in trace.passes],
        pass_inputs=[[f"t{r}" for r in inputs] for _, _, inputs in trace.passes],
        source=trace.source,
        capture="lean" if trace.lean else "full",
        grad_reads=[[f"t{rec}", line] for rec, line in trace.grad_reads],
        bindings={name: f"t{rec}" for name, rec in trace.bindings.items()},
        grad_hooks=[[f"t{rec}", line, method] for rec, line, method in trace.grad_hooks],
        notes=list(trace.notes),
        coarse=trace.coarse,
        past_detail=[f"t{rec}" for rec in sorted(trace.past_detail)],
        module_classes=dict(trace.module_classes),
        module_calls=list(trace.module_calls),
        optimizer_calls=[{**call, "updated": [f"t{rec}" for rec in call["updated"]]} for call in trace.optimizer_calls],
    )
    labels = _display_names(trace)
    consumed = {rec for inputs in trace.inputs for _, rec in inputs}
    outputs = set(roots) if trace.passes else _unconsumed_named(trace, consumed)
    graph.add_nodes_from((f"t{rec}", _tensor_attrs(trace, rec, labels, outputs)) for rec in range(trace.num_tensors))
    names = {}  # id(func) -> its short and qualified names: a run calls few functions, many times
    graph.add_nodes_from((f"op{op}", _op_attrs(trace, op, names)) for op in range(len(trace.funcs)))
    for op, inputs in enumerate(trace.inputs):
        differentiable = _carries_gradient(trace, op)
        for slot, rec in inputs:
            key = _slot_text(slot)
            flows = trace.flows.get((op, slot), {})
            graph.add_edge(f"t{rec}", f"op{op}", key=key, slot=key,
                           differentiable=differentiable and trace.requires_grad[rec],
                           flow=flows[max(flows)] if flows else None, pass_flows=flows)
        for i, rec in enumerate(trace.outputs[op]):
            graph.add_edge(f"op{op}", f"t{rec}", key=i, slot=f"out{i}")
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
        contracted.add_edges_from((source, v) for v in first_reached(graph, graph.successors(source), named))
    return contracted


def first_reached(graph: nx.MultiDiGraph, starts, stops: set, edge_ok=None) -> set:
    """The `stops` reached from `starts` along paths through non-stop nodes (iterative; `edge_ok(data)` filters)."""
    stack, seen, found = list(starts), set(), set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node in stops:
            found.add(node)
        else:
            stack.extend(v for _, v, d in graph.out_edges(node, data=True) if edge_ok is None or edge_ok(d))
    return found


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


def label_name(label: str) -> str:
    """The name a label numbers: `h₂` (the second tensor bound to h) -> `h`."""
    return label.rstrip(_SUBSCRIPT_DIGITS)


def _tensor_attrs(trace: Trace, rec: int, labels: dict, outputs: set) -> dict:
    names = trace.names.get(rec, ())
    name, line, expr = names[0] if names else (None, None, None)
    previous = trace.previous.get(rec)
    return {
        "kind": "tensor",
        "name": trace.params.get(rec) or name,
        "label": labels.get(rec),
        "aliases": [n for n, _, _ in names if n != (trace.params.get(rec) or name)],
        "expr": expr,
        "line": line,
        "shape": list(trace.shapes[rec]),
        "dtype": trace.dtypes[rec],
        "device": trace.devices[rec],
        "requires_grad": trace.requires_grad[rec],
        "is_leaf": trace.leaf_flags.get(rec, trace.grad_fns[rec] is None),
        "grad_fn": trace.grad_fns[rec],
        "version": trace.versions[rec],
        "previous": None if previous is None else f"t{previous}",
        "param": trace.params.get(rec),
        "value": trace.values[rec],
        "stats": trace.stats[rec],
        "grad": trace.grads[rec],
        "grad_stats": trace.grad_stats[rec],
        "pass_grads": trace.pass_grads.get(rec, {}),
        "grad_before": trace.grads_before.get(rec),
        "role": _role(trace, rec, name, outputs),
    }


def _role(trace: Trace, rec: int, name, outputs: set) -> str:
    if rec in outputs:
        return "output"
    if not trace.requires_grad[rec]:
        return "constant"
    if trace.grad_fns[rec] is None:
        return "leaf"
    return "named" if name or rec in trace.params else "intermediate"


def _unconsumed_named(trace: Trace, consumed: set) -> set:
    """Without a backward pass, the outputs are the named non-leaf tensors nothing else used."""
    return {rec for rec in trace.names
            if rec not in consumed and trace.requires_grad[rec] and trace.grad_fns[rec] is not None}


def _op_attrs(trace: Trace, op: int, names: dict) -> dict:
    func = trace.funcs[op]
    short, qualified = names.get(id(func)) or names.setdefault(id(func), (_short_name(func), _qualified_name(func)))
    consts = [(_slot_text(slot), _const_text(value)) for slot, value in trace.consts[op]
              if isinstance(slot, int) or value is not False]  # `inplace=False`, `keepdim=False`: defaults
    return {
        "kind": "op",
        "op": short,
        "func": qualified,
        "consts": ", ".join(t if s.isdigit() else f"{s}={t}" for s, t in consts) if consts else "",
        "label": op_label(short, consts) if consts else short,
        "op_kind": trace.op_kinds[op],
        "module": trace.modules[op],
        "line": trace.lines[op],
        "grad_enabled": trace.grad_enabled[op],
        "result": trace.results[op],
        "optimizer": trace.optimizers[op] if op < len(trace.optimizers) else None,
    }


def _carries_gradient(trace: Trace, op: int) -> bool:
    """An op passes gradient back when grad mode was on and something it made requires grad."""
    return (trace.op_kinds[op] != "exit" and trace.grad_enabled[op]
            and any(trace.requires_grad[r] for r in trace.outputs[op]))


def _display_names(trace: Trace) -> dict:
    """Record -> `x`, or `h₁ h₂ h₃` when one name was bound to several tensors (a loop); a name's tensor made past
    the detail budget is plain `h`: what the name holds, its number among the versions not known."""
    names = {rec: trace.params.get(rec) or trace.names[rec][0][0] for rec in sorted({*trace.names, *trace.params})}
    counts, seen = Counter(names.values()), Counter()
    labels = {}
    for rec, name in names.items():
        if counts[name] > 1 and rec not in trace.past_detail:
            seen[name] += 1
            labels[rec] = f"{name}{str(seen[name]).translate(_SUBSCRIPTS)}"
        else:
            labels[rec] = name
    return labels


def _short_name(func) -> str:
    name = getattr(func, "__name__", None) or str(func)
    owner = getattr(func, "__self__", None)
    if name == "__get__" and owner is not None:  # a tensor-valued attribute: .T, .real, .data
        return getattr(owner, "__name__", name)
    if name == "apply" and isinstance(owner, type):  # a custom autograd Function
        return f"{owner.__name__}.apply"
    return _OP_NAMES.get(name, name)


def _qualified_name(func) -> str:
    name = _short_name(func) if getattr(func, "__name__", "") in ("__get__", "apply") else \
        getattr(func, "__name__", None) or str(func)
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
