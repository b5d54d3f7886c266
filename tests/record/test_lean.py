import gc
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

import gradmagic
from gradmagic.record.budget import INTERRUPT_SECONDS, Budget, as_budget
from gradmagic.record.lean import _NODE_COST
from gradmagic.graph import tensor_nodes
from gradmagic.record.walk import LEAN_NOTE, NodeOp
from helpers import assert_same, captured_namespace, plain_namespace, reached
from programs import CUDA_NO_SYNC, OPTIMIZER_IN_BACKWARD, SEED_2, SEED_3, SQUARE_FUNCTION, TRANSPARENCY_SUITE

RNN = """
h = h0
for t in range(12):
    h = torch.tanh(xs[t] @ wx + h @ wh + bias)
loss = h.sum()
loss.backward()
"""


def rnn_namespace() -> dict:
    torch.manual_seed(0)
    return {"torch": torch, "h0": torch.zeros(1, 8), "xs": torch.randn(12, 1, 4),
            "wx": torch.randn(4, 8, requires_grad=True), "wh": (torch.randn(8, 8) * 0.5).requires_grad_(),
            "bias": torch.zeros(8, requires_grad=True)}


def autograd_edges(*roots) -> list:
    """Torch's own graph below `roots`, as sorted (op, input) pairs: ops by NodeOp name, leaves as `leaf`."""
    edges, seen, stack = [], set(), [r.grad_fn for r in roots]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        for source, _ in node.next_functions:
            if source is None:
                continue
            leaf = hasattr(source, "variable")
            edges.append((NodeOp(type(node)).__name__, "leaf" if leaf else NodeOp(type(source)).__name__))
            if not leaf:
                stack.append(source)
    return sorted(edges)


def graph_edges(graph) -> list:
    """The same pairs read off a lean graph: each op's inputs, by the op that made them or `leaf`."""
    edges = []
    for op, data in graph.nodes(data=True):
        if data["kind"] != "op":
            continue
        for tensor in graph.predecessors(op):
            makers = list(graph.predecessors(tensor))
            for _ in range(graph.number_of_edges(tensor, op)):
                edges.append((data["op"], graph.nodes[makers[0]]["op"] if makers else "leaf"))
    return sorted(edges)


def test_seed_graph_is_torch_s_own_autograd_graph_node_by_node():
    plain = plain_namespace(SEED_3.replace("z.backward()", ""))
    result = gradmagic.run(SEED_3, {"torch": torch}, lean=True)
    assert graph_edges(result.graph) == autograd_edges(plain["z"])
    assert result.graph.graph["capture"] == "lean" and LEAN_NOTE in result.graph.graph["notes"]


def test_seed_values_and_gradients_match_plain_torch():
    retained = "y.retain_grad()\nb.retain_grad()\nz.retain_grad()\nz.backward()"
    plain = plain_namespace(SEED_3.replace("z.backward()", retained))
    captured, result = captured_namespace(SEED_3, lean=True)
    for name in "axybz":
        node = result.tensor(name)
        assert node["value"] == plain[name].item()
        expected = plain[name].grad
        assert node["grad"] == (None if name not in "ax" else expected.item()), name  # exactly .grad
        assert reached(node) == (None if expected is None else expected.item()), name
    assert result.tensor("x")["grad"] == 17200.0


@pytest.mark.parametrize("name", sorted(TRANSPARENCY_SUITE))
def test_namespace_matches_plain_exec(name):
    source = TRANSPARENCY_SUITE[name]
    captured, result = captured_namespace(source, lean=True)
    assert_same(plain_namespace(source), captured)
    assert result.graph.number_of_nodes() > 0


def test_rnn_gradients_of_every_step_match_retain_grad():
    plain = rnn_namespace()
    exec(RNN.replace("h = torch.tanh(xs[t] @ wx + h @ wh + bias)",
                     "h = torch.tanh(xs[t] @ wx + h @ wh + bias)\n    h.retain_grad()\n    hs.append(h)"),
         {**plain, "hs": (hs := [])})
    namespace = rnn_namespace()
    result = gradmagic.run(RNN, namespace, lean=True)
    nodes = tensor_nodes(result.graph, "h")  # `h = h0` first: that tensor is named h0, what it holds at the end
    assert len(nodes) == 12
    for node, expected in zip(nodes, hs):
        data = result.graph.nodes[node]
        assert data["value"] == expected.tolist() and reached(data) == expected.grad.tolist()
    for leaf in ("wx", "wh", "bias"):
        (node,) = tensor_nodes(result.graph, leaf)
        assert result.graph.nodes[node]["grad"] == plain[leaf].grad.tolist()
    ops = [d["op"] for _, d in result.graph.nodes(data=True) if d["kind"] == "op"]
    assert ops.count("tanh") == 12 and ops.count("mm") == 24 and ops[-1] == "sum"


