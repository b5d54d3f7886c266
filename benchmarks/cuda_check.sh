#!/usr/bin/env bash
# The checks that need a GPU, as one run on a machine with CUDA (the device tool's machine: see README "Tests"):
#   1. the unit suite with CUDA present, so its CUDA tests run instead of skipping;
#   2. every real-world program with CUDA as the default device: plain, full and lean (tests/realworld/sweep.py);
#   3. benchmarks/capture_overhead.py on CUDA (the MLP, RNN and CNN programs).
# Logs go to $OUT (or /tmp/cuda_check). Python packages missing there travel as wheels in .whl/ (see README).
set -u
OUT=${OUT:-/tmp/cuda_check}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import sys, torch, IPython, networkx, matplotlib; print(sys.version.split()[0], 'torch', torch.__version__,
  'cuda', torch.version.cuda, torch.cuda.is_available(), 'IPython', IPython.__version__, 'networkx',
  networkx.__version__, 'matplotlib', matplotlib.__version__)"; } 2>&1 | tee "$OUT/env.txt"
started=$(date +%s)
( timeout "${UNIT_S:-240}" python3 -m pytest -q -p no:cacheprovider -rs tests --ignore=tests/realworld \
    --ignore=tests/browser --ignore=tests/faults > "$OUT/unit.log" 2>&1; echo "unit suite rc $?" >> "$OUT/unit.log" ) &
REALWORLD_DEVICE=cuda REALWORLD_TIMEOUT_S=200 timeout "${SWEEP_S:-240}" \
    python3 tests/realworld/sweep.py --jobs "${JOBS:-8}" 2>&1 | tee "$OUT/sweep.log"
wait
tail -n 30 "$OUT/unit.log"
echo "unit + sweep: $(( $(date +%s) - started )) s"
# The seed loops are left out: each scalar op a kernel launch, over 150 s on a GPU. BENCH_S=0 skips the benchmark.
if [ "${BENCH_S:-50}" != 0 ]; then
    for program in MLP RNN CNN; do
        timeout "${BENCH_S:-50}" python3 benchmarks/capture_overhead.py --device cuda --repeats 3 --only "$program" 2>&1
    done | tee "$OUT/bench.log"
fi
echo "all: $(( $(date +%s) - started )) s"
