"""`flow_log_likelihood` (issue 18) against a path whose density is known in closed form: data N(μ, Σ) joined to
N(0, I) noise by the linear path x_t = (1 − t) x0 + t x1. Then x_t ~ N(tμ, C_t) with C_t = (1 − t)² I + t² Σ, and the
exact marginal velocity is affine, v(x, t) = μ + (tΣ − (1 − t) I) C_t⁻¹ (x − tμ), with score −C_t⁻¹ (x − tμ) and noise
prediction −σ_t · score, σ_t = 1 − t. The flow's log-likelihood must be log N(x; μ, Σ). Also: Hutchinson's estimate is
unbiased (a z-test of calibrated size, with power on a known shift), seeded runs are bit-identical, bits per dimension
of known cases, and bad arguments are refused before the model is evaluated."""
import math

import pytest
import torch
from torch import nn

from torchebm_nb.integrators import RK4Integrator
from torchebm_nb.samplers.flow_likelihood import bits_per_dim, flow_log_likelihood

MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
SIGMA = torch.tensor([[0.6, 0.25], [0.25, 0.3]], dtype=torch.float64)


class GaussianPath(nn.Module):
    "The exact velocity, score or noise prediction of the linear path from N(0, I) to N(mu, sigma); counts its calls."
    def __init__(self, mu=MU, sigma=SIGMA, prediction='velocity'):
        super().__init__()
        self.mu, self.sigma, self.prediction, self.calls = mu, sigma, prediction, 0

    def forward(self, x, t):
        self.calls += 1
        t = t.reshape(-1, 1, 1)
        eye = torch.eye(len(self.mu), dtype=x.dtype)
        centred = torch.linalg.solve((1 - t) ** 2 * eye + t ** 2 * self.sigma, (x - t[:, :, 0] * self.mu).unsqueeze(-1))
        if self.prediction == 'score': return -centred.squeeze(-1)
        if self.prediction == 'noise': return ((1 - t) * centred).squeeze(-1)      # −σ_t · score
        return self.mu + ((t * self.sigma - (1 - t) * eye) @ centred).squeeze(-1)


def draw(n, seed, mu=MU, sigma=SIGMA):
    g = torch.Generator().manual_seed(seed)
    return mu + torch.randn(n, len(mu), generator=g, dtype=torch.float64) @ torch.linalg.cholesky(sigma).T


def truth(x, mu=MU, sigma=SIGMA):
    "log N(x; mu, sigma), brute force in float64."
    d = x - mu
    quad = (d @ torch.linalg.inv(sigma) * d).sum(1)
    return -0.5 * (quad + torch.logdet(sigma) + len(mu) * math.log(2 * math.pi))


# ---- the closed form --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('integrator, settings, tolerance', [('dopri5', dict(atol=1e-8, rtol=1e-8), 1e-6),
                                                               ('dopri5', {}, 1e-3),
                                                               ('rk4', dict(n_steps=40), 1e-6)])
def test_exact_divergence_gives_the_gaussian_log_density(integrator, settings, tolerance):
    x = draw(200, seed=0)
    log_p = flow_log_likelihood(GaussianPath(), x, integrator=integrator, **settings)
    assert log_p.shape == (200,) and log_p.dtype == torch.float64
    assert (log_p - truth(x)).abs().max() < tolerance


def test_three_dimensions_and_points_far_in_the_tails():
    mu, sigma = torch.tensor([0.5, 0.0, -1.0], dtype=torch.float64), torch.diag(torch.tensor([0.2, 1.5, 0.7], dtype=torch.float64))
    sigma[0, 2] = sigma[2, 0] = 0.1
    x = torch.cat([draw(50, seed=1, mu=mu, sigma=sigma), mu + 4 * torch.ones(1, 3, dtype=torch.float64)])
    log_p = flow_log_likelihood(GaussianPath(mu, sigma), x, atol=1e-8, rtol=1e-8)
    assert (log_p - truth(x, mu, sigma)).abs().max() < 1e-5


