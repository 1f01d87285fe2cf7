"""Every kernel configuration compiles for a GPU, on a machine without one.

NVRTC (the compiler CuPy calls at run time) is used when libnvrtc can be found (see nvrtc_compile.find_nvrtc);
otherwise nvcc, when it is on PATH, compiles the same source to PTX with the same options. Both need no GPU.
Either way the options are CuPy's: ours, then the `-ftz=true` CuPy appends.
"""
import pytest

from torchebm_nb.cuda.kernels import (ENERGY_IDS, KERNEL_NAMES, NVRTC_OPTIONS, SEPARABLE_ENERGIES, chain_dim_limit,
                                      kernel_source)

from nvrtc_compile import NVCC, find_nvrtc, sm90_ptx

NON_SEPARABLE = sorted(set(ENERGY_IDS) - SEPARABLE_ENERGIES)
# (energy, D, external noise, kernel): every kernel for every energy it serves, at a small and at the largest accepted D
CONFIGS = ([(None, None, ext, 'tebm_langevin_update') for ext in (False, True)]
           + [(e, None, ext, 'tebm_langevin_separable') for e in sorted(SEPARABLE_ENERGIES) for ext in (False, True)]
           + [(e, 5, ext, 'tebm_langevin_chain') for e in NON_SEPARABLE for ext in (False, True)]
           + [(e, 5, ext, 'tebm_hmc_chain') for e in sorted(ENERGY_IDS) for ext in (False, True)]
           + [(e, chain_dim_limit(e), False, k) for e in ('gaussian_full', 'rosenbrock', 'double_well')
              for k in ('tebm_langevin_chain', 'tebm_hmc_chain')])


def ptx(source: str) -> str:
    try: return sm90_ptx(source, NVRTC_OPTIONS)
    except RuntimeError as e:
        if 'libnvrtc-builtins' in str(e): pytest.skip('libnvrtc found but its builtins library is not on the loader path')
        raise


@pytest.mark.skipif(find_nvrtc() is None and NVCC is None, reason='neither libnvrtc nor nvcc is available')
@pytest.mark.parametrize('energy,dim,external,kernel', CONFIGS)
def test_kernel_source_compiles_for_sm90(energy, dim, external, kernel):
    ptx_text = ptx(kernel_source(energy, dim, external, kernel))
    assert [k for k in KERNEL_NAMES if f'.entry {k}(' in ptx_text] == [kernel]   # each module holds the one kernel it runs
    assert 'fma.rn' in ptx_text             # the explicit fused multiply-adds survive --fmad=false


def test_kernel_source_arguments():
    with pytest.raises(ValueError, match='energy must be one of'): kernel_source('banana')
    with pytest.raises(ValueError, match='kernel must be one of'): kernel_source(None, None, False, 'tebm_nope')
    with pytest.raises(ValueError, match='needs dim'): kernel_source('harmonic', None, False, 'tebm_hmc_chain')
    kernels_in = lambda source: [k for k in KERNEL_NAMES if f' void {k}(' in source]
    assert kernels_in(kernel_source()) == ['tebm_langevin_update', 'tebm_langevin_separable']   # no D: no chain kernels
    assert kernels_in(kernel_source('harmonic', 3)) == list(KERNEL_NAMES)
    assert kernels_in(kernel_source('harmonic', 3, False, 'tebm_hmc_chain')) == ['tebm_hmc_chain']
