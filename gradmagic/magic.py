"""%%autograd: run a cell through IPython under the capture and show its graph, values and gradients."""
from __future__ import annotations

import ast
import sys

import torch
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from .record.budget import Budget, as_budget
from .record.naming import label_assignments, remove_label_hook
from .view.layout import RANKDIRS
from .options import apply_view_options, backward_problem, check_parsed_options, explain_problem, out_problem
from .runner import gc_frozen, recording
from .tracebacks import user_traceback

__all__ = ["AutogradMagics", "load", "unload"]


@magics_class
class AutogradMagics(Magics):
    """The %%autograd cell magic."""

    @magic_arguments()
    @argument("-o", "--out", default="_autograd", metavar="NAME",
              help="variable that receives the result (graph, figure, table, save()); default _autograd")
    @argument("-d", "--device", help="default device inside the cell: cpu, cuda, cuda:N")
    @argument("--dtype", help="default floating dtype inside the cell: float32, float64, float16, bfloat16")
    @argument("-s", "--save", action="append", default=[], metavar="PATH",
              help="write the result to PATH by suffix (.png .svg .pdf .graphml .json .dot); repeatable")
    @argument("--format", choices=["png", "svg"], default="png", help="inline image format (default png)")
    @argument("--no-graph", action="store_true", help="do not draw the graph")
    @argument("--no-table", action="store_true", help="do not show the table of named tensors")
    @argument("--all", action="store_true",
              help="draw every node: anonymous intermediates unfolded, no module boxes or loop blocks")
    @argument("--depth", type=int, metavar="N",
              help="group ops into one box per nn.Module at this depth (0: top-level modules); default automatic")
    @argument("--max-nodes", type=int, metavar="N",
              help="collapse loops, then modules, until the picture has at most N nodes (default 100)")
    @argument("--explain", action="append", default=[], metavar="NAME",
              help="show d root/d NAME as the chain rule and the sum over paths through named variables; repeatable")
    @argument("--check", action="store_true",
              help="check the leaves' gradients against finite differences (float64 re-run of the recorded ops)")
    @argument("--backward", metavar="NAME",
              help="call NAME.backward() after the cell when the cell ran no backward pass itself")
    @argument("--lean", action="store_true",
              help="record only torch's autograd graph: ~1.1-1.6x plain speed for long loops and training steps; "
                   "values of named tensors only, no constants or flows, no --explain/--check")
    @argument("--budget", metavar="SPEC",
              help="what the capture may spend: ops recorded in detail, memory, seconds after the cell, e.g. "
                   "ops=20000,memory=1GB,seconds=5 (default ops=9000,memory=500MB,seconds=3); past it ops are counted")
    @argument("--rankdir", choices=RANKDIRS, default=None,
              help="graph direction: inputs on top (TB) or left (LR); default: top to bottom, or left to right "
                   "when only that fits the notebook's width")
    @cell_magic
    def autograd(self, line: str, cell: str):
        """Run the cell exactly as Python would, recording every tensor op; show the autograd graph with
        the cell's variable names, values and gradients, and a table of the named tensors."""
        __tracebackhide__ = True
        options = parse_argstring(self.autograd, line)
        device, dtype = _checked(options)
        namespace = self.shell.user_ns
        try:
            code, last_expr, bound, source = self._compile(cell)
        except SyntaxError as error:
            return self._show_syntax_error(error)
        _raise_if(out_problem(options.out, bound, namespace))
        with gc_frozen():  # one full collection after the cell and its picture, not one after each
            return self._run_and_publish(options, code, last_expr, bound, source, device, dtype)

    def _run_and_publish(self, options, code, last_expr, bound: dict, source: str, device, dtype):
        """The cell under the capture, then its result shown and saved; the cell's value, as a plain cell's."""
        __tracebackhide__ = True
        namespace, value, session = self.shell.user_ns, None, None
        try:
            with recording(namespace, source, code.co_filename, device=device, dtype=dtype,
                           lean=options.lean, budget=_checked_budget(options.budget)) as session:
                exec(code, namespace)
                if last_expr is not None:
                    value = eval(last_expr, namespace)
                if options.backward and not session.recorder.passes:
                    _raise_if(backward_problem(options.backward, namespace))
                    namespace[options.backward].backward()
        except (Exception, KeyboardInterrupt) as error:
            self._show_as_plain_cell(error, code.co_filename)
            raise
        finally:
            if session is not None and session.result is not None and not session.interrupted:
                _interruptible(self._publish, session.result, options, bound)
        return value

    def _compile(self, cell: str):
        """(code, last expression, names assigned, source) of the cell, its lines numbered from the %%autograd line."""
        number, header = self._cell_position(cell)
        body = self.shell.transform_cell(cell)
        shown = "".join(f"# {text}" if text.strip() else text for text in header.splitlines(True))
        filename = self.shell.compile.cache(shown + body, number, raw_code=header + cell if header else None)
        padding = "\n" * header.count("\n")  # the %%autograd line is not Python: tracebacks show it as a comment
        tree = self.shell.transform_ast(self.shell.compile.ast_parse(padding + body, filename=filename))
        bound = _assigned_names(tree)
        tree = label_assignments(tree, padding + body)
        last_expr = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last_expr = compile(ast.Expression(tree.body.pop().value), filename, "eval")
        flags = self.shell.compile.flags
        return compile(tree, filename, "exec", flags=flags, dont_inherit=True), last_expr, bound, padding + cell

    def _cell_position(self, cell: str) -> tuple:
        """(the cell's execution number, its text above the body): what IPython names the cell in tracebacks."""
        # IPython 9 increments execution_count before the cell runs; the ExecutionResult run_cell gives the
        # displayhook while the cell runs keeps the cell's own number (IPython >= 7).
        running = getattr(self.shell.displayhook, "exec_result", None)
        if running is None or running.execution_count is None:
            return self.shell.execution_count, ""
        raw = running.info.raw_cell if running.info is not None else ""
        lines = raw.splitlines(True)
        first = next((i for i, text in enumerate(lines) if text.strip()), len(lines))
        if first < len(lines) and lines[first].lstrip().startswith("%%") and \
                "".join(lines[first + 1:]).strip() == cell.strip():
            return running.execution_count, "".join(lines[:first + 1])
        return running.execution_count, ""  # run through run_cell_magic() from another cell: its lines are its own

    def _show_syntax_error(self, error: SyntaxError) -> None:
        """Show a SyntaxError in the cell as IPython shows one in a plain cell, and mark the cell as failed."""
        running = getattr(self.shell.displayhook, "exec_result", None)
        if running is None:
            raise error
        self.shell.showsyntaxerror()
        running.error_in_exec = error

    def _show_as_plain_cell(self, error: BaseException, filename: str) -> None:
        """Have IPython show an exception the cell raised as a plain cell's: from the cell on, no gradmagic frames."""
        tb = user_traceback(error.__traceback__, filename)
        if tb is None or hasattr(error, "_render_traceback_"):
            return  # not raised by the cell's code, or the exception renders itself
        formatter = self.shell.InteractiveTB
        try:  # IPython's showtraceback() asks an exception for _render_traceback_() before formatting it itself
            error._render_traceback_ = lambda: formatter.structured_traceback(type(error), error, tb, tb_offset=0)
        except AttributeError:
            pass

    def _publish(self, result, options, bound: dict) -> None:
        """Bind and display the result, save the files asked for, then say what gradmagic could not do.

        Problems found only now (an unknown --explain name, a --save that fails) come after the cell's own
        exception as notes on it, one line each; after a clean run, a failed save is a line on stderr and
        the others end the cell in one UsageError."""
        result.image_format = options.format
        result.show_graph, result.show_table = not options.no_graph, not options.no_table
        apply_view_options(result, options)
        self.shell.user_ns[options.out] = result
        stopped = result.error is not None and not isinstance(result.error, UsageError)  # the cell's own
        refused, unsaved = _late_problems(options, bound, self.shell.user_ns, stopped=stopped), []
        if result.empty:
            if result.error is None and result.trace.failure is None:  # else the error or the failure says why
                print("gradmagic: the cell touched no tensors, so there is nothing to draw.")
        else:
            refused += self._add_explanations(result, options, skip=refused)
            display(result)
            unsaved = [problem for problem in (_save(result, path) for path in options.save) if problem]
        if result.error is not None:
            for problem in refused + unsaved:
                _add_note(result.error, f"gradmagic: {problem}")
            return
        for problem in unsaved:
            print(f"gradmagic: {problem}", file=sys.stderr)
        _raise_if("\n".join(refused))

    @staticmethod
    def _add_explanations(result, options, *, skip: list) -> list:
        """Attach --explain and --check output to the result; the reasons any could not be made."""
        problems = []
        for name in options.explain:
            if any(problem.startswith(f"--explain {name}:") for problem in skip):
                continue
            try:
                result.explained.append(result.explain(name))
            except ValueError as error:
                problems.append(f"--explain {name}: {error}")
        if options.check:
            try:
                result.gradient_check = result.check()
            except ValueError as error:
                problems.append(f"--check: {error}")
        return problems


