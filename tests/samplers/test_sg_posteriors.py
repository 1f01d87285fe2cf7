"""The SG-MCMC samplers (issue 17) against posteriors known exactly.

Bayesian linear regression has a Gaussian posterior N(μ, Σ). On it SGLD and SGHMC are linear recursions with
a random (minibatch) matrix, so their stationary law is known in closed form *including* the step-size and the
minibatch errors: the mean is exactly μ (the gradient estimate is unbiased and the recursion linear), and the
covariance solves a discrete Lyapunov equation (`stationary_covariance` below). The samples are checked against
those closed forms; pSGLD, whose preconditioner adapts, has none and is checked against Σ with a measured O(h)
tolerance. Bayesian logistic regression is checked against NUTS on the full-data energy (`sampler.model`).

All chains of a run share the minibatch of each step, so the minibatch noise is common to them: every statistic
pools chains and time after burn-in, and its standard error comes from batch means over time (blocks of steps),
never from the spread across chains at one step.
"""
import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torchebm_nb.samplers.nuts import NoUTurnSampler
from torchebm_nb.samplers.stochastic_gradient import StochasticGradientHMC, StochasticGradientLangevin
from torchebm_nb.utils import effective_sample_size

DOUBLE = torch.float64
N_BLOCKS = 25      # batch means over time for the standard errors
Z = 4.0            # tolerances are Z standard errors (plus a stated step-size allowance)


# ---------------------------------------------------------------------------------------------------------------------
# Bayesian linear regression: y = Xw + ε, ε ~ N(0, σ²), w ~ N(0, τ²I)

class SquaredError(nn.Module):
    "Σ_batch (y − θ·x)² / 2σ² for each chain θ: the minibatch sum of the Gaussian negative log-likelihoods."
    def __init__(self, noise_scale):
        super().__init__()
        self.noise_scale = noise_scale
    def forward(self, theta, batch):
        inputs, targets = batch
        return 0.5 * (targets - theta @ inputs.T).square().sum(-1) / self.noise_scale ** 2


N, D, NOISE, PRIOR_SCALE = 400, 2, 1.0, 1.0
_data = torch.Generator().manual_seed(0)
X = torch.randn(N, D, generator=_data, dtype=DOUBLE)
Y = X @ torch.tensor([1.0, -0.5], dtype=DOUBLE) + NOISE * torch.randn(N, generator=_data, dtype=DOUBLE)
PRECISION = X.T @ X / NOISE ** 2 + torch.eye(D, dtype=DOUBLE) / PRIOR_SCALE ** 2     # A = Σ⁻¹
POST_COV = torch.linalg.inv(PRECISION)                                                 # Σ
POST_MEAN = POST_COV @ X.T @ Y / NOISE ** 2                                            # μ
POST_SD = POST_COV.diag().sqrt()


def gaussian_prior(theta):
    return 0.5 * theta.square().sum(-1) / PRIOR_SCALE ** 2


# Per-datum gradients ∇Uᵢ(θ) = aᵢθ − bᵢ, with aᵢ = xᵢxᵢᵀ/σ²: at θ = μ + e they are uᵢ + aᵢe.
_A_I = torch.einsum('ni,nj->nij', X, X) / NOISE ** 2
_A_CENTRED = _A_I - _A_I.mean(0)                                                       # aᵢ − ā
_U = _A_I @ POST_MEAN - X * Y[:, None] / NOISE ** 2
_U_COV = torch.cov(_U.T, correction=0)                                                 # population covariance of uᵢ


def minibatch_factor(batch_size):
    "c with Cov[(N/n)Σ_B wᵢ] = c·Cov_pop(w) for a batch of n drawn without replacement from N: N²(N − n)/(n(N − 1))."
    return N ** 2 * (N - batch_size) / (batch_size * (N - 1))


