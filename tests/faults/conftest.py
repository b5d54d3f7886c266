"""The failure matrix runs each case in a fresh real kernel: crashes, leaks and messages show as a user sees them."""
import pytest

from kernel import Kernel


@pytest.fixture
def kernel():
    """A fresh ipykernel with gradmagic loaded and torch imported; shut down after the test."""
    k = Kernel()
    yield k
    k.shutdown()
