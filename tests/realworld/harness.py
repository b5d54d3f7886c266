"""Child entry point of the real-world suite: run one program plainly or under gradmagic, pickle what it left.

    python -m tests.realworld.harness MODE PROGRAM.py OUT.pickle      (MODE: plain | full | lean)

With REALWORLD_DEVICE set (e.g. `cuda`), every mode runs the program with that default device: plain inside
`with torch.device(...)`, captured through gradmagic.run(device=...) (tests/realworld/sweep.py uses it on a GPU),
and with torch's deterministic algorithms (warn only) unless REALWORLD_DETERMINISTIC=0: a GPU's atomic adds
(convolution and loss backward) differ in the last bits from one plain run to the next.

The pickle holds plain Python only (no tensors), a dict with:
  fingerprint  {path: description} of the final namespace, torch's global state, stdout and the exception;
               compared bitwise between the plain run and a captured one by test_realworld.py
  checks       the contract mismatches found with the live tensors (full and lean only; [] is a pass)
  labels       the labels the contract was checked on
  notes        result.graph.graph["notes"] (full and lean), for programs marked unsupported
  seconds      how long the program itself ran
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import json
import math
import os
import pickle
import re
import resource
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

MODES = ("plain", "full", "lean")
SMALL = 64  # the contract's exact-value limit (gradmagic.record.summary.SMALL_NUMEL)
MAX_DEPTH = 4  # how deep the fingerprint follows containers and objects
MAX_ITEMS = 200  # how many items of one container it describes
MAX_CONTAINER_LABELS = 64  # how many items of one top-level list/dict the contract is checked on
MAX_EXPLAINED = 16  # how many leaves the explain() check runs on
EXPORTS = (".png", ".svg", ".pdf", ".graphml", ".json", ".dot")
#: explain()'s note when a path runs through a tensor too large to have its value kept (a documented limit).
NOT_RECORDED = "gradmagic keeps the values of tensors with at most"
#: Compare .grad._version too? On: autograd's engine steals the gradient buffer it accumulated in place for .grad
#: (micrograd_sanity: x.grad._version 3) unless something else holds a reference to it, as a capture's recorded
#: flow does (version 1, and a different stride for a (1, n) weight's .grad). Holding a copy instead keeps the
#: plain behaviour; set False to look past this one difference.
GRAD_VERSION = True
PLAIN_TYPES = (bool, int, float, complex, str, bytes, type(None))
ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")  # `<MulBackward0 object at 0x7f...>` differs between processes


# ---- running the program ------------------------------------------------------------------------------------

def main(argv: list) -> int:
    """Run PROGRAM in MODE and write the OUT pickle; the exit status is 0 unless the harness itself broke."""
    mode, program, out = argv
    if mode not in MODES:
        raise SystemExit(f"MODE must be one of {MODES}, not {mode!r}")
    import matplotlib

    matplotlib.use("Agg")
    deterministic = bool(os.environ.get("REALWORLD_DEVICE")) and os.environ.get("REALWORLD_DETERMINISTIC") != "0"
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when CUDA starts
    import torch

    torch.set_num_threads(1)  # the same in every mode; three children share two CI cores
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if mode != "plain":
        import gradmagic  # noqa: F401 - imported before the clock starts
    source = Path(program).read_text()
    namespace = {"__name__": "__main__"}
    started = time.perf_counter()
    stdout, error, result = run_program(mode, source, program, namespace)
    report = {"mode": mode, "program": program, "seconds": time.perf_counter() - started,
              "fingerprint": fingerprint(namespace, stdout, error), "checks": [], "labels": [], "notes": None}
    if mode != "plain":
        started = time.perf_counter()
        report.update(contract_report(result, namespace, full=mode == "full"))
        report["check_seconds"] = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report["cpu_seconds"] = usage.ru_utime + usage.ru_stime  # the whole child, imports included
    with open(out, "wb") as f:
        pickle.dump(report, f)
    return 0


def run_program(mode: str, source: str, filename: str, namespace: dict) -> tuple:
    """(stdout text, (type name, message) or None, Result or None) of one run of the source."""
    buffer, error, result = io.StringIO(), None, None
    device = os.environ.get("REALWORLD_DEVICE") or None
    with contextlib.redirect_stdout(buffer):
        try:
            if mode == "plain":
                import torch

                with torch.device(device) if device else contextlib.nullcontext():
                    exec(compile(source, filename, "exec"), namespace)
            else:
                import gradmagic

                result = gradmagic.run(source, namespace, lean=mode == "lean", device=device)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - the program's own exception (also SystemExit) is data
            error = (type(exc).__name__, str(exc))
            if mode != "plain":
                import gradmagic

                result = gradmagic.last()
    return buffer.getvalue(), error, result


# ---- the fingerprint ----------------------------------------------------------------------------------------

class Fingerprint:
    """Walks a namespace into {path: description}, numbering tensor objects and storages in the order seen."""

    def __init__(self):
        self.entries: dict = {}
        self.objects: dict = {}  # id(tensor) -> index (shared objects)
        self.storages: dict = {}  # storage data_ptr -> index (shared memory)
        self.keep: list = []  # keeps walked objects alive so their ids stay unique

    def walk(self, path: str, value, depth: int = 0) -> None:
        """Describe `value` under `path`, following containers, modules, optimizers and instances."""
        import torch

        if isinstance(value, torch.Tensor):
            self.entries[path] = self.tensor(value)
        elif isinstance(value, PLAIN_TYPES) or _plain_tuple(value) or _torch_constant(value):
            self.entries[path] = ("value", without_addresses(repr(value)))
        elif isinstance(value, torch.Generator):
            self.entries[path] = ("generator", hashlib.sha256(bytes(value.get_state().tolist())).hexdigest())
        elif depth >= MAX_DEPTH:
            self.entries[path] = ("deep", type(value).__qualname__)
        elif isinstance(value, torch.nn.Module):
            self.module(path, value)
        elif isinstance(value, torch.optim.Optimizer):
            self.optimizer(path, value, depth)
        elif isinstance(value, (list, tuple, dict)):
            self.container(path, value, depth)
        else:
            self.other(path, value, depth)

    def tensor(self, t) -> dict:
        """Everything a user can observe about one tensor, its value and .grad as digests."""
        self.keep.append(t)
        d = {"object": self.objects.setdefault(id(t), len(self.objects))}
        d.update(meta_of(t))
        d["storage"] = _guarded(lambda: self.storage_index(t))
        d["value"] = tensor_bytes(t)
        grad = read_grad(t)
        d["grad"] = None if grad is None else self.grad(grad)
        return d

    def grad(self, g) -> dict:
        """A .grad like a tensor, but without its _version (see GRAD_VERSION)."""
        d = {**meta_of(g), "value": tensor_bytes(g)}
        if not GRAD_VERSION:
            d.pop("version", None)
        return d

    def storage_index(self, t) -> int:
        """The index of t's storage among the storages seen so far."""
        return self.storages.setdefault(t.untyped_storage().data_ptr(), len(self.storages))

    def module(self, path: str, module) -> None:
        """Parameters and buffers by dotted path, the training flag and the hook counts of every submodule."""
        for name, p in module.named_parameters(remove_duplicate=False):
            self.entries[f"{path}.{name}"] = self.tensor(p)
        for name, b in module.named_buffers(remove_duplicate=False):
            self.entries[f"{path}.{name}"] = self.tensor(b)
        for name, sub in module.named_modules(remove_duplicate=False):
            where = f"{path}.{name}" if name else path
            self.entries[f"{where}:module"] = (type(sub).__qualname__, sub.training, *module_hook_counts(sub))

    def optimizer(self, path: str, opt, depth: int) -> None:
        """Hyperparameters of each param group and the state tensors of each parameter (by position)."""
        index = {}
        for g, group in enumerate(opt.param_groups):
            for key, value in group.items():
                if key == "params":
                    self.entries[f"{path}.param_groups[{g}].params"] = ("count", len(value))
                    index.update((id(p), len(index)) for p in value)
                else:
                    self.walk(f"{path}.param_groups[{g}].{key}", value, depth + 1)
        for p, state in opt.state.items():
            where = f"{path}.state[{index.get(id(p), '?')}]"
            for key, value in state.items():
                self.walk(f"{where}.{key}", value, depth + 1)

    def container(self, path: str, value, depth: int) -> None:
        """Lists, tuples and dicts: their length and their first MAX_ITEMS items."""
        self.entries[f"{path}:len"] = (type(value).__qualname__, len(value))
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for i, (key, item) in enumerate(items):
            if i >= MAX_ITEMS:
                break
            self.walk(f"{path}[{key!r}]", item, depth + 1)

    def other(self, path: str, value, depth: int) -> None:
        """Anything else by type; numpy arrays by value; instances of the program's own classes by attribute."""
        kind = type(value)
        self.entries[path] = ("object", kind.__module__, kind.__qualname__)
        if kind.__module__ == "numpy" and hasattr(value, "tobytes"):
            self.entries[path] += (str(getattr(value, "dtype", "")), getattr(value, "shape", ()),
                                   hashlib.sha256(value.tobytes()).hexdigest())
        elif kind.__module__ == "__main__" and not isinstance(value, type) and hasattr(value, "__dict__"):
            for key, item in list(vars(value).items())[:MAX_ITEMS]:
                self.walk(f"{path}.{key}", item, depth + 1)


