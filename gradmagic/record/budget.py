"""The capture's budget: how many ops it records in detail, how much memory it may hold, how long it may work after
the cell. Past the budget the capture counts ops per line instead of recording them, and says so in one note."""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, replace

__all__ = ["Budget", "as_budget", "Meter", "coarse_note", "INTERRUPT_SECONDS"]

#: After Ctrl-C the cell ends within this many seconds, post-processing and drawing included.
INTERRUPT_SECONDS = 1.0
# Graph nodes (ops and tensors recorded in detail) the post-processing (resolve, graph, view, picture, table,
# checks) gets through per second on a 2-core machine: 4,000-7,000 measured (one other process running), whatever the
# program (a loop of tiny ops, an MLP training loop, a 1,000-step RNN, the seed loop; scratch profile, session 6).
_NODES_PER_SECOND = 3_500
_NODES_PER_OP = 2.5  # an op and its outputs, and the constants and parameters it reads: for `ops` alone
_CHECK_EVERY = 1024  # ops between two reads of the process's memory (a system call)
_UNITS = {"": 1, "b": 1, "k": 2 ** 10, "kb": 2 ** 10, "m": 2 ** 20, "mb": 2 ** 20, "g": 2 ** 30, "gb": 2 ** 30}
_FIELDS = {"ops": "ops", "memory": "memory", "mem": "memory", "seconds": "seconds", "time": "seconds"}


@dataclass(frozen=True)
class Budget:
    """What one capture may spend: `ops` recorded in detail, `memory` bytes the process grows by while it
    records, `seconds` of post-processing after the cell (resolving, the graph, the picture)."""

    ops: int = 9_000
    memory: int = 500 * 2 ** 20
    seconds: float = 3.0

    def __post_init__(self):
        for name in ("ops", "memory", "seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"budget {name}={value!r}: give a number >= 0")

    def detail_nodes(self, seconds: float | None = None) -> int:
        """How many graph nodes (ops and tensors) post-processing gets through in `seconds` (default: the budget's)."""
        return max(0, int((self.seconds if seconds is None else seconds) * _NODES_PER_SECOND))


def as_budget(value) -> Budget:
    """A Budget from None (defaults), a Budget, an int (ops), a dict or a text `ops=20000,memory=1GB,seconds=5`."""
    if value is None:
        return Budget()
    if isinstance(value, Budget):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return as_budget({"ops": value})
    if isinstance(value, dict):
        return replace(Budget(), **_matched({_field(key): _amount(key, v) for key, v in value.items()}))
    if isinstance(value, str):
        return as_budget(dict(_pair(part) for part in value.split(",") if part.strip()))
    raise ValueError(f"budget {value!r}: give a Budget, an int (ops in detail) or text like 'ops=20000,memory=1GB'")


def _matched(fields: dict) -> dict:
    """`ops` alone sets the seconds after the cell to match, `seconds` alone the ops (post-processing is per node)."""
    if "ops" in fields and "seconds" not in fields and isinstance(fields["ops"], (int, float)):
        fields["seconds"] = max(Budget.seconds, fields["ops"] * _NODES_PER_OP / _NODES_PER_SECOND)
    elif "seconds" in fields and "ops" not in fields and isinstance(fields["seconds"], (int, float)):
        fields["ops"] = int(fields["seconds"] * _NODES_PER_SECOND)
    return fields


def _pair(part: str) -> tuple:
    key, sep, amount = part.partition("=")
    if not sep:
        if key.strip().isdigit():
            return "ops", key.strip()
        raise ValueError(f"budget {part.strip()!r}: give name=value, e.g. ops=20000, memory=1GB or seconds=5")
    return key.strip(), amount.strip()


def _field(key: str) -> str:
    if key not in _FIELDS:
        raise ValueError(f"budget {key!r}: not a budget; give ops, memory or seconds")
    return _FIELDS[key]


def _amount(key: str, value):
    """A number from a text (`1GB`, `500MB`, `20000`, `2.5`): memory in bytes, ops as an int."""
    if not isinstance(value, str):
        return value
    match = re.fullmatch(r"([0-9_.]+)\s*([a-zA-Z]*)", value)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS or (unit and _field(key) != "memory"):
        raise ValueError(f"budget {key}={value!r}: give a number (memory may end in KB, MB or GB)")
    number = float(match.group(1)) * _UNITS[unit or ("mb" if _field(key) == "memory" else "")]
    return int(number) if _field(key) != "seconds" else number


class Meter:
    """Watches one capture's spending while the code runs: detail ops, and the process's memory growth."""

    def __init__(self, budget: Budget):
        self.budget = budget
        self.counts: Counter = Counter()  # (line, op name) -> ops past the budget
        self.over: str | None = None  # "ops" or "memory" once the budget is spent
        self.detail = 0  # ops recorded in detail when the budget ran out
        self._start_rss = _rss()
        self._next_check = _CHECK_EVERY
        self._nodes = budget.detail_nodes()

    def spent(self, ops: int, nodes: int = 0) -> bool:
        """Whether the budget is spent after `ops` detail ops making `nodes` graph nodes (memory is read every
        _CHECK_EVERY ops)."""
        if ops >= self.budget.ops:
            return self._stop("ops", ops)
        if nodes >= self._nodes:
            return self._stop("seconds", ops)
        if ops >= self._next_check:
            self._next_check = ops + _CHECK_EVERY
            if _rss() - self._start_rss > self.budget.memory:
                return self._stop("memory", ops)
        return False

    def _stop(self, reason: str, ops: int) -> bool:
        self.over, self.detail = reason, ops
        return True

    def count(self, line, name: str) -> None:
        counts, key = self.counts, (line, name)
        counts[key] = counts.get(key, 0) + 1


def coarse_note(detail: int, counts: Counter, reason: str | None, what: str = "ops") -> str | None:
    """One sentence on what was recorded coarsely (None when nothing was): the busiest lines first."""
    rest = sum(counts.values())
    if not rest:
        return None
    by_line: Counter = Counter()
    for (line, name), n in counts.items():
        by_line[line] += n
    busiest = "; ".join(f"line {line}: " + ", ".join(f"{name} ×{n:,}" for (at, name), n in counts.most_common()
                                                    if at == line)[:120]
                        for line, _ in by_line.most_common(3) if line is not None)
    why = {"memory": "the memory budget was spent", "interrupt": "the cell was interrupted",
           "seconds": "post-processing must fit the time budget"}.get(reason, "the budget was spent")
    return (f"Recorded the first {detail:,} {what} in detail; the remaining {rest:,} {what} as counts per line "
            f"({why}{': ' + busiest if busiest else ''}). %%autograd --budget ops=N (gradmagic.run(..., budget=...)) "
            f"records more.")


def _rss() -> int:
    """The process's resident memory in bytes (0 where it cannot be read)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            import psutil
            return psutil.Process().memory_info().rss
        except Exception:  # noqa: BLE001 - no way to read it: the ops budget still holds
            return 0


