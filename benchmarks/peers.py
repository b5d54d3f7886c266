"""gradmagic against plain torch and its peers, in one process: torchviz (make_dot + Graphviz) and TorchLens.

    pip install -e ".[bench]"   # torchviz, torchlens; torchviz also needs Graphviz's `dot` program
    python benchmarks/peers.py [--repeats N]

Each row: median seconds and the ratio to the plain forward+backward. Peers that are missing print "n/a".
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time

import torch
from torch import nn

import gradmagic


class RNN(nn.Module):
    """A tanh RNN cell unrolled over the steps of its input."""

    def __init__(self, hidden: int = 64, inputs: int = 32):
        super().__init__()
        self.wx, self.wh = nn.Linear(inputs, hidden), nn.Linear(hidden, hidden)

    def forward(self, xs):
        h = torch.zeros(xs.shape[1], self.wh.out_features)
        for x in xs:
            h = torch.tanh(self.wx(x) + self.wh(h))
        return h


def models() -> dict:
    """name -> (model, input) pairs, seeded."""
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512))
    cnn = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    return {
        "MLP 3xLinear(512) b64": (mlp, torch.randn(64, 512)),
        "small CNN b16 32x32": (cnn, torch.randn(16, 3, 32, 32)),
        "RNN h64, 30 steps": (RNN(), torch.randn(30, 1, 32)),
        "RNN h64, 1,000 steps": (RNN(), torch.randn(1000, 1, 32)),
    }


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain(model, x):
    model(x).pow(2).mean().backward()


def with_gradmagic(model, x, picture: bool, lean: bool = False):
    result = gradmagic.run("loss = model(x).pow(2).mean()\nloss.backward()", {"torch": torch, "model": model, "x": x},
                           lean=lean)
    if picture:
        result.image("png")


def with_torchviz(model, x):
    import torchviz

    loss = model(x).pow(2).mean()
    loss.backward()
    with tempfile.TemporaryDirectory() as folder:
        torchviz.make_dot(loss, params=dict(model.named_parameters())).render(f"{folder}/g", format="svg")


def forward_only(model, x):
    model(x)


def with_torchlens(model, x):
    import torchlens
    from torchlens.options import CaptureOptions

    # TorchLens wraps torch's functions globally; unwrap so later rows time plain torch again
    torchlens.trace(model, x, capture=CaptureOptions(unwrap_when_done=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--torchviz-limit", type=int, default=200,
                        help="skip torchviz on graphs with more steps than this (Graphviz takes minutes)")
    args = parser.parse_args()
    has_dot = shutil.which("dot") is not None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}; "
          f"dot: {subprocess.run(['dot', '-V'], capture_output=True, text=True).stderr.strip() if has_dot else 'missing'}")
    print("ratios: gradmagic (full capture), +picture, the lean capture with its picture and torchviz+dot against"
          " plain forward+backward; TorchLens (forward only, all activations saved) against plain forward")
    header = ["plain fwd", "plain f+b", "gradmagic f+b", "+picture (PNG)", "--lean +picture", "torchviz+dot",
              "TorchLens fwd"]
    print(f"{'model':22}" + "".join(f"{h:>21}" for h in header))
    for name, (model, x) in models().items():
        plain(model, x)  # warm-up
        forward = median_time(lambda: forward_only(model, x), args.repeats)
        base = median_time(lambda: plain(model, x), args.repeats)
        cells = [f"{forward:.4f}s", f"{base:.4f}s"]
        for fn in (lambda: with_gradmagic(model, x, False), lambda: with_gradmagic(model, x, True),
                   lambda: with_gradmagic(model, x, True, lean=True)):
            cells.append(_ratio(median_time(fn, args.repeats), base))
        big = x.shape[0] > args.torchviz_limit and "RNN" in name
        cells.append(_peer(lambda: with_torchviz(model, x), args.repeats, base, has_dot and not big,
                           "skipped (minutes in dot)" if big else "n/a"))
        cells.append(_peer(lambda: with_torchlens(model, x), args.repeats, forward, True, "n/a"))
        print(f"{name:22}" + "".join(f"{c:>21}" for c in cells))


def _ratio(seconds: float, base: float) -> str:
    return f"{seconds:.3f}s {seconds / base:6.1f}x"


def _peer(fn, repeats: int, base: float, enabled: bool, otherwise: str) -> str:
    if not enabled:
        return otherwise
    try:
        return _ratio(median_time(fn, repeats), base)
    except ImportError:
        return "n/a"
    except Exception as error:  # a peer failing is a result too
        return type(error).__name__[:20]


if __name__ == "__main__":
    main()