def fingerprint(namespace: dict, stdout: str, error) -> dict:
    """{path: description} of the namespace (dunders left out), torch's global state, stdout and the exception."""
    walker = Fingerprint()
    walker.entries["<exception>"] = None if error is None else tuple(map(without_addresses, error))
    walker.entries.update(torch_state())
    for name in sorted(k for k in namespace if not (k.startswith("__") and k.endswith("__"))):
        walker.walk(name, namespace[name])
    walker.entries["<stdout>"] = without_addresses(stdout)
    return walker.entries


def without_addresses(text: str) -> str:
    """The text with memory addresses (object reprs) replaced by 0x…, the same in every process."""
    return ADDRESS.sub("0x…", text)


def meta_of(t) -> dict:
    """tensor_meta(t), or {"meta": marker} when reading it raised."""
    meta = _guarded(lambda: tensor_meta(t))
    return meta if isinstance(meta, dict) else {"meta": meta}


def tensor_meta(t) -> dict:
    """dtype, shape, device, layout, autograd attributes, version and hook counts of a tensor."""
    return {"type": type(t).__qualname__, "dtype": str(t.dtype), "shape": tuple(t.shape), "device": str(t.device),
            "layout": str(t.layout), "stride": _guarded(t.stride), "offset": _guarded(t.storage_offset),
            "requires_grad": t.requires_grad, "is_leaf": t.is_leaf, "retains_grad": t.retains_grad,
            "grad_fn": None if t.grad_fn is None else type(t.grad_fn).__name__, "version": t._version,
            "hooks": _count(t._backward_hooks), "post_accumulate_hooks": _count(t._post_accumulate_grad_hooks)}


