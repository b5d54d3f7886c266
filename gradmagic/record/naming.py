"""Naming stage: rewrite a cell's AST so every assignment labels the tensor it binds."""
from __future__ import annotations

import ast
import builtins
import threading

import torch

__all__ = ["LABEL_HOOK", "label_assignments", "install_label_hook", "remove_label_hook", "item_labels",
           "on_this_thread"]

#: The builtin the instrumented code calls; a no-op whenever no capture is active.
LABEL_HOOK = "__gradmagic_label__"

_STATEMENT_LISTS = ("body", "orelse", "finalbody")


def install_label_hook(hook) -> None:
    """Make `hook(value, (name, line, expr))` callable from any instrumented code, on the installing thread only:
    a worker thread running a function defined in the cell runs it as plain (the capture records one thread)."""
    # A builtin rather than a global: functions defined in a cell keep working
    # in later cells without a new name appearing in the user's namespace.
    setattr(builtins, LABEL_HOOK, on_this_thread(hook))


def remove_label_hook() -> None:
    """Take the label builtin away again (`%unload_ext`): builtins as before the first capture."""
    if hasattr(builtins, LABEL_HOOK):
        delattr(builtins, LABEL_HOOK)


def on_this_thread(hook):
    """`hook`, called only from the thread that made it; from any other thread a no-op returning None (for any
    process-wide hook the capture installs: labels, module hooks; torch's function modes are per thread already)."""
    owner, ident = threading.get_ident(), threading.get_ident

    def hook_on_owner(*args):
        if ident() == owner:
            return hook(*args)
        return None

    return hook_on_owner


def item_labels(value, info) -> list:
    """`[(t0, ("xs[0]", line, expr)), ...]` when an assignment bound a list or tuple of tensors, else []."""
    if not (isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor)):
        return []
    name, line, expr = info
    return [(item, (f"{name}[{i}]", line, expr)) for i, item in enumerate(value)]


def label_assignments(tree: ast.Module, source: str) -> ast.Module:
    """Insert a label call after every assignment to a plain name, at any depth."""
    _Labeller(source).visit(tree)
    return ast.fix_missing_locations(tree)


class _Labeller(ast.NodeTransformer):
    """Adds `__gradmagic_label__(name, (name, line, expr))` after assignments.

    Names bound inside a function or class defined in the cell are scoped by it (`f.y`, `Net.forward.h`), so they
    never pass for the cell's own top-level names; `global` names keep their plain name.
    """

    def __init__(self, source: str):
        self.source = source
        self._scopes: list = []  # (qualified prefix, names declared global there)

    def visit_FunctionDef(self, node):
        declared = {name for n in ast.walk(node) if isinstance(n, ast.Global) for name in n.names}
        return self._scoped(node, declared)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        return self._scoped(node, set())

    def _scoped(self, node, declared: set):
        prefix = f"{self._scopes[-1][0]}{node.name}." if self._scopes else f"{node.name}."
        self._scopes.append((prefix, declared))
        try:
            return self.generic_visit(node)
        finally:
            self._scopes.pop()

    def _scoped_name(self, name: str) -> str:
        if not self._scopes or name in self._scopes[-1][1]:
            return name
        return self._scopes[-1][0] + name

    def generic_visit(self, node):
        super().generic_visit(node)
        for field in _STATEMENT_LISTS:
            statements = getattr(node, field, None)
            if isinstance(statements, list) and statements and isinstance(statements[0], ast.stmt):
                setattr(node, field, self._labelled(statements))
        if isinstance(node, (ast.For, ast.AsyncFor)):
            node.body[:0] = self._labels(node.target, node, self._text(node.iter))
        return node

    def _labelled(self, statements: list) -> list:
        out = []
        for statement in statements:
            out.append(statement)
            out.extend(self._labels_after(statement))
        return out

    def _labels_after(self, statement: ast.stmt) -> list:
        if isinstance(statement, ast.Assign):
            return [self._label_call(name, statement, expr) for target in statement.targets
                    for name, expr in self._target_texts(target, statement.value)]
        if isinstance(statement, ast.AugAssign):
            return self._labels(statement.target, statement, self._text(statement))
        if isinstance(statement, ast.AnnAssign) and statement.value is not None:
            return self._labels(statement.target, statement, self._text(statement.value))
        return []

    def _labels(self, target: ast.expr, at: ast.AST, expr: str) -> list:
        return [self._label_call(name, at, expr) for name in _bound_names(target)]

    def _target_texts(self, target: ast.expr, value: ast.expr) -> list:
        """(name, expression) per bound name: `a, b = f(), g()` gives a `f()` and b `g()`, not both the whole side."""
        if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
                and len(target.elts) == len(value.elts) \
                and not any(isinstance(e, ast.Starred) for e in (*target.elts, *value.elts)):
            return [pair for t, v in zip(target.elts, value.elts) for pair in self._target_texts(t, v)]
        expr = self._text(value)
        return [(name, expr) for name in _bound_names(target)]

    def _label_call(self, name: str, at: ast.AST, expr: str) -> ast.stmt:
        info = ast.Constant(value=(self._scoped_name(name), at.lineno, expr))
        call = ast.Call(
            func=ast.Name(id=LABEL_HOOK, ctx=ast.Load()),
            args=[ast.Name(id=name, ctx=ast.Load()), info],
            keywords=[],
        )
        return ast.copy_location(ast.Expr(value=call), at)

    def _text(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.source, node) or ast.unparse(node)

    def visit_With(self, node):
        node = self.generic_visit(node)
        labels = [
            label
            for item in node.items
            if item.optional_vars is not None
            for label in self._labels(item.optional_vars, node, self._text(item.context_expr))
        ]
        node.body[:0] = labels
        return node

    visit_AsyncWith = visit_With


def _bound_names(target: ast.expr) -> list[str]:
    """The plain names an assignment target binds (`a`, `a, (b, *c)`), in order."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _bound_names(element)]
    if isinstance(target, ast.Starred):
        return _bound_names(target.value)
    return []
