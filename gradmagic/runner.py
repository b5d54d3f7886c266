"""Run code under the capture: naming, recording and graph building, with all global state restored."""
from __future__ import annotations

import ast
import contextlib
import gc
import itertools
import linecache
import sys

import torch

from .record.budget import INTERRUPT_SECONDS, as_budget
from .record.finals import bound_ids, snapshot
from .record.frames import CONTEXTLIB, outside_frame
from .record.lean import LeanRecorder
from .record.naming import install_label_hook, label_assignments
from .record.recorder import Recorder
from .record.torchstate import check_device, check_dtype, defaults, pushed_mode
from .record.trace import Trace, resolve
from .result import Result

__all__ = ["run", "capture", "last", "recording", "Capture"]

_active: list = []  # recorders, innermost last
_last: list = [None]
_NO_FULL_COLLECTIONS = 1_000_000  # collections of the middle generation before a full one
_counter = itertools.count(1)
_KEPT_SOURCES = 100  # runs whose source linecache keeps for tracebacks: one entry per run would grow without bound


def run(source: str, namespace: dict | None = None, *, device=None, dtype=None, lean: bool = False,
        budget=None) -> Result:
    """Run Python source under the capture and return its Result; exceptions propagate, `last()` keeps the partial one.

    `lean=True` records only what autograd keeps (see lean.py): a fraction of the cost, no constants, no flows.
    `budget` (budget.Budget, an int of ops, or text like "ops=20000,memory=1GB,seconds=5") bounds what the capture
    records in detail; past it, ops are counted per line and a note says so.
    """
    __tracebackhide__ = True
    target = check_device(device)
    floating = check_dtype(dtype)
    namespace = {"torch": torch} if namespace is None else namespace
    number = next(_counter)
    filename = f"<gradmagic-{number}>"
    code = compile(instrument(source, filename), filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    linecache.cache.pop(f"<gradmagic-{number - _KEPT_SOURCES}>", None)
    with recording(namespace, source, filename, device=target, dtype=floating, lean=lean, budget=budget) as session:
        exec(code, namespace)
    return session.result


def instrument(source: str, filename: str = "<gradmagic>") -> ast.Module:
    """The source parsed, with a label after every assignment."""
    return label_assignments(ast.parse(source, filename), source)


def last() -> Result | None:
    """The Result of the most recent run, including one that raised."""
    return _last[0]


class Capture:
    """Handle yielded by `recording()`/`capture()`; `.result` is set when the block exits."""

    def __init__(self, recorder: Recorder):
        self.recorder = recorder
        self.result: Result | None = None
        self.interrupted = False  # a second Ctrl-C stopped gradmagic's work after the block: nothing to show

    def __getattr__(self, name):
        if name in ("result", "recorder", "interrupted"):
            raise AttributeError(name)
        if self.result is None:
            raise AttributeError(f"{name!r}: the capture has not finished yet")
        return getattr(self.result, name)


@contextlib.contextmanager
def recording(namespace: dict, source: str, filename: str, *, device=None, dtype=None, names_from=None,
              lean: bool = False, budget=None):
    """Record everything the block does to tensors; on exit (also by exception) restore state and build the Result."""
    __tracebackhide__ = True
    budget = as_budget(budget)
    names = names_from or (lambda: namespace)
    recorder = LeanRecorder(filename, budget, names()) if lean else Recorder(filename, budget)
    session = Capture(recorder)
    before = bound_ids(names())
    error, mode = None, contextlib.nullcontext() if lean else pushed_mode(recorder)
    with gc_frozen():
        try:
            with _started(recorder), defaults(device, dtype), mode:
                yield session
        except BaseException as exc:
            error = exc
            raise
        finally:
            session.result = _final_result(session, names(), before, source, error, budget)
            _last[0] = session.result


@contextlib.contextmanager
def _started(recorder):
    """The recorder started and its labels routed to it; on exit (also when starting failed) all of it undone."""
    _active.append(recorder)
    install_label_hook(recorder.label)  # called once per assignment: no dispatch through _label
    try:
        recorder.start()
        yield
    finally:
        recorder.stop()
        _active.remove(recorder)
        install_label_hook(_active[-1].label if _active else _label)


def _final_result(session: Capture, names: dict, before, source: str, error, budget) -> Result:
    """The run's Result, or after a second Ctrl-C the result so far: nothing but a note."""
    try:
        return _result(session.recorder, names, before, source, error, budget)
    except KeyboardInterrupt:  # a second Ctrl-C: the user's first one is the exception to see
        session.recorder.release()
        session.interrupted = True
        print(INTERRUPTED, file=sys.stderr)
        return Result(Trace(source=source, notes=[INTERRUPTED]), error=error)


#: What a second Ctrl-C, while gradmagic works after the cell, prints (instead of a traceback of gradmagic's).
INTERRUPTED = "gradmagic: post-processing interrupted; the result so far is in gradmagic.last()"


def _result(recorder, names: dict, before, source: str, error, budget) -> Result:
    """The run's Result, its detail cut to what post-processing gets through in time (less after a Ctrl-C)."""
    finals = snapshot(names, before)  # now: a lazy read would see what later code did to the tensors
    if isinstance(error, KeyboardInterrupt):  # the cell must end within a second, drawing included
        recorder.fit(min(budget.seconds, INTERRUPT_SECONDS) / 4, "interrupt")
    else:
        recorder.fit(budget.seconds)
    return Result(_resolved(recorder, names, source, error, finals), error=error)


def _resolved(recorder, names: dict, source: str, error, finals: list) -> Trace:
    """The run's Trace; if that failed, an empty one and one line saying why: the cell's own outcome (its values,
    its exception) stays what the user sees, never gradmagic's failure."""
    try:
        return resolve(recorder, names, source, finals)
    except Exception as failure:
        recorder.release()
        why = (str(failure).splitlines() or [""])[0]
        outcome = "the cell itself ran as usual" if error is None else "the cell's own error is unchanged"
        line = f"gradmagic: the capture failed ({type(failure).__name__}: {why}), so there is no graph; {outcome}."
        print(line, file=sys.stderr)
        return Trace(source=source, notes=[line], failure=line)


@contextlib.contextmanager
def gc_frozen():
    """Keep the collector's full passes away while the run records: each walks the whole process (torch,
    IPython, ...), 100 ms a time, and recording allocates enough to trigger many.

    Done by raising the oldest generation's threshold, not by gc.freeze(): a threshold the run sets itself, or a
    freeze, stays as in a plain run (a freeze count cannot tell the run's own freeze from ours). Afterwards, one
    full pass if the oldest generation's own threshold says one is due: Python also waits until a quarter of
    the long-lived objects are new, hundreds of re-runs in a kernel holding torch, while a run's recorder and a
    replaced Result's figure are reference cycles that only a full pass frees. Skipping it saves nothing: a run
    that builds a graph makes more than that quarter, so Python runs the same pass itself right after the cell.
    """
    previous = gc.get_threshold()
    ours = (*previous[:2], max(previous[2], _NO_FULL_COLLECTIONS))
    gc.set_threshold(*ours)
    try:
        yield
    finally:
        if gc.get_threshold() == ours:
            gc.set_threshold(*previous)
        oldest = gc.get_threshold()[2]
        if gc.isenabled() and oldest and gc.get_count()[2] >= oldest:
            gc.collect()


@contextlib.contextmanager
def capture(*, device=None, dtype=None, lean: bool = False, budget=None):
    """Capture a block of ordinary code; tensors are named from the caller's variables when the block ends."""
    frame = outside_frame(CONTEXTLIB)  # the caller's, entered directly or through an ExitStack
    target, floating = check_device(device), check_dtype(dtype)

    def caller_names() -> dict:
        return {**frame.f_globals, **frame.f_locals}

    with recording({}, "", frame.f_code.co_filename, device=target, dtype=floating, names_from=caller_names,
                   lean=lean, budget=budget) as session:
        yield session


def _label(value, info) -> None:
    if _active:
        _active[-1].label(value, info)
