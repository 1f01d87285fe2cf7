"""The CUDA kernels, compiled for the CPU by `CPUEmulator`, against the torch code paths.

These run on every machine with a C++ compiler. They check the kernels' logic: indexing, the per-step loops,
the Philox counter layout, clamping, the Metropolis test, non-finite bookkeeping. They also check the samplers'
dispatch code (segmenting, schedulers, diagnostics). Agreement is to float rounding: glibc's sinf/expf/logf and
torch's vectorised CPU kernels may round differently from the emulator. tests/cuda/test_kernels_gpu.py
repeats the comparisons on a GPU.
"""
import math
import warnings

import numpy as np
import pytest
import torch

from torchebm_nb.core import (BaseModel, CosineScheduler, DoubleWellModel, GaussianModel, HarmonicModel, RosenbrockModel,
                              UnconvergedWarning, no_convergence_check)
from torchebm_nb.cuda import kernels
from torchebm_nb.cuda.emulator import CPUEmulator, find_cxx
from torchebm_nb.cuda.kernels import (analytic_energy_plan, hmc_chain_, kernel_backend, langevin_chain_,
                                      langevin_update_, use_backend)
from torchebm_nb.cuda.philox import philox_counters, philox_normal
from torchebm_nb.samplers import HamiltonianMonteCarlo, LangevinDynamics

from kernel_refs import FedHMC, FedLangevin, energies, hmc_numbers, langevin_normals, sampler_seed

pytestmark = pytest.mark.skipif(find_cxx() is None, reason='needs a C++ compiler (g++ or clang++)')

ENERGIES = list(energies())


@pytest.fixture(scope='module')
def emu():
    return CPUEmulator()


def close(a, b, rtol=2e-5, atol=2e-5):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


def start(n_chains, dim, seed=0, scale=1.0):
    return scale * torch.randn(n_chains, dim, generator=torch.Generator().manual_seed(seed))


# ---- (1) the fused update -------------------------------------------------------------------------------------------
@pytest.mark.parametrize('n', [1, 7, 64, 1001])
def test_fused_update_matches_torch_step(emu, n):
    g = torch.Generator().manual_seed(n)
    x, grad, xi = (torch.randn(n, generator=g) for _ in range(3))
    h, c = 0.03, 0.7
    ref = torch.add(x, grad.neg(), alpha=h).add_(xi, alpha=c)
    y = x.clone()
    nxt = langevin_update_(y, grad, h, c, seed=5, counter=9, noise=xi, backend=emu)
    close(y, ref, rtol=1e-6, atol=1e-6)
    assert nxt == 9 + philox_counters(n)


def test_fused_update_misaligned_view_takes_scalar_path(emu):
    base = torch.randn(1 + 64)
    x = base[1:]                       # contiguous, but 4 bytes past a 16-byte boundary: no float4 loads
    assert x.data_ptr() % 16 != 0
    grad, xi = torch.randn(64), torch.randn(64)
    ref = torch.add(x, grad.neg(), alpha=0.1).add_(xi, alpha=0.2)
    langevin_update_(x, grad, 0.1, 0.2, seed=0, noise=xi, backend=emu)
    close(x, ref, rtol=1e-6, atol=1e-6)


def test_fused_update_draws_the_documented_philox_normals(emu):
    n, seed, counter = 1003, 123456789012, 77
    x = torch.zeros(n)
    langevin_update_(x, torch.zeros(n), 0.0, 1.0, seed=seed, counter=counter, backend=emu)
    close(x, philox_normal((n,), seed, counter), rtol=1e-5, atol=1e-6)
    assert x.std().item() == pytest.approx(1.0, abs=0.1)


def test_fused_update_clamp_keeps_nan_and_bounds_inf(emu):
    x = torch.tensor([0.0, 5.0, -5.0, float('nan'), float('inf'), 0.3, -0.2])
    langevin_update_(x, torch.zeros(7), 0.0, 0.0, seed=0, clamp=(-1.0, 1.0), backend=emu)
    ref = torch.tensor([0.0, 5.0, -5.0, float('nan'), float('inf'), 0.3, -0.2]).clamp(-1.0, 1.0)
    torch.testing.assert_close(x, ref, equal_nan=True)


