"""Gradients and values as the graph keeps them (a number, a nested list, or a stats dict for a large tensor):
their sum, comparisons and tests, shared by explain, diagnose and the hook check."""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import text

__all__ = ["as_tensor", "total", "close", "same", "is_real", "nonfinite", "nonfinite_kind", "nonzero"]


def as_tensor(value) -> torch.Tensor:
    """A number or nested list as a float64 tensor (complex128 for complex gradients), not rounded on the way."""
    complex_ = any(isinstance(v, complex) for v in text.flatten(value))
    return torch.tensor(value, dtype=torch.complex128 if complex_ else torch.float64)


def total(values: list):
    """Elementwise sum of numbers or equally nested lists (0.0 for none)."""
    return as_tensor(values).sum(0).tolist() if values else 0.0


def close(a, b) -> bool:
    """Equal within float32 rounding (elementwise, scaled by the larger norm); False for anything but numbers."""
    if not isinstance(a, (float, complex, list)) or not isinstance(b, (float, complex, list)):
        return False
    a, b = as_tensor(a), as_tensor(b)
    return a.shape == b.shape and (a - b).norm().item() <= 1e-4 * max(a.norm().item(), b.norm().item()) + 1e-12


def same(a, b) -> bool:
    """`close`, or for large tensors (stats dicts) equal norms; True when a norm is unknown (nothing to tell)."""
    if isinstance(a, dict) or isinstance(b, dict):
        na, nb = (v.get("norm") if isinstance(v, dict) else None for v in (a, b))
        return na is None or nb is None or math.isclose(na, nb, rel_tol=1e-4, abs_tol=1e-12)
    return close(a, b)


def is_real(value) -> bool:
    """Whether a gradient is real numbers (a number, nested list or stats dict of them)."""
    if isinstance(value, dict):
        return "kind" not in value and value.get("of") != "abs"
    return not any(isinstance(v, complex) for v in text.flatten(value))


def nonfinite(value, stats=None) -> bool:
    """True when a value (number or nested list) or a stats dict holds NaN or inf."""
    if isinstance(stats, dict) or isinstance(value, dict):
        s = stats if isinstance(stats, dict) else value
        return bool(s.get("nan") or s.get("inf"))
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list) and _finite_sum(value):
        return False
    real = _real_array(value) if isinstance(value, list) else None
    if real is not None:
        return not bool(np.isfinite(real).all())
    return any(isinstance(v, float) and not math.isfinite(v) for v in text.flatten(value))


def _finite_sum(value: list) -> bool:
    """True when the numbers of a nested list are floats with a finite sum, so each is finite (a NaN or an inf never
    adds up to a finite sum); False leaves it to the exact test (ints, complex, an overflowing sum). ~5x numpy's test
    on the small values the graph keeps."""
    try:
        total = _nested_sum(value)
    except (TypeError, OverflowError):  # not a nested list of numbers, or ints too large for a float
        return False
    return isinstance(total, float) and math.isfinite(total)


def _nested_sum(value: list):
    """The sum of a nested list's numbers, one level of recursion per dimension."""
    if value and isinstance(value[0], list):
        return sum(map(_nested_sum, value))
    return sum(value)


def _real_array(value: list):
    """A nested list of real numbers as a numpy array (one pass in C); None for complex, ragged or other items."""
    try:
        array = np.asarray(value)
    except ValueError:  # ragged
        return None
    return array if array.dtype.kind in "fiub" else None


def nonfinite_kind(value, stats=None) -> str:
    """`NaN` when a value or stats dict holds a NaN, else `inf`."""
    s = stats if isinstance(stats, dict) else value if isinstance(value, dict) else None
    if s is not None:
        return "NaN" if s.get("nan") else "inf"
    return "NaN" if any(isinstance(v, float) and math.isnan(v) for v in text.flatten(value)) else "inf"


def nonzero(value) -> bool:
    """True when a value or stats dict has an element other than 0."""
    if isinstance(value, dict):
        return bool(value.get("min") or value.get("max"))
    return any(v != 0 for v in text.flatten(value))
