"""Every MCMC sampler samples chains of any event shape: a correlated Gaussian on (B, 1, 8, 8) "images".

The target is N(μ, Σ) on the 64 pixels in raster order, with standard deviations rising across the image and an AR(1)
correlation ρ^|i−j| between pixels, so a sampler that mixed up the event dimensions, broadcast a per-pixel mass the
wrong way or summed an energy over the wrong axis would get the means, variances or neighbour covariances wrong.
Chains start far from the target (at −2 everywhere; Langevin, whose bias is checked too, at 0); the final states of B independent chains are compared with the
exact moments, with tolerances from Monte-Carlo standard errors.
"""
import math

import pytest
import torch

from torchebm_nb.core import BaseModel
from torchebm_nb.integrators import GeneralisedLeapfrogIntegrator
from torchebm_nb.samplers import (HamiltonianMonteCarlo, LangevinDynamics, MetropolisAdjustedLangevin, NoUTurnSampler,
                                  ParallelTempering, RiemannianManifoldHMC, window_adaptation)

SHAPE, D, B = (1, 8, 8), 64, 2000


class ImageGaussian(BaseModel):
    "E(x) = ½(x − μ)ᵀP(x − μ) on flattened (B, 1, 8, 8) images, with its closed-form gradient."
    def __init__(self, mean: torch.Tensor, cov: torch.Tensor):
        super().__init__()
        self.register_buffer('mu', mean.reshape(SHAPE))
        self.register_buffer('precision', torch.linalg.inv(cov))

    def forward(self, x):
        z = (x - self.mu).flatten(1)
        return 0.5 * ((z @ self.precision) * z).sum(1)

    def gradient(self, x, model_kwargs=None):
        return ((x - self.mu).flatten(1) @ self.precision).reshape(x.shape)


def target():
    sd = torch.linspace(0.5, 1.5, D)
    idx = torch.arange(D)
    cov = sd[:, None] * sd[None, :] * 0.5 ** (idx[:, None] - idx[None, :]).abs()
    mean = torch.linspace(-1.0, 1.0, D)
    return mean, cov, sd


def check_moments(xs: torch.Tensor, what: str, bias: float = 0.0):
    "Means, variances and neighbour covariances of the final states against the exact ones (max over pixels, ~4.5 SE)."
    mean, cov, sd = target()
    B = xs.shape[0]
    assert xs.shape[1:] == SHAPE, (what, xs.shape)
    flat = xs.reshape(B, D).double()
    z_mean = ((flat.mean(0) - mean) / (sd / math.sqrt(B))).abs().max().item()
    var = flat.var(0)
    z_var = ((var - sd ** 2).abs() / (sd ** 2 * math.sqrt(2 / B))).max().item()
    centred = flat - flat.mean(0)
    neighbour = (centred[:, 1:] * centred[:, :-1]).mean(0)
    exact = torch.diagonal(cov, 1)
    se = torch.sqrt((sd[1:] ** 2 * sd[:-1] ** 2 + exact ** 2) / B)
    z_cov = ((neighbour - exact).abs() / se).max().item()
    limit = 4.5 + bias
    assert z_mean < limit and z_var < limit and z_cov < limit, (what, z_mean, z_var, z_cov)


@pytest.fixture(scope='module')
def model():
    mean, cov, _ = target()
    return ImageGaussian(mean, cov)


def start(n: int = B):
    return torch.full((n, *SHAPE), -2.0)


def mass():
    return (1.0 / target()[2] ** 2).reshape(SHAPE)


def test_hmc_images(model):
    xs = HamiltonianMonteCarlo(model, step_size=0.25, n_leapfrog_steps=8, mass=mass()).sample(x=start(), n_steps=150, generator=1)
    check_moments(xs, 'HMC')


def test_mala_images(model):
    xs = MetropolisAdjustedLangevin(model, step_size=0.08, mass=mass()).sample(x=start(), n_steps=600, generator=2)
    check_moments(xs, 'MALA')


def test_nuts_images(model):
    sampler = NoUTurnSampler(model, step_size=0.35, max_tree_depth=5, mass=mass())
    xs = sampler.sample(x=start(1000), n_steps=30, generator=3)
    check_moments(xs, 'NUTS')
    assert sampler.last_run_stats['tree_depth'].shape == (30,)


def test_riemannian_hmc_images(model):
    "A constant metric equal to the precision: the metric function sees (B, 1, 8, 8) and returns (B, 64, 64)."
    precision = model.precision
    def metric(x):
        assert x.shape[1:] == SHAPE
        return precision.expand(x.shape[0], D, D)
    solver = GeneralisedLeapfrogIntegrator(solver_max_iter=8, solver_tol=1e-6, solver_check_every=1)   # stops once settled
    xs = RiemannianManifoldHMC(model, metric, step_size=0.6, n_leapfrog_steps=4, integrator=solver).sample(
        x=start(400), n_steps=15, generator=4)
    check_moments(xs, 'Riemannian HMC')


def test_langevin_images_within_its_known_bias(model):
    "Unadjusted Langevin is biased by O(h); at h = 0.005 the bias is about one standard error of a variance here."
    xs = LangevinDynamics(model, step_size=0.005).sample(x=torch.zeros(B, *SHAPE), n_steps=8000, generator=5)
    check_moments(xs, 'Langevin', bias=1.0)


def test_adapted_mass_has_the_event_shape(model):
    "Warm-up estimates one mass per pixel; the tuned sampler then samples the images."
    sampler = HamiltonianMonteCarlo(model, step_size=0.05, n_leapfrog_steps=8)
    res = window_adaptation(sampler, start(), n_warmup=150, adapt_mass=True, generator=6)
    assert sampler.mass.shape == SHAPE
    ratio = (sampler.mass * target()[2].reshape(SHAPE) ** 2).flatten()   # m·σ² ≈ 1 (the marginal variances, pooled)
    assert ((ratio > 0.6) & (ratio < 1.6)).all(), ratio
    check_moments(sampler.sample(x=res.x, n_steps=60, generator=7), 'adapted HMC')


def test_parallel_tempering_images(model):
    pt = ParallelTempering(HamiltonianMonteCarlo(model, step_size=0.25, n_leapfrog_steps=8, mass=mass()), n_replicas=3,
                           max_temperature=3.0)
    xs = pt.sample(x=start(), n_steps=120, generator=8)
    check_moments(xs, 'PT over HMC')
    assert pt.last_replicas.shape == (3, B, *SHAPE)


def test_wrong_mass_shape_is_refused(model):
    with pytest.raises(ValueError, match=r'mass has shape \(64,\) \(64 entries\) but the chains have event shape \(1, 8, 8\)'):
        HamiltonianMonteCarlo(model, step_size=0.1, mass=torch.ones(64)).sample(x=start()[:4], n_steps=1)