def test_fused_update_seed_tensor_equals_int_seed(emu):
    a, b = torch.zeros(40), torch.zeros(40)
    langevin_update_(a, torch.zeros(40), 0.0, 1.0, seed=31, backend=emu)
    langevin_update_(b, torch.zeros(40), 0.0, 1.0, seed=torch.tensor([31]), backend=emu)
    assert torch.equal(a, b)


# ---- (2) whole-chain Langevin ---------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', ENERGIES)
@pytest.mark.parametrize('clamp', [None, (-1.5, 1.5)])
def test_langevin_chain_matches_torch_sampler(emu, name, clamp):
    model = energies()[name]
    n_steps, x0 = 20, start(33, 4, seed=1)       # 33 chains × 4: a partial last Philox counter
    h = 1e-3 if name == 'rosenbrock' else 0.01
    xi = torch.randn(n_steps, 33, 4, generator=torch.Generator().manual_seed(2))
    ref = FedLangevin(model, step_size=h, noise_scale=0.8, clamp=clamp, noise=xi).sample(x0, n_steps=n_steps)
    x = x0.clone()
    c = 0.8 * math.sqrt(2 * h)
    langevin_chain_(x, model, [h] * n_steps, [c] * n_steps, seed=0, noise=xi, clamp=clamp, backend=emu)
    close(x, ref)


@pytest.mark.parametrize('name', ['double_well', 'ackley'])
@pytest.mark.parametrize('dim', [3, 5])
def test_langevin_chain_philox_layout(emu, name, dim):
    "Philox mode: step s uses philox_normal(numel, seed, counter + s⌈numel/4⌉), for separable and per-chain kernels."
    model = energies(dim)[name]
    n_steps, seed, counter = 12, 987654321, 40
    x0 = start(9, dim, seed=3)
    x = x0.clone()
    nxt = langevin_chain_(x, model, [0.01] * n_steps, [0.1] * n_steps, seed=seed, counter=counter, backend=emu)
    assert nxt == counter + n_steps * philox_counters(9 * dim)
    xi = langevin_normals(n_steps, (9, dim), seed, counter)
    ref = FedLangevin(model, step_size=0.01, noise_scale=0.1 / math.sqrt(0.02), noise=xi).sample(x0, n_steps=n_steps)
    close(x, ref)


def test_langevin_chain_segments_equal_one_launch(emu):
    model = energies()['ackley']
    x0 = start(10, 4)
    one, two = x0.clone(), x0.clone()
    hs = [0.01 * (1 + 0.1 * s) for s in range(30)]
    cs = [0.3] * 30
    langevin_chain_(one, model, hs, cs, seed=4, backend=emu)
    nxt = langevin_chain_(two, model, hs[:11], cs[:11], seed=4, backend=emu)
    langevin_chain_(two, model, hs[11:], cs[11:], seed=4, counter=nxt, backend=emu)
    assert torch.equal(one, two)


@pytest.mark.parametrize('name', ['double_well', 'rosenbrock'])
def test_grid_stride_any_grid_same_result(name):
    model = energies()[name]
    x0 = start(300, 4)
    a, b = x0.clone(), x0.clone()
    langevin_chain_(a, model, [1e-3] * 5, [0.05] * 5, seed=1, backend=CPUEmulator())
    langevin_chain_(b, model, [1e-3] * 5, [0.05] * 5, seed=1, backend=CPUEmulator(emulate_grid=True))
    assert torch.equal(a, b)


def test_langevin_chain_records_first_nonfinite_step(emu):
    model = DoubleWellModel(barrier_height=2.0)
    x = torch.tensor([[0.5, 0.5], [1e3, 0.0], [0.1, 0.2]])
    first_bad = torch.full((3,), 2**31 - 1, dtype=torch.int32)
    langevin_chain_(x, model, [0.05] * 6, [0.0] * 6, seed=0, first_bad=first_bad, step0=10, backend=emu)
    assert first_bad[1].item() in range(11, 17) and first_bad[0].item() == first_bad[2].item() == 2**31 - 1
    assert not torch.isfinite(x[1]).all() and torch.isfinite(x[[0, 2]]).all()


# ---- (3) whole-chain HMC ----------------------------------------------------------------------------------------
MASSES = {'unit': None, 'scalar': 2.0, 'tensor': torch.tensor([0.5, 1.0, 2.0, 4.0])}


