#!/usr/bin/env bash
# Run every test: each notebook (as nbdev_test would) and tests/, under pytest. Sets up .venv with the development
# tools first if needed (bash tools/setup.sh --dev).
# NBDEV_TEST_FLAGS="slow" also runs cells flagged #| slow; pass extra pytest arguments after the script name.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh --dev
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg PYTHONUNBUFFERED=1
. .venv/bin/activate
nbdev_export
python -m pytest tests -q -p no:cacheprovider "$@"
