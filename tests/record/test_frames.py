import contextlib

import torch

from gradmagic.record.frames import CONTEXTLIB, caller_line, inside_nn_init, outside_frame


def test_caller_line_finds_the_first_frame_of_the_file_within_its_tries():
    source = "def inner(tries):\n    return caller_line('<cell>', tries)\n\nline = inner(1)\n"
    namespace = {"caller_line": caller_line}
    exec(compile(source, "<cell>", "exec"), namespace)
    assert namespace["line"] == 2  # the first frame outside gradmagic is inner() itself, in <cell>
    wrapped = "def outer():\n    return helper()\n\nline = outer()\n"
    namespace = {"helper": lambda: caller_line("<cell>", 3)}
    exec(compile(wrapped, "<cell>", "exec"), namespace)
    assert namespace["line"] == 2  # the lambda's frame is not <cell>; its caller is
    namespace = {"helper": lambda: caller_line("<cell>", 1)}
    exec(compile(wrapped, "<cell>", "exec"), namespace)
    assert namespace["line"] is None  # one try: the lambda's frame only
    namespace = {"helper": lambda: caller_line("<other>", 3)}
    exec(compile(wrapped, "<cell>", "exec"), namespace)
    assert namespace["line"] is None


def test_caller_line_starts_outside_gradmagic_however_deep_its_own_calls_are():
    from gradmagic.record import frames

    own = {"caller_line": caller_line}  # a function of gradmagic's own, calling itself n deep, then caller_line
    exec(compile("def deep(n):\n    return caller_line('<cell>', 1) if n == 0 else deep(n - 1)\n",
                 frames.__file__, "exec"), own)
    namespace = {"deep": own["deep"]}
    exec(compile("a = deep(0)\nb = deep(5)\n", "<cell>", "exec"), namespace)
    assert (namespace["a"], namespace["b"]) == (1, 2)  # one try: the first frame outside gradmagic is the cell's


def test_outside_frame_skips_contextlib_entered_directly_or_through_an_exit_stack():
    @contextlib.contextmanager
    def who_entered():
        yield outside_frame(CONTEXTLIB, __file__).f_code.co_name

    def enter_directly():
        with who_entered() as name:
            return name

    def enter_through_a_stack():
        with contextlib.ExitStack() as stack:
            return stack.enter_context(who_entered())

    namespace = {"directly": enter_directly, "stacked": enter_through_a_stack}
    exec(compile("def cell():\n    return directly(), stacked()\n", "<cell>", "exec"), namespace)
    assert namespace["cell"]() == ("cell", "cell")


def test_inside_nn_init_sees_a_parameter_initialisation_only(monkeypatch):
    import gradmagic.record.frames as frames

    seen = []
    monkeypatch.setattr(torch.Tensor, "fill_", lambda self, value: seen.append(inside_nn_init()) or self)
    with torch.no_grad():
        torch.nn.init.ones_(torch.empty(2))
        torch.empty(2).fill_(1.0)
    assert seen == [True, False] and frames.TORCH_FRAMES == 3
