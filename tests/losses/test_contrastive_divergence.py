"""Unit tests of ContrastiveDivergence, PersistentContrastiveDivergence and ParallelTemperingCD.

- CD: the loss is mean E(x⁺) − mean E(x⁻) + λ(mean E(x⁺)² + mean E(x⁻)²) and its parameter gradient is the MLE
  estimate; chains start at the data (one CD-1 step is one Langevin step with the generator's noise); negatives
  are detached; a non-finite loss becomes 0.1 on the device with finite (zero) gradients and is counted; call-time
  options are deprecated and override for one call; conditioning reaches the model and the sampler; every
  documented error is raised before the sampler runs; the signatures match ../shared/API_SIGNATURES.md.
- PCD: persistence is forced; with buffer_size = batch the chains are continued exactly.
- PT: the swap rule's acceptance probability; the replicas sample exp(−E/Tₖ) (⟨E⟩ against quadrature); on a
  well-separated double well the T = 1 replicas fill both wells 50/50 while plain Langevin chains stay in one;
  the tempered energy keeps closed-form gradients; HMC works as the replica sampler; conditioning is repeated.
Every random test is seeded with a torch.Generator.
"""
import importlib
import inspect
import math
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from torchebm_nb._deprecation import DEPRECATIONS, TorchEBMDeprecationWarning
from torchebm_nb.core import BaseModel, DoubleWellModel, GaussianModel, HarmonicModel
from torchebm_nb.core.base_module import _WARNED_ONCE
from torchebm_nb.losses.contrastive_divergence import (ContrastiveDivergence, ParallelTemperingCD,
                                                       PersistentContrastiveDivergence, _CALL_TIME_DEPRECATION)
from torchebm_nb.samplers import HamiltonianMonteCarlo, LangevinDynamics
from torchebm_nb.samplers.parallel_tempering import TemperedEnergy, swap_replicas

from conftest import MLPEnergy

F64 = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


class Quadratic(BaseModel):
    """E(x) = ½a‖x − μ‖² (float64, learnable a and μ): energies and gradients known in closed form."""
    def __init__(self, a=1.5, mu=(0.3, -0.2)):
        super().__init__(dtype=F64)
        self.a = nn.Parameter(torch.tensor(a, dtype=F64))
        self.mu = nn.Parameter(torch.tensor(mu, dtype=F64))

    def forward(self, x):
        return 0.5 * self.a * (x - self.mu).square().sum(-1)


class CountingLangevin(LangevinDynamics):
    """Langevin that counts its `sample` calls (to prove errors are raised before any sampling)."""
    calls = 0

    def sample(self, *args, **kwargs):
        CountingLangevin.calls += 1
        return super().sample(*args, **kwargs)


def reset_call_time_warning():
    _WARNED_ONCE.discard(f"deprecation:{_CALL_TIME_DEPRECATION.module}:{_CALL_TIME_DEPRECATION.name}")


# ---- contract -----------------------------------------------------------------------------------------
CONTRACT = Path(__file__).resolve().parents[2].parent / 'shared' / 'API_SIGNATURES.md'


@pytest.mark.skipif(not CONTRACT.exists(), reason='../shared/API_SIGNATURES.md is not beside the checkout')
@pytest.mark.parametrize('cls', [ContrastiveDivergence, PersistentContrastiveDivergence])
def test_signatures_match_the_contract(cls):
    contract = importlib.import_module('test_api_contract')   # tests/ is on sys.path (its conftest)
    entry = next(e for e in contract.parse_contract() if e['module'] == 'torchebm_nb.losses' and e['name'] == cls.__name__)
    problems = contract.compare(entry['sig'], cls, f'{cls.__name__}.__init__')   # the constructor's allowlisted extras (compile=False)
    for method, sig in entry['methods']:
        problems += contract.compare(sig, getattr(cls, method), f'{cls.__name__}.{method}')
    assert not problems, '\n'.join(problems)


def test_defaults():
    model = MLPEnergy(hidden=8)
    cd = ContrastiveDivergence(model, LangevinDynamics(model, 0.01))
    assert (cd.k_steps, cd.persistent, cd.buffer_size, cd.init_steps, cd.new_sample_ratio) == (10, False, 10000, 100, 0.05)
    assert (cd.energy_reg_weight, cd.add_noise_to_real, cd.noise_scale) == (0.001, False, 1e-4)
    assert inspect.signature(ContrastiveDivergence).parameters['device'].default == torch.device('cpu')
    pt = ParallelTemperingCD(model, LangevinDynamics(model, 0.01))
    torch.testing.assert_close(pt.temperatures, torch.tensor([1.0, 10 ** (1 / 3), 10 ** (2 / 3), 10.0]))
    assert pt.persistent and pt.swap_every == 1 and pt.swap_acceptance.shape == (3,)


