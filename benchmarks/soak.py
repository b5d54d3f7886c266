"""Soak and scale: plain / full / lean side by side, each case in a fresh real kernel (jupyter_client), as a table.

    python benchmarks/soak.py            # 60-s loops, 200 re-runs, 20 RNN re-runs, Ctrl-C after 8 s
    python benchmarks/soak.py --quick    # 10-s loops, 50 re-runs, 5 RNN re-runs: a try in a few minutes

Memory is the kernel's resident set (Linux /proc): `peak` is VmHWM above the resident set before the cell (the
peak is reset first through /proc/self/clear_refs), `growth` the resident set after the last re-run minus after
the first. Times are wall-clock seconds as the client sees them (the cell's start to the kernel going idle).
Goals (issue 11): tiny-op loop peak <= plain + 500 MB; re-run growth <= plain + 20 MB, last run as fast as the
first; Ctrl-C stops the cell within 1 s.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "faults"))
from kernel import Kernel  # noqa: E402  (the failure matrix's real-kernel harness)

MODES = {"plain": "", "full": "%%autograd\n", "lean": "%%autograd --lean\n"}

SETUP = """
import os, re, time, torch
def _rss_mb():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
def _peak_mb():
    return int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024
def _reset_peak():
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
"""

TINY_LOOP = """x = torch.ones(4, requires_grad=True)
t0 = time.time()
while time.time() - t0 < {seconds}:
    y = x * 2 + 1
"""

# An MLP training loop as in the PyTorch tutorial "Learning PyTorch with Examples" (nn + optim), run for a time.
MLP_LOOP = """model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
data, target = torch.randn(32, 64), torch.randint(0, 10, (32,))
t0 = time.time()
while time.time() - t0 < {seconds}:
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(data), target)
    loss.backward()
    opt.step()
"""

SMALL_CELL = """x = torch.randn(8, 8, requires_grad=True)
w = torch.randn(8, 4, requires_grad=True)
y = torch.tanh(x @ w).sum()
y.backward()
"""

# A 300-step Elman RNN unrolled by hand, as in the PyTorch tutorial "NLP From Scratch: Classifying Names".
RNN_CELL = """torch.manual_seed(0)
W_xh = torch.randn(8, 16, requires_grad=True)
W_hh = (torch.randn(16, 16) * 0.1).requires_grad_()
xs = torch.randn(300, 8)
h = torch.zeros(16)
for t in range(300):
    h = torch.tanh(xs[t] @ W_xh + h @ W_hh)
loss = h.pow(2).sum()
loss.backward()
"""

ENDLESS_LOOP = """x = torch.ones(4, requires_grad=True)
while True:
    y = x * 2 + 1
"""


def fresh_kernel() -> Kernel:
    kernel = Kernel()
    assert kernel.run(SETUP).status == "ok"
    return kernel


def peak_of(mode: str, cell: str, timeout: float) -> dict:
    """Peak resident set above the start, and wall time, of one long cell."""
    kernel = fresh_kernel()
    try:
        kernel.run("_reset_peak()")
        before = kernel.value("_rss_mb()")
        start = time.monotonic()
        reply = kernel.run(MODES[mode] + cell, timeout=timeout)
        seconds = time.monotonic() - start
        return {"peak_mb": kernel.value("_peak_mb()") - before, "s": seconds, "status": reply.status}
    finally:
        kernel.shutdown()


def reruns(mode: str, cell: str, times: int) -> dict:
    """Resident-set growth from after the first run to after the last, and first/last run times (median of 3)."""
    kernel = fresh_kernel()
    try:
        seconds, after_first = [], None
        for i in range(times):
            start = time.monotonic()
            status = kernel.run(MODES[mode] + cell).status
            seconds.append(time.monotonic() - start)
            assert status == "ok", f"{mode} re-run {i}: {status}"
            if i == 0:
                after_first = kernel.value("_rss_mb()")
        growth = kernel.value("_rss_mb()") - after_first
        first, last = statistics.median(seconds[:3]), statistics.median(seconds[-3:])
        return {"growth_mb": growth, "per_run_mb": growth / max(times - 1, 1), "first_s": first, "last_s": last}
    finally:
        kernel.shutdown()


def interrupt_latency(mode: str, after: float) -> dict:
    """Seconds from Ctrl-C (SIGINT, as the stop button) to the cell's end, the interrupt sent `after` s in."""
    kernel = fresh_kernel()
    sent = []

    def interrupt_later():
        import threading

        def fire():
            sent.append(time.monotonic())
            kernel.interrupt()

        threading.Timer(after, fire).start()

    try:
        reply = kernel.run(MODES[mode] + ENDLESS_LOOP, timeout=after + 300, on_start=interrupt_later)
        latency = time.monotonic() - sent[0] if sent else float("nan")
        ename = reply.error["ename"] if reply.error else reply.status
        return {"latency_s": latency, "ended": ename, "alive": kernel.alive()}
    finally:
        kernel.shutdown()


def cases(quick: bool) -> list:
    loop_s = 10 if quick else 60
    return [
        (f"tiny-op loop {loop_s} s: peak MB, s", lambda m: peak_of(m, TINY_LOOP.format(seconds=loop_s), 1800),
         ("peak_mb", "s")),
        (f"MLP training {loop_s} s: peak MB, s", lambda m: peak_of(m, MLP_LOOP.format(seconds=loop_s), 1800),
         ("peak_mb", "s")),
        (f"small cell x{50 if quick else 200}: growth MB, first s, last s",
         lambda m: reruns(m, SMALL_CELL, 50 if quick else 200), ("growth_mb", "first_s", "last_s")),
        (f"300-step RNN x{5 if quick else 20}: MB/re-run, first s, last s",
         lambda m: reruns(m, RNN_CELL, 5 if quick else 20), ("per_run_mb", "first_s", "last_s")),
        ("Ctrl-C after 8 s: s to the cell's end", lambda m: interrupt_latency(m, 8.0), ("latency_s", "ended")),
    ]


def cell_text(result: dict, keys: tuple) -> str:
    return " / ".join(f"{result[k]:.2f}" if isinstance(result[k], float) else str(result[k]) for k in keys)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10-s loops, 50 and 5 re-runs")
    parser.add_argument("--only", action="append", default=[], metavar="WORD",
                        help="run only the cases whose title contains WORD (tiny, MLP, small, RNN, Ctrl-C)")
    parser.add_argument("--modes", default="plain,full,lean", help="comma-separated: plain, full, lean")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    print(f"{'case':48} | " + " | ".join(f"{m:>22}" for m in modes), flush=True)
    for title, run, keys in cases(args.quick):
        if args.only and not any(word.lower() in title.lower() for word in args.only):
            continue
        row = []
        for mode in modes:
            try:
                row.append(cell_text(run(mode), keys))
            except Exception as exc:  # one failed case is a figure too, and the table goes on
                row.append(f"failed: {type(exc).__name__}")
        print(f"{title:48} | " + " | ".join(f"{text:>22}" for text in row), flush=True)


if __name__ == "__main__":
    main()
