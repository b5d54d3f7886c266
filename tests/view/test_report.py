from html import unescape
import re

import pytest

import gradmagic
from gradmagic.view.report import ALL_ROWS_HINT, MAX_ROWS, Row, html_table, more_rows, summary_lines, table_rows, text_table
from gradmagic.text import number
from helpers import captured_namespace, plain_namespace
from programs import SEED_3

MLP_STEP = """
import torch.nn as nn
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(16, 4)
target = torch.randn(16, 1)
loss = nn.functional.mse_loss(model(x), target)
opt.zero_grad()
loss.backward()
opt.step()
"""
PARAMETERS = ["model.0.weight", "model.0.bias", "model.2.weight", "model.2.bias"]
#: A row's height in JupyterLab's own table style (13 px text, 0.5em padding), the tallest of the frontends.
ROW_PX = 28


@pytest.fixture(scope="module")
def mlp_step():
    """(namespace, result) of the MLP training step, and the namespace of the same code run plainly."""
    namespace, result = captured_namespace(MLP_STEP)
    return namespace, result, plain_namespace(MLP_STEP)


def _main_html(html: str) -> str:
    return html.split("<details>")[0]


def test_rows_hold_name_expression_shape_value_gradient_and_grad_fn():
    rows = {row.name: row for row in table_rows(gradmagic.run(SEED_3).graph)}
    assert rows["x"] == Row("x", "torch.tensor(10.0, requires_grad=True)", "scalar", "10.0", "17200", "leaf")
    assert (rows["b"].value, rows["b"].gradient) == ("300.0", "∂ -5.17e-08") and rows["z"].grad_fn == "AddBackward0"


def test_shape_names_dtype_and_device_only_when_not_float32_on_cpu():
    rows = {row.name: row for row in table_rows(gradmagic.run("n = torch.arange(5)\nf = torch.ones(2, 3)").graph)}
    assert (rows["n"].shape, rows["f"].shape) == ("5 int64", "2×3")


def test_text_table_columns_align():
    lines = text_table(gradmagic.run(SEED_3).graph).splitlines()
    starts = {line.index("scalar") for line in lines[2:]}
    assert len(lines) == 7 and len(starts) == 1


def test_large_tensors_are_one_line_summaries():
    (row,) = table_rows(gradmagic.run("w = torch.arange(1000.0)").graph)
    assert row.value == "∈[0.0, 999.0] μ=500 σ=289"


def test_training_step_main_rows_are_the_names_the_run_ended_with(mlp_step):
    _, result, _ = mlp_step
    assert [row.name for row in table_rows(result.graph)] == ["x", "target", "loss", *PARAMETERS]


def test_training_step_rows_hold_what_plain_torch_holds(mlp_step):
    _, result, plain = mlp_step
    rows = {row.name: row for row in table_rows(result.graph)}
    for name, parameter in zip(PARAMETERS, plain["model"].parameters()):
        row, p, g = rows[name], parameter.detach(), parameter.grad
        if p.numel() == 1:
            assert (row.value, row.gradient) == (f"[{number(p.item())}]", f"[{number(g.item())}]")
        else:
            assert row.value == (f"∈[{number(p.min().item())}, {number(p.max().item())}] "
                                 f"μ={number(p.mean().item())} σ={number(p.std().item())}")
            norm = f"‖{number(g.norm().item())}‖"
            assert row.gradient in (norm, f"{norm} μ={number(g.mean().item())} σ={number(g.std().item())}")
    assert rows["loss"].value == number(plain["loss"].item()) and rows["loss"].gradient == "∂ 1.0"


def test_earlier_versions_and_grad_tensors_are_the_more_rows(mlp_step):
    _, result, plain = mlp_step
    more = more_rows(result.graph)
    assert [row.name for row in more["earlier versions"]] == [f"{name}₁" for name in PARAMETERS]
    assert [row.name for row in more[".grad tensors"]] == [f"{name}.grad" for name in PARAMETERS]
    assert set(more) == {"earlier versions", ".grad tensors"}
    grad = plain["model"][2].bias.grad
    assert more[".grad tensors"][-1].value == f"[{number(grad.item())}]"


def test_html_shows_main_rows_and_collapses_the_rest(mlp_step):
    _, result, _ = mlp_step
    html = html_table(result.graph)
    main, details = _main_html(html), html.split("<details>")[1]
    assert main.count("<tr>") == 1 + 7 and "model.0.weight₁" not in main and ".grad<" not in main
    assert re.search(r"<summary>8 more rows: 4 earlier versions, 4 \.grad tensors</summary>", details)
    assert details.count("<tr>") == 1 + 8 and "model.0.weight₁" in details and "model.2.bias.grad" in details


def test_html_table_is_short_one_line_per_row_and_leaves_colours_to_the_theme(mlp_step):
    _, result, _ = mlp_step
    html = html_table(result.graph)
    assert _main_html(html).count("<tr>") * ROW_PX <= 400  # 8 rows × 28 px; the step's table was 1,911 px
    assert "white-space: nowrap" in html and "<br" not in html and "\n" not in html
    assert not re.search(r"color|background|#[0-9a-f]{3}\b|black|white;", html)
    assert html.count("style=") == 0 and html.count("<style>") == 1


def test_html_table_of_the_training_step_fits_the_notebook_width(mlp_step):
    _, result, _ = mlp_step
    rows = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)
            for row in re.findall(r"<tr>(.*?)</tr>", html_table(result.graph))]
    widest = [max(len(unescape(row[i])) for row in rows) for i in range(6)]
    assert sum(widest) <= 120, widest  # ≈ 7 px a character at 13 px, plus padding: under 900 px (measured: 894)