def test_ops_belong_to_their_modules():
    source = "out = mlp(x)\nloss = out.pow(2).mean()\nloss.backward()"

    def namespace():
        torch.manual_seed(0)
        mlp = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        return {"torch": torch, "mlp": mlp, "x": torch.randn(5, 3)}

    lean = gradmagic.run(source, namespace(), lean=True).graph
    full = gradmagic.run(source, namespace()).graph
    modules = [(d["op"], d["module"]) for _, d in lean.nodes(data=True) if d["kind"] == "op"]
    assert [m for _, m in modules] == ["mlp.0", "mlp.0", "mlp.1", "mlp.2", "mlp.2", None, None]
    names = {d["name"] for _, d in lean.nodes(data=True) if d["kind"] == "tensor" and d["name"]}
    assert names == {d["name"] for _, d in full.nodes(data=True) if d["kind"] == "tensor" and d["name"]} - {"x"}
    # x neither requires grad nor is bound in the cell: autograd's graph does not hold it


def test_custom_function_and_autograd_grad():
    source = SQUARE_FUNCTION + textwrap.dedent("""
        x = torch.tensor([1.0, 3.0], requires_grad=True)
        y = Square.apply(x).sum()
        (g,) = torch.autograd.grad(y, x)
    """)
    result = gradmagic.run(source, {"torch": torch}, lean=True)
    assert "Square.apply" in [d["op"] for _, d in result.graph.nodes(data=True) if d["kind"] == "op"]
    assert result.graph.graph["pass_kinds"] == ["grad"]
    assert result.tensor("x")["pass_grads"] == {0: [2.0, 6.0]}


def test_hooks_are_gone_after_the_run():
    source = "x = torch.ones(3, requires_grad=True)\ny = (x * 2).sum()\ny.backward(retain_graph=True)"
    namespace = {"torch": torch}
    result = gradmagic.run(source, namespace, lean=True)
    grads = result.tensor("y")["pass_grads"]
    namespace["y"].backward()  # the same graph again, outside the capture
    assert result.tensor("y")["pass_grads"] == grads == {0: 1.0}
    assert namespace["x"].grad.tolist() == [4.0, 4.0, 4.0]


def test_a_raising_cell_keeps_the_partial_result_and_restores_torch():
    with pytest.raises(ZeroDivisionError):
        gradmagic.run("x = torch.ones(2, requires_grad=True)\ny = (x * 3).sum()\ny.backward()\n1 / 0", lean=True)
    result = gradmagic.last()
    assert isinstance(result.error, ZeroDivisionError)
    assert result.tensor("x")["grad"] == [3.0, 3.0]


def test_names_are_the_bindings_when_the_run_ended():
    namespace = {"torch": torch}
    result = gradmagic.run("w = torch.ones(2, requires_grad=True)\nv = w * 2", namespace, lean=True)
    namespace["v"] = "rebound later"
    assert result.names() == ["w", "v"]


def test_accumulated_gradient_is_diagnosed():
    namespace = {"torch": torch, "w": torch.ones(2, requires_grad=True)}
    gradmagic.run("(w * 2).sum().backward()", namespace)
    result = gradmagic.run("loss = (w * 3).sum()\nloss.backward()", namespace, lean=True)
    assert result.tensor("w")["grad_before"] == [2.0, 2.0]
    assert [d.kind for d in result.diagnostics] == ["accumulated"]


def test_explain_and_check_need_the_full_capture():
    result = gradmagic.run(SEED_2, lean=True)
    with pytest.raises(ValueError, match="full capture"):
        result.explain("x")
    with pytest.raises(ValueError, match="full capture"):
        result.check()


def test_a_deep_chain_is_cut_at_the_node_budget_and_freeing_it_does_not_crash():
    script = textwrap.dedent("""
        import torch, gradmagic
        ns = {"torch": torch, "h": torch.zeros(1, requires_grad=True)}
        result = gradmagic.run("for i in range(30_000):\\n    h = torch.tanh(h * 1.0)", ns, lean=True, budget=40_000)
        notes = result.graph.graph["notes"]
        print(any("10,000 tensors were named" in note for note in notes))
        del ns, result
        print("freed")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "freed"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_lean_capture_on_cuda_never_synchronises_the_host():
    exec(CUDA_NO_SYNC, {"torch": torch})  # the program itself is sync-free, so any sync would be ours
    namespace = {"torch": torch}
    result = gradmagic.run(CUDA_NO_SYNC, namespace, lean=True)
    assert torch.cuda.get_sync_debug_mode() == 0
    assert result.tensor("w")["grad_stats"]["norm"] == pytest.approx(namespace["w"].grad.norm().item(), rel=1e-5)
    assert result.tensor("small")["value"] == pytest.approx(namespace["small"].item())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_rnn_matches_plain():
    def on_cuda(namespace: dict) -> dict:
        return {k: v.detach().cuda().requires_grad_(v.requires_grad) if isinstance(v, torch.Tensor) else v
                for k, v in namespace.items()}

    plain, namespace = on_cuda(rnn_namespace()), on_cuda(rnn_namespace())
    exec(RNN, plain)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = gradmagic.run(RNN, namespace, lean=True)
    for leaf in ("wx", "wh", "bias"):
        assert torch.equal(namespace[leaf].grad, plain[leaf].grad)
        (node,) = tensor_nodes(result.graph, leaf)
        assert result.graph.nodes[node]["device"].startswith("cuda")


USER_MODE = """
from torch.overrides import TorchFunctionMode

class Count(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        calls.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))

