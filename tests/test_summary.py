import math

import pytest
import torch

from gradmagic.summary import STAT_FIELDS, stats_dicts, stats_vector


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))])
def test_stats_match_torch_reductions(device):
    x = (torch.randn(1000, dtype=torch.float64) * 3 + 1).to(device)
    stats = stats_dicts([stats_vector(x)], [x.numel()])[0]
    assert set(STAT_FIELDS) < set(stats)
    assert stats["min"] == x.min().item() and stats["max"] == x.max().item()
    assert stats["mean"] == pytest.approx(x.mean().item(), rel=1e-9)
    assert stats["std"] == pytest.approx(x.std().item(), rel=1e-9)
    assert stats["norm"] == pytest.approx(x.norm().item(), rel=1e-12)
    assert stats["nan"] == stats["inf"] == 0


def test_stats_count_nan_and_inf_and_handle_integers():
    x = torch.ones(100)
    x[3], x[5], x[7] = float("nan"), float("inf"), -float("inf")
    nan_inf = stats_dicts([stats_vector(x)], [100])[0]
    assert (nan_inf["nan"], nan_inf["inf"], nan_inf["numel"]) == (1, 2, 100) and math.isnan(nan_inf["mean"])
    ints = stats_dicts([stats_vector(torch.arange(100))], [100])[0]
    assert (ints["min"], ints["max"], ints["mean"]) == (0.0, 99.0, 49.5)
