"""Capture overhead: plain torch vs gradmagic.run (full and lean capture) on the same programs, in one process.

    python benchmarks/capture_overhead.py [--repeats N] [--device cuda] [--only TEXT] [--budget SPEC] [--kinds ...]

Prints median seconds and ratios to plain torch, runs interleaved. Targets (issue 4): seed <=2x, MLP <=1.1x,
RNN <=1.3x. "full" records every op (torch function mode); "lean" reads torch's autograd graph (lean.py);
"default+picture" is what %%autograd shows (issue 13 goal: <= 2x plain + 0.3 s): the default capture, then the
result's display (table, notes, picture as PNG) made by IPython's display formatter as `display(result)` makes it.
`--budget` (as %%autograd --budget, e.g. ops=200000) raises the detail budget so the detail path is measured.
"""
from __future__ import annotations

import argparse
import gc
import re
import statistics
import time

import torch
from IPython.core.formatters import DisplayFormatter

import gradmagic
from gradmagic.runner import gc_frozen

SEED_LOOP = """
for _ in range(10_000):
    a = torch.tensor(5.0, requires_grad=True)
    x = torch.tensor(10.0, requires_grad=True)
    y = 2*x*x + 3*a
    b = 6*x*a
    z = y*y + 1/(b*y)
    z.backward()
"""

MLP = """
for _ in range(50):
    out = mlp(batch)
    loss = out.pow(2).mean()
    mlp.zero_grad()
    loss.backward()
"""

CNN = """
for _ in range(20):
    loss = cnn(images).logsumexp(1).mean()
    cnn.zero_grad()
    loss.backward()
"""

# The seed's chain rule repeated, summed, one backward at the end: 11 ops an iteration, 100,005 ops in all.
LOOP_100K = """
a = torch.tensor(5.0, requires_grad=True)
x = torch.tensor(10.0, requires_grad=True)
total = torch.tensor(0.0)
for _ in range(9_091):
    y = 2*x*x + 3*a
    b = 6*x*a
    z = y*y + 1/(b*y)
    total = total + z
total.backward()
"""

RNN = """
h = h0
for t in range(1000):
    h = torch.tanh(xs[t] @ wx + h @ wh + bias)
loss = h.sum()
loss.backward()
"""


def setups(device: str = "cpu") -> dict:
    """Each program with a builder for the namespace it starts from (same seed every time)."""
    def mlp_ns():
        torch.manual_seed(0)
        layers = [torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(),
                  torch.nn.Linear(512, 512)]
        return {"torch": torch, "mlp": torch.nn.Sequential(*layers).to(device),
                "batch": torch.randn(64, 512, device=device)}

    def rnn_ns():
        torch.manual_seed(0)
        return {"torch": torch, "h0": torch.zeros(1, 64, device=device), "xs": torch.randn(1000, 1, 32, device=device),
                "wx": torch.randn(32, 64, device=device, requires_grad=True),
                "wh": (torch.randn(64, 64, device=device) * 0.1).requires_grad_(),
                "bias": torch.zeros(64, device=device, requires_grad=True)}

    def cnn_ns():
        torch.manual_seed(0)
        nn = torch.nn
        cnn = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
        return {"torch": torch, "cnn": cnn.to(device), "images": torch.randn(16, 3, 32, 32, device=device)}

    return {
        "seed program x10,000": (SEED_LOOP, lambda: {"torch": torch}, 2.0),
        "seed chain summed, 100,005 ops": (LOOP_100K, lambda: {"torch": torch}, 2.0),
        "MLP 3xLinear(512) b64 fwd+bwd x50": (MLP, mlp_ns, 1.1),
        "RNN cell h64, 1,000 steps fwd+bwd": (RNN, rnn_ns, 1.3),
        "small CNN b16 32x32 fwd+bwd x20": (CNN, cnn_ns, None),
    }


def time_once(fn, device: str) -> float:
    """Seconds of one call, after the previous run's result and garbage are gone (not billed to this one)."""
    gradmagic.run("")  # gradmagic.last() let go of the previous result here, outside the timing
    gc.collect()
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device != "cpu":
        torch.cuda.synchronize()
    return time.perf_counter() - start


KINDS = ("plain", "full", "full+graph", "lean", "lean+graph", "default+picture")


def shown(result) -> dict:
    """The result displayed as %%autograd displays it (IPython's display formatter: table, notes, PNG picture)."""
    return DisplayFormatter().format(result)[0]


