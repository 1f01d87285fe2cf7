"""FlowSampler recovers a known Gaussian-to-Gaussian transport, for every prediction type, path and mode.

Noise x0 ~ N(0, I) is carried to N(mu, s^2 I) by the exact marginal field of the path; the samples' means and
variances must match within 4 Monte-Carlo standard errors (plus the O(h) discretisation error of Euler–Maruyama,
bounded by a stated allowance where the SDE is used).

The SDE with every default (sample_eps=0, SBDM diffusion, which is infinite at t = 0) must give the exact law of
its scheme — the 'Mean' last step's affine map of N(αμ, V) at t1 = 0.96 — and the first steps are checked by hand:
the step from t = 0 is the probability-flow step, the next ones Euler–Maruyama on the full SDE. Plain functions and
lambdas are accepted as the field and give exactly what the same field as a module gives.
"""
import math

import pytest
import torch
from torch import nn

from torchebm_nb.integrators import Dopri5Integrator
from torchebm_nb.interpolants import get_interpolant
from torchebm_nb.samplers import FlowSampler

Z = 4.0


class ExactGaussianField(nn.Module):
    def __init__(self, mu, s, interpolant, prediction):
        super().__init__()
        self.mu, self.s, self.interp, self.prediction = mu, s, get_interpolant(interpolant), prediction

    def forward(self, x, t):
        t = t.reshape(-1, *([1] * (x.ndim - 1)))
        a, da = self.interp.compute_alpha_t(t)
        sg, dsg = self.interp.compute_sigma_t(t)
        V = a ** 2 * self.s ** 2 + sg ** 2
        centred = x - a * self.mu
        if self.prediction == 'velocity': return da * self.mu + (a * da * self.s ** 2 + sg * dsg) / V * centred
        if self.prediction == 'score': return -centred / V
        return sg * centred / V


def check_moments(x, mu, s, allowance=0.0):
    n = x.shape[0]
    z_mean = ((x.mean(0) - mu) / (x.std(0) / math.sqrt(n))).abs()
    var_se = s ** 2 * math.sqrt(2 / (n - 1))
    z_var = ((x.var(0) - s ** 2).abs() - allowance).clamp_min(0) / var_se
    assert bool((z_mean < Z).all()), (x.mean(0), mu)
    assert bool((z_var < Z).all()), (x.var(0), s ** 2)


MU = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
S = 0.5


@pytest.mark.parametrize('interpolant', ['linear', 'cosine', 'vp'])
@pytest.mark.parametrize('prediction', ['velocity', 'score', 'noise'])
def test_ode_transport_is_exact(interpolant, prediction):
    eps = 0.0 if (prediction == 'velocity' and interpolant != 'vp') else 1e-4
    field = ExactGaussianField(MU, S, interpolant, prediction)
    sampler = FlowSampler(field, interpolant=interpolant, prediction=prediction, sample_eps=eps, dtype=torch.float64,
                          integrator=Dopri5Integrator(dtype=torch.float64, atol=1e-8, rtol=1e-6))
    x = sampler.sample(dim=3, n_samples=20_000, generator=0)
    if interpolant == 'vp':   # VP starts at alpha(0) ≈ 0.0066, not exactly at the prior: allow its tiny offset
        check_moments(x, MU, S, allowance=0.01)
    else:
        check_moments(x, MU, S)


@pytest.mark.parametrize('prediction', ['velocity', 'score', 'noise'])
@pytest.mark.parametrize('last_step', ['Euler', 'Tweedie'])
def test_sde_transport(prediction, last_step):
    field = ExactGaussianField(MU, S, 'linear', prediction)
    sampler = FlowSampler(field, mode='sde', prediction=prediction, sample_eps=1e-3, last_step=last_step,
                          dtype=torch.float64)
    x = sampler.sample(dim=3, n_samples=20_000, n_steps=400, generator=1)
    check_moments(x, MU, S, allowance=0.02)   # Euler–Maruyama with 400 steps and the last step: O(h) error


