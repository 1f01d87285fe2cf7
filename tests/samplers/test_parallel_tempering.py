"""Parallel tempering (nbs/20_samplers/09_parallel_tempering.ipynb) against targets known by quadrature or in closed form.

- A double well with a barrier of 8: from the left well, the T = 1 replicas reach the 50/50 split and ⟨x²⟩ of the
  quadrature (MALA inside, so no discretisation bias); plain MALA stays (almost all) where it started.
- Every replica k samples its own tempered target exp(−E/Tₖ)/Z: ⟨x²⟩ and ⟨E⟩ per temperature against quadrature.
- The swap acceptance between N(0, T·I) and N(0, rT·I) matches its expectation E[min(1, exp((1 − 1/r)G₁ − (r − 1)G₂))],
  Gᵢ ~ χ²_D/2, computed from exact draws; HMC replicas have ⟨x²⟩ = Tₖσ².
- The same draws as ParallelTemperingCD.run_replicas for the same seed (the loss delegates to this module).
- The schedule of a scheduled inner step size runs across the segments exactly as in one plain run; conditioning
  is repeated for the K replicas; non-finite chains give one report, and 'raise' on either sampler raises.
Tolerances are 5 Monte-Carlo standard errors over the B independent chains: an average over correlated times of
one run has no larger a variance than a single time's value. Every random draw is seeded with a torch.Generator.
"""
import math
import warnings

import pytest
import torch
from torch import nn

from torchebm_nb.core import BaseModel, DoubleWellModel, GaussianModel, HarmonicModel, LinearScheduler
from torchebm_nb.losses import ParallelTemperingCD
from torchebm_nb.samplers import (MALA, HamiltonianMonteCarlo, LangevinDynamics, ParallelTempering,
                                  ReplicaExchange)

F64 = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def quadrature_moments(model, temperature, half_width=4.0, n=200001):
    """(⟨x²⟩, ⟨E⟩) under exp(−E/T)/Z for a 1-D energy, by the trapezoidal rule on a fine grid."""
    grid = torch.linspace(-half_width, half_width, n, dtype=F64)[:, None]
    energy = model(grid)
    weight = torch.exp(-(energy - energy.min()) / temperature)
    z = torch.trapezoid(weight, grid[:, 0])
    return (torch.trapezoid(weight * grid[:, 0] ** 2, grid[:, 0]) / z).item(), (torch.trapezoid(weight * energy, grid[:, 0]) / z).item()


def snapshot_means(trajectory, values):
    """Per chain, the mean over the kept times of `values(trajectory)`; returns (mean over chains, its standard error bound)."""
    per_time = values(trajectory)                    # (B, n_kept)
    mean_over_time = per_time.mean(1)
    return mean_over_time.mean().item(), per_time[:, -1].std().item() / math.sqrt(per_time.shape[0])


# ---- the target is the T = 1 marginal --------------------------------------------------------------------------------
def test_double_well_occupancy_and_second_moment_against_quadrature():
    well = DoubleWellModel(barrier_height=8.0)
    B, n_steps, h = 1000, 3000, 0.005
    start = -torch.ones(B, 1)
    plain = MALA(well, step_size=h).sample(x=start, n_steps=n_steps, generator=gen(0))
    pt = ParallelTempering(MALA(well, step_size=h), n_replicas=5, max_temperature=10.0)
    traj = pt.sample(x=start, n_steps=n_steps, thin=100, return_trajectory=True, generator=gen(1))
    late = traj[:, 15:]                              # the second half of the run
    occupancy = (late[..., 0] > 0).float().mean().item()
    x2, x2_se = snapshot_means(late, lambda t: t[..., 0].square())
    exact_x2, _ = quadrature_moments(well, 1.0)
    print(f'right well: MALA {(plain > 0).float().mean():.4f}, PT {occupancy:.4f}; <x²> PT {x2:.4f} ± {x2_se:.4f}, '
          f'quadrature {exact_x2:.4f}; swap acceptance {[round(a, 3) for a in pt.swap_acceptance.tolist()]}')
    assert (plain > 0).float().mean().item() < 0.1                  # a few crossings in 15 time units, far from 0.5
    assert abs(occupancy - 0.5) < 5 * math.sqrt(0.25 / B)
    assert abs(x2 - exact_x2) < 5 * x2_se


