"""What kind of torch call the recorder sees: passed through, recorded, in place, leaving torch, or a backward pass."""
from __future__ import annotations

import torch

__all__ = ["call_kind", "KINDS", "MAX_KINDS", "EXIT_NAMES",
           "PASS", "OP", "INPLACE", "EXIT", "HOOK", "BACKWARD", "GRAD"]

PASS, OP, INPLACE, EXIT, HOOK, BACKWARD, GRAD = range(1, 8)

# Calls that read metadata or print: they neither make tensors nor move values out of torch.
_PASS_NAMES = frozenset(
    "__repr__ __str__ __format__ __len__ __hash__ __contains__ __iter__ __dir__ __reduce_ex__ __setstate__ "
    "__deepcopy__ size dim ndimension numel nelement stride storage_offset is_contiguous data_ptr element_size "
    "is_floating_point is_complex is_signed get_device retain_grad _set_grad_enabled "
    "untyped_storage storage _is_view is_set_to __array_wrap__".split()
)
#: Calls that give a tensor a gradient hook: noted (tensor, line), so a hook that changes a gradient can be named.
_HOOK_NAMES = frozenset(("register_hook", "register_post_accumulate_grad_hook"))
#: Calls through which a value leaves torch: gradients cannot follow it.
EXIT_NAMES = frozenset("item tolist numpy __float__ __int__ __bool__ __index__ __complex__ __array__".split())
_INPLACE_DUNDERS = frozenset(
    "__iadd__ __isub__ __imul__ __itruediv__ __ifloordiv__ __imod__ __ipow__ __imatmul__ __iand__ __ior__ "
    "__ixor__ __ilshift__ __irshift__ __setitem__".split()
)
KINDS: dict = {}  # func -> kind, filled as calls are first seen (emptied when full: see call_kind)
#: Entries KINDS holds at most. torch's functions and methods are a few thousand, but a cell's own autograd.Function
#: arrives as a new bound `apply` each time the cell defines its class again, and user code may route any callable.
MAX_KINDS = 8_192
# The legacy vmap of torch.autograd.functional (vectorize=True) wraps and unwraps its batches with these.
_BATCHING_NAMES = frozenset(("_add_batch_dim", "_remove_batch_dim"))


def call_kind(func) -> int:
    """How the recorder treats `func` (cached per function)."""
    name = getattr(func, "__name__", "")
    if func is torch.Tensor.backward or func is torch.autograd.backward:
        kind = BACKWARD
    elif func is torch.autograd.grad:
        kind = GRAD
    elif name in _HOOK_NAMES and getattr(func, "__qualname__", "").startswith("Tensor."):
        kind = HOOK
    elif name in _PASS_NAMES or name in _BATCHING_NAMES or getattr(func, "__module__", None) == "torch.nn.init":
        kind = PASS  # nn.init runs while modules are built: noise before the cell's own computation
    elif name in EXIT_NAMES:
        kind = EXIT
    elif name in _INPLACE_DUNDERS or (name.endswith("_") and not name.startswith("__")):
        kind = INPLACE
    else:
        kind = OP
    if len(KINDS) >= MAX_KINDS:
        KINDS.clear()
    KINDS[func] = kind
    return kind
