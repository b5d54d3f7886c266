"""Deep autograd chains never crash the kernel (issue 11): torch 2.13 recurses once per node it frees when the
nodes were looked at from Python, so gradmagic keeps every chain it looks at under depths.MAX_NODE_DEPTH nodes,
counting what earlier captures looked at, and notes the gradients it does not show.

The cases are the issue's own reproductions (a chain built plain then captured; a chain continued over four cells).
"""
import pytest

PLAIN = ("p = torch.tensor(1.0, requires_grad=True)\nq = p\nfor _ in range({steps}):\n    q = q * 1.0001\n"
         "plain = torch.autograd.grad(q, p)[0].item()\ndel p, q")  # the same chain, never captured


def _dropped(kernel) -> None:
    """Freeing the chain leaves the kernel alive (a crash here was the bug)."""
    reply = kernel.run("h = None\nimport gc; gc.collect()", timeout=120)
    assert reply.status == "ok", reply.text
    assert kernel.alive()


def test_a_chain_built_plain_then_captured_frees_without_crashing(kernel):
    kernel.run("x = torch.tensor(1.0, requires_grad=True)\nh = x\nfor _ in range(50000):\n    h = h * 1.0001\n"
               "plain = torch.autograd.grad(h, x, retain_graph=True)[0].item()", timeout=120)
    reply = kernel.run("%%autograd --budget ops=100000\nh.backward()", timeout=300)
    assert reply.status == "ok", reply.text
    assert kernel.value("x.grad.item() == plain") is True
    _dropped(kernel)


@pytest.mark.parametrize("lean", ["", " --lean"])
def test_a_chain_continued_over_four_cells_frees_without_crashing(kernel, lean):
    kernel.run("x = torch.tensor(1.0, requires_grad=True)\nh = x", timeout=60)
    for cell in range(4):
        backward = "\nh.backward()" if cell == 3 else ""
        reply = kernel.run(f"%%autograd --budget ops=100000{lean}\nfor _ in range(9000):\n    h = h * 1.0001{backward}", timeout=300)
        assert reply.status == "ok", reply.text
    kernel.run(PLAIN.format(steps=36000), timeout=120)
    assert kernel.value("x.grad.item() == plain") is True
    assert "autograd nodes deep along a chain" in reply.text  # the gradients beyond are noted
    _dropped(kernel)
