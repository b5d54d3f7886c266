import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from traitlets.config import Config  # noqa: E402

from gradmagic.record.naming import LABEL_HOOK  # noqa: E402


_FUNCTION_APPLY = torch.autograd.Function.__dict__["apply"]
_AUTOGRAD_FUNCTIONS = (torch.autograd.backward, torch.autograd.grad)


@pytest.fixture(autouse=True)
def _clean_torch_state():
    """Each test starts from torch's defaults and must leave them as it found them."""
    torch.manual_seed(0)
    yield
    assert torch._C._len_torch_function_stack() == 0, "a torch function mode was left active"
    assert torch.get_default_dtype() == torch.float32
    assert torch.is_grad_enabled()
    assert torch.autograd.Function.__dict__["apply"] is _FUNCTION_APPLY, "Function.apply was left patched"
    assert (torch.autograd.backward, torch.autograd.grad) == _AUTOGRAD_FUNCTIONS, "torch.autograd was left patched"


def pytest_report_header(config):
    return f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()} ({LABEL_HOOK})"


@pytest.fixture(scope="module")
def ipython():
    """A plain IPython shell (it keeps image outputs) with gradmagic loaded, unloaded after the module."""
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "gradmagic")
    yield shell
    shell.run_line_magic("unload_ext", "gradmagic")


@pytest.fixture
def shell(ipython):
    """The shell with a fresh namespace holding torch."""
    ipython.reset(new_session=False)
    ipython.push({"torch": torch})
    return ipython