def tensor_bytes(t):
    """sha256 of the tensor's value bytes, with the first values for the failure message; a marker if unreadable."""
    import torch

    try:
        if t.device.type == "meta":
            return "<meta: no value>"
        x = t.detach()
        if x.layout != torch.strided:
            x = x.to_dense()
        x = x.resolve_conj().resolve_neg().cpu().contiguous()
        if x.is_quantized:
            x = x.int_repr()
        if x.is_complex():
            x = torch.view_as_real(x)
        flat = x.reshape(-1)
        raw = ctypes.string_at(flat.data_ptr(), flat.numel() * flat.element_size()) if flat.numel() else b""
        return (hashlib.sha256(raw).hexdigest()[:32], repr(flat[:4].tolist()))
    except Exception as exc:  # noqa: BLE001 - a tensor that cannot be read is described, not fatal
        return f"<unreadable: {type(exc).__name__}: {exc}>"[:200]


def read_grad(t):
    """t.grad, without the warning a non-leaf's .grad gives."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return t.grad
        except Exception:  # noqa: BLE001
            return None


def module_hook_counts(module) -> tuple:
    """How many forward-pre, forward, backward and full-backward hooks one module holds."""
    return tuple(_count(getattr(module, name, None)) for name in
                 ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks",
                  "_state_dict_hooks", "_load_state_dict_pre_hooks"))


def torch_state() -> dict:
    """torch's process-wide state a capture could leave changed."""
    import torch
    from torch.nn.modules import module as nn_module

    def qualified(f) -> str:
        return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', repr(f))}"

    state = {
        "<torch.default_dtype>": str(torch.get_default_dtype()),
        "<torch.default_device>": _guarded(lambda: str(torch.get_default_device())),
        "<torch.grad_enabled>": torch.is_grad_enabled(),
        "<torch.inference_mode>": torch.is_inference_mode_enabled(),
        "<torch.anomaly>": torch.is_anomaly_enabled(),
        "<torch.function_modes>": torch._C._len_torch_function_stack(),
        "<torch.rng_state>": hashlib.sha256(bytes(torch.random.get_rng_state().tolist())).hexdigest(),
        "<torch.functions>": tuple(qualified(f) for f in (
            torch.autograd.Function.__dict__["apply"], torch.autograd.backward, torch.autograd.grad,
            torch.Tensor.backward, torch.Tensor.__add__)),
    }
    for name in ("_global_forward_pre_hooks", "_global_forward_hooks", "_global_backward_pre_hooks",
                 "_global_backward_hooks", "_global_module_registration_hooks",
                 "_global_parameter_registration_hooks", "_global_buffer_registration_hooks"):
        state[f"<torch.nn.{name}>"] = _count(getattr(nn_module, name, None))
    return state


