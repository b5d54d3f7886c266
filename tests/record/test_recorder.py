import gc
import weakref

import pytest
import torch

import gradmagic
from programs import STEP_WITH_MOMENTUM
from helpers import reached
from gradmagic.graph import tensor_nodes
from helpers import assert_same, captured_namespace, plain_namespace
from programs import CUDA_NO_SYNC, OPTIMIZER_IN_BACKWARD, SQUARE_FUNCTION


def _producer_op(graph, node):
    ops = list(graph.predecessors(node))
    return graph.nodes[ops[0]]["op"] if ops else None


def test_loop_rebinding_labels_each_iteration():
    result = gradmagic.run("h = torch.tensor(1.0, requires_grad=True)\nfor i in range(3):\n    h = h * 2\n")
    labels = [result.graph.nodes[n]["label"] for n in tensor_nodes(result.graph, "h")]
    assert labels == ["h₁", "h₂", "h₃", "h₄"]


def test_unbound_tensor_stays_anonymous():
    graph = gradmagic.run("x = torch.ones(2)\ny = (x + 1) * 2").graph
    anonymous = [n for n in tensor_nodes(graph) if graph.nodes[n]["name"] is None]
    assert len(anonymous) == 1 and graph.nodes[anonymous[0]]["value"] == [2.0, 2.0]


def test_parameters_named_by_module_path_even_from_an_earlier_cell():
    namespace = {"torch": torch}
    exec("import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(3, 2))", namespace)
    result = gradmagic.run("out = model(torch.ones(1, 3)).sum()\nout.backward()", namespace)
    weight = result.tensor("model.0.weight")
    assert weight["param"] == "model.0.weight" and weight["role"] == "leaf"
    assert weight["grad"] == namespace["model"][0].weight.grad.tolist()
    linear = [d for _, d in result.graph.nodes(data=True) if d["kind"] == "op" and d["op"] == "linear"]
    assert linear[0]["module"] == "model.0"


def test_in_place_ops_make_a_node_per_version_and_keep_old_values():
    result = gradmagic.run("x = torch.zeros(2)\nx.add_(1)\nx.mul_(3)")
    versions = [result.graph.nodes[n] for n in tensor_nodes(result.graph, "x")]
    assert [v["value"] for v in versions] == [[0.0, 0.0], [1.0, 1.0], [3.0, 3.0]]
    assert [v["version"] for v in versions] == [0, 1, 2]
    nodes = tensor_nodes(result.graph, "x")
    assert [v["previous"] for v in versions] == [None, nodes[0], nodes[1]]


def test_large_in_place_version_keeps_only_the_final_stats():
    result = gradmagic.run("big = torch.ones(500)\nbig.mul_(4)")
    old, new = (result.graph.nodes[n] for n in tensor_nodes(result.graph, "big"))
    assert old["stats"] is None  # overwritten in place: its value is gone, and we say so
    assert new["stats"]["mean"] == 4.0 and new["stats"]["numel"] == 500


def test_id_reuse_of_freed_tensors_does_not_merge_nodes():
    source = "sums = []\nfor i in range(30):\n    t = torch.full((100,), float(i))\n    sums.append(t.sum())\n"
    graph = gradmagic.run(source).graph
    sum_ops = [n for n, d in graph.nodes(data=True) if d["kind"] == "op" and d["op"] == "sum"]
    inputs = {next(iter(graph.predecessors(op))) for op in sum_ops}
    assert len(sum_ops) == 30 and len(inputs) == 30
    assert {_producer_op(graph, t) for t in inputs} == {"full"}


def test_non_leaf_gradients_seen_without_retain_grad():
    namespace = {"torch": torch}
    result = gradmagic.run("x = torch.ones(3, requires_grad=True)\nh = x * 4\nloss = (h * h).sum()\nloss.backward()",
                           namespace)
    assert reached(result.tensor("h")) == [8.0, 8.0, 8.0] and result.tensor("h")["grad"] is None
    assert namespace["h"].grad is None and not namespace["h"].retains_grad


def test_two_backward_passes_accumulate_like_torch():
    source = "x = torch.tensor(2.0, requires_grad=True)\ny = x * x\ny.backward(retain_graph=True)\ny.backward()"
    result = gradmagic.run(source)
    x = result.tensor("x")
    assert x["pass_grads"] == {0: 4.0, 1: 4.0} and x["grad"] == 8.0
    assert result.graph.graph["passes"] == 2