def test_the_noise_each_point_flows_back_to_is_standard_normal():
    x = draw(4000, seed=2)
    _, noise = flow_log_likelihood(GaussianPath(), x, integrator='rk4', n_steps=20, return_noise=True)
    se = 4 / math.sqrt(len(x))
    assert noise.mean(0).abs().max() < se and (torch.cov(noise.T) - torch.eye(2, dtype=torch.float64)).abs().max() < 2 * se


@pytest.mark.parametrize('prediction', ['score', 'noise'])
def test_score_and_noise_models_through_the_interpolants_conversion(prediction):
    "Converted to a velocity they give the same ODE as the velocity model (on [ε, 1 − ε]), and the density up to O(ε)."
    x = draw(100, seed=3)
    kw = dict(sample_eps=1e-4, atol=1e-8, rtol=1e-8)
    converted = flow_log_likelihood(GaussianPath(prediction=prediction), x, prediction=prediction, **kw)
    assert (converted - flow_log_likelihood(GaussianPath(), x, **kw)).abs().max() < 1e-6
    assert (converted - truth(x)).abs().max() < 1e-2


# ---- Hutchinson: unbiased, with a calibrated test ----------------------------------------------------------------------
N_TRIALS, N_PER_TRIAL, ALPHA = 200, 100, 0.05


def hutchinson_errors(probe, n_probes=1, seed=11):
    "Estimate − exact for N_TRIALS × N_PER_TRIAL points, on one fixed RK4 grid (the path does not depend on the probes)."
    x = draw(N_TRIALS * N_PER_TRIAL, seed=seed)
    kw = dict(integrator='rk4', n_steps=8)
    estimate = flow_log_likelihood(GaussianPath(), x, divergence='hutchinson', probe=probe, n_probes=n_probes,
                                   generator=seed, **kw)
    return (estimate - flow_log_likelihood(GaussianPath(), x, **kw)).reshape(N_TRIALS, N_PER_TRIAL)


def rejection_rate(errors, shift=0.0):
    "Two-sided z-test of mean error = shift in each trial (one row), at level ALPHA."
    z = (errors.mean(1) - shift) / (errors.std(1) / math.sqrt(errors.shape[1]))
    return (z.abs() > 1.959964).double().mean().item()


@pytest.mark.parametrize('probe', ['rademacher', 'gaussian'])
def test_hutchinson_is_unbiased_with_a_test_of_calibrated_size_and_power(probe):
    errors = hutchinson_errors(probe)
    band = 4 * math.sqrt(ALPHA * (1 - ALPHA) / N_TRIALS)
    assert abs(rejection_rate(errors) - ALPHA) < band, rejection_rate(errors)             # size under the null
    shift = 0.5 * errors.std().item()                                                        # a known bias of half an SD
    assert rejection_rate(errors, shift=shift) > 0.9, rejection_rate(errors, shift=shift)   # power
    assert abs(errors.mean().item()) < 4 * errors.std().item() / math.sqrt(errors.numel())


def test_rademacher_probes_vary_less_than_gaussian_and_more_probes_less_still():
    rademacher, gaussian = hutchinson_errors('rademacher').std(), hutchinson_errors('gaussian').std()
    assert rademacher < gaussian, (rademacher, gaussian)
    four = hutchinson_errors('rademacher', n_probes=4).std()
    assert 0.35 < (four / rademacher).item() < 0.65, (four, rademacher)                  # 1/√4, with sampling error


def test_diagonal_jacobian_makes_rademacher_exact():
    sigma = torch.diag(torch.tensor([0.5, 2.0], dtype=torch.float64))
    x, kw = draw(50, seed=4, sigma=sigma), dict(integrator='rk4', n_steps=10)
    estimate = flow_log_likelihood(GaussianPath(sigma=sigma), x, divergence='hutchinson', generator=0, **kw)
    assert (estimate - flow_log_likelihood(GaussianPath(sigma=sigma), x, **kw)).abs().max() < 1e-12


