import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import pytest

from gradmagic.__main__ import main

ROOT = Path(__file__).resolve().parent.parent


def test_cli_prints_the_table_and_writes_exports(tmp_path, capsys):
    svg, graphml = tmp_path / "out" / "seed.svg", tmp_path / "out" / "seed.graphml"
    assert main([str(ROOT / "examples" / "seed.py"), "-o", str(svg), "-o", str(graphml)]) == 0
    printed = capsys.readouterr().out
    assert "x.grad = 17200.0" in printed and "17200" in printed.split("x.grad")[1]
    assert ET.parse(svg).getroot().tag.endswith("svg")
    assert nx.read_graphml(graphml).number_of_nodes() > 5


def test_cli_script_error_exits_1_and_still_writes(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("x = torch.ones(1, requires_grad=True) * 2\nraise ValueError('mine')\n")
    out = tmp_path / "partial.json"
    done = subprocess.run([sys.executable, "-m", "gradmagic", str(script), "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 1 and "ValueError: mine" in done.stderr and out.exists()


def test_cli_bad_options_exit_2_with_one_line(tmp_path):
    script = tmp_path / "ok.py"
    script.write_text("pass\n")
    done = subprocess.run([sys.executable, "-m", "gradmagic", str(script), "-o", str(tmp_path / "g.bmp")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "unknown suffix" in done.stderr


def test_cli_lean_writes_the_autograd_graph(tmp_path, capsys):
    graphml = tmp_path / "seed.graphml"
    assert main([str(ROOT / "examples" / "seed.py"), "--lean", "-o", str(graphml)]) == 0
    assert "Lean capture" in capsys.readouterr().out
    graph = nx.read_graphml(graphml)
    assert graph.graph["capture"] == "lean"
    assert {d["label"] for _, d in graph.nodes(data=True) if d["kind"] == "op"} <= {"mul", "add", "reciprocal"}


def test_cli_lean_with_check_exits_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "gradmagic", str(ROOT / "examples" / "seed.py"), "--lean", "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "--check needs the full capture" in done.stderr


def test_pyproject_states_the_pythons_it_installs_on_and_an_spdx_license():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["project"]["requires-python"] == ">=3.10"  # torch 2.13 and networkx>=3.4 have no 3.9 wheels
    assert config["project"]["license"] == "MIT"  # an SPDX string: the TOML table is deprecated by setuptools
    assert "setuptools>=77" in config["build-system"]["requires"]  # the first setuptools that reads SPDX strings


def _both(tmp_path, text, *args):
    """(python SCRIPT.py ARGS, python -m gradmagic SCRIPT.py -o out.json -- ARGS): their CompletedProcesses."""
    script = tmp_path / "script.py"
    script.write_text(text)
    plain = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=tmp_path)
    ours = subprocess.run([sys.executable, "-m", "gradmagic", str(script), "-o", str(tmp_path / "out.json"), "--",
                           *args], capture_output=True, text=True, cwd=tmp_path)
    return plain, ours


SHOWS_ITSELF = "import sys\nimport torch\nprint(sys.argv[1:], __name__, __file__)\nx = torch.ones(2) * 2\n"


def test_cli_runs_the_script_as_python_does_with_its_own_arguments(tmp_path):
    plain, ours = _both(tmp_path, SHOWS_ITSELF, "--epochs", "3")
    assert ours.returncode == 0 and ours.stdout.splitlines()[0] == plain.stdout.strip()
    assert plain.stdout.startswith(f"['--epochs', '3'] __main__ {tmp_path / 'script.py'}")


def test_cli_error_shows_pythons_own_traceback_of_the_script(tmp_path):
    text = "import torch\nx = torch.ones(2, requires_grad=True)\n\ndef f(t):\n    return t @ torch.ones(3)\n\nf(x)\n"
    plain, ours = _both(tmp_path, text)
    assert ours.returncode == plain.returncode == 1 and ours.stderr == plain.stderr
    assert 'script.py", line 5, in f' in ours.stderr and (tmp_path / "out.json").exists()


def test_cli_syntax_error_prints_as_python_does(tmp_path):
    plain, ours = _both(tmp_path, "x = 1\ny = (\n")
    assert ours.returncode == plain.returncode == 1 and ours.stderr == plain.stderr


def test_cli_sys_exit_0_is_a_normal_end_and_a_nonzero_status_is_kept(tmp_path):
    plain, ours = _both(tmp_path, SHOWS_ITSELF + "sys.exit(0)\n")
    assert ours.returncode == 0 and "x " in ours.stdout and (tmp_path / "out.json").exists()
    (tmp_path / "out.json").unlink()
    plain, ours = _both(tmp_path, SHOWS_ITSELF + "sys.exit(3)\n")
    assert ours.returncode == plain.returncode == 3 and (tmp_path / "out.json").exists()


def test_cli_unknown_option_is_one_line_saying_where_script_arguments_go(tmp_path):
    done = subprocess.run([sys.executable, "-m", "gradmagic", str(ROOT / "examples" / "seed.py"), "--epochs", "3"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "unrecognized arguments: --epochs 3" in done.stderr and "after --" in done.stderr
    assert "did you mean" not in done.stderr.lower() and "usage:" not in done.stderr


def test_cli_help_says_how_to_pass_the_scripts_arguments():
    done = subprocess.run([sys.executable, "-m", "gradmagic", "--help"], capture_output=True, text=True)
    assert "[-- SCRIPT_ARGS ...]" in done.stdout and "sys.argv" in done.stdout
