import pytest

from gradmagic.record.budget import Budget, as_budget, coarse_note
from collections import Counter


def test_a_budget_reads_from_text_ints_and_dicts_with_units():
    assert as_budget(None) == Budget(ops=9_000, memory=500 * 2 ** 20, seconds=3.0)
    assert as_budget("ops=20000,memory=1GB,seconds=5") == Budget(ops=20_000, memory=2 ** 30, seconds=5.0)
    assert as_budget("memory=200") == Budget(memory=200 * 2 ** 20)  # plain memory numbers are MB
    assert as_budget({"mem": "512KB"}).memory == 512 * 2 ** 10


def test_ops_alone_or_seconds_alone_sets_the_other_to_match():
    assert as_budget(30_000) == as_budget("ops=30000") == Budget(ops=30_000, seconds=75_000 / 3_500)
    assert as_budget("seconds=10") == Budget(ops=35_000, seconds=10.0)  # 3,500 nodes a second, 2.5 nodes an op
    assert as_budget("ops=100") == Budget(ops=100, seconds=3.0)  # never less time than the default
    assert as_budget("seconds=2").detail_nodes(0.25) == 875 and Budget().detail_nodes() == 10_500


@pytest.mark.parametrize("spec, message", [
    ("nope=1", "budget 'nope': not a budget; give ops, memory or seconds"),
    ("ops", "budget 'ops': give name=value, e.g. ops=20000, memory=1GB or seconds=5"),
    ("ops=1GB", "budget ops='1GB': give a number (memory may end in KB, MB or GB)"),
    ("memory=12XB", "budget memory='12XB': give a number (memory may end in KB, MB or GB)"),
    (-5, "budget ops=-5: give a number >= 0"),
    (1.5, "budget 1.5: give a Budget, an int (ops in detail) or text like 'ops=20000,memory=1GB'"),
])
def test_a_bad_budget_says_what_is_allowed(spec, message):
    with pytest.raises(ValueError) as raised:
        as_budget(spec)
    assert str(raised.value) == message


def test_the_coarse_note_counts_what_was_not_recorded_busiest_line_first():
    counts = Counter({(4, "mul"): 900, (4, "add"): 900, (6, "sum"): 1, (None, "exp"): 5})
    assert coarse_note(3_000, counts, "ops") == (
        "Recorded the first 3,000 ops in detail; the remaining 1,806 ops as counts per line (the budget was spent: "
        "line 4: mul ×900, add ×900; line 6: sum ×1). %%autograd --budget ops=N (gradmagic.run(..., budget=...)) "
        "records more.")
    assert coarse_note(10, Counter(), None) is None


def test_the_meter_reads_the_process_memory():
    from gradmagic.record.budget import _rss

    before = _rss()
    block = b"x" * (64 * 2 ** 20)  # written, so its pages are resident
    assert _rss() - before > 32 * 2 ** 20
    del block