# ---- the CD objective ----------------------------------------------------------------------------------
def test_loss_formula_and_regulariser():
    model = Quadratic()
    x = torch.randn(32, 2, generator=gen(0), dtype=F64); neg = torch.randn(24, 2, generator=gen(1), dtype=F64) * 2
    e_pos, e_neg = model(x), model(neg)
    for lam in (0.0, 1e-3, 0.5):
        cd = ContrastiveDivergence(model, LangevinDynamics(model, 0.01, dtype=F64), energy_reg_weight=lam, dtype=F64)
        want = e_pos.mean() - e_neg.mean() + lam * (e_pos.square().mean() + e_neg.square().mean())
        torch.testing.assert_close(cd.compute_loss(x, neg), want)
    noisy = ContrastiveDivergence(model, LangevinDynamics(model, 0.01, dtype=F64), add_noise_to_real=True, noise_scale=0.3,
                                  energy_reg_weight=0.0, dtype=F64)
    shifted = x + 0.3 * torch.randn(x.shape, generator=gen(5), dtype=F64)
    torch.testing.assert_close(noisy.compute_loss(x, neg, generator=gen(5)), model(shifted).mean() - e_neg.mean())


def test_gradient_is_the_mle_estimate():
    model = Quadratic()
    cd = ContrastiveDivergence(model, LangevinDynamics(model, 0.01, dtype=F64), energy_reg_weight=0.01, dtype=F64)
    x = torch.randn(64, 2, generator=gen(2), dtype=F64); neg = 1.5 * torch.randn(64, 2, generator=gen(3), dtype=F64)
    params = list(model.parameters())
    got = torch.autograd.grad(cd.compute_loss(x, neg), params)
    e_pos, e_neg = model(x), model(neg)
    want = torch.autograd.grad(e_pos.mean() - e_neg.mean() + 0.01 * (e_pos.square().mean() + e_neg.square().mean()), params)
    for g, w in zip(got, want): torch.testing.assert_close(g, w)
    # closed form of the MLE part: ∂/∂a = ½(mean‖x⁺−μ‖² − mean‖x⁻−μ‖²) — negative when the negatives are wider
    plain = ContrastiveDivergence(model, LangevinDynamics(model, 0.01, dtype=F64), energy_reg_weight=0.0, dtype=F64)
    (grad_a,) = torch.autograd.grad(plain.compute_loss(x, neg), [model.a])
    mu = model.mu.detach()
    torch.testing.assert_close(grad_a, 0.5 * ((x - mu).square().sum(-1).mean() - (neg - mu).square().sum(-1).mean()))
    assert grad_a < 0   # gradient descent raises a: the energy steepens to pull the too-wide negatives in


def test_chains_start_at_the_data_and_negatives_are_detached():
    model = Quadratic()
    h = 0.05
    cd = ContrastiveDivergence(model, LangevinDynamics(model, h, dtype=F64), k_steps=1, new_sample_ratio=0.0, dtype=F64)
    x = torch.randn(16, 2, generator=gen(4), dtype=F64)
    loss, neg = cd(x, generator=gen(9))
    xi = torch.empty_like(x).normal_(generator=gen(9))
    torch.testing.assert_close(neg, x - h * model.gradient(x) + math.sqrt(2 * h) * xi)
    assert not neg.requires_grad and loss.ndim == 0 and loss.requires_grad
    # same seed, same result; an int seed works too
    a, na = cd(x, generator=11); b, nb = cd(x, generator=11)
    torch.testing.assert_close(a, b); torch.testing.assert_close(na, nb)