def _count(hooks) -> int:
    return 0 if hooks is None else len(hooks)


def _torch_constant(value) -> bool:
    import torch

    return isinstance(value, (torch.dtype, torch.device, torch.layout, torch.memory_format))


def _plain_tuple(value) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, PLAIN_TYPES) for v in value)


def _guarded(make):
    """make(), or a marker naming the exception it raised."""
    try:
        return make()
    except Exception as exc:  # noqa: BLE001
        return f"<raised {type(exc).__name__}: {exc}>"[:200]


# ---- the contract -------------------------------------------------------------------------------------------

def contract_report(result, namespace: dict, *, full: bool) -> dict:
    """The contract checks on a Result: tensors described as they are at the end, explain(), picture and exports."""
    failures, labels, notes = [], [], None
    if result is None:
        return {"checks": ["gradmagic.run returned no result and gradmagic.last() is None"], "labels": [],
                "notes": None}
    try:
        graph = result.graph
        notes = list(graph.graph.get("notes", []))
    except Exception:  # noqa: BLE001 - gradmagic's own failure is the finding
        return {"checks": [f"result.graph raised:\n{traceback.format_exc()}"], "labels": [], "notes": None}
    labelled = contract_labels(namespace)
    labels = [label for label, _ in labelled]
    for label, t in labelled:
        failures += _attempt(f"{label}: checking", lambda: check_tensor(result, label, t))
    if full:
        failures += _attempt("explain checks", lambda: check_explanations(result, graph, labelled))
    failures += _attempt("picture and exports", lambda: check_exports(result, EXPORTS))
    return {"checks": failures, "labels": labels, "notes": notes}


def contract_labels(namespace: dict) -> list:
    """[(label, tensor)]: top-level tensors, module parameters and buffers, items of top-level lists and dicts."""
    import torch

    out = []
    for name, value in namespace.items():
        if name.startswith("_"):
            continue
        if isinstance(value, torch.Tensor):
            out.append((name, value))
        elif isinstance(value, torch.nn.Module):
            out += [(f"{name}.{p}", t) for p, t in value.named_parameters()]
            out += [(f"{name}.{b}", t) for b, t in value.named_buffers()]
        elif isinstance(value, (list, tuple, dict)):
            out += _item_labels(name, value)
    return out


def _item_labels(name: str, value) -> list:
    """`xs[0]`, `d['k']` for the items of a non-empty container that holds tensors only."""
    import torch

    items = list(value.items() if isinstance(value, dict) else enumerate(value))
    if not items or not all(isinstance(v, torch.Tensor) for _, v in items):
        return []
    return [(f"{name}[{key!r}]", t) for key, t in items[:MAX_CONTAINER_LABELS]]


def check_tensor(result, label: str, t) -> list:
    """Mismatches between result.tensor(label) and the live tensor `t` (shape ... value, grad)."""
    try:
        info = result.tensor(label)
    except KeyError as exc:
        return [f"{label}: result.tensor({label!r}) raised KeyError: {exc}"[:400]]
    expected = {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."), "device": str(t.device),
                "requires_grad": t.requires_grad, "is_leaf": t.is_leaf}
    out = [mismatch(label, key, want, info.get(key, "<missing>"))
           for key, want in expected.items() if info.get(key, "<missing>") != want]
    out += _attempt(f"{label}: value", lambda: check_value(label, t, info))
    out += _attempt(f"{label}: grad", lambda: check_grad(label, t, info))
    return out


