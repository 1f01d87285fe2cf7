"""Annealed importance sampling for RBMs (Salakhutdinov & Murray, 2008; nbs/20_samplers/07_ais.ipynb) against the exact
`RBM.log_partition()`, plain importance sampling at K = 1, the base-rate helper by hand, and bad arguments refused before
anything is drawn. Tolerances: 4 standard errors (plus se² for the downward bias of log Ẑ) and 0.05 nats."""
import math

import pytest
import torch
import torch.nn.functional as F

from torchebm_nb.core import GaussianModel
from torchebm_nb.models import RBM
from torchebm_nb.samplers.ais import annealed_importance_sampling, base_rate_bias
from counting import CountingRBM


def make_rbm(n_visible, n_hidden, seed, weight_std=1.0, bias_std=0.5, visible_type='bernoulli'):
    "An RBM with weights of standard deviation `weight_std` and non-zero biases."
    rbm = RBM(n_visible, n_hidden, visible_type=visible_type, init_std=weight_std, generator=seed)
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        rbm.visible_bias.copy_(bias_std * torch.randn(n_visible, generator=g))
        rbm.hidden_bias.copy_(bias_std * torch.randn(n_hidden, generator=g))
    return rbm


def gibbs_data(rbm, n=1000, sweeps=50, seed=0):
    "Binary 'training data': the visible states of `n` block Gibbs chains after `sweeps` sweeps."
    g = torch.Generator().manual_seed(seed)
    v = torch.bernoulli(torch.full((n, rbm.n_visible), 0.5), generator=g)
    for _ in range(sweeps): v = rbm.sample_visible(rbm.sample_hidden(v, g), g)
    return v


# ---------------------------------------------------------------------------------------------------------------------
# Accuracy against the exact log Z

ACCURACY = {  # name: (n_visible, n_hidden, visible_type, weight_std, base ('uniform' or 'rate'), n_temperatures)
    '20x12 uniform': (20, 12, 'bernoulli', 1.0, 'uniform', 1000),
    '20x12 base rate': (20, 12, 'bernoulli', 1.0, 'rate', 300),
    '12x18 uniform': (12, 18, 'bernoulli', 1.0, 'uniform', 1000),
    '12x18 base rate': (12, 18, 'bernoulli', 1.0, 'rate', 1000),
    '30x6 base rate': (30, 6, 'bernoulli', 1.0, 'rate', 300),
    'gaussian 10x8 uniform': (10, 8, 'gaussian', 0.3, 'uniform', 500),
}


@pytest.mark.parametrize('case', list(ACCURACY))
def test_estimate_matches_exact_log_partition(case):
    n_visible, n_hidden, visible_type, weight_std, base, k = ACCURACY[case]
    rbm = make_rbm(n_visible, n_hidden, seed=len(case), weight_std=weight_std, visible_type=visible_type)
    exact = rbm.log_partition().item()
    bias = base_rate_bias(gibbs_data(rbm)) if base == 'rate' else None
    r = annealed_importance_sampling(rbm, n_samples=500, n_temperatures=k, base=bias, generator=1)
    error = abs(r.log_z - exact)
    assert error < 4 * r.log_z_stderr + r.log_z_stderr ** 2 and error < 0.05, (r.log_z, r.log_z_stderr, exact)
    assert r.log_weights.shape == (500,) and r.samples.shape == (500, n_visible) and r.ess > 50


def test_sm_style_schedule_as_a_sequence():
    "Salakhutdinov & Murray's three-piece schedule, shrunk tenfold, passed as a sequence of βs."
    rbm = make_rbm(20, 12, seed=3)
    betas = torch.cat([torch.linspace(0, 0.5, 51, dtype=torch.float64), torch.linspace(0.5, 0.9, 401, dtype=torch.float64)[1:],
                       torch.linspace(0.9, 1, 1001, dtype=torch.float64)[1:]])
    r = annealed_importance_sampling(rbm, n_samples=200, schedule=betas, base=base_rate_bias(gibbs_data(rbm)), generator=2)
    exact = rbm.log_partition().item()
    error = abs(r.log_z - exact)
    assert error < 4 * r.log_z_stderr + r.log_z_stderr ** 2 and error < 0.05, (r.log_z, r.log_z_stderr, exact)


