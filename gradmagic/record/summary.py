"""Tensor summaries: small tensors kept exactly, large ones as device-side stats, copied to the host in one go.

Tensors without a plain block of numbers of their own are summarised on the host instead: sparse ones by their
stored values (small ones as dense lists), nested ones over all their components, and meta tensors and functorch
wrappers (which have no data to read) as `{"kind": "meta", "numel": n}`. Complex stats are those of |z|.
"""
from __future__ import annotations

import math
from collections import defaultdict

import torch

from .torchstate import functorch_wrapped

__all__ = ["SMALL_NUMEL", "STAT_FIELDS", "is_small", "is_small_numel", "stats_vector", "norm_vector", "to_python", "stats_dicts",
           "tensor_kind", "shape_of", "RAGGED"]

#: Tensors with at most this many elements keep their exact values (nested lists).
SMALL_NUMEL = 64

#: The order of the numbers in a stats vector; `numel` is added on the host.
STAT_FIELDS = ("min", "max", "mean", "std", "norm", "nan", "inf")


def is_small(t: torch.Tensor) -> bool:
    """True when `t` is kept exactly rather than summarised."""
    return t.numel() <= SMALL_NUMEL


def is_small_numel(numel: int) -> bool:
    """True when a tensor of `numel` elements is kept exactly rather than summarised."""
    return numel <= SMALL_NUMEL


#: A ragged dimension of a nested tensor in a recorded shape (shown as `*`).
RAGGED = -1


def tensor_kind(t: torch.Tensor) -> str | None:
    """'meta', 'nested', 'sparse' or 'functorch' for a tensor whose numbers are not a plain block of its own."""
    if t.is_meta:
        return "meta"
    if t.is_nested:
        return "nested"
    if t.layout is not torch.strided:
        return "sparse"
    if functorch_wrapped(t):
        return "functorch"
    return None


def shape_of(t: torch.Tensor) -> tuple:
    """`t`'s shape as ints; a nested tensor's ragged dimensions are RAGGED (it has no single shape)."""
    if not t.is_nested:
        return tuple(t.shape)
    try:
        parts = [tuple(c.shape) for c in t.unbind()]
    except RuntimeError:
        return (t.size(0),)
    if not parts:
        return (0,)
    return (len(parts), *(sizes[0] if len(set(sizes)) == 1 else RAGGED for sizes in zip(*parts)))


def stats_vector(t: torch.Tensor):
    """min, max, sum, norm, nan and inf counts of `t` (float64), computed on its device without a sync.

    Three passes over the data (aminmax, sum, norm); stats_dicts derives mean and std from the sum and the sum of
    squares on the host, so a GPU launches few kernels here. On the CPU, where reading a number costs nothing,
    the nan/inf counts are only computed when min or max says there are some. Complex tensors give the stats of
    |z| (a seventh number marks them). Tensors that are not a plain block of numbers give a stats dict at once.
    """
    if tensor_kind(t) is not None:
        return _host_summary(t)
    x = t.detach()
    magnitude = x.is_complex()
    if magnitude:
        x = x.abs()
    if not x.is_floating_point() or x.element_size() < 4:
        x = x.to(torch.float32 if x.element_size() < 4 and x.is_floating_point() else torch.float64)
    if not x.numel():
        return {"numel": 0}
    lo, hi = torch.aminmax(x)
    head = torch.stack([lo, hi, x.sum(), torch.linalg.vector_norm(x)]).to(torch.float64)
    mark = [1.0] if magnitude else []
    if x.device.type == "cpu":
        numbers = head.tolist()
        clean = math.isfinite(numbers[0]) and math.isfinite(numbers[1])
        counts = (0, 0) if clean else (int(torch.isnan(x).sum()), int(torch.isinf(x).sum()))
        return torch.tensor([*numbers, *counts, *mark], dtype=torch.float64)
    counts = torch.stack([torch.isnan(x).sum(), torch.isinf(x).sum()]).to(torch.float64)
    return torch.cat([head, counts, head.new_tensor(mark)])


def to_python(tensors: list) -> list:
    """Python values for a list of small tensors (non-tensors pass through), one host copy per device.

    On the host each tensor's own `tolist()` (C++ building the nested lists) is about twice as fast as one
    concatenation split up again in Python.
    Complex values come as Python complex numbers; a tensor that is not a plain block of numbers as its summary
    (a small sparse one as its dense value).
    """
    return [_python(t) if isinstance(t, torch.Tensor) else t for t in _to_host(tensors)]


def _python(t: torch.Tensor):
    try:
        return t.tolist()
    except Exception:  # noqa: BLE001 - no data (meta), no single shape (nested), no storage (sparse, functorch)
        if t.layout is not torch.strided and not t.is_nested and not t.is_meta:
            try:
                return t.to_dense().tolist()
            except Exception:  # noqa: BLE001 - a layout to_dense does not know
                pass
        return _host_summary(t)


