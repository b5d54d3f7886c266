"""Options shared by %%autograd and `python -m gradmagic`, checked before anything runs."""
from __future__ import annotations

from . import export
from .collapse import check_options
from .torchstate import check_device, check_dtype

__all__ = ["check_run_options", "FULL_CAPTURE_ONLY"]

#: What only the full capture can do: it needs every op, constant and gradient flow.
FULL_CAPTURE_ONLY = "needs the full capture (every op, constant and gradient flow); drop --lean"


def check_run_options(*, device=None, dtype=None, depth=None, max_nodes=None, save=(), lean=False, explain=(),
                      check=False):
    """(torch.device or None, torch.dtype or None), or a ValueError saying in one line what is wrong."""
    if lean and explain:
        raise ValueError(f"--explain {FULL_CAPTURE_ONLY}")
    if lean and check:
        raise ValueError(f"--check {FULL_CAPTURE_ONLY}")
    target, floating = check_device(device, option=f"--device {device}"), check_dtype(dtype)
    check_options(depth, max_nodes)
    for path in save:
        export.check_save_path(path)
    return target, floating
