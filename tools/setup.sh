#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv, printing one status line per stage.
#   bash tools/setup.sh         the library with matplotlib and scikit-learn: CPU torch 2.13.0, then `pip install -e ".[plot]"`
#   bash tools/setup.sh --dev   the same plus the development tools (nbdev, JupyterLab, pytest, ...): `-e ".[dev]"`
# torch is pinned here, not in the package (which asks only for a floor): on these machines anything but the exact
# CPU wheel pulls GBs of CUDA wheels. Idempotent: a stamp per mode, over the dependency files, skips work already done.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
PY=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
TORCH=torch==2.13.0                 # the CPU wheel these machines hold

case "${1:-}" in
  '') mode=plot; extra=plot; what='torchebm_nb, matplotlib and scikit-learn' ;;
  --dev) mode=dev; extra=dev; what='torchebm_nb and the development tools (nbdev, JupyterLab, pytest, ...)' ;;
  *) echo "usage: bash tools/setup.sh [--dev]" >&2; exit 2 ;;
esac
want=$(cat settings.ini setup.py tools/setup.sh | sha256sum | cut -c1-16)
stamp() { echo "$VENV/.torchebm_nb-setup-$1"; }
current() { [ "$(cat "$(stamp "$1")" 2>/dev/null)" = "$want" ]; }
# the dev mode installs everything the plot mode does, so a current dev stamp satisfies both
if current "$mode" || { [ "$mode" = plot ] && current dev; }; then
  echo "setup: $VENV is up to date ($mode); nothing to do"; exit 0
fi

start=$SECONDS
stage() { echo "setup: [$1/4] $2"; }
took() { echo "setup:       done in $((SECONDS - t)) s"; }
pipq() { "$VENV/bin/pip" install -q "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

t=$SECONDS
if [ -x "$VENV/bin/python" ]; then stage 1 "reusing $VENV ($("$VENV/bin/python" --version))"
else stage 1 "creating $VENV with $PY"; "$PY" -m venv "$VENV"; took; fi
t=$SECONDS; stage 2 "$TORCH (CPU build) ..."; pipq "$TORCH"; took
t=$SECONDS; stage 3 "$what: pip install -e \".[$extra]\" ..."; pipq -e ".[$extra]"; took
t=$SECONDS; stage 4 "checking that no CUDA build slipped in"
"$VENV/bin/python" - <<'PYEOF'
import importlib.metadata as md, sys, torch
cuda = sorted(d.metadata['Name'] for d in md.distributions() if d.metadata['Name'].lower().startswith('nvidia-'))
if cuda or not torch.__version__.endswith('+cpu'):
    sys.exit(f'setup: a CUDA build slipped in: torch {torch.__version__}, {cuda}')
PYEOF
echo "$want" > "$(stamp "$mode")"
echo "setup: $VENV ready ($mode) in $((SECONDS - start)) s, $(du -sh "$VENV" | cut -f1) installed"