def stationary_covariance(transition, injected, gradient_map, batch_size):
    """The stationary covariance P of z ← F z + K (ĝ(θ) − ∇E(θ)) + (injected noise), θ − μ = the first D entries of z.

    With θ = μ + e the minibatch error is Δe + η₀ (Δ = Â − A, η₀ the error at μ), both of mean zero and independent of
    z, so P = F P Fᵀ + Q + c·K [Cov_pop(uᵢ) + mean_i (aᵢ − ā) P_ee (aᵢ − ā)] Kᵀ: linear in P, solved by vectorising
    (row-major vec(L P Rᵀ) = (L ⊗ R) vec P). The stationary mean of e is 0: E e ← F E e has only the fixed point 0.
    """
    m = transition.shape[0]
    c = minibatch_factor(batch_size)
    select = torch.eye(D, m, dtype=DOUBLE)                                             # e = select · z
    operator = torch.kron(transition, transition)
    if c:
        spread = gradient_map @ _A_CENTRED @ select                                    # K (aᵢ − ā) select, (N, m, m)
        operator = operator + c * torch.einsum('nij,nkl->ikjl', spread, spread).reshape(m * m, m * m) / N
    noise = injected + c * gradient_map @ _U_COV @ gradient_map.T
    return torch.linalg.solve(torch.eye(m * m, dtype=DOUBLE) - operator, noise.reshape(-1)).reshape(m, m)


def sgld_covariance(step_size, batch_size):
    "SGLD θ ← θ − (h/2)ĝ + √h ξ: F = I − (h/2)A, K = −(h/2)I, Q = hI. Full batch: (A − (h/4)A²)⁻¹."
    eye = torch.eye(D, dtype=DOUBLE)
    return stationary_covariance(eye - 0.5 * step_size * PRECISION, step_size * eye, -0.5 * step_size * eye, batch_size)


def sghmc_covariance(step_size, friction, batch_size):
    """SGHMC (β̂ = 0) on z = (e, v): v' = (1 − α)v − η(Ae + error) + √(2αη) ξ, e' = e + v', so
    F = [[I − ηA, (1 − α)I], [−ηA, (1 − α)I]], K = −η[I; I], Q = 2αη[I; I][I; I]ᵀ; the marginal of θ is P_ee."""
    eye = torch.eye(D, dtype=DOUBLE)
    transition = torch.cat([torch.cat([eye - step_size * PRECISION, (1 - friction) * eye], 1),
                            torch.cat([-step_size * PRECISION, (1 - friction) * eye], 1)], 0)
    both = torch.cat([eye, eye], 0)
    return stationary_covariance(transition, 2 * friction * step_size * both @ both.T, -step_size * both, batch_size)[:D, :D]


def relative_excess(covariance):
    "tr(Σ⁻¹ Σ̂)/d − 1: the relative excess spread over the exact posterior (the 'covariance error')."
    return (torch.linalg.solve(POST_COV, covariance).diagonal(dim1=-2, dim2=-1).sum(-1) / D - 1)


