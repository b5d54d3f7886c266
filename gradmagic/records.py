"""The capture's columns: what either recorder fills while code runs, and `trace.resolve` reads after it."""
from __future__ import annotations

import sys

__all__ = ["Records", "caller_line"]


class Records:
    """Column lists filled while code runs: one entry per tensor version, per op, per gradient seen."""

    def __init__(self):
        # one entry per tensor version ("record")
        self.objs: list = []  # the tensor itself while small (its value is read after the run), else a weakref
        self.versions: list = []
        self.shapes: list = []
        self.dtypes: list = []
        self.devices: list = []
        self.requires_grad: list = []
        self.grad_fns: list = []
        self.output_nrs: list = []
        self.producers: list = []
        self.depths: list = []  # longest chain of recorded ops leading to the tensor
        self.snapshots: dict = {}  # record -> copy taken before an in-place op overwrote a small tensor
        self.previous: dict = {}  # record -> the record of the same tensor before an in-place op
        # one entry per op; inputs are flat (slot, record, slot, record, ...) tuples, consts (slot, value, ...)
        self.funcs: list = []
        self.inputs: list = []
        self.consts: list = []
        self.outputs: list = []
        self.grad_enabled: list = []
        self.modules: list = []
        self.lines: list = []
        self.results: list = []
        # names, backward passes, gradients (pass, record, value, version-or-None, numel),
        # and gradient flows along tensor->op edges (pass, op, slot, value, version-or-None, numel)
        self.labels: list = []
        self.notes: list = []  # sentences for the user about what was not recorded
        self.grad_reads: list = []  # (record, line): `.grad` read on a non-leaf (always None there)
        self.grads_before: dict = {}  # record of an outside leaf -> its .grad when the run first saw it
        self.passes: list = []
        self.grads: list = []
        self.flows: list = []


def caller_line(filename: str, depth: int, tries: int = 4) -> int | None:
    """The line of `filename` that called into torch, looking up to `tries` frames above `depth`."""
    frame = sys._getframe(depth)
    for _ in range(tries):  # operator -> [torch's Python wrapper -> handle_torch_function] -> the code's line
        if frame is None:
            return None
        if frame.f_code.co_filename == filename:
            return frame.f_lineno
        frame = frame.f_back
    return None
