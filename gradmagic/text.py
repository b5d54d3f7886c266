"""Short human text for values, gradients and tensor nodes, shared by the picture and the table."""
from __future__ import annotations

import math

__all__ = ["CAPTION_WIDTH", "FULL_NUMEL", "number", "value_text", "grad_text", "has_grad", "shown_grad", "pass_grad",
           "tensor_caption", "shape_text", "flatten", "stats_text", "list_stats", "value_summary", "grad_summary",
           "norm", "norm_mark", "norm_text", "shorten_middle", "error_summary"]

#: The longest line of a tensor's caption: the picture draws every line whole.
CAPTION_WIDTH = 44
#: Tensors of at most this many elements show every number of their value and gradient.
FULL_NUMEL = 4
#: A caption longer than this goes on two lines: a narrower box reads as well and leaves the picture narrower.
ONE_LINE_WIDTH = 32
#: A name is shortened in the middle, never below this many characters, to make room on its line.
_MIN_NAME = 16


def number(x) -> str:
    """A number in at most ~7 characters: 10.0, 17200, -5.17e-08, 0.333; a complex one as 1+2j."""
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, complex):
        sign = "-" if x.imag < 0 or (x.imag == 0 and math.copysign(1.0, x.imag) < 0) else "+"
        return f"{_part(x.real)}{sign}{_part(abs(x.imag))}j"
    if isinstance(x, int):
        return str(x) if abs(x) < 10**7 else f"{x:.3g}"
    if x != x or x in (float("inf"), float("-inf")):
        return str(x)
    if x == int(x) and abs(x) < 10**7:
        return f"{x:.1f}" if abs(x) < 1000 else str(int(x))
    return f"{x:.3g}"


def _part(x: float) -> str:
    """One part of a complex number: 1, -2.5, 1.72e+04."""
    return str(int(x)) if x == x and abs(x) < 10**7 and x == int(x) else f"{x:.3g}"


def stats_text(stats: dict, *, count: bool = True, integers: bool = False) -> str:
    """`n=32768 ∈[-3.1, 3.4] μ=0.002 σ=1` (lovely-tensors style; `count=False` leaves out n=, `integers` writes the
    range as integers), with nan/inf counts when present. Complex tensors' stats are those of |z|; sparse, nested,
    meta tensors say what they are."""
    head = " ".join(_kind_part(stats))
    if "min" not in stats:
        return head or (f"n={stats.get('numel', '?')}" if count else "")
    bound = (lambda x: number(int(x))) if integers and math.isfinite(stats["min"]) else number
    text = (f"{'n=' + str(stats['numel']) + ' ' if count else ''}{'|z|' if stats.get('of') == 'abs' else ''}"
            f"∈[{bound(stats['min'])}, {bound(stats['max'])}] μ={number(stats['mean'])} σ={number(stats['std'])}")
    return " ".join([*_kind_part(stats), text, *_bad_counts(stats)])


def value_text(value, stats, *, limit: int = 6) -> str:
    """The exact value when small (first `limit` numbers of a list), else the stats line; '' when unknown."""
    if isinstance(value, dict):  # a gradient or flow kept as stats
        value, stats = None, value
    if stats is not None and "min" not in stats and "norm" in stats:  # a flow kept as its norm only
        return norm_mark(stats["norm"])
    if stats is not None:
        return stats_text(stats)
    if value is None:
        return ""
    if isinstance(value, list):
        flat = flatten(value)
        shown = ", ".join(number(v) for v in flat[:limit])
        return f"[{shown}{', …' if len(flat) > limit else ''}]"
    return number(value)


def grad_text(node: dict, *, limit: int = 6) -> str:
    """The tensor's `.grad` as text, else `∂ …` for the gradient that reached it in the last pass, '' for none."""
    value, stats = shown_grad(node)
    text = value_text(value, stats, limit=limit)
    return text if not text or has_grad(node) else f"∂ {text}"


def has_grad(node: dict) -> bool:
    """Whether a tensor node's `.grad` is set (as a value, or as stats for a large tensor)."""
    return node.get("grad") is not None or node.get("grad_stats") is not None


def shown_grad(node: dict) -> tuple:
    """(value, stats) of the gradient to show: `.grad` when set, else the last backward pass's gradient."""
    if has_grad(node):
        return node.get("grad"), node.get("grad_stats")
    passes = node.get("pass_grads") or {}
    return pass_grad(node, max(passes)) if passes else (None, None)


def pass_grad(node: dict, pass_index) -> tuple:
    """(value, stats) of the gradient that reached the tensor in one backward pass ((None, None) if none)."""
    grad = (node.get("pass_grads") or {}).get(pass_index)
    return (None, grad) if isinstance(grad, dict) else (grad, None)


def shape_text(shape) -> str:
    """`3×4`, `scalar`; a ragged dimension of a nested tensor (-1) as `*`."""
    return "scalar" if not shape else "×".join("*" if n == -1 else str(n) for n in shape)


