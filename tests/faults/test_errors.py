"""Errors speak once, clearly (issue 11): the cell's own exception first, gradmagic's problems in one line after it.

Each case runs in a fresh real kernel (tests/faults/kernel.py), next to the same cell run plain where it matters.
"""
import json
import re


CELL_WITH_NAME_ERROR = "x = torch.ones(2, requires_grad=True)\nundefined_name + x"


def _numbered(text: str) -> str:
    return re.sub(r"In\[\d+\]", "In[N]", text)


def test_the_users_exception_shows_first_and_gradmagics_problems_one_line_each_after_it(kernel):
    plain = kernel.run("# %%autograd\n" + CELL_WITH_NAME_ERROR)
    for option, note in [
        ("--explain nosuch", "gradmagic: --explain nosuch: the cell assigns no 'nosuch' and no tensor of that name "
                             "exists; names to explain: x"),
        ("--backward nosuch", "gradmagic: --backward nosuch: no variable 'nosuch' (the cell does not assign it "
                              "either)"),
        ("--save /proc/x.png", "gradmagic: could not save /proc/x.png: No such file or directory"),
    ]:
        reply = kernel.run(f"%%autograd {option}\n" + CELL_WITH_NAME_ERROR)
        assert reply.status == "error" and reply.error["ename"] == "NameError", reply.text
        assert reply.traceback.strip().splitlines()[-2:] == ["NameError: name 'undefined_name' is not defined", note]
        assert _numbered(reply.traceback).replace(f"%%autograd {option}", "%%autograd") == _numbered(
            plain.traceback) + "\n" + note
        assert "UsageError" not in reply.text and "magic.py" not in reply.text and len(reply.outputs) == 1
    assert kernel.value("(x.tolist(), x.requires_grad, type(_autograd).__name__)") == ([1.0, 1.0], True, "Result")
    assert kernel.alive()


def test_an_unwritable_save_is_one_line_after_the_result_is_shown_and_bound(kernel):
    reply = kernel.run("%%autograd --save /proc/x.png\nx = torch.ones(2, requires_grad=True)\ny = (x * 2).sum()\n"
                       "y.backward()")
    assert reply.status == "ok" and reply.error is None
    assert reply.stderr.strip().splitlines() == ["gradmagic: could not save /proc/x.png: No such file or directory"]
    assert len(reply.outputs) == 1 and "<img" in reply.outputs[0]["text/html"]
    assert kernel.value("(x.grad.tolist(), _autograd.tensor('y')['value'])") == ([2.0, 2.0], 4.0)
    assert kernel.alive()


def test_syntax_and_indentation_errors_print_as_a_plain_cell_does(kernel):
    for body in ["x = torch.ones(2\ny = 3", "x = 1\n  y = 2", "x = torch.ones(1)\ny = x +* 2"]:
        plain = kernel.run("# %%autograd\n" + body)
        reply = kernel.run("%%autograd\n" + body)
        assert reply.status == "error" and reply.error["ename"] == plain.error["ename"]
        assert reply.error["ename"] in ("SyntaxError", "IndentationError")
        assert _numbered(reply.traceback) == _numbered(plain.traceback)
        assert len(reply.traceback.strip().splitlines()) <= 5 and "magic.py" not in reply.text
    assert kernel.alive()


def test_out_never_replaces_a_value_of_the_namespace_or_the_cell(kernel):
    reply = kernel.run("%%autograd -o torch\nran = True\nx = torch.ones(2, requires_grad=True)")
    assert reply.status == "error" and reply.outputs == []  # IPython prints a UsageError as one line on stderr
    assert reply.stderr.strip().splitlines() == [
        "UsageError: --out torch: 'torch' already holds a module, which the result would replace; choose another "
        "name (default _autograd) or del torch first"]
    reply = kernel.run("%%autograd -o x\nran = True\nx = torch.ones(2, requires_grad=True)")
    assert reply.status == "error" and reply.stderr.startswith("UsageError: --out x: the cell assigns 'x' itself")
    assert kernel.value("(type(torch).__name__, 'ran' in dir(), 'x' in dir())") == ("module", False, False)
    first = kernel.run("%%autograd -o g\nx = torch.ones(2, requires_grad=True)")
    again = kernel.run("%%autograd -o g\nx = torch.ones(3, requires_grad=True)")  # an earlier result is replaced
    assert first.status == again.status == "ok" and kernel.value("g.tensor('x')['shape']") == [3]
    assert kernel.alive()


def test_cjk_names_keep_the_picture_and_table_and_json_is_strict(kernel, tmp_path):
    path = tmp_path / "g.json"
    reply = kernel.run(f"%%autograd --save {path}\n张量 = torch.tensor([1.0, float('nan'), float('inf')], "
                       "requires_grad=True)\nвес = torch.tensor(-2.0, requires_grad=True)\n"
                       "θ = (张量 * вес).sum()\nθ.backward()")
    assert reply.status == "ok" and reply.error is None and reply.stderr == "", reply.text
    page = reply.outputs[0]["text/html"]
    assert "<img" in page and "<td>张量</td>" in page and "<td>вес</td>" in page and "<td>θ</td>" in page
    assert "glyph" not in reply.text.lower()
    assert kernel.value("张量.grad.tolist()") == [-2.0, -2.0, -2.0]

    def reject(token):
        raise ValueError(f"bare {token} in JSON")

    data = json.loads(path.read_text(), parse_constant=reject)
    named = {n["name"]: n for n in data["nodes"] if n.get("name")}
    assert named["张量"]["value"] == [1.0, "NaN", "Infinity"] and named["θ"]["value"] == "NaN"
    assert kernel.alive()
