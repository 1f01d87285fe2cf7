"""Warm-up adaptation (nbs/20_samplers/06_adaptation.ipynb) beyond the notebook: the tuned samplers stay exact.

Tolerances are 4 Monte-Carlo standard errors computed from i.i.d. final states of independent chains.
"""
import math

import pytest
import torch

from torchebm_nb.core import GaussianModel, HarmonicModel
from torchebm_nb.samplers import HamiltonianMonteCarlo, MetropolisAdjustedLangevin
from torchebm_nb.samplers.adaptation import DualAveragingScheduler, adaptation_windows, window_adaptation

Z = 4.0


@pytest.mark.parametrize('target', [0.5, 0.65, 0.8])
def test_dual_averaging_finds_the_step_of_a_decreasing_response(target):
    "With α(ε) = 1/(1 + ε²) the fixed point is ε* = √(1/δ − 1)."
    da = DualAveragingScheduler(5.0, target_accept=target)
    for _ in range(500): da.update(1.0 / (1.0 + da.get_value() ** 2))
    assert abs(da.final_value - math.sqrt(1 / target - 1)) < 0.02 * math.sqrt(1 / target - 1)


def test_dual_averaging_is_robust_to_noisy_statistics():
    g = torch.Generator().manual_seed(0)
    da = DualAveragingScheduler(0.01, target_accept=0.65)
    for _ in range(2000):
        p = math.exp(-da.get_value())
        da.update(float(torch.rand(50, generator=g).lt(p).float().mean()))   # 50 chains' accept / reject
    assert abs(da.final_value - (-math.log(0.65))) < 0.05


def test_windows_cover_the_slow_phase_without_gaps():
    for n in [20, 57, 150, 151, 333, 1000, 2500]:
        w = adaptation_windows(n)
        assert w and all(a < b for a, b in w)
        assert all(w[i][1] == w[i + 1][0] for i in range(len(w) - 1))
        assert w[0][0] >= 1 and w[-1][1] < n


def test_adapted_hmc_is_unbiased_on_a_correlated_gaussian():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(10, 10, generator=g, dtype=torch.float64) / math.sqrt(10)
    cov = a @ a.T + 0.2 * torch.eye(10, dtype=torch.float64)
    mean = torch.randn(10, generator=g, dtype=torch.float64)
    sampler = HamiltonianMonteCarlo(GaussianModel(mean, cov, dtype=torch.float64), step_size=1e-3, n_leapfrog_steps=8,
                                    dtype=torch.float64)
    res = window_adaptation(sampler, n_samples=4000, n_warmup=200, adapt_mass=True, generator=2)
    x, d = sampler.sample(x=res.x, n_steps=60, return_diagnostics=True, generator=3)
    assert 0.5 < float(d['acceptance_rate'].mean()) < 0.85
    se = x.std(0) / math.sqrt(x.shape[0])
    assert bool(((x.mean(0) - mean).abs() < Z * se).all())
    v_se = cov.diagonal() * math.sqrt(2 / (x.shape[0] - 1))
    assert bool(((x.var(0) - cov.diagonal()).abs() < Z * v_se).all())


def test_mass_estimates_the_inverse_variances():
    scales = torch.tensor([0.05, 0.3, 1.0, 4.0, 20.0], dtype=torch.float64)
    model = GaussianModel(torch.zeros(5, dtype=torch.float64), torch.diag(scales.square()), dtype=torch.float64)
    sampler = MetropolisAdjustedLangevin(model, step_size=1e-3, dtype=torch.float64)
    x0 = torch.randn(2000, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * scales
    res = window_adaptation(sampler, x0, n_warmup=300, adapt_mass=True, generator=5)
    assert torch.is_tensor(sampler.mass) and 'mass' in sampler._buffers and sampler.mass.dtype == torch.float64
    assert torch.allclose(res.mass * scales.square(), torch.ones(5, dtype=torch.float64), rtol=0.1)
    assert abs(res.acceptance_rate - MetropolisAdjustedLangevin.optimal_acceptance) < 0.1


def test_warm_up_changes_nothing_on_the_sampler_until_it_ends():
    "Warm-up passes its values in the step parameters: during it the sampler keeps its schedule and mass."
    sampler = HamiltonianMonteCarlo(HarmonicModel(), step_size=0.1)
    seen = []
    real_step = sampler.step
    def spy(state, params, ctx):
        seen.append((sampler.schedulers['step_size'].get_value(), sampler.mass, params.step_size))
        return real_step(state, params, ctx)
    sampler.step = spy
    res = window_adaptation(sampler, dim=2, n_samples=8, n_warmup=30, adapt_mass=True, generator=0)
    assert all(s == 0.1 and m == 1.0 for s, m, _ in seen)          # untouched while warming up
    assert len({p for _, _, p in seen}) > 1                         # while the step saw the adapted step sizes
    assert sampler.schedulers['step_size'].get_value() == res.step_size and torch.is_tensor(sampler.mass)