@pytest.mark.parametrize('name', ENERGIES)
@pytest.mark.parametrize('mass', list(MASSES))
def test_hmc_chain_matches_torch_sampler(emu, name, mass):
    model, m = energies()[name], MASSES[mass]
    n_iter, L, h = 6, 5, (2e-3 if name == 'rosenbrock' else 0.05)
    x0 = start(33, 4, seed=5, scale=0.7)
    g = torch.Generator().manual_seed(6)
    momenta, uniforms = torch.randn(n_iter, 33, 4, generator=g), torch.rand(n_iter, 33, generator=g)
    ref_sampler = FedHMC(model, step_size=h, n_leapfrog_steps=L, mass=m, momenta=momenta, uniforms=uniforms)
    ref, diag = ref_sampler.sample(x0, n_steps=n_iter, return_diagnostics=True)
    x = x0.clone()
    nxt, energy, accepted = hmc_chain_(x, model, [h] * n_iter, L, seed=0, mass=m, noise=momenta, uniforms=uniforms,
                                       backend=emu)
    close(x, ref, rtol=1e-4, atol=1e-4)
    close(energy, model(x), rtol=1e-4, atol=1e-4)
    assert accepted.float().mean().item() == pytest.approx(diag['acceptance_rate'][-1].item())
    assert nxt == n_iter * (philox_counters(33 * 4) + 9)


@pytest.mark.parametrize('dim', [2, 3])
def test_hmc_chain_philox_layout(emu, dim):
    model = energies(dim)['gaussian_full']
    n_iter, seed, counter, B = 8, 2**40 + 17, 3, 10
    x0 = start(B, dim, seed=8)
    x = x0.clone()
    n_acc = torch.zeros(B, dtype=torch.int32)
    hmc_chain_(x, model, [0.3] * n_iter, 4, seed=seed, counter=counter, n_accepted=n_acc, backend=emu)
    momenta, uniforms = hmc_numbers(n_iter, B, dim, seed, counter)
    ref = FedHMC(model, step_size=0.3, n_leapfrog_steps=4, momenta=momenta, uniforms=uniforms).sample(x0, n_steps=n_iter)
    close(x, ref, rtol=1e-4, atol=1e-4)
    assert 0 < n_acc.sum().item() <= n_iter * B


def test_hmc_rejects_nan_proposals(emu):
    class_ = energies()['double_well']
    x = torch.tensor([[0.5, -0.5, 0.2, 0.1]])
    nan_momenta = torch.full((3, 1, 4), float('nan'))
    hmc_chain_(x, class_, [0.1] * 3, 3, seed=0, noise=nan_momenta, uniforms=torch.full((3, 1), 0.5), backend=emu)
    assert torch.equal(x, torch.tensor([[0.5, -0.5, 0.2, 0.1]]))


# ---- the samplers' kernel paths -------------------------------------------------------------------------------------
def test_kernel_backend_selection(emu):
    x = torch.zeros(2, 2)
    assert kernel_backend(x) is None                      # CPU tensors: torch, unless told otherwise
    with use_backend(emu):
        assert kernel_backend(x) is emu
    with use_backend(None):
        assert kernel_backend(x) is None
    assert kernel_backend(x) is None
    with pytest.raises(TypeError, match='function\\(\\) and launch\\(\\)'):
        with use_backend(object()): pass


