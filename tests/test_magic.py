import base64
import re
import warnings
import xml.etree.ElementTree as ET

import nbformat
import networkx as nx
import pytest
import torch
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from nbclient import NotebookClient

from helpers import assert_same, plain_namespace
from programs import CONTROL_FLOW, MODULE_STEP, SEED_3


def run(shell, cell):
    """Run a cell; return (ExecutionResult, list of published output bundles, captured stdout)."""
    with capture_output() as captured:
        result = shell.run_cell(cell)
    return result, [o.data for o in captured.outputs], captured.stdout


def _inline_png(page: str) -> str:
    """The base64 PNG of the one <img> in a result's HTML."""
    found, = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    return found


def test_seed_cell_publishes_one_bundle_with_image_and_table(shell):
    result, outputs, _ = run(shell, "%%autograd\n" + SEED_3)
    assert result.success
    assert len(outputs) == 1
    bundle = outputs[0]
    page = bundle["text/html"]
    assert base64.b64decode(_inline_png(page)).startswith(b"\x89PNG")
    for text in ("<td>x</td>", "<td>a</td>", "<td>y</td>", "<td>b</td>", "<td>z</td>", "17200"):
        assert text in page
    graph = shell.user_ns["_autograd"].graph
    assert isinstance(graph, nx.MultiDiGraph)
    assert shell.user_ns["_autograd"].tensor("x")["grad"] == pytest.approx(17200.0)


def test_svg_format_and_out_option(shell):
    result, outputs, _ = run(shell, "%%autograd --out g --format svg\n" + SEED_3)
    assert result.success and "_autograd" not in shell.user_ns
    page = outputs[0]["text/html"]
    ET.fromstring(page[page.index("<svg"):page.index("</svg>") + len("</svg>")])  # parses
    assert shell.user_ns["g"].tensor("z")["role"] == "output"


@pytest.mark.parametrize("program", [SEED_3, CONTROL_FLOW, MODULE_STEP])
def test_cell_leaves_the_namespace_a_plain_run_leaves(shell, program):
    torch.manual_seed(0)
    run(shell, "%%autograd --no-graph\n" + program)
    captured = {k: v for k, v in shell.user_ns.items() if k in plain_namespace(program)}
    assert_same(plain_namespace(program), {**captured, "__builtins__": None})


def test_save_writes_six_valid_files(shell, tmp_path):
    paths = {s: tmp_path / f"seed{s}" for s in (".png", ".svg", ".pdf", ".graphml", ".json", ".dot")}
    options = " ".join(f"-s {p}" for p in paths.values())
    result, _, _ = run(shell, f"%%autograd {options}\n" + SEED_3)
    assert result.success
    assert paths[".png"].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert ET.parse(paths[".svg"]).getroot().tag.endswith("svg")
    assert paths[".pdf"].read_bytes().startswith(b"%PDF")
    loaded = nx.read_graphml(paths[".graphml"])
    assert {d.get("name") for _, d in loaded.nodes(data=True)} >= {"x", "a", "y", "b", "z"}
    assert paths[".json"].read_text().startswith("{") and paths[".dot"].read_text().startswith("digraph")


def test_last_expression_is_displayed_after_the_graph(shell):
    result, outputs, _ = run(shell, "%%autograd --no-graph\nx = torch.ones(2, requires_grad=True)\n(x * 3).sum()")
    assert result.success and result.result.item() == 6.0


def test_ipython_syntax_runs_inside_the_cell(shell):
    result, _, out = run(shell, "%%autograd --no-graph\nx = torch.ones(1) * 2\n%time y = x + 1\nprint(y.item())")
    assert result.success and "3.0" in out and shell.user_ns["_autograd"].tensor("y")["value"] == [3.0]


def test_backward_option_runs_backward_when_the_cell_did_not(shell):
    result, _, _ = run(shell, "%%autograd --backward z --no-graph\nx = torch.tensor(3.0, requires_grad=True)\nz = x * x")
    assert result.success and shell.user_ns["x"].grad.item() == 6.0
    assert shell.user_ns["_autograd"].tensor("x")["grad"] == 6.0