def test_langevin_inside_balances_the_wells():
    """Unadjusted Langevin inside: its O(h) bias cannot tilt a symmetric target, so the split is 50/50 exactly."""
    well = DoubleWellModel(barrier_height=8.0)
    B = 1000
    pt = ParallelTempering(LangevinDynamics(well, step_size=0.004), n_replicas=5, max_temperature=10.0)
    traj = pt.sample(x=-torch.ones(B, 1), n_steps=4000, thin=200, return_trajectory=True, generator=gen(2))
    occupancy = (traj[:, 10:, 0] > 0).float().mean().item()
    assert abs(occupancy - 0.5) < 5 * math.sqrt(0.25 / B), occupancy


def test_every_replica_samples_its_tempered_target():
    """⟨x²⟩ and ⟨E⟩ of replica k against quadrature of exp(−E/Tₖ) (a wrong swap sign moves ⟨E⟩₁ by many errors)."""
    well = DoubleWellModel(barrier_height=4.0)
    temperatures = [1.0, 2.0, 4.0, 8.0]
    B = 2000
    pt = ParallelTempering(MALA(well, step_size=0.01), temperatures=temperatures)
    state, _ = pt.run_replicas(torch.ones(4, B, 1), 800, generator=gen(3))   # burn-in from the right well
    snapshots = []
    for _ in range(10):
        state, _ = pt.run_replicas(state, 40, generator=gen(4 + len(snapshots)))
        snapshots.append(state.clone())
    snapshots = torch.stack(snapshots, 2)            # (K, B, n_snapshots, 1)
    for k, T in enumerate(temperatures):
        x2, x2_se = snapshot_means(snapshots[k], lambda t: t[..., 0].square())
        e, e_se = snapshot_means(snapshots[k], lambda t: well(t.reshape(-1, 1)).reshape(t.shape[:2]))
        exact_x2, exact_e = quadrature_moments(well, T)
        assert abs(x2 - exact_x2) < 5 * x2_se, (T, x2, exact_x2, x2_se)
        assert abs(e - exact_e) < 5 * e_se, (T, e, exact_e, e_se)


def gaussian_swap_acceptance(ratio, dim, n=10**6, seed=0):
    """E[min(1, exp((1 − 1/r)G₁ − (r − 1)G₂))] with Gᵢ ~ χ²_D/2, and its standard error."""
    g = gen(seed)
    g1, g2 = (0.5 * torch.randn(n, dim, generator=g, dtype=F64).square().sum(1) for _ in range(2))
    a = torch.exp((1 - 1 / ratio) * g1 - (ratio - 1) * g2).clamp(max=1)
    return a.mean().item(), a.std().item() / math.sqrt(n)


@pytest.mark.parametrize('dim,temperatures', [(1, [1.0, 4.0]), (3, [1.0, 2.5, 6.25])])
def test_swap_acceptance_matches_its_expectation_for_gaussians(dim, temperatures):
    """Between N(0, T·I) and N(0, rT·I) the acceptance depends on r and D only; a geometric ladder is flat."""
    B = 4000
    pt = ParallelTempering(MALA(HarmonicModel(), step_size=0.5), temperatures=temperatures)
    _, d = pt.sample(dim=dim, n_samples=B, n_steps=250, return_diagnostics=True, generator=gen(5))
    measured = d['swap_acceptance'][50:].mean(0)
    expected, expected_se = gaussian_swap_acceptance(temperatures[1] / temperatures[0], dim)
    for a in measured.tolist():
        assert abs(a - expected) < 5 * math.sqrt(expected * (1 - expected) / B) + 5 * expected_se, (a, expected)


def test_hmc_replicas_have_the_tempered_variance():
    """HMC on E/Tₖ is Metropolis-exact: ⟨x²⟩ of N(0, σ²I) at temperature T is Tσ² per coordinate."""
    gauss = GaussianModel(torch.zeros(2), torch.eye(2) * 0.5)
    hmc = HamiltonianMonteCarlo(gauss, step_size=0.2, n_leapfrog_steps=5)
    B = 2000
    pt = ParallelTempering(hmc, temperatures=[1.0, 3.0])
    state, _ = pt.run_replicas(torch.zeros(2, B, 2), 300, generator=gen(6))
    second = state.square().mean(2)                  # (K, B)
    for k, T in enumerate([1.0, 3.0]):
        assert abs(second[k].mean().item() - 0.5 * T) < 5 * second[k].std().item() / math.sqrt(B)
    assert hmc.model is gauss


# ---- one implementation for the sampler and the loss ---------------------------------------------------------------
class SmallMLP(BaseModel):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)   # tests only: deterministic initialisation
        self.net = nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


