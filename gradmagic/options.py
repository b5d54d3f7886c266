"""Options of %%autograd and `python -m gradmagic`: checked before anything runs, and the names checked after."""
from __future__ import annotations

import re

import torch

from .view import export
from .view.collapse import check_collapse_options
from .graph import label_name
from .result import Result, full_capture_only
from .record.torchstate import check_device, check_dtype

__all__ = ["check_run_options", "check_parsed_options", "apply_view_options", "out_problem", "explain_problem",
           "backward_problem"]


def check_run_options(*, device=None, dtype=None, depth=None, max_nodes=None, save=(), lean=False, explain=(),
                      check=False):
    """(torch.device or None, torch.dtype or None), or a ValueError saying in one line what is wrong."""
    if lean and (explain or check):
        raise ValueError(full_capture_only("--explain" if explain else "--check", "drop --lean"))
    target, floating = check_device(device, option=f"--device {device}"), check_dtype(dtype)
    check_collapse_options(depth, max_nodes)
    for path in save:
        export.check_save_path(path)
    return target, floating


def check_parsed_options(options, *, save) -> tuple:
    """check_run_options for either front end's parsed options (they share the names) and the files to `save`."""
    return check_run_options(device=options.device, dtype=options.dtype, depth=options.depth,
                             max_nodes=options.max_nodes, save=save, lean=options.lean, explain=options.explain,
                             check=options.check)


def apply_view_options(result: Result, options) -> None:
    """Set the picture's options (--all, --rankdir, --depth, --max-nodes) of either front end on `result`."""
    result.show_all, result.rankdir = options.all, options.rankdir
    result.depth, result.max_nodes = options.depth, options.max_nodes


def out_problem(name: str, bound: dict, namespace: dict) -> str | None:
    """Why --out NAME may not receive the result: it may replace an earlier result, never a value the cell or the
    namespace holds under that name; or None."""
    if name in bound:
        return (f"--out {name}: the cell assigns {name!r} itself and the result would replace it; "
                f"choose another name, e.g. --out {name}_graph")
    if name in namespace and not isinstance(namespace[name], Result):
        kind = type(namespace[name]).__name__
        return (f"--out {name}: {name!r} already holds a {kind}, which the result would replace; "
                f"choose another name (default _autograd) or del {name} first")
    return None


def explain_problem(name: str, bound: dict, namespace: dict) -> str | None:
    """Why --explain NAME names nothing the cell assigned or left as a tensor (model.0.weight, xs[0]: their head)."""
    head = label_name(re.split(r"[.\[]", name, maxsplit=1)[0])
    value = namespace.get(head)
    if head in bound or isinstance(value, torch.Tensor) or (head != name and value is not None):
        return None
    tensors = [k for k, v in namespace.items() if isinstance(v, torch.Tensor) and not k.startswith("_")]
    candidates = list(dict.fromkeys([k for k, maybe_tensor in bound.items() if maybe_tensor] + tensors))
    shown = ", ".join(candidates[:12]) + (", ..." if len(candidates) > 12 else "") or "none"
    return (f"--explain {name}: the cell assigns no {head!r} and no tensor of that name exists; "
            f"names to explain: {shown}")


def backward_problem(name: str, namespace: dict) -> str | None:
    """Why --backward NAME cannot be called: no such variable, not a tensor, not a scalar, no grad; or None."""
    if name not in namespace:
        return f"--backward {name}: no variable {name!r} (the cell does not assign it either)"
    value = namespace[name]
    if not isinstance(value, torch.Tensor):
        return f"--backward {name}: {name!r} is a {type(value).__name__}, not a tensor"
    if value.numel() != 1:
        return (f"--backward {name}: {name!r} has shape {tuple(value.shape)}; backward() needs a scalar "
                f"(bind {name}.sum() to a name and pass that)")
    if not value.requires_grad:
        return f"--backward {name}: {name!r} does not require grad, so there is nothing to differentiate"
    return None
