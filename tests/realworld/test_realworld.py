"""Real autograd programs: under gradmagic (full and lean) each must leave exactly what a plain run leaves, and
gradmagic's result must describe every named tensor as it is at the end (see harness.py for the contract).

Each program runs in fresh child processes (plain, full, lean at once), so no run can see another's state.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import harness

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = sorted((Path(__file__).parent / "programs").glob("*.py"))
MODES = ("full", "lean")
TIMEOUT_S = float(os.environ.get("REALWORLD_TIMEOUT_S", 120))  # per child; raise it on a loaded machine

#: program stem -> the reason it is unsupported; a note of the result must contain that text (case-insensitive).
UNSUPPORTED: dict = {}


class Runs:
    """The children's reports, run once per program: plain, full and lean started together."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.reports: dict = {}

    def get(self, program: Path, mode: str) -> dict:
        """The report of `program` in `mode`, running all three modes on first use."""
        if program not in self.reports:
            self.reports = {program: run_all(program, self.folder)}  # keep one program's reports at a time
        return self.reports[program][mode]


def run_all(program: Path, folder: Path) -> dict:
    """{mode: report} for the three modes of one program, each in its own fresh process, run concurrently."""
    children = {mode: start_child(mode, program, folder / f"{program.stem}.{mode}.pickle") for mode in harness.MODES}
    return {mode: finish_child(*child) for mode, child in children.items()}


def start_child(mode: str, program: Path, out: Path) -> tuple:
    """(process, output path, mode): `python -m tests.realworld.harness MODE PROGRAM OUT` started from the root."""
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    process = subprocess.Popen([sys.executable, "-m", "tests.realworld.harness", mode, str(program), str(out)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, out, mode


def finish_child(process: subprocess.Popen, out: Path, mode: str) -> dict:
    """The child's report, or a dict with `crash` saying how it ended without one (timeout, exit status)."""
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        return {"crash": f"{mode}: no result within {TIMEOUT_S} s\n{output[-3000:]}"}
    if process.returncode != 0 or not out.is_file():
        return {"crash": f"{mode}: the child exited with status {process.returncode}\n{output[-3000:]}"}
    with open(out, "rb") as f:
        return pickle.load(f)


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> Runs:
    """One cache of child reports for the whole session."""
    return Runs(tmp_path_factory.mktemp("realworld"))


@pytest.mark.parametrize("program, mode", [pytest.param(p, m, id=f"{p.stem}-{m}") for p in PROGRAMS for m in MODES])
def test_program(program: Path, mode: str, runs: Runs):
    """Plain and captured runs leave bitwise-identical states, and gradmagic's result keeps the contract."""
    captured = runs.get(program, mode)
    message = failures(program, runs.get(program, "plain"), captured, mode)
    if message:
        pytest.fail("\n".join(message))
    if program.stem in UNSUPPORTED:
        assert_noted(captured, UNSUPPORTED[program.stem])


def failures(program: Path, plain: dict, captured: dict, mode: str) -> list:
    """What breaks the contract in one captured run, in lines: a crash, state differences, contract failures."""
    crashes = [report["crash"] for report in (plain, captured) if "crash" in report]
    if crashes:
        return crashes
    diffs = harness.differences(plain["fingerprint"], captured["fingerprint"])
    checks = [] if program.stem in UNSUPPORTED else captured["checks"]
    message = []
    if diffs:
        message += [f"the {mode} run left a different state than the plain run:", *diffs]
    if checks:
        message += [f"{len(checks)} contract failure(s) in {mode}:", *checks[:20]]
    return message


def assert_noted(report: dict, reason: str) -> None:
    """Some note of an unsupported program's result contains its documented reason."""
    notes = report["notes"] or []
    assert any(reason.lower() in note.lower() for note in notes), \
        f"unsupported ({reason}), but no note of the result says so; notes: {notes}"


def test_unsupported_are_documented():
    """Every UNSUPPORTED entry names an existing program and gives a reason."""
    stems = {p.stem for p in PROGRAMS}
    assert all(stem in stems and reason.strip() for stem, reason in UNSUPPORTED.items()), UNSUPPORTED
