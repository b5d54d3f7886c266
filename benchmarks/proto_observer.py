"""The floor of a Python per-op observer: plain torch vs the cheapest TorchFunctionModes, on the seed loop.

    python benchmarks/proto_observer.py [--repeats N] [--only TEXT]

Modes: `pass` (a bare __torch_function__ pass-through), `tuple` (appends (func, args, output) to one list),
`append` (appends func, the ids of its tensor arguments and
the id of its output to three lists), `append+keep` (as append, and keeps the outputs alive, as a recorder that reads
values later must). Prints median seconds and the extra microseconds per op over plain torch, interleaved rounds.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

sys.path.insert(0, str(Path(__file__).parent))
import capture_overhead as bench  # noqa: E402


class PassThrough(TorchFunctionMode):
    """Calls each function and returns its result: the cost of the mode's dispatch alone."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


class Appender(TorchFunctionMode):
    """Appends (func, ids of the tensor arguments, id of the output) to three lists."""

    def __init__(self, keep: bool = False):
        super().__init__()
        self.funcs, self.inputs, self.outputs, self.kept = [], [], [], [] if keep else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **kwargs) if kwargs else func(*args)
        self.funcs.append(func)
        self.inputs.append([id(a) for a in args if type(a) is torch.Tensor or isinstance(a, torch.Tensor)])
        self.outputs.append(id(out))
        if self.kept is not None:
            self.kept.append(out)
        return out


class TupleAppender(TorchFunctionMode):
    """Appends (func, args, output) to one list: everything kept, nothing looked at (the least a recorder can do)."""

    def __init__(self):
        super().__init__()
        self.funcs = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **kwargs) if kwargs else func(*args)
        self.funcs.append((func, args, out))
        return out


MODES = {"plain": None, "pass": PassThrough, "tuple": TupleAppender, "append": Appender,
         "append+keep": lambda: Appender(keep=True)}


def time_mode(code, namespace, make_mode) -> tuple[float, int]:
    """Seconds of one run under a fresh mode (None: plain), and the ops the mode saw."""
    gc.collect()
    mode = make_mode() if make_mode else None
    start = time.perf_counter()
    with bench.gc_frozen():  # as gradmagic.run and capture_overhead's plain run: no full collections while it runs
        if mode is None:
            exec(code, namespace())
        else:
            with mode:
                exec(code, namespace())
    seconds = time.perf_counter() - start
    return seconds, len(mode.funcs) if isinstance(mode, Appender) else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="seed program")
    args = parser.parse_args()
    for name, (source, namespace, _) in bench.setups().items():
        if args.only.lower() not in name.lower():
            continue
        code = compile(source, "<plain>", "exec")
        ops = time_mode(code, namespace, Appender)[1]
        times = {mode: [] for mode in MODES}
        for _ in range(args.repeats):
            for mode, make in MODES.items():
                times[mode].append(time_mode(code, namespace, make)[0])
        plain, fastest = statistics.median(times["plain"]), min(times["plain"])
        print(f"{name}: {ops:,} ops through __torch_function__; plain {plain:.3f} s = {plain / ops * 1e6:.2f} us/op "
              f"(fastest {fastest / ops * 1e6:.2f}); extra us/op: median of the rounds' differences, and fastest "
              f"run less fastest plain run")
        for mode in list(MODES)[1:]:
            extra = statistics.median(t - p for t, p in zip(times[mode], times["plain"]))
            print(f"  {mode:12} {statistics.median(times[mode]):7.3f} s  +{extra / ops * 1e6:5.2f} us/op  "
                  f"fastest +{(min(times[mode]) - fastest) / ops * 1e6:5.2f} us/op")


if __name__ == "__main__":
    main()