def check_value(label: str, t, info: dict) -> list:
    """Small tensors: `value` == t.tolist(); large: `stats` numel, min and max."""
    if t.device.type == "meta":
        return []
    x = dense(t)
    if x.numel() <= SMALL:
        want = x.tolist()
        return [] if same_values(info.get("value"), want) else [mismatch(label, "value", want, info.get("value"))]
    stats = info.get("stats")
    if not isinstance(stats, dict):
        return [mismatch(label, "stats", f"a dict with numel={x.numel()}", stats)]
    lo, hi = minmax(x)
    out = [] if stats.get("numel") == x.numel() else [mismatch(label, "stats.numel", x.numel(), stats.get("numel"))]
    out += [mismatch(label, f"stats.{key}", want, stats.get(key))
            for key, want in (("min", lo), ("max", hi)) if not close(stats.get(key), want)]
    return out


def check_grad(label: str, t, info: dict) -> list:
    """`grad` == t.grad.tolist() (small) or `grad_stats.norm` close to its norm (large); both None without .grad."""
    g = read_grad(t)
    grad, stats = info.get("grad", "<missing>"), info.get("grad_stats", "<missing>")
    if g is None:
        return [mismatch(label, key, None, got) for key, got in (("grad", grad), ("grad_stats", stats))
                if got is not None]
    g = dense(g)
    if g.numel() <= SMALL:
        want = g.tolist()
        return [] if same_values(grad, want) else [mismatch(label, "grad", want, grad)]
    norm = g.double().norm().item() if not g.is_complex() else g.abs().double().norm().item()
    got = stats.get("norm") if isinstance(stats, dict) else stats
    return [] if close(got, norm, rel=1e-4) else [mismatch(label, "grad_stats.norm", norm, got)]


def check_explanations(result, graph, labelled: list) -> list:
    """explain(leaf).total == leaf.grad for small leaves when exactly one backward pass ran and .grad was empty."""
    if graph.graph.get("passes") != 1:
        return []
    out, done = [], 0
    for label, t in labelled:
        g = read_grad(t)
        if done >= MAX_EXPLAINED or not (t.is_leaf and t.requires_grad and g is not None) or t.numel() > SMALL:
            continue
        if not bool(dense(g).isfinite().all()) or _grad_before(result, label) is not None:
            continue
        done += 1
        out += _attempt(f"{label}: explain", lambda label=label, g=g: check_explanation(result, label, g))
    return out


def check_explanation(result, label: str, g) -> list:
    """One leaf: result.explain(label) does not raise and its total equals t.grad (rtol 1e-4 on the norm)."""
    import torch

    ex = result.explain(label)
    want = dense(g).double()
    if not isinstance(ex.gradient, (int, float, list)) or not _close_to(ex.gradient, want):
        if graph_coarse(result) and any("detail budget" in note for note in ex.notes):
            return []  # .grad came from a backward pass past the budget (counted, not recorded): the note says so
        return [mismatch(label, "explain().gradient", want.tolist(), ex.gradient) + f" (notes: {ex.notes})"]
    if ex.total is None and any(NOT_RECORDED in note for note in ex.notes):
        return []  # documented (README "Explain"): paths through tensors of over 64 elements cannot be re-run
    if not isinstance(ex.total, (int, float, list)):
        return [mismatch(label, "explain().total", want.tolist(), ex.total) + f" (notes: {ex.notes})"]
    if not _close_to(ex.total, want):
        return [mismatch(label, "explain().total", want.tolist(), ex.total)]
    return []


def graph_coarse(result) -> bool:
    """Whether the capture counted ops (or backward calls) past its budget instead of recording them."""
    return bool(result.graph.graph.get("coarse"))


def _close_to(numbers, want) -> bool:
    """Whether plain numbers equal the tensor `want` in shape and to rtol 1e-4 on the norm."""
    import torch

    got = torch.tensor(numbers, dtype=torch.float64)
    return got.shape == want.shape and bool((got - want).norm() <= 1e-4 * max(got.norm(), want.norm()) + 1e-12)


def _grad_before(result, label: str):
    try:
        return result.tensor(label).get("grad_before")
    except KeyError:
        return None


def check_exports(result, suffixes=EXPORTS) -> list:
    """The figure draws, and the exports write non-empty files; .json is strict JSON."""
    out = _attempt("result.figure", lambda: [] if result.figure is not None else ["result.figure is None"])
    with tempfile.TemporaryDirectory() as folder:
        for suffix in suffixes:
            out += _attempt(f"save {suffix}", lambda suffix=suffix: check_export(result, Path(folder) / f"g{suffix}"))
    return out


