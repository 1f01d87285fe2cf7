#!/usr/bin/env bash
# Everything that needs a GPU, in one call, on a machine whose python3 already has a CUDA torch and CuPy
# (the lent GPU machines do; nothing is installed): the CUDA tests (kernels against the torch path, moments,
# dispatch), the sampler tests on that machine, the notebooks' `#| cuda` cells when nbdev's wheels were carried in .whl/
# (tools/gpu_wheels.sh), then the GPU benchmarks: the CuPy kernels, and eager against compiled steps on an MLP energy.
#   usage: bash tools/gpu_check.sh [OUT_DIR]    (default benchmarks/results; logs and JSON are written there)
set -uo pipefail
out=${1:-benchmarks/results}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
# fastcore is a runtime requirement (@patch) and nbdev is needed for the notebooks: install the carried wheels first
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
python3 -c "import fastcore" 2>/dev/null || { echo "fastcore is missing: run tools/gpu_wheels.sh here and carry .whl"; exit 2; }
python3 - <<'PY' | tee "$out/gpu_env.txt"
import datetime, torch
print('date', datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'device', torch.cuda.get_device_name() if torch.cuda.is_available() else None)
try:
    import cupy; print('cupy', cupy.__version__)
except Exception as e: print('cupy missing:', e)
from torchebm_nb.cuda import kernels_available; print('kernels_available', kernels_available('cuda'))
PY
python3 -m pytest -q -p no:cacheprovider -m cuda tests/cuda 2>&1 | tee "$out/gpu_tests.log"
tests_rc=${PIPESTATUS[0]}
# the rest of tests/cuda (emulator, compile checks) and the sampler tests, on this machine's torch
python3 -m pytest -q -p no:cacheprovider -m "not cuda" tests/cuda tests/samplers 2>&1 | tee -a "$out/gpu_tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || tests_rc=1
if python3 -c "import nbdev" 2>/dev/null; then   # nbdev and friends, carried (tools/gpu_wheels.sh): the `#| cuda` cells too
  NBDEV_TEST_FLAGS=cuda python3 -m pytest -q -p no:cacheprovider tests/test_notebooks.py -k "60_cuda or 20_samplers" 2>&1 \
    | tee -a "$out/gpu_tests.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || tests_rc=1
fi
python3 benchmarks/bench_cuda.py --repeats 7 --out "$out/gpu_kernels.json"
# issue 19: eager against compiled per-step time of the MLP energy at 256 and 4,096 chains (cold Inductor cache)
python3 benchmarks/bench_compiled.py --device cuda --chains 256,4096 --cases langevin,hmc --repeats 7 \
  --note "lent GPU machine, $(date -u +%F)" --out "$out/gpu_compiled.json" 2>&1 | tee "$out/gpu_compiled.log"
exit $tests_rc
