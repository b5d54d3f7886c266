import gradmagic
from gradmagic.report import MAX_ROWS, html_table, summary_lines, table_rows, text_table
from programs import SEED_3


def test_rows_hold_name_expression_value_gradient_and_kind():
    rows = {row[0]: row for row in table_rows(gradmagic.run(SEED_3).graph)}
    assert rows["x"] == ("x", "torch.tensor(10.0, requires_grad=True)", "10.0", "17200", "scalar", "float32", "cpu",
                         "leaf")
    assert rows["b"][2:4] == ("300.0", "∂ -5.17e-08") and rows["z"][7] == "AddBackward0"


def test_text_table_columns_align():
    lines = text_table(gradmagic.run(SEED_3).graph).splitlines()
    starts = {line.index("scalar") for line in lines[2:]}
    assert len(lines) == 7 and len(starts) == 1


def test_large_tensors_are_one_line_summaries():
    rows = table_rows(gradmagic.run("w = torch.arange(1000.0)").graph)
    assert rows[0][2].startswith("n=1000 ∈[0.0, 999.0] μ=500 σ=289") and "μ=" in rows[0][2]


def test_long_tables_say_how_many_rows_are_hidden():
    graph = gradmagic.run("h = torch.zeros(1)\nfor i in range(60):\n    h = h + 1").graph
    assert f"… {61 - MAX_ROWS} more named tensors" in text_table(graph)
    assert "more named tensors" in html_table(graph)


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
