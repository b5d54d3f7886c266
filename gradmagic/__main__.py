"""python -m gradmagic SCRIPT.py: run a script under the capture, print its table, write the exports."""
from __future__ import annotations

import argparse
import contextlib
import sys
import traceback
from pathlib import Path

import torch

from . import export
from .options import check_run_options
from .runner import instrument, last, recording
from .tracebacks import user_traceback

__all__ = ["main"]

_USAGE = "python -m gradmagic SCRIPT.py [options] [-- SCRIPT_ARGS ...]"
_EPILOG = ("SCRIPT.py runs as `python SCRIPT.py SCRIPT_ARGS` would run it: with __name__ == '__main__', its __file__, "
           "sys.argv == ['SCRIPT.py', *SCRIPT_ARGS] and its own directory first on sys.path. Its arguments go after "
           "--, e.g. python -m gradmagic train.py -o out/g.svg -- --epochs 3. sys.exit(0) is a normal end; "
           "the exit status is the script's (1 if it raised).")


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block): what was wrong and where to look."""

    def error(self, message: str):
        if message.startswith("unrecognized arguments"):  # most likely the script's own: say where those go
            message += " (gradmagic's options are listed by --help; the script's own arguments go after --)"
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    ours, script_args = _split_at_dashes(argv)
    parser = _parser()
    args = parser.parse_args(ours)
    if not args.script.is_file():
        parser.error(f"{args.script}: no such file")
    outputs = [Path(p) for p in args.output]
    try:
        for path in outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
        device, dtype = check_run_options(device=args.device, dtype=args.dtype, depth=args.depth,
                                          max_nodes=args.max_nodes, save=outputs, lean=args.lean,
                                          explain=args.explain, check=args.check)
    except ValueError as error:
        parser.error(str(error))
    filename = str(args.script.resolve())  # python gives __main__ an absolute __file__ (3.9+)
    try:
        code, source = _compiled(filename)
    except SyntaxError as error:  # as python prints it: the file, the line, the caret
        traceback.print_exception(SyntaxError, error, None)
        return 1
    with _as_main(args.script, script_args):
        result, status = _run(code, source, filename, device, dtype, args.lean)
    return _report(result, args, outputs, status)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m gradmagic", usage=_USAGE, epilog=_EPILOG,
                     description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("script", type=Path, metavar="SCRIPT.py", help="a Python file that uses torch")
    parser.add_argument("-o", "--output", action="append", default=[], metavar="PATH",
                        help=f"write the result by suffix ({' '.join(export.SUFFIXES)}); repeatable")
    parser.add_argument("-d", "--device", help="default device inside the script: cpu, cuda, cuda:N, mps")
    parser.add_argument("--dtype", help="default floating dtype inside the script")
    parser.add_argument("--all", action="store_true", help="draw every node (no folding or collapsing)")
    parser.add_argument("--depth", type=int, help="one box per nn.Module at this depth")
    parser.add_argument("--max-nodes", type=int, help="collapse until the picture has at most N nodes")
    parser.add_argument("--explain", action="append", default=[], metavar="NAME",
                        help="print d root/d NAME as the chain rule and the sum over paths; repeatable")
    parser.add_argument("--check", action="store_true", help="check gradients against finite differences")
    parser.add_argument("--lean", action="store_true",
                        help="record only torch's autograd graph (fast; named values only, no --explain/--check)")
    parser.add_argument("--rankdir", choices=["LR", "TB"], default=None,
                        help="inputs on top (TB) or left (LR); default: TB, or LR when only that fits 9 inches")
    return parser


def _split_at_dashes(argv: list) -> tuple:
    """(gradmagic's arguments, the script's): everything after the first `--` is the script's."""
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1:]


def _compiled(filename: str) -> tuple:
    """(code, source): the script labelled for the capture and named by its own path (tracebacks show its lines)."""
    source = Path(filename).read_text()
    return compile(instrument(source, filename), filename, "exec"), source


@contextlib.contextmanager
def _as_main(script: Path, script_args: list):
    """sys.argv and sys.path as `python SCRIPT.py SCRIPT_ARGS` sets them, while the script runs."""
    argv, path = sys.argv, list(sys.path)
    sys.argv = [str(script), *script_args]
    sys.path.insert(0, str(script.resolve().parent))
    try:
        yield
    finally:
        sys.argv, sys.path[:] = argv, path


def _run(code, source: str, filename: str, device, dtype, lean: bool) -> tuple:
    """(the Result, the exit status): run the script as __main__; its exception is printed as python prints it."""
    namespace = {"torch": torch, "__name__": "__main__", "__file__": filename, "__package__": None, "__spec__": None}
    status, session = 0, None
    try:
        with recording(namespace, source, filename, device=device, dtype=dtype, lean=lean) as session:
            try:
                exec(code, namespace)
            except SystemExit as stop:  # sys.exit() ends the script, not the capture: still print and write
                status = _exit_status(stop)
    except Exception as error:
        traceback.print_exception(type(error), error, user_traceback(error.__traceback__, filename))
        status = 1
    return (session.result if session is not None else last()), status


def _exit_status(stop: SystemExit) -> int:
    """The status python exits with for sys.exit(code): None is 0, a number itself, anything else printed and 1."""
    if stop.code is None or isinstance(stop.code, int):
        return stop.code or 0
    print(stop.code, file=sys.stderr)
    return 1


def _report(result, args, outputs: list, status: int) -> int:
    """Print the table (and explanations), write the files; the exit status."""
    result.show_all, result.rankdir = args.all, args.rankdir
    result.depth, result.max_nodes = args.depth, args.max_nodes
    try:
        result.explained = [result.explain(name) for name in args.explain]
        result.gradient_check = result.check() if args.check else None
    except ValueError as error:
        print(f"gradmagic: {error}", file=sys.stderr)
        status = status or 2
    print(result._plain_text())
    for path in outputs:
        print(f"wrote {result.save(path)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
