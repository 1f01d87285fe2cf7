#!/usr/bin/env bash
# Run here (with network or the offline index), before a GPU session: download into .whl/ (git-ignored) the pure-Python
# wheels that the GPU machines lack: fastcore, which the package imports, and for the notebooks' `#| cuda` cells nbdev
# and its IPython stack (torch, CuPy, pytest, matplotlib, numpy, PyYAML, packaging, Pygments and psutil are already there). About 7 MB.
# Then name `.whl` in the device call's `carry`; tools/gpu_check.sh installs them to /tmp/site first thing.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  nbdev==2.4.14 execnb==0.1.18 fastcore==1.14.5 ghapi==1.1.1 fastgit==0.1.1 astunparse==1.6.3 watchdog==7.1.0 \
  build==1.6.1 pyproject_hooks==1.3.3 asttokens==3.0.2 ipython==9.18.1 ipython-pygments-lexers==1.1.1 jedi==0.20.1 \
  parso==0.8.7 matplotlib-inline==0.2.2 pexpect==4.9.0 ptyprocess==0.7.0 prompt_toolkit==3.0.53 wcwidth==0.9.4 \
  stack_data==0.6.3 executing==2.3.0 pure_eval==0.2.4 traitlets==5.16.1 decorator==5.3.1
ls .whl | wc -l
