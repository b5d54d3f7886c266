import contextlib
import json
import os
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


def test_cli_script_error_shows_its_traceback_then_the_table_and_writes(tmp_path, capfd):
    script = tmp_path / "broken.py"
    script.write_text("import torch\nx = torch.ones(1, requires_grad=True) * 2\nraise ValueError('mine')\n")
    out = tmp_path / "partial.json"
    assert main([str(script), "-o", str(out)]) == 1
    printed, errors = capfd.readouterr()
    assert errors.splitlines()[-1] == "ValueError: mine" and f'{script}", line 3, in <module>' in errors
    assert printed.splitlines()[2].split()[:2] == ["x", "torch.ones(1,"] and "MulBackward0" in printed and out.exists()


def test_cli_unknown_suffix_is_one_line_before_the_script_runs(tmp_path, capfd):
    script = tmp_path / "ok.py"
    script.write_text("print('ran')\n")
    with pytest.raises(SystemExit) as stop:
        main([str(script), "-o", str(tmp_path / "g.bmp")])
    printed, errors = capfd.readouterr()
    assert stop.value.code == 2 and printed == "" and len(errors.splitlines()) == 1
    assert "unknown suffix '.bmp'; use one of .png .svg .pdf .graphml .json .dot" in errors


def test_cli_lean_writes_the_autograd_graph(tmp_path, capsys):
    graphml = tmp_path / "seed.graphml"
    assert main([str(ROOT / "examples" / "seed.py"), "--lean", "-o", str(graphml)]) == 0
    assert "Lean capture" in capsys.readouterr().out
    graph = nx.read_graphml(graphml)
    assert graph.graph["capture"] == "lean"
    assert {d["label"] for _, d in graph.nodes(data=True) if d["kind"] == "op"} <= {"mul", "add", "reciprocal"}


def test_cli_lean_with_check_exits_2(capfd):
    with pytest.raises(SystemExit) as stop:
        main([str(ROOT / "examples" / "seed.py"), "--lean", "--check"])
    assert stop.value.code == 2 and "--check needs the full capture" in capfd.readouterr().err


def test_cli_budget_bounds_the_detail_and_a_bad_one_is_one_line(tmp_path, capfd):
    script = tmp_path / "loop.py"
    script.write_text("import torch\nh = torch.ones(2, requires_grad=True)\nfor _ in range(30):\n    h = h * 1.5\n"
                      "h.sum().backward()\n")
    graph_file = tmp_path / "g.json"
    assert main([str(script), "--budget", "ops=10", "-o", str(graph_file)]) == 0
    printed = capfd.readouterr().out
    assert "Recorded the first 10 ops in detail; the remaining 23 ops as counts per line" in printed
    assert "No backward pass ran within the ops recorded in detail" in printed
    assert json.loads(graph_file.read_text())["graph"]["notes"]
    with pytest.raises(SystemExit) as stop:
        main([str(script), "--budget", "nope=1"])
    printed, errors = capfd.readouterr()
    assert stop.value.code == 2 and printed == "" and len(errors.splitlines()) == 1
    assert errors.endswith("budget 'nope': not a budget; give ops, memory or seconds\n")


def test_pyproject_states_the_pythons_it_installs_on_and_an_spdx_license():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["project"]["requires-python"] == ">=3.10"  # torch 2.13 and networkx>=3.4 have no 3.9 wheels
    assert config["project"]["license"] == "MIT"  # an SPDX string: the TOML table is deprecated by setuptools
    assert "setuptools>=77" in config["build-system"]["requires"]  # the first setuptools that reads SPDX strings


def _both(tmp_path, capfd, text, *args, name="script.py"):
    """(python SCRIPT.py ARGS, gradmagic on it in this process with -o out.json -- ARGS) as (status, out, err)s.

    Scripts that do not import torch keep the plain run fast; gradmagic's side runs in-process (torch is loaded)."""
    script = tmp_path / name
    if text is not None:  # None: the test made the file
        script.write_text(text) if isinstance(text, str) else script.write_bytes(text)
    plain = subprocess.run([sys.executable, name, *args], capture_output=True, text=True, cwd=tmp_path)
    capfd.readouterr()
    with _cwd(tmp_path):
        status = main([name, "-o", str(tmp_path / "out.json"), "--", *args])
    printed, errors = capfd.readouterr()
    return (plain.returncode, plain.stdout, plain.stderr), (status, printed, errors)