def flatten(value) -> list:
    """The numbers of a nested list in order (a number gives itself), without recursion."""
    out, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def norm(value) -> float | None:
    """The 2-norm of a value or gradient: |x| of a number, of a nested list's numbers (|z| of complex ones; nan if
    one is nan, as in torch), a stats dict's "norm"; None when unknown."""
    if isinstance(value, dict):
        value = value.get("norm")
        return float(value) if _is_number(value) and not isinstance(value, complex) else None
    if _is_number(value):
        return abs(value)
    flat = flatten(value) if isinstance(value, list) else [None]
    if not all(map(_is_number, flat)):
        return None
    sizes = [abs(x) for x in flat]
    return math.nan if any(x != x for x in sizes) else math.hypot(*sizes)  # hypot scales: 1e200² would overflow


def norm_mark(size: float) -> str:
    """`‖0.436‖`: a norm as the picture, the tables and the explanations write it."""
    return f"‖{number(size)}‖"


def _is_number(x) -> bool:
    """A real or complex number, not a bool."""
    return isinstance(x, (int, float, complex)) and not isinstance(x, bool)


def _mean(xs: list) -> float:
    """The exact mean of floats, also when their sum overflows (1e308 + 1e308)."""
    if not xs:
        return math.nan
    try:
        return math.fsum(xs) / len(xs)
    except OverflowError:
        return math.fsum(x / len(xs) for x in xs)
    except ValueError:  # both infinities: fsum raises where the mean, as torch's, is nan
        return math.nan


def list_stats(flat: list) -> dict:
    """The stats dict summary.py makes for a tensor, from its numbers (complex ones by |z|, std unbiased)."""
    magnitude = any(isinstance(v, complex) for v in flat)
    xs = [abs(v) if magnitude else float(v) for v in flat]
    nan = sum(x != x for x in xs)
    inf = sum(x in (math.inf, -math.inf) for x in xs)
    mean = _mean(xs)
    spread = math.hypot(*(x - mean for x in xs)) / math.sqrt(len(xs) - 1) if len(xs) > 1 and not nan + inf \
        else math.nan  # hypot scales: squares of 1e200 would overflow
    stats = {"min": math.nan if nan or not xs else min(xs), "max": math.nan if nan or not xs else max(xs),
             "mean": mean, "std": spread, "norm": norm(xs), "nan": nan, "inf": inf,
             "numel": len(xs)}
    return {**stats, "of": "abs"} if magnitude else stats


def _numbers(value, stats) -> tuple:
    """(full, stats): every number as text for a small tensor (`10.0`, `[0.0352, 0.471]`, else None), and its
    stats (given, or computed from the numbers; None when nothing is known)."""
    if isinstance(value, dict):  # a tensor with no plain numbers, summarised (meta, sparse, nested)
        return None, value
    if value is None:
        return None, stats
    if not isinstance(value, list):
        return number(value), stats
    flat = flatten(value)
    full = f"[{', '.join(map(number, flat))}]" if len(flat) <= FULL_NUMEL else None
    return full, stats if stats is not None else list_stats(flat)


def value_summary(value, stats, *, dtype: str | None = None, width: int = 36) -> str:
    """A tensor's value in one line: every number up to FULL_NUMEL of them, else `∈[-3.1, 3.4] μ=0.002 σ=1`
    (`∈[0, 99]` for an integer or bool `dtype`), without the range when that is longer than `width`."""
    full, stats = _numbers(value, stats)
    if full or stats is None:
        return full or ""
    text = stats_text(stats, count=False, integers=(dtype or "").startswith(("int", "uint", "bool")))
    return text if len(text) <= width else " ".join(_moment_parts(stats)) or text


def norm_text(value, stats) -> str:
    """Every number up to FULL_NUMEL of them, else the norm (`‖0.436‖`); '' when unknown."""
    full, stats = _numbers(value, stats)
    if full or stats is None:
        return full or ""
    return norm_mark(stats["norm"]) if "norm" in stats else stats_text(stats, count=False)


def grad_summary(node: dict, *, width: int = 28) -> str:
    """The gradient in one line: every number up to FULL_NUMEL, else `‖0.43‖ μ=-0.01 σ=0.08` (μ, σ if they fit
    in `width`); `∂ …` for the gradient of the last pass when `.grad` is not set."""
    mark = "" if has_grad(node) else "∂ "
    full, stats = _numbers(*shown_grad(node))
    if full or stats is None:
        return mark + full if full else ""
    if "norm" not in stats:
        return mark + (stats.get("kind") or "?")
    size = mark + norm_mark(stats["norm"])
    moments = f"{size} μ={number(stats['mean'])} σ={number(stats['std'])}" if "mean" in stats else size
    return moments if len(moments) <= width else size


