"""The user's own frames of a traceback: what the front ends show when the user's code raises."""
from __future__ import annotations

import os
import types

__all__ = ["user_traceback"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_traceback(tb: types.TracebackType | None, filename: str) -> types.TracebackType | None:
    """The traceback from the first frame of `filename` on, without the capture's frames; None if it never ran there.

    What is left is what a plain run of the same code would show: the capture's TorchFunctionMode and wrappers
    add frames (gradmagic's own, and the torch function that dispatched to them before running again).
    """
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    if tb is None:
        return None
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    kept = [e for i, e in enumerate(entries) if not _added_by_capture(entries, i)]
    chain = None
    for entry in reversed(kept):
        chain = types.TracebackType(chain, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return chain


def _added_by_capture(entries: list, i: int) -> bool:
    """A gradmagic frame, torch's dispatch to a function mode, or the torch function that dispatched (it runs again)."""
    if _ours(entries[i]):
        return True
    if _dispatch(entries, i):
        return True
    return i + 1 < len(entries) and _dispatch(entries, i + 1) and entries[i].tb_frame.f_code.co_filename != \
        entries[0].tb_frame.f_code.co_filename


def _ours(entry) -> bool:
    """A frame of gradmagic, or of the device context --device pushes (torch >= 2.0: torch/utils/_device.py)."""
    code = entry.tb_frame.f_code
    return code.co_filename.startswith(_PACKAGE) or \
        code.co_name == "__torch_function__" and code.co_filename.endswith(os.path.join("torch", "utils", "_device.py"))


def _dispatch(entries: list, i: int) -> bool:
    """torch.overrides.handle_torch_function handing a call to one of our modes (torch >= 2.0)."""
    code = entries[i].tb_frame.f_code
    return code.co_name == "handle_torch_function" and code.co_filename.endswith("overrides.py") and \
        i + 1 < len(entries) and _ours(entries[i + 1])
