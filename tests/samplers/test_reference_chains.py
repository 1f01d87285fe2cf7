"""Every sampler's seeded output on the CPU is bit-identical to the stored reference (see reference_chains.py)."""
import importlib.util
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location('reference_chains', Path(__file__).with_name('reference_chains.py'))
reference_chains = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference_chains)


HERE = (torch.__version__, torch.backends.cpu.get_cpu_capability())
pytestmark = pytest.mark.skipif(HERE != reference_chains.MADE_WITH,
                                reason=f"the stored chains were made with torch/CPU {reference_chains.MADE_WITH}; this is {HERE}: "
                                       "bit-identity holds only on the same build and instruction set")


@pytest.fixture(scope='module')
def runs():
    return reference_chains.build(), torch.load(reference_chains.DATA)


def test_every_stored_run_is_still_produced(runs):
    now, stored = runs
    assert sorted(now) == sorted(stored)


@pytest.mark.parametrize('name', sorted(torch.load(reference_chains.DATA)))
def test_run_is_bit_identical(runs, name):
    now, stored = runs
    a, b = now[name], stored[name]
    assert (a.shape, a.dtype) == (b.shape, b.dtype)
    differ = (a != b).sum().item()
    assert differ == 0, f"{name}: {differ} of {a.numel()} values differ; largest difference {(a - b).abs().max().item():.3g}"
