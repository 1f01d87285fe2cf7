"""The CUDA kernels on a GPU: equal to the torch path when fed the same numbers, right in distribution, and used by
the samplers by default. Run on a GPU machine with CuPy: `pytest tests/cuda -m cuda` (skipped elsewhere).

Exactness: with `--fmad=false` the kernels round exactly the operations torch's eager kernels round, and use a fused
multiply-add exactly where torch's scaled operations (`add(alpha=)`, `addcmul`) compile to one. The fused update and the
energies whose gradient needs only +, −, × (harmonic, diagonal Gaussian) must reproduce the torch path bit for bit
(`torch.equal`); the others (an addcmul whose rounding depends on the torch build, sin/cos/exp, reductions) are compared
to float rounding.
"""
import math

import pytest
import torch

from torchebm_nb.core import BaseModel, DoubleWellModel, HarmonicModel
from torchebm_nb.cuda import disable_kernels, enable_kernels, kernels_available
from torchebm_nb.cuda.kernels import hmc_chain_, langevin_chain_, langevin_update_
from torchebm_nb.cuda.philox import philox_counters, philox_normal
from torchebm_nb.samplers import HamiltonianMonteCarlo, LangevinDynamics

from kernel_refs import FedHMC, FedLangevin, energies, hmc_numbers, langevin_normals, sampler_seed

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available() or not kernels_available('cuda'),
                                 reason='needs a CUDA GPU with CuPy')]
DEV = 'cuda'
EXACT = ['harmonic', 'gaussian_diag']   # +, −, × and torch's scaled add only; the double well's addcmul is one fused
# multiply-add in torch ≥ 2.12 (DeviceAddCmulCdiv.cuh) but depends on nvcc's contraction before, so it is compared to rounding
ENERGIES = list(energies())


def start(n_chains, dim, seed=0, scale=1.0):
    return (scale * torch.randn(n_chains, dim, generator=torch.Generator().manual_seed(seed))).to(DEV)


def test_fused_update_equals_torch_step_exactly():
    g = torch.Generator(DEV).manual_seed(0)
    for n in (1, 7, 4096, 1_000_003):
        x, grad, xi = (torch.randn(n, generator=g, device=DEV) for _ in range(3))
        ref = torch.add(x, grad.neg(), alpha=0.03).add_(xi, alpha=0.7)
        langevin_update_(x, grad, 0.03, 0.7, seed=1, noise=xi)
        assert torch.equal(x, ref), n


