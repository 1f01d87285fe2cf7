"""Bad data batches to every loss and coupling: an empty batch names `x` (or `x0`/`x1`), an integer batch is refused
rather than cast (one rule for every loss), a batch without an event dimension is refused; all before the model is
evaluated (issue 14's classes "wrong types coerced" and "empty batches")."""
import pytest
import torch
from torch import nn

from torchebm_nb import couplings as C
from torchebm_nb import losses as L
from torchebm_nb.core import BaseModel
from torchebm_nb.samplers import LangevinDynamics

from counting import CountingEnergy, CountingVelocity


LOSSES = {
    'ContrastiveDivergence': (CountingEnergy, lambda m: L.ContrastiveDivergence(m, LangevinDynamics(m, 0.01), k_steps=2)),
    'PersistentContrastiveDivergence': (CountingEnergy, lambda m: L.PersistentContrastiveDivergence(m, LangevinDynamics(m, 0.01), k_steps=2)),
    'ParallelTemperingCD': (CountingEnergy, lambda m: L.ParallelTemperingCD(m, LangevinDynamics(m, 0.01), n_replicas=2, k_steps=2, init_steps=1)),
    'ScoreMatching': (CountingEnergy, lambda m: L.ScoreMatching(m)),
    'DenoisingScoreMatching': (CountingEnergy, lambda m: L.DenoisingScoreMatching(m)),
    'SlicedScoreMatching': (CountingEnergy, lambda m: L.SlicedScoreMatching(m)),
    'FlowMatchingLoss': (CountingVelocity, lambda m: L.FlowMatchingLoss(m)),
    'EquilibriumMatchingLoss': (CountingVelocity, lambda m: L.EquilibriumMatchingLoss(m)),
    'EnergyMatchingLoss': (CountingEnergy, lambda m: L.EnergyMatchingLoss(m, coupling='independent', n_langevin_steps=2)),
}
BAD = {'empty (0, 2)': (torch.zeros(0, 2), ValueError, 'x must hold at least one sample; got an empty batch of shape (0, 2)'),
       'empty (0, 1, 4, 4)': (torch.zeros(0, 1, 4, 4), ValueError, 'x must hold at least one sample'),
       'int64': (torch.ones(4, 2, dtype=torch.int64), TypeError, 'x must be a floating tensor; got dtype torch.int64'),
       'bool': (torch.ones(4, 2, dtype=torch.bool), TypeError, 'x must be a floating tensor; got dtype torch.bool'),
       '1-D': (torch.zeros(4), ValueError, 'x must be a batch of shape (B, *S); got shape (4,)'),
       'a list': ([[0.0, 1.0]], TypeError, 'x must be a torch.Tensor; got list')}


@pytest.mark.parametrize('bad', list(BAD))
@pytest.mark.parametrize('loss', list(LOSSES))
def test_losses_refuse_bad_batches_before_work(loss, bad):
    make_model, make_loss = LOSSES[loss]
    x, error, message = BAD[bad]
    model = make_model()
    loss_fn = make_loss(model)
    with pytest.raises(error) as caught:
        loss_fn(x)
    assert message in str(caught.value), str(caught.value)
    assert model.calls == 0


@pytest.mark.parametrize('loss', ['FlowMatchingLoss', 'EquilibriumMatchingLoss'])
def test_interpolant_losses_check_x0_too(loss):
    make_model, make_loss = LOSSES[loss]
    model = make_model()
    with pytest.raises(ValueError, match='x0 must hold at least one sample'):
        make_loss(model)(torch.zeros(4, 2), x0=torch.zeros(0, 2))
    assert model.calls == 0


COUPLINGS = ['IndependentCoupling', 'ExactOTCoupling', 'SinkhornCoupling', 'GreedyCoupling', 'UnbalancedSinkhornCoupling']

@pytest.mark.parametrize('which', ['x0', 'x1'])
@pytest.mark.parametrize('coupling', COUPLINGS)
def test_couplings_name_an_empty_batch(coupling, which):
    batches = {'x0': torch.zeros(4, 2), 'x1': torch.zeros(4, 2)}
    batches[which] = torch.zeros(0, 2)
    with pytest.raises(ValueError, match=rf'{which} must hold at least one sample; got an empty batch of shape \(0, 2\)'):
        getattr(C, coupling)()(batches['x0'], batches['x1'])


def test_a_good_batch_still_works():
    for name, (make_model, make_loss) in LOSSES.items():
        model = make_model()
        value = make_loss(model)(torch.randn(8, 2, generator=torch.Generator().manual_seed(0)))
        value = value[0] if isinstance(value, tuple) else value
        assert value.ndim == 0 and torch.isfinite(value), name
