"""Statistical tests of the MCMC samplers on targets with known statistics.

Every tolerance is a number of Monte-Carlo standard errors (4 unless stated) computed from the sample itself.
Chains are independent and only their final states are used, so the draws are i.i.d. and the standard error of
a mean is sd/sqrt(n). Unadjusted Langevin is biased by O(h); where that matters the comparison is with the
exact stationary law of the discretised chain, which is known for Gaussian targets.
"""
import math

import pytest
import torch

from torchebm_nb.core import BaseModel, DoubleWellModel, GaussianModel, HarmonicModel
from torchebm_nb.samplers import HamiltonianMonteCarlo, LangevinDynamics

Z = 4.0  # standard errors


def seed(s):
    return torch.Generator().manual_seed(s)


def assert_mean_within(samples, expected, what):
    n = samples.shape[0]
    se = samples.std(0, unbiased=True) / math.sqrt(n)
    z = ((samples.mean(0) - expected) / se).abs()
    assert bool((z < Z).all()), f"{what}: |z| up to {z.max():.2f} (means {samples.mean(0)} vs {expected})"


def assert_cov_within(samples, expected, what):
    """Each covariance entry against `expected`, with the standard error of the product estimator."""
    n = samples.shape[0]
    c = samples - samples.mean(0)
    products = c[:, :, None] * c[:, None, :]
    se = products.std(0, unbiased=True) / math.sqrt(n)
    z = ((products.mean(0) - expected) / se).abs()
    assert bool((z < Z).all()), f"{what}: |z| up to {z.max():.2f}\n{products.mean(0)}\nvs\n{expected}"


def em_stationary_cov(precision, h):
    """Stationary covariance of x ← x − hP(x − μ) + √(2h)ξ: (P − hP²/2)⁻¹."""
    return torch.linalg.inv(precision - 0.5 * h * precision @ precision)


def test_langevin_correlated_gaussian_matches_discretised_law():
    mean = torch.tensor([1.0, -1.0], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)
    model = GaussianModel(mean, cov, dtype=torch.float64)
    h = 0.02
    x = LangevinDynamics(model, step_size=h, dtype=torch.float64).sample(
        dim=2, n_samples=20_000, n_steps=1500, generator=seed(0))
    assert_mean_within(x, mean, 'Langevin mean')
    assert_cov_within(x, em_stationary_cov(model.cov_inv, h), 'Langevin covariance (EM stationary law)')


@pytest.mark.parametrize('h', [0.2, 0.1, 0.05])
def test_langevin_variance_bias_is_the_known_first_order_term(h):
    """For N(0, 1) the EM chain's stationary variance is 1/(1 − h/2): the O(h) bias, measured."""
    x = LangevinDynamics(HarmonicModel(), step_size=h, dtype=torch.float64).sample(
        dim=1, n_samples=100_000, n_steps=int(12 / h), generator=seed(1))[:, 0]
    v, n = x.var().item(), x.numel()
    se = math.sqrt(2 / (n - 1)) * v
    assert abs(v - 1 / (1 - h / 2)) < Z * se, (h, v)


def test_langevin_bias_shrinks_with_step_size():
    variances = {}
    for h in (0.4, 0.2, 0.1, 0.05):
        x = LangevinDynamics(HarmonicModel(), step_size=h, dtype=torch.float64).sample(
            dim=1, n_samples=100_000, n_steps=int(12 / h), generator=seed(2))
        variances[h] = x.var().item()
    biases = [abs(variances[h] - 1) for h in (0.4, 0.2, 0.1, 0.05)]
    assert biases == sorted(biases, reverse=True), variances
    assert biases[0] > 0.1 and biases[-1] < 0.04, variances


class TiltedDoubleWell(BaseModel):
    """E(x) = (x² − 1)² + 0.4 x: two wells of unequal depth (no closed-form occupancy; quadrature gives it)."""
    def forward(self, x):
        return ((x.square() - 1).square() + 0.4 * x).sum(-1)

    def gradient(self, x, model_kwargs=None):
        return 4 * x * (x.square() - 1) + 0.4


