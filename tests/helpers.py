"""Run code plainly and under the capture, and compare what each leaves behind."""
import torch

import gradmagic


def plain_namespace(source: str, seed: int = 0) -> dict:
    """The namespace `exec` leaves, starting from {'torch': torch}."""
    torch.manual_seed(seed)
    namespace = {"torch": torch}
    exec(compile(source, "<plain>", "exec"), namespace)
    return namespace


def captured_namespace(source: str, seed: int = 0, *, lean: bool = False):
    """The namespace and Result of gradmagic.run on the same source."""
    torch.manual_seed(seed)
    namespace = {"torch": torch}
    result = gradmagic.run(source, namespace, lean=lean)
    return namespace, result


def assert_same(plain, captured, where="namespace"):
    """Same keys, equal tensors (values, .grad, requires_grad, is_leaf), equal modules, equal plain values."""
    if isinstance(plain, dict):
        assert set(plain) == set(captured), f"{where}: keys differ: {set(plain) ^ set(captured)}"
        for key in plain:
            if key != "__builtins__":
                assert_same(plain[key], captured[key], f"{where}[{key!r}]")
    elif isinstance(plain, torch.Tensor):
        _assert_same_tensor(plain, captured, where)
    elif isinstance(plain, torch.nn.Module):
        assert_same(dict(plain.named_parameters()), dict(captured.named_parameters()), f"{where}.parameters")
    elif isinstance(plain, (list, tuple)):
        assert len(plain) == len(captured), where
        for i, (p, c) in enumerate(zip(plain, captured)):
            assert_same(p, c, f"{where}[{i}]")
    elif callable(plain) or type(plain).__module__.startswith("torch") or hasattr(plain, "__dict__"):
        assert type(plain) is type(captured), where
    else:
        assert plain == captured, where


def _assert_same_tensor(p: torch.Tensor, c: torch.Tensor, where: str) -> None:
    assert type(p) is type(c), where
    assert torch.equal(p.detach(), c.detach()), f"{where}: values differ"
    assert p.requires_grad == c.requires_grad, f"{where}: requires_grad"
    assert p.is_leaf == c.is_leaf, f"{where}: is_leaf"
    assert p.is_inference() == c.is_inference(), f"{where}: is_inference"
    if not p.is_inference():  # inference tensors keep no version counter
        assert (p._version, p.stride()) == (c._version, c.stride()), f"{where}: version or strides"
    pg, cg = _grad(p), _grad(c)
    assert (pg is None) == (cg is None), f"{where}: .grad is None in one run only"
    if pg is not None:
        assert torch.equal(pg, cg), f"{where}: .grad differs"
        assert (pg._version, pg.stride()) == (cg._version, cg.stride()), f"{where}: .grad version or strides"


def _grad(t: torch.Tensor):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # .grad of a non-leaf warns, in both runs alike
        return t.grad


def nodes_of_kind(view, kind: str) -> dict:
    """Node -> attributes of the nodes of one kind, in view order."""
    return {n: d for n, d in view.nodes(data=True) if d["kind"] == kind}


def labels_of(view, kind: str = "tensor") -> list:
    """Labels of the nodes of one kind, in view order."""
    return [d["label"] for d in nodes_of_kind(view, kind).values()]


def reached(node: dict):
    """The gradient that reached a tensor node in the last backward pass that reached it (its `.grad` may be None)."""
    passes = node["pass_grads"]
    return passes[max(passes)] if passes else None
