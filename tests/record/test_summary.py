import math

import pytest
import torch

from gradmagic.record.summary import STAT_FIELDS, _from_real, norm_vector, stats_dicts, stats_vector, to_python

ON_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


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


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int8, torch.int32, torch.int64, torch.uint16,
                                   torch.float16, torch.bfloat16, torch.float8_e4m3fn, torch.complex32,
                                   torch.complex64, torch.complex128])
def test_large_tensors_of_every_dtype_are_summarised(dtype):
    x = torch.arange(100).remainder(7).to(dtype)
    stats = stats_dicts([stats_vector(x)], [100])[0]
    norm = stats_dicts([norm_vector(x)], [100])[0]
    reference = x.to(torch.complex128).abs() if dtype.is_complex else x.to(torch.float64)
    assert (stats["min"], stats["max"]) == (reference.min().item(), reference.max().item())
    assert stats["mean"] == pytest.approx(reference.mean().item(), rel=1e-3)
    assert norm["norm"] == pytest.approx(reference.norm().item(), rel=1e-3)
    assert ("of" in stats) == dtype.is_complex  # complex stats are those of |z|


def test_tensors_without_plain_numbers_are_summarised_by_kind():
    meta = torch.empty(100, device="meta")
    sparse = torch.sparse_coo_tensor(torch.tensor([[0, 99]]), torch.tensor([2.0, -1.0]), (100,))
    nested = torch.nested.nested_tensor([torch.ones(50), torch.zeros(30)])
    assert stats_vector(meta) == {"kind": "meta", "numel": 100}
    assert norm_vector(meta) == {"kind": "meta", "numel": 100}
    s = stats_dicts([stats_vector(sparse)], [100])[0]
    assert (s["kind"], s["stored"], s["min"], s["max"], s["mean"]) == ("sparse", 2, -1.0, 2.0, pytest.approx(0.01))
    assert s["std"] == pytest.approx(sparse.to_dense().std().item())
    n = stats_vector(nested)
    assert (n["kind"], n["numel"], n["mean"]) == ("nested", 80, pytest.approx(50 / 80))
    assert to_python([meta[:3], sparse.coalesce().narrow_copy(0, 0, 3), torch.tensor([1 + 2j])]) == [
        {"kind": "meta", "numel": 3}, [2.0, 0.0, 0.0], [1 + 2j]]


def test_a_complex_chunk_at_an_odd_offset_of_the_host_copy_comes_back_complex():
    # found on CUDA (tests/realworld complex_autograd): a cdouble after an odd number of floats in one host copy
    flat = torch.arange(7, dtype=torch.float64)
    like = torch.zeros(3, dtype=torch.complex128)
    back = _from_real(flat[1:].reshape(3, 2), like)
    assert torch.equal(back, torch.tensor([1 + 2j, 3 + 4j, 5 + 6j], dtype=torch.complex128))


@ON_CUDA
def test_values_of_mixed_dtypes_on_cuda_come_back_as_on_the_cpu():
    tensors = [torch.arange(3.0), torch.randn(3, dtype=torch.complex128), torch.randn(2, dtype=torch.complex64),
               torch.arange(5, dtype=torch.int64), torch.randn(2, 2, dtype=torch.float16)]
    assert to_python([t.cuda() for t in tensors]) == to_python(tensors)