def tensor_caption(node: dict, *, width: int = CAPTION_WIDTH) -> str:
    """`x = 10.0 ∇ 17200`, or `name [8×4]` above `μ=-0.02 σ=0.31 ∇‖0.43‖`: lines of at most `width` characters
    joined by newlines (one line only up to ONE_LINE_WIDTH); a long name is shortened in the middle, the gradient
    is never cut.

    ∇ marks `.grad`; ∂ the gradient that reached the tensor in the last backward pass when `.grad` is not set."""
    name = node.get("label") or ""
    full, stats = _numbers(node.get("value"), node.get("stats"))
    grad = _caption_grad(node)
    layouts = _small_layouts(full, grad) if full else []
    shape = f"[{shape_text(node.get('shape'))}]" if node.get("shape") else "scalar"
    layouts += _summary_layouts(shape, stats, grad)
    for shorten in (False, True):  # the whole name on two lines beats a shortened one on one
        for first, rest in layouts if not shorten else [layout for layout in layouts if layout[1]]:
            lines = _fit_name(name, first, rest, width if rest else min(width, ONE_LINE_WIDTH), shorten)
            if lines:
                return "\n".join(line for line in lines if line)
    shape, rest = layouts[-1]  # a shape too long to share a line with the name
    return "\n".join(shorten_middle(line, width) for line in (name, shape, *rest) if line)


def _caption_grad(node: dict) -> str:
    """`∇ 17200`, `∇ [0.1, 0.2]`, `∇‖0.43‖` (`∂` for a pass's gradient), '' when there is none."""
    mark = "∇" if has_grad(node) else "∂"
    full, stats = _numbers(*shown_grad(node))
    if full:
        return f"{mark} {full}"
    if stats is None:
        return ""
    return mark + norm_mark(stats["norm"]) if "norm" in stats else f"{mark} {stats.get('kind') or '?'}"


def _small_layouts(full: str, grad: str) -> list:
    """(after the name on line 1, later lines) for a tensor shown number by number, best first."""
    both = f"{full} {grad}".strip()
    return [(f"= {both}", []), (f"= {full}", [grad]), ("", [both]), ("", [full, grad])]


def _summary_layouts(shape: str, stats: dict | None, grad: str) -> list:
    """(after the name on line 1, later lines) for a tensor shown by shape, moments and ‖∇‖, best first."""
    parts = _moment_parts(stats)
    lines = [" ".join(p for p in (*parts[:keep], grad) if p) for keep in range(len(parts), -1, -1)]
    return [(f"{shape} {lines[0]}".strip(), [])] + [(shape, [line]) for line in lines]


def _moment_parts(stats: dict | None) -> list:
    """`sparse nnz=3`, `|z|`, `μ=-0.02`, `σ=0.31`, `2 nan`: the pieces of a summary, the least needed last."""
    if stats is None:
        return []
    head = _kind_part(stats)
    if "mean" not in stats:
        return head
    head += ["|z|"] if stats.get("of") == "abs" else []
    bad = _bad_counts(stats)
    if not math.isfinite(stats["mean"]) and bad:  # μ and σ say nothing more than the count of nan or inf
        return [*head, *bad]
    return [*head, f"μ={number(stats['mean'])}", *bad, f"σ={number(stats['std'])}"]


def _kind_part(stats: dict) -> list:
    """`[sparse nnz=3]`, `[meta]` for a tensor that is not plain numbers, else []."""
    kind = stats.get("kind")
    return [f"{kind} nnz={stats['stored']}" if "stored" in stats else kind] if kind else []


def _bad_counts(stats: dict) -> list:
    """`2 nan`, `1 inf`: how many elements are not finite, when any are."""
    return [f"{stats[k]} {k}" for k in ("nan", "inf") if stats.get(k)]


def _fit_name(name: str, first: str, rest: list, width: int, shorten: bool) -> list | None:
    """The caption's lines with `name` leading line 1, or None when they do not fit in `width`."""
    if any(len(line) > width for line in rest):
        return None
    if not name:  # a tensor folded into an op: its numbers alone
        first = first.removeprefix("= ")
        return [first, *rest] if len(first) <= width else None
    room = width - len(first) - (1 if first else 0)
    if len(name) > room and (not shorten or room < min(_MIN_NAME, len(name))):
        return None
    return [f"{shorten_middle(name, room)} {first}".rstrip(), *rest]


def shorten_middle(text: str, width: int) -> str:
    """`model.encoder…attn.in_proj_weight`: the start and the end of `text` kept, at most `width` characters."""
    if len(text) <= width:
        return text
    head = (width - 1) * 2 // 5
    dots = [i for i, c in enumerate(text[: head + 5]) if c == "." and abs(i - head) <= 4]
    head = min(dots, key=lambda i: abs(i - head)) if dots else head  # end the head at a dot when one is near
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def error_summary(error: BaseException) -> str:
    """`KeyError: 't99'`: an exception's type and the first line of its message, for a one-line note."""
    first = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first}"
