"""python -m gradmagic SCRIPT.py: run a script under the capture, print its table, write the exports."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from pathlib import Path

from .cli_run import INTERRUPTED, Ending, as_main, compiled_script, run_script
from .options import apply_view_options, check_parsed_options
from .record.budget import as_budget
from .view import export
from .view.layout import RANKDIRS

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
    as_program, argv = argv is None, sys.argv[1:] if argv is None else list(argv)
    ours, script_args = _split_at_dashes(argv)
    parser = _parser()
    args = parser.parse_args(ours)
    if not os.path.isfile(args.script):
        parser.error(f"{args.script}: no such file")
    outputs = [Path(p).absolute() for p in args.output]  # as typed from here: the script may chdir
    try:
        _make_folders(args.output, outputs)
        device, dtype = check_parsed_options(args, save=outputs)
        budget = as_budget(args.budget)
    except ValueError as error:
        parser.error(str(error))
    try:
        code, source = compiled_script(os.path.abspath(args.script))
    except SyntaxError as error:  # as python prints it: the file, the line, the caret
        traceback.print_exception(SyntaxError, error, None)
        return 1
    with as_main(args.script, script_args) as namespace:
        ending = run_script(code, source, namespace, device=device, dtype=dtype, lean=args.lean, budget=budget)
    status, interrupted = _reported(ending, args, outputs)
    if interrupted and as_program:
        _die_of_sigint()
    return status


def _make_folders(typed: list, outputs: list) -> None:
    """Create the outputs' folders now, before the script runs; a ValueError saying which one cannot be made."""
    for name, path in zip(typed, outputs):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"-o {name}: cannot create its folder {str(path.parent)!r}: {error.strerror or error}")


def _reported(ending: Ending, args, outputs: list) -> tuple:
    """(exit status, whether Ctrl-C ended it) after printing the table and writing the files, if there is a result."""
    if ending.result is None:
        return ending.status, ending.interrupted
    if ending.result.trace.failure is not None:  # gradmagic's own failure, said in one line: nothing to write
        return ending.status or 1, ending.interrupted
    try:
        return _report(ending.result, args, outputs, ending.status), ending.interrupted
    except KeyboardInterrupt:  # a second Ctrl-C, while drawing or writing: one line, never gradmagic's traceback
        print("gradmagic: interrupted while printing the table or writing the files", file=sys.stderr)
        return INTERRUPTED, True


def _die_of_sigint() -> None:
    """End as python ends after an uncaught KeyboardInterrupt: killed by SIGINT, so a shell sees Ctrl-C (POSIX)."""
    if os.name != "posix":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


def _parser() -> argparse.ArgumentParser:
    prog = "gradmagic" if os.path.basename(sys.argv[0]) == "gradmagic" else "python -m gradmagic"  # as it was run
    parser = _Parser(prog=prog, usage=_USAGE.replace("python -m gradmagic", prog), epilog=_EPILOG,
                     description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("script", metavar="SCRIPT.py", help="a Python file that uses torch")
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
    parser.add_argument("--rankdir", choices=RANKDIRS, default=None,
                        help="inputs on top (TB) or left (LR); default: TB, or LR when only that fits 9 inches")
    parser.add_argument("--budget", metavar="SPEC",
                        help="what the capture may spend, e.g. ops=20000,memory=1GB,seconds=5 (default "
                             "ops=9000,memory=500MB,seconds=3); past it ops are counted per line")
    return parser


def _split_at_dashes(argv: list) -> tuple:
    """(gradmagic's arguments, the script's): everything after the first `--` is the script's."""
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1:]


def _report(result, args, outputs: list, status: int) -> int:
    """Print the table (and explanations), write the files; the exit status. gradmagic's own problems come last,
    one line each on stderr, and make the status non-zero."""
    apply_view_options(result, args)
    problems = []
    try:
        result.explained = [result.explain(name) for name in args.explain]
        result.gradient_check = result.check() if args.check else None
    except ValueError as error:
        problems.append((str(error), 2))
    try:
        print(result._plain_text())
    except Exception as error:  # gradmagic's own failure: said in one line, the files are still tried
        problems.append((f"could not print the table: {type(error).__name__}: {error}", 1))
    for typed, path in zip(args.output, outputs):
        try:
            result.save(path)
            print(f"wrote {typed}")
        except OSError as error:  # found only now: an unwritable folder, a directory in the way, a full disk
            problems.append((f"cannot write {typed}: {error.strerror or error}", 1))
        except Exception as error:
            problems.append((f"cannot write {typed}: {type(error).__name__}: {error}", 1))
    for message, code in problems:
        print(f"gradmagic: {message}", file=sys.stderr)
        status = status or code
    return status


if __name__ == "__main__":
    sys.exit(main())