def test_autograd_grad_with_create_graph_records_the_gradient_tensor():
    namespace = {"torch": torch}
    source = "x = torch.tensor(3.0, requires_grad=True)\ny = x ** 3\ndx, = torch.autograd.grad(y, x, create_graph=True)\n" \
             "d2x, = torch.autograd.grad(dx, x)"
    result = gradmagic.run(source, namespace)
    assert result.tensor("dx")["value"] == 27.0 and result.tensor("d2x")["value"] == 18.0
    assert result.graph.graph["pass_kinds"] == ["grad", "grad"]
    assert result.tensor("x")["pass_grads"] == {0: 27.0, 1: 18.0}
    assert namespace["x"].grad is None


def test_edges_that_carry_no_gradient_are_marked():
    source = (
        "x = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "d = x.detach()\n"
        "with torch.no_grad():\n"
        "    n = x * 2\n"
        "y = x * 3\n"
        "v = y.sum().item()\n"
    )
    graph = gradmagic.run(source).graph
    flags = sorted((graph.nodes[v]["op"], graph.nodes[v]["grad_enabled"], d["differentiable"])
                   for u, v, d in graph.edges(data=True) if graph.nodes[u]["kind"] == "tensor")
    assert flags == [("detach", True, False), ("item", True, False), ("mul", False, False), ("mul", True, True),
                     ("sum", True, True)]


def test_large_intermediates_are_freed_after_the_run():
    namespace = {"torch": torch, "weakref": weakref}
    source = (
        "w = torch.randn(256, 256, requires_grad=True)\n"
        "t = w * 2\n"
        "small = w[0, :4] * 3\n"
        "refs = [weakref.ref(t), weakref.ref(small)]\n"
        "y = t.relu().sum() + small.sum()\n"
        "del t, small\n"
        "y.backward()\n"
    )
    result = gradmagic.run(source, namespace)
    gc.collect()
    assert all(ref() is None for ref in namespace["refs"])
    assert result.graph.number_of_nodes() > 5


def test_values_summarised_with_stats_when_large():
    graph = gradmagic.run("m = torch.arange(100.0)").graph
    m = graph.nodes[tensor_nodes(graph, "m")[0]]
    assert m["value"] is None
    assert m["stats"]["min"] == 0.0 and m["stats"]["max"] == 99.0 and m["stats"]["numel"] == 100


def test_integer_tensors_have_values_but_no_gradients():
    result = gradmagic.run("i = torch.tensor([1, 2, 3])\nj = i * 2")
    assert result.tensor("j")["value"] == [2, 4, 6] and result.tensor("j")["grad"] is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_recording_on_cuda_never_synchronises_the_host():
    exec(CUDA_NO_SYNC, {"torch": torch})  # the program itself is sync-free, so any sync would be ours
    namespace = {"torch": torch}
    result = gradmagic.run(CUDA_NO_SYNC, namespace)
    assert torch.cuda.get_sync_debug_mode() == 0
    assert result.tensor("w")["grad_stats"]["norm"] == pytest.approx(namespace["w"].grad.norm().item(), rel=1e-5)
    assert result.tensor("small")["value"] == pytest.approx(namespace["small"].item())
    assert result.tensor("h")["device"].startswith("cuda")


def test_gradient_flows_along_edges_sum_to_the_gradient():
    from programs import SEED_3

    result = gradmagic.run(SEED_3)
    graph = result.graph
    for name in ("x", "a", "y", "b"):
        node = tensor_nodes(graph, name)[0]
        flows = [d["flow"] for _, _, d in graph.out_edges(node, data=True)]
        assert None not in flows
        assert sum(flows) == pytest.approx(reached(graph.nodes[node]), rel=1e-6)
    x = tensor_nodes(graph, "x")[0]
    through_b = [d["flow"] for _, op, d in graph.out_edges(x, data=True) if graph.nodes[op]["label"] == "mul ×6"]
    assert through_b == [pytest.approx(-1.55e-6, rel=1e-2)]


def test_flows_reach_both_slots_of_a_squared_tensor_and_composite_ops():
    graph = gradmagic.run("w = torch.tensor([1.0, 2.0], requires_grad=True)\nq = (w * w).sum()\n"
                          "r = (1 / w).sum()\nloss = q + r\nloss.backward()").graph
    w = tensor_nodes(graph, "w")[0]
    flows = {(graph.nodes[op]["label"], key): d["flow"] for _, op, key, d in graph.out_edges(w, keys=True, data=True)}
    assert flows == {("mul", "0"): [1.0, 2.0], ("mul", "1"): [1.0, 2.0], ("reciprocal", "0"): [-1.0, -0.25]}


