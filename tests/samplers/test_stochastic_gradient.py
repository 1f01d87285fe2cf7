"""Bad input to the SG-MCMC samplers (issue 17): refused with an error naming the argument, before the model is evaluated."""
import math

import pytest
import torch
from torch import nn

from torchebm_nb.samplers.stochastic_gradient import StochasticGradientHMC, StochasticGradientLangevin


class CountingLikelihood(nn.Module):
    "Σ_batch ½(y − θ·x)², counting its evaluations."
    def __init__(self):
        super().__init__()
        self.calls = 0
    def forward(self, theta, batch):
        self.calls += 1
        inputs, targets = batch
        return 0.5 * (targets - theta @ inputs.T).square().sum(-1)


X, Y = torch.randn(20, 2, generator=torch.Generator().manual_seed(0)), torch.randn(20, generator=torch.Generator().manual_seed(1))
SGLD, SGHMC = StochasticGradientLangevin, StochasticGradientHMC

CASES = {  # name: (call, argument named, expected words, exception type)
    'step_size=0': (lambda m: SGLD(m, (X, Y), step_size=0.0), 'step_size', 'positive', ValueError),
    'step_size=nan': (lambda m: SGHMC(m, (X, Y), step_size=math.nan), 'step_size', 'finite', ValueError),
    'step_size="a"': (lambda m: SGLD(m, (X, Y), step_size='a'), 'step_size', 'number', TypeError),
    'batch_size=0': (lambda m: SGLD(m, (X, Y), batch_size=0), 'batch_size', '≥ 1', ValueError),
    'batch_size>N': (lambda m: SGLD(m, (X, Y), batch_size=21), 'batch_size', 'N = 20', ValueError),
    'batch_size=2.5': (lambda m: SGLD(m, (X, Y), batch_size=2.5), 'batch_size', 'int', TypeError),
    'dataset_size<batch': (lambda m: SGLD(m, (X, Y), batch_size=10, dataset_size=5), 'dataset_size', 'batch size 10', ValueError),
    'mismatched rows': (lambda m: SGLD(m, (X, Y[:5])), 'data', '[20, 5]', ValueError),
    'empty tuple': (lambda m: SGLD(m, ()), 'data', 'at least one tensor', ValueError),
    'not data': (lambda m: SGLD(m, 3.0), 'data', 'iterable', TypeError),
    'empty loader': (lambda m: SGLD(m, [], dataset_size=10), 'data', 'at least one batch', ValueError),
    'exhausted iterator': (lambda m: SGLD(m, iter([]), dataset_size=10).sample(dim=2, n_steps=2), 'data', 'at least one batch', ValueError),
    'iterable without size': (lambda m: SGLD(m, iter([(X, Y)])), 'dataset_size', 'must be given', ValueError),
    'batch_size with loader': (lambda m: SGLD(m, [(X, Y)], batch_size=4, dataset_size=20), 'batch_size', 'None', ValueError),
    'preconditioned=1': (lambda m: SGLD(m, (X, Y), preconditioned=1), 'preconditioned', 'bool', TypeError),
    'decay=1': (lambda m: SGLD(m, (X, Y), decay=1.0), 'decay', '(0, 1)', ValueError),
    'epsilon=0': (lambda m: SGLD(m, (X, Y), epsilon=0.0), 'epsilon', 'positive', ValueError),
    'friction=0': (lambda m: SGHMC(m, (X, Y), friction=0.0), 'friction', '(0, 1]', ValueError),
    'friction=1.5': (lambda m: SGHMC(m, (X, Y), friction=1.5), 'friction', '(0, 1]', ValueError),
    'noise_estimate>friction': (lambda m: SGHMC(m, (X, Y), friction=0.1, noise_estimate=0.2), 'noise_estimate', '≤ friction', ValueError),
    'noise_estimate<0': (lambda m: SGHMC(m, (X, Y), noise_estimate=-0.1), 'noise_estimate', '≥ 0', ValueError),
    'prior=3': (lambda m: SGLD(m, (X, Y), prior=3), 'prior', 'callable', TypeError),
    'loader dataset_size<batch': (lambda m: SGLD(m, torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=10),
                                                 dataset_size=5), 'dataset_size', 'batch size 10', ValueError),
    'model=3': (lambda m: SGLD(3, (X, Y)), 'model', 'nn.Module', TypeError),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_input_is_refused_before_the_model_runs(case):
    call, name, words, error = CASES[case]
    model = CountingLikelihood()
    with pytest.raises(error) as caught:
        call(model)
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
    assert model.calls == 0


def test_a_batch_of_another_structure_is_named():
    model = CountingLikelihood()
    sampler = SGLD(model, iter([(X[:5], Y[:5]), X[5:10]]), dataset_size=20)
    with pytest.raises(ValueError, match='data must yield batches of one structure'):
        sampler.sample(dim=2, n_steps=2)
    assert model.calls == 1


def test_sensible_values_still_work():
    for sampler in (SGLD(CountingLikelihood(), (X, Y), step_size=1e-3, batch_size=5),
                    SGLD(CountingLikelihood(), (X, Y), step_size=1e-3, batch_size=5, preconditioned=True),
                    SGHMC(CountingLikelihood(), (X, Y), step_size=1e-3, friction=1.0, noise_estimate=1.0, batch_size=20)):
        first = sampler.sample(dim=2, n_samples=4, n_steps=5, generator=0)
        assert first.shape == (4, 2) and torch.equal(first, sampler.sample(dim=2, n_samples=4, n_steps=5, generator=0))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=5, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    assert SGHMC(CountingLikelihood(), loader, step_size=1e-3).sample(dim=2, n_samples=3, n_steps=6).shape == (3, 2)