def test_base_rate_beats_uniform_base():
    rbm = make_rbm(20, 12, seed=4)
    bias = base_rate_bias(gibbs_data(rbm))
    uniform = annealed_importance_sampling(rbm, n_samples=300, n_temperatures=30, generator=3)
    rate = annealed_importance_sampling(rbm, n_samples=300, n_temperatures=30, base=bias, generator=3)
    assert rate.log_z_stderr < uniform.log_z_stderr / 2 and rate.ess > uniform.ess, (rate, uniform)


# ---------------------------------------------------------------------------------------------------------------------
# K = 1 is plain importance sampling from the base

@pytest.mark.parametrize('visible_type', ['bernoulli', 'gaussian'])
@pytest.mark.parametrize('base', ['uniform', 'rate'])
def test_one_temperature_is_plain_importance_sampling(visible_type, base):
    rbm = make_rbm(6, 4, seed=5, weight_std=0.7, visible_type=visible_type)
    b_a = torch.zeros(6, dtype=torch.float64) if base == 'uniform' else torch.linspace(-1.0, 1.5, 6, dtype=torch.float64)
    n = 4000
    r = annealed_importance_sampling(rbm, n_samples=n, n_temperatures=1, base=None if base == 'uniform' else b_a,
                                     n_steps=3, generator=6)
    # The same draws from the base, by hand: v ~ Bernoulli(σ(b_A)) or N(b_A, I), in float64, from the same seed.
    g = torch.Generator().manual_seed(6)
    if visible_type == 'gaussian': v = b_a + torch.randn(n, 6, generator=g, dtype=torch.float64)
    else: v = torch.bernoulli(torch.sigmoid(b_a).repeat(n, 1), generator=g)
    weight, b, c = (p.detach().double() for p in (rbm.weight, rbm.visible_bias, rbm.hidden_bias))
    hidden = F.softplus(v @ weight + c).sum(-1)
    if visible_type == 'gaussian':
        log_target, log_base = -0.5 * (v - b).square().sum(-1) + hidden, -0.5 * (v - b_a).square().sum(-1) + 4 * math.log(2)
        log_z0 = 3 * math.log(2 * math.pi) + 4 * math.log(2)
    else:
        log_target, log_base = v @ b + hidden, v @ b_a + 4 * math.log(2)
        log_z0 = F.softplus(b_a).sum().item() + 4 * math.log(2)
    log_w = log_target - log_base   # p*_1(v) / p*_0(v): the importance weight of a base draw
    assert torch.allclose(r.log_weights, log_w, rtol=0, atol=1e-12)
    direct = log_z0 + (torch.logsumexp(log_w, 0) - math.log(n)).item()
    assert abs(r.log_z - direct) < 1e-10
    if visible_type == 'bernoulli':   # 2**6 states: plain importance sampling is already fair (not so for a shifted Gaussian base)
        assert abs(r.log_z - rbm.log_partition().item()) < 4 * r.log_z_stderr + r.log_z_stderr ** 2


# ---------------------------------------------------------------------------------------------------------------------
# Reproducibility

@pytest.mark.parametrize('visible_type', ['bernoulli', 'gaussian'])
def test_seeded_runs_are_bit_identical(visible_type):
    rbm = make_rbm(8, 5, seed=7, visible_type=visible_type)
    runs = [annealed_importance_sampling(rbm, n_samples=64, n_temperatures=25, n_steps=2, generator=seed) for seed in (11, 11, 12)]
    assert torch.equal(runs[0].log_weights, runs[1].log_weights) and torch.equal(runs[0].samples, runs[1].samples)
    assert runs[0].log_z == runs[1].log_z and runs[0].log_z_stderr == runs[1].log_z_stderr
    assert not torch.equal(runs[0].log_weights, runs[2].log_weights)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(annealed_importance_sampling(rbm, n_samples=16, n_temperatures=5, generator=g1).log_weights,
                       annealed_importance_sampling(rbm, n_samples=16, n_temperatures=5, generator=g2).log_weights)


def test_samples_are_visible_states_in_the_rbm_dtype():
    rbm = make_rbm(8, 5, seed=8)
    r = annealed_importance_sampling(rbm, n_samples=32, n_temperatures=10, generator=0)
    assert r.samples.dtype == torch.float32 and set(r.samples.unique().tolist()) <= {0.0, 1.0}
    assert r.log_weights.dtype == torch.float64