def test_seeded_runs_are_bit_identical():
    x = draw(64, seed=5)
    run = lambda seed: flow_log_likelihood(GaussianPath(), x, divergence='hutchinson', probe='gaussian', n_probes=2,
                                           generator=seed)
    assert torch.equal(run(9), run(9))
    assert torch.equal(run(9), flow_log_likelihood(GaussianPath(), x, divergence='hutchinson', probe='gaussian',
                                                   n_probes=2, generator=torch.Generator().manual_seed(9)))
    assert not torch.equal(run(9), run(10))
    assert torch.equal(flow_log_likelihood(GaussianPath(), x), flow_log_likelihood(GaussianPath(), x))


def test_float32_follows_the_input():
    x = draw(32, seed=6).float()
    field = GaussianPath(MU.float(), SIGMA.float())
    log_p = flow_log_likelihood(field, x)
    assert log_p.dtype == torch.float32 and (log_p.double() - truth(x.double())).abs().max() < 1e-3


# ---- bits per dimension ------------------------------------------------------------------------------------------------
def test_bits_per_dim_of_known_cases():
    assert torch.allclose(bits_per_dim(torch.zeros(2), 3 * 32 * 32), torch.full((2,), 8.0))     # uniform on [0, 1)^D
    assert torch.allclose(bits_per_dim(torch.zeros(1), 5, scale=2 / 256), torch.full((1,), 7.0))  # uniform on [-1, 1)^D
    # a standard normal model, scored through its flow at x = 0: −log2 N(0; 0, I)/D + 8 = ½ log2(2π) + 8
    zero, identity = torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)
    log_p = flow_log_likelihood(GaussianPath(zero, identity), torch.zeros(1, 3, dtype=torch.float64), atol=1e-9, rtol=1e-9)
    assert abs(bits_per_dim(log_p, 3).item() - (8 + 0.5 * math.log2(2 * math.pi))) < 1e-8


# ---- bad input, refused before the model is evaluated -------------------------------------------------------------------
X = draw(8, seed=7)


def likelihood(model, **kw):
    kw.setdefault('x', X)
    return lambda: flow_log_likelihood(model, **kw)


