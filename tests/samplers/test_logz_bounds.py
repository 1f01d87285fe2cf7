"""Reverse AIS and bidirectional Monte Carlo (issue 18): forward AIS bounds log Z from below in expectation, reverse AIS
from exact samples bounds it from above, the gap closes as the number of temperatures K grows, and bad input is refused
with an error naming the argument before the model is evaluated.

Checked against closed forms: a Gaussian (log Z = ½ log det(2πΣ)) and a two-component Gaussian mixture in 2-D
(Z = Σᵢ aᵢ 2π sᵢ²), whose exact samples are drawn directly; the K = 1 reverse estimate against a float64 hand computation."""
import math

import pytest
import torch

from torchebm_nb.core import BaseModel, GaussianModel
from torchebm_nb.models import RBM
from torchebm_nb.samplers import MetropolisAdjustedLangevin
from torchebm_nb.samplers.ais import (LogPartitionBounds, ReverseAISResult, bidirectional_monte_carlo,
                                      reverse_annealed_importance_sampling)

from counting import CountingGaussian


class CountingGaussianModel(GaussianModel):
    "A GaussianModel (its dimension is fixed by its mean) that counts its evaluations, energies and gradients alike."
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x)

    def _grad(self, x):
        self.calls += 1
        return super()._grad(x)


class Mixture(BaseModel):
    "E(x) = −log Σᵢ aᵢ exp(−‖x − μᵢ‖² / 2sᵢ²) in 2-D, with its closed-form gradient, log Z and exact sampler."
    def __init__(self):
        super().__init__()
        self.means = torch.tensor([[-2.0, 0.0], [2.0, 1.0]])
        self.scales = torch.tensor([0.5, 1.0])
        self.log_amplitudes = torch.tensor([3.0, 1.0]).log()

    def _logits(self, x):
        return self.log_amplitudes.to(x.dtype) - (x[:, None, :] - self.means.to(x.dtype)).square().sum(-1) / (2 * self.scales.to(x.dtype) ** 2)

    def forward(self, x):
        return -torch.logsumexp(self._logits(x), -1)

    def gradient(self, x, model_kwargs=None):
        r = torch.softmax(self._logits(x), -1)
        return (r[..., None] * (x[:, None, :] - self.means) / self.scales[:, None] ** 2).sum(1)

    def log_z(self):
        return math.log(sum(a * 2 * math.pi * s ** 2 for a, s in zip(self.log_amplitudes.exp().tolist(), self.scales.tolist())))

    def sample(self, n, generator):
        probabilities = (self.log_amplitudes + 2 * self.scales.log()).softmax(0)
        i = torch.multinomial(probabilities, n, replacement=True, generator=generator)
        return self.means[i] + self.scales[i, None] * torch.randn(n, 2, generator=generator)


MIXTURE_BASE = GaussianModel(torch.zeros(2), 4 * torch.eye(2))   # N(0, 4I) covers both components
LOG_Z_MIXTURE_BASE = math.log(2 * math.pi * 4)
COV = torch.tensor([[1.4, 0.3], [0.3, 0.8]])   # eigenvalues in (½, 2): the K = 1 weights both ways have finite variance
MEAN = torch.tensor([0.5, -0.3])


def gaussian_log_z(cov):
    return 0.5 * torch.logdet(2 * math.pi * cov.double()).item()


def gaussian_draws(n, seed):
    g = torch.Generator().manual_seed(seed)
    return MEAN + torch.randn(n, 2, generator=g) @ torch.linalg.cholesky(COV).T


def good(n=6, d=2):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0))


def not_a_sampler(path):
    return 3


