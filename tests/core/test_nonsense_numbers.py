"""Numbers outside an argument's domain are refused where they enter, with a ValueError naming the argument (issue 14's
class "nonsense numbers"): a gradient-clipping norm ≤ 0, negative weights, factors and diffusion scales, non-finite means."""
import math

import pytest
import torch
from torch import nn

from torchebm_nb.core import BaseTrainer, ConstantScheduler, GaussianModel, WarmupScheduler
from torchebm_nb.interpolants import LinearInterpolant
from torchebm_nb.losses import EquilibriumMatchingLoss


def _trainer(**kw):
    model = nn.Linear(2, 1)
    return BaseTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), lambda x, **k: x.sum(), device='cpu',
                       progress=False, **kw)


CASES = {  # name: (call, argument named, expected words)
    'max_grad_norm=-1': (lambda: _trainer(max_grad_norm=-1.0), 'max_grad_norm', 'must be'),
    'max_grad_norm=0': (lambda: _trainer(max_grad_norm=0), 'max_grad_norm', 'must be'),
    'max_grad_norm=inf': (lambda: _trainer(max_grad_norm=math.inf), 'max_grad_norm', 'finite'),
    'dispersion_weight=-0.5': (lambda: EquilibriumMatchingLoss(lambda x, t: x, apply_dispersion=True, dispersion_weight=-0.5),
                               'dispersion_weight', 'must be'),
    'dispersion_weight=nan': (lambda: EquilibriumMatchingLoss(lambda x, t: x, dispersion_weight=math.nan), 'dispersion_weight', 'finite'),
    'warmup_init_factor=-0.1': (lambda: WarmupScheduler(ConstantScheduler(1.0), warmup_steps=5, warmup_init_factor=-0.1),
                                'warmup_init_factor', 'must be'),
    'compute_diffusion norm=-1': (lambda: LinearInterpolant().compute_diffusion(torch.zeros(3, 2), torch.full((3,), 0.5), norm=-1.0),
                                  'norm', 'must be'),
    'compute_diffusion norm=nan': (lambda: LinearInterpolant().compute_diffusion(torch.zeros(3, 2), torch.full((3,), 0.5), norm=math.nan),
                                   'norm', 'finite'),
    'GaussianModel mean [nan, 0]': (lambda: GaussianModel(torch.tensor([math.nan, 0.0]), torch.eye(2)), 'mean', 'must be finite'),
    'GaussianModel mean [inf, 0]': (lambda: GaussianModel(torch.tensor([math.inf, 0.0]), torch.eye(2)), 'mean', 'must be finite'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_nonsense_numbers_are_refused(case):
    call, name, words = CASES[case]
    with pytest.raises(ValueError) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(name) and words in message, message


def test_sensible_numbers_still_work():
    assert _trainer(max_grad_norm=1.0).max_grad_norm == 1.0
    assert EquilibriumMatchingLoss(lambda x, t: x, dispersion_weight=0.0).dispersion_weight == 0.0
    assert WarmupScheduler(ConstantScheduler(1.0), warmup_steps=5, warmup_init_factor=0.0).warmup_init_factor == 0.0
    assert LinearInterpolant().compute_diffusion(torch.zeros(3, 2), torch.full((3,), 0.5), norm=0.0).abs().sum() == 0
    assert torch.equal(GaussianModel(torch.tensor([1.0, 0.0]), torch.eye(2)).mean, torch.tensor([1.0, 0.0]))
