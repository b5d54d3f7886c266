"""Issue 11's hand mutants: apply each to gradmagic/, run the test files that should kill it, restore the file.

Usage: python scripts/mutation/hand_mutants.py [--whole] [MUTANT_ID ...]   (run from the repository root; never in CI)
Prints one line per mutant, `killed` or `SURVIVED`, and exits 1 if any survived.
"""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# (id, file, original text, mutated text, pytest arguments selecting the tests that must kill it).
# --whole runs the whole test file instead (without the issue 11 tests, each of these survived it).
MUTANTS = [
    ("multi-output-full", "gradmagic/record/hooks.py",
     "grad = grad_outputs[output_nr] if output_nr < len(grad_outputs) else None",
     "grad = grad_outputs[0] if output_nr < len(grad_outputs) else None", ["tests/record/test_recorder.py", "-k", "multi_output"]),
    ("multi-output-record", "gradmagic/record/book.py",
     "r.output_nrs.append(0 if grad_fn is None or grad_fn is UNREAD else t.output_nr)",
     "r.output_nrs.append(0)", ["tests/record/test_recorder.py", "-k", "multi_output"]),
    ("multi-output-lean", "gradmagic/record/lean.py",
     "grad = grad_outputs[output_nr]\n", "grad = grad_outputs[0]\n", ["tests/record/test_lean.py", "-k", "multi_output"]),
    ("gradcheck-tolerance", "gradmagic/analysis/gradcheck.py",
     "tolerance: float = 1e-5,", "tolerance: float = 1e-2,", ["tests/analysis/test_gradcheck.py", "-k", "thousand"]),
    ("gradcheck-mean-error", "gradmagic/analysis/gradcheck.py",
     "return ((a - b).abs() / scale).max().item()", "return ((a - b).abs() / scale).mean().item()",
     ["tests/analysis/test_gradcheck.py", "-k", "largest"]),
    ("gradcheck-no-upcast-downcasts", "gradmagic/analysis/replay.py",
     "        return torch.Tensor.double\n", "        return thing\n", ["tests/analysis/test_gradcheck.py", "-k", "casts"]),
    ("gradcheck-no-upcast-dtypes", "gradmagic/analysis/replay.py",
     "        return torch.float64\n    if any", "        return thing\n    if any", ["tests/analysis/test_gradcheck.py", "-k", "casts"]),
    ("graphml-edges-bare", "gradmagic/view/export.py",
     "out.add_edges_from((u, v, str(k), flat(d))", "out.add_edges_from((u, v, str(k), {})",
     ["tests/view/test_export.py", "-k", "every_node_and_edge"]),
    ("json-nested-dicts-as-text", "gradmagic/view/export.py",
     "        return {str(k): _plain(v) for k, v in value.items()}",
     "        return json.dumps({str(k): _plain(v) for k, v in value.items()})", ["tests/view/test_export.py", "-k", "nested"]),
    ("magic-ignores-all", "gradmagic/options.py",
     "result.show_all, result.rankdir = options.all, options.rankdir",
     "result.show_all, result.rankdir = False, options.rankdir", ["tests/test_magic.py", "-k", "view_options"]),
    ("magic-ignores-depth", "gradmagic/options.py",
     "result.depth, result.max_nodes = options.depth, options.max_nodes",
     "result.depth, result.max_nodes = None, options.max_nodes", ["tests/test_magic.py", "-k", "view_options"]),
    ("magic-ignores-max-nodes", "gradmagic/options.py",
     "result.depth, result.max_nodes = options.depth, options.max_nodes",
     "result.depth, result.max_nodes = options.depth, None", ["tests/test_magic.py", "-k", "view_options"]),
    ("magic-backward-twice", "gradmagic/magic.py",
     "if options.backward and not session.recorder.passes:", "if options.backward:",
     ["tests/test_magic.py", "-k", "does_not_run_again"]),
    ("nan-origin-last", "gradmagic/analysis/nans.py",
     "    for op in ops_in_order(graph):\n        inputs, outputs",
     "    for op in reversed(ops_in_order(graph)):\n        inputs, outputs", ["tests/analysis/test_diagnose.py", "-k", "nan_origin"]),
    ("nan-origin-text-order", "gradmagic/analysis/reading.py",
     "key=lambda n: int(n[2:]))", "key=lambda n: n)", ["tests/analysis/test_diagnose.py", "-k", "nan_origin"]),
    ("leaf-after-backward-flagged", "gradmagic/analysis/cuts.py",
     "and int(node[1:]) <= last_root and", "and", ["tests/analysis/test_diagnose.py", "-k", "after_backward"]),
]


def run_mutant(file: str, old: str, new: str, tests: list) -> bool:
    """True when the tests fail with the mutation applied (the mutant is killed); the file is always restored."""
    path = ROOT / file
    original = path.read_text()
    if original.count(old) != 1:
        raise SystemExit(f"{file}: the text to mutate occurs {original.count(old)} times, not once: {old!r}")
    path.write_text(original.replace(old, new))
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                              cwd=ROOT, capture_output=True, text=True)
    finally:
        path.write_text(original)
    return done.returncode != 0


def main(chosen: list) -> int:
    survived, whole = 0, "--whole" in chosen
    chosen = [c for c in chosen if c != "--whole"]
    for name, file, old, new, tests in MUTANTS:
        if chosen and name not in chosen:
            continue
        tests = tests[:1] if whole else tests
        killed = run_mutant(file, old, new, tests)
        survived += not killed
        print(f"{'killed' if killed else 'SURVIVED':9} {name:32} {' '.join(tests)}", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a `timeout` still restores the mutated file
    sys.exit(main(sys.argv[1:]))