def _checked_budget(spec: str | None) -> Budget:
    """--budget SPEC as a Budget, or a UsageError saying what is wrong."""
    try:
        return as_budget(spec)
    except ValueError as error:
        raise UsageError(f"--{error}") from None


def _interruptible(publish, *args) -> None:
    """Publish the result; a Ctrl-C while it draws ends it with one line, not a traceback of gradmagic's."""
    try:
        publish(*args)
    except KeyboardInterrupt:
        print("gradmagic: drawing interrupted; the result so far is in gradmagic.last()", file=sys.stderr)


def _save(result, path: str) -> str | None:
    """Write one --save file; why it could not be written, in one line, or None."""
    try:
        result.save(path)
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else \
            str(error).removeprefix(f"{path!r}: ")  # check_save_path's messages start with the path
        return f"could not save {path}: {reason}"
    return None


def _late_problems(options, bound: dict, namespace: dict, *, stopped: bool) -> list:
    """What only the run could tell about --explain and --backward names: one line each."""
    problems = [explain_problem(name, bound, namespace) for name in options.explain]
    if stopped and options.backward:  # the cell stopped before --backward's call: say what it would have met
        problems.append(backward_problem(options.backward, namespace))
    return [p for p in problems if p]


def _add_note(error: BaseException, line: str) -> None:
    """Add one line under the exception's own message in its traceback (PEP 678 notes)."""
    if isinstance(error, UsageError):  # IPython shows a UsageError's message alone: the line goes to stderr
        print(line, file=sys.stderr)
        return
    try:
        error.add_note(line)
    except (AttributeError, TypeError):  # an exception type that refuses attributes
        print(line, file=sys.stderr)