@contextlib.contextmanager
def _cwd(path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _same_script_output(plain, ours):
    """gradmagic printed what the script printed, then its table; stderr ends as python's does."""
    assert ours[0] == plain[0], (plain, ours)
    assert ours[1].startswith(plain[1]) and "wrote " in ours[1]
    assert ours[2].splitlines()[-1:] == plain[2].splitlines()[-1:]


SHOWS_ITSELF = ("import sys\nprint(sys.argv, __name__, __file__, sys.path[0])\n"
                "print(sorted(globals()), __doc__, type(__loader__).__name__,\n"
                "      sys.modules['__main__'].__dict__ is globals())\n")


def test_cli_runs_the_script_as_python_does_with_its_own_arguments(tmp_path, capfd):
    plain, ours = _both(tmp_path, capfd, SHOWS_ITSELF, "--epochs", "3")
    _same_script_output(plain, ours)
    assert plain[1].startswith(f"['script.py', '--epochs', '3'] __main__ {tmp_path / 'script.py'} {tmp_path}\n")
    assert "'__spec__', 'sys'] None SourceFileLoader True" in plain[1]  # no `torch` slipped in


def test_cli_script_folder_is_first_on_sys_path_not_the_cwd(tmp_path, capfd):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "helper.py").write_text("WHO = 'the helper next to the script'\n")
    (tmp_path / "helper.py").write_text("WHO = 'the helper in the cwd'\n")
    try:
        plain, ours = _both(tmp_path, capfd, "import helper\nprint(helper.WHO)\n", name="pkg/main.py")
    finally:
        sys.modules.pop("helper", None)
    _same_script_output(plain, ours)
    assert plain[1] == "the helper next to the script\n"


def test_cli_classes_defined_in_the_script_pickle_and_postponed_hints_resolve(tmp_path, capfd):
    text = ("from __future__ import annotations\nimport dataclasses, decimal, pickle, typing\n"
            "@dataclasses.dataclass\nclass Point:\n    x: decimal.Decimal\n"
            "print(pickle.loads(pickle.dumps(Point(decimal.Decimal(1)))), typing.get_type_hints(Point))\n"
            "import inspect\nprint(inspect.getsource(Point).splitlines()[1])\n")
    plain, ours = _both(tmp_path, capfd, text)
    _same_script_output(plain, ours)
    assert plain[1] == "Point(x=Decimal('1')) {'x': <class 'decimal.Decimal'>}\nclass Point:\n"


def test_cli_decodes_a_latin_1_script_by_its_coding_cookie(tmp_path, capfd):
    text = "# -*- coding: latin-1 -*-\nword = 'café'\nprint(word, len(word))\nword[9]\n".encode("latin-1")
    plain, ours = _both(tmp_path, capfd, text)
    _same_script_output(plain, ours)
    assert plain[1] == "café 4\n" and "    word[9]" in ours[2]
    assert ours[2].endswith("IndexError: string index out of range\n")


def test_cli_error_shows_pythons_own_traceback_of_the_script(tmp_path, capfd):
    text = "import torch\nx = torch.ones(2, requires_grad=True)\n\ndef f(t):\n    return t @ torch.ones(3)\n\nf(x)\n"
    plain, ours = _both(tmp_path, capfd, text)
    assert ours[0] == plain[0] == 1 and ours[2] == plain[2]
    assert 'script.py", line 5, in f' in ours[2] and "torch.ones(2, requ" in ours[1]
    assert (tmp_path / "out.json").exists()


@pytest.mark.parametrize("text", ["x = 1\ny = (\n", "x = 1\nreturn x\n", "def f():\n\tif 1:\n        pass\n"])
def test_cli_syntax_error_prints_as_python_does_once(tmp_path, capfd, text):
    plain, ours = _both(tmp_path, capfd, text)
    assert ours[0] == plain[0] == 1 and ours[2] == plain[2] and ours[1] == ""


