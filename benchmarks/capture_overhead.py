"""Capture overhead: plain torch vs gradmagic.run on the same programs, interleaved in one process.

    python benchmarks/capture_overhead.py [--repeats N] [--device cuda]

Prints the median seconds of each and their ratio. Targets (issue 2): seed ≤2x, MLP ≤1.1x, RNN ≤1.3x.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import gradmagic

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

    return {
        "seed program x10,000": (SEED_LOOP, lambda: {"torch": torch}, 2.0),
        "MLP 3xLinear(512) b64 fwd+bwd x50": (MLP, mlp_ns, 1.1),
        "RNN cell h64, 1,000 steps fwd+bwd": (RNN, rnn_ns, 1.3),
    }


def time_once(fn, device: str) -> float:
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device != "cpu":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(source: str, namespace, repeats: int, device: str = "cpu") -> tuple[float, float, float]:
    """Median seconds of plain exec and of gradmagic.run, alternating so both see the same machine state."""
    code = compile(source, "<plain>", "exec")
    plain, captured, graphed = [], [], []

    def plain_run():
        with torch.device(device):
            exec(code, namespace())

    for _ in range(repeats):
        plain.append(time_once(plain_run, device))
        captured.append(time_once(lambda: gradmagic.run(source, namespace(), device=device), device))
        graphed.append(time_once(lambda: gradmagic.run(source, namespace(), device=device).graph, device))
    return statistics.median(plain), statistics.median(captured), statistics.median(graphed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--only", default="", help="run only the programs whose name contains this text")
    args = parser.parse_args()
    where = torch.cuda.get_device_name() if args.device != "cpu" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}, median of {args.repeats}")
    print("capture = gradmagic.run (record + values + gradients); +graph = also building the networkx graph;"
          " us/op = extra capture time per recorded op (backward hooks included)")
    print(f"{'program':36} {'plain s':>8} {'capture s':>10} {'ratio':>7} {'target':>7} {'+graph s':>9} {'ratio':>7}"
          f" {'ops':>7} {'us/op':>6}")
    for name, (source, namespace, target) in setups(args.device).items():
        if args.only.lower() not in name.lower():
            continue
        measure(source, namespace, 1, args.device)  # warm-up
        plain, captured, graphed = measure(source, namespace, args.repeats, args.device)
        trace = gradmagic.run(source, namespace(), device=args.device).trace
        ops = len(trace.funcs)
        print(f"{name:36} {plain:8.3f} {captured:10.3f} {captured / plain:6.2f}x {target:6.1f}x "
              f"{graphed:9.3f} {graphed / plain:6.2f}x {ops:7d} {(captured - plain) / ops * 1e6:6.1f}")


if __name__ == "__main__":
    main()