def test_no_backward_gives_values_and_a_hint(shell):
    result, outputs, _ = run(shell, "%%autograd\nx = torch.tensor(3.0, requires_grad=True)\nz = x * x")
    assert result.success and "--backward" in outputs[0]["text/plain"]
    assert shell.user_ns["_autograd"].tensor("z")["value"] == 9.0


def test_cell_without_tensors_prints_a_message_and_no_figure(shell):
    result, outputs, out = run(shell, "%%autograd\nn = 1 + 1")
    assert result.success and outputs == [] and "touched no tensors" in out


def test_gradmagic_failing_after_a_clean_cell_leaves_the_cell_a_success_with_one_line(shell, monkeypatch):
    monkeypatch.setattr("gradmagic.runner.resolve", lambda *a, **k: 1 / 0)
    with capture_output() as captured:
        result = shell.run_cell("%%autograd\nw = torch.ones(2, requires_grad=True)\n(w * 2).sum().backward()")
    assert result.success and captured.outputs == [] and captured.stdout == ""
    assert captured.stderr == ("gradmagic: the capture failed (ZeroDivisionError: division by zero), so there is no "
                               "graph; the cell itself ran as usual.\n")
    assert shell.user_ns["w"].grad.tolist() == [2.0, 2.0]


@pytest.mark.parametrize("line, message", [
    ("--bogus", "unrecognized arguments"),
    ("--format gif", "invalid choice"),
    ("--rankdir XY", "invalid choice"),
    ("--out 1x", "not a Python name"),
    ("--out vec", "--out vec: 'vec' already holds a Tensor, which the result would replace; choose another name "
                  "(default _autograd) or del vec first"),
    ("--out ran", "--out ran: the cell assigns 'ran' itself and the result would replace it"),
    ("--dtype int64", "not a floating torch dtype"),
    ("--device nonsense", "not a torch device"),
    ("--device mps", "--device mps: MPS is not available on this machine"),
    ("--device meta", "--device meta: meta tensors have no values"),
    ("-s graph.bmp", "unknown suffix"),
    ("-s /no/such/folder/g.png", "does not exist"),
    ("--lean --check", "--check needs the full capture"),
    ("--lean --explain x", "--explain needs the full capture"),
])
def test_bad_options_are_one_line_usage_errors_and_run_nothing(shell, line, message):
    shell.user_ns["vec"] = torch.ones(3, requires_grad=True)
    result, _, _ = run(shell, f"%%autograd {line}\nran = True")
    assert isinstance(result.error_in_exec, UsageError) or isinstance(result.error_before_exec, UsageError)
    error = result.error_in_exec or result.error_before_exec
    assert message in str(error) and "\n" not in str(error).strip()
    assert "ran" not in shell.user_ns and torch._C._len_torch_function_stack() == 0


def test_backward_on_a_non_scalar_bound_in_the_cell_is_a_usage_error(shell):
    result, _, _ = run(shell, "%%autograd --backward v --no-graph\nv = torch.ones(3, requires_grad=True) * 2")
    assert isinstance(result.error_in_exec, UsageError) and "needs a scalar" in str(result.error_in_exec)


def test_cuda_without_cuda_is_a_usage_error(shell):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result, _, _ = run(shell, "%%autograd --device cuda\nran = True")
    assert "CUDA is not available" in str(result.error_in_exec) and "ran" not in shell.user_ns


def test_raising_cell_keeps_its_traceback_restores_state_and_shows_the_partial_graph(shell):
    cell = "%%autograd\nx = torch.ones(2, requires_grad=True)\ny = x * 2\nwith torch.no_grad():\n    1/0\n"
    result, outputs, _ = run(shell, cell)
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    assert torch._C._len_torch_function_stack() == 0 and torch.is_grad_enabled()
    assert torch.empty(1).device.type == "cpu"
    assert len(outputs) == 1 and shell.user_ns["_autograd"].names() == ["x", "y"]


def test_device_and_dtype_options_apply_inside_the_cell_only(shell):
    result, _, _ = run(shell, "%%autograd --dtype float64 --device cpu --no-graph\nt = torch.ones(2)")
    assert result.success and shell.user_ns["t"].dtype == torch.float64
    assert torch.get_default_dtype() == torch.float32