# ---------------------------------------------------------------------------------------------------------------------
# The base-rate helper

def test_base_rate_bias_by_hand():
    data = torch.tensor([[1, 0, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]])
    # smoothing 1: (3+1)/5, (1+1)/5, (1+1)/5, (0+1)/5
    expected = torch.tensor([math.log(4), math.log(2 / 3), math.log(2 / 3), -math.log(4)], dtype=torch.float64)
    for dtype in (torch.int64, torch.uint8, torch.bool, torch.float32, torch.float64):
        got = base_rate_bias(data.to(dtype))
        assert got.dtype == torch.float64 and torch.allclose(got, expected, rtol=0, atol=1e-12), (dtype, got)
    # smoothing 0.5: (3.5)/4, 1.5/4, 1.5/4, 0.5/4
    p = torch.tensor([3.5, 1.5, 1.5, 0.5], dtype=torch.float64) / 4
    assert torch.allclose(base_rate_bias(data, smoothing=0.5), torch.log(p / (1 - p)), rtol=0, atol=1e-12)


def test_base_rate_bias_is_the_logit_of_smoothed_means():
    data = torch.bernoulli(torch.rand(500, 30, generator=torch.Generator().manual_seed(0)),
                           generator=torch.Generator().manual_seed(1))
    p = (data.double().mean(0) * 500 + 2.0) / (500 + 4.0)
    assert torch.allclose(base_rate_bias(data, smoothing=2.0), torch.log(p) - torch.log1p(-p), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: the right type, the argument named first, nothing drawn and the model not evaluated

def _nan_rbm():
    rbm = CountingRBM(5, 3, generator=0)
    with torch.no_grad(): rbm.weight[0, 0] = math.nan
    return rbm


def _ais(model=None, **kwargs):
    return annealed_importance_sampling(model if model is not None else CountingRBM(5, 3, generator=0), **kwargs)


TYPE_ERRORS = {  # name: (keyword arguments to annealed_importance_sampling, argument named, expected words)
    'base a list': (dict(base=[0.0] * 5), 'base', 'must be a 1-D tensor of 5'),
    'base a GaussianModel': (dict(base=GaussianModel(torch.zeros(5), torch.eye(5))), 'base', 'must be a 1-D tensor'),
    'base int64': (dict(base=torch.zeros(5, dtype=torch.int64)), 'base', 'floating tensor'),
    'base bool': (dict(base=torch.zeros(5, dtype=torch.bool)), 'base', 'floating tensor'),
    'n_samples 2.5': (dict(n_samples=2.5), 'n_samples', 'must be an int'),
    'n_steps "2"': (dict(n_steps='2'), 'n_steps', 'must be an int'),
    'dim 5.0': (dict(dim=5.0), 'dim', 'must be an int'),
    'generator "x"': (dict(generator='x'), 'generator', 'torch.Generator'),
    'schedule an object': (dict(schedule=object()), 'schedule', 'a string or a 1-D sequence'),
}
VALUE_ERRORS = {
    'base shape (4,)': (dict(base=torch.zeros(4)), 'base', 'shape (5,)'),
    'base shape (1, 5)': (dict(base=torch.zeros(1, 5)), 'base', 'shape (5,)'),
    'base NaN': (dict(base=torch.tensor([0.0, math.nan, 0.0, 0.0, 0.0])), 'base', 'finite'),
    'base inf': (dict(base=torch.tensor([0.0, 0.0, -math.inf, 0.0, 0.0])), 'base', 'finite'),
    'transition given': (dict(transition=lambda path: path), 'transition', 'must be None for an RBM'),
    'dim 4': (dict(dim=4), 'dim', 'n_visible=5'),
    'n_samples 1': (dict(n_samples=1), 'n_samples', '≥ 2'),
    'n_steps 0': (dict(n_steps=0), 'n_steps', '≥ 1'),
    'n_temperatures 0': (dict(n_temperatures=0), 'n_temperatures', '≥ 1'),
    'schedule decreasing': (dict(schedule=[0.0, 0.6, 0.4, 1.0]), 'schedule', 'strictly increasing'),
    'schedule unknown name': (dict(schedule='cubic'), 'schedule', "'linear'"),
    'model with a NaN weight': (dict(model=_nan_rbm()), 'model', 'non-finite'),
}


def _check_refused(kwargs, error, name, words):
    kwargs = dict(kwargs)
    model = kwargs.pop('model', None) or CountingRBM(5, 3, generator=0)
    generator = torch.Generator().manual_seed(0)
    kwargs.setdefault('generator', generator)
    before = generator.get_state()
    with pytest.raises(error) as caught:
        annealed_importance_sampling(model, n_temperatures=kwargs.pop('n_temperatures', 10), **kwargs)
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
    assert model.calls == 0 and torch.equal(generator.get_state(), before)   # nothing evaluated, nothing drawn


@pytest.mark.parametrize('case', list(TYPE_ERRORS))
def test_bad_arguments_raise_type_errors(case):
    _check_refused(*TYPE_ERRORS[case][:1], TypeError, *TYPE_ERRORS[case][1:])


@pytest.mark.parametrize('case', list(VALUE_ERRORS))
def test_bad_arguments_raise_value_errors(case):
    _check_refused(*VALUE_ERRORS[case][:1], ValueError, *VALUE_ERRORS[case][1:])


def test_gaussian_rbm_refuses_a_bad_base_too():
    model = CountingRBM(4, 3, visible_type='gaussian', generator=0)
    with pytest.raises(ValueError, match=r'^base must have shape \(4,\)'):
        annealed_importance_sampling(model, base=torch.zeros(3), n_temperatures=5, generator=0)
    assert model.calls == 0


BASE_RATE_ERRORS = {  # name: (call, error type, argument named, expected words)
    'data a list': (lambda: base_rate_bias([[0, 1], [1, 1]]), TypeError, 'data', 'torch.Tensor'),
    'data complex': (lambda: base_rate_bias(torch.zeros(2, 2, dtype=torch.complex64)), TypeError, 'data', 'real'),
    'data 1-D': (lambda: base_rate_bias(torch.ones(4)), ValueError, 'data', 'shape (N, D)'),
    'data empty': (lambda: base_rate_bias(torch.ones(0, 4)), ValueError, 'data', 'non-empty'),
    'data 0.5': (lambda: base_rate_bias(torch.tensor([[0.0, 0.5]])), ValueError, 'data', 'only 0s and 1s'),
    'data 2': (lambda: base_rate_bias(torch.tensor([[0, 2]])), ValueError, 'data', 'only 0s and 1s'),
    'data -1 (Ising spins)': (lambda: base_rate_bias(torch.tensor([[-1.0, 1.0]])), ValueError, 'data', 'only 0s and 1s'),
    'data NaN': (lambda: base_rate_bias(torch.tensor([[math.nan, 1.0]])), ValueError, 'data', 'only 0s and 1s'),
    'smoothing 0': (lambda: base_rate_bias(torch.ones(3, 2), smoothing=0), ValueError, 'smoothing', 'positive'),
    'smoothing -1': (lambda: base_rate_bias(torch.ones(3, 2), smoothing=-1.0), ValueError, 'smoothing', 'positive'),
    'smoothing nan': (lambda: base_rate_bias(torch.ones(3, 2), smoothing=math.nan), ValueError, 'smoothing', 'finite'),
    'smoothing "1"': (lambda: base_rate_bias(torch.ones(3, 2), smoothing='1'), TypeError, 'smoothing', 'real number'),
}


@pytest.mark.parametrize('case', list(BASE_RATE_ERRORS))
def test_base_rate_bias_refuses_bad_input(case):
    call, error, name, words = BASE_RATE_ERRORS[case]
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(name) and words in message, message


def test_sensible_values_still_work():
    model = CountingRBM(5, 3, generator=0)
    for base in (None, torch.zeros(5), torch.linspace(-1, 1, 5, dtype=torch.float64), base_rate_bias(torch.ones(3, 5), smoothing=1e-3)):
        r = annealed_importance_sampling(model, n_samples=2, n_temperatures=1, dim=5, base=base, step_size=123.0, generator=0)
        assert math.isfinite(r.log_z) and r.log_weights.shape == (2,)
    r = annealed_importance_sampling(model, n_samples=4, schedule=[0.0, 0.25, 1.0], n_temperatures=999, generator=0)
    assert r.samples.shape == (4, 5)
    assert model.calls == 0   # the RBM path reads the parameters; it never calls the model
