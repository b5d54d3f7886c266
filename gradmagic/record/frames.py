"""Stack frames: which line of the code made a call, found by walking out past gradmagic's own frames.

No lookup depends on how deep gradmagic's own calls are: each starts from the first frame outside the package (and
outside any other file named), so moving code between gradmagic's functions never shifts a line. The recorder's
hot path may say how many of its own frames to skip unseen (`ours`, a lower bound): the walk still goes past more.
"""
from __future__ import annotations

import contextlib
import os
import sys

import torch

__all__ = ["caller_line", "outside_frame", "inside_nn_init", "TORCH_FRAMES", "CONTEXTLIB"]

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_NN_INIT_FILE = torch.nn.init.__file__
#: contextlib's file, for `outside_frame(CONTEXTLIB)`: `capture()` entered directly or through an ExitStack.
CONTEXTLIB = contextlib.__file__
#: Frames of torch between an operator and the code's line: torch's Python wrapper, handle_torch_function.
TORCH_FRAMES = 3


def caller_line(filename: str, tries: int = TORCH_FRAMES, *, ours: int = 0) -> int | None:
    """The line of `filename` that called into torch: among the first `tries` frames outside gradmagic.

    `ours`: how many frames, from the caller out, are gradmagic's on every path (the walk goes past any more):
    skipping them is cheaper, as Python 3.11 makes a frame object for each frame the walk looks at."""
    try:
        frame = sys._getframe(1 + ours)
    except ValueError:  # the stack is not that deep: no frame outside
        return None
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    for _ in range(tries):
        if frame is None:
            return None
        if frame.f_code.co_filename == filename:
            return frame.f_lineno
        frame = frame.f_back
    return None


def outside_frame(*files: str):
    """The innermost frame of code that is neither gradmagic's nor in `files` (`capture()`'s caller)."""
    frame = sys._getframe(1)
    while frame is not None and (frame.f_code.co_filename.startswith(_PACKAGE) or frame.f_code.co_filename in files):
        frame = frame.f_back
    return frame


def inside_nn_init() -> bool:
    """True when the in-place op being recorded was called from torch.nn.init (a parameter's initialisation):
    one of the first three frames outside gradmagic is nn.init's (`init.ones_` -> `_no_grad_fill_` -> `fill_`)."""
    frame = outside_frame()
    for _ in range(3):
        if frame is None:
            return False
        if frame.f_code.co_filename == _NN_INIT_FILE:
            return True
        frame = frame.f_back
    return False