def check_export(result, path: Path) -> list:
    """One export: a non-empty file; strict JSON for .json."""
    result.save(path)
    if not path.is_file() or path.stat().st_size == 0:
        return [f"save {path.suffix}: wrote no bytes"]
    if path.suffix == ".json":
        try:
            json.loads(path.read_text(), parse_constant=_reject_constant)
        except ValueError as exc:
            return [f"save .json: not strict JSON: {exc}"]
    return []


def _reject_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


# ---- comparisons --------------------------------------------------------------------------------------------

def dense(t):
    """A detached, strided, CPU copy of t (sparse made dense, conjugation resolved)."""
    import torch

    x = t.detach()
    if x.layout != torch.strided:
        x = x.to_dense()
    return x.resolve_conj().resolve_neg().cpu()


def minmax(x) -> tuple:
    """(min, max) of x as floats (|x| for complex, NaN if any element is NaN)."""
    import torch

    y = x.abs() if x.is_complex() else x
    y = y.double() if not y.is_floating_point() or y.dtype != torch.float64 else y
    return y.min().item(), y.max().item()


def same_values(got, want) -> bool:
    """Exact equality of nested lists of numbers, NaN equal to NaN, types of numbers not distinguished."""
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(same_values, got, want))
    if isinstance(want, complex) or isinstance(got, complex):
        return isinstance(got, (int, float, complex)) and same_values(complex(got).real, complex(want).real) \
            and same_values(complex(got).imag, complex(want).imag)
    if isinstance(want, float) and math.isnan(want):
        return isinstance(got, float) and math.isnan(got)
    return isinstance(got, (bool, int, float)) and got == want


def close(got, want, rel: float = 1e-5) -> bool:
    """got ≈ want (relative, with a tiny absolute floor; NaN equals NaN, inf must match)."""
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        return False
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    return math.isclose(got, want, rel_tol=rel, abs_tol=1e-6)


def mismatch(label: str, attribute: str, expected, got) -> str:
    """`x: grad: expected [1.0], got None` with long values shortened, and where two nested lists first differ."""
    where = first_difference(got, expected) if isinstance(expected, list) and isinstance(got, list) else None
    at = f" (first difference at {where[0]}: expected {where[2]!r}, got {where[1]!r})" if where and where[0] else ""
    return f"{label}: {attribute}: expected {_short(expected)}, got {_short(got)}{at}"


def first_difference(got, want, index: tuple = ()):
    """(index, got's, want's) at the first place two nested lists differ (NaN equal to NaN), else None."""
    if isinstance(want, list) and isinstance(got, list) and len(got) == len(want):
        return next((d for i, (g, w) in enumerate(zip(got, want)) if (d := first_difference(g, w, index + (i,)))),
                    None)
    return None if same_values(got, want) else (list(index), got, want)


def _short(value, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _attempt(what: str, check) -> list:
    """check()'s mismatch list, or one failure with the traceback if the check (gradmagic) raised."""
    try:
        return check()
    except Exception:  # noqa: BLE001 - one failure must not hide the others
        return [f"{what} raised:\n{traceback.format_exc(limit=-6)}"]


# ---- comparing two fingerprints (used by the parent) ----------------------------------------------------------

def differences(plain: dict, other: dict, limit: int = 8) -> list:
    """The first `limit` paths whose descriptions differ, each with the differing fields of both runs."""
    out = []
    for path in list(dict.fromkeys([*plain, *other])):
        a, b = plain.get(path, "<absent>"), other.get(path, "<absent>")
        if a != b:
            out.append(f"{path}: " + "; ".join(f"{k.rstrip('.') or 'value'}: plain {_short(x, 300)} vs {_short(y, 300)}"
                                              for k, x, y in _differing_fields(a, b)))
        if len(out) >= limit:
            break
    return out


def _differing_fields(a, b, prefix: str = "") -> list:
    """[(field, a's, b's)] for the fields of two (nested) description dicts that differ."""
    if isinstance(a, str) and isinstance(b, str) and "\n" in a + b:
        return [_first_differing_line(prefix, a, b)]
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [(prefix, a, b)]
    keys = dict.fromkeys([*a, *b])
    return [f for k in keys if a.get(k, "<absent>") != b.get(k, "<absent>")
            for f in _differing_fields(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{prefix}{k}.")]


def _first_differing_line(prefix: str, a: str, b: str) -> tuple:
    """(`line N`, a's line, b's line) for the first line where two texts differ."""
    x, y = a.splitlines(), b.splitlines()
    n = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
    return (f"{prefix}line {n + 1}", x[n] if n < len(x) else "<end>", y[n] if n < len(y) else "<end>")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
