"""Report stage: the named tensors as a table (HTML and aligned text) and a one-line story of the backward pass."""
from __future__ import annotations

import html
from collections import defaultdict
from typing import NamedTuple

import networkx as nx

from ..text import grad_summary, grad_text, norm_text, pass_grad, shape_text, shorten_middle, value_summary

__all__ = ["COLUMNS", "MAX_ROWS", "ALL_ROWS_HINT", "Row", "table_rows", "more_rows", "text_table", "html_table",
           "summary_lines"]

COLUMNS = ("name", "expression", "shape", "value", "gradient", "grad_fn")

#: Rows of each part of the table shown before it says how many more there are (the graph keeps them all).
MAX_ROWS = 40
SUMMARY_LEAVES = 8
SUMMARY_PASSES = 3  # passes spelled out: the first and the last ones

#: The most characters a column shows; a longer cell ends in … (its whole text in the HTML cell's title).
_WIDTHS = {"name": 32, "expression": 20, "shape": 24, "value": 34, "gradient": 24, "grad_fn": 24}
#: Why a row is not a main one, in the order the table lists them.
_EXTRA_KINDS = ("earlier versions", ".grad tensors", "others")
#: Where the text table points for every row.
ALL_ROWS_HINT = "gradmagic.view.report.text_table(result.graph, all=True)"
# Cells stay on one line and left-aligned against the notebook's own table style (JupyterLab sets
# `:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td {text-align: right}`, hence the doubled class); colours are
# left to the theme.
_STYLE = ("<style>table.gradmagic-table.gradmagic-table {margin: 0 0 0.5em 0} "
          "table.gradmagic-table.gradmagic-table td, table.gradmagic-table.gradmagic-table th "
          "{text-align: left; white-space: nowrap; padding: 1px 6px; font-variant-numeric: tabular-nums}</style>")


class Row(NamedTuple):
    """One named tensor as text: one line per cell."""

    name: str
    expression: str
    shape: str
    value: str
    gradient: str
    grad_fn: str


def table_rows(graph: nx.MultiDiGraph, *, all: bool = False) -> list:  # noqa: A002 - the word users type
    """One Row per name the run ended with, for the tensor it holds then; `all=True` adds more_rows after them."""
    main, extra = _split(graph)
    return _rows(main + [entry for _, entry in extra] if all else main)


def more_rows(graph: nx.MultiDiGraph) -> dict:
    """The rows below the main ones: earlier versions (`w₁`), `.grad` tensors, others (`f.y`), by kind."""
    return {kind: _rows(entries) for kind, entries in _by_kind(_split(graph)[1]).items()}


def _by_kind(extra: list) -> dict:
    return {kind: [entry for k, entry in extra if k == kind] for kind in _EXTRA_KINDS
            if any(k == kind for k, _ in extra)}


def _split(graph: nx.MultiDiGraph) -> tuple:
    """([(tensor data, name)] of the main rows, [(kind, (data, name))] of the other named tensors), each in record
    order; rows are made only for what is shown (a loop leaves thousands of earlier versions)."""
    names = defaultdict(list)
    for name, node in graph.graph.get("bindings", {}).items():
        names[node].append(name)
    main, extra = [], []
    for node, data in graph.nodes(data=True):
        if data["kind"] != "tensor" or not (data["name"] or node in names):
            continue
        if node in names or not graph.graph.get("bindings"):
            main.append((data, ", ".join(names[node]) or data["label"]))
        else:
            extra.append((_extra_kind(data, graph.graph.get("bindings", {})), (data, data["label"])))
    return main, sorted(extra, key=lambda item: _EXTRA_KINDS.index(item[0]))


def _rows(entries: list) -> list:
    return [_row(data, name) for data, name in entries]


def _extra_kind(data: dict, bindings: dict) -> str:
    if data["name"].endswith(".grad"):
        return ".grad tensors"
    return "earlier versions" if data["name"] in bindings else "others"


def _row(data: dict, name: str) -> Row:
    """The Row of one tensor node."""
    kinds = [k for k, plain in ((data["dtype"], "float32"), (data["device"], "cpu")) if k and k != plain]
    if data["is_leaf"]:
        how = "leaf" if data["requires_grad"] else "no grad"
    else:
        how = data["grad_fn"] or "no grad_fn"
    return Row(
        name=name,
        expression=data["expr"] or ("parameter" if data["param"] else ""),
        shape=" ".join([shape_text(data["shape"]), *kinds]),
        value=value_summary(data["value"], data["stats"], dtype=data["dtype"], width=_WIDTHS["value"]),
        gradient=grad_summary(data, width=_WIDTHS["gradient"]) or ("—" if data["requires_grad"] else ""),
        grad_fn=how,
    )


