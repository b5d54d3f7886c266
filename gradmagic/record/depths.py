"""Capture stage: how deep gradmagic may look into autograd chains without making torch crash when they are freed.

torch 2.13 keeps an autograd node's Python object alive once one was made (`t.grad_fn`, `next_functions`), and
freeing a chain of such nodes recurses once per node in C. Measured (CPython 3.11, torch 2.13, CPU, 8 MB stack):
a chain crashes when freed with ~40,000 such nodes in a row, ~28,000 when every other node has one; a 2 MB thread
crashes at ~11,000. Chains nobody looked at from Python free without recursion, at any length.

Each capture marks every node it looks at with its `Looked` token in `node.metadata`; the token lives as long as
one of those nodes does. Along any chain, the nodes gradmagic looked at are at most the sum of the depths of the
live tokens, so a capture may look MAX_NODE_DEPTH minus the other live tokens' depths deep: whatever the user builds
before, across or between cells, no chain holds more than MAX_NODE_DEPTH looked-at nodes.
"""
from __future__ import annotations

import weakref

__all__ = ["MAX_NODE_DEPTH", "Looked", "Token", "looked_elsewhere", "DEEP_NOTE", "UNREAD", "Unread"]

MAX_NODE_DEPTH = 20_000
_KEY = "gradmagic.looked"
_live: weakref.WeakSet = weakref.WeakSet()  # the Tokens some live autograd node still holds

DEEP_NOTE = (f"gradmagic looks at most {MAX_NODE_DEPTH:,} autograd nodes deep along a chain (this cell's, plus "
             f"those of earlier captures still alive); gradients beyond are not shown (torch 2.13 can crash freeing "
             f"a deeper chain once its nodes were looked at from Python).")


class Unread:
    """Stands for the grad_fn of a non-leaf past the node budget: known to exist, not looked at (one instance)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNREAD"


UNREAD = Unread()


class Token:
    """Held by the metadata of each node one capture looked at; `depth` bounds the looked-at nodes along a chain."""

    __slots__ = ("depth", "__weakref__")

    def __init__(self):
        self.depth = 0


def looked_elsewhere(token: Token | None = None) -> int:
    """The summed depth of the live tokens other than `token`."""
    return sum(other.depth for other in list(_live) if other is not token)


class Looked:
    """One capture's account of the autograd nodes it looked at."""

    __slots__ = ("token", "allowance", "_listed")

    def __init__(self):
        self.token = Token()
        self.allowance = max(0, MAX_NODE_DEPTH - looked_elsewhere())
        self._listed = False

    def mark(self, node) -> None:
        """Tie `node`'s life to this capture's token (a node an earlier capture looked at keeps that one's)."""
        metadata = node.metadata
        if _KEY not in metadata:
            metadata[_KEY] = self.token
            if not self._listed:
                _live.add(self.token)
                self._listed = True

    @staticmethod
    def is_marked(node) -> bool:
        """Whether a capture (this one or an earlier one still alive) looked at `node`."""
        return _KEY in node.metadata

    def reach(self, depth: int) -> None:
        """Note that a chain of `depth` looked-at nodes ends at a node this capture marked."""
        if depth > self.token.depth:
            self.token.depth = depth

    def fits(self, depth: int) -> bool:
        """Whether a chain `depth` looked-at nodes deep stays within the allowance."""
        return depth <= self.allowance