@pytest.mark.parametrize('swap_every,n_steps', [(1, 6), (3, 10)])
def test_the_same_draws_as_parallel_tempering_cd(swap_every, n_steps):
    model = SmallMLP()
    loss = ParallelTemperingCD(model, LangevinDynamics(model, 0.01), n_replicas=3, max_temperature=5.0, swap_every=swap_every)
    pt = ParallelTempering(LangevinDynamics(model, 0.01), n_replicas=3, max_temperature=5.0, swap_every=swap_every)
    state = torch.randn(3, 16, 2, generator=gen(7))
    want, want_accepted = loss.run_replicas(state, n_steps, generator=gen(8))
    got, got_accepted = pt.run_replicas(state, n_steps, generator=gen(8))
    assert torch.equal(got, want) and torch.equal(got_accepted, want_accepted)
    x = torch.randn(16, 2, generator=gen(9))
    assert torch.equal(pt.sample(x=x, n_steps=n_steps, generator=gen(10)),
                       loss.run_replicas(x.expand(3, 16, 2), n_steps, generator=gen(10))[0][0])
    assert ReplicaExchange is ParallelTempering


def test_scheduled_step_size_runs_across_segments():
    """The inner sampler sees the step sizes of one uninterrupted schedule, whatever swap_every cuts the run into."""
    class Recording(LangevinDynamics):
        def step(self, state, params, ctx):
            self.seen.append(params.step_size)
            return super().step(state, params, ctx)

    def steps_seen(run):
        sampler = Recording(HarmonicModel(), step_size=LinearScheduler(0.2, 0.02, n_steps=10))
        sampler.seen = []
        run(sampler)
        return sampler.seen

    want = steps_seen(lambda s: s.sample(dim=1, n_samples=2, n_steps=13, generator=0))
    for swap_every in (1, 3, 5):
        got = steps_seen(lambda s: ParallelTempering(s, n_replicas=2, max_temperature=2.0, swap_every=swap_every)
                         .sample(dim=1, n_samples=2, n_steps=13, thin=2, return_trajectory=True, generator=0))
        assert got == want, (swap_every, got, want)


class Conditional(BaseModel):
    """E(x | y) = ½‖x − c_y‖²; records the labels it sees."""
    def __init__(self):
        super().__init__()
        self.centres = nn.Parameter(torch.tensor([[-3.0, 0.0], [3.0, 1.0]]))
        self.seen = []

    def forward(self, x, y=None):
        self.seen.append(None if y is None else y.clone())
        return 0.5 * (x - self.centres[y]).square().sum(-1)


def test_conditioning_is_repeated_for_the_replicas():
    model = Conditional()
    pt = ParallelTempering(LangevinDynamics(model, 0.05), temperatures=[1.0, 2.0, 4.0])
    y = torch.tensor([0, 1, 1, 0])
    xs, d = pt.sample(x=torch.zeros(4, 2), n_steps=30, y=y, return_diagnostics=True, generator=gen(11))
    assert any(s is not None and torch.equal(s, y.repeat(3)) for s in model.seen)   # the K·B batch
    assert any(s is not None and torch.equal(s, y) for s in model.seen)             # the T = 1 diagnostics
    assert xs.shape == (4, 2) and d['energy'].shape == (30,)
    assert pt.sampler.model is model


def test_nonfinite_chains_one_report_and_either_raise():
    well = DoubleWellModel(barrier_height=10.0)
    inner = LangevinDynamics(well, step_size=0.05)                  # h·E'' = 4 at the wells: the T = 1 replicas diverge
    pt = ParallelTempering(inner, n_replicas=3, swap_every=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        pt.sample(x=-torch.ones(50, 1), n_steps=60, generator=gen(12))
    assert len(caught) == 1 and caught[0].category is RuntimeWarning
    assert str(caught[0].message).startswith('ParallelTempering: ') and 'of 150 chains' in str(caught[0].message)
    inner.nonfinite_policy = 'raise'                                # the inner sampler's 'raise' is honoured
    with pytest.raises(RuntimeError, match='ParallelTempering: .* chains became non-finite'):
        pt.sample(x=-torch.ones(50, 1), n_steps=60, generator=gen(12))
    assert vars(inner)['nonfinite_policy'] == 'raise' and inner.model is well
    finite = ParallelTempering(LangevinDynamics(well, 0.001), n_replicas=3)
    finite.nonfinite_policy = 'raise'
    finite.sample(x=-torch.ones(50, 1), n_steps=20, generator=gen(13))   # nothing to report, nothing raised