def _raise_if(problem: str | None) -> None:
    if problem:
        raise UsageError(problem)


def _checked(options):
    """Validate every option before the cell runs, so a bad one changes nothing."""
    if not options.out.isidentifier():
        raise UsageError(f"--out {options.out}: not a Python name")
    try:
        device, dtype = check_parsed_options(options, save=options.save)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if options.backward and not options.backward.isidentifier():
        raise UsageError(f"--backward {options.backward}: give the name of a scalar tensor, e.g. --backward loss")
    return device, dtype


def _assigned_names(tree: ast.Module) -> dict:
    """{name: may it hold a tensor} for each name the cell binds (tuple, for, with and := targets too), in order."""
    literal = {id(t) for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
               for t in n.targets}
    stores = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
    names: dict = {}  # False: the cell only ever assigns it a literal (`n = 3`)
    for node in sorted(stores, key=lambda n: (n.lineno, n.col_offset)):
        names[node.id] = names.get(node.id, False) or id(node) not in literal
    return names


def load(ipython) -> None:
    """Register %%autograd and make `torch` available in the user namespace; load the drawing code now, so that
    the first cell's picture does not wait for matplotlib (0.6 s)."""
    from .view import render  # noqa: F401
    ipython.register_magics(AutogradMagics)
    if "torch" not in ipython.user_ns:
        ipython.push({"torch": torch})


def unload(ipython) -> None:
    """Remove %%autograd and the label builtin instrumented code calls: torch and builtins as before %load_ext
    (every hook and patch of a capture is gone when its cell ends)."""
    ipython.magics_manager.magics["cell"].pop("autograd", None)
    ipython.magics_manager.registry.pop("AutogradMagics", None)
    remove_label_hook()
