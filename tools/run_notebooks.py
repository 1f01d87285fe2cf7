"""Execute notebooks in place so that their stored outputs (numbers and figures) are current.

    python tools/run_notebooks.py                      # every notebook under nbs/
    python tools/run_notebooks.py nbs/20_samplers      # the notebooks under a folder
    python tools/run_notebooks.py nbs/index.ipynb ...  # given notebooks
    python tools/run_notebooks.py --test-size nbs/90_tutorials   # the tutorials at their test size

Each notebook runs in its own folder with one torch thread and matplotlib's inline backend: MPLBACKEND is removed
from the kernel's environment, because with MPLBACKEND=Agg the figures are drawn but never stored in the notebook.
The tutorials run at full size (TORCHEBM_NB_FULL_SIZE=1, several minutes each): the stored outputs are what readers
of the docs see, and the tutorials' prose describes the full-size run. `--test-size` sets TORCHEBM_NB_FULL_SIZE=0
instead, to check quickly that they run. nbconvert knows no cell flags: cells flagged `slow` run too, and `cuda`
cells skip themselves without a GPU. Follow with `nbdev_clean && nbdev_export && python tools/make_readme.py`.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbconvert.preprocessors import CellExecutionError, ExecutePreprocessor

from make_docs import notebooks   # the same notebook selection as the docs build (this folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent


def _shown(path: Path) -> str:
    try: return str(path.relative_to(ROOT))
    except ValueError: return str(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('paths', nargs='*', help='notebooks or folders (default: nbs/)')
    parser.add_argument('--timeout', type=int, default=1800, help='seconds per cell (default 1800)')
    parser.add_argument('--test-size', action='store_true',
                        help='run the tutorials at their test size (TORCHEBM_NB_FULL_SIZE=0) instead of full size')
    args = parser.parse_args(argv)
    os.environ.pop('MPLBACKEND', None)
    os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = '1'
    os.environ['TORCHEBM_NB_FULL_SIZE'] = '0' if args.test_size else '1'   # read by the tutorials' setup cells
    failed = []
    try: chosen = notebooks(args.paths or None)
    except FileNotFoundError as error: sys.exit(str(error))
    for path in chosen:
        start = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        runner = ExecutePreprocessor(timeout=args.timeout, kernel_name='python3')
        try:
            runner.preprocess(nb, {'metadata': {'path': str(path.parent)}})
        except CellExecutionError as error:
            failed.append(path)
            cell = next((c for c in nb.cells if c.cell_type == 'code' and any(o.get('output_type') == 'error' for o in c.get('outputs', []))), None)
            where = f" in the cell starting {cell.source.splitlines()[0]!r}" if cell is not None and cell.source else ''
            print(f"FAILED {_shown(path)}{where}: {getattr(error, 'ename', type(error).__name__)}: {getattr(error, 'evalue', error)}", flush=True)
            continue
        nbformat.write(nb, path)
        print(f"ok {_shown(path)} ({time.perf_counter() - start:.0f} s)", flush=True)
    if failed: print(f"{len(failed)} notebook(s) failed; they were left as they were", flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