def test_reverse_ode_maps_data_to_noise():
    field = ExactGaussianField(MU, S, 'linear', 'velocity')
    data = MU + S * torch.randn(20_000, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    noise = FlowSampler(field, reverse=True, dtype=torch.float64).sample(x=data)
    check_moments(noise, torch.zeros(3, dtype=torch.float64), 1.0)


def test_fixed_step_ode_converges_with_n_steps():
    field = ExactGaussianField(MU, S, 'cosine', 'velocity')
    x0 = torch.randn(2000, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    exact = FlowSampler(field, interpolant='cosine', dtype=torch.float64,
                        integrator=Dopri5Integrator(dtype=torch.float64, atol=1e-10, rtol=1e-10)).sample(x=x0)
    errors = [(FlowSampler(field, interpolant='cosine', integrator='heun', dtype=torch.float64)
               .sample(x=x0, n_steps=n) - exact).abs().max().item() for n in (10, 20, 40)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(1.7 < o < 2.3 for o in orders), (errors, orders)  # Heun is second order


# ---- the SDE with every default: sample_eps=0, SBDM, Euler–Maruyama, 250 steps, 'Mean' last step of 0.04 ------------
def path_coefficients(interpolant, t):
    """(α, α', σ, σ', SBDM diffusion D = (α'/α)σ − σ') at a time t in (0, 1], written out by hand."""
    if interpolant == 'linear':
        a, da, sg, dsg = t, 1.0, 1.0 - t, -1.0
    else:
        c = math.pi / 2
        a, da, sg, dsg = math.sin(c * t), c * math.cos(c * t), math.cos(c * t), -c * math.sin(c * t)
    return a, da, sg, dsg, da / a * sg - dsg


def mean_last_step_law(interpolant, mu, s, delta=0.04):
    """The exact law after the 'Mean' last step from x ~ N(αμ, V I) at t1 = 1 − Δ: everything is affine in x, so
    x + Δ[v + D s] has mean αμ + Δα'μ and standard deviation (1 + Δ(αα's² + σσ' − D)/V)·√V."""
    a, da, sg, dsg, D = path_coefficients(interpolant, 1.0 - delta)
    V = a * a * s * s + sg * sg
    return (a + delta * da) * mu, (1.0 + delta * (a * da * s * s + sg * dsg - D) / V) * math.sqrt(V)


def check_law(x, mean, std, relative_var_allowance=0.0):
    """Sample mean and variance within Z standard errors of N(mean, std²) in every coordinate, the variance after
    subtracting a stated allowance (a relative discretisation bias)."""
    n = x.shape[0]
    z_mean = (x.mean(0) - mean) / (std / math.sqrt(n))
    z_var = ((x.var(0) - std ** 2).abs() - relative_var_allowance * std ** 2).clamp_min(0) / (std ** 2 * math.sqrt(2 / (n - 1)))
    assert bool((z_mean.abs() < Z).all() and (z_var < Z).all()), (x.mean(0), mean, x.std(0), std, z_mean, z_var)


# Euler–Maruyama's O(h) bias in the variance with the default 250 steps, measured with 6·10⁵ float64 samples: +0.7%
# (linear) and +1.3% (cosine) of the exact variance, halving each time the steps double (0.7% at 500, 0.2% at 1000 on
# the cosine path) and the same with sample_eps=1e-3 — so it is the integrator's, not the endpoint treatment's.
EM_VAR_BIAS = 0.02


@pytest.mark.parametrize('interpolant', ['linear', 'cosine'])
def test_sde_with_every_default_reproduces_the_exact_law(interpolant):
    # The SBDM diffusion is infinite at t = 0; the sampler takes its first step with the probability-flow drift.
    mu = MU.float()
    field = ExactGaussianField(mu, S, interpolant, 'velocity')
    x = FlowSampler(field, mode='sde', interpolant=interpolant).sample(dim=3, n_samples=20_000, generator=4)
    assert x.dtype == torch.float32 and bool(torch.isfinite(x).all())
    mean, std = mean_last_step_law(interpolant, mu, S)
    check_law(x, mean, std, EM_VAR_BIAS)


@pytest.mark.parametrize('integrator', ['euler_maruyama', 'heun'])
def test_sde_defaults_with_the_euler_last_step_reach_the_target(integrator):
    field = ExactGaussianField(MU, S, 'linear', 'velocity')
    x = FlowSampler(field, mode='sde', last_step='Euler', integrator=integrator, dtype=torch.float64).sample(
        dim=3, n_samples=20_000, generator=5)
    check_law(x, MU, S, EM_VAR_BIAS)


def test_the_first_sde_steps_from_t0_by_hand():
    # Grid 0, ½, 1 and no last step: the step from t = 0 is x + ½ v(x, 0) (no noise drawn); the step from ½ is
    # Euler–Maruyama with D = 1/t = 2 and the generator's first normal draw.
    field = ExactGaussianField(MU, S, 'linear', 'velocity')
    x0 = torch.randn(6, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    out = FlowSampler(field, mode='sde', last_step=None, dtype=torch.float64).sample(x=x0, n_steps=2, generator=7)
    x1 = x0 + 0.5 * (MU - x0)                                     # v(x, 0) = μ − x for this field
    t, V = 0.5, 0.25 * S ** 2 + 0.25
    velocity = MU + (t * S ** 2 - (1 - t)) / V * (x1 - t * MU)
    score = -(x1 - t * MU) / V
    noise = torch.randn(6, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    expected = x1 + 0.5 * (velocity + 2.0 * score) + math.sqrt(2 * 2.0 * 0.5) * noise
    torch.testing.assert_close(out, expected)
    one_step = FlowSampler(field, mode='sde', last_step=None, dtype=torch.float64).sample(x=x0, n_steps=1, generator=7)
    torch.testing.assert_close(one_step, MU.expand(6, 3))       # x + (μ − x): the probability-flow step lands on μ


def test_steps_with_a_finite_correction_are_unchanged():
    # sample_eps > 0 never meets the singularity: the run equals Euler–Maruyama on the full SDE, step by step.
    field = ExactGaussianField(MU, S, 'linear', 'velocity')
    x0 = torch.randn(5, 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    out = FlowSampler(field, mode='sde', sample_eps=0.1, last_step=None, dtype=torch.float64).sample(x=x0, n_steps=3, generator=9)
    g, x = torch.Generator().manual_seed(9), x0
    for t in (0.1, 0.1 + 0.8 / 3, 0.1 + 1.6 / 3):
        h, V = 0.8 / 3, t * t * S ** 2 + (1 - t) ** 2
        drift = MU + (t * S ** 2 - (1 - t)) / V * (x - t * MU) - (x - t * MU) / V / t
        x = x + h * drift + math.sqrt(2 * h / t) * torch.randn(5, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(out, x)


def test_score_prediction_still_needs_sample_eps():
    field = ExactGaussianField(MU, S, 'linear', 'score')
    with pytest.raises(ValueError, match=r"α'/α is not finite at t=0.*set sample_eps > 0"):
        FlowSampler(field, mode='sde', prediction='score').sample(dim=3, n_samples=4)


# ---- plain callables as the field ------------------------------------------------------------------------------------
@pytest.mark.parametrize('kw', [dict(integrator='rk4'), dict(), dict(mode='sde'), dict(mode='sde', integrator='heun')])
def test_lambda_and_def_fields_match_the_module(kw):
    field = ExactGaussianField(MU, S, 'linear', 'velocity')
    def as_function(x, t): return field(x, t)
    run = lambda model: FlowSampler(model, dtype=torch.float64, **kw).sample(dim=3, n_samples=200, n_steps=30, generator=10)
    by_module = run(field)
    assert torch.equal(run(as_function), by_module)
    assert torch.equal(run(lambda x, t: field(x, t)), by_module)


def test_callable_field_takes_dtype_and_device_from_the_sampler():
    sampler = FlowSampler(lambda x, t: -x, integrator='euler', dtype=torch.float64, device='cpu')
    assert (sampler.dtype, sampler.device.type, list(sampler.parameters())) == (torch.float64, 'cpu', [])
    out = sampler.sample(x=torch.ones(3, 2), n_steps=10)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, torch.full((3, 2), 0.9 ** 10, dtype=torch.float64))


@pytest.mark.parametrize('bad, shown', [(3, 'got int'), ('field', 'got str'), (None, 'got NoneType'),
                                        (nn.Linear, 'got the class Linear')])
def test_non_callable_fields_are_refused(bad, shown):
    with pytest.raises(TypeError, match=f'model must be an nn.Module.*{shown}'):
        FlowSampler(bad)