REVERSE, BDMC = reverse_annealed_importance_sampling, bidirectional_monte_carlo
CASES = {  # name: (call on a counting model, argument named, error type, expected words)
    'exact_samples list': (lambda f, m: f(m, good().tolist()), 'exact_samples', TypeError, 'must be a torch.Tensor'),
    'exact_samples int64': (lambda f, m: f(m, torch.ones(6, 2, dtype=torch.long)), 'exact_samples', TypeError, 'floating tensor'),
    'exact_samples bool': (lambda f, m: f(m, torch.ones(6, 2, dtype=torch.bool)), 'exact_samples', TypeError, 'floating tensor'),
    'exact_samples complex': (lambda f, m: f(m, good().to(torch.complex64)), 'exact_samples', TypeError, 'floating tensor'),
    'exact_samples 1-D': (lambda f, m: f(m, torch.zeros(6)), 'exact_samples', ValueError, 'shape'),
    'exact_samples 3-D': (lambda f, m: f(m, torch.zeros(6, 2, 1)), 'exact_samples', ValueError, 'must have shape (B, D)'),
    'exact_samples empty': (lambda f, m: f(m, torch.zeros(0, 2)), 'exact_samples', ValueError, 'at least one sample'),
    'exact_samples one row': (lambda f, m: f(m, torch.zeros(1, 2)), 'exact_samples', ValueError, 'at least 2 samples'),
    'exact_samples nan': (lambda f, m: f(m, torch.tensor([[0.0, math.nan], [0.0, 0.0]])), 'exact_samples', ValueError, 'non-finite'),
    'exact_samples inf': (lambda f, m: f(m, torch.tensor([[0.0, 0.0], [-math.inf, 0.0]])), 'exact_samples', ValueError, 'non-finite'),
    'exact_samples D=3 vs base D=2': (lambda f, m: f(m, good(6, 3), base=GaussianModel(torch.zeros(2), torch.eye(2))),
                                      'exact_samples', ValueError, 'does not fit'),
    'base not Gaussian': (lambda f, m: f(m, good(), base=CountingGaussian()), 'base', TypeError, 'GaussianModel'),
    'n_temperatures=0': (lambda f, m: f(m, good(), n_temperatures=0), 'n_temperatures', ValueError, '≥ 1'),
    'n_temperatures=2.5': (lambda f, m: f(m, good(), n_temperatures=2.5), 'n_temperatures', TypeError, 'int'),
    'schedule unknown': (lambda f, m: f(m, good(), schedule='cubic'), 'schedule', ValueError, "'linear'"),
    'schedule decreasing': (lambda f, m: f(m, good(), schedule=[0.0, 0.6, 0.5, 1.0]), 'schedule', ValueError, 'strictly increasing'),
    'step_size=0': (lambda f, m: f(m, good(), step_size=0.0), 'step_size', ValueError, 'positive'),
    'step_size=nan': (lambda f, m: f(m, good(), step_size=math.nan), 'step_size', ValueError, 'finite'),
    'step_size str': (lambda f, m: f(m, good(), step_size='0.1'), 'step_size', TypeError, 'number'),
    'n_steps=0': (lambda f, m: f(m, good(), n_steps=0), 'n_steps', ValueError, '≥ 1'),
    'transition str': (lambda f, m: f(m, good(), transition='mala'), 'transition', TypeError, 'callable'),
    'transition returns 3': (lambda f, m: f(m, good(), transition=not_a_sampler), 'transition', TypeError, 'BaseSampler'),
    'generator str': (lambda f, m: f(m, good(), generator='seed'), 'generator', TypeError, 'torch.Generator'),
}
BDMC_CASES = {
    'n_samples=1': (lambda f, m: f(m, good(), n_samples=1), 'n_samples', ValueError, '≥ 2'),
    'n_samples=2.5': (lambda f, m: f(m, good(), n_samples=2.5), 'n_samples', TypeError, 'int'),
}


def _assert_refused(call, name, error, words, model):
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
    assert model.calls == 0, f"the model was evaluated {model.calls} times before the error"


@pytest.mark.parametrize('case', list(CASES))
@pytest.mark.parametrize('function', [REVERSE, BDMC], ids=['reverse', 'bdmc'])
def test_bad_input_is_refused_before_work(function, case):
    call, name, error, words = CASES[case]
    model = CountingGaussian()
    _assert_refused(lambda: call(function, model), name, error, words, model)


