"""The names a user bound in a namespace, and what its modules and optimizers hold: the one walk of them."""
from __future__ import annotations

import torch

__all__ = ["public_names", "module_tensors", "NamespaceIndex", "leaves_requiring_grad", "leaves_with_grad"]

_TENSOR = torch.Tensor
_MODULE = torch.nn.Module
_OPTIMIZER = torch.optim.Optimizer
_IPYTHON_HISTORY = frozenset({"In", "Out"})  # IPython's input and output history, not the cell's variables


def public_names(namespace: dict) -> list:
    """(name, value) for the names a user bound (not `_`-prefixed: IPython's `_`, `_i1`, `__builtins__`)."""
    return [(name, value) for name, value in list(namespace.items())
            if not name.startswith("_") and name not in _IPYTHON_HISTORY]


def module_tensors(module) -> list:
    """[(path, tensor)] of a module's parameters and buffers; [] for a half-built module (its __init__ raised)."""
    try:
        return [*module.named_parameters(), *module.named_buffers()]
    except Exception:  # noqa: BLE001
        return []


class NamespaceIndex:
    """The namespace's modules (`model.0`), their parameters and buffers (`model.0.weight`) and its optimizers, by
    id, from one walk."""

    def __init__(self, namespace: dict):
        self.module_paths: dict = {}  # id(module) -> dotted path from a name
        self.parameter_paths: dict = {}  # id(parameter or buffer) -> dotted path from a name
        self.optimizer_names: dict = {}  # id(optimizer) -> its (last) name
        for name, value in public_names(namespace):
            if isinstance(value, _MODULE):
                self._add_module(name, value)
            elif isinstance(value, _OPTIMIZER):
                self.optimizer_names[id(value)] = name

    def _add_module(self, name: str, module) -> None:
        for path, inner in module.named_modules():
            self.module_paths.setdefault(id(inner), f"{name}.{path}" if path else name)
        for path, tensor in module_tensors(module):
            self.parameter_paths.setdefault(id(tensor), f"{name}.{path}")

    def module_path(self, module) -> str:
        """The module's dotted path, or its class name when no name reaches it."""
        return self.module_paths.get(id(module)) or type(module).__name__


def leaves_requiring_grad(namespace: dict) -> list:
    """The leaves that require grad among the namespace's tensors and its modules' parameters."""
    leaves = []
    for value in list(namespace.values()):
        if isinstance(value, _MODULE):
            leaves += [p for p in value.parameters() if p.requires_grad]
        elif isinstance(value, _TENSOR) and value.is_leaf and value.requires_grad:
            leaves.append(value)
    return leaves


def leaves_with_grad(namespace: dict) -> list:
    """The leaves (module parameters included) bound in `namespace` whose .grad is set."""
    return [t for t in leaves_requiring_grad(namespace) if t.grad is not None]
