"""Memory the capture retains: an MLP whose activations total >= 100 MB, forward + backward under gradmagic.

    python benchmarks/memory.py

Every module output is tracked with a weak reference; after the run, with the Result still held, it prints the
bytes of activations still alive and the size of the Result itself (its pickled graph), against the activations'
total. Target (issue 4): retained <= 5% of the activations.
"""
from __future__ import annotations

import gc
import pickle
import weakref

import torch
from torch import nn

import gradmagic

WIDTH, BATCH, LAYERS = 2048, 1024, 7


def main() -> None:
    for lean in (False, True):
        print(f"{'lean' if lean else 'full'} capture:")
        measure(lean)


def measure(lean: bool) -> None:
    torch.manual_seed(0)
    layers = [m for _ in range(LAYERS) for m in (nn.Linear(WIDTH, WIDTH), nn.ReLU())]
    model = nn.Sequential(*layers)
    activations = []  # (weakref, bytes)

    def keep(module, args, output):
        activations.append((weakref.ref(output), output.numel() * output.element_size()))

    handles = [m.register_forward_hook(keep) for m in model]
    namespace = {"torch": torch, "model": model, "x": torch.randn(BATCH, WIDTH)}
    result = gradmagic.run("loss = model(x).pow(2).mean()\nloss.backward()", namespace, lean=lean)
    for handle in handles:
        handle.remove()
    del namespace
    gc.collect()
    total = sum(size for _, size in activations)
    unread = sum(size for ref, size in activations if ref() is not None)  # the lean Result reads its graph lazily
    kept = len(pickle.dumps(result.graph))
    gc.collect()
    alive = sum(size for ref, size in activations if ref() is not None)
    print(f"  activations: {len(activations)} tensors, {total / 2**20:.1f} MiB in all")
    print(f"  alive after the run (Result held): {unread / 2**20:.2f} MiB before its graph is built, "
          f"{alive / 2**20:.2f} MiB after; Result's graph pickled: {kept / 2**10:.1f} KiB")
    print(f"  retained / activations = {(alive + kept) / total:.4%}  (target <= 5%)")


if __name__ == "__main__":
    main()