def right_well_probability():
    grid = torch.linspace(-4, 4, 200_001, dtype=torch.float64)
    w = torch.exp(-TiltedDoubleWell()(grid[:, None]))
    return (w[grid > 0].sum() / w.sum()).item()


def test_hmc_double_well_occupancy_matches_quadrature():
    p = right_well_probability()
    x = HamiltonianMonteCarlo(TiltedDoubleWell(dtype=torch.float64), step_size=0.2, n_leapfrog_steps=8,
                              dtype=torch.float64).sample(dim=1, n_samples=8000, n_steps=150, generator=seed(3))
    frac, se = (x[:, 0] > 0).double().mean().item(), math.sqrt(p * (1 - p) / x.shape[0])
    assert abs(frac - p) < Z * se, (frac, p)


def test_langevin_double_well_occupancy():
    """Symmetric 1-D double well: each mode holds half the chains; the tilted one matches quadrature."""
    x = LangevinDynamics(DoubleWellModel(barrier_height=1.0), step_size=0.01).sample(
        dim=1, n_samples=20_000, n_steps=2000, generator=seed(4))
    frac = (x > 0).double().mean().item()
    assert abs(frac - 0.5) < Z * math.sqrt(0.25 / x.shape[0]), frac
    p = right_well_probability()
    x = LangevinDynamics(TiltedDoubleWell(dtype=torch.float64), step_size=0.005, dtype=torch.float64).sample(
        dim=1, n_samples=20_000, n_steps=4000, generator=seed(5))
    frac = (x > 0).double().mean().item()
    # sampling error plus the O(h) discretisation bias (measured ≈ 0.003 at h = 0.005)
    assert abs(frac - p) < Z * math.sqrt(p * (1 - p) / x.shape[0]) + 0.005, (frac, p)


def test_hmc_50d_gaussian_moments():
    g = torch.Generator().manual_seed(6)
    a = torch.randn(50, 50, generator=g, dtype=torch.float64) / math.sqrt(50)
    cov = a @ a.T + 0.5 * torch.eye(50, dtype=torch.float64)
    mean = torch.randn(50, generator=g, dtype=torch.float64)
    model = GaussianModel(mean, cov, dtype=torch.float64)
    x, diag = HamiltonianMonteCarlo(model, step_size=0.15, n_leapfrog_steps=10, dtype=torch.float64).sample(
        n_samples=4000, n_steps=60, return_diagnostics=True, generator=seed(7))
    assert diag['acceptance_rate'][10:].mean() > 0.6
    assert_mean_within(x, mean, 'HMC 50-D mean')
    v = x.var(0)
    se = cov.diagonal() * math.sqrt(2 / (x.shape[0] - 1))
    z = ((v - cov.diagonal()) / se).abs()
    assert bool((z < Z).all()), f"HMC 50-D variances: |z| up to {z.max():.2f}"


def test_hmc_correlated_2d_gaussian_is_unbiased():
    mean = torch.tensor([0.5, -0.5], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.95], [0.95, 1.0]], dtype=torch.float64)
    x = HamiltonianMonteCarlo(GaussianModel(mean, cov, dtype=torch.float64), step_size=0.1, n_leapfrog_steps=12,
                              dtype=torch.float64).sample(n_samples=10_000, n_steps=150, generator=seed(8))
    assert_mean_within(x, mean, 'HMC 2-D mean')
    assert_cov_within(x, cov, 'HMC 2-D covariance (exact, no discretisation bias)')


# ---- MALA -----------------------------------------------------------------------------------------------------

