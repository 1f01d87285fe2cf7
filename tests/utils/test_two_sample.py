"""The classifier two-sample test (nbs/70_utils/08_two_sample.ipynb): its exact binomial tail and Clopper–Pearson
interval against scipy over a grid of (k, n); its size under the null over 200 seeded trials (within a binomial
4-sigma band of alpha) and its power on a known mean shift; seeded runs bit-identical; and bad input refused with an
error naming the argument before any classifier is built, called or trained."""
import math

import pytest
import torch
from torch import nn

from torchebm_nb.utils.metrics import ImageClassifier
from torchebm_nb.utils.two_sample import binomial_tail, classifier_two_sample_test, clopper_pearson_interval

stats = pytest.importorskip('scipy.stats')

GRID = [(k, n) for n in (1, 2, 7, 20, 64, 101, 359, 1000)
        for k in sorted({0, 1, n // 4, n // 2, n // 2 + 1, (2 * n) // 3, n - 1, n}) if 0 <= k <= n]


@pytest.mark.parametrize('k, n', GRID)
def test_p_value_is_scipys_exact_binomial_test(k, n):
    expected = stats.binomtest(k, n, 0.5, alternative='greater').pvalue
    assert binomial_tail(k, n) == pytest.approx(expected, rel=1e-10, abs=1e-300)


@pytest.mark.parametrize('alpha', [0.05, 0.01, 0.3])
@pytest.mark.parametrize('k, n', GRID)
def test_clopper_pearson_is_scipys_exact_interval(k, n, alpha):
    expected = stats.binomtest(k, n, 0.5).proportion_ci(confidence_level=1 - alpha, method='exact')
    low, high = clopper_pearson_interval(k, n, alpha)
    assert low == pytest.approx(expected.low, abs=1e-10) and high == pytest.approx(expected.high, abs=1e-10)


@pytest.mark.parametrize('p', [0.0, 0.13, 0.5, 0.9, 1.0])
def test_both_tails_are_scipys_at_other_probabilities(p):
    for k in (0, 3, 10, 17, 30):
        assert binomial_tail(k, 30, p) == pytest.approx(stats.binom.sf(k - 1, 30, p), rel=1e-10, abs=1e-300)
        assert binomial_tail(k, 30, p, upper=False) == pytest.approx(stats.binom.cdf(k, 30, p), rel=1e-10, abs=1e-300)


def _gaussians(seed, n=100, shift=0.0, d=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g) + shift


LOGISTIC = dict(hidden_features=(), epochs=5, batch_size=50, learning_rate=0.05)   # cheap: logistic regression


def test_one_law_gives_accuracy_one_half_within_its_interval():
    x, y = _gaussians(0, n=600)
    result = classifier_two_sample_test(x, y, generator=1)
    low, high = result.confidence_interval
    assert low <= 0.5 <= high, result
    assert result.n_test == 600 and result.accuracy == result.n_correct / 600 and not result.reject


def test_size_is_alpha_over_200_null_trials():
    "Rejection rate of a true H0 within 4 binomial standard deviations of alpha (the exact test is conservative)."
    alpha, trials = 0.05, 200
    rejected = sum(classifier_two_sample_test(*_gaussians(seed), alpha=alpha, generator=seed, **LOGISTIC).reject
                   for seed in range(trials))
    band = 4 * math.sqrt(alpha * (1 - alpha) / trials)
    assert abs(rejected / trials - alpha) <= band, rejected


def test_power_is_near_one_on_a_mean_shift():
    results = [classifier_two_sample_test(*_gaussians(seed, n=200, shift=torch.tensor([1.0, 0.0])), generator=seed,
                                          **LOGISTIC) for seed in range(20)]
    assert sum(r.reject for r in results) >= 19, [r.p_value for r in results]
    assert min(r.accuracy for r in results) > 0.6


def test_seeded_runs_are_bit_identical_and_the_given_module_is_not_trained():
    x, y = _gaussians(3, n=200, shift=0.5)
    first, second = (classifier_two_sample_test(x, y, epochs=3, generator=7) for _ in range(2))
    assert first[:6] == second[:6]
    assert all(torch.equal(a, b) for a, b in zip(first.classifier.parameters(), second.classifier.parameters()))
    module = nn.Linear(2, 1)
    before = [p.clone() for p in module.parameters()]
    result = classifier_two_sample_test(x, y, classifier=module, epochs=3, generator=7)
    assert result.classifier is not module and all(torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_images_with_the_default_mlp_and_an_image_classifier():
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(120, 1, 8, 8, generator=g), torch.randn(100, 1, 8, 8, generator=g) + 0.5
    for classifier in (None, ImageClassifier(1, 2, 8, width=4, feature_dim=8, generator=0),
                       lambda: ImageClassifier(1, 2, 8, width=4, feature_dim=8, generator=0)):
        result = classifier_two_sample_test(x, y, classifier=classifier, epochs=10, batch_size=25,
                                            learning_rate=1e-2, generator=5)
        assert result.n_test == 100 and result.reject, result   # the larger sample is cut to 100: 50 + 50 held out


def test_dtype_and_mixed_precision_inputs():
    x, y = _gaussians(6, n=50)
    result = classifier_two_sample_test(x.double(), y.half(), epochs=1, generator=0)
    assert next(result.classifier.parameters()).dtype == torch.float64


class CountingClassifier(nn.Module):
    "A linear classifier that counts, per class, how often any copy of it was built or called."
    calls = 0
    def __init__(self):
        super().__init__()
        type(self).calls += 1
        self.linear = nn.Linear(2, 1)
    def forward(self, x):
        type(self).calls += 1
        return self.linear(x)


X, Y = _gaussians(8, n=20)
GOOD = dict(x=X, y=Y)


def _call(**changes):
    "The test with the counting classifier as a factory and `changes` to the arguments."
    return lambda: classifier_two_sample_test(**(GOOD | dict(classifier=lambda: CountingClassifier()) | changes))


CASES = {  # name: (call, exception, argument named, expected words)
    'x list': (_call(x=[[0.0, 1.0]] * 4), TypeError, 'x', 'torch.Tensor'),
    'x int': (_call(x=torch.ones(4, 2, dtype=torch.long)), TypeError, 'x', 'floating'),
    'x one point': (_call(x=X[:1]), ValueError, 'x', 'at least 2'),
    'x empty': (_call(x=X[:0]), ValueError, 'x', 'at least one'),
    'x 1-d': (_call(x=torch.zeros(4)), ValueError, 'x', 'batch of shape'),
    'x nan': (_call(x=torch.full((4, 2), math.nan)), ValueError, 'x', 'non-finite'),
    'y shape': (_call(y=torch.zeros(5, 3)), ValueError, 'y', "x's shape (2,)"),
    'y none': (_call(y=None), TypeError, 'y', 'torch.Tensor'),
    'classifier str': (_call(classifier='mlp'), TypeError, 'classifier', 'nn.Module'),
    'classifier a class': (_call(classifier=CountingClassifier), TypeError, 'classifier', 'instantiate it'),
    'classifier factory returns str': (_call(classifier=lambda: 'mlp'), TypeError, 'classifier', 'return an nn.Module'),
    'train_fraction 0': (_call(train_fraction=0), ValueError, 'train_fraction', 'in (0, 1)'),
    'train_fraction 1': (_call(train_fraction=1.0), ValueError, 'train_fraction', 'in (0, 1)'),
    'train_fraction str': (_call(train_fraction='half'), TypeError, 'train_fraction', 'real number'),
    'train_fraction leaves no test point': (_call(train_fraction=0.99), ValueError, 'train_fraction', 'leaves 20 for training'),
    'epochs 0': (_call(epochs=0), ValueError, 'epochs', '≥ 1'),
    'epochs float': (_call(epochs=2.0), TypeError, 'epochs', 'int'),
    'batch_size 0': (_call(batch_size=0), ValueError, 'batch_size', '≥ 1'),
    'learning_rate 0': (_call(learning_rate=0.0), ValueError, 'learning_rate', 'positive'),
    'learning_rate nan': (_call(learning_rate=math.nan), ValueError, 'learning_rate', 'finite'),
    'alpha 0': (_call(alpha=0.0), ValueError, 'alpha', 'in (0, 1)'),
    'alpha bool': (_call(alpha=True), TypeError, 'alpha', 'real number'),
    'generator str': (_call(generator='seed'), TypeError, 'generator', 'torch.Generator'),
    'hidden_features int': (_call(classifier=None, hidden_features=64), TypeError, 'hidden_features', 'tuple of ints'),
    'hidden_features 0': (_call(classifier=None, hidden_features=(8, 0)), ValueError, 'hidden_features[1]', '≥ 1'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_input_is_refused_before_any_training(case):
    call, exception, name, words = CASES[case]
    CountingClassifier.calls = 0
    with pytest.raises(exception) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
    assert CountingClassifier.calls == 0


@pytest.mark.parametrize('call, exception, name', [
    (lambda: binomial_tail(5, 4), ValueError, 'k'), (lambda: binomial_tail(-1, 4), ValueError, 'k'),
    (lambda: binomial_tail(1, 0), ValueError, 'n'), (lambda: binomial_tail(1.0, 4), TypeError, 'k'),
    (lambda: binomial_tail(1, 4, -0.1), ValueError, 'p'), (lambda: binomial_tail(1, 4, None), TypeError, 'p'),
    (lambda: clopper_pearson_interval(1, 4, 1.0), ValueError, 'alpha'), (lambda: clopper_pearson_interval(1, '4'), TypeError, 'n')])
def test_bad_counts_are_refused(call, exception, name):
    with pytest.raises(exception, match=rf'^{name} must'):
        call()


def test_sensible_values_still_work():
    CountingClassifier.calls = 0
    result = classifier_two_sample_test(X, Y, classifier=lambda: CountingClassifier(), train_fraction=0.25, epochs=1, batch_size=3,
                                        alpha=0.5, generator=torch.Generator().manual_seed(0))
    assert result.n_test == 30 and 0 <= result.p_value <= 1 and CountingClassifier.calls > 0
    assert classifier_two_sample_test(X, Y, hidden_features=[4], epochs=1, generator=0).n_test == 20
    assert binomial_tail(0, 1) == 1.0 and clopper_pearson_interval(1, 1) == (pytest.approx(0.025), 1.0)