def block_statistics(path):
    """Mean, covariance and relative excess of a trajectory (B, T, d) pooled over chains and time, each with its
    standard error from N_BLOCKS blocks of consecutive steps. Each block's covariance is taken about the overall mean,
    so the common (minibatch) movement of all chains counts as spread."""
    B, T, d = path.shape
    T -= T % N_BLOCKS
    blocks = path[:, :T].reshape(B, N_BLOCKS, T // N_BLOCKS, d).transpose(0, 1).reshape(N_BLOCKS, -1, d)
    means = blocks.mean(1)
    deviations = blocks - means.mean(0)
    covariances = torch.einsum('kbi,kbj->kij', deviations, deviations) / blocks.shape[1]
    excess = relative_excess(covariances)
    se = lambda v: v.std(0) / math.sqrt(N_BLOCKS)
    return dict(mean=means.mean(0), mean_se=se(means), cov=covariances.mean(0), cov_se=se(covariances),
                excess=excess.mean().item(), excess_se=se(excess).item())


def quiet(sampler):
    # The end-of-run drift check reads the shared minibatch noise (all chains move together) as an unconverged run
    # and warns falsely: these runs start at the posterior and discard a burn-in.
    sampler.check_convergence = False
    return sampler


def posterior_start(n_chains, seed=7):
    "Chains drawn from the exact posterior N(μ, Σ), so a short burn-in reaches the sampler's stationary law."
    z = torch.randn(n_chains, D, generator=torch.Generator().manual_seed(seed), dtype=DOUBLE)
    return POST_MEAN + z @ torch.linalg.cholesky(POST_COV).T


@functools.lru_cache(maxsize=None)
def linear_run(kind, step_size, batch_size, friction=None, data='tensor', decay=0.99):
    "block_statistics of one seeded run on the linear-regression posterior (cached: tests share runs)."
    common = dict(step_size=step_size, prior=gaussian_prior, dtype=DOUBLE)
    source = (X, Y)
    if data == 'loader':
        source = DataLoader(TensorDataset(X, Y), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
        batch_size = None
    if kind == 'sghmc':
        sampler = StochasticGradientHMC(SquaredError(NOISE), source, friction=friction, batch_size=batch_size, **common)
    else:
        sampler = StochasticGradientLangevin(SquaredError(NOISE), source, batch_size=batch_size,
                                             preconditioned=kind == 'psgld', decay=decay, **common)
    full = batch_size == N
    n_chains, burn = (500 if full else 1000), 200
    n_steps = {'sgld': 2000 if full else 1000, 'sghmc': 1200, 'psgld': 1500}[kind]
    path = quiet(sampler).sample(x=posterior_start(n_chains), n_steps=n_steps, return_trajectory=True, generator=1)
    return block_statistics(path[:, burn:])


def closed_form(kind, step_size, batch_size, friction=None):
    return sgld_covariance(step_size, batch_size) if kind == 'sgld' else sghmc_covariance(step_size, friction, batch_size)


# ---------------------------------------------------------------------------------------------------------------------
# 1. Linear regression: the closed forms, then the samples against them

def test_the_closed_forms_agree_with_the_textbook_ones():
    h = 5e-4
    textbook = torch.linalg.inv(PRECISION - h / 4 * PRECISION @ PRECISION)            # full-batch SGLD
    torch.testing.assert_close(sgld_covariance(h, N), textbook, rtol=1e-9, atol=0)
    torch.testing.assert_close(sgld_covariance(1e-7, N), POST_COV, rtol=1e-4, atol=0)  # h → 0: the posterior
    for n in (10, 50, N):   # SGHMC with α = 1 is SGLD with h = 2η, minibatch noise included
        torch.testing.assert_close(sghmc_covariance(h / 2, 1.0, n), sgld_covariance(h, n), rtol=1e-9, atol=0)
    assert (torch.linalg.eigvalsh(sgld_covariance(h, 10) - sgld_covariance(h, 50)) > 0).all()
    assert (torch.linalg.eigvalsh(sgld_covariance(h, 50) - textbook) > 0).all()


LINEAR_CASES = {  # name: (sampler kind, step size, batch size, friction)
    'SGLD h=5e-4 batch 10': ('sgld', 5e-4, 10, None),
    'SGLD h=5e-4 batch 50': ('sgld', 5e-4, 50, None),
    'SGLD h=2.5e-4 batch 50': ('sgld', 2.5e-4, 50, None),
    'SGLD h=5e-4 full batch': ('sgld', 5e-4, N, None),
    'SGLD h=2.5e-4 full batch': ('sgld', 2.5e-4, N, None),
    'SGHMC η=2e-4 α=0.5 batch 50': ('sghmc', 2e-4, 50, 0.5),
    'SGHMC η=1e-4 α=0.5 batch 50': ('sghmc', 1e-4, 50, 0.5),
    'SGHMC η=8e-4 α=0.2 full batch': ('sghmc', 8e-4, N, 0.2),
    'SGHMC η=4e-4 α=0.2 full batch': ('sghmc', 4e-4, N, 0.2),
}


@pytest.mark.parametrize('case', list(LINEAR_CASES))
def test_linear_regression_matches_the_closed_form(case):
    kind, h, n, friction = LINEAR_CASES[case]
    run = linear_run(kind, h, n, friction)
    # the mean: exactly μ for these linear recursions (no step-size allowance), to Z standard errors
    error = (run['mean'] - POST_MEAN).abs()
    assert (error <= Z * run['mean_se']).all(), (case, error, run['mean_se'])
    # the covariance: the closed-form stationary one (discretisation + minibatch noise), entry by entry
    expected = closed_form(kind, h, n, friction)
    gap = (run['cov'] - expected).abs()
    assert (gap <= Z * run['cov_se']).all(), (case, run['cov'], expected, run['cov_se'])
    # … and so does the relative excess tr(Σ⁻¹Σ̂)/d − 1, the summary the halving and batch-size tests compare
    predicted = relative_excess(expected).item()
    assert abs(run['excess'] - predicted) <= Z * run['excess_se'], (case, run['excess'], predicted, run['excess_se'])


HALVING_CASES = {  # name: (kind, step size h (h/2 is the other run), batch size, friction)
    'SGLD full batch': ('sgld', 5e-4, N, None),
    'SGLD batch 50': ('sgld', 5e-4, 50, None),
    'SGHMC full batch': ('sghmc', 8e-4, N, 0.2),
    'SGHMC batch 50': ('sghmc', 2e-4, 50, 0.5),
}


@pytest.mark.parametrize('case', list(HALVING_CASES))
def test_halving_the_step_halves_the_covariance_error(case):
    kind, h, n, friction = HALVING_CASES[case]
    big, small = linear_run(kind, h, n, friction), linear_run(kind, h / 2, n, friction)
    ratio = big['excess'] / small['excess']
    ratio_se = ratio * math.hypot(big['excess_se'] / big['excess'], small['excess_se'] / small['excess'])   # delta method
    expected = (relative_excess(closed_form(kind, h, n, friction)) / relative_excess(closed_form(kind, h / 2, n, friction))).item()
    assert 1.8 < expected < 2.2, expected                                                # O(h): about 2
    assert big['excess'] - small['excess'] > Z * math.hypot(big['excess_se'], small['excess_se']), (case, big, small)
    assert abs(ratio - expected) <= Z * ratio_se, (case, ratio, expected, ratio_se)


def test_the_minibatch_noise_vanishes_as_the_batch_grows():
    h = 5e-4
    runs = [linear_run('sgld', h, n) for n in (10, 50, N)]
    for larger_batch, smaller_batch in zip(runs[1:], runs):
        gap = smaller_batch['excess'] - larger_batch['excess']
        assert gap > Z * math.hypot(smaller_batch['excess_se'], larger_batch['excess_se']), (gap, runs)
    # the full batch: the discretisation alone, (A − (h/4)A²)⁻¹ — about hλ/4 ≈ 5 % here
    textbook = relative_excess(torch.linalg.inv(PRECISION - h / 4 * PRECISION @ PRECISION)).item()
    assert abs(runs[-1]['excess'] - textbook) <= Z * runs[-1]['excess_se'], (runs[-1]['excess'], textbook)


def test_psgld_samples_the_linear_regression_posterior():
    # No closed form: V (and so the preconditioner G) adapts, and pSGLD drops the Γ = ∇·G term. Measured here with
    # batch 50: the relative excess is ≈ 0.16 at h = 2.5e-5 and ≈ 0.28 at 5e-5 (O(h), as G·h is SGLD's step), with
    # block standard errors ≈ 0.03; the mean shows no bias beyond its standard error.
    run = linear_run('psgld', 2.5e-5, 50)
    allowance = 0.05 * POST_SD                    # a mean bias of O(h) from G depending on θ: none measured
    error = (run['mean'] - POST_MEAN).abs()
    assert (error <= Z * run['mean_se'] + allowance).all(), (error, run['mean_se'])
    scale = POST_SD.outer(POST_SD)
    relative = (run['cov'] - POST_COV).abs() / scale
    assert (relative <= 0.3).all(), relative       # every entry within 30 % of the posterior's scale: 0.16 + 4 SE
    assert 0 < run['excess'] < 0.3, run['excess']


PSGLD_HALVING_CASES = {  # name: (step size h (h/2 is the other run), batch size, decay)
    'batch 50': (5e-5, 50, 0.99),        # V dominated by minibatch noise: G hardly depends on θ
    'full batch, decay 0.999': (5e-5, N, 0.999),
}


@pytest.mark.parametrize('case', list(PSGLD_HALVING_CASES))
def test_psgld_halving_the_step_halves_the_covariance_error(case):
    # pSGLD's excess is O(h) (its G·h plays SGLD's h) while G does not follow θ. Measured: batch 50, 0.29 → 0.15;
    # full batch with decay 0.999, 0.113 → 0.058. (With the default decay 0.99 and the full batch, V follows ĝ(θ)² within
    # a few steps, G depends on θ, and the omitted Γ = ∇·G leaves an excess ≈ 0.11 that does not shrink with h:
    # 0.139, 0.110, 0.117 at h = 5e-5, 2.5e-5, 1.25e-5 — not tested here, reported.)
    h, n, decay = PSGLD_HALVING_CASES[case]
    big, small = linear_run('psgld', h, n, decay=decay), linear_run('psgld', h / 2, n, decay=decay)
    assert big['excess'] - small['excess'] > Z * math.hypot(big['excess_se'], small['excess_se']), (big, small)
    ratio = big['excess'] / small['excess']
    ratio_se = ratio * math.hypot(big['excess_se'] / big['excess'], small['excess_se'] / small['excess'])
    assert abs(ratio - 2) <= Z * ratio_se, (case, ratio, ratio_se)


def test_a_dataloader_reaches_the_posterior_mean_of_tensor_data():
    loader, tensors = linear_run('sgld', 5e-4, 50, data='loader'), linear_run('sgld', 5e-4, 50)
    assert ((loader['mean'] - POST_MEAN).abs() <= Z * loader['mean_se']).all(), (loader['mean'], POST_MEAN)
    gap = (loader['mean'] - tensors['mean']).abs()
    assert (gap <= Z * (loader['mean_se'].square() + tensors['mean_se'].square()).sqrt()).all(), gap


# ---------------------------------------------------------------------------------------------------------------------
# 2. Bayesian logistic regression: the posterior predictive against NUTS on the full-data energy

class LogisticLoss(nn.Module):
    "Σ_batch [log(1 + e^{θ·x}) − y θ·x] for each chain θ: the minibatch sum of the Bernoulli negative log-likelihoods."
    def forward(self, theta, batch):
        inputs, labels = batch
        logits = theta @ inputs.T
        return (F.softplus(logits) - labels * logits).sum(-1)


_logistic = torch.Generator().manual_seed(3)
XL = torch.randn(200, 2, generator=_logistic, dtype=DOUBLE)
YL = (torch.rand(200, generator=_logistic, dtype=DOUBLE) < torch.sigmoid(XL @ torch.tensor([1.5, -1.0], dtype=DOUBLE))).to(DOUBLE)
_angles = torch.linspace(0, math.pi, 10, dtype=DOUBLE)
TEST_POINTS = 1.5 * torch.stack([_angles.cos(), _angles.sin()], -1)            # 10 points x*, p(y=1 | x*) from 0.04 to 0.94
LOGISTIC_SAMPLERS = {  # name: the sampler (batch 20 of 200, prior N(0, I))
    'SGLD': lambda: StochasticGradientLangevin(LogisticLoss(), (XL, YL), step_size=2e-3, batch_size=20,
                                               prior=gaussian_prior, dtype=DOUBLE),
    'SGHMC': lambda: StochasticGradientHMC(LogisticLoss(), (XL, YL), step_size=1e-3, friction=0.5, batch_size=20,
                                           prior=gaussian_prior, dtype=DOUBLE),
}


@functools.lru_cache(maxsize=None)
def nuts_reference():
    """NUTS on the SGLD sampler's full-data posterior E (`sampler.model`): the predictive, its standard error (from the
    effective sample size of independent chains) and the posterior covariance."""
    posterior = LOGISTIC_SAMPLERS['SGLD']().model
    path = NoUTurnSampler(posterior, step_size=0.1, dtype=DOUBLE).sample(dim=2, n_samples=128, n_steps=250,
                                                                         return_trajectory=True, generator=0)[:, 50:]
    draws = torch.sigmoid(path @ TEST_POINTS.T)                                 # (C, T, 10)
    se = draws.reshape(-1, 10).std(0) / effective_sample_size(draws).sqrt()
    return posterior, draws.mean((0, 1)), se, torch.cov(path.reshape(-1, 2).T)


@pytest.mark.parametrize('name', list(LOGISTIC_SAMPLERS))
def test_logistic_predictive_matches_nuts(name):
    posterior, reference, reference_se, reference_cov = nuts_reference()
    sampler = quiet(LOGISTIC_SAMPLERS[name]())
    theta = torch.randn(5, 2, generator=torch.Generator().manual_seed(2), dtype=DOUBLE)
    torch.testing.assert_close(sampler.model(theta), posterior(theta))          # the same full-data energy as NUTS saw
    path = sampler.sample(dim=2, n_samples=500, n_steps=2000, return_trajectory=True, generator=1)[:, 200:]
    predictive = torch.sigmoid(path @ TEST_POINTS.T).mean(0)                    # per-step chain means (T, 10)
    T = predictive.shape[0] // N_BLOCKS * N_BLOCKS
    blocks = predictive[:T].reshape(N_BLOCKS, -1, 10).mean(1)
    estimate, se = blocks.mean(0), blocks.std(0) / math.sqrt(N_BLOCKS)
    # The step size and the minibatches inflate the posterior covariance by a relative ≲ 0.3 (checked next); the
    # predictive moves by ≈ ½ σ''(·) x*ᵀ ΔΣ x*, |σ''| ≤ 0.1 and x*ᵀΣx* ≲ 0.2: at most 0.003. Tolerance: Z combined
    # Monte-Carlo standard errors plus that allowance — which stays within 0.03.
    excess = (torch.linalg.solve(reference_cov, torch.cov(path.reshape(-1, 2).T)).trace() / 2 - 1).item()
    assert abs(excess) < 0.3, (name, excess)
    tolerance = Z * (se.square() + reference_se.square()).sqrt() + 0.003
    assert (tolerance <= 0.03).all(), tolerance
    assert ((estimate - reference).abs() <= tolerance).all(), (name, estimate, reference, tolerance)


# ---------------------------------------------------------------------------------------------------------------------
# 3. Reproducibility: a seed fixes the whole run (minibatches, noise, start), and the global RNG is left alone

SEEDED = {
    'SGLD': lambda: StochasticGradientLangevin(SquaredError(NOISE), (X, Y), step_size=5e-4, batch_size=10, prior=gaussian_prior, dtype=DOUBLE),
    'pSGLD': lambda: StochasticGradientLangevin(SquaredError(NOISE), (X, Y), step_size=5e-5, batch_size=10, prior=gaussian_prior,
                                                preconditioned=True, dtype=DOUBLE),
    'SGHMC': lambda: StochasticGradientHMC(SquaredError(NOISE), (X, Y), step_size=2e-4, friction=0.5, batch_size=10,
                                           prior=gaussian_prior, dtype=DOUBLE),
}


@pytest.mark.parametrize('name', list(SEEDED))
def test_seeded_runs_are_bit_identical(name):
    run = lambda seed: quiet(SEEDED[name]()).sample(dim=D, n_samples=16, n_steps=30, return_trajectory=True, generator=seed)
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    first = run(11)
    assert torch.equal(first, run(torch.Generator().manual_seed(11)))          # a fresh sampler, the same seed
    assert not torch.equal(first, run(12))
    assert torch.equal(torch.get_rng_state(), global_state)                     # no draw from the global generator