def text_table(graph: nx.MultiDiGraph, *, all: bool = False) -> str:  # noqa: A002 - as table_rows
    """The table as aligned plain text: the main rows, then how many more there are (`all=True`: every row)."""
    main, extra = _split(graph)
    rows = _rows(main + [entry for _, entry in extra] if all else main[:MAX_ROWS])
    cells = [[_fit(cell, column) for column, cell in zip(COLUMNS, row)] for row in (COLUMNS, *rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if not all and len(main) > MAX_ROWS:
        lines.append(f"… {len(main) - MAX_ROWS} more named tensors (all in result.graph)")
    if not all and extra:
        lines.append(f"+ {_count_text(_by_kind(extra))}: {ALL_ROWS_HINT}")
    return "\n".join(lines)


def html_table(graph: nx.MultiDiGraph, *, all: bool = False) -> str:  # noqa: A002 - as table_rows
    """The table as HTML (no JavaScript): the main rows, the others in a collapsed <details> below (`all=True`:
    every row in one table)."""
    main, extra = _split(graph)
    if all:
        main, extra = main + [entry for _, entry in extra], []
    html_text = _STYLE + _html_rows(main)
    if extra:
        summary = html.escape(_count_text(_by_kind(extra)))
        html_text += f"<details><summary>{summary}</summary>{_html_rows([entry for _, entry in extra])}</details>"
    return html_text


def _html_rows(entries: list) -> str:
    """One <table> of at most MAX_ROWS rows, and a line saying how many more there are."""
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(_html_cell(cell, c) for c, cell in zip(COLUMNS, row)) + "</tr>"
                   for row in _rows(entries[:MAX_ROWS]))
    more = f"<p>… {len(entries) - MAX_ROWS} more named tensors (all in <code>result.graph</code>)</p>" \
        if len(entries) > MAX_ROWS else ""
    return f"<table class='gradmagic-table'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _html_cell(cell: str, column: str) -> str:
    shown = _fit(cell, column)
    title = f" title='{html.escape(cell)}'" if shown != cell else ""
    return f"<td{title}>{html.escape(shown)}</td>"


def _count_text(groups: dict) -> str:
    """`8 more rows: 4 earlier versions, 4 .grad tensors`."""
    total = sum(len(rows) for rows in groups.values())
    return f"{total} more row{'s' if total != 1 else ''}: " + ", ".join(f"{len(r)} {k}" for k, r in groups.items())


def summary_lines(graph: nx.MultiDiGraph) -> list:
    """Per backward pass: what it started from and d root / d leaf for the named leaves on its graph (that pass's
    own gradient, not the accumulated `.grad`); or a hint when there was no pass."""
    tensors = [d for _, d in graph.nodes(data=True) if d["kind"] == "tensor"]
    notes = list(graph.graph.get("notes", ()))
    if not tensors:
        return notes or ["The cell touched no tensors: nothing to draw."]
    passes = graph.graph["passes"]
    if not passes and graph.graph.get("coarse"):
        return notes + ["No backward pass ran within the ops recorded in detail: the table's gradients are the "
                        "names' .grad as the cell ended."]
    if not passes:
        return notes + ["No backward pass ran: values only, no gradients. Call .backward() on a scalar in the cell, "
                "or use %%autograd --backward NAME."]
    lines = notes
    # a training loop: the first pass and the last ones (eliding one pass would save nothing)
    shown = range(passes) if passes <= SUMMARY_PASSES + 1 else [0, *range(passes - SUMMARY_PASSES + 1, passes)]
    reached = _reached_by_pass(graph, shown)
    for i in shown:
        lines += _pass_lines(graph, i, reached[i])
        if i == 0 and passes > SUMMARY_PASSES + 1:
            lines.append(f"… {passes - SUMMARY_PASSES} more backward passes like these")
    leaves = [d for d in tensors if d["name"] and d["is_leaf"] and d["requires_grad"]]
    missed = [d["label"] for d in leaves if not d["pass_grads"] and not grad_text(d)]
    if missed:
        lines.append(f"no gradient reached: {', '.join(missed[:SUMMARY_LEAVES])}" + (" …" if len(missed) > SUMMARY_LEAVES else ""))
    return lines


def _reached_by_pass(graph: nx.MultiDiGraph, indices) -> dict:
    """{pass index: [(node, data)] of the labelled tensors that pass gave a gradient}, for `indices`, in record order."""
    reached = {i: [] for i in indices}
    for node, data in graph.nodes(data=True):
        if data["kind"] == "tensor" and data["label"]:
            for i in data["pass_grads"]:
                if i in reached:
                    reached[i].append((node, data))
    return reached


def _pass_lines(graph: nx.MultiDiGraph, index: int, labelled: list) -> list:
    """`backward() on z` and `dz/dx = 17200, …` for one pass, from the `labelled` tensors it reached."""
    kind, roots = graph.graph["pass_kinds"][index], graph.graph["pass_roots"][index]
    names = ", ".join(graph.nodes[r]["label"] or "an unnamed tensor" for r in roots)
    several = f" (pass {index + 1})" if graph.graph["passes"] > 1 else ""
    lines = [f"{'backward()' if kind == 'backward' else 'torch.autograd.grad'} on {names}{several}"]
    root_name = (graph.nodes[roots[0]]["label"] if roots else None) or "root"
    wrt = set(graph.graph.get("pass_inputs", [[]] * (index + 1))[index])
    reached = [d for n, d in labelled if (n in wrt if wrt else d["is_leaf"] and d["requires_grad"])]
    texts = [f"d{root_name}/d{d['label']} = {norm_text(*pass_grad(d, index))}" for d in reached]
    if texts:
        lines.append(", ".join(texts[:SUMMARY_LEAVES]) + (" …" if len(texts) > SUMMARY_LEAVES else ""))
    return lines


def _fit(cell: str, column: str) -> str:
    """The cell cut to its column's width: a name in the middle (`layer.self…proj.weight`), others at the end."""
    width = _WIDTHS[column]
    if len(cell) <= width:
        return cell
    return shorten_middle(cell, width) if column == "name" else cell[: width - 1] + "…"
