"""Every notebook under nbs/ runs as one pytest test, with nbdev_test's rules (flags in settings.ini's tst_flags
are skipped; NBDEV_TEST_FLAGS="slow cuda" forces flagged cells).

The tutorials (nbs/90_tutorials) choose their size from the environment variable TORCHEBM_NB_FULL_SIZE: 0 or unset
is the test size, 1 the full size. With "slow" in NBDEV_TEST_FLAGS the notebooks run with TORCHEBM_NB_FULL_SIZE=1
(restored afterwards); otherwise whatever the environment holds is used, so `TORCHEBM_NB_FULL_SIZE=1 pytest ...`
runs the tutorials at full size too.
"""
import os

import pytest
import torch
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.test import test_nb as run_notebook  # renamed so pytest does not collect it

cfg = get_config()
NOTEBOOKS = sorted(p.absolute() for p in nbglob(as_path=True) if not (p.parent/'.notest').exists())
TUTORIALS = [p for p in NOTEBOOKS if p.parent.name == '90_tutorials']
FORCE_FLAGS = os.environ.get('NBDEV_TEST_FLAGS', '').split()


@pytest.fixture(autouse=True)
def isolated_torch_state():
    "Notebooks run in this process: whatever global torch state one changes must not reach the next test."
    grad, dtype, threads = torch.is_grad_enabled(), torch.get_default_dtype(), torch.get_num_threads()
    yield
    torch.set_grad_enabled(grad)
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[str(p.relative_to(cfg.nbs_path)) for p in NOTEBOOKS])
def test_notebook(nb, monkeypatch):
    if 'slow' in FORCE_FLAGS: monkeypatch.setenv('TORCHEBM_NB_FULL_SIZE', '1')   # notebooks run in-process: they see it
    ok, _ = run_notebook(nb, skip_flags=cfg.tst_flags.split(), force_flags=FORCE_FLAGS, basepath=cfg.config_path)
    assert ok, f'{nb.name} failed: its traceback is in the captured output above'


@pytest.mark.parametrize('nb', TUTORIALS, ids=[p.name for p in TUTORIALS])
def test_tutorial_refuses_an_unknown_size(nb, monkeypatch, capsys):
    "A value of TORCHEBM_NB_FULL_SIZE other than 0/1 stops the tutorial in its setup cell, naming the variable."
    monkeypatch.setenv('TORCHEBM_NB_FULL_SIZE', 'yes')
    ok, _ = run_notebook(nb, skip_flags=cfg.tst_flags.split(), basepath=cfg.config_path)
    err = capsys.readouterr().err
    assert not ok and 'ValueError' in err and "TORCHEBM_NB_FULL_SIZE must be 0 (test size) or 1 (full size), got 'yes'" in err, err[-2000:]
