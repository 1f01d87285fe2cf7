"""The kernel source, split into one string per kernel, builds the same programs as the one-string source before it.

For every configuration (kernel, energy, width, noise source), each kernel in the assembled source and every device
function it calls read the same after the C preprocessor as in `kernel_source_reference` (whitespace aside, order of
the functions aside); and where NVRTC or nvcc is available, a kernel of each kind compiles to the same PTX.
"""
import re
import subprocess

import pytest

from torchebm_nb.cuda.emulator import find_cxx
from torchebm_nb.cuda.kernels import (ENERGY_CUDA_SOURCE, ENERGY_IDS, KERNEL_CUDA_SOURCE, KERNEL_NAMES, NVRTC_OPTIONS,
                                      SEPARABLE_ENERGIES, chain_dim_limit, kernel_source)
from torchebm_nb.cuda.philox import PHILOX_CUDA_SOURCE

from kernel_source_reference import reference_source
from nvrtc_compile import NVCC, find_nvrtc, sm90_ptx

CXX = find_cxx()
CHAIN_KERNELS = ('tebm_langevin_chain', 'tebm_hmc_chain')
# (energy, D, external noise, kernel): every kernel with every energy, both noise sources, the widest accepted D,
# and the all-kernels source (kernel None) with and without a D
CONFIGS = ([(None, None, ext, 'tebm_langevin_update') for ext in (False, True)]
           + [(e, None, ext, 'tebm_langevin_separable') for e in [None, *sorted(SEPARABLE_ENERGIES)] for ext in (False, True)]
           + [(e, 5, ext, k) for e in sorted(ENERGY_IDS) for ext in (False, True) for k in CHAIN_KERNELS]
           + [(e, chain_dim_limit(e), False, k) for e in sorted(ENERGY_IDS) for k in CHAIN_KERNELS]
           + [(e, d, ext, None) for e in (None, 'double_well', 'ackley') for d in (None, 3) for ext in (False, True)])


def preprocess(source: str) -> str:
    "The source after the C preprocessor: `#define`s applied, `#if` branches chosen, comments gone."
    done = subprocess.run([CXX, '-E', '-P', '-x', 'c++', '-'], input=source, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def functions(source: str) -> dict:
    "name -> whitespace-normalised text of every top-level function definition in `source`, after preprocessing."
    text, found, depth, start = preprocess(source), {}, 0, 0
    for i, ch in enumerate(text):
        if ch == '{': depth += 1
        elif ch == '}':
            depth -= 1
            if depth == 0:
                definition = ' '.join(text[start:i + 1].split())
                name = re.search(r'(\w+)\s*\(', definition).group(1)
                assert name not in found, f'{name} is defined twice'
                found[name], start = definition, i + 1
    assert not text[start:].strip(), f'text after the last function: {text[start:][:200]!r}'
    return found


def reachable(found: dict, kernel: str) -> dict:
    "The kernel and every function it calls, directly or not."
    names, todo = set(), [kernel]
    while todo:
        name = todo.pop()
        if name in names: continue
        names.add(name)
        todo += [w for w in set(re.findall(r'\b\w+\b', found[name])) if w in found and w != name]
    return {n: found[n] for n in sorted(names)}


def kernels_of(found: dict) -> list:
    return [k for k in KERNEL_NAMES if k in found and '__global__' in found[k]]


@pytest.mark.skipif(CXX is None, reason='needs a C preprocessor (g++ or clang++)')
@pytest.mark.parametrize('energy,dim,external,kernel', CONFIGS)
def test_each_kernel_reads_as_before_the_split(energy, dim, external, kernel):
    new = functions(kernel_source(energy, dim, external, kernel))
    old = functions(reference_source(energy, dim, external, kernel))
    expected = [kernel] if kernel else [k for k in KERNEL_NAMES if dim is not None or k not in CHAIN_KERNELS]
    assert kernels_of(new) == kernels_of(old) == expected
    for k in expected:
        now, then = reachable(new, k), reachable(old, k)
        assert list(now) == list(then), f'{k} calls other functions than before'
        for name in now: assert now[name] == then[name], f'{name} (reached from {k}) changed'


@pytest.mark.skipif(CXX is None, reason='needs a C preprocessor (g++ or clang++)')
@pytest.mark.parametrize('dim', [None, 4])
def test_the_one_string_sources_still_compile_as_before(dim):
    "ENERGY_CUDA_SOURCE and KERNEL_CUDA_SOURCE, used as the whole source was before the split, define the same functions."
    defines = '#define TEBM_ENERGY 6\n#define TEBM_EXTERNAL_NOISE 0\n' + (f'#define TEBM_D {dim}\n' if dim else '')
    new = functions(defines + PHILOX_CUDA_SOURCE + ENERGY_CUDA_SOURCE + KERNEL_CUDA_SOURCE)
    assert new == functions(reference_source('ackley', dim))


PTX_CONFIGS = [(None, None, False, 'tebm_langevin_update'), (None, None, True, 'tebm_langevin_update'),
               ('rastrigin', None, False, 'tebm_langevin_separable'), ('gaussian_diag', None, True, 'tebm_langevin_separable'),
               ('ackley', 5, False, 'tebm_langevin_chain'), ('gaussian_full', 5, True, 'tebm_langevin_chain'),
               ('rosenbrock', 5, True, 'tebm_hmc_chain'), ('double_well', 5, False, 'tebm_hmc_chain'),
               ('harmonic', 3, False, None)]


@pytest.mark.skipif(find_nvrtc() is None and NVCC is None, reason='neither libnvrtc nor nvcc is available')
@pytest.mark.parametrize('energy,dim,external,kernel', PTX_CONFIGS)
def test_each_kernel_compiles_to_the_same_ptx(energy, dim, external, kernel):
    try:
        new = sm90_ptx(kernel_source(energy, dim, external, kernel), NVRTC_OPTIONS)
        old = sm90_ptx(reference_source(energy, dim, external, kernel), NVRTC_OPTIONS)
    except RuntimeError as e:
        if 'libnvrtc-builtins' in str(e): pytest.skip('libnvrtc found but its builtins library is not on the loader path')
        raise
    assert new == old