def test_grad_before_the_run_and_non_leaf_grad_reads_are_recorded():
    namespace = {"torch": torch}
    exec("x = torch.tensor(2.0, requires_grad=True)", namespace)
    source = "y = x * 3\nprint(y.grad)\ny.backward()"
    gradmagic.run(source, namespace)
    result = gradmagic.run(source, namespace)
    assert result.tensor("x")["grad_before"] == 3.0 and result.tensor("x")["grad"] == 6.0
    y = tensor_nodes(result.graph, "y")[0]
    assert result.graph.graph["grad_reads"] == [[y, 2]]


def test_summary_values_match_tolist_for_every_shape_and_dtype():
    from gradmagic.record.summary import to_python

    tensors = [torch.tensor(1.5), torch.zeros(0), torch.arange(6.0).reshape(2, 3), torch.arange(4).reshape(2, 1, 2),
               torch.tensor([True, False]), torch.zeros(2, 0), torch.tensor([1 + 2j]), torch.tensor(7, dtype=torch.int8)]
    assert to_python([*tensors, None, 3.0]) == [t.tolist() for t in tensors] + [None, 3.0]


def test_non_leaf_grad_warning_still_points_at_the_users_line():
    with pytest.warns(UserWarning, match="not a leaf") as caught:
        gradmagic.run("x = torch.ones(1, requires_grad=True)\ny = x * 2\ng = y.grad\n")
    assert caught[0].filename.startswith("<gradmagic-") and caught[0].lineno == 3


DEEP_CHAIN = """
import gradmagic, torch
namespace = {"torch": torch}
result = gradmagic.run("h = torch.ones(1, requires_grad=True)\\nfor i in range(20000):\\n    h = torch.tanh(h * 1.01 + 0.1)\\n"
                       "h.backward()", namespace, budget=100_000)  # every op in detail: the depth guard's case
print(result.graph.graph["notes"][0][:40])
del namespace["h"]  # torch 2.13 crashed here when every node of the chain had had a Python object
print("freed")
"""


def test_a_60000_node_chain_is_captured_and_freed_without_crashing():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", DEEP_CHAIN], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["gradmagic looks at most 20,000 autograd ", "freed"]


SQUARE = SQUARE_FUNCTION + """
w = torch.tensor([1.0, 2.0], requires_grad=True)
m = torch.ones(2, 2, requires_grad=True)
y = Square.apply(w)
t = (m.T @ y)[None]
loss = t.sum()
loss.backward()
"""


def test_custom_functions_attributes_and_none_indices_are_recorded():
    namespace = {"torch": torch}
    result = gradmagic.run(SQUARE, namespace)
    labels = [d["label"] for _, d in result.graph.nodes(data=True) if d["kind"] == "op"]
    assert "Square.apply" in labels and "T" in labels and "getitem(None)" in labels
    assert torch.autograd.Function.__dict__["apply"].__func__.__name__ == "apply"
    assert not hasattr(torch.autograd.Function.apply, "__wrapped__")  # torch's own apply is back
    assert reached(result.tensor("y")) == [2.0, 2.0]
    assert result.tensor("w")["grad"] == namespace["w"].grad.tolist() == [4.0, 8.0]


def test_many_shallow_graphs_keep_all_their_gradients():
    source = "for i in range(8000):\n    x = torch.tensor(2.0, requires_grad=True)\n    y = x * x * 3\n    y.backward()"
    result = gradmagic.run(source, budget=30_000)  # every op in detail
    xs = tensor_nodes(result.graph, "x")
    assert len(xs) == 8000 and all(result.graph.nodes[n]["grad"] == 12.0 for n in xs)
    assert not any("deep" in note for note in result.graph.graph["notes"])  # only the hint to try --lean


def test_parameter_initialisation_is_not_recorded():
    result = gradmagic.run("import torch.nn as nn\nln = nn.LayerNorm(4)\nlin = nn.Linear(4, 2)\n"
                           "y = lin(ln(torch.ones(2, 4))).sum()\ny.backward()")
    ops = [d["op"] for _, d in result.graph.nodes(data=True) if d["kind"] == "op"]
    assert "fill_" not in ops and "zero_" not in ops and "kaiming_uniform_" not in ops
    assert [result.graph.nodes[n]["label"] for n in tensor_nodes(result.graph) if result.graph.nodes[n]["name"]] == [
        "ln.weight", "ln.bias", "lin.weight", "lin.bias", "y"]