def spy(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_langevin_sampler_whole_chain_path(emu, monkeypatch):
    import torchebm_nb.cuda.dispatch as ld
    calls = spy(monkeypatch, ld.WholeChainLangevin, '__call__')
    model = energies()['double_well']
    x0, n_steps = start(64, 4), 40
    sched = CosineScheduler(1.0, 0.3, n_steps)
    sampler = LangevinDynamics(model, step_size=0.01, noise_scale=sched)
    with use_backend(emu):
        out = sampler.sample(x0, n_steps=n_steps, generator=torch.Generator().manual_seed(21))
    assert len(calls) == 1 and sched.step_count == n_steps
    xi = langevin_normals(n_steps, (64, 4), sampler_seed(21))
    ref = FedLangevin(model, step_size=0.01, noise_scale=CosineScheduler(1.0, 0.3, n_steps), noise=xi).sample(x0, n_steps=n_steps)
    close(out, ref)


def test_langevin_sampler_trajectory_and_diagnostics(emu, monkeypatch):
    import torchebm_nb.cuda.dispatch as ld
    calls = spy(monkeypatch, ld.WholeChainLangevin, '__call__')
    model = energies()['rastrigin']
    x0 = start(32, 4)
    sampler = LangevinDynamics(model, step_size=0.002)
    with use_backend(emu), no_convergence_check():   # the check would split a run at mid-run (tested below)
        final = sampler.sample(x0, n_steps=30, generator=torch.Generator().manual_seed(1))
        traj, diag = sampler.sample(x0, n_steps=30, thin=5, return_trajectory=True, return_diagnostics=True,
                                    generator=torch.Generator().manual_seed(1))
    assert len(calls) == 1 + 6                           # one launch, then one per kept step
    assert traj.shape == (32, 6, 4) and diag['mean'].shape == (6, 4) and diag['energy'].shape == (6,)
    assert torch.equal(traj[:, -1], final)              # segments continue the same Philox stream
    close(diag['mean'][2], traj[:, 2].mean(0))
    close(diag['energy'][-1], model(final).mean())


def test_langevin_sampler_fused_path_any_model(emu, monkeypatch):
    import torchebm_nb.cuda.dispatch as ld
    calls = spy(monkeypatch, ld.FusedLangevinUpdate, '__call__')

    class Wrapped(BaseModel):                           # autograd energy: not an analytic class
        def __init__(self):
            super().__init__(); self.inner = HarmonicModel(k=2.0)
        def forward(self, x): return self.inner(x)

    x0, n_steps = start(16, 3), 12
    with use_backend(emu):
        out = LangevinDynamics(Wrapped(), step_size=0.05, clamp=(-2.0, 2.0)).sample(
            x0, n_steps=n_steps, generator=torch.Generator().manual_seed(4))
    assert len(calls) == n_steps
    xi = langevin_normals(n_steps, (16, 3), sampler_seed(4))
    ref = FedLangevin(Wrapped(), step_size=0.05, clamp=(-2.0, 2.0), noise=xi).sample(x0, n_steps=n_steps)
    close(out, ref)


def test_langevin_sampler_torch_path_when_asked_or_unsupported(emu, monkeypatch):
    import torchebm_nb.cuda.dispatch as ld
    chain, fused = spy(monkeypatch, ld.WholeChainLangevin, '__call__'), spy(monkeypatch, ld.FusedLangevinUpdate, '__call__')
    model = DoubleWellModel()
    with use_backend(emu):
        with use_backend(None):   # switched off inside a block where kernels would otherwise run
            LangevinDynamics(model, step_size=0.01).sample(dim=2, n_samples=4, n_steps=3)
        LangevinDynamics(model, step_size=0.01, integrator='heun').sample(dim=2, n_samples=4, n_steps=3)
        LangevinDynamics(model, step_size=0.01, dtype=torch.float64).sample(dim=2, n_samples=4, n_steps=3)
    assert chain == [] and fused == []


def test_langevin_sampler_kernel_path_reports_divergence(emu):
    with use_backend(emu), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        LangevinDynamics(DoubleWellModel(), step_size=1.0).sample(dim=2, n_samples=16, n_steps=50,
                                                                 generator=torch.Generator().manual_seed(0))
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert messages and 'became non-finite' in messages[0] and 'between steps 1 and 32' in messages[0]


def test_hmc_sampler_whole_chain_path(emu, monkeypatch):
    import torchebm_nb.cuda.dispatch as hm
    calls = spy(monkeypatch, hm.WholeChainHMC, '__call__')
    model = energies(3)['gaussian_full']
    x0, n_iter = start(24, 3), 15
    sampler = HamiltonianMonteCarlo(model, step_size=0.2, n_leapfrog_steps=4, mass=torch.tensor([1.0, 2.0, 0.5]))
    with use_backend(emu):
        out, diag = sampler.sample(x0, n_steps=n_iter, thin=5, return_diagnostics=True,
                                   generator=torch.Generator().manual_seed(9))
    assert len(calls) == 3 and diag['acceptance_rate'].shape == (3,)
    momenta, uniforms = hmc_numbers(n_iter, 24, 3, sampler_seed(9))
    ref, rdiag = FedHMC(model, step_size=0.2, n_leapfrog_steps=4, mass=torch.tensor([1.0, 2.0, 0.5]),
                        momenta=momenta, uniforms=uniforms).sample(x0, n_steps=n_iter, thin=5, return_diagnostics=True)
    close(out, ref, rtol=1e-4, atol=1e-4)
    close(diag['acceptance_rate'], rdiag['acceptance_rate'])
    close(diag['energy'], rdiag['energy'], rtol=1e-4, atol=1e-4)


def test_hmc_sampler_harmonic_moments(emu):
    "In distribution: N(0, I/k) through the kernel path, within 4 Monte-Carlo standard errors."
    k, n = 2.0, 4000
    with use_backend(emu):
        xs = HamiltonianMonteCarlo(HarmonicModel(k=k), step_size=0.3, n_leapfrog_steps=5).sample(
            dim=3, n_samples=n, n_steps=60, generator=torch.Generator().manual_seed(3))
    var = 1 / k
    assert (xs.mean(0).abs() < 4 * math.sqrt(var / n)).all()
    assert ((xs.var(0) - var).abs() < 4 * var * math.sqrt(2 / n)).all()


def test_langevin_sampler_gaussian_stationary_variance(emu):
    "Euler–Maruyama on N(0, 1/k) has stationary variance 1/(k(1 - hk/2)); the kernel path hits it within 4 SE."
    k, h, n = 1.0, 0.1, 8000
    with use_backend(emu):
        xs = LangevinDynamics(HarmonicModel(k=k), step_size=h).sample(dim=2, n_samples=n, n_steps=200,
                                                                     generator=torch.Generator().manual_seed(2))
    exact = 1 / (k * (1 - h * k / 2))
    assert ((xs.var(0) - exact).abs() < 4 * exact * math.sqrt(2 / n)).all()


# ---- argument checks ------------------------------------------------------------------------------------------------
def test_launcher_errors(emu):
    x, g = torch.zeros(8), torch.zeros(8)
    with pytest.raises(TypeError, match='float32'): langevin_update_(x.double(), g.double(), 0.1, 0.1, 0, backend=emu)
    with pytest.raises(ValueError, match='contiguous'): langevin_update_(torch.zeros(4, 4).T, torch.zeros(4, 4), 0.1, 0.1, 0, backend=emu)
    with pytest.raises(ValueError, match='shape of x'): langevin_update_(x, torch.zeros(9), 0.1, 0.1, 0, backend=emu)
    with pytest.raises(ValueError, match='CPUEmulator'): langevin_update_(x, g, 0.1, 0.1, 0)
    with pytest.raises(ValueError, match='finite'): langevin_update_(x, g, float('nan'), 0.1, 0, backend=emu)
    with pytest.raises(ValueError, match='seed must be ≥ 0'): langevin_update_(x, g, 0.1, 0.1, -1, backend=emu)
    with pytest.raises(TypeError, match='seed must be an int'): langevin_update_(x, g, 0.1, 0.1, 1.5, backend=emu)
    with pytest.raises(ValueError, match='one-element int64'): langevin_update_(x, g, 0.1, 0.1, torch.tensor([1.0]), backend=emu)
    with pytest.raises(ValueError, match='lo < hi'): langevin_update_(x, g, 0.1, 0.1, 0, clamp=(1, 0), backend=emu)
    with pytest.raises(ValueError, match='noise must have 8 elements'): langevin_update_(x, g, 0.1, 0.1, 0, noise=torch.zeros(7), backend=emu)
    x2 = torch.zeros(4, 2)

    class Custom(BaseModel):
        def forward(self, x): return x.sum(-1)
    with pytest.raises(ValueError, match='has no whole-chain kernel'): langevin_chain_(x2, Custom(), [0.1], [0.1], 0, backend=emu)
    with pytest.raises(ValueError, match='2 dimensions'): langevin_chain_(x, DoubleWellModel(), [0.1], [0.1], 0, backend=emu)
    with pytest.raises(ValueError, match='same length'): langevin_chain_(x2, DoubleWellModel(), [0.1], [0.1, 0.2], 0, backend=emu)
    with pytest.raises(ValueError, match='noise and uniforms go together'):
        hmc_chain_(x2, DoubleWellModel(), [0.1], 2, 0, noise=torch.zeros(1, 4, 2), backend=emu)
    with pytest.raises(ValueError, match='n_leapfrog_steps'): hmc_chain_(x2, DoubleWellModel(), [0.1], 0, 0, backend=emu)
    with pytest.raises(ValueError, match=r'shape \(2,\)'):
        hmc_chain_(x2, DoubleWellModel(), [0.1], 2, 0, mass=torch.ones(3), backend=emu)
    with pytest.raises(ValueError, match='runs on cpu tensors'):
        class Fake: device_type = 'cpu'
        langevin_update_(torch.zeros(2, device='meta'), torch.zeros(2, device='meta'), 0.1, 0.1, 0, backend=Fake())


def test_emulator_refuses_untyped_arguments(emu):
    fn = emu.function(kernels.kernel_source(None), 'tebm_langevin_update')
    with pytest.raises(TypeError, match='NumPy scalars'):
        emu.launch(fn, (1,), (1,), (np.uint64(0), 3))


def test_hmc_zero_iterations_only_evaluates_the_energy(emu):
    model = energies()['rosenbrock']
    x = start(6, 4)
    before = x.clone()
    nxt, energy, accepted = hmc_chain_(x, model, [], 3, seed=0, counter=5, backend=emu)
    assert nxt == 5 and torch.equal(x, before) and not accepted.any()
    torch.testing.assert_close(energy, model(x), rtol=1e-5, atol=1e-5)


def test_whole_chain_objects_validate_spans(emu):
    from torchebm_nb.cuda.kernels import WholeChainLangevin
    x = start(4, 2)
    chain = WholeChainLangevin(x, DoubleWellModel(), seed=0, backend=emu)
    arrays = chain.step_arrays([0.01] * 5, [0.1] * 5)
    with pytest.raises(ValueError, match='start ≤ stop'): chain(arrays, 0, 3, 2)
    with pytest.raises(ValueError, match='same length'): chain.step_arrays([0.01] * 5, [0.1] * 4)
    assert chain(arrays, 0, 0, 5) == 5 * philox_counters(8)


class FailingBackend:
    "A backend whose compiler fails, as NVRTC might on a machine with a broken install."
    device_type = 'cpu'
    def function(self, source, name, device=None): raise RuntimeError('NVRTC_ERROR_COMPILATION (simulated)')
    def launch(self, *args): raise AssertionError('never reached')


class LaunchFailingBackend:
    "Compiles and loads like the emulator, but every launch fails, as one asking for more registers than a block has would."
    device_type = 'cpu'
    def __init__(self): self.inner = CPUEmulator()
    def function(self, source, name, device=None): return self.inner.function(source, name, device)
    def launch(self, *args): raise RuntimeError('CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES (simulated)')


@pytest.mark.parametrize('backend', [FailingBackend, LaunchFailingBackend], ids=['compile', 'launch'])
@pytest.mark.parametrize('make', [
    lambda: LangevinDynamics(DoubleWellModel(), step_size=0.01),                    # whole-chain path
    lambda: LangevinDynamics(_Wrapped(), step_size=0.01),                           # fused path
    lambda: HamiltonianMonteCarlo(HarmonicModel(), step_size=0.1, n_leapfrog_steps=3),
])
def test_samplers_fall_back_to_torch_when_a_kernel_fails(make, backend):
    from torchebm_nb.core.base_module import _WARNED_ONCE
    _WARNED_ONCE.difference_update({k for k in _WARNED_ONCE if k.startswith('torchebm_nb.cuda.fallback')})
    x0 = torch.randn(16, 3, generator=torch.Generator().manual_seed(1))
    with use_backend(backend()), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = make().sample(x=x0, n_steps=5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (16, 3) and torch.isfinite(out).all() and not torch.equal(out, x0)
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    expected = 'NVRTC_ERROR_COMPILATION' if backend is FailingBackend else 'OUT_OF_RESOURCES'
    assert any('could not be compiled, loaded or launched' in m and expected in m and 'simulated' in m for m in messages), messages


def test_probe_launches_touch_nothing(emu):
    "Building a kernel object launches it on zero elements or chains: the chains, seed and parameters stay as they were."
    from torchebm_nb.cuda.kernels import FusedLangevinUpdate, WholeChainHMC, WholeChainLangevin
    grid_emu = CPUEmulator(emulate_grid=True)   # every thread of the probe's block runs
    for build in (lambda x: FusedLangevinUpdate(x, 3, clamp=(-1.0, 1.0), backend=grid_emu),
                  lambda x: WholeChainLangevin(x, DoubleWellModel(), 3, backend=grid_emu),
                  lambda x: WholeChainLangevin(x, RosenbrockModel(), 3, backend=grid_emu),
                  lambda x: WholeChainHMC(x, HarmonicModel(), 4, 3, mass=torch.tensor([1.0, 2.0, 0.5]), backend=grid_emu)):
        x = torch.randn(40, 3, generator=torch.Generator().manual_seed(2))
        before = x.clone()
        build(x)
        assert torch.equal(x, before)


class _Wrapped(BaseModel):
    def __init__(self):
        super().__init__(); self.inner = HarmonicModel()
    def forward(self, x): return self.inner(x)


def test_hmc_reports_chains_that_start_non_finite(emu):
    x = start(8, 3)
    x[2, 1] = float('nan'); x[5, 0] = float('inf')
    first_bad = torch.full((8,), 2**31 - 1, dtype=torch.int32)
    hmc_chain_(x, HarmonicModel(), [0.1] * 4, 3, seed=0, first_bad=first_bad, step0=7, backend=emu)
    assert first_bad.tolist() == [2**31 - 1] * 2 + [8] + [2**31 - 1] * 2 + [8] + [2**31 - 1] * 2
    with use_backend(emu), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        HamiltonianMonteCarlo(HarmonicModel(), step_size=0.1).sample(x.clone(), n_steps=3)
    assert any('2 of 8 chains became non-finite' in str(w.message) for w in caught)


def test_hmc_max_force_must_be_a_float32_number(emu):
    with pytest.raises(ValueError, match='max_force'):
        hmc_chain_(start(4, 2), HarmonicModel(), [0.1], 2, seed=0, max_force=float('inf'), backend=emu)


def test_use_backend_none_also_stops_direct_launches(emu):
    with use_backend(None):
        with pytest.raises(RuntimeError, match='switched off inside use_backend'):
            langevin_update_(torch.zeros(4), torch.zeros(4), 0.1, 0.1, 0)
        langevin_update_(torch.zeros(4), torch.zeros(4), 0.1, 0.1, 0, backend=emu)   # an explicit backend still runs


def test_each_module_holds_only_its_kernel(emu):
    src = kernels.kernel_source('harmonic', 3, False, 'tebm_hmc_chain')
    emu.function(src, 'tebm_hmc_chain')
    with pytest.raises(ValueError, match="no extern \"C\" kernel named 'tebm_langevin_chain'"):
        emu.function(src, 'tebm_langevin_chain')


def test_plans_live_on_the_chains_device():
    plan = analytic_energy_plan(DoubleWellModel(), 3, device='meta')
    assert plan.params.device.type == 'meta'


def test_cupy_backend_glue_without_a_gpu(monkeypatch):
    "CupyBackend against a stand-in CuPy: one compile per (device, source), functions cached, the stream made and used on the tensor's device."
    import types
    events = []

    class Device:
        def __init__(self, index): self.index = index
        def __enter__(self): events.append(('device', self.index)); return self
        def __exit__(self, *exc): events.append(('device_exit', self.index))

    class Module:
        def __init__(self, code, options): events.append(('compile', code, tuple(options)))
        def get_function(self, name):
            events.append(('get_function', name))
            return lambda grid, block, args: events.append(('launch', grid, block, len(args)))

    class Stream:
        def __enter__(self): events.append(('stream',)); return self
        def __exit__(self, *exc): events.append(('stream_exit',))

    fake = types.SimpleNamespace(RawModule=Module, cuda=types.SimpleNamespace(Device=Device))
    monkeypatch.setattr(kernels, 'get_cupy', lambda: fake)
    monkeypatch.setattr(kernels, 'current_stream', lambda device: events.append(('make_stream', device.index)) or Stream())
    monkeypatch.setattr(torch.cuda, 'current_stream',
                        lambda device=None: types.SimpleNamespace(device=torch.device('cuda', 1), cuda_stream=77))
    backend = kernels.CupyBackend()
    cuda1 = torch.device('cuda', 1)
    f1 = backend.function('// source', 'tebm_x', cuda1)
    assert backend.function('// source', 'tebm_x', cuda1) is f1
    assert [e[0] for e in events] == ['device', 'compile', 'get_function', 'device_exit']
    assert events[1][2] == kernels.NVRTC_OPTIONS
    events.clear()
    for _ in range(2):
        backend.launch(f1, (3,), (32,), (np.int32(1), np.float32(2.0)), types.SimpleNamespace(device=cuda1))
    # the stream is created once, inside the tensor's device context, and the kernel launches inside both contexts
    assert events[:5] == [('device', 1), ('make_stream', 1), ('stream',), ('launch', (3,), (32,), 2), ('stream_exit',)]
    assert ('make_stream', 1) not in events[5:] and events.count(('launch', (3,), (32,), 2)) == 2


def test_the_convergence_check_on_the_whole_chain_path(emu, monkeypatch):
    """The end-of-run check on a kernel path: the start is kept aside (the kernel updates the chains in place), the run
    is split at mid-run for the energies of the drift criterion without changing a number, and the verdicts are the
    torch path's."""
    import torchebm_nb.cuda.dispatch as ld
    calls = spy(monkeypatch, ld.WholeChainLangevin, '__call__')
    model, x0 = GaussianModel(torch.ones(4), torch.eye(4)), start(256, 4)
    def run(step_size, check):
        sampler = LangevinDynamics(model, step_size=step_size)
        sampler.check_convergence = check
        with use_backend(emu), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            out = sampler.sample(x0, n_steps=100, generator=torch.Generator().manual_seed(3))
        return out, [str(w.message) for w in caught if issubclass(w.category, UnconvergedWarning)]
    healthy, warned = run(0.05, True)
    assert len(calls) == 2 and warned == [], (calls, warned)          # two launches: steps 0–49 and 50–99
    unchecked, _ = run(0.05, False)
    assert len(calls) == 3 and torch.equal(healthy, unchecked)
    _, warned = run(1e-3, True)                                        # TorchEBM's default step: barely moves
    assert len(warned) == 1 and 'LangevinDynamics (step_size=0.001)' in warned[0] and 'of their spread' in warned[0], warned


def test_mala_takes_the_whole_chain_hmc_kernel(emu, monkeypatch):
    "MALA(h) on the kernel path is the HMC kernel with L = 1 and step √(2h): the same launches, the same numbers."
    import torchebm_nb.cuda.dispatch as hm
    from torchebm_nb.samplers import MetropolisAdjustedLangevin
    calls = spy(monkeypatch, hm.WholeChainHMC, '__call__')
    model, x0, h = energies(3)['gaussian_full'], start(32, 3), 0.3
    with use_backend(emu), no_convergence_check():   # the check would split a run at mid-run (tested below)
        a, da = MetropolisAdjustedLangevin(model, step_size=h).sample(x0, n_steps=12, thin=4, return_diagnostics=True,
                                                                     generator=torch.Generator().manual_seed(2))
        b, db = HamiltonianMonteCarlo(model, step_size=math.sqrt(2 * h), n_leapfrog_steps=1).sample(
            x0, n_steps=12, thin=4, return_diagnostics=True, generator=torch.Generator().manual_seed(2))
    assert len(calls) == 6   # three kept steps, two samplers
    assert torch.equal(a, b) and torch.equal(da['acceptance_rate'], db['acceptance_rate'])
    assert 0.0 < float(da['acceptance_rate'].mean()) <= 1.0


def test_adapted_hmc_samples_on_the_kernel_path(emu, monkeypatch):
    "Warm-up runs on torch; the tuned sampler (tensor mass, constant step) then takes the whole-chain kernel."
    import torchebm_nb.cuda.dispatch as hm
    from torchebm_nb.samplers.adaptation import window_adaptation
    calls = spy(monkeypatch, hm.WholeChainHMC, '__call__')
    model = energies(3)['gaussian_diag']
    sampler = HamiltonianMonteCarlo(model, step_size=0.01, n_leapfrog_steps=4)
    with use_backend(emu):
        res = window_adaptation(sampler, start(64, 3), n_warmup=40, adapt_mass=True, generator=1)
        assert not calls   # warm-up: torch path
        sampler.sample(res.x, n_steps=5, generator=2)
    assert len(calls) == 1 and torch.is_tensor(sampler.mass)