def test_details_only_when_there_are_more_rows(mlp_step):
    assert "<details>" not in html_table(gradmagic.run(SEED_3).graph)
    assert "more rows" not in text_table(gradmagic.run(SEED_3).graph)
    every = html_table(mlp_step[1].graph, all=True)
    assert "<details>" not in every and every.count("<tr>") == 1 + 15


def test_text_table_says_how_to_see_every_row(mlp_step):
    _, result, _ = mlp_step
    text = text_table(result.graph)
    assert text.splitlines()[-1] == f"+ 8 more rows: 4 earlier versions, 4 .grad tensors: {ALL_ROWS_HINT}"
    every = eval(ALL_ROWS_HINT, {"gradmagic": gradmagic, "result": result})
    assert len(every.splitlines()) == 2 + 15 and "model.0.weight.grad" in every


def test_aliases_share_one_row_and_function_locals_go_below():
    source = "def f(u):\n    y = u * 2\n    return y + 1\na = torch.ones(2)\nb = a\nc = f(a)"
    graph = gradmagic.run(source).graph
    assert [row.name for row in table_rows(graph)] == ["a, b", "c"]
    assert [row.name for row in more_rows(graph)["others"]] == ["f.y"]


def test_a_loop_variable_is_one_row_at_its_last_value():
    graph = gradmagic.run("h = torch.zeros(1)\nfor i in range(60):\n    h = h + 1").graph
    assert [(row.name, row.value) for row in table_rows(graph)] == [("h", "[60.0]")]
    assert len(more_rows(graph)["earlier versions"]) == 60
    assert f"… {60 - MAX_ROWS} more named tensors" in html_table(graph).split("<details>")[1]


def test_long_tables_say_how_many_rows_are_hidden():
    graph = gradmagic.run("xs = [torch.ones(1) * i for i in range(45)]").graph
    assert f"… {45 - MAX_ROWS} more named tensors" in text_table(graph)
    assert "more named tensors" in html_table(graph)
    assert len(table_rows(graph)) == 45


def test_long_cells_end_in_an_ellipsis_with_the_whole_text_in_the_title():
    html = html_table(gradmagic.run("total = torch.ones(3).mul(2).add(1).sum()").graph)
    assert "title='torch.ones(3).mul(2).add(1).sum()'>torch.ones(3).mul(2…<" in html


def test_summary_names_the_root_and_the_leaf_gradients():
    lines = summary_lines(gradmagic.run(SEED_3).graph)
    assert lines == ["backward() on z", "dz/da = 1290, dz/dx = 17200"]


def test_summary_hints_when_no_backward_ran():
    assert "--backward" in summary_lines(gradmagic.run("x = torch.ones(1, requires_grad=True) * 2").graph)[0]


def test_summary_lists_leaves_no_gradient_reached():
    source = "x = torch.ones(1, requires_grad=True)\nu = torch.ones(1, requires_grad=True)\ny = (x * 2).sum()\ny.backward()"
    assert summary_lines(gradmagic.run(source).graph)[-1] == "no gradient reached: u"


def test_html_escapes_cells():
    html = html_table(gradmagic.run("m = torch.ones(2) < 3").graph)
    assert "&lt;" in html and "< 3" not in html



def test_summary_gives_large_derivatives_by_their_norm(mlp_step):
    _, result, plain = mlp_step
    weight, bias = plain["model"][0].weight.grad, plain["model"][2].bias.grad
    line = summary_lines(result.graph)[-1]
    assert line.startswith(f"dloss/dmodel.0.weight₁ = ‖{number(weight.norm().item())}‖, ")
    assert line.endswith(f"dloss/dmodel.2.bias₁ = [{number(bias.item())}]")


def test_integer_tensors_show_an_integer_range():
    rows = {row.name: row for row in table_rows(gradmagic.run("n = torch.arange(100)\nflags = n > 3").graph)}
    assert rows["n"].value == "∈[0, 99] μ=49.5 σ=29"  # σ = 29.01 and rows["n"].shape == "100 int64"
    assert rows["flags"].value.startswith("∈[0, 1] μ=0.96") and rows["flags"].shape == "100 bool"


def test_lean_capture_gives_the_same_main_rows(mlp_step):
    _, full, _ = mlp_step
    _, lean = captured_namespace(MLP_STEP, lean=True)
    assert table_rows(lean.graph) == table_rows(full.graph)


def test_long_names_are_cut_in_the_middle():
    graph = gradmagic.run("encoder_layer_attention_in_projection_weight_matrix = torch.ones(2)").graph
    (row,) = table_rows(graph)
    assert row.name == "encoder_layer_attention_in_projection_weight_matrix"  # the row keeps it whole
    assert f"<td title='{row.name}'>encoder_laye…ction_weight_matrix</td>" in html_table(graph)


def test_a_long_loop_s_earlier_versions_make_rows_only_for_what_the_table_shows(monkeypatch):
    from gradmagic.view import report

    graph = gradmagic.run("h = torch.ones(2)\nfor i in range(300):\n    h = h * 1.01").graph
    made = []
    monkeypatch.setattr(report, "_row", lambda data, name: made.append(name) or Row(name, "", "", "", "", ""))
    html = html_table(graph)
    assert "300 more rows: 300 earlier versions" in html and len(made) == 1 + MAX_ROWS  # h, then 40 of 300
    made.clear()
    assert "+ 300 more rows: 300 earlier versions" in text_table(graph) and made == ["h"]
