"""Short human text for values, gradients and tensor nodes, shared by the picture and the table."""
from __future__ import annotations

import math

__all__ = ["number", "value_text", "grad_text", "shown_grad", "pass_grad", "tensor_caption", "shape_text", "flatten",
           "stats_text"]


def number(x) -> str:
    """A number in at most ~7 characters: 10.0, 17200, -5.17e-08, 0.333; a complex one as 1+2j."""
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, complex):
        sign = "-" if x.imag < 0 or (x.imag == 0 and math.copysign(1.0, x.imag) < 0) else "+"
        return f"{_part(x.real)}{sign}{_part(abs(x.imag))}j"
    if isinstance(x, int):
        return str(x) if abs(x) < 10**7 else f"{x:.3g}"
    if x != x or x in (float("inf"), float("-inf")):
        return str(x)
    if x == int(x) and abs(x) < 10**7:
        return f"{x:.1f}" if abs(x) < 1000 else str(int(x))
    return f"{x:.3g}"


def _part(x: float) -> str:
    """One part of a complex number: 1, -2.5, 1.72e+04."""
    return str(int(x)) if x == x and abs(x) < 10**7 and x == int(x) else f"{x:.3g}"


def stats_text(stats: dict) -> str:
    """`n=32768 ∈[-3.1, 3.4] μ=0.002 σ=1` (lovely-tensors style), with nan/inf counts when present.

    Complex tensors' stats are those of |z|; sparse, nested, meta tensors (no plain numbers) say what they are."""
    kind = stats.get("kind")
    head = "" if kind is None else f"{kind} nnz={stats['stored']}" if "stored" in stats else kind
    if "min" not in stats:
        return head or f"n={stats.get('numel', '?')}"
    text = (f"n={stats['numel']} {'|z|' if stats.get('of') == 'abs' else ''}∈[{number(stats['min'])}, "
            f"{number(stats['max'])}] μ={number(stats['mean'])} σ={number(stats['std'])}")
    bad = [f"{stats[k]} {k}" for k in ("nan", "inf") if stats.get(k)]
    return (f"{head} " if head else "") + text + (" " + " ".join(bad) if bad else "")


def value_text(value, stats, *, limit: int = 6) -> str:
    """The exact value when small (first `limit` numbers of a list), else the stats line; '' when unknown."""
    if isinstance(value, dict):  # a gradient or flow kept as stats
        value, stats = None, value
    if stats is not None and "min" not in stats and "norm" in stats:  # a flow kept as its norm only
        return f"‖{number(stats['norm'])}‖"
    if stats is not None:
        return stats_text(stats)
    if value is None:
        return ""
    if isinstance(value, list):
        flat = flatten(value)
        shown = ", ".join(number(v) for v in flat[:limit])
        return f"[{shown}{', …' if len(flat) > limit else ''}]"
    return number(value)


def grad_text(node: dict, *, limit: int = 6) -> str:
    """The tensor's `.grad` as text, else `∂ …` for the gradient that reached it in the last pass, '' for none."""
    value, stats = shown_grad(node)
    text = value_text(value, stats, limit=limit)
    return text if not text or node.get("grad") is not None or node.get("grad_stats") is not None else f"∂ {text}"


def shown_grad(node: dict) -> tuple:
    """(value, stats) of the gradient to show: `.grad` when set, else the last backward pass's gradient."""
    if node.get("grad") is not None or node.get("grad_stats") is not None:
        return node.get("grad"), node.get("grad_stats")
    passes = node.get("pass_grads") or {}
    return pass_grad(node, max(passes)) if passes else (None, None)


def pass_grad(node: dict, pass_index) -> tuple:
    """(value, stats) of the gradient that reached the tensor in one backward pass ((None, None) if none)."""
    grad = (node.get("pass_grads") or {}).get(pass_index)
    return (None, grad) if isinstance(grad, dict) else (grad, None)


def shape_text(shape) -> str:
    """`3×4`, `scalar`; a ragged dimension of a nested tensor (-1) as `*`."""
    return "scalar" if not shape else "×".join("*" if n == -1 else str(n) for n in shape)


def tensor_caption(node: dict, *, limit: int = 3) -> str:
    """`x = 10.0 · ∇ 17200`: name, value and gradient on one line; larger tensors by shape, mean and ‖∇‖."""
    name = node.get("label") or ""
    value, stats = node.get("value"), node.get("stats")
    if isinstance(value, dict):  # a tensor with no plain numbers, summarised (meta, sparse, nested)
        value, stats = None, value
    flat = flatten(value) if isinstance(value, list) else None
    if stats is not None and "mean" not in stats:
        head = f"{name} {shape_text(node.get('shape'))} {stats.get('kind') or ''}".strip()
    elif stats is not None or (flat is not None and len(flat) > limit):
        mean = stats["mean"] if stats else _mean(flat)
        magnitude = "|z|" if stats and stats.get("of") == "abs" else ""
        head = f"{name} {shape_text(node.get('shape'))} μ{magnitude}={number(mean)}".strip()
    else:
        value = value_text(value, None, limit=limit)
        head = f"{name} = {value}" if name and value else name or value or shape_text(node.get("shape"))
    grad, grad_stats = shown_grad(node)
    if isinstance(grad, dict):
        grad, grad_stats = None, grad
    if grad_stats is not None:
        norm = grad_stats.get("norm")
        return f"{head} · ∇ {'‖' + number(norm) + '‖' if norm is not None else grad_stats.get('kind') or '?'}"
    if isinstance(grad, list) and len(flatten(grad)) > limit:
        return f"{head} · ∇ ‖{number(_norm(flatten(grad)))}‖"
    if grad is not None:
        return f"{head} · ∇ {value_text(grad, None, limit=limit)}"
    return head


def _mean(values: list) -> float:
    return sum(values) / len(values) if values else float("nan")


def _norm(values: list) -> float:
    return sum(abs(v) ** 2 for v in values) ** 0.5


def flatten(value) -> list:
    """The numbers of a nested list in order (a number gives itself), without recursion."""
    out, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out
