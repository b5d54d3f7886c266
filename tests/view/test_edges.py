"""Edge widths: log-scaled against the largest flow, unknown flows thin."""
import math

import pytest

from gradmagic.view.edges import flow_widths


def test_widths_are_log_scaled_against_the_largest_flow():
    thin, tiny, mid, top, nan = flow_widths([None, 1.55e-06, 1.0, 8600.0, math.nan])
    assert thin < tiny < mid < top == nan == 3.0
    assert flow_widths([0.0, 8600.0])[0] == thin
    assert mid == pytest.approx(3.0 - 2.1 * math.log10(8600) / 10)
    assert flow_widths([None, None]) == [thin, thin]
