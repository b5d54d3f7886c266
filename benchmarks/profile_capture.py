"""Where the default %%autograd path spends its time, stage by stage, on one program of capture_overhead.py.

    py-spy record --nonblocking -r 250 -F -f raw -o stacks.txt -- python benchmarks/profile_capture.py --only RNN
    python benchmarks/profile_capture.py --split stacks.txt --seconds S  # % per stage, and of S seconds
    python benchmarks/profile_capture.py --only RNN --cprofile 15    # the top functions by own time (cProfile)

The run timed is capture_overhead's "default+picture" (capture, graph, table, picture as PNG), after one warm-up;
samples outside its `timed_run` (imports, warm-up, the plain run, collections between runs) are left out of the split.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import capture_overhead as bench  # noqa: E402

# the first gradmagic module below the front ends (runner, result) names the stage; the cell's own frame is a stage
STAGES = (
    ("record/hooks.py", "backward hooks"), ("record/optimizer_hooks.py", "backward hooks"),
    ("record/trace.py", "trace.resolve"), ("record/finals.py", "trace.resolve"), ("record/walk.py", "trace.resolve"),
    ("record/", "recording hot path"), ("gradmagic/graph.py", "graph.build_graph"), ("analysis/", "analysis"),
    ("view/render.py", "drawing: artists"), ("view/report.py", "table"), ("view/export.py", "drawing: PNG"),
    ("view/", "view building"),
)
WARM_UP = """
a = torch.tensor(5.0, requires_grad=True)
z = (a * a).sum()
z.backward()
"""
VIEW_BUILDERS = ("collapse.py", "loops.py", "steps.py", "blocks.py", "layout.py", "crossings.py", "placement.py")


def profiled_runs(source: str, namespace, repeats: int, budget) -> list:
    """Seconds of each default+picture run."""
    def timed_run():  # the split counts the samples below this frame only
        with bench.gc_frozen():
            bench.shown(bench.gradmagic.run(source, namespace(), budget=budget))

    return [bench.time_once(timed_run, "cpu") for _ in range(repeats)]


def warm_up() -> None:
    """Imports and fonts, out of the profile."""
    bench.shown(bench.gradmagic.run(WARM_UP, {"torch": bench.torch}))


def stage_of(frames: list) -> str:
    """The stage one sampled stack (root first) was in."""
    if frames and frames[-1].startswith("gc_frozen "):
        return "full collection after the cell"
    files = [frame.rsplit("(", 1)[-1].rstrip(")").rsplit(":", 1)[0] for frame in frames]
    for i, file in enumerate(files):
        if file.startswith("<gradmagic-"):  # the cell: the innermost recorder, hook or autograd engine frame says
            return next((s for s in map(cell_stage, reversed(frames[i + 1:])) if s), "cell: torch's own work")
        stage = stage_of_file(file)
        if stage == "drawing: artists":
            inner = [f for f in files[i + 1:] if "gradmagic/view/" in f]
            return "view building" if any(f.endswith(VIEW_BUILDERS) for f in inner) else stage
        if stage:
            return stage
    return "other (front ends, gc, IPython)"


def cell_stage(frame: str) -> str | None:
    """Inside the cell: the recorder's work, its hooks' work, or torch's own (the autograd engine)."""
    if frame.startswith("_engine_run_backward "):
        return "backward: torch's engine"
    stage = stage_of_file(frame.rsplit("(", 1)[-1])
    return stage if stage in ("backward hooks", "recording hot path") else None


def stage_of_file(file: str) -> str | None:
    if "gradmagic/" not in file:
        return None
    return next((stage for part, stage in STAGES if part in file), None)


def split(stacks: Path) -> Counter:
    """Samples per stage in a py-spy raw file (`root;...;leaf count` a line), only inside profiled_runs."""
    samples: Counter = Counter()
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [frame.strip() for frame in stack.split(";")]
        at = next((i for i, frame in enumerate(frames) if frame.startswith("profiled_runs.<locals>.timed_run ")), None)
        if at is not None:
            samples[stage_of(frames[at + 1:])] += int(count)
    return samples


def print_split(samples: Counter, seconds: float | None) -> None:
    """Each stage's share of the samples, and of `seconds` (the runs' measured time) when given."""
    total = sum(samples.values())
    for stage, n in samples.most_common():
        print(f"{stage:34} {(seconds or 0) * n / total:7.2f} s {100 * n / total:5.1f}%")
    print(f"{'all':34} {seconds or 0:7.2f} s  ({total} samples)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="seed program", help="the program whose name contains this text")
    parser.add_argument("--budget", default=None, help="as capture_overhead.py --budget")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="print the top N functions by own time")
    parser.add_argument("--split", type=Path, help="a py-spy raw file to split by stage (nothing is run)")
    parser.add_argument("--seconds", type=float, help="with --split: the measured seconds of the runs, shared out")
    args = parser.parse_args()
    if args.split:
        return print_split(split(args.split), args.seconds)
    name, (source, namespace, _) = next((n, p) for n, p in bench.setups().items() if args.only.lower() in n.lower())
    plain = bench.measure(source, namespace, 1, kinds=())[0]["plain"]
    warm_up()
    if args.cprofile:
        profiler = cProfile.Profile()
        seconds = profiler.runcall(profiled_runs, source, namespace, args.repeats, args.budget)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.cprofile)
    else:
        seconds = profiled_runs(source, namespace, args.repeats, args.budget)
    print(f"{name}, budget {args.budget or 'default'}: plain {plain:.3f} s; default+picture runs "
          + ", ".join(f"{s:.3f}" for s in seconds) + " s")


if __name__ == "__main__":
    main()