CASES = {  # name: (call given the counting model, exception type, argument named, expected words)
    'x 1-D': (lambda m: likelihood(m, x=X[:, 0]), ValueError, 'x', 'batch of shape'),
    'x a list': (lambda m: likelihood(m, x=X.tolist()), TypeError, 'x', 'torch.Tensor'),
    'x integer': (lambda m: likelihood(m, x=X.long()), TypeError, 'x', 'floating'),
    'x empty': (lambda m: likelihood(m, x=X[:0]), ValueError, 'x', 'at least one'),
    'x with nan': (lambda m: likelihood(m, x=torch.cat([X, X[:1] * math.nan])), ValueError, 'x', 'non-finite'),
    'model not callable': (lambda m: likelihood(3), TypeError, 'model', 'callable'),
    'n_probes=0': (lambda m: likelihood(m, divergence='hutchinson', n_probes=0), ValueError, 'n_probes', 'got 0'),
    'n_probes=-2': (lambda m: likelihood(m, divergence='hutchinson', n_probes=-2), ValueError, 'n_probes', 'got -2'),
    'n_probes=1.5': (lambda m: likelihood(m, divergence='hutchinson', n_probes=1.5), TypeError, 'n_probes', 'int'),
    "probe='normal'": (lambda m: likelihood(m, divergence='hutchinson', probe='normal'), ValueError, 'probe', "'normal'"),
    'probe=3': (lambda m: likelihood(m, divergence='hutchinson', probe=3), TypeError, 'probe', 'int'),
    "divergence='trace'": (lambda m: likelihood(m, divergence='trace'), ValueError, 'divergence', "'trace'"),
    'divergence=None': (lambda m: likelihood(m, divergence=None), TypeError, 'divergence', 'NoneType'),
    "prediction='x0'": (lambda m: likelihood(m, prediction='x0'), ValueError, 'prediction', "'x0'"),
    "interpolant='spline'": (lambda m: likelihood(m, interpolant='spline'), ValueError, 'interpolant', "'spline'"),
    "integrator='nope'": (lambda m: likelihood(m, integrator='nope'), ValueError, 'integrator', "'nope'"),
    "integrator='leapfrog'": (lambda m: likelihood(m, integrator='leapfrog'), TypeError, 'integrator', 'Runge'),
    'integrator float32': (lambda m: likelihood(m, integrator=RK4Integrator()), ValueError, 'integrator', 'dtype'),
    'atol with an instance': (lambda m: likelihood(m, integrator=RK4Integrator(dtype=torch.float64), atol=1e-3),
                              ValueError, 'atol', 'instance'),
    'atol=-1': (lambda m: likelihood(m, atol=-1.0), ValueError, 'atol', '-1'),
    'n_steps=0': (lambda m: likelihood(m, n_steps=0), ValueError, 'n_steps', 'got 0'),
    'sample_eps=0.5': (lambda m: likelihood(m, sample_eps=0.5), ValueError, 'sample_eps', '0.5'),
    'sample_eps=-0.1': (lambda m: likelihood(m, sample_eps=-0.1), ValueError, 'sample_eps', '-0.1'),
    'score model at t=0': (lambda m: likelihood(m, prediction='score'), ValueError, 'sample_eps', 't=0'),
    'noise model at t=1': (lambda m: likelihood(m, prediction='noise', sample_eps=0.0), ValueError, 'sample_eps', 't='),
    "generator='seed'": (lambda m: likelihood(m, generator='seed'), TypeError, 'generator', 'str'),
    'model_kwargs=[1]': (lambda m: likelihood(m, model_kwargs=[1]), TypeError, 'model_kwargs', 'list'),
    'base_log_prob=3': (lambda m: likelihood(m, base_log_prob=3), TypeError, 'base_log_prob', 'int'),
    "return_noise='yes'": (lambda m: likelihood(m, return_noise='yes'), TypeError, 'return_noise', "'yes'"),
    'bits_per_dim of a list': (lambda m: lambda: bits_per_dim([0.0], 4), TypeError, 'log_likelihood', 'list'),
    'bits_per_dim n_dims=0': (lambda m: lambda: bits_per_dim(torch.zeros(1), 0), ValueError, 'n_dims', 'got 0'),
    'bits_per_dim scale=0': (lambda m: lambda: bits_per_dim(torch.zeros(1), 4, scale=0.0), ValueError, 'scale', 'got 0'),
    'bits_per_dim scale=nan': (lambda m: lambda: bits_per_dim(torch.zeros(1), 4, scale=math.nan), ValueError, 'scale', 'finite'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_arguments_are_refused_before_work(case):
    make, kind, name, words = CASES[case]
    model = GaussianPath()
    with pytest.raises(kind) as caught:
        make(model)()
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
    assert model.calls == 0


def test_sensible_arguments_still_work():
    model, x = GaussianPath(), X
    for kw in [dict(), dict(integrator='heun', n_steps=5), dict(integrator=RK4Integrator(dtype=torch.float64), n_steps=3),
               dict(divergence='hutchinson', n_probes=3, probe='gaussian', generator=torch.Generator().manual_seed(0)),
               dict(interpolant='linear', prediction='velocity', base_log_prob=lambda z: -0.5 * z.square().sum(1)),
               dict(sample_eps=0.01, model_kwargs={}), dict(atol=1e-4, rtol=1e-4)]:
        log_p = flow_log_likelihood(model, x, **kw)
        assert log_p.shape == (8,) and torch.isfinite(log_p).all(), kw
    assert model.calls > 0
    assert torch.isfinite(bits_per_dim(torch.zeros(2), 1, scale=1.0)).all()
