"""Kernel Stein discrepancy, its wild-bootstrap test and the Fisher divergence (issue 18) against independent references.

References written here, sharing no code with `torchebm_nb.utils.stein`: the Stein kernel by autograd through the base
kernel, pair by pair, in float64 (Liu, Lee & Jordan 2016, eq. for u_p); the Fisher divergence between two Gaussians in
closed form, and Hyvärinen's objective as that minus ½ tr Σ_data⁻¹. Statistical checks use seeded repetitions, with
tolerances from the Monte-Carlo standard error (4σ) and, for the test's size, a binomial 4σ band.
"""
import math

import pytest
import torch
from torch import nn

from torchebm_nb.core import GaussianModel
from torchebm_nb.utils.stein import FisherDivergence, KSDTest, fisher_divergence, kernel_stein_discrepancy, ksd_test, stein_kernel

from counting import CountingEnergy

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------------------------------------
# the closed-form Stein kernel against autograd

def brute_stein_kernel(x, y, sx, sy, base):
    """u_p(x_i, y_j) = s(x)ᵀs(y)k + s(x)ᵀ∇_y k + s(y)ᵀ∇_x k + tr ∇_x∇_y k, every derivative by autograd, loop by loop."""
    out = torch.empty(len(x), len(y), dtype=F64)
    for i in range(len(x)):
        for j in range(len(y)):
            a, b = x[i].clone().requires_grad_(True), y[j].clone().requires_grad_(True)
            k = base(a, b)
            ga, gb = torch.autograd.grad(k, (a, b), create_graph=True)
            trace = sum(torch.autograd.grad(ga[t], b, retain_graph=True)[0][t] for t in range(len(a)))
            out[i, j] = (sx[i] @ sy[j]) * k + sx[i] @ gb + sy[j] @ ga + trace
    return out.detach()


KERNELS = {  # name: (stein_kernel keyword arguments, the base kernel written out)
    'imq default': (dict(kernel='imq'), lambda a, b: (1 + (a - b).square().sum()) ** -0.5),
    'imq c=0.7 β=-0.3 ℓ=1.8': (dict(kernel='imq', bandwidth=1.8, imq_offset=0.7, imq_exponent=-0.3),
                               lambda a, b: (0.49 + (a - b).square().sum() / 1.8**2) ** -0.3),
    'imq β=-2 ℓ=0.6': (dict(kernel='imq', bandwidth=0.6, imq_exponent=-2.0),
                       lambda a, b: (1 + (a - b).square().sum() / 0.36) ** -2.0),
    'rbf ℓ=1.3': (dict(kernel='rbf', bandwidth=1.3), lambda a, b: torch.exp(-(a - b).square().sum() / (2 * 1.3**2))),
    'rbf ℓ=0.4': (dict(kernel='rbf', bandwidth=0.4), lambda a, b: torch.exp(-(a - b).square().sum() / (2 * 0.4**2))),
}


@pytest.mark.parametrize('name', list(KERNELS))
def test_closed_form_stein_kernel_equals_autograd(name):
    kwargs, base = KERNELS[name]
    g = _gen(0)
    x, y = torch.randn(5, 3, generator=g, dtype=F64), torch.randn(4, 3, generator=g, dtype=F64)
    y[0] = x[0]                                                          # a coincident pair (r = 0)
    sx, sy = torch.randn(5, 3, generator=g, dtype=F64), torch.randn(4, 3, generator=g, dtype=F64)
    torch.testing.assert_close(stein_kernel(x, y, sx, sy, **kwargs), brute_stein_kernel(x, y, sx, sy, base),
                               rtol=1e-10, atol=1e-12)


