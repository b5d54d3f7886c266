"""Capture overhead: plain torch vs gradmagic.run (full and lean capture) on the same programs, in one process.

    python benchmarks/capture_overhead.py [--repeats N] [--device cuda] [--only TEXT]

Prints median seconds and ratios to plain torch, runs interleaved. Targets (issue 4): seed <=2x, MLP <=1.1x,
RNN <=1.3x. "full" records every op (torch function mode); "lean" reads torch's autograd graph (lean.py).
"""
from __future__ import annotations

import argparse
import gc
import statistics
import time

import torch

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


KINDS = ("plain", "full", "full+graph", "lean", "lean+graph")


def measure(source: str, namespace, repeats: int, device: str = "cpu") -> tuple[dict, dict]:
    """Median seconds of each kind of run, and the median of its ratios to the plain run of the same round.

    The kinds alternate within each round, so a ratio compares runs made seconds apart: drifts of the machine
    (other tenants, clock) cancel out of it, which they do not from a ratio of medians.
    """
    code = compile(source, "<plain>", "exec")

    def plain_run():
        # gradmagic.run keeps the objects that existed before it out of the collector's full passes (gc_frozen);
        # the plain run gets the same, so a ratio measures gradmagic's own work, not a difference in collections
        with gc_frozen(), torch.device(device):
            exec(code, namespace())

    runs = {
        "plain": plain_run,
        "full": lambda: gradmagic.run(source, namespace(), device=device),
        "full+graph": lambda: gradmagic.run(source, namespace(), device=device).graph,
        "lean": lambda: gradmagic.run(source, namespace(), device=device, lean=True),
        "lean+graph": lambda: gradmagic.run(source, namespace(), device=device, lean=True).graph,
    }
    times = {kind: [] for kind in KINDS}
    for _ in range(repeats):
        for kind in KINDS:
            times[kind].append(time_once(runs[kind], device))
    ratios = {kind: statistics.median(t / p for t, p in zip(values, times["plain"])) for kind, values in times.items()}
    return {kind: statistics.median(values) for kind, values in times.items()}, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--only", default="", help="run only the programs whose name contains this text")
    args = parser.parse_args()
    where = torch.cuda.get_device_name() if args.device != "cpu" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}, {args.repeats} rounds: median seconds, median ratio to the plain run "
          f"of the same round")
    print("full = every op recorded; lean = torch's autograd graph read after the run (--lean); "
          "+graph = also the networkx graph; us/op = extra full-capture time per recorded op")
    print(f"{'program':34} {'plain':>7} {'full':>14} {'lean':>14} {'target':>6} {'full+graph':>14} "
          f"{'lean+graph':>14} {'ops':>7} {'us/op':>6}")
    for name, (source, namespace, target) in setups(args.device).items():
        if args.only.lower() not in name.lower():
            continue
        measure(source, namespace, 1, args.device)  # warm-up
        t, ratio = measure(source, namespace, args.repeats, args.device)
        ops = len(gradmagic.run(source, namespace(), device=args.device).trace.funcs)
        cells = "".join(f" {t[kind]:7.3f} {ratio[kind]:5.2f}x" for kind in ("full", "lean"))
        graphs = "".join(f" {t[kind]:7.3f} {ratio[kind]:5.2f}x" for kind in ("full+graph", "lean+graph"))
        goal = f"{target:5.1f}x" if target else "     —"
        print(f"{name:34} {t['plain']:7.3f}{cells} {goal}{graphs} {ops:7d} {(t['full'] - t['plain']) / ops * 1e6:6.1f}")


if __name__ == "__main__":
    main()
