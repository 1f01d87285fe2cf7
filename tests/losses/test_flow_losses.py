"""Unit tests of the interpolant losses and their utilities: every formula against a hand computation on small
float64 tensors, every documented error, the `model_time` deprecation, determinism under a generator (and no use of
the global RNG), and the weighted reduction of a coupling that returns weights.

Hand computations use models whose outputs and input gradients are known in closed form: a linear field
f(x, t) = A x + b t, and a separable quadratic potential V(x) = ½ Σ a_d x_d² + b·x with ∇V = a ⊙ x + b. Times are
fixed through a callable `t_sampler`, noise through `x0=`. The same field written as a plain function or lambda gives
exactly the module's losses (flow and equilibrium matching accept callables, as TorchEBM does).
"""
import math
import warnings

import pytest
import torch
from torch import nn

from torchebm_nb._deprecation import TorchEBMDeprecationWarning
from torchebm_nb.core import BaseModel, LinearScheduler
from torchebm_nb.core.base_module import _WARNED_ONCE
from torchebm_nb.couplings import ExactOTCoupling, UnbalancedSinkhornCoupling
from torchebm_nb.losses import energy_matching as energy_matching_module
from torchebm_nb.losses import equilibrium_matching as equilibrium_matching_module
from torchebm_nb.losses.energy_matching import EnergyMatchingLoss
from torchebm_nb.losses.equilibrium_matching import EquilibriumMatchingLoss, _MODEL_TIME
from torchebm_nb.losses.flow_matching import FlowMatchingLoss
from torchebm_nb.losses.loss_utils import (compute_eqm_ct, compute_flow_weight, dispersive_loss, get_interpolant,
                                           mean_flat, trimmed_mean)
from torchebm_nb.samplers import LangevinDynamics

F64 = torch.float64
TIMES = torch.tensor([0.05, 0.3, 0.6, 0.8, 0.9, 0.97], dtype=F64)


def fixed_t(B, *, device, dtype, generator):
    return TIMES[:B].to(device, dtype)


def batch(seed=1, n=6, d=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=F64), torch.randn(n, d, generator=g, dtype=F64)


class LinearField(nn.Module):
    """f(x, t) = A x + b t; records the times it was called with."""
    def __init__(self, d=2, seed=0, with_time=True):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.A = nn.Parameter(torch.randn(d, d, generator=g, dtype=F64))
        self.b = nn.Parameter(torch.randn(d, generator=g, dtype=F64) if with_time else torch.zeros(d, dtype=F64))
        self.seen_t = None

    def forward(self, x, t):
        self.seen_t = t
        return x @ self.A.T + t[:, None] * self.b


class Quadratic(BaseModel):
    def __init__(self, d=2, seed=0):
        super().__init__(dtype=F64)
        g = torch.Generator().manual_seed(seed)
        self.a = nn.Parameter(torch.rand(d, generator=g, dtype=F64) + 0.5)
        self.b = nn.Parameter(torch.randn(d, generator=g, dtype=F64))

    def forward(self, x):
        return 0.5 * (self.a * x * x).sum(-1) + (self.b * x).sum(-1)

    def grad(self, x):
        return self.a * x + self.b


class Flat(BaseModel):
    """V ≡ 0 with a parameter: Langevin chains only diffuse."""
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return 0.0 * self.w * x.square().sum(-1)


def interpolate(x0, x1, t):
    t = t[:, None]
    return t * x1 + (1 - t) * x0, x1 - x0


# ---- utilities -----------------------------------------------------------------------------------------------
def test_mean_flat():
    x = torch.arange(24, dtype=F64).reshape(2, 3, 4)
    torch.testing.assert_close(mean_flat(x), x.reshape(2, -1).mean(1))
    v = torch.tensor([1.0, 2.0])
    assert mean_flat(v) is v
    with pytest.raises(ValueError, match='batch dimension'):
        mean_flat(torch.tensor(1.0))


def test_trimmed_mean_drops_the_largest_int_fn_values():
    v = torch.tensor([3.0, -1.0, 10.0, 0.5, 2.0, 7.0, 1.0], dtype=F64)   # n = 7
    for f, k in [(0.0, 0), (0.1, 0), (0.15, 1), (0.3, 2), (0.5, 3), (0.99, 6)]:
        assert int(f * 7) == k
        torch.testing.assert_close(trimmed_mean(v, f), v.sort().values[:7 - k].mean())
    w = v.clone().requires_grad_(True)
    trimmed_mean(w, 0.3).backward()
    torch.testing.assert_close(w.grad, torch.where(v >= 7.0, 0.0, 0.2).to(F64))
    torch.testing.assert_close(trimmed_mean(v.reshape(7, 1), 0.3), trimmed_mean(v, 0.3))
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r'trim_fraction must be in \[0, 1\)'):
            trimmed_mean(v, bad)
    with pytest.raises(ValueError, match='at least one value'):
        trimmed_mean(torch.zeros(0), 0.1)