def test_rbf_median_heuristic_is_the_median_distance():
    x = torch.randn(40, 2, generator=_gen(1), dtype=F64)
    s = -x
    distances = torch.pdist(x)
    median = distances.sort().values[(len(distances) - 1) // 2]        # torch's median: the lower middle value
    torch.testing.assert_close(stein_kernel(x, x, s, s, kernel='rbf'),
                               stein_kernel(x, x, s, s, kernel='rbf', bandwidth=median.item()))


# ----------------------------------------------------------------------------------------------------------------------
# KSD: about 0 under the model, a clear signal away from it; U unbiased, V ≥ 0

class GaussianMixtureEnergy(nn.Module):
    """E(x) = −log Σ_k exp(−‖x − μ_k‖²/2σ²) for equal weights: a plain module, so its score comes from autograd."""
    def __init__(self, centres, std):
        super().__init__()
        self.register_buffer('centres', centres)
        self.std = std

    def forward(self, x):
        return -torch.logsumexp(-torch.cdist(x, self.centres).square() / (2 * self.std**2), dim=1)

    def sample(self, n, generator):
        pick = torch.randint(0, len(self.centres), (n,), generator=generator)
        return self.centres[pick] + self.std * torch.randn(n, self.centres.shape[1], generator=generator, dtype=F64)


COV = torch.tensor([[1.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 0.5]], dtype=F64)
MIXTURE = GaussianMixtureEnergy(torch.tensor([[-1.5, 0.0], [1.5, 0.0], [0.0, 1.5]], dtype=F64), 0.5)
TARGETS = {  # name: (model, exact sampler (n, generator), wrong models)
    'gaussian 3-d': (GaussianModel(torch.zeros(3), COV, dtype=F64),
                     lambda n, g: torch.randn(n, 3, generator=g, dtype=F64) @ torch.linalg.cholesky(COV).T,
                     {'shifted': GaussianModel(torch.tensor([0.4, 0.0, 0.0]), COV, dtype=F64),
                      'scaled': GaussianModel(torch.zeros(3), 2.0 * COV, dtype=F64)}),
    'mixture 2-d': (MIXTURE, MIXTURE.sample,
                    {'shifted': GaussianMixtureEnergy(MIXTURE.centres + torch.tensor([0.3, 0.0], dtype=F64), 0.5),
                     'scaled': GaussianMixtureEnergy(MIXTURE.centres, 0.8)}),
}


def _repeat(function, seeds):
    values = torch.stack([function(_gen(seed)) for seed in seeds])
    return values.mean().item(), values.std().item() / math.sqrt(len(values)), values


@pytest.mark.parametrize('kernel', ['imq', 'rbf'])
@pytest.mark.parametrize('target', list(TARGETS))
def test_ksd_is_zero_under_the_model_and_clearly_positive_away_from_it(target, kernel):
    model, draw, wrong = TARGETS[target]
    mean, se, values = _repeat(lambda g: kernel_stein_discrepancy(draw(200, g), model, kernel=kernel), range(30))
    assert abs(mean) < 4 * se, (mean, se)                                # within its standard error of 0
    assert (values < 0).any(), values.min()                              # unbiased: negative values occur under H₀
    for name, other in wrong.items():
        wrong_mean, wrong_se, _ = _repeat(lambda g: kernel_stein_discrepancy(draw(200, g), other, kernel=kernel),
                                          range(30, 40))
        assert wrong_mean > 6 * se + 4 * wrong_se and wrong_mean > 0, (name, wrong_mean, wrong_se, se)


def test_u_statistic_is_unbiased_and_v_statistic_nonnegative():
    "E[U at n = 20] over seeds equals a precise large-n estimate; V ≥ 0 for every seed, and above U (its bias)."
    model, draw, wrong = TARGETS['gaussian 3-d']
    other = wrong['shifted']
    small, small_se, _ = _repeat(lambda g: kernel_stein_discrepancy(draw(20, g), other), range(300))
    large, large_se, _ = _repeat(lambda g: kernel_stein_discrepancy(draw(1000, g), other), range(1000, 1004))
    assert abs(small - large) < 4 * math.hypot(small_se, large_se), (small, small_se, large, large_se)
    for seed in range(20):
        x = draw(20, _gen(seed))
        for m in (model, other):
            v = kernel_stein_discrepancy(x, m, statistic='v')
            assert v >= -1e-14 and v > kernel_stein_discrepancy(x, m), v


def test_chunking_and_score_sources_agree():
    model, draw, _ = TARGETS['mixture 2-d']
    x = draw(301, _gen(5))
    whole = kernel_stein_discrepancy(x, model, chunk_size=4096)
    torch.testing.assert_close(kernel_stein_discrepancy(x, model, chunk_size=17), whole)
    score = lambda z: -torch.func.vmap(torch.func.grad(lambda p: model(p[None])[0]))(z)   # a callable score
    torch.testing.assert_close(kernel_stein_discrepancy(x, score), whole)
    torch.testing.assert_close(kernel_stein_discrepancy(x, model, squared=False), whole.clamp_min(0).sqrt())


# ----------------------------------------------------------------------------------------------------------------------
# the wild-bootstrap test: size ≈ α under H₀, power near 1 on a known shift

def _rejection_rate(draw, model, trials, seed0, n=60, **kw):
    rejections = [ksd_test(draw(n, _gen(seed0 + t)), model, n_bootstrap=200, generator=seed0 + t, **kw).reject
                  for t in range(trials)]
    return torch.stack(rejections).double().mean().item()


@pytest.mark.parametrize('kernel', ['imq', 'rbf'])
def test_ksd_test_has_its_size_under_the_null(kernel):
    model, draw, _ = TARGETS['gaussian 3-d']
    alpha, trials = 0.05, 200
    rate = _rejection_rate(draw, model, trials, 10_000, kernel=kernel, alpha=alpha)
    assert abs(rate - alpha) <= 4 * math.sqrt(alpha * (1 - alpha) / trials), rate


def test_ksd_test_has_power_on_a_known_shift():
    model, draw, _ = TARGETS['gaussian 3-d']
    shifted = GaussianModel(torch.tensor([0.8, 0.0, 0.0]), COV, dtype=F64)
    assert _rejection_rate(draw, shifted, 50, 20_000) >= 0.95


def test_correlated_multipliers_for_a_markov_chain():
    "An AR(1) chain with φ = 0.8 targeting N(0, 1): independent signs over-reject; a sign process flipping with a ≈ (1 − φ)/2 is near α."
    model = GaussianModel(torch.zeros(1), torch.eye(1), dtype=F64)
    phi, n = 0.8, 300

    def chain(_n, g):
        noise = torch.randn(n, generator=g, dtype=F64)
        x = torch.empty(n, dtype=F64)
        x[0] = noise[0]
        for t in range(1, n): x[t] = phi * x[t - 1] + math.sqrt(1 - phi**2) * noise[t]
        return x[:, None]

    iid = _rejection_rate(chain, model, 60, 30_000, n=n)
    correlated = _rejection_rate(chain, model, 60, 30_000, n=n, flip_probability=0.05)
    assert iid > 0.3 and correlated < 0.2, (iid, correlated)


def test_ksd_test_result():
    model, draw, _ = TARGETS['gaussian 3-d']
    x = draw(80, _gen(7))
    result = ksd_test(x, model, n_bootstrap=99, generator=3)
    assert isinstance(result, KSDTest)
    torch.testing.assert_close(result.statistic, kernel_stein_discrepancy(x, model))
    assert 0 < result.p_value <= 1
    torch.testing.assert_close(result.p_value * 100, (result.p_value * 100).round())      # (1 + k)/(1 + 99)
    assert bool(result.reject) == bool(result.p_value <= 0.05)
    assert result == ksd_test(x, model, n_bootstrap=99, generator=torch.Generator().manual_seed(3))


# ----------------------------------------------------------------------------------------------------------------------
# the Fisher divergence against its closed form for two Gaussians

def gaussian_fisher(mean_d, cov_d, mean, cov):
    "½E‖s_model − s_data‖² for data N(mean_d, cov_d) and model N(mean, cov): s_model − s_data = A x + b."
    prec, prec_d = torch.linalg.inv(cov), torch.linalg.inv(cov_d)
    a, b = prec_d - prec, prec @ mean - prec_d @ mean_d
    return 0.5 * ((a @ cov_d @ a.T).trace() + (a @ mean_d + b).square().sum()).item()


class QuadraticEnergy(nn.Module):
    "½(x − μ)ᵀP(x − μ) as a plain module (no closed-form gradient): its score and Laplacian come from autograd."
    def __init__(self, mean, cov):
        super().__init__()
        self.register_buffer('mean', mean)
        self.register_buffer('prec', torch.linalg.inv(cov))

    def forward(self, x):
        d = x - self.mean
        return 0.5 * ((d @ self.prec) * d).sum(1)


MEAN_D, MEAN_M = torch.tensor([0.2, -0.1, 0.0], dtype=F64), torch.tensor([0.5, 0.3, -0.4], dtype=F64)
COV_M = torch.tensor([[1.5, 0.2, 0.1], [0.2, 0.8, 0.0], [0.1, 0.0, 1.2]], dtype=F64)


@pytest.mark.parametrize('source', ['GaussianModel', 'plain module', 'callable score'])
def test_fisher_divergence_matches_the_closed_form_and_hyvarinen_differs_by_the_constant(source):
    data = MEAN_D + torch.randn(20_000, 3, generator=_gen(8), dtype=F64) @ torch.linalg.cholesky(COV).T
    models = {'GaussianModel': GaussianModel(MEAN_M, COV_M, dtype=F64), 'plain module': QuadraticEnergy(MEAN_M, COV_M),
              'callable score': lambda x: -(x - MEAN_M) @ torch.linalg.inv(COV_M)}
    model, exact = models[source], gaussian_fisher(MEAN_D, COV, MEAN_M, COV_M)
    constant = 0.5 * torch.linalg.inv(COV).trace().item()              # ½E‖∇log p_data‖² = ½ tr Σ_data⁻¹
    known = fisher_divergence(model, data, data_score=GaussianModel(MEAN_D, COV, dtype=F64))
    assert isinstance(known, FisherDivergence) and known.kind == 'fisher_divergence'
    assert abs(known.value.item() - exact) < 4 * known.standard_error.item(), (known, exact)
    objective = fisher_divergence(model, data)
    assert objective.kind == 'score_matching'
    assert abs(objective.value.item() - (exact - constant)) < 4 * objective.standard_error.item(), (objective, exact)
    hutchinson = fisher_divergence(model, data, exact_laplacian=False, n_probes=2, generator=0)
    assert abs(hutchinson.value.item() - (exact - constant)) < 4 * hutchinson.standard_error.item(), hutchinson
    # the same data: the difference between the two forms is the constant of the data, per sample up to round-off
    assert abs((known.value - objective.value).item() - constant) < 4 * known.standard_error.item()


def test_hyvarinen_differences_between_models_are_fisher_differences():
    data = torch.randn(20_000, 2, generator=_gen(9), dtype=F64)
    truth = GaussianModel(torch.zeros(2), torch.eye(2), dtype=F64)
    a = GaussianModel(torch.tensor([0.3, 0.0]), torch.eye(2), dtype=F64)
    b = GaussianModel(torch.zeros(2), 1.5 * torch.eye(2), dtype=F64)
    fisher = [fisher_divergence(m, data, data_score=truth).value for m in (a, b)]
    objective = [fisher_divergence(m, data).value for m in (a, b)]
    torch.testing.assert_close(objective[0] - objective[1], fisher[0] - fisher[1], rtol=0, atol=0.02)


# ----------------------------------------------------------------------------------------------------------------------
# bad input: refused with the argument named, before the model is evaluated

class CountingScore:
    "A callable score of N(0, I) that counts its calls."
    calls = 0
    def __call__(self, x): self.calls += 1; return -x


X = torch.randn(10, 2)


def _nan_batch():
    x = X.clone(); x[3, 1] = math.nan
    return x


def _ksd(samples=X, **kw):
    return lambda m: kernel_stein_discrepancy(samples, m, **kw)


def _test(samples=X, n_bootstrap=20, **kw):
    return lambda m: ksd_test(samples, m, n_bootstrap=n_bootstrap, **kw)


def _fisher(data=X, **kw):
    return lambda m: fisher_divergence(m, data, **kw)


CASES = {  # name: (call taking the model, expected exception, argument named, expected words)
    'samples list': (_ksd(samples=X.tolist()), TypeError, 'samples', 'torch.Tensor'),
    'samples int': (_ksd(samples=X.long()), TypeError, 'samples', 'floating'),
    'samples 1 row': (_ksd(samples=X[:1]), ValueError, 'samples', 'at least 2'),
    'samples 1-d': (_ksd(samples=X[:, 0]), ValueError, 'samples', 'shape'),
    'samples empty': (_ksd(samples=X[:0]), ValueError, 'samples', 'empty'),
    'samples NaN': (_ksd(samples=_nan_batch()), ValueError, 'samples', 'non-finite'),
    'samples float64, model float32': (_ksd(samples=X.double()), ValueError, 'samples', 'float32'),
    'kernel unknown': (_ksd(kernel='gauss'), ValueError, 'kernel', "'gauss'"),
    'kernel not str': (_ksd(kernel=3), TypeError, 'kernel', 'str'),
    'statistic unknown': (_ksd(statistic='b'), ValueError, 'statistic', "'b'"),
    'statistic not str': (_ksd(statistic=None), TypeError, 'statistic', 'NoneType'),
    'bandwidth 0': (_ksd(bandwidth=0.0), ValueError, 'bandwidth', 'positive'),
    'bandwidth -1': (_ksd(bandwidth=-1.0, kernel='rbf'), ValueError, 'bandwidth', '-1.0'),
    'bandwidth nan': (_ksd(bandwidth=math.nan), ValueError, 'bandwidth', 'finite'),
    'bandwidth str': (_ksd(bandwidth='1'), TypeError, 'bandwidth', 'real number'),
    'imq_offset 0': (_ksd(imq_offset=0.0), ValueError, 'imq_offset', 'positive'),
    'imq_exponent 0': (_ksd(imq_exponent=0.0), ValueError, 'imq_exponent', '< 0'),
    'imq_exponent bool': (_ksd(imq_exponent=True), TypeError, 'imq_exponent', 'real number'),
    'squared str': (_ksd(squared='yes'), TypeError, 'squared', 'bool'),
    'chunk_size 0': (_ksd(chunk_size=0), ValueError, 'chunk_size', '≥ 1'),
    'chunk_size float': (_ksd(chunk_size=8.0), TypeError, 'chunk_size', 'int'),
    'test n_bootstrap 0': (_test(n_bootstrap=0), ValueError, 'n_bootstrap', '≥ 1'),
    'test n_bootstrap float': (_test(n_bootstrap=100.0), TypeError, 'n_bootstrap', 'int'),
    'test alpha 0': (_test(alpha=0.0), ValueError, 'alpha', '(0, 1)'),
    'test alpha 1.5': (_test(alpha=1.5), ValueError, 'alpha', '1.5'),
    'test alpha str': (_test(alpha='0.05'), TypeError, 'alpha', 'real number'),
    'test flip_probability 0': (_test(flip_probability=0.0), ValueError, 'flip_probability', '(0, 0.5]'),
    'test flip_probability 0.7': (_test(flip_probability=0.7), ValueError, 'flip_probability', '0.7'),
    'test generator str': (_test(generator='seed'), TypeError, 'generator', 'torch.Generator'),
    'test generator bool': (_test(generator=True), TypeError, 'generator', 'bool'),
    'test kernel unknown': (_test(kernel='laplace'), ValueError, 'kernel', "'laplace'"),
    'test samples 1 row': (_test(samples=X[:1]), ValueError, 'samples', 'at least 2'),
    'fisher data list': (_fisher(data=X.tolist()), TypeError, 'data', 'torch.Tensor'),
    'fisher data 1 row': (_fisher(data=X[:1]), ValueError, 'data', 'at least 2'),
    'fisher data NaN': (_fisher(data=_nan_batch()), ValueError, 'data', 'non-finite'),
    'fisher data_score str': (_fisher(data_score='normal'), TypeError, 'data_score', 'callable'),
    'fisher data_score class': (_fisher(data_score=GaussianModel), TypeError, 'data_score', 'instantiate'),
    'fisher exact_laplacian int': (_fisher(exact_laplacian=1), TypeError, 'exact_laplacian', 'bool'),
    'fisher n_probes 0': (_fisher(n_probes=0), ValueError, 'n_probes', '≥ 1'),
    'fisher generator float': (_fisher(generator=1.5), TypeError, 'generator', 'float'),
}
MODELS = {'energy': CountingEnergy, 'callable': CountingScore}


PAIRS = [(case, source) for case in CASES for source in MODELS
         if not (source == 'callable' and case == 'samples float64, model float32')]   # a callable has no dtype


@pytest.mark.parametrize('case,source', PAIRS, ids=[f'{c}-{s}' for c, s in PAIRS])
def test_bad_input_is_refused_before_the_model_is_evaluated(case, source):
    call, error, name, words = CASES[case]
    model = MODELS[source]()
    with pytest.raises(error) as caught:
        call(model)
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
    assert model.calls == 0


SOURCES = {  # name: (call, argument named, expected words) — the distribution itself is the bad argument
    'ksd class': (lambda: kernel_stein_discrepancy(X, CountingEnergy), 'score_or_model', 'instantiate'),
    'ksd str': (lambda: kernel_stein_discrepancy(X, 'normal'), 'score_or_model', 'callable score'),
    'ksd None': (lambda: kernel_stein_discrepancy(X, None), 'score_or_model', 'NoneType'),
    'test tensor': (lambda: ksd_test(X, X), 'score_or_model', 'Tensor'),
    'fisher int': (lambda: fisher_divergence(3, X), 'model', 'int'),
    'fisher class': (lambda: fisher_divergence(GaussianModel, X), 'model', 'instantiate'),
}


@pytest.mark.parametrize('case', list(SOURCES))
def test_what_is_neither_a_model_nor_a_score_is_refused(case):
    call, name, words = SOURCES[case]
    with pytest.raises(TypeError) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(name) and words in message, message


def test_outputs_of_the_wrong_shape_are_named():
    with pytest.raises(ValueError, match=r'score_or_model must give a score shaped like the samples \(10, 2\)'):
        kernel_stein_discrepancy(X, lambda x: x[:, 0])
    with pytest.raises(ValueError, match=r'score_or_model must return one energy per sample, shape \(10,\)'):
        kernel_stein_discrepancy(X, nn.Linear(2, 2))


def test_sensible_values_still_work():
    for source in (CountingEnergy(), CountingScore()):
        assert kernel_stein_discrepancy(X, source, kernel='rbf', bandwidth=1.0, statistic='v', chunk_size=3).ndim == 0
        assert kernel_stein_discrepancy(X, source, imq_offset=0.5, imq_exponent=-0.9, squared=False) >= 0
        result = ksd_test(X, source, n_bootstrap=10, alpha=0.5, flip_probability=0.5, generator=torch.Generator())
        assert 0 < result.p_value <= 1
        assert fisher_divergence(source, X, exact_laplacian=False, n_probes=1, generator=1).value.isfinite()
        assert fisher_divergence(source, X, data_score=CountingScore()).value.isfinite()
        assert source.calls > 0
