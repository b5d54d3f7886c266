"""`%unload_ext gradmagic` leaves torch and builtins exactly as they were before `%load_ext gradmagic`."""
import builtins
import gc
import importlib

import torch
from IPython.core.interactiveshell import InteractiveShell

from gradmagic.record.naming import LABEL_HOOK

CELLS = [
    "%%autograd --no-graph --no-table\n"
    "model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh())\n"
    "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
    "class Twice(torch.autograd.Function):\n"
    "    @staticmethod\n"
    "    def forward(ctx, x):\n        return 2 * x\n"
    "    @staticmethod\n"
    "    def backward(ctx, g):\n        return 2 * g\n"
    "loss = Twice.apply(model(torch.ones(1, 2))).sum()\n"
    "opt.zero_grad()\nloss.backward()\nopt.step()\n"
    "(g,) = torch.autograd.grad(model(torch.ones(1, 2)).sum(), model[0].bias)\n",
    "%%autograd --lean --no-graph --no-table\n"
    "out = model(torch.ones(1, 2)).sum()\nopt.zero_grad()\nout.backward()\nopt.step()\n"
    "(g,) = torch.autograd.grad(model(torch.ones(1, 2)).sum(), model[0].bias)\n",
    "def f(x):\n    y = x * 2\n    return y\n",
]


def _torch_and_builtins() -> dict:
    """Everything a capture installs while a cell runs, and the builtins, as they are now."""
    modules = importlib.import_module("torch.nn.modules.module")
    optimizers = importlib.import_module("torch.optim.optimizer")
    hook_dicts = {name: dict(getattr(modules, name)) for name in dir(modules) if name.startswith("_global_")
                  and isinstance(getattr(modules, name), dict)}
    return {
        "Function.apply": torch.autograd.Function.__dict__["apply"],
        "autograd.backward": torch.autograd.backward,
        "autograd.grad": torch.autograd.grad,
        "Tensor.backward": torch.Tensor.backward,
        "Optimizer.zero_grad": torch.optim.Optimizer.__dict__["zero_grad"],
        "optimizer hooks": (dict(optimizers._global_optimizer_pre_hooks),
                            dict(optimizers._global_optimizer_post_hooks)),
        "module hooks": hook_dicts,
        "function modes": torch._C._len_torch_function_stack(),
        "default dtype": torch.get_default_dtype(),
        "gc thresholds": gc.get_threshold(),
        "builtins": dir(builtins),
    }


def test_unload_ext_leaves_torch_and_builtins_as_before_load_ext(monkeypatch):
    monkeypatch.delattr(builtins, LABEL_HOOK, raising=False)  # an earlier test's run may have installed it
    shell = InteractiveShell.instance()
    before = _torch_and_builtins()
    shell.run_line_magic("load_ext", "gradmagic")
    try:
        for cell in CELLS:
            assert shell.run_cell(cell).success, cell
        shell.run_cell("z = f(torch.ones(1))")
    finally:
        shell.run_line_magic("unload_ext", "gradmagic")
    after = _torch_and_builtins()
    assert shell.user_ns["z"].tolist() == [2.0]  # a function the instrumented cell defined still runs after it
    assert after == before