def measure(source: str, namespace, repeats: int, device: str = "cpu", budget=None, kinds=KINDS,
            ops: list | None = None) -> tuple[dict, dict]:
    """Median seconds of each kind of run, and the median of its ratios to the plain run of the same round;
    `ops` receives op_counts of each full capture.

    The kinds alternate within each round, so a ratio compares runs made seconds apart: drifts of the machine
    (other tenants, clock) cancel out of it, which they do not from a ratio of medians.
    """
    code = compile(source, "<plain>", "exec")

    def plain_run():
        # gradmagic.run keeps the objects that existed before it out of the collector's full passes (gc_frozen);
        # the plain run gets the same, so a ratio measures gradmagic's own work, not a difference in collections
        with gc_frozen(), torch.device(device):
            exec(code, namespace())

    def captured(lean: bool = False):
        return gradmagic.run(source, namespace(), device=device, lean=lean, budget=budget)

    def magic_run():
        with gc_frozen():  # as %%autograd: one frozen stretch around the cell and its display
            shown(captured())

    def full_run():
        result = captured()
        if ops is not None:
            ops.append(op_counts(result))

    runs = {
        "plain": plain_run,
        "full": full_run,
        "full+graph": lambda: captured().graph,
        "lean": lambda: captured(lean=True),
        "lean+graph": lambda: captured(lean=True).graph,
        "default+picture": magic_run,
    }
    kinds = ["plain", *(kind for kind in kinds if kind != "plain")]
    times = {kind: [] for kind in kinds}
    for _ in range(repeats):
        for kind in kinds:
            times[kind].append(time_once(runs[kind], device))
    ratios = {kind: statistics.median(t / p for t, p in zip(values, times["plain"])) for kind, values in times.items()}
    return {kind: statistics.median(values) for kind, values in times.items()}, ratios


def op_counts(result) -> tuple[int, int]:
    """(ops recorded in detail, ops in all): past the budget the capture only counts ops, and says how many."""
    detail = len(result.trace.funcs)
    counted = [int(m.group(1).replace(",", "")) for note in result.trace.notes
               for m in [re.search(r"the remaining ([0-9,]+) ops as counts", note)] if m]
    return detail, detail + sum(counted)


def row(name: str, t: dict, ratio: dict, target, ops: tuple) -> str:
    """One line of the table; kinds not measured show as a dash."""
    def cell(kind):
        return f" {t[kind]:7.3f} {ratio[kind]:5.2f}x" if kind in t else f" {'—':>14}"

    detail, total = ops
    goal = f"{target:5.1f}x" if target else "     —"
    recorded = "all" if detail == total else f"{detail:,} of {total:,}"
    per_op = f"{(t['full'] - t['plain']) / total * 1e6:6.1f}" if "full" in t else f"{'—':>6}"
    return (f"{name:34} {t['plain']:7.3f}{cell('full')}{cell('lean')} {goal}{cell('full+graph')}{cell('lean+graph')}"
            f" {cell('default+picture')} {total:7d} {recorded:>18} {per_op}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--only", default="", help="run only the programs whose name contains this text")
    parser.add_argument("--budget", default=None, metavar="SPEC",
                        help="the captures' budget as %%%%autograd --budget takes it, e.g. ops=200000 (default: "
                             "gradmagic's, ~10,500 graph nodes in detail)")
    parser.add_argument("--warmup", type=int, default=1, help="rounds run first and not counted")
    parser.add_argument("--kinds", nargs="+", choices=KINDS[1:], default=KINDS[1:], help="the runs to time")
    args = parser.parse_args()
    where = torch.cuda.get_device_name() if args.device != "cpu" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}, {args.repeats} rounds, budget {args.budget or 'default'}: "
          f"median seconds, median ratio to the plain run of the same round")
    print("full = every op recorded; lean = torch's autograd graph read after the run (--lean); "
          "+graph = also the networkx graph; default+picture = full, then displayed as %%autograd does (PNG); "
          "recorded = ops in detail (the rest counted past the budget); us/op = extra full-capture time per op")
    print(f"{'program':34} {'plain':>7} {'full':>14} {'lean':>14} {'target':>6} {'full+graph':>14} "
          f"{'lean+graph':>14} {'default+picture':>15} {'ops':>7} {'recorded':>18} {'us/op':>6}")
    for name, (source, namespace, target) in setups(args.device).items():
        if args.only.lower() not in name.lower():
            continue
        for _ in range(args.warmup):
            measure(source, namespace, 1, args.device, args.budget, args.kinds)
        ops = []
        t, ratio = measure(source, namespace, args.repeats, args.device, args.budget, args.kinds, ops)
        if not ops:
            ops.append(op_counts(gradmagic.run(source, namespace(), device=args.device, budget=args.budget)))
        print(row(name, t, ratio, target, ops[-1]), flush=True)


if __name__ == "__main__":
    main()