def test_image_shaped_batches():
    class Pixels(BaseModel):
        def __init__(self):
            super().__init__(); self.w = nn.Parameter(torch.ones(1))
        def forward(self, x): return 0.5 * self.w * x.square().flatten(1).sum(-1)
    model = Pixels()
    cd = ContrastiveDivergence(model, LangevinDynamics(model, 0.01), k_steps=3)
    x = torch.randn(4, 3, 5, 5, generator=gen(0))
    loss, neg = cd(x, generator=1)
    assert neg.shape == x.shape and loss.ndim == 0
    pcd = PersistentContrastiveDivergence(model, LangevinDynamics(model, 0.01), k_steps=2, buffer_size=8, init_steps=2)
    _, neg = pcd(x, generator=2)
    assert neg.shape == x.shape and pcd.replay_buffer.shape == (8, 3, 5, 5)


# ---- non-finite losses -----------------------------------------------------------------------------------
def test_nonfinite_loss_is_replaced_on_device_and_counted():
    model = MLPEnergy(hidden=16)
    cd = ContrastiveDivergence(model, LangevinDynamics(model, 0.01))
    x = torch.randn(8, 2, generator=gen(0)); neg = torch.randn(8, 2, generator=gen(1))
    assert int(cd.nonfinite_count) == 0
    finite = cd.compute_loss(x, neg)
    assert torch.isfinite(finite) and int(cd.nonfinite_count) == 0
    params = list(model.parameters())
    for bad_value in (float('nan'), float('inf')):
        bad = neg.clone(); bad[2, 1] = bad_value
        loss = cd.compute_loss(x, bad)
        assert loss.item() == pytest.approx(0.1) and loss.device == x.device
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        assert all(g is None or (torch.isfinite(g).all() and (g == 0).all()) for g in grads)
    assert int(cd.nonfinite_count) == 2
    assert 'nonfinite_count' not in cd.state_dict()          # a diagnostic, not part of checkpoints

    class Overflowing(BaseModel):
        def __init__(self):
            super().__init__(); self.w = nn.Parameter(torch.ones(1))
        def forward(self, x): return self.w * x.sum(-1) * 1e38 * 1e38   # inf for finite inputs
    over = Overflowing()
    cdo = ContrastiveDivergence(over, LangevinDynamics(over, 0.01))
    assert cdo.compute_loss(x, neg).item() == pytest.approx(0.1) and int(cdo.nonfinite_count) == 1


@pytest.mark.cuda
def test_nonfinite_check_does_not_synchronise():
    model = MLPEnergy(hidden=16).cuda()
    cd = ContrastiveDivergence(model, LangevinDynamics(model, 0.01), device='cuda')
    x = torch.randn(64, 2, device='cuda'); neg = torch.randn(64, 2, device='cuda'); neg[0, 0] = float('nan')
    cd.compute_loss(x, neg); torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        loss = cd.compute_loss(x, neg)
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert loss.item() == pytest.approx(0.1) and int(cd.nonfinite_count) == 2


# ---- deprecated call-time options --------------------------------------------------------------------------
def test_call_time_options_are_deprecated_and_override_one_call():
    model = Quadratic()
    cd = ContrastiveDivergence(model, LangevinDynamics(model, 0.01, dtype=F64), dtype=F64)
    x = torch.randn(16, 2, generator=gen(0), dtype=F64); neg = torch.randn(16, 2, generator=gen(1), dtype=F64)
    plain = model(x).mean() - model(neg).mean()
    reset_call_time_warning()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        overridden = cd.compute_loss(x, neg, energy_reg_weight=0.0)
    assert [w.category for w in caught] == [TorchEBMDeprecationWarning]
    assert caught[0].filename == __file__                         # attributed to the caller
    assert 'energy_reg_weight' in str(caught[0].message) and 'constructor' in str(caught[0].message)
    torch.testing.assert_close(overridden, plain)
    assert cd.energy_reg_weight == 0.001                           # one call only
    reset_call_time_warning()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        loss, _ = cd(x, generator=0, energy_reg_weight=0.0, add_noise_to_real=False, noise_scale=0.0)
    assert [w.category for w in caught] == [TorchEBMDeprecationWarning] and caught[0].filename == __file__
    info = DEPRECATIONS[(_CALL_TIME_DEPRECATION.module, _CALL_TIME_DEPRECATION.name)]
    assert info.replacement and info.since == '0.1.0'
    with pytest.raises(ValueError, match='energy_reg_weight must be'):
        cd.compute_loss(x, neg, energy_reg_weight=-1.0)
    with pytest.raises(TypeError, match='add_noise_to_real must be a bool'):
        cd(x, add_noise_to_real='yes')


