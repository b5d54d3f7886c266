"""One finding of `diagnose`: what went wrong, in words a learner understands, and what to mark on the picture."""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Diagnostic", "KINDS"]

#: Every kind of diagnostic, in the order `diagnose` reports them.
KINDS = ("no_gradient", "cut", "rebuilt", "accumulated", "nonleaf_grad", "nan_value", "nan_grad", "incomplete")


@dataclass
class Diagnostic:
    """One finding: what went wrong, in words a learner understands, and what to mark on the picture."""

    kind: str
    message: str
    nodes: list = field(default_factory=list)
    edges: list = field(default_factory=list)  # (u, v, key)
    line: int | None = None

    def __str__(self) -> str:
        return self.message
