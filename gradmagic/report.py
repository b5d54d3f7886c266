"""Report stage: the named tensors as a table (HTML and aligned text) and a one-line story of the backward pass."""
from __future__ import annotations

import html

import networkx as nx

from .text import grad_text, pass_grad, shape_text, value_text

__all__ = ["COLUMNS", "MAX_ROWS", "table_rows", "text_table", "html_table", "summary_lines"]

COLUMNS = ("name", "expression", "value", "gradient", "shape", "dtype", "device", "leaf / grad_fn")

#: Rows shown before the table says how many more there are (the graph keeps them all).
MAX_ROWS = 40
SUMMARY_LEAVES = 8
SUMMARY_PASSES = 3  # passes spelled out: the first and the last ones


def table_rows(graph: nx.MultiDiGraph) -> list:
    """One row of text per named tensor (each loop iteration and in-place version its own row)."""
    rows = []
    for _, node in graph.nodes(data=True):
        if node["kind"] != "tensor" or not node["name"]:
            continue
        rows.append((
            node["label"],
            node["expr"] or ("parameter" if node["param"] else ""),
            value_text(node["value"], node["stats"]),
            grad_text(node) or ("—" if node["requires_grad"] else ""),
            shape_text(node["shape"]),
            node["dtype"],
            node["device"],
            ("leaf" if node["requires_grad"] else "no grad") if node["is_leaf"] else node["grad_fn"] or "no grad_fn",
        ))
    return rows


def text_table(graph: nx.MultiDiGraph) -> str:
    """The table as aligned plain text."""
    rows = table_rows(graph)
    shown = [COLUMNS, *rows[:MAX_ROWS]]
    widths = [min(48, max(len(row[i]) for row in shown)) for i in range(len(COLUMNS))]
    lines = ["  ".join(_fit(cell, w).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in shown]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if len(rows) > MAX_ROWS:
        lines.append(f"… {len(rows) - MAX_ROWS} more named tensors (all in result.graph)")
    return "\n".join(lines)


def html_table(graph: nx.MultiDiGraph) -> str:
    """The table as an HTML <table> (no JavaScript, no external CSS)."""
    rows = table_rows(graph)
    head = "".join(f"<th style='text-align:left'>{c}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'><code>{html.escape(cell)}</code></td>" for cell in row) + "</tr>"
        for row in rows[:MAX_ROWS]
    )
    more = f"<p>… {len(rows) - MAX_ROWS} more named tensors (all in <code>result.graph</code>)</p>" \
        if len(rows) > MAX_ROWS else ""
    return f"<table class='gradmagic'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def summary_lines(graph: nx.MultiDiGraph) -> list:
    """Per backward pass: what it started from and d root / d leaf for the named leaves on its graph (that pass's
    own gradient, not the accumulated `.grad`); or a hint when there was no pass."""
    tensors = [d for _, d in graph.nodes(data=True) if d["kind"] == "tensor"]
    if not tensors:
        return ["The cell touched no tensors: nothing to draw."]
    notes = list(graph.graph.get("notes", ()))
    passes = graph.graph["passes"]
    if not passes:
        return notes + ["No backward pass ran: values only, no gradients. Call .backward() on a scalar in the cell, "
                "or use %%autograd --backward NAME."]
    lines = notes
    if passes <= SUMMARY_PASSES + 1:  # eliding one pass would save nothing
        for i in range(passes):
            lines += _pass_lines(graph, i)
    else:  # a training loop: the first pass and the last ones
        lines += _pass_lines(graph, 0)
        lines.append(f"… {passes - SUMMARY_PASSES} more backward passes like these")
        for i in range(passes - SUMMARY_PASSES + 1, passes):
            lines += _pass_lines(graph, i)
    leaves = [d for d in tensors if d["name"] and d["is_leaf"] and d["requires_grad"]]
    missed = [d["label"] for d in leaves if not d["pass_grads"] and not grad_text(d)]
    if missed:
        lines.append(f"no gradient reached: {', '.join(missed[:SUMMARY_LEAVES])}" + (" …" if len(missed) > SUMMARY_LEAVES else ""))
    return lines


def _pass_lines(graph: nx.MultiDiGraph, index: int) -> list:
    """`backward() on z` and `dz/dx = 17200, …` for one pass."""
    kind, roots = graph.graph["pass_kinds"][index], graph.graph["pass_roots"][index]
    names = ", ".join(graph.nodes[r]["label"] or "an unnamed tensor" for r in roots)
    several = f" (pass {index + 1})" if graph.graph["passes"] > 1 else ""
    lines = [f"{'backward()' if kind == 'backward' else 'torch.autograd.grad'} on {names}{several}"]
    root_name = (graph.nodes[roots[0]]["label"] if roots else None) or "root"
    wrt = set(graph.graph.get("pass_inputs", [[]] * (index + 1))[index])
    reached = [d for n, d in graph.nodes(data=True) if d["kind"] == "tensor" and d["label"] and index in d["pass_grads"]
               and (n in wrt if wrt else d["is_leaf"] and d["requires_grad"])]
    texts = [f"d{root_name}/d{d['label']} = {value_text(*pass_grad(d, index), limit=3)}" for d in reached]
    if texts:
        lines.append(", ".join(texts[:SUMMARY_LEAVES]) + (" …" if len(texts) > SUMMARY_LEAVES else ""))
    return lines


def _fit(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: width - 1] + "…"