# ---- conditioning -------------------------------------------------------------------------------------------
class Conditional(BaseModel):
    """E(x | y) = ½‖x − c_y‖² with centres c_y; records the labels it sees."""
    def __init__(self, uses_label=True):
        super().__init__()
        self.centres = nn.Parameter(torch.tensor([[-3.0, 0.0], [3.0, 1.0], [0.0, 0.0]]))
        self.uses_label, self.seen = uses_label, []

    def forward(self, x, y=None):
        self.seen.append(y)
        centre = self.centres[y] if self.uses_label else self.centres[:1]
        return 0.5 * (x - centre).square().sum(-1)


def test_conditioning_reaches_model_and_sampler():
    model = Conditional()
    cd = ContrastiveDivergence(model, LangevinDynamics(model, 0.05), k_steps=200, new_sample_ratio=0.0)
    y = torch.tensor([0, 1] * 64)
    x = torch.zeros(128, 2)
    loss, neg = cd(x, y=y, generator=0)
    # 200 Langevin steps under E(x|y) move the chains to their label's centre
    assert neg[y == 0, 0].mean() < -2.5 and neg[y == 1, 0].mean() > 2.5
    assert all(s is not None for s in model.seen)
    same, _ = ContrastiveDivergence(model, LangevinDynamics(model, 0.05), k_steps=200, new_sample_ratio=0.0)(
        x, model_kwargs={'y': y}, generator=0)
    torch.testing.assert_close(loss, same)
    with pytest.raises(ValueError, match='ignores its condition'):
        blind = Conditional(uses_label=False)
        ContrastiveDivergence(blind, LangevinDynamics(blind, 0.05), k_steps=1)(x, y=y)
    cfg = ContrastiveDivergence(model, LangevinDynamics(model, 0.05), k_steps=1, cfg_dropout=1.0, null_condition=2,
                                check_conditioning=False)
    model.seen.clear(); cfg.train(); cfg(x, y=y, generator=1)
    assert all(bool((s == 2).all()) for s in model.seen)          # every row dropped to the null condition
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        ContrastiveDivergence(model, LangevinDynamics(model, 0.05), cfg_dropuot=0.1)


# ---- errors before any work -----------------------------------------------------------------------------------
@pytest.mark.parametrize('kwargs, error, message', [
    (dict(k_steps=0), ValueError, 'k_steps must be ≥ 1'),
    (dict(k_steps=2.5), TypeError, 'k_steps must be an int'),
    (dict(buffer_size=0), ValueError, 'buffer_size must be ≥ 1'),
    (dict(buffer_size=-5), ValueError, 'buffer_size must be ≥ 1'),
    (dict(new_sample_ratio=-0.1), ValueError, 'new_sample_ratio must be in [0, 1]'),
    (dict(new_sample_ratio=1.01), ValueError, 'new_sample_ratio must be in [0, 1]'),
    (dict(init_steps=-1), ValueError, 'init_steps must be ≥ 0'),
    (dict(energy_reg_weight=-1e-3), ValueError, 'energy_reg_weight must be'),
    (dict(energy_reg_weight=float('nan')), ValueError, 'energy_reg_weight'),
    (dict(noise_scale=-1.0), ValueError, 'noise_scale must be'),
    (dict(add_noise_to_real=1), TypeError, 'add_noise_to_real must be a bool'),
    (dict(persistent=1), TypeError, 'persistent must be a bool'),
    (dict(cfg_dropout=2.0), ValueError, 'cfg_dropout must be in [0, 1]'),
    (dict(bogus=1), TypeError, "unexpected keyword argument(s) 'bogus'"),
])
def test_constructor_errors(kwargs, error, message):
    model = MLPEnergy(hidden=8)
    CountingLangevin.calls = 0
    with pytest.raises(error) as info:
        ContrastiveDivergence(model, CountingLangevin(model, 0.01), **kwargs)
    assert message in str(info.value)
    assert CountingLangevin.calls == 0


