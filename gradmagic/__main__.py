"""python -m gradmagic SCRIPT.py: run a script under the capture, print its table, write the exports."""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

import torch

from . import export
from .options import check_run_options
from .runner import last, run

__all__ = ["main"]


def main(argv: list | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m gradmagic", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("script", type=Path, help="a Python file that uses torch")
    parser.add_argument("-o", "--output", action="append", default=[], metavar="PATH",
                        help=f"write the result by suffix ({' '.join(export.SUFFIXES)}); repeatable")
    parser.add_argument("-d", "--device", help="default device inside the script: cpu, cuda, cuda:N")
    parser.add_argument("--dtype", help="default floating dtype inside the script")
    parser.add_argument("--all", action="store_true", help="draw every node (no folding or collapsing)")
    parser.add_argument("--depth", type=int, help="one box per nn.Module at this depth")
    parser.add_argument("--max-nodes", type=int, help="collapse until the picture has at most N nodes")
    parser.add_argument("--explain", action="append", default=[], metavar="NAME",
                        help="print d root/d NAME as the chain rule and the sum over paths; repeatable")
    parser.add_argument("--check", action="store_true", help="check gradients against finite differences")
    parser.add_argument("--lean", action="store_true",
                        help="record only torch's autograd graph (fast; named values only, no --explain/--check)")
    parser.add_argument("--rankdir", choices=["LR", "TB"], default="TB", help="inputs on top (TB, default) or left (LR)")
    args = parser.parse_args(argv)
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
    source = args.script.read_text()
    namespace = {"torch": torch, "__name__": "__main__", "__file__": str(args.script)}
    status = 0
    try:
        result = run(source, namespace, device=device, dtype=dtype, lean=args.lean)
    except Exception:  # the script's own error: report it, still write what was captured
        traceback.print_exc()
        result, status = last(), 1
    result.show_all, result.rankdir = args.all, args.rankdir
    result.depth, result.max_nodes = args.depth, args.max_nodes
    try:
        result.explained = [result.explain(name) for name in args.explain]
        result.gradient_check = result.check() if args.check else None
    except ValueError as error:
        print(f"gradmagic: {error}", file=sys.stderr)
        status = 2
    print(result._plain_text())
    for path in outputs:
        print(f"wrote {result.save(path)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