def _host_summary(t: torch.Tensor) -> dict:
    """The stats dict of a tensor that is not a plain block of numbers, with its kind; never raises."""
    kind = tensor_kind(t) or type(t).__name__
    numel = t.numel()
    try:
        with torch.no_grad():
            if kind == "sparse":
                stored = (t.coalesce() if t.layout is torch.sparse_coo else t).values().detach().reshape(-1)
                stats = _stats_of(stored)
                if stats and stored.numel() < numel:  # the zeros that are not stored
                    stats.update(min=min(stats["min"], 0.0), max=max(stats["max"], 0.0), numel=numel,
                                 **_mean_std(stats["mean"] * stored.numel(), stats["norm"], numel))
                return {"kind": kind, "numel": numel, "stored": stored.numel(), **(stats or {})}
            if kind == "nested":
                flat = torch.cat([c.detach().reshape(-1) for c in t.unbind()]) if t.size(0) else t.new_zeros(0)
                return {"kind": kind, "numel": flat.numel(), **(_stats_of(flat) or {})}
    except Exception:  # noqa: BLE001 - a layout or backend these ops do not cover: the kind alone
        pass
    return {"kind": kind, "numel": numel}


def _stats_of(x: torch.Tensor) -> dict | None:
    """The stats dict of a plain tensor (None when empty)."""
    vector = stats_vector(x)
    return None if isinstance(vector, dict) else _stats_dict(vector.tolist(), x.numel())


def _mean_std(total: float, norm: float, numel: int) -> dict:
    mean = total / numel
    std = math.sqrt(max(norm * norm - numel * mean * mean, 0.0) / (numel - 1)) if numel > 1 else float("nan")
    if not math.isfinite(total) or not math.isfinite(norm):
        std = float("nan")
    return {"mean": mean, "std": std}


def stats_dicts(vectors: list, numels: list) -> list:
    """Stats dicts for stats vectors (None and ready dicts pass through), one host copy per device."""
    host = _to_host(vectors)
    return [v if v is None or isinstance(v, dict) else _stats_dict(v.tolist(), n) for v, n in zip(host, numels)]


def _stats_dict(numbers: list, numel: int) -> dict:
    if len(numbers) == 1:  # a norm_vector
        return {"norm": numbers[0], "numel": numel}
    magnitude = len(numbers) == 7  # stats of |z| for a complex tensor
    lo, hi, total, norm, nan, inf = numbers[:6]
    moments = _mean_std(total, norm, numel)
    stats = dict(zip(STAT_FIELDS, (lo, hi, moments["mean"], moments["std"], norm, int(nan), int(inf))), numel=numel)
    if magnitude:
        stats["of"] = "abs"
    return stats


def norm_vector(t: torch.Tensor):
    """Just the norm of `t`, as a one-element vector on its device (the cheap summary of a gradient flow)."""
    if tensor_kind(t) is not None:
        return _host_summary(t)
    x = t.detach()
    if x.is_complex():
        x = x if x.element_size() >= 8 else x.to(torch.complex64)  # complex32: few kernels
    elif x.dtype not in (torch.float32, torch.float64):  # half precision overflows; ints, bool, float8 have no kernel
        x = x.to(torch.float32 if x.is_floating_point() and x.element_size() == 2 else torch.float64)
    return torch.linalg.vector_norm(x).reshape(1)


def _to_host(tensors: list) -> list:
    """The tensors on the CPU; those on an accelerator travel in one concatenated copy per device."""
    out = list(tensors)
    by_device = defaultdict(list)
    for i, t in enumerate(tensors):
        if isinstance(t, torch.Tensor) and not t.is_cpu:
            by_device[t.device].append(i)
    for device, indices in by_device.items():
        if device.type == "meta":  # no data to copy: to_python summarises them
            continue
        try:
            parts = [_as_real(tensors[i].detach()) for i in indices]
            flat = torch.cat([p.reshape(-1).to(torch.float64) for p in parts]).cpu()
        except Exception:  # noqa: BLE001 - a sparse or nested one among them: each is read on its own
            continue
        for i, p, chunk in zip(indices, parts, flat.split([p.numel() for p in parts])):
            out[i] = _from_real(chunk.reshape(p.shape).to(p.dtype), tensors[i])
    return out


def _as_real(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(t) if t.is_complex() else t


def _from_real(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A chunk of the host copy back as `like`'s kind; complex ones in their own storage (a chunk may start at an
    odd float offset, which view_as_complex refuses)."""
    return torch.view_as_complex(t.clone(memory_format=torch.contiguous_format)) if like.is_complex() else t