def test_help_documents_every_option(shell):
    doc = shell.find_cell_magic("autograd").__doc__
    for option in ("--out", "--device", "--dtype", "--save", "--format", "--no-graph", "--no-table", "--backward",
                   "--rankdir", "--all", "--depth", "--max-nodes", "--explain", "--check"):
        assert option in doc


def test_unload_removes_the_magic(ipython):
    ipython.run_line_magic("unload_ext", "gradmagic")
    assert ipython.find_cell_magic("autograd") is None
    ipython.run_line_magic("load_ext", "gradmagic")
    assert ipython.find_cell_magic("autograd") is not None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_cell_draws_and_matches_plain(shell):
    result, outputs, _ = run(shell, "%%autograd --device cuda\n" + SEED_3)
    assert result.success and shell.user_ns["x"].is_cuda
    assert shell.user_ns["_autograd"].tensor("x")["grad"] == pytest.approx(17200.0)
    assert base64.b64decode(_inline_png(outputs[0]["text/html"])).startswith(b"\x89PNG")


def test_explain_option_shows_both_paths_summing_to_the_gradient(shell):
    result, outputs, _ = run(shell, "%%autograd --explain x --no-graph\n" + SEED_3)
    assert result.success
    text = outputs[0]["text/plain"]
    assert "x → y → z" in text and "x → b → z" in text and "17200" in text and "-1.55e-06" in text
    assert "x → y → z" in outputs[0]["text/html"]
    paths = shell.user_ns["_autograd"].explained[0].paths
    assert [p.names for p in paths] == [["x", "y", "z"], ["x", "b", "z"]]


def test_check_option_reports_a_passing_gradient_check(shell):
    result, outputs, _ = run(shell, "%%autograd --check --no-graph\n" + SEED_3)
    assert result.success and shell.user_ns["_autograd"].gradient_check.ok
    assert "gradient check of z (ok)" in outputs[0]["text/plain"]


@pytest.mark.parametrize("line, message", [
    ("--explain nope", "--explain nope: the cell assigns no 'nope' and no tensor of that name exists; "
                       "names to explain: x, a, y, b, z, w"),
    ("--backward missing", "--backward missing: no variable 'missing' (the cell does not assign it either)"),
    ("--backward w", "--backward w: 'w' has shape (2,); backward() needs a scalar (bind w.sum() to a name and pass that)"),
])
def test_a_name_option_is_checked_after_the_run_in_one_line_under_the_result(shell, line, message):
    shell.user_ns.update(w=torch.ones(2, requires_grad=True), n=3)
    result, outputs, _ = run(shell, f"%%autograd {line} --no-graph\nran = True\nx = torch.tensor(2.0)\n"
                                    "a = torch.tensor(1.0, requires_grad=True)\ny = a * x\nb, z = y + 1, y * 2")
    error = result.error_in_exec
    assert isinstance(error, UsageError) and str(error) == message
    assert shell.user_ns["ran"] is True and len(outputs) == 1 and shell.user_ns["z"].item() == 4.0


@pytest.mark.parametrize("line, note", [
    ("--explain nope", "gradmagic: --explain nope: the cell assigns no 'nope' and no tensor of that name exists; "
                       "names to explain: x"),
    ("--backward nope", "gradmagic: --backward nope: no variable 'nope' (the cell does not assign it either)"),
    ("--save /proc/x.png", "gradmagic: could not save /proc/x.png: No such file or directory"),
])
def test_the_cells_own_error_shows_first_and_gradmagics_problem_in_one_line_after_it(shell, line, note):
    cell = f"%%autograd {line}\nx = torch.ones(2, requires_grad=True)\nundefined_name + x"
    result, shown = _shown(shell, cell)
    lines = shown.strip().splitlines()
    assert isinstance(result.error_in_exec, NameError) and lines[-2:] == [
        "NameError: name 'undefined_name' is not defined", note]
    assert "Cell In[N], line 3" in shown and "gradmagic/" not in shown and "UsageError" not in shown


