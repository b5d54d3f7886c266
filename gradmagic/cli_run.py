"""Run a script file under the capture as `python SCRIPT.py ARGS` runs it: decoded by its coding cookie, as a fresh
`__main__` module, with sys.argv and sys.path[0] as python sets them, and its exit status and messages as python's."""
from __future__ import annotations

import builtins
import contextlib
import importlib.machinery
import importlib.util
import os
import sys
import traceback
import types
from pathlib import Path
from typing import NamedTuple

from .result import Result
from .runner import instrument, recording
from .tracebacks import user_traceback

__all__ = ["compiled_script", "as_main", "run_script", "Ending", "exit_status", "INTERRUPTED"]

#: The status a shell sees for a process stopped by Ctrl-C (128 + SIGINT); python itself dies of the signal.
INTERRUPTED = 130


def compiled_script(filename: str) -> tuple:
    """(code, source): the file decoded as python decodes it (coding cookie, BOM) and labelled for the capture.

    Raises python's own SyntaxError when the file does not compile (for bytes it cannot decode, compile()'s wording,
    as runpy gives it; `python SCRIPT.py` words those differently).
    """
    raw = Path(filename).read_bytes()
    try:
        source = importlib.util.decode_source(raw)  # PEP 263 cookie or BOM, else UTF-8; universal newlines
    except (SyntaxError, UnicodeDecodeError) as error:
        undecodable = error
    else:
        return compile(instrument(source, filename), filename, "exec"), source
    compile(raw, filename, "exec")  # python's own message for a bad cookie or undecodable bytes (no chained error)
    raise undecodable


@contextlib.contextmanager
def as_main(script: str, script_args: list):
    """The namespace of a fresh `__main__` module for `script`, with sys.argv and sys.path as `python SCRIPT.py
    SCRIPT_ARGS` sets them; sys.modules['__main__'], sys.argv and sys.path are restored afterwards.

    A real module in sys.modules['__main__'] is what pickle (classes defined in the script) and
    typing.get_type_hints (postponed annotations) look names up in.
    """
    filename = os.path.abspath(script)  # python gives __main__ an absolute __file__ (3.9+), links not resolved
    module = types.ModuleType("__main__")
    module.__dict__.update(__file__=filename, __cached__=None, __builtins__=builtins, __annotations__={},
                           __loader__=importlib.machinery.SourceFileLoader("__main__", filename))
    saved = sys.modules.get("__main__"), sys.argv, list(sys.path)
    sys.modules["__main__"], sys.argv = module, [script, *script_args]
    if not getattr(sys.flags, "safe_path", False):  # python -P adds no script folder (3.11+)
        sys.path[:1] = [os.path.dirname(os.path.realpath(script))]  # in place of the cwd (-m) or the bin folder
    try:
        yield module.__dict__
    finally:
        sys.modules["__main__"], sys.argv, sys.path[:] = saved


class Ending(NamedTuple):
    """How a script run ended: its Result (None if the capture itself failed), python's exit status, and whether
    Ctrl-C stopped it (python then dies of SIGINT)."""

    result: Result | None
    status: int
    interrupted: bool = False


def run_script(code, source: str, namespace: dict, *, device=None, dtype=None, lean: bool = False,
               budget=None) -> Ending:
    """How the script ran under the capture; its exit status is the one python would give.

    sys.exit() ends the script, not the capture: the result is kept. The script's exception is printed as python
    prints it (its own frames only); a failure of gradmagic's own is one line.
    """
    filename, session, status, error = code.co_filename, None, 0, None
    try:
        with recording(namespace, source, filename, device=device, dtype=dtype, lean=lean, budget=budget) as session:
            try:
                exec(code, namespace)
            except SystemExit as stop:
                status = exit_status(stop)
    except BaseException as raised:  # Ctrl-C too: the script stops, what it recorded is still shown
        error, status = raised, _print_error(raised, filename)
    return Ending(session.result if session is not None else None, status, isinstance(error, KeyboardInterrupt))


def exit_status(stop: SystemExit) -> int:
    """The status python exits with for sys.exit(code): None is 0, an int itself, anything else printed and 1."""
    if stop.code is None or isinstance(stop.code, int):
        return stop.code or 0
    print(stop.code, file=sys.stderr)
    return 1


def _print_error(error: BaseException, filename: str) -> int:
    """Print the script's exception as python does, or gradmagic's own failure in one line; the exit status."""
    interrupted = isinstance(error, KeyboardInterrupt)
    frames = user_traceback(error.__traceback__, filename)
    if frames is None:  # raised where the script never ran: setting up the capture or building the result
        what = "interrupted" if interrupted else f"internal error: {type(error).__name__}: {error}"
        print(f"gradmagic: {what} (while recording {filename})", file=sys.stderr)
    else:
        traceback.print_exception(type(error), error, frames)
    return INTERRUPTED if interrupted else 1