@pytest.mark.parametrize("text, says", [("# coding: nosuch\nx = 1\n", "nosuch"), (b"x = '\xe9'\n", "utf-8")])
def test_cli_undecodable_script_is_pythons_one_syntax_error(tmp_path, capfd, text, says):
    """python's own compile() message, as runpy gives (the file reader of `python SCRIPT.py` words it otherwise)."""
    plain, ours = _both(tmp_path, capfd, text)
    assert ours[0] == plain[0] == 1 and ours[1] == "" and "Traceback" not in ours[2]
    assert ours[2].startswith(f'  File "{tmp_path / "script.py"}", line') and ours[2].count("SyntaxError") == 1
    assert ours[2].splitlines()[-1].startswith("SyntaxError: ") and says in ours[2].splitlines()[-1]


@pytest.mark.parametrize("end, status", [("sys.exit(0)", 0), ("sys.exit(3)", 3), ("sys.exit()", 0),
                                         ("raise SystemExit('stopped: no data')", 1)])
def test_cli_sys_exit_keeps_pythons_status_and_message_and_still_reports(tmp_path, capfd, end, status):
    plain, ours = _both(tmp_path, capfd, f"import sys\nprint('ran')\n{end}\nprint('not reached')\n")
    _same_script_output(plain, ours)
    assert ours[0] == status and (tmp_path / "out.json").exists() and "not reached" not in ours[1]


def test_cli_sys_exit_keeps_the_recorded_tensors(tmp_path, capfd):
    script = tmp_path / "train.py"
    script.write_text("import sys, torch\nw = torch.tensor(3.0, requires_grad=True)\nloss = w * w\n"
                      "loss.backward()\nsys.exit(3)\nafter = w * 2\n")
    assert main([str(script), "-o", str(tmp_path / "g.graphml")]) == 3
    printed = capfd.readouterr().out
    assert "6.0" in printed.split("\nw ")[1].splitlines()[0] and "after" not in printed  # w.grad = 2w = 6
    assert "loss" in {d.get("label") for _, d in nx.read_graphml(tmp_path / "g.graphml").nodes(data=True)}


def test_cli_ctrl_c_shows_the_scripts_traceback_then_what_was_recorded(tmp_path, capfd):
    text = "import torch\nx = torch.ones(2) * 5\nraise KeyboardInterrupt\n"
    plain = subprocess.run([sys.executable, "-c", "raise KeyboardInterrupt"], capture_output=True, text=True)
    script = tmp_path / "stop.py"
    script.write_text(text)
    assert main([str(script)]) == 130  # a shell's status for Ctrl-C; `python -m gradmagic` dies of SIGINT as python
    printed, errors = capfd.readouterr()
    assert plain.returncode == -2 and errors.splitlines()[-1] == plain.stderr.splitlines()[-1] == "KeyboardInterrupt"
    assert f'{script}", line 3, in <module>' in errors and "[5.0, 5.0]" in printed


def test_cli_unwritable_output_is_one_line_after_the_table(tmp_path, capfd):
    script = tmp_path / "ok.py"
    script.write_text("import torch\nx = torch.ones(2) * 2\n")
    assert main([str(script), "-o", "/proc/gradmagic-out.json", "-o", str(tmp_path / "g.json")]) == 1
    printed, errors = capfd.readouterr()
    assert errors == "gradmagic: cannot write /proc/gradmagic-out.json: No such file or directory\n"
    assert "torch.ones(2) * 2" in printed and (tmp_path / "g.json").exists()


def test_cli_uncreatable_output_folder_is_one_line_before_the_script_runs(tmp_path, capfd):
    script = tmp_path / "ok.py"
    script.write_text("print('ran')\n")
    with pytest.raises(SystemExit) as stop:
        main([str(script), "-o", "/proc/no/such/g.png"])
    printed, errors = capfd.readouterr()
    assert stop.value.code == 2 and printed == ""
    assert errors == ("python -m gradmagic: error: -o /proc/no/such/g.png: cannot create its folder '/proc/no/such': "
                      "No such file or directory\n")


