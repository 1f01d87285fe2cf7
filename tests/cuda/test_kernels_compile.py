"""Every kernel configuration compiles for a GPU, on a machine without one.

NVRTC (the compiler CuPy calls at run time) is used when libnvrtc can be found (see nvrtc_compile.find_nvrtc);
otherwise nvcc, when it is on PATH, compiles the same source to PTX with the same options. Both need no GPU.
"""
import os
import shutil
import subprocess

import pytest

from torchebm_nb.cuda.kernels import ENERGY_IDS, NVRTC_OPTIONS, SEPARABLE_ENERGIES, kernel_source

from nvrtc_compile import compile_ptx, find_nvrtc

NVCC = shutil.which('nvcc')
CONFIGS = ([(None, None, ext) for ext in (False, True)]
           + [(e, 5, False) for e in ENERGY_IDS] + [(e, 8, True) for e in ENERGY_IDS]
           + [(e, None, False) for e in sorted(SEPARABLE_ENERGIES)])


def _kernels_in(energy, dim):
    names = ['tebm_langevin_update', 'tebm_langevin_separable']
    if dim is not None: names += ['tebm_langevin_chain', 'tebm_hmc_chain']
    return names


def _nvcc_ptx(source: str, tmp_path) -> str:
    src, out = tmp_path / 'kernels.cu', tmp_path / 'kernels.ptx'
    src.write_text(source)
    opts = [o.replace('--std=', '-std=').replace('--fmad=', '-fmad=') for o in NVRTC_OPTIONS]
    done = subprocess.run([NVCC, '-arch=sm_90', '-ptx', *opts, str(src), '-o', str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return out.read_text()


def _nvrtc_ptx(source: str) -> str:
    try: return compile_ptx(source, NVRTC_OPTIONS)
    except RuntimeError as e:
        if 'libnvrtc-builtins' in str(e): pytest.skip('libnvrtc found but its builtins library is not on the loader path')
        raise


@pytest.mark.skipif(find_nvrtc() is None and NVCC is None, reason='neither libnvrtc nor nvcc is available')
@pytest.mark.parametrize('energy,dim,external', CONFIGS)
def test_kernel_source_compiles_for_sm90(energy, dim, external, tmp_path):
    source = kernel_source(energy, dim, external)
    ptx = _nvrtc_ptx(source) if find_nvrtc() is not None else _nvcc_ptx(source, tmp_path)
    for name in _kernels_in(energy, dim):
        assert f'.entry {name}(' in ptx, name
    assert 'fma.rn.f32' in ptx              # the explicit fused multiply-adds survive --fmad=false