def test_mala_correlated_2d_gaussian_is_unbiased_at_a_large_step():
    """MALA's Metropolis test removes Langevin's O(h) bias: exact moments at h = 0.4, where EM's covariance is off by ~25 %."""
    from torchebm_nb.samplers import MetropolisAdjustedLangevin
    mean = torch.tensor([0.5, -0.5], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.9], [0.9, 1.0]], dtype=torch.float64)
    model = GaussianModel(mean, cov, dtype=torch.float64)
    x, diag = MetropolisAdjustedLangevin(model, step_size=0.04, dtype=torch.float64).sample(
        n_samples=10_000, n_steps=400, return_diagnostics=True, generator=seed(9))
    assert 0.3 < diag['acceptance_rate'][100:].mean() < 0.99
    assert_mean_within(x, mean, 'MALA 2-D mean')
    assert_cov_within(x, cov, 'MALA 2-D covariance (exact, no discretisation bias)')


def test_mala_50d_gaussian_moments_with_a_preconditioning_mass():
    """A diagonal mass equal to the precision's diagonal lets one step size serve scales 100× apart."""
    from torchebm_nb.samplers import MetropolisAdjustedLangevin
    scales = torch.logspace(-1, 1, 50, dtype=torch.float64)   # standard deviations 0.1 … 10
    model = GaussianModel(torch.zeros(50, dtype=torch.float64), torch.diag(scales.square()), dtype=torch.float64)
    sampler = MetropolisAdjustedLangevin(model, step_size=0.3, mass=scales.square().reciprocal(), dtype=torch.float64)
    x, diag = sampler.sample(x=torch.randn(4000, 50, generator=seed(10), dtype=torch.float64) * scales, n_steps=60,
                             return_diagnostics=True, generator=seed(11))
    assert diag['acceptance_rate'][10:].mean() > 0.5
    assert_mean_within(x, torch.zeros(50, dtype=torch.float64), 'MALA 50-D mean')
    z = ((x.var(0) - scales.square()) / (scales.square() * math.sqrt(2 / (x.shape[0] - 1)))).abs()
    assert bool((z < Z).all()), f"MALA 50-D variances: |z| up to {z.max():.2f}"


def test_mala_double_well_occupancy_matches_quadrature():
    from torchebm_nb.samplers import MetropolisAdjustedLangevin
    p = right_well_probability()
    x = MetropolisAdjustedLangevin(TiltedDoubleWell(dtype=torch.float64), step_size=0.05, dtype=torch.float64).sample(
        x=-torch.ones(8000, 1, dtype=torch.float64), n_steps=800, generator=seed(12))
    frac, se = (x[:, 0] > 0).double().mean().item(), math.sqrt(p * (1 - p) / x.shape[0])
    assert abs(frac - p) < Z * se, (frac, p)


def test_mala_is_hmc_with_one_leapfrog_step_draw_for_draw():
    """The same generator gives the same chain: MALA(h) ≡ HMC(L = 1, step √(2h)), mass and schedule included."""
    from torchebm_nb.core import LinearScheduler
    from torchebm_nb.samplers import MetropolisAdjustedLangevin
    model = GaussianModel(torch.tensor([1.0, 0.0, -1.0]), torch.tensor([[1.0, 0.3, 0.0], [0.3, 2.0, 0.1], [0.0, 0.1, 0.5]]))
    mass = torch.tensor([1.0, 0.5, 2.0])
    x0 = torch.randn(64, 3, generator=seed(13))
    mala = MetropolisAdjustedLangevin(model, step_size=LinearScheduler(0.6, 0.1, n_steps=30), mass=mass)
    a, da = mala.sample(x=x0, n_steps=30, return_diagnostics=True, generator=seed(14))
    hs = [0.6 + (0.1 - 0.6) * k / 30 for k in range(30)]
    hmc = HamiltonianMonteCarlo(model, step_size=1.0, n_leapfrog_steps=1, mass=mass)
    x, g = x0.clone(), seed(14)
    for h in hs:   # one HMC iteration per step, at the matching leapfrog step
        hmc.schedulers['step_size'].current_value = math.sqrt(2 * h)
        x = hmc.sample(x=x, n_steps=1, reset_schedulers=False, generator=g)
    assert torch.allclose(a, x, rtol=1e-5, atol=1e-6)
    assert da['acceptance_rate'].mean() < 1.0