@pytest.mark.parametrize("name, cell", [
    ("q", "p, q = torch.ones(2, requires_grad=True) * 2\nq.backward()"),
    ("w", "for w in [torch.tensor(2.0, requires_grad=True)]:\n    z = w * 3\nz.backward()"),
    ("model.0.weight", "model = torch.nn.Sequential(torch.nn.Linear(2, 1))\nmodel(torch.ones(2)).sum().backward()"),
    ("h₂", "x = torch.tensor(2.0, requires_grad=True)\nh = x\nfor _ in range(2):\n    h = h * x\nh.backward()"),
])
def test_explain_accepts_tuple_and_loop_targets_labels_and_parameter_paths(shell, name, cell):
    result, outputs, _ = run(shell, f"%%autograd --explain {name} --no-graph\n{cell}")
    assert result.success and len(shell.user_ns["_autograd"].explained) == 1


def test_explain_of_a_non_tensor_the_cell_assigns_is_a_usage_error_after_showing_the_result(shell):
    result, outputs, _ = run(shell, "%%autograd --explain n --no-graph\nn = 3\n" + SEED_3)
    assert isinstance(result.error_in_exec, UsageError) and "'n'" in str(result.error_in_exec)
    assert len(outputs) == 1 and shell.user_ns["x"].grad.item() == pytest.approx(17200.0)


def test_explain_never_hides_the_cells_own_exception(shell):
    result, outputs, out = run(shell, "%%autograd --explain n --no-graph\nn = 3\nx = torch.ones(1)\nundefined_name")
    assert isinstance(result.error_in_exec, NameError) and "undefined_name" in out and len(outputs) == 1


def test_diagnostics_appear_under_the_result(shell):
    cell = "%%autograd --no-graph\nw = torch.ones(2, requires_grad=True)\nu = torch.ones(2, requires_grad=True)\n" \
           "loss = (w * 2).sum()\nloss.backward()"
    result, outputs, _ = run(shell, cell)
    assert result.success and "⚠" in outputs[0]["text/plain"] and "u" in outputs[0]["text/plain"]
    assert shell.user_ns["_autograd"].diagnostics[0].kind == "no_gradient"


@pytest.mark.parametrize("line, message", [("--depth -1", "depth=-1"), ("--max-nodes 0", "max_nodes=0")])
def test_bad_collapse_options_are_usage_errors(shell, line, message):
    result, _, _ = run(shell, f"%%autograd {line}\nran = True")
    assert isinstance(result.error_in_exec, UsageError) and message in str(result.error_in_exec)
    assert "ran" not in shell.user_ns


def test_lean_option_draws_the_autograd_graph_and_matches_plain(shell):
    result, outputs, _ = run(shell, "%%autograd --lean\n" + SEED_3)
    assert result.success and base64.b64decode(_inline_png(outputs[0]["text/html"])).startswith(b"\x89PNG")
    captured = shell.user_ns.pop("_autograd")
    assert captured.graph.graph["capture"] == "lean"
    assert captured.tensor("x")["grad"] == pytest.approx(17200.0)
    assert "Lean capture" in outputs[0]["text/plain"]
    assert_same(plain_namespace(SEED_3), {k: v for k, v in shell.user_ns.items() if k in plain_namespace(SEED_3)})


def _shown(shell, cell):
    """What IPython prints for a cell run as a notebook runs it (numbered), colours removed, and its result."""
    with capture_output() as captured:
        result = shell.run_cell(cell, store_history=True)
    text = re.sub(r"\x1b\[[0-9;]*m", "", captured.stdout)
    return result, text.replace(f"In[{result.execution_count}]", "In[N]")


FAILING_BODIES = [
    "x = 1\ny = 2\n1/0\n",
    "x = torch.ones(2, requires_grad=True)\ny = x @ torch.ones(3)\n",
    "def f(t):\n    return torch.nn.functional.softmax(t, dim=5)\nx = torch.ones(2)\nf(x)\n",
]


@pytest.mark.parametrize("body", FAILING_BODIES)
@pytest.mark.parametrize("options", ["", "--lean", "--device cpu"])
def test_an_error_shows_the_plain_cells_traceback_with_the_cells_own_number_and_line(shell, body, options):
    plain, expected = _shown(shell, "# %%autograd\n" + body)  # the magic's line, as a comment: same numbering
    result, shown = _shown(shell, f"%%autograd {options}\n" + body)
    assert type(result.error_in_exec) is type(plain.error_in_exec)
    assert shown.replace(f"%%autograd {options}", "%%autograd") == expected
    assert "Cell In[N], line " in shown and "gradmagic" not in shown and "run_cell_magic" not in shown


