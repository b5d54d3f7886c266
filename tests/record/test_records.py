import pytest
import torch

from gradmagic.record.records import Records


def test_records_start_empty_and_column_aligned():
    r = Records()
    columns = ("objs", "versions", "shapes", "dtypes", "devices", "requires_grad", "grad_fns", "output_nrs",
               "producers", "depths")
    assert all(getattr(r, c) == [] for c in columns)
    assert r.snapshots == {} and r.passes == [] and r.notes == []


def test_keep_first_cuts_ops_records_passes_and_gradients_after_the_cut_and_counts_the_ops():
    from gradmagic.record.recorder import Recorder

    recorder = Recorder("<cell>")
    with recorder:
        x = torch.tensor([1.0, 2.0], requires_grad=True)
        y = x * 3
        y.sum().backward()
        z = (y + 1).exp()
    r = recorder.records
    assert [f.__name__ for f in r.funcs] == ["tensor", "mul", "sum", "add", "exp"] and len(r.passes) == 1
    dropped = r.keep_first(2)
    assert dropped == {(None, "sum"): 1, (None, "add"): 1, (None, "exp"): 1}  # no line: the ops ran in this file
    assert [f.__name__ for f in r.funcs] == ["tensor", "mul"] and r.records_at == [1, 2]
    assert len(r.objs) == len(r.versions) == len(r.depths) == 2 and r.objs[1] is not z
    assert r.passes == [] and r.grads == [] and r.flows == []  # the pass's root (the sum) was cut


def test_keep_first_mends_columns_an_interrupt_left_uneven():
    r = Records()
    r.add(torch.ones(1), 0, (1,), torch.float32, torch.device("cpu"), False, None, 0, None, 0)
    for column in r._op_columns():
        column.append(None)
    r.funcs.append(torch.add)  # interrupted after the first column of a second op
    r.objs.append(torch.ones(1))  # ... and after the first column of its output
    r.records_at[0] = 1
    assert r.keep_first(5) == {} and len(r.funcs) == len(r.lines) == 1 and len(r.objs) == len(r.depths) == 1


def test_ops_within_counts_the_first_ops_whose_records_fit_a_number_of_graph_nodes():
    records = Records()
    records.records_at = [1, 3, 4, 4, 6]  # op 1 made two records, op 3 none
    assert [records.ops_within(n) for n in (0, 1, 2, 4, 5, 6, 7, 10, 11, 99)] == [0, 0, 1, 1, 2, 2, 3, 4, 5, 5]


def _loop_records(keys: list) -> Records:
    """Records whose ops have these (line, function name) keys."""
    records = Records()
    records.lines, records.funcs = [line for line, _ in keys], [name for _, name in keys]
    return records


BEFORE = [(1, "tensor"), (2, "zeros")]
BODY = [(4, "matmul"), (4, "add"), (5, "tanh")]


@pytest.mark.parametrize("extra", range(len(BODY)))
def test_whole_iterations_cuts_back_to_the_end_of_the_last_whole_iteration(extra):
    records = _loop_records(BEFORE + BODY * 5 + BODY[:extra])
    assert records.whole_iterations(len(records.lines)) == len(BEFORE) + 5 * len(BODY)


def test_whole_iterations_starts_iterations_as_the_first_one_started_when_it_differs_from_the_rest():
    first = [(4, "linear"), (5, "mse_loss"), (7, "zeros_like"), (7, "add_")]  # an optimizer's first step makes state
    later = [(4, "linear"), (5, "mse_loss"), (7, "add_")]
    records = _loop_records(BEFORE + first + later * 4 + later[:2])
    assert records.whole_iterations(len(records.lines)) == len(BEFORE) + len(first) + 4 * len(later)


@pytest.mark.parametrize("keys", [BEFORE + BODY, BEFORE + [(3, "add"), (4, "mul"), (5, "sum")], [], BODY * 3],
                         ids=["one iteration", "no loop", "no ops", "whole iterations"])
def test_whole_iterations_keeps_ops_that_end_in_no_loop_or_at_an_iteration_end(keys):
    assert _loop_records(keys).whole_iterations(len(keys)) == len(keys)
