"""Tensors that are not a plain block of real numbers: torch.func transforms, meta, forward-AD duals, nested, sparse
and complex tensors run under both captures exactly as they run plainly; what cannot be shown becomes a note."""
import json
import warnings

import pytest
import torch

import gradmagic
from gradmagic.text import tensor_caption

LEAN = pytest.mark.parametrize("lean", [False, True], ids=["full", "lean"])


def run_both(source: str, *, lean: bool):
    """(plain namespace, captured namespace, Result) of one source, both from seed 0."""
    spaces = []
    for capture in (False, True):
        torch.manual_seed(0)
        namespace = {"torch": torch}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns once per process (sparse, nested): not a difference
            if capture:
                result = gradmagic.run(source, namespace, lean=lean)
            else:
                exec(compile(source, "<plain>", "exec"), namespace)
        namespace.pop("__warningregistry__", None)
        spaces.append(namespace)
    return spaces[0], spaces[1], result


def assert_same_kinds(plain: dict, captured: dict) -> None:
    """Same names; tensors equal in kind, shape, values (where they have any), requires_grad, is_leaf and .grad."""
    assert set(plain) == set(captured)
    for name, p in plain.items():
        c = captured[name]
        if isinstance(p, torch.Tensor):
            _assert_same_tensor(p, c, name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pg, cg = (p.grad, c.grad) if p.is_leaf else (None, None)
            assert (pg is None) == (cg is None), f"{name}.grad"
            if pg is not None:
                _assert_same_tensor(pg, cg, f"{name}.grad")
        elif isinstance(p, (list, tuple)) and p and isinstance(p[0], torch.Tensor):
            for i, (a, b) in enumerate(zip(p, c)):
                _assert_same_tensor(a, b, f"{name}[{i}]")
        elif isinstance(p, (int, float, complex, str)):
            assert p == c, name


def _assert_same_tensor(p: torch.Tensor, c: torch.Tensor, where: str) -> None:
    assert (type(p), p.layout, p.device, p.dtype) == (type(c), c.layout, c.device, c.dtype), where
    assert (p.requires_grad, p.is_leaf) == (c.requires_grad, c.is_leaf), where
    if p.is_meta:
        assert p.shape == c.shape, where
    elif p.is_nested:
        assert all(torch.equal(a, b) for a, b in zip(p.detach().unbind(), c.detach().unbind())), where
    elif p.layout is not torch.strided:
        assert torch.equal(p.detach().to_dense(), c.detach().to_dense()), where
    else:
        assert torch.equal(p.detach(), c.detach()), where


def notes(result) -> str:
    return " ".join(result.graph.graph["notes"])


def assert_shows_everything(result, tmp_path) -> None:
    """Table, text, picture and the six exports all work; the JSON is strict (no NaN/Infinity tokens)."""
    assert result.table
    assert all(note in result._plain_text() for note in result.graph.graph["notes"])  # shown under the picture
    assert result.figure is not None
    for suffix in (".png", ".svg", ".pdf", ".graphml", ".json", ".dot"):
        path = result.save(tmp_path / f"graph{suffix}")
        assert path.stat().st_size > 0
    json.loads((tmp_path / "graph.json").read_text(), parse_constant=_reject)


def _reject(token):
    raise ValueError(f"bare {token} in JSON")


# ---- 1. torch.func transforms ---------------------------------------------------------------------

TRANSFORMS = {
    "vmap": "def f(x):\n    y = (x * x).sum()\n    return y\nx = torch.randn(3, 4)\nout = torch.func.vmap(f)(x)",
    "grad": "def f(x):\n    h = x.sin() * 2\n    return h.sum()\nx = torch.randn(3)\nout = torch.func.grad(f)(x)",
    "jacrev": "def f(x):\n    return x.sin() * 2\nx = torch.randn(3)\nout = torch.func.jacrev(f)(x)",
    "batched_grad": "x = torch.randn(3, requires_grad=True)\ny = x.exp()\n"
                    "out, = torch.autograd.grad(y, x, torch.eye(3), is_grads_batched=True)",
    "jacobian": "def f(x):\n    return x.exp() * 3\nx = torch.randn(3, requires_grad=True)\n"
                "out = torch.autograd.functional.jacobian(f, x, vectorize=True)",
    "vmap_grad": "w = torch.randn(3, requires_grad=True)\ndef f(x):\n    y = (x * w).sin().sum()\n    return y\n"
                 "x = torch.randn(4, 3)\nout = torch.func.vmap(torch.func.grad(f))(x)\nloss = (out * w).sum()\n"
                 "loss.backward()",
}


@LEAN
@pytest.mark.parametrize("program", sorted(TRANSFORMS))
def test_torch_func_transforms_run_as_plain_and_leave_a_note(program, lean, tmp_path):
    plain, captured, result = run_both(TRANSFORMS[program], lean=lean)
    assert_same_kinds(plain, captured)
    assert torch.allclose(torch.tensor(result.tensor("out")["value"]), plain["out"].detach())
    assert "torch.func transforms" in notes(result)
    assert_shows_everything(result, tmp_path)


@LEAN
def test_vmap_of_grad_keeps_the_outer_gradient(lean):
    plain, captured, result = run_both(TRANSFORMS["vmap_grad"], lean=lean)
    assert torch.equal(plain["w"].grad, captured["w"].grad)
    assert torch.allclose(torch.tensor(result.tensor("w")["grad"]), plain["w"].grad)


@LEAN
def test_a_failing_gradient_hook_leaves_backward_untouched(lean, monkeypatch):
    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr("gradmagic.record.lean.kept_gradient" if lean else "gradmagic.record.hooks.kept_gradient", broken)
    source = "x = torch.tensor([1.0, 2.0], requires_grad=True)\ny = (x * x).sum()\ny.backward()"
    plain, captured, result = run_both(source, lean=lean)
    assert_same_kinds(plain, captured)
    assert captured["x"].grad.tolist() == [2.0, 4.0]
    assert "RuntimeError: boom" in notes(result)


# ---- 2. meta tensors ------------------------------------------------------------------------------

META = "x = torch.randn(3, device='meta', requires_grad=True)\ny = (x * 2).sum()\ny.backward()"


@LEAN
def test_meta_tensors_show_meta_and_keep_the_program(lean, tmp_path):
    plain, captured, result = run_both(META, lean=lean)
    assert_same_kinds(plain, captured)
    assert captured["x"].grad.is_meta
    assert result.tensor("x")["value"] == {"kind": "meta", "numel": 3}
    assert result.tensor("x")["grad"]["kind"] == "meta"
    assert "meta" in result.table.splitlines()[2]
    assert "Meta tensors" in notes(result)
    assert_shows_everything(result, tmp_path)


# ---- 3. forward-mode AD ---------------------------------------------------------------------------

DUAL = ("import torch.autograd.forward_ad as fwAD\nx = torch.tensor([0.0, 1.0, 2.0])\nv = torch.ones(3)\n"
        "with fwAD.dual_level():\n    d = fwAD.make_dual(x, v)\n    y = d.sin() * 2\n"
        "    p, t = fwAD.unpack_dual(y)\nprimal = p.clone()\ntangent = t.clone()")


@LEAN
def test_forward_ad_duals_run_as_plain_with_a_note(lean, tmp_path):
    plain, captured, result = run_both(DUAL, lean=lean)
    del plain["fwAD"], captured["fwAD"]
    assert_same_kinds(plain, captured)
    assert torch.allclose(captured["tangent"], 2 * torch.tensor([0.0, 1.0, 2.0]).cos())
    assert result.tensor("primal")["value"] == pytest.approx(plain["primal"].tolist())
    assert "Forward-mode AD" in notes(result)
    assert_shows_everything(result, tmp_path)


# ---- 4. nested and sparse tensors -----------------------------------------------------------------

NESTED = {
    "strided": "a = torch.nested.nested_tensor([torch.randn(2, 3), torch.randn(4, 3)], requires_grad=True)\n"
               "b = a * 2\nc = torch.nested.to_padded_tensor(b, 0.0).sum()\nc.backward()",
    "jagged": "a = torch.nested.nested_tensor([torch.randn(2, 3), torch.randn(4, 3)], layout=torch.jagged, "
              "requires_grad=True)\nb = a.sin()\nc = b.values().sum()\nc.backward()",
}


@LEAN
@pytest.mark.parametrize("layout", sorted(NESTED))
def test_nested_tensors_show_stats_over_their_components(layout, lean, tmp_path):
    plain, captured, result = run_both(NESTED[layout], lean=lean)
    assert_same_kinds(plain, captured)
    a = result.tensor("a")
    summary = a["value"] if a["value"] is not None else a["stats"]
    assert summary["kind"] == "nested" and summary["numel"] == 18
    assert summary["min"] == pytest.approx(min(c.min().item() for c in plain["a"].detach().unbind()))
    assert a["shape"] == [2, -1, 3]
    assert "nested" in result.table and "2×*×3" in result.table
    assert "Nested tensors" in notes(result)
    assert_shows_everything(result, tmp_path)


SPARSE = ("i = torch.tensor([[0, 1, 1], [2, 0, 2]])\nv = torch.tensor([3.0, 4.0, 5.0])\n"
          "s = torch.sparse_coo_tensor(i, v, (2, 3), requires_grad=True)\nd = torch.randn(3, 2)\n"
          "y = torch.sparse.mm(s, d).sum()\ny.backward()\nt = torch.eye(3).to_sparse()\n"
          "big = torch.sparse_coo_tensor(torch.tensor([[0, 99]]), torch.tensor([2.0, -1.0]), (100,))")


@LEAN
def test_sparse_tensors_show_dense_values_when_small_and_stats_when_large(lean, tmp_path):
    plain, captured, result = run_both(SPARSE, lean=lean)
    assert_same_kinds(plain, captured)
    if not lean:  # the lean capture keeps values of tensors on the gradient's path and of named ones only
        assert result.tensor("t")["value"] == torch.eye(3).tolist()
    assert result.tensor("s")["value"] == [[0.0, 0.0, 3.0], [4.0, 0.0, 5.0]]
    assert torch.allclose(torch.tensor(result.tensor("s")["grad"]), plain["s"].grad.to_dense())
    big = result.tensor("big")
    stats = big["stats"] or big["value"]
    assert (stats["kind"], stats["stored"], stats["numel"]) == ("sparse", 2, 100)
    assert (stats["min"], stats["max"], stats["mean"]) == (-1.0, 2.0, pytest.approx(0.01))
    assert "sparse nnz=2" in result.table
    assert "Sparse tensors" in notes(result)
    assert_shows_everything(result, tmp_path)


@LEAN
def test_sparse_embedding_gradients_are_shown(lean, tmp_path):
    source = ("emb = torch.nn.Embedding(10, 3, sparse=True)\nidx = torch.tensor([1, 2, 4])\n"
              "out = emb(idx).sum()\nout.backward()")
    plain, captured, result = run_both(source, lean=lean)
    assert_same_kinds(plain, captured)
    assert torch.equal(plain["emb"].weight.grad.to_dense(), captured["emb"].weight.grad.to_dense())
    assert result.tensor("emb.weight")["grad"] == plain["emb"].weight.grad.to_dense().tolist()
    assert_shows_everything(result, tmp_path)


# ---- 5. complex tensors ---------------------------------------------------------------------------

# PyTorch docs, "Autograd for Complex Numbers": for a real L, z.grad is dL/dz* (conjugate Wirtinger), here 2z.
COMPLEX = "z = torch.tensor(1+2j, requires_grad=True)\ny = (z * z.conj()).real\ny.backward()"
COMPLEX_MATRIX = ("A = torch.tensor([[1+1j, 2-1j], [0.5j, -1+0j]], requires_grad=True)\n"
                  "b = torch.tensor([1-2j, 3+0j])\nx = A @ b\nloss = (x.abs() ** 2).sum()\nloss.backward()")


@LEAN
def test_complex_values_and_gradients_follow_torch(lean, tmp_path):
    plain, captured, result = run_both(COMPLEX, lean=lean)
    assert_same_kinds(plain, captured)
    assert captured["z"].grad.item() == 2 + 4j
    z = result.tensor("z")
    assert (z["value"], z["grad"]) == (1 + 2j, 2 + 4j)
    assert "1+2j" in result.table and "2+4j" in result.table
    assert tensor_caption(z) == "z = 1+2j ∇ 2+4j"
    assert_shows_everything(result, tmp_path)
    data = json.loads((tmp_path / "graph.json").read_text())
    node = next(n for n in data["nodes"] if n.get("name") == "z")
    assert (complex(node["value"]), complex(node["grad"])) == (1 + 2j, 2 + 4j)


@LEAN
def test_complex_matrix_program_matches_torch(lean, tmp_path):
    plain, captured, result = run_both(COMPLEX_MATRIX, lean=lean)
    assert_same_kinds(plain, captured)
    assert torch.allclose(torch.tensor(result.tensor("A")["grad"]), plain["A"].grad)
    assert_shows_everything(result, tmp_path)


def test_explain_and_check_of_a_complex_program_say_what_they_can():
    result = gradmagic.run(COMPLEX)
    explanation = str(result.explain("z"))
    assert "dy/dz = 2+4j" in explanation and "conjugate Wirtinger" in explanation
    with pytest.raises(ValueError, match="complex") as error:
        result.check()
    assert "\n" not in str(error.value)


@LEAN
def test_large_complex_and_integer_tensors_are_summarised(lean, tmp_path):
    source = ("A = torch.randn(10, 10, dtype=torch.cdouble, requires_grad=True)\nloss = A.exp().abs().sum()\n"
              "loss.backward()\nn = torch.arange(100)\nflags = n > 3\nh = torch.randn(100).half()")
    plain, captured, result = run_both(source, lean=lean)
    assert_same_kinds(plain, captured)
    stats = result.tensor("A")["stats"]
    assert stats["of"] == "abs" and stats["max"] == pytest.approx(plain["A"].detach().abs().max().item())
    assert "|z|∈[" in result.table
    assert_shows_everything(result, tmp_path)


def test_the_kinds_cache_stays_bounded_however_many_callables_arrive(monkeypatch):
    from gradmagic.record import calls

    monkeypatch.setattr(calls, "KINDS", {})
    for i in range(calls.MAX_KINDS + 10):  # a cell's own autograd.Function gives a new bound apply each run
        calls.call_kind(lambda: i)
    assert 0 < len(calls.KINDS) <= calls.MAX_KINDS
