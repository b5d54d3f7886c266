"""Capture stage, lean, while the code runs: the tensors it bound, the gradients and passes, the module calls."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .records import deref, held, passes_below
from .summary import shape_of
from .torchstate import version_of

__all__ = ["Bindings", "Seen"]


class Seen:
    """One tensor the code bound to a name or started a backward pass from: kept until the graph is read."""

    __slots__ = ("obj", "version", "grad_fn", "output_nr", "meta", "line")

    def __init__(self, t, grad_fn, line):
        self.obj = held(t)
        self.version = version_of(t)
        self.grad_fn = grad_fn  # keeps the graph below it alive; None for leaves, UNREAD past the node budget
        self.output_nr = t.output_nr
        self.meta = None if self.obj is t else (shape_of(t), t.dtype, t.device, t.requires_grad)
        self.line = line

    def holds(self, t) -> bool:
        return deref(self.obj) is t and self.version == version_of(t)


@dataclass
class Bindings:
    """What the lean capture kept while the code ran: all the graph reader needs."""

    seen: list = field(default_factory=list)  # Seen, in the order the code bound them
    labels: list = field(default_factory=list)  # (index in seen, (name, line, expression))
    grads: list = field(default_factory=list)  # (pass, index in seen, value, version, numel)
    passes: list = field(default_factory=list)  # (kind, root indices, input indices)
    spans: list = field(default_factory=list)  # [module, first node number, end] per module call, in call order
    grads_before: dict = field(default_factory=dict)  # id(leaf) -> (leaf, its .grad before the first pass or None)
    notes: list = field(default_factory=list)
    module_calls: list = field(default_factory=list)  # (module, input shapes, output shapes) as each call ends
    optimizer_calls: list = field(default_factory=list)  # filled by optimizer_hooks.OptimizerCalls

    def keep_first(self, n: int) -> Counter:
        """Forget the bindings past the first `n`, and the passes from the first one that started from a forgotten
        binding on; the forgotten ones counted as {(line, name): n}."""
        dropped = Counter((line, name) for index, (name, line, _) in self.labels if index >= n)
        self.labels[:] = [(index, info) for index, info in self.labels if index < n]
        del self.seen[n:]
        cut = passes_below(self.passes, n)
        del self.passes[cut:]
        self.grads[:] = [g for g in self.grads if g[0] < cut and g[1] < n]
        return dropped
