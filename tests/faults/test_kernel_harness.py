"""The harness itself: it must see a crash, an error's own traceback and a plain cell's state."""


def test_a_dead_kernel_is_seen(kernel):
    reply = kernel.run("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", timeout=60)
    assert reply.status == "dead"
    assert not kernel.alive()


def test_a_user_error_shows_its_own_traceback(kernel):
    reply = kernel.run("%%autograd\nx = torch.ones(2, requires_grad=True)\nundefined_name + x")
    assert reply.status == "error" and reply.error["ename"] == "NameError"
    assert "undefined_name + x" in reply.traceback
    assert kernel.alive()


def test_values_come_back_from_the_kernel(kernel):
    kernel.run("%%autograd\nx = torch.tensor(10.0, requires_grad=True)\ny = 2*x*x + 3\ny.backward()")
    assert kernel.value("x.grad.item()") == 40.0