def test_call_errors_before_sampling():
    model = MLPEnergy(hidden=8)
    CountingLangevin.calls = 0
    cd = ContrastiveDivergence(model, CountingLangevin(model, 0.01))
    with pytest.raises(ValueError, match=r'x must be a batch of shape \(B, \*S\)'): cd(torch.randn(5))
    with pytest.raises(TypeError, match='x must be a torch.Tensor'): cd([[0.0, 1.0]])
    with pytest.raises(TypeError, match='floating'): cd(torch.ones(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match='noise_scale must be'): cd(torch.randn(4, 2), noise_scale=-1.0)
    with pytest.raises(TypeError, match='generator must be'): cd(torch.randn(4, 2), generator='seed')
    assert CountingLangevin.calls == 0
    with pytest.raises(TypeError, match='sampler must be a BaseSampler'):
        ContrastiveDivergence(model, lambda x: x)


# ---- persistent CD --------------------------------------------------------------------------------------------------
def test_pcd_is_always_persistent():
    model = MLPEnergy(hidden=8); sampler = LangevinDynamics(model, 0.01)
    assert PersistentContrastiveDivergence(model, sampler).persistent
    assert PersistentContrastiveDivergence(model, sampler, 5, True).k_steps == 5
    with pytest.raises(ValueError, match='always persistent'): PersistentContrastiveDivergence(model, sampler, persistent=False)
    with pytest.raises(ValueError, match='always persistent'): PersistentContrastiveDivergence(model, sampler, 5, False)


def test_pcd_with_a_batch_sized_buffer_continues_its_chains():
    model = Quadratic()
    h = 0.02
    pcd = PersistentContrastiveDivergence(model, LangevinDynamics(model, h, dtype=F64), k_steps=3, buffer_size=32,
                                          init_steps=10, new_sample_ratio=0.0, dtype=F64)
    x = torch.randn(32, 2, generator=gen(0), dtype=F64)
    _, first = pcd(x, generator=1)
    torch.testing.assert_close(pcd.replay_buffer, first)            # every chain written back to its own slot
    _, second = pcd(x, generator=2)
    replay = gen(2); torch.randint(0, 1, (32,), generator=replay)  # the stratified read (stride 1) draws once
    torch.testing.assert_close(second, LangevinDynamics(model, h, dtype=F64).sample(x=first, n_steps=3, generator=replay))
    assert set(pcd.state_dict()) >= {'replay_buffer', 'buffer_ptr'}


# ---- parallel tempering ---------------------------------------------------------------------------------------------
def test_temperature_ladders_and_errors():
    well = DoubleWellModel(2.0)
    pt = ParallelTemperingCD(well, LangevinDynamics(well, 0.01), n_replicas=3, max_temperature=9.0)
    torch.testing.assert_close(pt.temperatures, torch.tensor([1.0, 3.0, 9.0]))
    pt = ParallelTemperingCD(well, LangevinDynamics(well, 0.01), temperatures=torch.tensor([1.0, 1.5, 4.0]))
    assert pt.n_replicas == 3 and pt.swap_acceptance.shape == (2,)
    CountingLangevin.calls = 0
    for kwargs, message in [(dict(temperatures=[0.5, 1.0]), 'temperatures[0] must be 1.0'),
                            (dict(temperatures=[1.0, 2.0, 2.0]), 'strictly increasing'),
                            (dict(temperatures=[1.0]), 'at least 2 values'),
                            (dict(temperatures='hot'), 'temperatures must be a 1-D sequence'),
                            (dict(temperatures=[1.0, float('nan')]), 'temperatures[1]'),
                            (dict(temperatures=[1.0, 2.0], max_temperature=4.0), 'not both'),
                            (dict(n_replicas=1), 'n_replicas must be ≥ 2'),
                            (dict(max_temperature=0.5), 'max_temperature must be a finite number > 1'),
                            (dict(swap_every=0), 'swap_every must be ≥ 1'),
                            (dict(persistent=False), 'always persistent'),
                            (dict(buffer_size=0), 'buffer_size must be ≥ 1')]:
        with pytest.raises((ValueError, TypeError)) as info:
            ParallelTemperingCD(well, CountingLangevin(well, 0.01), **kwargs)
        assert message in str(info.value), (kwargs, str(info.value))
    assert CountingLangevin.calls == 0


def test_tempered_energy_scales_energy_and_closed_form_gradient():
    well = DoubleWellModel(2.0)
    beta = torch.tensor([1.0, 0.25, 0.5])
    x = torch.tensor([[0.3, -1.2], [0.7, 0.1], [-2.0, 0.5]])
    tempered = TemperedEnergy(well, beta)
    torch.testing.assert_close(tempered(x), well(x) * beta)
    torch.testing.assert_close(tempered.gradient(x), well.gradient(x) * beta[:, None])
    mlp = MLPEnergy(hidden=8)
    torch.testing.assert_close(TemperedEnergy(mlp, beta).gradient(x), mlp.gradient(x) * beta[:, None])

    class NoClosedForm(nn.Module):
        def forward(self, x): return x.square().sum(-1)
    torch.testing.assert_close(TemperedEnergy(NoClosedForm(), beta).gradient(x), 2 * x * beta[:, None])


def test_swap_rule_acceptance_probability():
    well = DoubleWellModel(10.0)
    pt = ParallelTemperingCD(well, LangevinDynamics(well, 0.005), temperatures=[1.0, 2.0, 5.0], buffer_size=4, init_steps=0)
    beta = pt.temperatures.reciprocal()
    n = 20000
    # cold x = 1 (E = 0), middle x = 0.5 (E = 5.625), hot x = 0 (E = 10). Sweep: even pair (0,1) then odd pair (1,2).
    state = torch.cat([torch.full((1, n, 1), 1.0), torch.full((1, n, 1), 0.5), torch.zeros(1, n, 1)])
    energy = well(state.reshape(-1, 1)).reshape(3, n)
    accepted = torch.zeros(2, dtype=torch.long)
    swap_replicas(state, energy, beta, gen(0), accepted)
    p01 = math.exp((1.0 - 0.5) * (0.0 - 5.625))
    assert abs(accepted[0].item() / n - p01) < 4 * math.sqrt(p01 * (1 - p01) / n)
    # the configurations and their energies moved together
    torch.testing.assert_close(energy, well(state.reshape(-1, 1)).reshape(3, n))
    assert set(state.unique().tolist()) <= {0.0, 0.5, 1.0}
    # a lower-energy configuration in the hotter replica is always taken by the colder one
    state = torch.cat([torch.full((1, 100, 1), 0.5), torch.full((1, 100, 1), 1.0), torch.full((1, 100, 1), 1.0)])
    accepted.zero_()
    swap_replicas(state, well(state.reshape(-1, 1)).reshape(3, 100), beta, gen(1), accepted)
    assert accepted[0].item() == 100 and (state[0] == 1.0).all()
    # non-finite energies never swap
    state = torch.zeros(3, 10, 1); accepted.zero_()
    swap_replicas(state, torch.full((3, 10), float('nan')), beta, gen(2), accepted)
    assert accepted.sum().item() == 0


def test_replicas_sample_their_tempered_densities():
    """⟨E⟩ of each replica against quadrature of exp(−E/T) (a wrong swap sign gives ⟨E⟩₁ ≈ 1.1 vs 0.55)."""
    well = DoubleWellModel(2.0)
    temps = [1.0, 2.0, 4.0, 8.0]
    grid = torch.linspace(-4, 4, 200001, dtype=F64)[:, None]
    energies = well(grid)
    exact = []
    for t in temps:
        w = torch.exp(-(energies - energies.min()) / t); w /= w.sum()
        exact.append((w * energies).sum().item())
    n = 1000
    pt = ParallelTemperingCD(well, LangevinDynamics(well, 0.005), temperatures=temps, buffer_size=n, init_steps=0)
    g = gen(1)
    state, _ = pt.run_replicas(torch.ones(4, n, 1), 1500, generator=g)
    means = []
    for _ in range(20):
        state, _ = pt.run_replicas(state, 50, generator=g)
        means.append(well(state.reshape(-1, 1)).reshape(4, n).mean(1))
    measured = torch.stack(means).mean(0)
    # tolerance: Langevin's O(h) bias (≈ 1–3 % here) plus Monte-Carlo error
    torch.testing.assert_close(measured, torch.tensor(exact, dtype=measured.dtype), rtol=0.06, atol=0.0)


def test_tempering_mixes_modes_that_langevin_cannot():
    """E = 10(x² − 1)²: every chain starts at x = 1. Langevin stays; the T = 1 replicas of PT reach 50/50."""
    well = DoubleWellModel(10.0)
    n, calls = 512, 200
    stuck = LangevinDynamics(well, 0.005).sample(x=torch.ones(n, 1), n_steps=10 * calls, generator=gen(0))
    langevin_left = (stuck < 0).float().mean().item()
    pt = ParallelTemperingCD(well, LangevinDynamics(well, 0.005), n_replicas=6, max_temperature=20.0, k_steps=10,
                             buffer_size=n, init_steps=0, new_sample_ratio=0.0)
    pt.initialize_buffer((1,)); pt.replay_buffer.fill_(1.0)
    g, left, acceptance = gen(1), [], []
    data = torch.ones(n, 1)
    for _ in range(calls):
        negatives = pt.get_negative_samples(data, n, (1,), generator=g)
        left.append((negatives < 0).float().mean().item()); acceptance.append(pt.swap_acceptance.clone())
    occupancy = sum(left[calls // 2:]) / (calls - calls // 2)
    acceptance = torch.stack(acceptance).mean(0)
    print(f'left-well fraction: Langevin {langevin_left:.4f}, PT T=1 (second half) {occupancy:.3f}; '
          f'swap acceptance per pair {[round(a, 3) for a in acceptance.tolist()]}')
    assert langevin_left < 0.02
    assert abs(occupancy - 0.5) < 0.08
    assert ((acceptance > 0.2) & (acceptance < 1.0)).all()
    assert pt.swap_attempt_count == calls * n * 10
    torch.testing.assert_close(pt.swap_accept_count.double() / pt.swap_attempt_count, acceptance.double(), atol=1e-6, rtol=0)


def test_pt_with_hmc_replicas():
    """HMC on E/Tₖ: Metropolis-exact replicas; ⟨x²⟩ of a Gaussian at temperature T is T·σ²."""
    gauss = GaussianModel(torch.zeros(2), torch.eye(2) * 0.5)
    hmc = HamiltonianMonteCarlo(gauss, step_size=0.2, n_leapfrog_steps=5)
    pt = ParallelTemperingCD(gauss, hmc, temperatures=[1.0, 3.0], buffer_size=2000, init_steps=0, k_steps=5)
    state, _ = pt.run_replicas(torch.zeros(2, 2000, 2), 300, generator=gen(3))
    torch.testing.assert_close(state.square().mean((1, 2)), torch.tensor([0.5, 1.5]), rtol=0.08, atol=0.0)
    assert hmc.model is gauss                                      # the sampler gets its model back


def test_pt_restores_the_sampler_model_on_errors_and_repeats_conditioning():
    model = Conditional()
    sampler = LangevinDynamics(model, 0.05)
    pt = ParallelTemperingCD(model, sampler, temperatures=[1.0, 2.0], buffer_size=6, init_steps=0, k_steps=2)
    y = torch.tensor([0, 1, 0])
    model.seen.clear()
    loss, neg = pt(torch.zeros(3, 2), y=y, generator=0)
    assert neg.shape == (3, 2) and torch.isfinite(loss)
    assert any(s is not None and s.shape == (6,) and torch.equal(s, y.repeat(2)) for s in model.seen)
    assert sampler.model is model
    with pytest.raises(ValueError, match='state must have shape'):
        pt.run_replicas(torch.zeros(3, 4, 2), 1)
    harmonic = HarmonicModel()
    broken = ParallelTemperingCD(harmonic, LangevinDynamics(harmonic, 0.01), temperatures=[1.0, 2.0],
                                 buffer_size=4, init_steps=0)
    with pytest.raises(Exception):
        broken.run_replicas(torch.zeros(2, 4, 2), 2, model_kwargs={'y': torch.zeros(4)})  # analytic models refuse kwargs
    assert type(broken.sampler.model) is HarmonicModel


def test_pt_trains_an_mlp():
    model = MLPEnergy(hidden=32)
    pt = ParallelTemperingCD(model, LangevinDynamics(model, 0.01), n_replicas=3, max_temperature=4.0, buffer_size=64,
                             init_steps=5, k_steps=4, swap_every=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(32, 2, generator=gen(0)) * 0.3 + 1.0
    for i in range(5):
        loss, neg = pt(x, generator=i)
        opt.zero_grad(); loss.backward(); opt.step()
    assert torch.isfinite(loss) and neg.shape == (32, 2)
    assert pt.replay_buffer.shape == (64, 3, 2) and pt.swap_attempt_count == 5 * 2 * 32
    assert ((pt.swap_acceptance >= 0) & (pt.swap_acceptance <= 1)).all()
    pt.mix_buffer_across_ranks(generator=gen(1))                  # PT chains (rows) are shuffled whole
    assert 'replay_buffer' in pt.state_dict()
    with pytest.warns(UserWarning, match='smaller than the batch'):
        ParallelTemperingCD(model, LangevinDynamics(model, 0.01), n_replicas=2, max_temperature=2.0, buffer_size=8,
                            init_steps=0)(x, generator=0)
