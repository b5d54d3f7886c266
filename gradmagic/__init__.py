"""gradmagic: see what PyTorch autograd did in a notebook cell."""
from .runner import capture, last, run

__version__ = "0.1.0"

__all__ = ["run", "capture", "last", "load_ipython_extension", "unload_ipython_extension", "__version__"]


def load_ipython_extension(ipython) -> None:
    """`%load_ext gradmagic`: register the %%autograd magic."""
    from .magic import load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    """`%unload_ext gradmagic`: remove the %%autograd magic and the label builtin (torch and builtins as before)."""
    from .magic import unload

    unload(ipython)