@pytest.mark.parametrize('case', list(BDMC_CASES))
def test_bad_bdmc_input_is_refused_before_work(case):
    call, name, error, words = BDMC_CASES[case]
    model = CountingGaussian()
    _assert_refused(lambda: call(BDMC, model), name, error, words, model)


@pytest.mark.parametrize('function', [REVERSE, BDMC], ids=['reverse', 'bdmc'])
def test_a_dimension_the_model_fixes_is_checked(function):
    model = CountingGaussianModel(torch.zeros(2), torch.eye(2))
    _assert_refused(lambda: function(model, good(6, 3)), 'exact_samples', ValueError, 'D=3 does not fit', model)


@pytest.mark.parametrize('function', [REVERSE, BDMC], ids=['reverse', 'bdmc'])
def test_non_models_and_rbms_are_refused(function):
    with pytest.raises(TypeError, match='^model must be a BaseModel'):
        function(lambda x: x.sum(-1), good())
    with pytest.raises(TypeError, match='^model: .*RBM is not supported'):
        function(RBM(3, 2), torch.zeros(4, 3))


def test_sensible_values_still_work():
    model = CountingGaussianModel(MEAN, COV)
    draws = gaussian_draws(40, 1).double()
    kept = draws.clone()
    r = reverse_annealed_importance_sampling(model, draws, n_temperatures=4, generator=3)
    assert isinstance(r, ReverseAISResult) and model.calls > 0
    assert torch.equal(draws, kept), 'the exact samples were modified'
    assert (r.samples.shape, r.samples.dtype, r.log_weights.shape, r.log_weights.dtype) == ((40, 2), torch.float32, (40,), torch.float64)
    again = reverse_annealed_importance_sampling(model, draws, n_temperatures=4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(r.log_weights, again.log_weights)
    mala = lambda path: MetropolisAdjustedLangevin(path, step_size=0.2)
    b = bidirectional_monte_carlo(model, draws, n_samples=10, schedule=[0.0, 0.5, 1.0], transition=mala, generator=4)
    assert isinstance(b, LogPartitionBounds) and b.forward.log_weights.shape == (10,) and b.reverse.log_weights.shape == (40,)
    assert all(math.isfinite(v) for v in (b.lower, b.lower_stderr, b.upper, b.upper_stderr)), b[:4]


@pytest.mark.parametrize('target', ['gaussian', 'mixture'])
def test_one_temperature_is_importance_sampling_of_one_over_z(target):
    "K = 1: no moves, log Ẑ = log Z₀ − log mean exp(E₁ − E₀) over the exact samples (a float64 hand computation)."
    if target == 'gaussian':
        model, base, log_z0, draws = GaussianModel(MEAN, COV), None, math.log(2 * math.pi), gaussian_draws(300, 5)
        x = draws.double() - MEAN.double()
        e1 = 0.5 * (x * torch.linalg.solve(COV.double(), x.T).T).sum(-1)
        e0 = 0.5 * draws.double().square().sum(-1)
    else:
        model, base, log_z0 = Mixture(), MIXTURE_BASE, LOG_Z_MIXTURE_BASE
        draws = model.sample(300, torch.Generator().manual_seed(5))
        e1 = model(draws.double())
        e0 = draws.double().square().sum(-1) / 8
    by_hand = log_z0 - (torch.logsumexp(e1 - e0, 0) - math.log(300)).item()
    for r in (reverse_annealed_importance_sampling(model, draws, n_temperatures=1, base=base),
              reverse_annealed_importance_sampling(model, draws, schedule=[0.0, 1.0], base=base)):
        assert abs(r.log_z - by_hand) < 1e-4, (r.log_z, by_hand)
        assert torch.equal(r.samples, draws)


@pytest.mark.parametrize('n_temperatures', [1, 3])
def test_reverse_weights_are_unbiased_for_z0_over_z(n_temperatures):
    "E[w'] = Z₀/Z exactly, at any K: the mean weight of many chains is within 4 standard errors of it."
    r = reverse_annealed_importance_sampling(GaussianModel(MEAN, COV), gaussian_draws(20000, 7), n_temperatures=n_temperatures,
                                             step_size=0.3, generator=8)
    w = r.log_weights.exp()
    target = math.exp(math.log(2 * math.pi) - gaussian_log_z(COV))
    assert abs(w.mean().item() - target) < 4 * w.std().item() / math.sqrt(w.numel()), (w.mean().item(), target)


@pytest.mark.parametrize('seed', range(5))
def test_gaussian_bounds_per_seed(seed):
    cov = torch.tensor([[1.5, 0.4, 0.0], [0.4, 0.9, 0.2], [0.0, 0.2, 0.6]])
    model = GaussianModel(torch.tensor([0.3, -0.2, 0.5]), cov)
    g = torch.Generator().manual_seed(100 + seed)
    draws = model.mean + torch.randn(300, 3, generator=g) @ torch.linalg.cholesky(cov).T
    b = bidirectional_monte_carlo(model, draws, n_temperatures=30, step_size=0.3, generator=g)
    exact = gaussian_log_z(cov)
    assert b.lower <= exact + 4 * b.lower_stderr and b.upper >= exact - 4 * b.upper_stderr, (b.lower, exact, b.upper)
    assert abs(b.lower - exact) < 4 * b.lower_stderr + 0.02 and abs(b.upper - exact) < 4 * b.upper_stderr + 0.02, b[:4]


def test_mixture_sandwich_in_expectation():
    "400 independent runs of 4 chains each (one vectorised call): mean lower < log Z < mean upper, each by > 3 standard errors."
    model, n_runs, n_chains = Mixture(), 400, 4
    g = torch.Generator().manual_seed(11)
    b = bidirectional_monte_carlo(model, model.sample(n_runs * n_chains, g), n_temperatures=3, base=MIXTURE_BASE, step_size=0.3, generator=g)
    per_run = lambda log_w: torch.logsumexp(log_w.view(n_runs, n_chains), 1) - math.log(n_chains)
    lower = LOG_Z_MIXTURE_BASE + per_run(b.forward.log_weights)
    upper = LOG_Z_MIXTURE_BASE - per_run(b.reverse.log_weights)
    exact, sem = model.log_z(), lambda v: v.std().item() / math.sqrt(n_runs)
    assert lower.mean().item() + 3 * sem(lower) < exact < upper.mean().item() - 3 * sem(upper), \
        (lower.mean().item(), sem(lower), exact, upper.mean().item(), sem(upper))


def test_mixture_gap_shrinks_and_bounds_converge():
    "The per-chain gap mean(−log w_rev) − mean(log w_fwd) (the symmetric KL between the chains' laws) falls with K = 10, 100, 1000."
    model, exact = Mixture(), Mixture().log_z()
    gaps, runs = [], []
    for k in (10, 100, 1000):
        g = torch.Generator().manual_seed(k)
        b = bidirectional_monte_carlo(model, model.sample(500, g), n_temperatures=k, base=MIXTURE_BASE, step_size=0.3, generator=g)
        forward, backward = b.forward.log_weights, -b.reverse.log_weights
        gaps.append((backward.mean().item() - forward.mean().item(), math.sqrt(backward.var().item() / 500 + forward.var().item() / 500)))
        runs.append(b)
    (g10, s10), (g100, s100), (g1000, s1000) = gaps
    assert g10 - 4 * s10 > g100 + 4 * s100 and g100 - 4 * s100 > g1000 + 4 * s1000 and g1000 > -4 * s1000, gaps
    final = runs[-1]
    assert abs(final.lower - exact) < 4 * final.lower_stderr + 0.01, (final.lower, final.lower_stderr, exact)
    assert abs(final.upper - exact) < 4 * final.upper_stderr + 0.01, (final.upper, final.upper_stderr, exact)
    assert final.upper - final.lower < runs[0].upper_stderr + runs[0].lower_stderr, [(r.lower, r.upper) for r in runs]
