"""What an explanation of a gradient holds (chain-rule terms, paths through named variables) and how it reads:
plain-text lines, IPython's pretty text and HTML."""
from __future__ import annotations

import html
from dataclasses import dataclass, field

from .. import text
from .values import close, is_real

__all__ = ["Explanation", "Path", "Term", "gradient_text"]


@dataclass
class Term:
    """One chain-rule term: d root/d child · ∂child/∂name, as the run's flows give it."""

    child: str
    node: str
    contribution: object  # number or nested list
    upstream: object  # d root/d child, the child's gradient in the pass
    local: float | None  # ∂child/∂name (scalars, where d root/d child ≠ 0)


@dataclass
class Path:
    """One path from the tensor to the root through named variables, and its share of the gradient."""

    names: list
    nodes: list
    contribution: object  # number or nested list
    factors: list | None = None  # ∂next/∂this at each step, for scalar paths

    @property
    def magnitude(self) -> float:
        """|contribution|, or its norm for a tensor."""
        return text.norm(self.contribution)


@dataclass
class Explanation:
    """Why `name` got its gradient: the chain-rule terms and the paths that sum to it."""

    name: str
    root: str
    node: str
    pass_index: int
    gradient: object  # what autograd computed in that pass
    terms: list = field(default_factory=list)
    paths: list = field(default_factory=list)  # the largest `max_paths` paths, largest first
    rest_count: int = 0  # how many smaller paths were left out of `paths`
    rest: object = None  # their contributions together
    total: object = None  # the sum over all paths
    method: str = ""  # how the path contributions were computed
    notes: list = field(default_factory=list)

    def lines(self) -> list:
        """The explanation as plain-text lines."""
        out = [f"{self._d(self.name)} = {gradient_text(self.gradient)} "
               f"(autograd, backward pass {self.pass_index + 1} from {self.root})"]
        if self.paths:
            out.append(f"= the sum over {len(self.paths) + self.rest_count} path(s) through named variables "
                       f"({self.method}):")
            width = max(len(" → ".join(p.names)) for p in self.paths)
            out.extend(f"  {' → '.join(p.names):<{width}}  {_path_formula(p)}" for p in self.paths)
            if self.rest_count:
                out.append(f"  … {self.rest_count} more path(s) together: {gradient_text(self.rest)}")
            agrees = "✓ matches autograd" if close(self.total, self.gradient) else "✗ differs from autograd"
            out.append(f"  {'total':<{width}}  = {gradient_text(self.total)}  {agrees}")
        if self.terms:
            symbols, numbers = self._chain_rule()
            out += [f"chain rule over the named variables {self.name} feeds:",
                    f"  {self._d(self.name)} = {symbols}", f"  {' ' * len(self._d(self.name))} = {numbers}"]
        return out + [f"note: {n}" for n in self.notes]

    def _d(self, wrt: str) -> str:
        """`dz/dx`: the derivative of the root with respect to `wrt`."""
        return f"d{self.root}/d{wrt}"

    def _chain_rule(self) -> tuple:
        """(`dz/dy·∂y/∂x + dz/db·∂b/∂x`, `430·40 + (-5.17e-08)·30`)."""
        return (" + ".join(f"{self._d(t.child)}·∂{t.child}/∂{self.name}" for t in self.terms),
                " + ".join(_term_text(t) for t in self.terms))

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        esc = html.escape
        rows = [(" → ".join(p.names), _path_formula(p)) for p in self.paths]
        rows += [(f"… {self.rest_count} more", f"= {gradient_text(self.rest)}")] if self.rest_count else []
        rows += [("total", f"= {gradient_text(self.total)}")] if self.paths else []
        table = "".join(f"<tr><td>{esc(a)}</td><td>{esc(b)}</td></tr>" for a, b in rows)
        chain = "<p>chain rule: {} = {} = {}</p>".format(esc(self._d(self.name)), *map(esc, self._chain_rule())) \
            if self.terms else ""
        notes = "".join(f"<p><i>note: {esc(n)}</i></p>" for n in self.notes)
        return f"<div class='gradmagic-explain'><p><b>{esc(self.lines()[0])}</b></p><table>{table}</table>" \
               f"{chain}{notes}</div>"


def gradient_text(value) -> str:
    """A gradient for an explanation: numbers to 6 digits, a list with its norm, stats, `—` for none."""
    if not is_real(value):
        return text.value_text(value, None)
    if isinstance(value, list):
        shown = text.value_text([float(f"{v:.6g}") for v in text.flatten(value)], None)
        return f"{shown} {text.norm_mark(text.norm(value))}"
    if isinstance(value, dict):
        return text.stats_text(value)
    return "—" if value is None else text.number(float(f"{value:.6g}"))


def _path_formula(path: Path) -> str:
    """`∂z/∂y·∂y/∂x = 430·40 = 17200`, or the contribution alone for tensors."""
    if not path.factors:
        return f"= {gradient_text(path.contribution)}"
    if len(path.factors) == 1:
        return f"∂{path.names[1]}/∂{path.names[0]} = {gradient_text(path.contribution)}"
    names = path.names
    parts = [f"∂{b}/∂{a}" for a, b in zip(names, names[1:])][::-1]
    numbers = [_factor(f) for f in path.factors][::-1]
    return f"{'·'.join(parts)} = {' · '.join(numbers)} = {gradient_text(path.contribution)}"


def _term_text(term: Term) -> str:
    """`430·40`: upstream gradient times local derivative, or the term's contribution alone."""
    if term.local is not None:
        return f"{_factor(term.upstream)}·{_factor(term.local)}"
    return f"{gradient_text(term.contribution)}"


def _factor(value: float) -> str:
    """A number inside a product: negative ones in parentheses."""
    return f"({gradient_text(value)})" if value < 0 else gradient_text(value)
