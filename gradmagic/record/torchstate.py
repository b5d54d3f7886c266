"""Global torch state the capture touches, and the version-specific calls that touch it, in one place."""
from __future__ import annotations

import contextlib

import torch
import torch.autograd.forward_ad as _forward_ad

__all__ = ["version_of", "unseen_reads", "modes_pushed", "available_devices", "check_device", "check_dtype", "defaults",
           "inside_backward", "pushed_mode", "torch_function_disabled", "unseen_by_modes", "gradient_accumulator",
           "transform_active", "functorch_wrapped", "forward_ad_active"]

_UNCHANGED = contextlib.nullcontext()


#: How many torch function modes are pushed on this thread (inside the recorder's __torch_function__ the recorder is
#: popped, so any left are the user's). Private API (torch >= 2.0); a C function, no Python call on the hot path.
modes_pushed = torch._C._len_torch_function_stack


def unseen_reads():
    """A context for gradmagic's own reads of tensors (`.grad_fn`, `._version`, hooks) that no torch function mode
    sees: inside the recorder's __torch_function__ the recorder is popped, so any mode left is the user's."""
    # Private API (torch >= 2.0): the length of the thread's function-mode stack.
    return torch._C.DisableTorchFunction() if modes_pushed() else _UNCHANGED


def version_of(t) -> int:
    """The tensor's version counter (`_version`); 0 for an inference tensor, which keeps none (torch raises)."""
    try:
        return t._version
    except RuntimeError:
        return 0


def check_device(device, *, option: str | None = None) -> torch.device | None:
    """The device asked for, or a one-line ValueError saying why it cannot be used here and what can."""
    if device is None:
        return None
    what = option or f"device={device!r}"
    available = available_devices()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{what}: not a torch device; available: {', '.join(available)}") from None
    if dev.type == "meta":
        raise ValueError(f"{what}: meta tensors have no values, and the capture records values; "
                         f"use one of: {', '.join(available)}")
    if dev.type == "cpu":
        return dev
    if dev.type not in {name.split(":")[0] for name in available}:
        raise ValueError(f"{what}: {dev.type.upper()} is not available on this machine (torch {torch.__version__}); "
                         f"available: {', '.join(available)}")
    if dev.index not in (None, 0) and str(dev) not in available:
        raise ValueError(f"{what}: there is no {dev.type} device {dev.index} here; available: {', '.join(available)}")
    return dev


def available_devices() -> list:
    """'cpu' and every accelerator device torch can use on this machine ('cuda:0', 'mps', 'xpu:0' ...)."""
    found = ["cpu"]
    for kind in ("cuda", "xpu"):  # torch.xpu exists from torch 2.4
        backend = getattr(torch, kind, None)
        if backend is not None and backend.is_available():
            found += [f"{kind}:{i}" for i in range(backend.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return found


def check_dtype(dtype) -> torch.dtype | None:
    """The floating dtype asked for (a torch.dtype or its name), or a ValueError."""
    if dtype is None or isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    found = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(found, torch.dtype) or not found.is_floating_point:
        raise ValueError(f"dtype={dtype!r}: not a floating torch dtype; use float32, float64, float16 or bfloat16")
    return found


@contextlib.contextmanager
def defaults(device: torch.device | None, dtype: torch.dtype | None):
    """Set the default device and dtype inside the block only; a default the block sets itself stays, as in a
    plain run."""
    previous = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        with _device_context(device):
            yield
    finally:
        if dtype is not None and torch.get_default_dtype() == dtype:
            torch.set_default_dtype(previous)


def _device_context(device: torch.device | None):
    """A context making `device` the default for factory functions."""
    if device is None:
        return contextlib.nullcontext()
    # Private API (torch >= 2.0): DeviceContext keeps itself at the bottom of the function-mode stack and on exit
    # removes only itself, so a mode the user enters inside the block and leaves entered survives it; leaving a
    # `with torch.device(...)` block instead pops whatever mode is on top.
    from torch.utils._device import DeviceContext

    return DeviceContext(device)


@contextlib.contextmanager
def pushed_mode(mode):
    """Push a TorchFunctionMode; on exit remove exactly that mode, even if the code pushed others above it."""
    # Private API (torch >= 2.0): the function-mode stack is thread-local and ordered.
    depth = torch._C._len_torch_function_stack()
    torch._C._push_on_torch_function_stack(mode)
    try:
        yield mode
    finally:
        above = []
        while torch._C._len_torch_function_stack() > depth:
            top = torch._C._pop_torch_function_stack()
            if top is not mode:
                above.append(top)
        for other in reversed(above):
            torch._C._push_on_torch_function_stack(other)


def torch_function_disabled():
    """A context in which torch calls skip all function modes (for the capture's own bookkeeping)."""
    return torch._C.DisableTorchFunction()


def unseen_by_modes(func, *args):
    """`func(*args)` with no torch function mode seeing its calls (ours, a device context's or the user's own):
    for the capture's bookkeeping inside hooks, which autograd may call while modes are active."""
    with unseen_reads():
        return func(*args)


def gradient_accumulator(t):
    """The AccumulateGrad node of a leaf that requires grad (torch >= 2.2: autograd.graph.get_gradient_edge), or
    None where this torch lacks it."""
    get_edge = getattr(torch.autograd.graph, "get_gradient_edge", None)
    try:
        return None if get_edge is None else get_edge(t).node
    except (NotImplementedError, RuntimeError):  # nested and sparse leaves have no accumulator to hand out
        return None


# torch.func (functorch) transforms (vmap, grad, jacrev, ...) run the function on wrapper tensors (BatchedTensor,
# GradTrackingTensor) that have no storage of their own: reading their values, `.grad` or hooks fails or changes what
# the transform computes. `maybe_current_level()` is None outside every transform (torch >= 2.0's dynamic layer
# stack); the legacy vmap of `torch.autograd.functional.jacobian(..., vectorize=True)` has no level, only its
# tensors say so (`is_legacy_batchedtensor`).
_functorch = getattr(torch._C, "_functorch", None)
_current_level = getattr(_functorch, "maybe_current_level", lambda: None)
_is_wrapped = getattr(_functorch, "is_functorch_wrapped_tensor", lambda t: False)
_is_legacy_batched = getattr(_functorch, "is_legacy_batchedtensor", lambda t: False)


def transform_active() -> bool:
    """Whether a torch.func transform is running (its inner ops work on functorch wrappers)."""
    return _current_level() is not None


def functorch_wrapped(t) -> bool:
    """Whether `t` is a functorch wrapper (a vmap batch, a torch.func.grad tracker), whose data is not its own."""
    return _is_wrapped(t) or _is_legacy_batched(t)


def forward_ad_active() -> bool:
    """Whether a forward-mode AD dual level is open (`with torch.autograd.forward_ad.dual_level():`)."""
    # torch.autograd.forward_ad keeps the open level in a module global: -1 outside every dual_level
    return getattr(_forward_ad, "_current_level", -1) >= 0


def inside_backward() -> bool:
    """True while autograd's engine runs a backward pass on this thread (a backward() called from a node's
    backward, such as reentrant checkpointing's, or from a gradient hook, is part of that pass, not a new one)."""
    # Private API (torch >= 1.13): the id of the graph task the engine is running here, -1 outside backward.
    return torch._C._current_graph_task_id() != -1
