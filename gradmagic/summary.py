"""Tensor summaries: small tensors kept exactly, large ones as device-side stats, copied to the host in one go."""
from __future__ import annotations

import math
from collections import defaultdict

import torch

__all__ = ["SMALL_NUMEL", "STAT_FIELDS", "is_small", "stats_vector", "norm_vector", "to_python", "stats_dicts"]

#: Tensors with at most this many elements keep their exact values (nested lists).
SMALL_NUMEL = 64

#: The order of the numbers in a stats vector; `numel` is added on the host.
STAT_FIELDS = ("min", "max", "mean", "std", "norm", "nan", "inf")


def is_small(t: torch.Tensor) -> bool:
    """True when `t` is kept exactly rather than summarised."""
    return t.numel() <= SMALL_NUMEL


def stats_vector(t: torch.Tensor) -> torch.Tensor:
    """min, max, sum, norm, nan and inf counts of `t` (float64), computed on its device without a sync.

    Three passes over the data (aminmax, sum, norm); stats_dicts derives mean and std from the sum and the sum of
    squares on the host, so a GPU launches few kernels here. On the CPU, where reading a number costs nothing,
    the nan/inf counts are only computed when min or max says there are some.
    """
    x = t.detach()
    if x.is_complex():
        x = x.abs()
    if not x.is_floating_point() or x.element_size() < 4:
        x = x.to(torch.float32 if x.element_size() < 4 and x.is_floating_point() else torch.float64)
    lo, hi = torch.aminmax(x)
    head = torch.stack([lo, hi, x.sum(), torch.linalg.vector_norm(x)]).to(torch.float64)
    if x.device.type == "cpu":
        numbers = head.tolist()
        clean = math.isfinite(numbers[0]) and math.isfinite(numbers[1])
        counts = (0, 0) if clean else (int(torch.isnan(x).sum()), int(torch.isinf(x).sum()))
        return torch.tensor([*numbers, *counts], dtype=torch.float64)
    counts = torch.stack([torch.isnan(x).sum(), torch.isinf(x).sum()]).to(torch.float64)
    return torch.cat([head, counts])


def to_python(tensors: list) -> list:
    """Python values for a list of small tensors (non-tensors pass through), one host copy per device.

    On the host each tensor's own `tolist()` (C++ building the nested lists) is about twice as fast as one
    concatenation split up again in Python.
    """
    return [t.tolist() if isinstance(t, torch.Tensor) else t for t in _to_host(tensors)]


def stats_dicts(vectors: list, numels: list) -> list:
    """Stats dicts for stats vectors (None passes through), one host copy per device."""
    host = _to_host(vectors)
    return [None if v is None else _stats_dict(v.tolist(), n) for v, n in zip(host, numels)]


def _stats_dict(numbers: list, numel: int) -> dict:
    if len(numbers) == 1:  # a norm_vector
        return {"norm": numbers[0], "numel": numel}
    lo, hi, total, norm, nan, inf = numbers
    mean = total / numel
    std = math.sqrt(max(norm * norm - numel * mean * mean, 0.0) / (numel - 1)) if numel > 1 else float("nan")
    if not math.isfinite(total) or not math.isfinite(norm):
        std = float("nan")
    return dict(zip(STAT_FIELDS, (lo, hi, mean, std, norm, int(nan), int(inf))), numel=numel)


def norm_vector(t: torch.Tensor) -> torch.Tensor:
    """Just the norm of `t`, as a one-element vector on its device (the cheap summary of a gradient flow)."""
    x = t.detach()
    return torch.linalg.vector_norm(x if x.is_floating_point() or x.is_complex() else x.double()).reshape(1)


def _to_host(tensors: list) -> list:
    """The tensors on the CPU; those on an accelerator travel in one concatenated copy per device."""
    out = list(tensors)
    by_device = defaultdict(list)
    for i, t in enumerate(tensors):
        if isinstance(t, torch.Tensor) and not t.is_cpu:
            by_device[t.device].append(i)
    for indices in by_device.values():
        parts = [_as_real(tensors[i].detach()) for i in indices]
        flat = torch.cat([p.reshape(-1).to(torch.float64) for p in parts]).cpu()
        for i, p, chunk in zip(indices, parts, flat.split([p.numel() for p in parts])):
            out[i] = _from_real(chunk.reshape(p.shape).to(p.dtype), tensors[i])
    return out


def _as_real(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(t) if t.is_complex() else t


def _from_real(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.view_as_complex(t.contiguous()) if like.is_complex() else t
