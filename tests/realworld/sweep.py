"""The real-world suite without pytest, many programs at once: for a machine with many cores or a GPU.

    REALWORLD_DEVICE=cuda python tests/realworld/sweep.py [--jobs N] [--only TEXT]

Runs each program plain, full and lean in fresh children (as test_realworld.py does), N programs at a time, and
prints one line per program and mode: ok, the state differences from the plain run, the contract failures, or how
the child crashed. Exits 1 if any line is not ok. benchmarks/cuda_check.sh runs it on the device machine.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from test_realworld import MODES, PROGRAMS, failures, run_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4, help="programs run at once (three children each)")
    parser.add_argument("--only", default="", help="only the programs whose name contains this text")
    args = parser.parse_args()
    programs = [p for p in PROGRAMS if args.only in p.stem]
    failed = 0
    with tempfile.TemporaryDirectory() as folder, ThreadPoolExecutor(args.jobs) as pool:
        started = time.perf_counter()
        runs = {p: pool.submit(run_all, p, Path(folder)) for p in programs}
        for program, future in runs.items():
            reports = future.result()
            for mode in MODES:
                problems = failures(program, reports["plain"], reports[mode], mode)
                failed += bool(problems)
                seconds = reports[mode].get("seconds", float("nan"))
                plain = reports["plain"].get("seconds", float("nan"))
                print(f"{program.stem:40} {mode:5} {'ok' if not problems else 'FAIL'}  "
                      f"{seconds:7.2f} s (plain {plain:6.2f} s)", flush=True)
                for line in problems[:12]:
                    print("    " + str(line)[:400].replace("\n", "\n    "), flush=True)
        print(f"{len(programs)} programs, {failed} failing program-modes, {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