calls = []
x = torch.ones(3, requires_grad=True)
with Count():
    y = x * 2
    z = y.sum()
    z.backward()
"""


@pytest.mark.parametrize("lean", [False, True])
def test_the_code_s_own_function_mode_sees_only_the_code_s_calls(lean):
    plain = plain_namespace(USER_MODE)
    captured, _ = captured_namespace(USER_MODE, lean=lean)
    assert captured["calls"] == plain["calls"] and "backward" in plain["calls"]


def test_a_leaf_written_in_place_before_the_pass_is_no_leaf_any_more():
    source = "x = torch.ones(3, requires_grad=True)\ny = torch.zeros(3)\ny[1] = x[0] * 5\nz = y.sum()\nz.backward()"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reading .grad of the non-leaf y would warn
        result = gradmagic.run(source, {"torch": torch}, lean=True)
    assert result.tensor("x")["grad"] == [5.0, 0.0, 0.0]


def test_capture_block_keeps_the_values_of_the_caller_s_tensors():
    w = torch.ones(3, requires_grad=True)
    with gradmagic.capture(lean=True) as cap:
        h = w * 2
        y = h.sum()
        y.backward()
    assert cap.result.tensor("h")["value"] == [2.0, 2.0, 2.0] and cap.result.tensor("y")["value"] == 6.0
    assert cap.result.tensor("w")["grad"] == [2.0, 2.0, 2.0]
    assert h.grad_fn is not None and y.grad is None  # nothing of the capture is left on them


def test_autograd_grad_over_a_generator_of_parameters_works_as_in_plain_torch():
    source = ("model = torch.nn.Linear(2, 1)\nloss = model(torch.ones(3, 2)).sum()\n"
              "grads = torch.autograd.grad(outputs=loss, inputs=model.parameters())\n")
    captured, _ = captured_namespace(source, lean=True)
    assert_same(plain_namespace(source), captured)
    assert [g.tolist() for g in captured["grads"]] == [[[3.0, 3.0]], [3.0]]


def test_an_optimizer_step_inside_backward_is_no_missing_gradient():
    namespace, result = captured_namespace(OPTIMIZER_IN_BACKWARD, lean=True)
    plain = plain_namespace(OPTIMIZER_IN_BACKWARD)
    assert_same([plain["model"], plain["loss"]], [namespace["model"], namespace["loss"]])
    assert result.tensor("model.0.weight")["value"] == namespace["model"][0].weight.tolist()
    assert result.graph.graph["passes"] == 1 and result.diagnostics == []  # .grad is None again: zero_grad in the hook


def test_optimizer_calls_and_module_calls_are_noted_without_recording_ops():
    from programs import STEP_WITH_MOMENTUM

    torch.manual_seed(0)
    graph = gradmagic.run(STEP_WITH_MOMENTUM, lean=True).graph
    calls = graph.graph["optimizer_calls"]
    assert [(c["call"], c["name"], c["class"], c["settings"], c["line"]) for c in calls] == [
        ("step", "opt", "SGD", "lr=0.1, momentum=0.9", 8), ("zero_grad", "opt", "SGD", "lr=0.1, momentum=0.9", 9)]
    assert calls[0]["updated"] == [graph.graph["bindings"][f"model.0.{p}"] for p in ("weight", "bias")]
    assert all(d["optimizer"] is None for _, d in graph.nodes(data=True) if d["kind"] == "op")
    assert graph.graph["module_classes"] == {"model.0": "Linear", "model.1": "Tanh", "model": "Sequential"}
    assert [c["outputs"] for c in graph.graph["module_calls"]] == [[[5, 2]]] * 3


def test_a_chain_continued_over_captures_counts_what_earlier_ones_looked_at():
    from gradmagic.record import depths

    gc.collect()  # an earlier test's garbage freed now, not in the middle of this one
    before = depths.looked_elsewhere()
    namespace = {"torch": torch, "h": torch.tensor(1.0, requires_grad=True)}
    notes = []
    for _ in range(3):  # each capture alone is under the budget; together they would pass it (issue 11)
        result = gradmagic.run("for _ in range(9000):\n    h = h * 1.0001", namespace, lean=True, budget=100_000)
        notes.append(any("20,000 autograd nodes deep" in note for note in result.graph.graph["notes"]))
    assert notes == [False, True, True]
    assert depths.looked_elsewhere() == depths.MAX_NODE_DEPTH
    del result
    namespace["h"] = None  # the chain and every token it held are freed
    assert depths.looked_elsewhere() == before


def test_a_long_training_loop_is_read_whole():
    source = ("for _ in range(3000):\n    w = torch.randn(4, 4, requires_grad=True)\n"
              "    loss = torch.tanh(torch.tanh(w @ w) @ w).sum()\n    loss.backward()")
    result = gradmagic.run(source, {"torch": torch}, lean=True, budget=100_000)
    assert not any("deep" in note for note in result.graph.graph["notes"])
    assert len(tensor_nodes(result.graph, "w")) == 3000


# Mutants from issue 11 ---------------------------------------------------------------------------
# The lean capture's pre-hook reads the gradient of the output it was registered for; one that read output 0's
# for every output of split/unbind/var_mean survived the whole suite.

@pytest.mark.parametrize("source, names", [
    ("x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], requires_grad=True)\n"
     "a, b, c = x.split(2)\nloss = (a * 1 + b * 2 + c * 3).sum()\n", "abc"),
    ("x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)\n"
     "a, b, c = x.unbind(0)\nloss = (a * 1 + b * 2 + c * 3).sum()\n", "abc"),
    ("x = torch.tensor([1.0, 2.0, 4.0], requires_grad=True)\na, b = torch.var_mean(x)\nloss = a * 2 + b * 3\n", "ab"),
])
def test_lean_gives_each_output_of_a_multi_output_op_its_own_gradient(source, names):
    plain = plain_namespace(source)
    expected = torch.autograd.grad(plain["loss"], [plain[n] for n in names])
    graph = gradmagic.run(source + "loss.backward()\n", {"torch": torch}, lean=True).graph
    recorded = [graph.nodes[graph.graph["bindings"][n]]["pass_grads"][0] for n in names]
    assert recorded == [g.tolist() for g in expected]


def test_after_ctrl_c_the_lean_capture_keeps_only_what_draws_within_the_second():
    source = ("w = torch.ones(2, requires_grad=True)\n(w * 2).sum().backward()\nfor i in range(2000):\n"
              "    h = w * i\n(h * 3).sum().backward()\nraise KeyboardInterrupt")
    namespace = {"torch": torch}
    with pytest.raises(KeyboardInterrupt):
        gradmagic.run(source, namespace, lean=True)
    result = gradmagic.last()
    room = int(Budget().detail_nodes(INTERRUPT_SECONDS / 4) / _NODE_COST)  # graph nodes: w, the first pass, each h
    read = room // 2
    assert result.trace.notes[0].startswith(f"Recorded the first {read} bindings in detail; the remaining "
                                            f"{2002 - read:,} bindings")
    assert room <= len(result.trace.funcs) + result.trace.num_tensors <= room + 2  # and h's final value
    assert result.graph.graph["passes"] == 1  # the second pass started from a binding past the cut
    assert result.tensor("w")["grad"] == namespace["w"].grad.tolist() == [5999.0, 5999.0]
    assert result.tensor("h")["value"] == namespace["h"].tolist() == [1999.0, 1999.0]


def test_the_lean_read_stops_where_the_time_budget_s_graph_nodes_run_out_and_names_keep_their_values():
    source = "w = torch.ones(2, requires_grad=True)\nfor i in range(1000):\n    h = w * i\nloss = (h * 3).sum()\n" \
             "loss.backward()"
    namespace = {"torch": torch}
    result = gradmagic.run(source, namespace, lean=True, budget="seconds=0.1")
    room = int(as_budget("seconds=0.1").detail_nodes() / _NODE_COST)  # each h is one op and one record
    trace = result.trace
    assert room - 2 <= len(trace.funcs) + trace.num_tensors - 2 <= room + 1  # + the final h and loss; w: 1 over
    read = 1 + room // 2  # w, then the h's; of 1,003 bindings: w, 1,000 h's, loss and the pass's root
    assert trace.notes[0].startswith(f"Recorded the first {read} bindings in detail; the remaining {1003 - read:,} "
                                     f"bindings as counts per line (")
    assert result.tensor("h")["value"] == namespace["h"].tolist() == [999.0, 999.0]
    assert result.tensor("w")["grad"] == namespace["w"].grad.tolist() == [2997.0, 2997.0]