def test_compute_flow_weight():
    t = torch.tensor([0.0, 0.2, 0.8, 0.85, 0.95, 1.0], dtype=F64)
    torch.testing.assert_close(compute_flow_weight(t), torch.tensor([1, 1, 1, 0.75, 0.25, 0], dtype=F64))
    torch.testing.assert_close(compute_flow_weight(t, cutoff=0.0), 1 - t)
    torch.testing.assert_close(compute_flow_weight(t, cutoff=1.0), torch.ones_like(t))
    torch.testing.assert_close(compute_flow_weight(t, cutoff=2.0), torch.ones_like(t))


def test_compute_eqm_ct():
    t = torch.tensor([0.0, 0.5, 0.8, 0.9, 1.0], dtype=F64)
    torch.testing.assert_close(compute_eqm_ct(t), torch.tensor([4, 4, 4, 2, 0], dtype=F64))
    torch.testing.assert_close(compute_eqm_ct(t, threshold=0.5, multiplier=1.5), 1.5 * torch.clamp((1 - t) / 0.5, max=1))
    for bad in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r'threshold must be in \(0, 1\)'):
            compute_eqm_ct(t, threshold=bad)


def test_dispersive_loss_is_log_mean_exp_over_all_pairs():
    z = torch.randn(7, 3, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    flat = z.reshape(7, -1)
    d = ((flat[:, None] - flat[None]) ** 2).sum(-1) / 6            # all 49 pairs, the diagonal (zeros) included
    torch.testing.assert_close(dispersive_loss(z), torch.log(torch.exp(-d).mean()))
    assert dispersive_loss(torch.zeros(5, 2)).item() == 0.0
    torch.testing.assert_close(dispersive_loss(torch.tensor([[0.0], [1e3]], dtype=F64)), torch.tensor(-math.log(2), dtype=F64))
    assert dispersive_loss(torch.randn(1, 4)).item() == 0.0
    same = torch.zeros(4, 3, requires_grad=True)
    dispersive_loss(same).backward()
    assert torch.isfinite(same.grad).all()


def test_get_interpolant_is_reexported():
    from torchebm_nb.interpolants import get_interpolant as original
    assert get_interpolant is original


# ---- flow matching -------------------------------------------------------------------------------------------
def test_flow_matching_by_hand():
    field = LinearField()
    x1, x0 = batch()
    terms = FlowMatchingLoss(field, t_sampler=fixed_t).training_losses(x1, x0=x0)
    xt, ut = interpolate(x0, x1, TIMES)
    expected = (field(xt, TIMES) - ut).square().mean(1)
    torch.testing.assert_close(terms['loss'], expected, rtol=0, atol=1e-12)
    assert set(terms) == {'loss', 'pred', 'weights'} and terms['weights'] is None
    torch.testing.assert_close(field.seen_t, TIMES)                      # the model sees the training time
    negated = FlowMatchingLoss(field, t_sampler=fixed_t, negate_velocity=True).training_losses(x1, x0=x0)['loss']
    torch.testing.assert_close(negated, (field(xt, TIMES) + ut).square().mean(1), rtol=0, atol=1e-12)
    weighted = FlowMatchingLoss(field, t_sampler=fixed_t, loss_weight_fn=lambda t: t ** 2).training_losses(x1, x0=x0)['loss']
    torch.testing.assert_close(weighted, TIMES ** 2 * expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(FlowMatchingLoss(field, t_sampler=fixed_t)(x1, x0=x0), expected.mean(), rtol=0, atol=1e-12)


def test_flow_matching_cosine_path_by_hand():
    field = LinearField()
    x1, x0 = batch()
    c, s = torch.cos(math.pi * TIMES / 2)[:, None], torch.sin(math.pi * TIMES / 2)[:, None]
    got = FlowMatchingLoss(field, interpolant='cosine', t_sampler=fixed_t).training_losses(x1, x0=x0)['loss']
    expected = (field(s * x1 + c * x0, TIMES) - math.pi / 2 * (c * x1 - s * x0)).square().mean(1)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_flow_matching_passes_conditioning_and_takes_the_first_of_a_tuple():
    class Conditional(nn.Module):
        def __init__(self):
            super().__init__(); self.w = nn.Parameter(torch.ones(3, 2, dtype=F64))
        def forward(self, x, t, y=None, scale=1.0):
            return (x * self.w[y] * scale, 'activations')
    x1, x0 = batch()
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    loss = FlowMatchingLoss(Conditional(), t_sampler=fixed_t, check_conditioning=False)
    terms = loss.training_losses(x1, model_kwargs={'y': y, 'scale': 2.0}, x0=x0)
    xt, ut = interpolate(x0, x1, TIMES)
    torch.testing.assert_close(terms['loss'], (2 * xt - ut).square().mean(1), rtol=0, atol=1e-12)
    torch.testing.assert_close(loss(x1, y=y, model_kwargs={'scale': 2.0}, x0=x0), (2 * xt - ut).square().mean(), rtol=0, atol=1e-12)


class TimeRecorder(nn.Module):
    "A class-conditional field that records the times it is called at (the conditioning probe's among them)."
    def __init__(self):
        super().__init__(); self.shift = nn.Parameter(torch.randn(3, 2)); self.times = []
    def forward(self, x, t, y=None):
        self.times.append(t.clone()); return x + self.shift[y]


def test_flow_matching_conditioning_probe_runs_at_half_time():
    model = TimeRecorder()
    FlowMatchingLoss(model)(torch.randn(4, 2), y=torch.tensor([0, 1, 2, 0]), generator=0)
    assert torch.equal(model.times[0], torch.full((1,), 0.5)) and torch.equal(model.times[1], torch.full((1,), 0.5))


def test_ot_coupling_keeps_data_order_and_permutes_the_noise():
    x1, x0 = batch(n=16)
    seen = {}
    class Spy(nn.Module):
        def __init__(self):
            super().__init__(); self.p = nn.Parameter(torch.zeros((), dtype=F64))
        def forward(self, x, t):
            seen['xt'] = x.detach(); return x * self.p
    t = torch.full((16,), 0.5, dtype=F64)
    FlowMatchingLoss(Spy(), coupling='ot', t_sampler=lambda B, **kw: t).training_losses(x1, x0=x0)
    paired_noise = 2 * seen['xt'] - x1                              # x_t = (x0' + x1)/2
    order = torch.cdist(paired_noise, x0).argmin(1)
    torch.testing.assert_close(paired_noise, x0[order])
    assert sorted(order.tolist()) == list(range(16))                 # a permutation of the given noise
    cost = lambda a: (a - x1).square().sum()
    assert cost(paired_noise) <= cost(x0) + 1e-9                     # no worse than the independent pairing


def test_weights_from_an_unbalanced_coupling_weight_the_mean():
    field = LinearField()
    x1, _ = batch(n=8)
    for loss in (FlowMatchingLoss(field, coupling=UnbalancedSinkhornCoupling(reg=0.1, reg_marginal=0.3)),
                 EquilibriumMatchingLoss(field, coupling=UnbalancedSinkhornCoupling(reg=0.1, reg_marginal=0.3))):
        terms = loss.training_losses(x1, generator=0)
        w = terms['weights']
        assert w.shape == (8,) and not torch.allclose(w, torch.ones_like(w))
        torch.testing.assert_close(loss(x1, generator=0), (w * terms['loss']).sum() / w.sum(), rtol=0, atol=1e-12)


@pytest.mark.parametrize('make', [
    lambda: FlowMatchingLoss(LinearField(), coupling='ot', t_sampler='lognormal'),
    lambda: EquilibriumMatchingLoss(LinearField(), energy_type='dot', coupling='sinkhorn'),
    lambda: EnergyMatchingLoss(Quadratic(), n_langevin_steps=10),
])
def test_every_draw_uses_the_generator(make):
    loss = make()
    x1, _ = batch(n=12)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b = loss(x1, generator=torch.Generator().manual_seed(7)), loss(x1, generator=7)
    c = loss(x1, generator=8)
    assert torch.equal(torch.get_rng_state(), state), 'the global RNG was used'
    assert a.item() == b.item() and a.item() != c.item()


def test_flow_matching_errors():
    field = LinearField()
    with pytest.raises(ValueError, match=r'x0 has shape \(6, 3\)'):
        FlowMatchingLoss(field)(batch()[0], x0=torch.randn(6, 3, dtype=F64))
    with pytest.raises(TypeError, match='negate_velocity must be a bool'):
        FlowMatchingLoss(field, negate_velocity='yes')
    with pytest.raises(TypeError, match='model must be an nn.Module or a callable such as a function or lambda; got int'):
        FlowMatchingLoss(3)
    with pytest.raises(TypeError, match='got the class LinearField'):
        FlowMatchingLoss(LinearField)
    with pytest.raises(ValueError, match='Unknown coupling'):
        FlowMatchingLoss(field, coupling='emd')
    with pytest.raises(TypeError, match='unexpected keyword'):
        FlowMatchingLoss(field, ct='linear')


# ---- plain callables as the field ----------------------------------------------------------------------------
@pytest.mark.parametrize('loss_class, kw', [
    (FlowMatchingLoss, {}), (FlowMatchingLoss, dict(negate_velocity=True, interpolant='cosine')),
    (EquilibriumMatchingLoss, {}), (EquilibriumMatchingLoss, dict(time_invariant=False, ct='linear')),
    (EquilibriumMatchingLoss, dict(energy_type='dot')), (EquilibriumMatchingLoss, dict(energy_type='l2')),
    (EquilibriumMatchingLoss, dict(prediction='score', loss_weight='likelihood')),
])
def test_a_function_or_lambda_field_gives_the_modules_losses(loss_class, kw):
    field = LinearField()
    A, b = field.A.detach(), field.b.detach()
    def linear(x, t): return x @ A.T + t[:, None] * b
    x1, x0 = batch()
    expected = loss_class(field, t_sampler=fixed_t, **kw).training_losses(x1, x0=x0)['loss'].detach()
    full = loss_class(field, **kw)(x1, generator=3).detach()
    for fn in (linear, lambda x, t: x @ A.T + t[:, None] * b):
        loss = loss_class(fn, t_sampler=fixed_t, dtype=F64, **kw)
        assert list(loss.parameters()) == [] and loss.dtype == F64, (list(loss.parameters()), loss.dtype)
        torch.testing.assert_close(loss.training_losses(x1, x0=x0)['loss'].detach(), expected, rtol=0, atol=1e-12)
        torch.testing.assert_close(loss_class(fn, dtype=F64, **kw)(x1, generator=3), full, rtol=0, atol=1e-12)


@pytest.mark.parametrize('loss_class', [FlowMatchingLoss, EquilibriumMatchingLoss])
def test_a_conditional_lambda_passes_the_probe_and_an_unconditional_one_is_caught(loss_class):
    x1 = batch()[0]
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    value = loss_class(lambda x, t, y=None: x + y[:, None].to(x.dtype), dtype=F64)(x1, y=labels, generator=0)
    assert value.ndim == 0 and torch.isfinite(value), value
    with pytest.raises(ValueError, match='ignores its condition'):
        loss_class(lambda x, t, y=None: x, dtype=F64)(x1, y=labels, generator=0)


# ---- equilibrium matching ------------------------------------------------------------------------------------
def eqm_terms(field=None, x1=None, x0=None, **kw):
    field = field or LinearField()
    if x1 is None: x1, x0 = batch()
    return EquilibriumMatchingLoss(field, t_sampler=fixed_t, **kw).training_losses(x1, x0=x0), field, x1, x0


@pytest.mark.parametrize('ct, kw, scale', [
    ('truncated', {}, 4 * torch.clamp((1 - TIMES) / 0.2, max=1)),
    ('truncated', dict(ct_threshold=0.5, ct_multiplier=2.0), 2 * torch.clamp((1 - TIMES) / 0.5, max=1)),
    ('linear', dict(ct_multiplier=3.0), 3 * (1 - TIMES)),
    ('constant', {}, torch.full_like(TIMES, 4.0)),
    (lambda t: torch.sqrt(t), dict(ct_multiplier=0.5), 0.5 * torch.sqrt(TIMES)),
])
def test_eqm_velocity_target_by_hand(ct, kw, scale):
    (terms, field, x1, x0) = eqm_terms(ct=ct, **kw)
    xt, _ = interpolate(x0, x1, TIMES)
    expected = (xt @ field.A.T - (x0 - x1) * scale[:, None]).square().mean(1)   # f(x_t, 0) vs (x0 − x1)·c(t)
    torch.testing.assert_close(terms['loss'], expected, rtol=0, atol=1e-12)
    assert torch.equal(field.seen_t, torch.zeros(6, dtype=F64))
    assert set(terms) == {'loss', 'pred', 'weights'}


def test_eqm_target_is_minus_u_scaled_on_other_paths():
    field = LinearField()
    x1, x0 = batch()
    interp = get_interpolant('cosine')
    xt, ut = interp.interpolate(x0, x1, TIMES)
    got = EquilibriumMatchingLoss(field, interpolant='cosine', ct='constant', t_sampler=fixed_t).training_losses(x1, x0=x0)['loss']
    torch.testing.assert_close(got, (xt @ field.A.T + 4 * ut).square().mean(1), rtol=0, atol=1e-12)


def test_eqm_time_invariant_false_uses_the_training_time():
    (terms, field, x1, x0) = eqm_terms(time_invariant=False)
    xt, _ = interpolate(x0, x1, TIMES)
    c = 4 * torch.clamp((1 - TIMES) / 0.2, max=1)
    torch.testing.assert_close(terms['loss'], (field(xt, TIMES) - (x0 - x1) * c[:, None]).square().mean(1), rtol=0, atol=1e-12)
    torch.testing.assert_close(field.seen_t, TIMES)


def test_eqm_equals_negated_flow_matching_with_a_constant_unit_scale():
    field = LinearField()
    x1, x0 = batch()
    eqm = EquilibriumMatchingLoss(field, ct='constant', ct_multiplier=1.0, time_invariant=False, t_sampler=fixed_t)
    fm = FlowMatchingLoss(field, negate_velocity=True, t_sampler=fixed_t)
    torch.testing.assert_close(eqm.training_losses(x1, x0=x0)['loss'], fm.training_losses(x1, x0=x0)['loss'], rtol=0, atol=1e-12)


@pytest.mark.parametrize('energy_type', ['dot', 'mean', 'l2'])
def test_eqm_explicit_energy_gradients_by_hand(energy_type):
    field = LinearField(with_time=False)
    A = field.A.detach()
    (terms, _, x1, x0) = eqm_terms(field, energy_type=energy_type)
    xt, _ = interpolate(x0, x1, TIMES)
    if energy_type == 'l2': grad, energy = -(xt @ A.T) @ A, -0.5 * (xt @ A.T).square().sum(1)   # g = −½‖Ax‖²
    else: grad, energy = xt @ (A + A.T).T, (xt * (xt @ A.T)).sum(1)                               # g = xᵀAx
    c = 4 * torch.clamp((1 - TIMES) / 0.2, max=1)
    torch.testing.assert_close(terms['loss'], (grad - (x0 - x1) * c[:, None]).square().mean(1), rtol=0, atol=1e-12)
    torch.testing.assert_close(terms['energy'], energy, rtol=0, atol=1e-12)
    torch.testing.assert_close(terms['pred'], xt @ A.T, rtol=0, atol=1e-12)
    # create_graph: the parameters get the gradient of ‖∇g − target‖², which depends on A through ∇g
    terms['loss'].sum().backward()
    A_ = A.clone().requires_grad_(True)
    g = (xt @ (A_ + A_.T).T) if energy_type != 'l2' else -(xt @ A_.T) @ A_
    (g - (x0 - x1) * c[:, None]).square().mean(1).sum().backward()
    torch.testing.assert_close(field.A.grad, A_.grad, rtol=0, atol=1e-10)


def test_eqm_explicit_energy_under_no_grad_keeps_no_graph():
    field = LinearField()
    with torch.no_grad():
        terms = EquilibriumMatchingLoss(field, energy_type='dot').training_losses(batch()[0], generator=0)
    assert not terms['loss'].requires_grad and not terms['energy'].requires_grad


@pytest.mark.parametrize('prediction, loss_weight, weight', [
    ('noise', None, lambda t: torch.ones_like(t)),
    ('score', None, lambda t: torch.ones_like(t)),
    ('noise', 'velocity', lambda t: 1 / t ** 2),              # (D/σ)², D = (1 − t)/t on the linear path
    ('score', 'velocity', lambda t: 1 / t ** 2),
    ('noise', 'likelihood', lambda t: 1 / (t * (1 - t))),     # D/σ²
    ('score', 'likelihood', lambda t: 1 / (t * (1 - t))),
])
def test_eqm_noise_and_score_predictions_by_hand(prediction, loss_weight, weight):
    (terms, field, x1, x0) = eqm_terms(prediction=prediction, loss_weight=loss_weight)
    xt, _ = interpolate(x0, x1, TIMES)
    out, sigma = xt @ field.A.T, (1 - TIMES)[:, None]
    residual = out - x0 if prediction == 'noise' else out * sigma + x0
    torch.testing.assert_close(terms['loss'], weight(TIMES) * residual.square().mean(1), rtol=1e-10, atol=1e-12)


def test_eqm_loss_weight_fn_then_dispersion():
    class WithActivations(nn.Module):
        def __init__(self, as_list):
            super().__init__(); self.inner = LinearField(); self.as_list = as_list
        def forward(self, x, t):
            h = torch.tanh(x @ self.inner.A.T)
            return h @ self.inner.A, ([x, h] if self.as_list else h)
    x1, x0 = batch()
    xt, _ = interpolate(x0, x1, TIMES)
    c = 4 * torch.clamp((1 - TIMES) / 0.2, max=1)
    for as_list in (True, False):
        model = WithActivations(as_list)
        h = torch.tanh(xt @ model.inner.A.T)
        base = (h @ model.inner.A - (x0 - x1) * c[:, None]).square().mean(1)
        dispersion = torch.log(torch.exp(-torch.cdist(h, h).square() / 2).mean())
        loss = EquilibriumMatchingLoss(model, t_sampler=fixed_t, loss_weight_fn=lambda t: 1 + t, apply_dispersion=True,
                                       dispersion_weight=0.25)
        torch.testing.assert_close(loss.training_losses(x1, x0=x0)['loss'], (1 + TIMES) * base + 0.25 * dispersion,
                                   rtol=0, atol=1e-10)


def test_eqm_dispersion_without_activations_warns_once():
    field = LinearField()
    loss = EquilibriumMatchingLoss(field, apply_dispersion=True, t_sampler=fixed_t)
    _WARNED_ONCE.discard('eqm-no-activations:LinearField')
    x1, x0 = batch()
    with pytest.warns(UserWarning, match='returned no activations'):
        terms = loss.training_losses(x1, x0=x0)
    torch.testing.assert_close(terms['loss'], eqm_terms(field, x1, x0)[0]['loss'])


def test_eqm_model_time_is_deprecated():
    key = f"deprecation:{_MODEL_TIME.module}:{_MODEL_TIME.name}"
    assert _MODEL_TIME.module == 'torchebm_nb.losses.equilibrium_matching' and _MODEL_TIME.replacement
    for value, invariant in (('zero', True), ('true', False)):
        _WARNED_ONCE.discard(key)
        with pytest.warns(TorchEBMDeprecationWarning, match='model_time'):
            loss = EquilibriumMatchingLoss(LinearField(), model_time=value, time_invariant=not invariant)
        assert loss.time_invariant is invariant
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        EquilibriumMatchingLoss(LinearField())                      # no model_time: no warning
    with pytest.raises(ValueError, match="model_time must be 'zero', 'true' or None"):
        EquilibriumMatchingLoss(LinearField(), model_time='half')


@pytest.mark.parametrize('kw, message', [
    (dict(prediction='x0'), 'prediction must be one of'),
    (dict(energy_type='implicit'), 'energy_type must be one of'),
    (dict(loss_weight='snr'), 'loss_weight must be one of'),
    (dict(ct='cosine'), 'ct must be one of'),
    (dict(ct=3.0), 'ct must be one of'),
    (dict(ct_threshold=0.0), r'ct_threshold must be in \(0, 1\)'),
    (dict(ct_threshold=1.0), r'ct_threshold must be in \(0, 1\)'),
    (dict(ct_threshold=-2.0), r'ct_threshold must be in \(0, 1\)'),
])
def test_eqm_value_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        EquilibriumMatchingLoss(LinearField(), **kw)


def test_eqm_other_errors():
    EquilibriumMatchingLoss(LinearField(), ct='constant', ct_threshold=1.0)          # the threshold matters only when truncated
    with pytest.raises(ValueError, match=r'x0 has shape \(6, 3\)'):
        EquilibriumMatchingLoss(LinearField())(batch()[0], x0=torch.randn(6, 3, dtype=F64))
    with pytest.raises(TypeError, match='time_invariant must be a bool'):
        EquilibriumMatchingLoss(LinearField(), time_invariant=1)
    with pytest.raises(TypeError, match='apply_dispersion must be a bool'):
        EquilibriumMatchingLoss(LinearField(), apply_dispersion='yes')
    with pytest.warns(UserWarning, match='only weights'):
        EquilibriumMatchingLoss(LinearField(), loss_weight='likelihood')


def test_explicit_energies_refuse_sharded_parameters_in_training(monkeypatch):
    monkeypatch.setattr(equilibrium_matching_module, 'dtensor_parameters', lambda module: [object()])
    x1 = batch()[0]
    loss = EquilibriumMatchingLoss(LinearField(), energy_type='dot')
    with pytest.raises(RuntimeError, match='DTensor'):
        loss(x1, generator=0)
    loss.eval(); loss(x1, generator=0)                                              # evaluation is fine
    EquilibriumMatchingLoss(LinearField())(x1, generator=0)                         # so is the implicit field
    monkeypatch.setattr(energy_matching_module, 'dtensor_parameters', lambda module: [object()])
    with pytest.raises(RuntimeError, match='DTensor'):
        EnergyMatchingLoss(Quadratic(), lambda_cd=0.0)(x1, generator=0)


def test_eqm_probe_runs_at_time_zero():
    model = TimeRecorder()
    EquilibriumMatchingLoss(model, time_invariant=False)(torch.randn(4, 2), y=torch.tensor([0, 1, 2, 0]), generator=0)
    assert torch.equal(model.times[0], torch.zeros(1))


# ---- energy matching -----------------------------------------------------------------------------------------
def em(model=None, **kw):
    kw = {'coupling': 'independent', 'sigma': 0.0, 'lambda_cd': 0.0, 't_sampler': fixed_t, **kw}
    return EnergyMatchingLoss(model or Quadratic(), **kw)


def flow_by_hand(V, x0, x1, xt, cutoff=0.8, extra=None):
    gate = torch.clamp((1 - TIMES) / (1 - cutoff), 0, 1) if cutoff < 1 else torch.ones_like(TIMES)
    per_sample = gate * (-V.grad(xt) - (x1 - x0)).square().mean(1)
    return per_sample * (1 if extra is None else extra)


def test_energy_matching_flow_term_by_hand():
    V = Quadratic()
    x1, x0 = batch()
    xt, _ = interpolate(x0, x1, TIMES)
    terms = em(V).training_losses(x1, x0=x0)
    torch.testing.assert_close(terms['flow_loss'], flow_by_hand(V, x0, x1, xt).mean(), rtol=0, atol=1e-12)
    assert set(terms) == {'flow_loss', 'cd_loss', 'loss'} and terms['cd_loss'].item() == 0.0
    torch.testing.assert_close(terms['loss'], terms['flow_loss'])
    # the gated mean is over the batch, not normalised by Σw
    gate = torch.clamp((1 - TIMES) / 0.2, 0, 1)
    assert gate.sum() < 6 and not torch.allclose(terms['flow_loss'], flow_by_hand(V, x0, x1, xt).sum() / gate.sum())
    for cutoff in (0.5, 1.0):
        got = em(V, flow_weight_cutoff=cutoff).training_losses(x1, x0=x0)['flow_loss']
        torch.testing.assert_close(got, flow_by_hand(V, x0, x1, xt, cutoff).mean(), rtol=0, atol=1e-12)
    got = em(V, loss_weight_fn=lambda t: 3 * t).training_losses(x1, x0=x0)['flow_loss']
    torch.testing.assert_close(got, flow_by_hand(V, x0, x1, xt, extra=3 * TIMES).mean(), rtol=0, atol=1e-12)
    blur = 0.2 * torch.randn(6, 2, generator=torch.Generator().manual_seed(4), dtype=F64)   # the first draw of the generator
    got = em(V, sigma=0.2).training_losses(x1, x0=x0, generator=4)['flow_loss']
    torch.testing.assert_close(got, flow_by_hand(V, x0, x1, xt + blur).mean(), rtol=0, atol=1e-12)


def test_energy_matching_flow_term_differentiates_through_the_gradient():
    V = Quadratic()
    x1, x0 = batch()
    em(V).training_losses(x1, x0=x0)['loss'].backward()
    xt, _ = interpolate(x0, x1, TIMES)
    a, b = V.a.detach().clone().requires_grad_(True), V.b.detach().clone().requires_grad_(True)
    gate = torch.clamp((1 - TIMES) / 0.2, 0, 1)
    (gate * (-(a * xt + b) - (x1 - x0)).square().mean(1)).mean().backward()
    torch.testing.assert_close(V.a.grad, a.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(V.b.grad, b.grad, rtol=0, atol=1e-12)


def test_energy_matching_weights_from_an_unbalanced_coupling():
    V = Quadratic()
    x1, x0 = batch()
    coupling = UnbalancedSinkhornCoupling(reg=0.1, reg_marginal=0.3)
    got = em(V, coupling=coupling).training_losses(x1, x0=x0, generator=9)['flow_loss']
    pairs = coupling.couple(x1, x0, generator=torch.Generator().manual_seed(9))      # data as rows, as the loss calls it
    noise, w = pairs.x1, pairs.weights
    xt, _ = interpolate(noise, x1, TIMES)
    torch.testing.assert_close(got, (w * flow_by_hand(V, noise, x1, xt)).sum() / w.sum(), rtol=0, atol=1e-12)


def test_energy_matching_contrastive_term():
    V = Quadratic()
    x1, x0 = batch(n=20)
    loss = EnergyMatchingLoss(V, lambda_cd=2.0, n_langevin_steps=15)
    terms = loss.training_losses(x1, x0=x0, generator=0)
    assert set(terms) == {'flow_loss', 'cd_loss', 'loss', 'cd_value', 'negatives'}
    assert terms['negatives'].shape == x1.shape and not terms['negatives'].requires_grad
    with torch.no_grad():
        value = V(x1).mean() - V(terms['negatives']).sort().values[:18].mean()      # int(0.1·20) = 2 dropped
    torch.testing.assert_close(terms['cd_value'], value, rtol=0, atol=1e-12)
    torch.testing.assert_close(terms['cd_loss'], torch.clamp(2.0 * value, min=-0.02), rtol=0, atol=1e-12)
    torch.testing.assert_close(terms['loss'], terms['flow_loss'] + terms['cd_loss'], rtol=0, atol=1e-12)
    for clamp, expect in ((None, 2.0 * value), (0.0, torch.clamp(2.0 * value, min=0.0)), (100.0, 2.0 * value)):
        got = EnergyMatchingLoss(V, lambda_cd=2.0, n_langevin_steps=15, cd_clamp=clamp).training_losses(x1, x0=x0, generator=0)
        torch.testing.assert_close(got['cd_loss'], expect, rtol=0, atol=1e-12)
    assert loss(x1, x0=x0, generator=0).item() == terms['loss'].item()


def test_energy_matching_clamp_is_active_when_negatives_are_high():
    V = Quadratic()
    x1 = torch.zeros(10, 2, dtype=F64) - V.b.detach() / V.a.detach()              # the data at the minimum of V
    terms = EnergyMatchingLoss(V, lambda_cd=2.0, n_langevin_steps=10, noise_fraction=1.0).training_losses(x1, generator=0)
    assert terms['cd_value'].item() < -0.01 and terms['cd_loss'].item() == -0.02


def test_energy_matching_chain_temperatures_and_noise_scale_overwrite():
    """Under a flat potential the chains only diffuse: the noise chains accumulate Σ_k 2h ε(k/n) = 0.0585 of variance
    under the sweep (n = 200, h = 0.01, ε_max = 0.15, τ* = 0.8), the data chains 2hnε_max = 0.6. The user's
    noise_scale (5.0) would give 100 instead."""
    flat = Flat()
    mine = LangevinDynamics(flat, step_size=0.01, noise_scale=5.0)
    loss = EnergyMatchingLoss(flat, sampler=mine)
    data, start = torch.full((8000, 2), 3.0), torch.zeros(8000, 2)
    negatives = loss.sample_negatives(data, x0=start, generator=0)
    n = 8000 * 2 / 2
    expected_sweep = 0.02 * sum(0.15 * (k / 200 - 0.8) / 0.2 for k in range(160, 200))
    assert abs(expected_sweep - 0.0585) < 1e-12
    var_noise, var_data = negatives[:4000].var().item(), (negatives[4000:] - 3).square().mean().item()
    assert abs(var_noise - 0.0585) < 4 * 0.0585 * math.sqrt(2 / n)
    assert abs(var_data - 0.6) < 4 * 0.6 * math.sqrt(2 / n)
    assert mine.get_schedulers()['noise_scale'] is loss._hold
    assert isinstance(loss.sampler, LangevinDynamics) and loss.sampler is mine


def test_energy_matching_noise_fraction_and_given_noise():
    flat = Flat()
    data = torch.full((1000, 2), 3.0)
    torch.testing.assert_close(EnergyMatchingLoss(flat, noise_fraction=1.0).sample_negatives(data, generator=0).mean(0),
                               torch.zeros(2), atol=0.15, rtol=0)
    torch.testing.assert_close(EnergyMatchingLoss(flat, noise_fraction=0.0).sample_negatives(data, generator=0).mean(0),
                               torch.full((2,), 3.0), atol=0.15, rtol=0)
    x0 = torch.full((1000, 2), -5.0)                                # the noise chains start from a permutation of x0
    negatives = EnergyMatchingLoss(flat, noise_fraction=0.3, n_langevin_steps=5).sample_negatives(data, x0=x0, generator=0)
    torch.testing.assert_close(negatives[:300].mean(0), torch.full((2,), -5.0), atol=0.05, rtol=0)
    torch.testing.assert_close(negatives[300:].mean(0), torch.full((2,), 3.0), atol=0.05, rtol=0)


def test_energy_matching_negatives_carry_their_rows_conditioning():
    class Wells(BaseModel):
        def __init__(self):
            super().__init__()
            self.centres = nn.Parameter(torch.tensor([[-4.0, 0.0], [4.0, 0.0], [0.0, 4.0]]))
        def forward(self, x, y=None):
            return 5.0 * (x - self.centres[y]).square().sum(-1)
    y = torch.tensor([0, 1, 2] * 10)
    model = Wells()
    loss = EnergyMatchingLoss(model, lambda_cd=1.0, n_langevin_steps=200, check_conditioning=False)
    data = model.centres.detach()[y] + 0.01 * torch.randn(30, 2, generator=torch.Generator().manual_seed(0))
    terms = loss.training_losses(data, model_kwargs={'y': y}, generator=0)
    distance = (terms['negatives'] - model.centres.detach()[y]).norm(dim=1)
    assert distance.max() < 1.0                                    # every chain (from noise or data) went to its own well


def test_energy_matching_phases_and_schedules():
    V = Quadratic()
    x1, x0 = batch()
    loss = EnergyMatchingLoss(V, lambda_cd=0.0, n_langevin_steps=5)
    assert 'negatives' not in loss.training_losses(x1, generator=0)
    loss.lambda_cd = 2.0
    assert loss.lambda_cd == 2.0 and 'negatives' in loss.training_losses(x1, generator=0)
    loss.lambda_cd = LinearScheduler(0.0, 1.0, n_steps=2)
    values = []
    for _ in range(3): values.append(loss.lambda_cd); loss.step_schedulers()
    assert values == [0.0, 0.5, 1.0]
    loss.sigma = 0.3
    assert loss.sigma == 0.3
    with pytest.raises(ValueError, match='sigma must be ≥ 0'):
        loss.sigma = -0.1
    with pytest.raises(ValueError, match='lambda_cd must be ≥ 0'):
        EnergyMatchingLoss(V, lambda_cd=-1.0)
    default = EnergyMatchingLoss(V, langevin_dt=0.02)
    assert isinstance(default.sampler, LangevinDynamics) and default.sampler.model is V
    assert default.sampler.get_scheduled_value('step_size') == 0.02 and default.sampler.get_scheduled_value('noise_scale') == 1.0
    assert isinstance(default.coupling, ExactOTCoupling)


@pytest.mark.parametrize('kw, message', [
    (dict(noise_fraction=-0.1), r'noise_fraction must be in \[0, 1\]'),
    (dict(noise_fraction=1.1), r'noise_fraction must be in \[0, 1\]'),
    (dict(cd_trim_fraction=1.0), r'cd_trim_fraction must be in \[0, 1\)'),
    (dict(cd_trim_fraction=-0.2), r'cd_trim_fraction must be in \[0, 1\)'),
    (dict(cd_clamp=-0.01), 'cd_clamp must be ≥ 0'),
    (dict(langevin_dt=0.0), 'langevin_dt must be positive'),
    (dict(langevin_dt=-1e-3), 'langevin_dt must be positive'),
    (dict(sigma=-1.0), 'sigma must be ≥ 0'),
])
def test_energy_matching_value_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        EnergyMatchingLoss(Quadratic(), **kw)


def test_energy_matching_other_errors():
    with pytest.raises(TypeError, match='model must be a BaseModel'):
        EnergyMatchingLoss(nn.Linear(2, 1))
    with pytest.raises(TypeError, match='sampler must be a sampler with a noise_scale'):
        EnergyMatchingLoss(Quadratic(), sampler=object())
    with pytest.raises(ValueError, match=r'x0 has shape \(6, 3\)'):
        EnergyMatchingLoss(Quadratic())(batch()[0], x0=torch.randn(6, 3, dtype=F64))
    with pytest.raises(ValueError, match='energies of shape'):
        class Wrong(BaseModel):
            def __init__(self): super().__init__(); self.w = nn.Parameter(torch.ones(2))
            def forward(self, x): return x * self.w
        EnergyMatchingLoss(Wrong(), lambda_cd=0.0)(torch.randn(4, 2), generator=0)


def test_conditioning_probe_runs_on_the_losses_dtype():
    "The probe casts x as the loss will: a float64 batch into a float32 loss must not fail inside the probe."
    model = TimeRecorder()
    loss = FlowMatchingLoss(model)
    out = loss(torch.randn(4, 2, dtype=torch.float64), y=torch.tensor([0, 1, 2, 0]), generator=0)
    assert out.dtype == torch.float32 and torch.isfinite(out)