def test_an_optimizer_step_inside_backward_leaves_the_parameters_final_values():
    namespace, result = captured_namespace(OPTIMIZER_IN_BACKWARD)
    plain = plain_namespace(OPTIMIZER_IN_BACKWARD)
    assert_same([plain["model"], plain["loss"]], [namespace["model"], namespace["loss"]])  # opt_dict: keyed by id
    weight = result.tensor("model.0.weight")
    assert weight["value"] == namespace["model"][0].weight.tolist() and weight["previous"] is not None
    before = result.graph.nodes[weight["previous"]]
    step = (torch.tensor(weight["value"]) - torch.tensor(before["value"])) / -0.1  # SGD: w₂ = w₁ − 0.1·gradient
    assert torch.allclose(step, torch.tensor(before["pass_grads"][0]), rtol=1e-3)
    assert any("4 leaf tensor(s) changed in place during backward pass 1" in n for n in result.graph.graph["notes"])
    assert result.diagnostics == [] and result.check().ok


CHECKPOINT = """
from torch.utils.checkpoint import checkpoint
layer = torch.nn.Linear(2, 2)
x = torch.tensor([1.0, 2.0], requires_grad=True)
h = checkpoint(lambda a: layer(a).tanh(), x * 2, use_reentrant=REENTRANT)
loss = (h * h).sum()
loss.backward()
"""


@pytest.mark.parametrize("lean", [False, True])
@pytest.mark.parametrize("reentrant", [True, False])
def test_checkpoint_recomputation_inside_backward_is_not_a_second_pass(reentrant, lean):
    source = CHECKPOINT.replace("REENTRANT", str(reentrant))
    namespace, result = captured_namespace(source, lean=lean)
    assert_same(plain_namespace(source), namespace)
    assert result.graph.graph["pass_roots"] == [[result.graph.graph["roots"][0]]]
    assert result.tensor("x")["grad"] == namespace["x"].grad.tolist()
    if not reentrant:  # reentrant: the layer runs inside CheckpointFunction's forward, which is not recorded
        assert result.tensor("layer.weight")["grad"] == namespace["layer"].weight.grad.tolist()


def test_a_write_through_data_inside_backward_keeps_the_value_the_pass_used():
    source = ("w = torch.tensor([1.0, 2.0], requires_grad=True)\n"
              "w.register_post_accumulate_grad_hook(lambda p: [p.data.mul_(0.5)] and None)\n"
              "l = (w * w).sum()\nl.backward()\n")
    namespace, result = captured_namespace(source)
    assert_same(plain_namespace(source), namespace)
    assert result.tensor("w")["value"] == namespace["w"].tolist() == [0.5, 1.0]
    assert result.graph.nodes[result.tensor("w")["previous"]]["value"] == [1.0, 2.0]  # what l was computed from
    assert result.check().ok and result.explain("w").total == [2.0, 4.0]


def test_ops_inside_an_optimizer_step_and_zero_grad_are_tagged_with_the_optimizer():
    torch.manual_seed(0)
    graph = gradmagic.run(STEP_WITH_MOMENTUM).graph
    calls = graph.graph["optimizer_calls"]
    assert [(c["call"], c["name"], c["class"], c["settings"], c["line"]) for c in calls] == [
        ("step", "opt", "SGD", "lr=0.1, momentum=0.9", 8), ("zero_grad", "opt", "SGD", "lr=0.1, momentum=0.9", 9)]
    tagged = [(d["optimizer"], d["op"]) for _, d in graph.nodes(data=True) if d["kind"] == "op" and d["optimizer"] is not None]
    assert {op for call, op in tagged if call == 0} == {"clone", "detach", "add_"}  # momentum buffers, then updates
    assert [op for call, op in tagged if call == 1] == ["zero_"] * 2  # set_to_none=False zeroes .grad in place
    assert all(d["optimizer"] is None for _, d in graph.nodes(data=True) if d["kind"] == "op" and d["module"])
    finals = [graph.graph["bindings"][f"model.0.{p}"] for p in ("weight", "bias")]
    assert calls[0]["updated"] == finals


def test_module_classes_and_each_call_s_shapes_are_recorded():
    torch.manual_seed(0)
    graph = gradmagic.run(STEP_WITH_MOMENTUM).graph
    assert graph.graph["module_classes"] == {"model.0": "Linear", "model.1": "Tanh", "model": "Sequential"}
    assert [(c["module"], c["class"], c["inputs"], c["outputs"]) for c in graph.graph["module_calls"]] == [
        ("model.0", "Linear", [[5, 3]], [[5, 2]]), ("model.1", "Tanh", [[5, 2]], [[5, 2]]),
        ("model", "Sequential", [[5, 3]], [[5, 2]])]  # in the order the calls ended


