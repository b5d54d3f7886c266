import ast

from gradmagic.record.naming import LABEL_HOOK, label_assignments


def _labels(source):
    tree = label_assignments(ast.parse(source), source)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == LABEL_HOOK]
    return [call.args[1].value for call in calls]


def test_labels_plain_tuple_augmented_and_annotated_assignments():
    source = "a = f(1)\nb, (c, *d) = g()\na += 2\ne: int = a * 3\n"
    labels = _labels(source)
    assert ("a", 1, "f(1)") in labels and ("e", 4, "a * 3") in labels
    assert [name for name, _, _ in labels] == ["a", "b", "c", "d", "a", "e"]


def test_labels_inside_loops_branches_with_try_and_functions():
    source = (
        "for i in xs:\n    h = i\n"
        "while k:\n    w = 1\n"
        "if c:\n    p = 1\nelse:\n    q = 2\n"
        "with ctx() as m:\n    n = 3\n"
        "try:\n    t = 1\nexcept E:\n    u = 2\nfinally:\n    v = 3\n"
        "def f(x):\n    inner = x\n    return inner\n"
    )
    names = {name for name, _, _ in _labels(source)}
    assert names == {"i", "h", "w", "p", "q", "m", "n", "t", "u", "v", "f.inner"}


def test_attribute_and_subscript_targets_are_left_alone():
    assert _labels("obj.x = 1\nd['k'] = 2\n") == []


def test_instrumented_code_keeps_line_numbers():
    source = "a = 1\n\nb = a + 1\n"
    tree = label_assignments(ast.parse(source), source)
    assert [node.lineno for node in tree.body] == [1, 1, 3, 3]


def test_item_labels_name_each_tensor_of_a_bound_sequence():
    import torch

    from gradmagic.record.naming import item_labels

    pair = (torch.ones(1), torch.zeros(1))
    labels = item_labels(pair, ("rows", 3, "x.unbind(0)"))
    assert [(item is t, info) for (item, info), t in zip(labels, pair)] == \
        [(True, ("rows[0]", 3, "x.unbind(0)")), (True, ("rows[1]", 3, "x.unbind(0)"))]
    assert item_labels([1, 2], ("n", 1, "[1, 2]")) == [] and item_labels(torch.ones(2), ("t", 1, "")) == []


def test_the_label_hook_ignores_other_threads():
    import builtins
    import threading

    from gradmagic.record.naming import install_label_hook

    previous = getattr(builtins, LABEL_HOOK, None)
    seen = []
    install_label_hook(lambda value, info: seen.append((value, info[0], threading.get_ident())))
    try:
        worker = threading.Thread(target=getattr(builtins, LABEL_HOOK), args=(1, ("t", 1, "1")))
        worker.start()
        worker.join()
        getattr(builtins, LABEL_HOOK)(2, ("x", 2, "2"))
    finally:
        setattr(builtins, LABEL_HOOK, previous)
    assert seen == [(2, "x", threading.get_ident())]


def test_a_worker_threads_assignments_run_as_plain_and_stay_unnamed():
    import gradmagic
    import torch

    source = ("import threading\nout = []\ndef work():\n    t = torch.ones(2) * 3\n    u = t + 1\n    out.append(u)\n"
              "th = threading.Thread(target=work)\nth.start()\nth.join()\nx = torch.ones(2, requires_grad=True)\n"
              "y = (x * 2).sum()\ny.backward()")
    namespace = {"torch": torch}
    result = gradmagic.run(source, namespace)
    assert namespace["out"][0].tolist() == [4.0, 4.0] and namespace["x"].grad.tolist() == [2.0, 2.0]
    assert not [name for name in result.names() if name.startswith("work.")]
    assert {"x", "y", "out[0]"} <= set(result.names())
