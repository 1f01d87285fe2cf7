"""Metropolis samplers take E at the proposal from the force's last call when the model's gradient computes it anyway."""
import pytest
import torch

from torchebm_nb.core import DoubleWellModel
from torchebm_nb.models import MLPEnergy
from torchebm_nb.samplers import MALA, NUTS, HamiltonianMonteCarlo, ParallelTempering


class _Counting(MLPEnergy):
    "An MLP energy that counts its forward passes."
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


class _Separate(_Counting):
    "The same energy, with the energy/gradient reuse turned off."
    gradient_computes_energy = False


def _pair():
    torch.manual_seed(0)
    fused = _Counting(3, hidden_dim=16, depth=2)
    separate = _Separate(3, hidden_dim=16, depth=2)
    separate.load_state_dict(fused.state_dict())
    return fused, separate


SAMPLERS = [(MALA, dict(step_size=0.05)), (HamiltonianMonteCarlo, dict(step_size=0.05, n_leapfrog_steps=4)),
            (NUTS, dict(step_size=0.1, max_tree_depth=4))]


@pytest.mark.parametrize('cls,kwargs', SAMPLERS, ids=[c.__name__ for c, _ in SAMPLERS])
def test_same_chains_fewer_forward_passes(cls, kwargs):
    fused, separate = _pair()
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    a, da = cls(fused, **kwargs).sample(x=x, n_steps=6, return_diagnostics=True, generator=2)
    b, db = cls(separate, **kwargs).sample(x=x, n_steps=6, return_diagnostics=True, generator=2)
    assert torch.equal(a, b)                                   # bit for bit: the energy is the same number
    assert torch.equal(da['acceptance_rate'], db['acceptance_rate'])
    assert fused.calls < separate.calls, (fused.calls, separate.calls)


def test_parallel_tempering_reuses_through_the_tempered_energy():
    fused, separate = _pair()
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(3))
    a = ParallelTempering(MALA(fused, step_size=0.05), n_replicas=3).sample(x=x, n_steps=5, generator=4)
    b = ParallelTempering(MALA(separate, step_size=0.05), n_replicas=3).sample(x=x, n_steps=5, generator=4)
    assert torch.equal(a, b) and fused.calls < separate.calls


def test_closed_form_and_mixed_precision_models_keep_separate_passes():
    well = DoubleWellModel()
    assert well.gradient_computes_energy is False             # its gradient is closed form: no forward to reuse
    x = torch.randn(5, 2)
    energy, grad = well.energy_and_gradient(x)
    torch.testing.assert_close(energy, well(x)); torch.testing.assert_close(grad, well.gradient(x))
    fused, _ = _pair()
    fused.force_fp32_gradient = True                          # the gradient's pass runs in float32, not in x's dtype
    assert fused.gradient_computes_energy is False
