"""The deprecation ledger: every declared path names a replacement, and none is overdue for removal."""
import datetime
import importlib
import pkgutil

import torchebm_nb
from torchebm_nb._deprecation import DEPRECATIONS


def _import_everything():
    for info in pkgutil.walk_packages(torchebm_nb.__path__, 'torchebm_nb.'):
        if info.name.endswith('__main__'): continue
        importlib.import_module(info.name)


def test_no_deprecation_is_overdue():
    _import_everything()
    overdue = [info for info in DEPRECATIONS.values() if info.removal_due()]
    assert not overdue, 'remove these deprecated paths (2 releases and 2 months have passed):\n' + \
        '\n'.join(f'{i.module}: {i.name} (since {i.since}, {i.deprecated_on})' for i in overdue)


def test_every_declaration_is_complete():
    _import_everything()
    for info in DEPRECATIONS.values():
        assert info.replacement and info.module, info
        datetime.date.fromisoformat(info.deprecated_on)


def test_the_ledger_sits_below_core():
    """`_deprecation` imports nothing from `torchebm_nb.core` (core imports it), and core re-exports `warn_once`."""
    import subprocess, sys
    from pathlib import Path
    code = ("import sys, warnings, torchebm_nb._deprecation as d\n"
            "info = d.declare_deprecation(name='f(old=...)', since='0.1.0', deprecated_on='2026-01-01', replacement='f(new=...)')\n"
            "with warnings.catch_warnings(): warnings.simplefilter('ignore'); info.warn()\n"
            "print(sorted(m for m in sys.modules if m.startswith('torchebm_nb.core')))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    assert out == '[]', f"importing and using torchebm_nb._deprecation loaded {out}"
    import torchebm_nb._deprecation as ledger
    from torchebm_nb.core import warn_once
    from torchebm_nb.core.base_module import _WARNED_ONCE, external_stacklevel
    assert warn_once is ledger.warn_once and _WARNED_ONCE is ledger._WARNED_ONCE
    assert external_stacklevel is ledger.external_stacklevel
