"""Annealed importance sampling (nbs/20_samplers/07_ais.ipynb) against partition functions known in closed form
or by quadrature. Tolerances: 4 standard errors of the estimate (plus se²/2 for the known downward bias of log Ẑ)."""
import math

import pytest
import torch

from torchebm_nb.core import DoubleWellModel, GaussianModel, HarmonicModel
from torchebm_nb.samplers.ais import AnnealedEnergy, annealed_importance_sampling


def gaussian_log_z(cov):
    return 0.5 * cov.shape[0] * math.log(2 * math.pi) + 0.5 * torch.logdet(cov.double()).item()


def test_base_equal_to_target_gives_equal_weights_and_the_exact_answer():
    cov = torch.tensor([[2.0, 0.3], [0.3, 0.5]])
    target = GaussianModel(torch.tensor([1.0, -2.0]), cov)
    r = annealed_importance_sampling(target, n_samples=200, n_temperatures=10, base=target, generator=0)
    assert torch.allclose(r.log_weights, torch.zeros_like(r.log_weights), atol=1e-5)
    assert abs(r.log_z - gaussian_log_z(cov)) < 1e-5 and abs(r.ess - 200) < 1e-3


@pytest.mark.parametrize('schedule', ['linear', 'geometric', 'sigmoid'])
def test_gaussian_10d_log_z_within_standard_errors(schedule):
    scales = torch.linspace(0.5, 1.5, 10)
    mean = torch.linspace(-1.0, 1.0, 10)
    cov = torch.diag(scales.square())
    r = annealed_importance_sampling(GaussianModel(mean, cov), n_samples=2000, n_temperatures=200, step_size=0.1, n_steps=2,
                                     schedule=schedule, generator=1)
    exact = gaussian_log_z(cov)
    assert abs(r.log_z - exact) < 4 * r.log_z_stderr + r.log_z_stderr ** 2, (r.log_z, r.log_z_stderr, exact)
    assert r.ess > 200


def test_z_itself_is_unbiased_over_repeated_runs():
    "E[Ẑ] = Z: the mean of Ẑ/Z over independent runs is 1 within 4 standard errors."
    model = HarmonicModel(k=4.0)   # N(0, I/4) in 3-D: log Z = 1.5 log(2π/4)
    exact = 1.5 * math.log(2 * math.pi / 4.0)
    ratios = torch.tensor([math.exp(annealed_importance_sampling(model, n_samples=50, n_temperatures=10, dim=3,
                                                                 step_size=0.05, generator=s).log_z - exact)
                           for s in range(40)], dtype=torch.float64)
    assert abs(ratios.mean().item() - 1.0) < 4 * ratios.std().item() / math.sqrt(len(ratios))


def test_double_well_by_quadrature():
    dw = DoubleWellModel(barrier_height=3.0, b=1.5)
    grid = torch.linspace(-6, 6, 400001, dtype=torch.float64)
    exact = torch.log(torch.trapezoid(torch.exp(-dw(grid[:, None]).double()), grid)).item()
    base = GaussianModel(torch.zeros(1), torch.eye(1) * 2.0)   # wide enough to cover both wells at ±1.5
    r = annealed_importance_sampling(dw, n_samples=3000, n_temperatures=300, dim=1, base=base, step_size=0.02,
                                     n_steps=2, generator=2)
    assert abs(r.log_z - exact) < 4 * r.log_z_stderr + 0.01, (r.log_z, r.log_z_stderr, exact)


def test_annealed_energy_gradient_matches_autograd_along_the_path():
    path = AnnealedEnergy(GaussianModel(torch.zeros(3), torch.eye(3) * 2.0), DoubleWellModel())
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(3))
    for beta in (0.0, 0.3, 1.0):
        path.beta = beta
        x_ = x.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(path(x_).sum(), x_)
        assert torch.allclose(path.gradient(x), auto, atol=1e-5)