def test_fused_update_philox_normals_match_reference():
    n, seed, counter = 1_000_003, 2**50 + 3, 12345
    x = torch.zeros(n, device=DEV)
    nxt = langevin_update_(x, torch.zeros_like(x), 0.0, 1.0, seed=seed, counter=counter)
    assert nxt == counter + philox_counters(n)
    torch.testing.assert_close(x, philox_normal((n,), seed, counter, device=DEV), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize('name', ENERGIES)
def test_langevin_chain_equals_torch_sampler(name):
    model = energies(device=DEV)[name]
    n_steps, h = 50, (1e-3 if name == 'rosenbrock' else 0.01)
    x0 = start(1000, 4)
    xi = torch.randn(n_steps, 1000, 4, generator=torch.Generator(DEV).manual_seed(2), device=DEV)
    ref = FedLangevin(model, step_size=h, noise_scale=0.8, clamp=(-3.0, 3.0), noise=xi).sample(x0, n_steps=n_steps)
    x = x0.clone()
    langevin_chain_(x, model, [h] * n_steps, [0.8 * math.sqrt(2 * h)] * n_steps, seed=0, noise=xi, clamp=(-3.0, 3.0))
    if name in EXACT: assert torch.equal(x, ref)
    else: torch.testing.assert_close(x, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', ENERGIES)
@pytest.mark.parametrize('mass', [None, 2.0, 'tensor'])
def test_hmc_chain_matches_torch_sampler(name, mass):
    model = energies(device=DEV)[name]
    m = torch.tensor([0.5, 1.0, 2.0, 4.0], device=DEV) if mass == 'tensor' else mass
    n_iter, h, B = 10, (2e-3 if name == 'rosenbrock' else 0.05), 1000
    x0 = start(B, 4, scale=0.7)
    g = torch.Generator(DEV).manual_seed(3)
    momenta, uniforms = torch.randn(n_iter, B, 4, generator=g, device=DEV), torch.rand(n_iter, B, generator=g, device=DEV)
    ref, diag = FedHMC(model, step_size=h, n_leapfrog_steps=5, mass=m, momenta=momenta, uniforms=uniforms).sample(
        x0, n_steps=n_iter, return_diagnostics=True)
    x = x0.clone()
    _, energy, accepted = hmc_chain_(x, model, [h] * n_iter, 5, seed=0, mass=m, noise=momenta, uniforms=uniforms)
    # a Metropolis test within rounding of its threshold may go the other way: allow 1 % of chains to differ
    agree = ((x - ref).abs() <= 1e-4 + 1e-4 * ref.abs()).all(1)
    assert agree.float().mean().item() >= 0.99
    assert abs(accepted.float().mean().item() - diag['acceptance_rate'][-1].item()) <= 0.01


def test_samplers_use_kernels_by_default(monkeypatch):
    import torchebm_nb.cuda.dispatch as dispatch
    calls = {'chain': 0, 'fused': 0, 'hmc': 0}
    for mod, name, key in ((dispatch.WholeChainLangevin, '__call__', 'chain'), (dispatch.FusedLangevinUpdate, '__call__', 'fused'), (dispatch.WholeChainHMC, '__call__', 'hmc')):
        real = getattr(mod, name)
        def wrapper(*a, _real=real, _key=key, **k):
            calls[_key] += 1; return _real(*a, **k)
        monkeypatch.setattr(mod, name, wrapper)

    class Wrapped(BaseModel):
        def __init__(self): super().__init__(); self.inner = HarmonicModel()
        def forward(self, x): return self.inner(x)

    LangevinDynamics(DoubleWellModel().to(DEV), step_size=0.01).sample(dim=8, n_samples=64, n_steps=10)
    LangevinDynamics(Wrapped().to(DEV), step_size=0.01).sample(dim=8, n_samples=64, n_steps=10)
    HamiltonianMonteCarlo(HarmonicModel().to(DEV), step_size=0.1).sample(dim=8, n_samples=64, n_steps=10)
    assert calls == {'chain': 1, 'fused': 10, 'hmc': 1}
    disable_kernels()
    try: LangevinDynamics(DoubleWellModel().to(DEV), step_size=0.01).sample(dim=8, n_samples=64, n_steps=10)
    finally: enable_kernels()
    assert calls['chain'] == 1


def test_sampler_kernel_path_equals_fed_torch_path():
    model = energies(device=DEV)['double_well']
    x0, n_steps = start(512, 32), 100
    out = LangevinDynamics(model, step_size=0.01).sample(x0, n_steps=n_steps, generator=torch.Generator(DEV).manual_seed(5))
    xi = langevin_normals(n_steps, (512, 32), sampler_seed(5, DEV), device=DEV)
    ref = FedLangevin(model, step_size=0.01, noise=xi).sample(x0, n_steps=n_steps)
    torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3)   # a wrong seed or counter layout differs by O(1)


def test_langevin_double_well_marginal():
    "4096 chains × 32 independent double-well coordinates: symmetric occupancy (4 SE) and E[x²] against quadrature."
    xs = LangevinDynamics(DoubleWellModel(barrier_height=1.0).to(DEV), step_size=0.005).sample(
        dim=32, n_samples=4096, n_steps=4000, generator=torch.Generator(DEV).manual_seed(0))
    frac = (xs > 0).double().mean().item()
    assert abs(frac - 0.5) < 4 * math.sqrt(0.25 / xs.numel())
    u = torch.linspace(-4, 4, 200_001, dtype=torch.float64)
    w = torch.exp(-(u.square() - 1).square())
    second = ((u.square() * w).sum() / w.sum()).item()
    assert abs(xs.double().square().mean().item() - second) < 0.02 * second   # EM bias at h = 0.005 is well below 2 %


def test_langevin_harmonic_stationary_variance():
    k, h, n = 2.0, 0.05, 200_000
    xs = LangevinDynamics(HarmonicModel(k=k).to(DEV), step_size=h).sample(
        dim=4, n_samples=n, n_steps=300, generator=torch.Generator(DEV).manual_seed(1))
    exact = 1 / (k * (1 - h * k / 2))
    assert ((xs.var(0) - exact).abs() < 4 * exact * math.sqrt(2 / n)).all()


def test_hmc_gaussian_moments():
    model = energies(4, device=DEV)['gaussian_full']
    n = 100_000
    xs, diag = HamiltonianMonteCarlo(model, step_size=0.15, n_leapfrog_steps=10).sample(
        dim=4, n_samples=n, n_steps=100, return_diagnostics=True, generator=torch.Generator(DEV).manual_seed(2))
    cov, var = model.cov, torch.diagonal(model.cov)
    assert ((xs.mean(0) - model.mean).abs() < 5 * torch.sqrt(var / n)).all()
    cov_se = torch.sqrt((var[:, None] * var[None, :] + cov.square()) / n)   # SE of a Gaussian sample covariance
    assert ((torch.cov(xs.T) - cov).abs() < 5 * cov_se).all()
    assert 0.5 < diag['acceptance_rate'][-20:].mean().item() <= 1.0


def test_kernels_follow_torch_current_stream():
    model = DoubleWellModel().to(DEV)
    x0 = start(256, 16)
    a = LangevinDynamics(model, step_size=0.01).sample(x0, n_steps=200, generator=torch.Generator(DEV).manual_seed(7))
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        b = LangevinDynamics(model, step_size=0.01).sample(x0, n_steps=200, generator=torch.Generator(DEV).manual_seed(7))
        c = b * 1.0                       # a torch op on the same stream, ordered after the kernel
    torch.cuda.synchronize()
    assert torch.equal(a, b) and torch.equal(b, c)
