"""The CLI against `python SCRIPT.py`, each in its own process: exit status, the script's stdout, stderr's end.

No kernel here: `python -m gradmagic` and the `gradmagic` console script are the front ends under test. Scripts
import torch, so each process costs a torch import; each case checks several things on one pair of runs.
"""
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# Modeled on the PyTorch tutorial "Learning PyTorch with Examples" (polynomial fit of sin with torch.Tensor and
# autograd, https://pytorch.org/tutorials/beginner/pytorch_with_examples.html) inside the argparse `main()` layout
# of pytorch/examples (e.g. mnist/main.py); written in latin-1 with a coding cookie, a dataclass with postponed
# annotations that is pickled, and a `--exit` status at the end.
POLYNOMIAL = """# -*- coding: latin-1 -*-
from __future__ import annotations
import argparse, dataclasses, math, pickle, sys, typing
import torch


@dataclasses.dataclass
class Config:
    lr: float
    steps: int = 3
    label: str = "régression"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--exit", type=int, default=0)
    args = parser.parse_args()
    config = pickle.loads(pickle.dumps(Config(lr=args.lr)))
    print(sys.argv, __name__, config.label, typing.get_type_hints(Config)["lr"], sys.path[0])
    torch.manual_seed(0)
    x = torch.linspace(-math.pi, math.pi, 200)
    y = torch.sin(x)
    a = torch.randn((), requires_grad=True)
    b = torch.randn((), requires_grad=True)
    for step in range(config.steps):
        y_pred = a + b * x
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            a -= config.lr * a.grad
            b -= config.lr * b.grad
            a.grad = None
            b.grad = None
        print(step, round(loss.item(), 4))
    return args.exit


if __name__ == "__main__":
    sys.exit(main())
"""


def _pair(tmp_path, script: Path, ours: list, args: list, **popen) -> tuple:
    """(plain, gradmagic) CompletedProcesses of the same script and arguments, both run from tmp_path."""
    plain = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=tmp_path,
                           timeout=300)
    theirs = subprocess.run([*ours, "--", *args], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    return plain, theirs


def _console_script() -> Path:
    """The `gradmagic` command pip installed next to this python, or a skip."""
    console = Path(sys.executable).parent / "gradmagic"
    if not console.exists():
        pytest.skip(f"no console script at {console} (pip install -e . makes it)")
    return console


def test_console_script_runs_a_training_script_as_python_does(tmp_path):
    script = tmp_path / "fit" / "polynomial.py"
    script.parent.mkdir()
    script.write_bytes(POLYNOMIAL.encode("latin-1"))
    out = tmp_path / "out.png"
    ours = [str(_console_script()), "-o", str(out), str(script)]  # options before the script
    plain, theirs = _pair(tmp_path, script, ours, ["--lr", "0.0001", "--exit", "3"])
    assert plain.returncode == theirs.returncode == 3, theirs.stderr
    assert plain.stdout.startswith(f"{[str(script), '--lr', '0.0001', '--exit', '3']} __main__ régression "
                                   f"<class 'float'> {script.parent}\n0 ")
    assert theirs.stdout.startswith(plain.stdout) and theirs.stderr == plain.stderr == ""
    table = theirs.stdout[len(plain.stdout):]
    assert "loss" in table and "y_pred" in table and f"wrote {out}" in table
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


FAILS_IN_A_FUNCTION = """import torch
try:
    import cwd_only
except ModuleNotFoundError as error:
    print(error)
w = torch.ones(3, requires_grad=True)


def score(t):
    return (t * torch.arange(2.0)).sum()


score(w).backward()
"""


def test_module_cli_shows_the_scripts_own_traceback_then_one_line_for_its_own_problem(tmp_path):
    (tmp_path / "cwd_only.py").write_text("print('imported from the cwd: python would not')\n")
    script = tmp_path / "tools" / "score.py"
    script.parent.mkdir()
    script.write_text(FAILS_IN_A_FUNCTION)
    ours = [sys.executable, "-m", "gradmagic", str(script), "-o", "/proc/gradmagic.png"]
    plain, theirs = _pair(tmp_path, script, ours, [])
    assert plain.returncode == theirs.returncode == 1
    assert plain.stdout == "No module named 'cwd_only'\n" and theirs.stdout.startswith(plain.stdout)
    assert 'score.py", line 10, in score' in plain.stderr
    assert theirs.stderr == plain.stderr + "gradmagic: cannot write /proc/gradmagic.png: No such file or directory\n"
    assert theirs.stdout.splitlines()[3].split()[:2] == ["w", "torch.ones(3,"]  # the table, after the script's line


LOOPS_UNTIL_STOPPED = """import sys, time
import torch
x = torch.zeros(2)
for step in range(600):
    x = x + 1
    if step == 2:
        print("ready", flush=True)
    time.sleep(0.1)
"""


def _interrupted(command: list, cwd) -> tuple:
    """(status, stdout, stderr) of a command sent SIGINT (Ctrl-C) once it printed its first line."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    first = process.stdout.readline()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return process.returncode, first + out, err


def test_ctrl_c_ends_as_python_does_after_showing_what_was_recorded(tmp_path):
    script = tmp_path / "loop.py"
    script.write_text(LOOPS_UNTIL_STOPPED)
    plain = _interrupted([sys.executable, str(script)], tmp_path)
    theirs = _interrupted([sys.executable, "-m", "gradmagic", str(script)], tmp_path)
    assert plain[0] == theirs[0] == -signal.SIGINT  # python dies of the signal: a shell sees 130
    assert plain[1] == "ready\n" and theirs[1].startswith("ready\n") and "\nx " in theirs[1]
    assert plain[2].splitlines()[-1] == theirs[2].splitlines()[-1] == "KeyboardInterrupt"
    assert re.search(f'{re.escape(str(script))}", line [5-8], in <module>', theirs[2])  # wherever the loop was
    assert "gradmagic" not in theirs[2]  # none of the capture's frames, wherever the signal landed
