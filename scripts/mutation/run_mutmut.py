"""mutmut 3 over one gradmagic module against its own fast test file(s), in a scratch copy; never in CI.

Usage (from the repository root, in the project's venv with `pip install mutmut`):
    python scripts/mutation/run_mutmut.py MODULE [--sample N] [--seed S] [--names FILE] [--children C]
                                                [--budget SECONDS] [--scratch DIR]
Copies gradmagic/ and tests/ (without realworld, browser, faults) to DIR/MODULE (default /tmp/gradmagic-mutmut),
writes mutmut's setup.cfg there (mutate gradmagic/MODULE.py only; tests: MODULES[MODULE]), generates every mutant,
runs N of them drawn with random.Random(S) (all when N is 0), and prints `mutmut results --all` and a count.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: module -> the unit test files that exercise it (mutmut 3 picks, per mutant, the tests that cover its function)
MODULES = {
    "recorder": ["tests/record/test_recorder.py"],
    "hooks": ["tests/record/test_recorder.py"],
    "book": ["tests/record/test_recorder.py"],
    "trace": ["tests/record/test_recorder.py", "tests/test_graph.py"],
    "graph": ["tests/test_graph.py", "tests/test_contract.py"],
    "gradcheck": ["tests/analysis/test_gradcheck.py"],
    "diagnose": ["tests/analysis/test_diagnose.py"],
    "cuts": ["tests/analysis/test_diagnose.py"],
    "nans": ["tests/analysis/test_diagnose.py"],
    "hook_changes": ["tests/analysis/test_hook_changes.py"],
    "reading": ["tests/analysis/test_diagnose.py", "tests/analysis/test_explain.py"],
    "explain": ["tests/analysis/test_explain.py"],
    "explanation": ["tests/analysis/test_explain.py"],
    "export": ["tests/view/test_export.py"],
}
SKIPPED_TESTS = ("realworld", "browser", "faults", "__pycache__")
SETUP_CFG = """[mutmut]
source_paths = gradmagic/
only_mutate = {path}
pytest_add_cli_args = -p no:cacheprovider -q
pytest_add_cli_args_test_selection =
{tests}
"""


def prepare(module: str, scratch: Path) -> Path:
    """A fresh copy of the package and its fast tests, with mutmut's configuration for one module."""
    where = scratch / module
    shutil.rmtree(where, ignore_errors=True)
    shutil.copytree(ROOT / "gradmagic", where / "gradmagic", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", where / "tests", ignore=shutil.ignore_patterns(*SKIPPED_TESTS))
    tests = "\n".join(f"    {t}" for t in MODULES[module])
    (where / "setup.cfg").write_text(SETUP_CFG.format(path=module_path(module), tests=tests))
    return where


def module_path(module: str) -> str:
    """`gradmagic/record/recorder.py`: where a module lives in the package, relative to the root."""
    return next(ROOT.glob(f"gradmagic/**/{module}.py")).relative_to(ROOT).as_posix()


def mutmut(where: Path, *args: str, timeout: float | None = None) -> str:
    """mutmut's output; past `timeout` seconds it is stopped, and what it finished stays in its .meta files."""
    try:
        done = subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=where, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as stopped:
        return f"(stopped after {timeout} s)\n{stopped.stdout or ''}"
    return done.stdout + done.stderr


#: mutmut 3's exit codes in .meta files
STATUS = {1: "killed", 0: "survived", 33: "no tests", 34: "skipped", 36: "timeout", -24: "timeout", None: "not run"}


def statuses(where: Path, module: str, chosen: list) -> dict:
    """{mutant: killed / survived / no tests / timeout / not run} for the chosen mutants."""
    meta = json.loads((where / "mutants" / f"{module_path(module)}.meta").read_text())
    return {n: STATUS.get(meta["exit_code_by_key"].get(n), "other") for n in chosen}


def mutant_names(where: Path, module: str) -> list:
    """Every mutant mutmut generated for the module, in its order."""
    meta = json.loads((where / "mutants" / f"{module_path(module)}.meta").read_text())
    return sorted(meta["exit_code_by_key"], key=lambda n: (n.rsplit("__mutmut_", 1)[0], int(n.rsplit("_", 1)[1])))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", choices=sorted(MODULES))
    parser.add_argument("--sample", type=int, default=0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--children", type=int, default=2)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/gradmagic-mutmut"))
    parser.add_argument("--names", type=Path, help="a file of mutant names to run (e.g. an earlier run's survivors)")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the run; unfinished: not run")
    options = parser.parse_args()
    where = prepare(options.module, options.scratch)
    mutmut(where, "run", "--max-children", "1", "no-such-mutant")  # generates every mutant, runs none
    names = mutant_names(where, options.module)
    chosen = sorted(random.Random(options.seed).sample(names, options.sample)) if 0 < options.sample < len(names) \
        else names
    if options.names:
        chosen = [n for n in options.names.read_text().split() if n in names]
    print(f"{options.module}: {len(names)} mutants, running {len(chosen)} (seed {options.seed})", flush=True)
    (where / "chosen.txt").write_text("\n".join(chosen) + "\n")
    print(mutmut(where, "run", "--max-children", str(options.children), *chosen, timeout=options.budget)[-1500:])
    found = statuses(where, options.module, chosen)
    print("\n".join(f"    {name}: {status}" for name, status in found.items() if status != "killed"))
    print(f"{options.module}: {dict(Counter(found.values()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
