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
