"""EqMEnergy and ClassifierFreeGuidance accept a plain function or lambda where TorchEBM does (the field, the model).

Each callable is checked numerically against the same field or energy written as an nn.Module: energies, gradients,
guided outputs and whole seeded sampler runs must agree exactly (or to round-off where autograd reorders sums).
Anything that is neither a module nor a callable is refused with a TypeError naming the argument.
"""
import pytest
import torch
from torch import nn

from torchebm_nb.core.base_loss import CallableModule
from torchebm_nb.losses import EquilibriumMatchingLoss
from torchebm_nb.models import ClassifierFreeGuidance, EqMEnergy
from torchebm_nb.samplers import FlowSampler, GradientDescentSampler, LangevinDynamics

F64 = torch.float64
A = torch.tensor([[1.0, 0.5], [-0.3, 2.0]], dtype=F64)


def gen(seed):
    return torch.Generator().manual_seed(seed)


class LinearField(nn.Module):
    """f(x, t) = A x (time-invariant), as a module with A as a buffer."""
    def __init__(self):
        super().__init__()
        self.register_buffer('A', A.clone())

    def forward(self, x, t):
        return x @ self.A.T


def linear_field(x, t):
    return x @ A.T


@pytest.mark.parametrize('energy_type', ['dot', 'mean', 'l2', 'implicit'])
@pytest.mark.parametrize('fn', [linear_field, lambda x, t: x @ A.T], ids=['def', 'lambda'])
def test_eqm_energy_of_a_callable_matches_the_module(energy_type, fn):
    x = torch.randn(7, 2, generator=gen(0), dtype=F64)
    by_module, by_function = EqMEnergy(LinearField(), energy_type), EqMEnergy(fn, energy_type)
    assert isinstance(by_function.field, CallableModule) and list(by_function.parameters()) == []
    torch.testing.assert_close(by_function(x), by_module(x), rtol=0, atol=1e-12)
    with torch.no_grad():
        gradient = by_function.gradient(x)
        torch.testing.assert_close(gradient, by_module.gradient(x), rtol=0, atol=1e-12)
    assert gradient.dtype == F64 and not gradient.requires_grad
    run = lambda energy: GradientDescentSampler(energy, step_size=0.05, dtype=F64).sample(x=x, n_steps=20)
    torch.testing.assert_close(run(by_function), run(by_module), rtol=0, atol=1e-12)


def test_eqm_energy_from_a_loss_trained_on_a_lambda():
    loss = EquilibriumMatchingLoss(lambda x, t: x @ A.T, dtype=F64)
    energy = EqMEnergy.from_loss(loss)
    assert energy.energy_type == 'implicit' and energy.field is loss.model
    x = torch.randn(5, 2, generator=gen(1), dtype=F64)
    torch.testing.assert_close(energy.gradient(x), x @ A.T)
    # the same field drives FlowSampler(negate_velocity=True): descent on a unit clock
    flow = FlowSampler(lambda x, t: x @ A.T, negate_velocity=True, integrator='euler', dtype=F64).sample(x=x, n_steps=10)
    descent = GradientDescentSampler(energy, step_size=0.1, dtype=F64).sample(x=x, n_steps=10)
    torch.testing.assert_close(flow, descent, rtol=0, atol=1e-12)


class LabelledField(nn.Module):
    """Output x·(y + 1) + t (label 3 is the null label); counts its calls."""
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x, t, y=None):
        self.calls += 1
        return x * (1.0 if y is None else (y.to(x.dtype) + 1)[:, None]) + t[:, None]


def test_guidance_of_a_callable_matches_the_module_in_one_call():
    module = LabelledField()
    x, t, y = torch.randn(6, 2, generator=gen(2), dtype=F64), torch.rand(6, generator=gen(3), dtype=F64), torch.tensor([0, 1, 2, 0, 1, 2])
    batches = []
    def as_function(x, t, y=None):
        batches.append(x.shape[0])
        return x * (1.0 if y is None else (y.to(x.dtype) + 1)[:, None]) + t[:, None]
    for w in (0.0, 1.0, 2.5):
        expected = ClassifierFreeGuidance(module, w, 3)(x, t, y)
        batches.clear()
        torch.testing.assert_close(ClassifierFreeGuidance(as_function, w, 3)(x, t, y), expected)
        assert batches == ([6] if w == 0.0 else [12]), batches          # one call: the null model, or 2B rows
        torch.testing.assert_close(ClassifierFreeGuidance(lambda x, t, y=None: as_function(x, t, y), w, 3)(x, t, y), expected)
    torch.testing.assert_close(ClassifierFreeGuidance(as_function, 2.0, 3)(x, t), module(x, t))   # no y: a plain call


def test_guided_callable_energy_samples_like_the_module():
    mu = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 0.0]])

    class ClassEnergy(nn.Module):
        def forward(self, x, y):
            return 0.5 * (x - mu[y]).square().sum(-1)

    energy_fn = lambda x, y: 0.5 * (x - mu[y]).square().sum(-1)
    y = torch.zeros(300, dtype=torch.long)
    run = lambda model: LangevinDynamics(ClassifierFreeGuidance(model, 1.5, 2), step_size=0.05).sample(
        x=torch.zeros(300, 2), n_steps=50, y=y, generator=gen(4))
    by_function, by_module = run(energy_fn), run(ClassEnergy())
    torch.testing.assert_close(by_function, by_module)
    assert torch.isfinite(by_function).all()


@pytest.mark.parametrize('bad, shown', [(3, 'got int'), (None, 'got NoneType'), ('f', 'got str'), (LinearField, 'got the class LinearField')])
def test_non_callables_are_refused_naming_the_argument(bad, shown):
    with pytest.raises(TypeError, match=f'field must be an nn.Module.*{shown}'):
        EqMEnergy(bad)
    with pytest.raises(TypeError, match=f'model must be an nn.Module.*{shown}'):
        ClassifierFreeGuidance(bad, 2.0, 3)
