"""Global torch state the capture touches, and the version-specific calls that touch it, in one place."""
from __future__ import annotations

import contextlib

import torch

__all__ = ["check_device", "check_dtype", "defaults", "inside_backward", "pushed_mode", "torch_function_disabled",
           "unseen_by_modes"]


def check_device(device) -> torch.device | None:
    """The device asked for, or a ValueError saying why it cannot be used here."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device={device!r}: not a torch device ({error}); use 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r}: CUDA is not available on this machine (torch {torch.__version__}); use 'cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return dev


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
    """Set the default device and dtype inside the block only."""
    previous = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        # `torch.device` as a context manager (torch >= 2.0) pushes a DeviceContext mode and pops it on exit.
        with device if device is not None else contextlib.nullcontext():
            yield
    finally:
        torch.set_default_dtype(previous)


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
    if not torch._C._len_torch_function_stack():
        return func(*args)
    with torch_function_disabled():
        return func(*args)


def inside_backward() -> bool:
    """True while autograd's engine runs a backward pass on this thread (a backward() called from a node's
    backward, such as reentrant checkpointing's, or from a gradient hook, is part of that pass, not a new one)."""
    # Private API (torch >= 1.13): the id of the graph task the engine is running here, -1 outside backward.
    return torch._C._current_graph_task_id() != -1