def test_a_warning_names_the_cells_own_number_and_line(shell):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cell = "%%autograd\nimport warnings\nx = torch.ones(1)\nwarnings.warn('mine')"
        result = shell.run_cell(cell, store_history=True)
    warning, = [w for w in caught if str(w.message) == "mine"]
    assert shell.compile.format_code_name(warning.filename) == ("Cell", f"In[{result.execution_count}]")
    assert warning.lineno == 4


@pytest.mark.parametrize("body", ["x = 1\ny = (\n", "x = 1\n  y = 2\n", "x = torch.ones(1)\ny = x +* 2\n"])
def test_a_syntax_error_prints_as_in_a_plain_cell(shell, body):
    plain, expected = _shown(shell, "# %%autograd\n" + body)
    result, shown = _shown(shell, "%%autograd\n" + body)
    assert isinstance(result.error_in_exec, SyntaxError) and not result.success
    assert shown == expected and len(shown.strip().splitlines()) <= 5 and "magic.py" not in shown


def test_a_real_kernel_shows_the_same_traceback_as_for_a_plain_cell(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = ["%load_ext gradmagic", "# %%autograd\nx = torch.ones(2)\ny = x @ torch.ones(3)",
             "%%autograd\nx = torch.ones(2)\ny = x @ torch.ones(3)"]
    notebook.cells = [nbformat.v4.new_code_cell(cell) for cell in cells]
    NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    plain, magic = ([o for o in notebook.cells[i].outputs if o.output_type == "error"][0] for i in (1, 2))
    shown = [re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(e.traceback)) for e in (plain, magic)]
    assert shown[0].replace("In[2]", "In[3]") == shown[1] and "Cell In[3], line 3" in shown[1]
    assert (magic.ename, magic.evalue) == (plain.ename, plain.evalue)


# Mutants from issue 11 ---------------------------------------------------------------------------
# A magic that ignored --all, --depth or --max-nodes, or ran --backward although the cell had run backward
# itself, survived the whole suite. The picture shown is read back through its texts.

def _figure_texts(shell) -> set:
    """The texts of the picture the last %%autograd cell displayed."""
    from matplotlib.text import Text

    return {t.get_text() for t in shell.user_ns["_autograd"].figure.findobj(Text) if t.get_text().strip()}


@pytest.mark.parametrize("line, program, shown, hidden", [
    ("", MODULE_STEP, "model.0 · Linear · call 1", "model · Sequential · call 1"),
    ("--all", MODULE_STEP, "linear", "model.0 · Linear · call 1"),
    ("--depth 0", MODULE_STEP, "model · Sequential · call 1", "model.0 · Linear · call 1"),
    ("", CONTROL_FLOW, "h₂ = 4.38 ∂ -15.6", "folded loop"),
    ("--max-nodes 6", CONTROL_FLOW, "folded loop", "h₂ = 4.38 ∂ -15.6"),
])
def test_view_options_change_the_picture_shown(shell, line, program, shown, hidden):
    torch.manual_seed(0)
    result, outputs, _ = run(shell, f"%%autograd {line}\n" + program)
    assert result.success and len(outputs) == 1
    held = shell.user_ns["_autograd"]
    assert (held.show_all, held.depth, held.max_nodes) == ("--all" in line, 0 if "--depth" in line else None,
                                                           6 if "--max-nodes" in line else None)
    texts = _figure_texts(shell)
    assert shown in texts and hidden not in texts


def test_backward_option_does_not_run_again_after_the_cells_own_backward(shell):
    cell = "x = torch.tensor([1.0, 2.0], requires_grad=True)\nz = (x * 3).sum()\nz.backward()\n"
    result, _, _ = run(shell, "%%autograd --backward z --no-graph\n" + cell)
    assert result.success and shell.user_ns["x"].grad.tolist() == plain_namespace(cell)["x"].grad.tolist() == [3, 3]
    assert shell.user_ns["_autograd"].graph.graph["passes"] == 1