def test_optimizer_hooks_are_gone_after_the_run_even_when_the_code_raises():
    from torch.optim import optimizer

    zero_grad = torch.optim.Optimizer.zero_grad
    with pytest.raises(ZeroDivisionError):
        gradmagic.run(STEP_WITH_MOMENTUM + "1 / 0\n")
    assert not optimizer._global_optimizer_pre_hooks and not optimizer._global_optimizer_post_hooks
    assert torch.optim.Optimizer.zero_grad is zero_grad


def test_a_chain_built_before_the_cell_is_hooked_at_its_frontier_only():
    from gradmagic.record import depths

    before = depths.looked_elsewhere()
    x = torch.tensor(1.0, requires_grad=True)
    h = x
    for _ in range(5000):
        h = h * 1.0001
    plain = torch.autograd.grad(h, x, retain_graph=True)[0]
    namespace = {"torch": torch, "h": h, "x": x}
    result = gradmagic.run("y = h * 2\ny.backward()", namespace)
    assert x.grad == 2 * plain  # the user's gradient, as a plain run gives it
    assert result.tensor("y")["pass_grads"] == {0: 1.0} and result.tensor("h")["pass_grads"] == {0: 2.0}
    assert depths.looked_elsewhere() - before <= 2  # h's node and y's, not the 5,000 below them (issue 11)


def test_a_chain_continued_over_full_captures_counts_what_earlier_ones_looked_at():
    namespace = {"torch": torch, "h": torch.tensor(1.0, requires_grad=True)}
    notes = []
    for _ in range(3):
        result = gradmagic.run("for _ in range(9000):\n    h = h * 1.0001", namespace, budget=100_000)
        notes.append(any("20,000 autograd nodes deep" in note for note in result.graph.graph["notes"]))
    assert notes == [False, False, True]


# Mutants from issue 11 ---------------------------------------------------------------------------
# Each multi-output op below hands every output its own gradient; a recorder that gave all outputs output 0's
# gradient (or numbered them all 0) survived the whole suite.

MULTI_OUTPUT = {
    "split": ("x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], requires_grad=True)\n"
              "a, b, c = x.split(2)\nloss = (a * 1 + b * 2 + c * 3).sum()\n", "abc"),
    "unbind": ("x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)\n"
               "a, b, c = x.unbind(0)\nloss = (a * 1 + b * 2 + c * 3).sum()\n", "abc"),
    "chunk": ("x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], requires_grad=True)\n"
              "a, b, c = torch.chunk(x, 3)\nloss = (a * 1 + b * 2 + c * 3).sum()\n", "abc"),
    "sort": ("x = torch.tensor([3.0, 1.0, 2.0], requires_grad=True)\n"
             "a, i = torch.sort(x)\nb = a * torch.tensor([1.0, 2.0, 3.0])\nloss = (b * b).sum()\n", "ab"),
    "var_mean": ("x = torch.tensor([1.0, 2.0, 4.0], requires_grad=True)\n"
                 "a, b = torch.var_mean(x)\nloss = a * 2 + b * 3\n", "ab"),
}


def plain_gradients(source: str, names: str) -> dict:
    """What plain torch sends to each named tensor in `loss.backward()`, and x.grad."""
    namespace = plain_namespace(source)
    grads = torch.autograd.grad(namespace["loss"], [namespace[n] for n in names], retain_graph=True)
    namespace["loss"].backward()
    return {**{n: g.tolist() for n, g in zip(names, grads)}, "x": namespace["x"].grad.tolist()}


def recorded_gradients(source: str, names: str, *, lean: bool = False) -> dict:
    """The gradient of the one backward pass the capture recorded at each named tensor and at x."""
    graph = gradmagic.run(source + "loss.backward()\n", {"torch": torch}, lean=lean).graph
    nodes = graph.graph["bindings"]
    return {n: graph.nodes[nodes[n]]["pass_grads"][0] for n in (*names, "x")}


@pytest.mark.parametrize("op", list(MULTI_OUTPUT))
def test_each_output_of_a_multi_output_op_gets_its_own_gradient(op):
    source, names = MULTI_OUTPUT[op]
    assert recorded_gradients(source, names) == plain_gradients(source, names)


def test_the_integer_output_of_sort_gets_no_gradient():
    source, names = MULTI_OUTPUT["sort"]
    graph = gradmagic.run(source + "loss.backward()\n").graph
    indices = graph.nodes[graph.graph["bindings"]["i"]]
    assert indices["dtype"] == "int64" and indices["pass_grads"] == {} and indices["grad"] is None