def test_cli_internal_failure_is_one_line_not_a_second_crash(tmp_path, capfd, monkeypatch):
    def broken(*args):
        raise RuntimeError("graph could not be built")

    monkeypatch.setattr("gradmagic.runner.resolve", broken)
    script = tmp_path / "ok.py"
    script.write_text("import torch\nprint('ran')\nx = torch.ones(2) * 2\n")
    assert main([str(script), "-o", str(tmp_path / "out.png")]) == 1
    assert capfd.readouterr() == ("ran\n", "gradmagic: the capture failed (RuntimeError: graph could not be built), "
                                           "so there is no graph; the cell itself ran as usual.\n")
    assert not (tmp_path / "out.png").exists()


def test_cli_unknown_explain_name_comes_after_the_scripts_own_error_in_one_line(tmp_path, capfd):
    script = tmp_path / "broken.py"
    script.write_text("import torch\nx = torch.ones(2, requires_grad=True)\ny = (x * 3).sum()\ny.backward()\nundefined_name\n")
    assert main([str(script), "--explain", "nosuch"]) == 1
    printed, errors = capfd.readouterr()
    lines = errors.splitlines()
    assert lines[-2] == "NameError: name 'undefined_name' is not defined" and lines[-3] == "    undefined_name"
    assert lines[-1].startswith("gradmagic: ") and "nosuch" in lines[-1] and "\ny " in printed


def test_cli_a_second_ctrl_c_while_drawing_is_one_line(tmp_path, capfd, monkeypatch):
    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr("gradmagic.result.Result._plain_text", interrupted)
    script = tmp_path / "ok.py"
    script.write_text("import torch\nx = torch.ones(2) * 2\n")
    assert main([str(script), "-o", str(tmp_path / "g.json")]) == 130
    assert capfd.readouterr() == ("", "gradmagic: interrupted while printing the table or writing the files\n")


def test_cli_a_table_that_fails_is_one_line_and_the_files_are_still_written(tmp_path, capfd, monkeypatch):
    def broken(self):
        raise RuntimeError("no glyph for 名")

    monkeypatch.setattr("gradmagic.result.Result._plain_text", broken)
    script = tmp_path / "ok.py"
    script.write_text("import torch\nx = torch.ones(2) * 2\n")
    assert main([str(script), "-o", str(tmp_path / "g.json")]) == 1
    assert capfd.readouterr() == (f"wrote {tmp_path / 'g.json'}\n",
                                  "gradmagic: could not print the table: RuntimeError: no glyph for 名\n")


def test_cli_outputs_are_written_where_they_were_typed_even_if_the_script_changes_folder(tmp_path, capfd):
    (tmp_path / "elsewhere").mkdir()
    script = tmp_path / "moves.py"
    script.write_text("import os, torch\nos.chdir('elsewhere')\nx = torch.ones(2) * 2\n")
    with _cwd(tmp_path):
        assert main(["moves.py", "-o", "g.json"]) == 0
    assert (tmp_path / "g.json").exists() and not (tmp_path / "elsewhere" / "g.json").exists()
    assert capfd.readouterr().out.endswith("wrote g.json\n")


def test_cli_a_linked_script_gets_the_link_as_file_and_the_target_folder_on_sys_path(tmp_path, capfd):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "target.py").write_text("import sys\nprint(__file__, sys.path[0], sys.argv[0])\n")
    (tmp_path / "link.py").symlink_to(tmp_path / "real" / "target.py")
    plain, ours = _both(tmp_path, capfd, None, name="link.py")
    _same_script_output(plain, ours)
    assert plain[1] == f"{tmp_path / 'link.py'} {tmp_path / 'real'} link.py\n"


def test_cli_unknown_option_is_one_line_saying_where_script_arguments_go(capfd):
    with pytest.raises(SystemExit) as stop:
        main([str(ROOT / "examples" / "seed.py"), "--epochs", "3"])
    errors = capfd.readouterr().err
    assert stop.value.code == 2 and len(errors.strip().splitlines()) == 1
    assert "unrecognized arguments: --epochs 3" in errors and "after --" in errors
    assert "did you mean" not in errors.lower() and "usage:" not in errors


def test_cli_help_says_how_to_pass_the_scripts_arguments(capfd):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    printed = capfd.readouterr().out
    assert stop.value.code == 0 and "[-- SCRIPT_ARGS ...]" in printed and "sys.argv" in printed
