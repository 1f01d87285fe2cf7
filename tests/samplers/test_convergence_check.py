"""The end-of-run convergence check (core.mcmc): each criterion fires on a run built to be unconverged in that way,
stays silent on healthy runs of every MCMC sampler, warns once per sampler object, obeys every off switch, and adds
no host synchronisation inside the step loop.

The criteria and their thresholds are explained, with the measurements behind them, in
nbs/00_core/02b_mcmc_protocol.ipynb ("Runs that are plainly unconverged"). Targets are N(1, I); chains start from
N(0, I) unless a test says otherwise; every run is seeded.
"""
import math
import warnings

import pytest
import torch

import torchebm_nb.core.mcmc as mcmc
from torchebm_nb.core import BaseModel, GaussianModel, UnconvergedWarning, no_convergence_check
from torchebm_nb.core.base_scheduler import LinearScheduler
from torchebm_nb.core.mcmc import (ChainContext, ConvergenceStatistics, StepInfo, register_accelerator, run_chain,
                                   unconverged_message)
from torchebm_nb.losses import ContrastiveDivergence
from torchebm_nb.samplers import (GradientDescentSampler, HamiltonianMonteCarlo, LangevinDynamics, MetropolisAdjustedLangevin,
                                  NoUTurnSampler, ParallelTempering, annealed_importance_sampling)
from torchebm_nb.samplers.langevin_dynamics import LangevinState


def gaussian(d: int = 2) -> GaussianModel:
    return GaussianModel(torch.ones(d), torch.eye(d))


def noise(n: int, d: int = 2, seed: int = 100, loc: float = 0.0) -> torch.Tensor:
    return loc + torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def unconverged(run):
    "The messages of the UnconvergedWarnings that `run()` raises."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        run()
    return [str(w.message) for w in caught if issubclass(w.category, UnconvergedWarning)]


# ---- each criterion on a run built to trip it ------------------------------------------------------------------
def test_a_hmc_defaults_return_their_starting_noise():
    sampler = HamiltonianMonteCarlo(gaussian())
    messages = unconverged(lambda: sampler.sample(x=noise(1000), generator=0))     # TorchEBM's defaults: h = 1e-3, 100 steps
    assert len(messages) == 1, messages
    assert messages[0].startswith('HamiltonianMonteCarlo (step_size=0.001): this run looks unconverged: 1000 chains moved 10.'), messages
    assert 'at acceptance 1.000' in messages[0] and 'window_adaptation' in messages[0] and '02_choosing_a_sampler' in messages[0]


def test_a_langevin_defaults_barely_move():
    messages = unconverged(lambda: LangevinDynamics(gaussian()).sample(x=noise(1000), generator=0))
    assert len(messages) == 1 and ' moved 4' in messages[0] and 'of their spread' in messages[0], messages   # measured 44%


def test_b_every_proposal_accepted_and_little_movement():
    "Started at the target (so nothing drifts) with a step too small: moved ≈ 0.8 — not (a), but (b) at acceptance 1."
    messages = unconverged(lambda: MetropolisAdjustedLangevin(gaussian(), step_size=0.004).sample(
        x=noise(1000, loc=1.0), n_steps=100, generator=0))
    assert len(messages) == 1 and 'at acceptance 1.000 (every proposal accepted' in messages[0], messages
    assert 'energy still' not in messages[0], messages
    moved = float(messages[0].split(' moved ')[1].split('%')[0])
    assert 70 < moved < 100, messages


def test_c_energy_still_falling():
    "Langevin h = 0.01 for 100 steps in 10-D: chains moved far (m ≈ 1.3) but the energy is still falling."
    messages = unconverged(lambda: LangevinDynamics(gaussian(10), step_size=0.01).sample(x=noise(1000, 10), generator=0))
    assert len(messages) == 1 and 'the mean energy still fell by' in messages[0] and 'between steps 50 and 100' in messages[0], messages
    assert ' moved ' not in messages[0], messages


def test_c_langevin_defaults_for_500_steps():
    "The issue's case: Langevin's defaults reach a mean of about 0.4 for a target of 1; the energy is still falling."
    sampler = LangevinDynamics(gaussian())
    messages = unconverged(lambda: sampler.sample(x=noise(1000), n_steps=500, generator=0))
    assert len(messages) == 1 and 'the mean energy still fell' in messages[0], messages


# ---- healthy runs stay silent ------------------------------------------------------------------------------------
HEALTHY = {
    'Langevin h=0.05, 300 steps, 10k chains': lambda: LangevinDynamics(gaussian(), step_size=0.05).sample(
        x=noise(10_000), n_steps=300, generator=0),
    'HMC h=0.2, L=8, 100 steps': lambda: HamiltonianMonteCarlo(gaussian(), step_size=0.2, n_leapfrog_steps=8).sample(
        x=noise(1000), n_steps=100, generator=0),
    'HMC 10-D h=0.1': lambda: HamiltonianMonteCarlo(gaussian(10), step_size=0.1).sample(x=noise(1000, 10), generator=0),
    'MALA h=0.1, 200 steps': lambda: MetropolisAdjustedLangevin(gaussian(), step_size=0.1).sample(
        x=noise(1000), n_steps=200, generator=0),
    'NUTS h=0.3': lambda: NoUTurnSampler(gaussian(), step_size=0.3).sample(x=noise(200), n_steps=100, generator=0),
    'HMC h=0.2, 8 chains': lambda: HamiltonianMonteCarlo(gaussian(), step_size=0.2, n_leapfrog_steps=8).sample(
        x=noise(8), n_steps=100, generator=0),
}


@pytest.mark.parametrize('name', HEALTHY)
def test_healthy_runs_are_silent(name):
    assert unconverged(HEALTHY[name]) == []


class Ring(BaseModel):
    "Eight Gaussians of width s on a circle of radius 2 (an autograd energy)."
    def __init__(self, s: float):
        super().__init__()
        a = torch.arange(8) * (2 * math.pi / 8)
        self.register_buffer('centres', 2 * torch.stack([a.cos(), a.sin()], 1))
        self.s = s

    def forward(self, x):
        return -torch.logsumexp(-(x[:, None, :] - self.centres).square().sum(-1) / (2 * self.s ** 2), 1)


@pytest.mark.parametrize('make', [lambda: LangevinDynamics(Ring(0.05), step_size=1e-3),
                                  lambda: HamiltonianMonteCarlo(Ring(0.2), step_size=0.05)], ids=['Langevin', 'HMC'])
def test_chains_that_fall_onto_the_nearest_mode_are_not_unconverged(make):
    "Noise → nearest of 8 sharp modes: little movement against the spread between the modes (m ≈ 0.55), a lot against their width."
    sampler, seen = make(), {}
    original = mcmc.ConvergenceMonitor.result
    def spy(self, state, ctx):
        seen['stats'] = original(self, state, ctx); return seen['stats']
    mcmc.ConvergenceMonitor.result = spy
    try: messages = unconverged(lambda: sampler.sample(x=noise(1000), n_steps=100, generator=0))
    finally: mcmc.ConvergenceMonitor.result = original
    assert messages == [], messages
    assert seen['stats'].moved < 0.7 < seen['stats'].moved_local, seen['stats']   # the spread alone would have warned


# ---- once per sampler, and every off switch ---------------------------------------------------------------------
def test_warned_once_per_sampler_object():
    sampler = HamiltonianMonteCarlo(gaussian())
    assert len(unconverged(lambda: [sampler.sample(x=noise(100, seed=s), generator=s) for s in range(3)])) == 1
    assert len(unconverged(lambda: HamiltonianMonteCarlo(gaussian()).sample(x=noise(100), generator=0))) == 1   # a new object


def test_off_switches():
    quiet = HamiltonianMonteCarlo(gaussian())
    quiet.check_convergence = False
    assert unconverged(lambda: quiet.sample(x=noise(100), generator=0)) == []
    sampler = HamiltonianMonteCarlo(gaussian())
    run = lambda **kw: run_chain(sampler, noise(100), 100, ctx=sampler.context(generator=0), **kw)
    assert unconverged(lambda: run(check_convergence=False)) == []
    with no_convergence_check():
        assert unconverged(run) == []
        with no_convergence_check(): pass
        assert unconverged(run) == []                          # a nested block leaves the outer one in force
    forced = HamiltonianMonteCarlo(gaussian())
    forced.check_convergence = False
    assert len(unconverged(lambda: run_chain(forced, noise(100), 100, ctx=forced.context(generator=0),
                                             check_convergence=True))) == 1   # the keyword wins over the attribute
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        warnings.filterwarnings('ignore', category=UnconvergedWarning)
        run()
    assert caught == []
    assert len(unconverged(run)) == 0                           # that run warned (silently): the object is done


def test_not_judged_runs():
    "Fewer than 4 chains, fewer than 10 steps, a scheduled step size, an optimiser: no check at all."
    hmc = lambda: HamiltonianMonteCarlo(gaussian())
    assert unconverged(lambda: hmc().sample(x=noise(3), generator=0)) == []
    assert unconverged(lambda: hmc().sample(dim=2, generator=0)) == []                    # the default: one chain
    assert unconverged(lambda: hmc().sample(x=noise(1000), n_steps=9, generator=0)) == []
    scheduled = HamiltonianMonteCarlo(gaussian(), step_size=LinearScheduler(1e-3, 1e-4, 100))
    assert unconverged(lambda: scheduled.sample(x=noise(1000), generator=0)) == []
    assert unconverged(lambda: GradientDescentSampler(gaussian()).sample(x=noise(1000), generator=0)) == []


def test_algorithms_that_run_short_chains_by_design_are_silent():
    "Contrastive divergence (k steps per batch), annealed importance sampling (a few steps per rung), parallel tempering."
    tiny = HamiltonianMonteCarlo(gaussian(), step_size=1e-3)
    loss = ContrastiveDivergence(tiny.model, tiny, k_steps=20, persistent=False)
    assert unconverged(lambda: loss(noise(256), generator=0)) == []
    assert len(unconverged(lambda: tiny.sample(x=noise(256), n_steps=20, generator=0))) == 1   # the same chains, asked for directly
    assert unconverged(lambda: annealed_importance_sampling(gaussian(), n_samples=256, n_temperatures=5, n_steps=20,
                                                            step_size=1e-4, generator=0)) == []
    inner = HamiltonianMonteCarlo(gaussian(), step_size=1e-3)
    assert unconverged(lambda: ParallelTempering(inner, n_replicas=3).sample(x=noise(256), n_steps=50, generator=0)) == []
    assert len(unconverged(lambda: inner.sample(x=noise(256), generator=0))) == 1       # the same sampler, used directly


def test_statistics_are_nan_safe_and_a_non_finite_run_is_not_judged():
    assert unconverged_message('Toy', ConvergenceStatistics(100, 100)) is None
    class Cliff(BaseModel):
        def forward(self, x): return torch.where(x[:, 0] > 0.5, torch.full_like(x[:, 0], float('nan')), 0.5 * x.square().sum(-1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        HamiltonianMonteCarlo(Cliff(), step_size=0.2).sample(x=noise(100), n_steps=20, generator=0)
    assert [w.category for w in caught] == [RuntimeWarning], [str(w.message) for w in caught]


# ---- cost: no synchronisation per step ---------------------------------------------------------------------------
READ_BACKS = ('item', 'tolist', '__bool__', '__float__', '__int__', 'cpu', 'numpy')


def count_read_backs(monkeypatch, run) -> int:
    "How many times `run()` reads a tensor back to the host (the operations that synchronise with a GPU)."
    calls = [0]
    for name in READ_BACKS:
        original = getattr(torch.Tensor, name)
        def counted(self, *args, __original=original, **kwargs):
            calls[0] += 1
            return __original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counted)
    run()
    monkeypatch.undo()
    return calls[0]


@pytest.mark.parametrize('make', [lambda: HamiltonianMonteCarlo(gaussian(), step_size=0.2, n_leapfrog_steps=4),
                                  lambda: LangevinDynamics(gaussian(), step_size=0.05),
                                  lambda: HamiltonianMonteCarlo(gaussian())], ids=['HMC', 'Langevin', 'HMC defaults'])
def test_the_check_reads_back_once_per_run_not_per_step(monkeypatch, make):
    def read_backs(n_steps, check):
        sampler = make()
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return count_read_backs(monkeypatch, lambda: run_chain(sampler, noise(64), n_steps, ctx=sampler.context(generator=0),
                                                                   check_convergence=check))
    extra_short, extra_long = read_backs(20, True) - read_backs(20, False), read_backs(200, True) - read_backs(200, False)
    assert extra_short == extra_long == 1, (extra_short, extra_long)


def test_a_barely_moved_langevin_run_pays_one_gradient_and_one_more_read_back(monkeypatch):
    "A state without a force pays for the energy's length scale only when the spread says 'barely moved'."
    def read_backs(check):
        sampler = LangevinDynamics(gaussian())
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return count_read_backs(monkeypatch, lambda: run_chain(sampler, noise(64), 100, ctx=sampler.context(generator=0),
                                                                   check_convergence=check))
    assert read_backs(True) - read_backs(False) == 2


# ---- chains updated in place (as CUDA kernel paths do) -----------------------------------------------------------
class InPlaceLangevin:
    "A toy back end: the sampler's own step, its result written into the chains' buffer in place, as a kernel would."
    whole_chain = False
    def __init__(self, sampler, x): self.sampler, self.x = sampler, x
    def step(self, state, params, ctx):
        new, info = self.sampler.step(state, params, ctx)
        self.x.copy_(new.x)
        return LangevinState(self.x, new.noise), info


class WholeChainLangevin(InPlaceLangevin):
    "The same as a whole-chain path: `run` advances steps start … stop − 1 in one call."
    whole_chain = True
    def __init__(self, sampler, x):
        super().__init__(sampler, x)
        self.first_nonfinite = torch.full((x.shape[0],), 2**31 - 1, dtype=torch.int32)
        self.runs = []
    def run(self, state, schedule, start, stop):
        self.runs.append((start, stop))
        for i in range(start, stop): state, info = self.step(state, schedule[i], self.ctx)
        return state, StepInfo()


@pytest.mark.parametrize('path_class', [InPlaceLangevin, WholeChainLangevin], ids=['step path', 'whole-chain path'])
def test_paths_that_update_chains_in_place(path_class):
    made = []
    def offer(sampler, params, x, ctx, whole_chain):
        if not isinstance(sampler, LangevinDynamics) or (path_class.whole_chain and not whole_chain): return None
        made.append(path_class(sampler, x)); made[-1].ctx = ctx
        return made[-1]
    register_accelerator(offer)
    try:
        healthy = unconverged(lambda: LangevinDynamics(gaussian(), step_size=0.05).sample(x=noise(1000), n_steps=300, generator=0))
        defaults = unconverged(lambda: LangevinDynamics(gaussian()).sample(x=noise(1000), generator=0))
        drifting = unconverged(lambda: LangevinDynamics(gaussian(10), step_size=0.01).sample(x=noise(1000, 10), generator=0))
    finally: mcmc._ACCELERATORS.remove(offer)
    assert len(made) == 3, made
    assert healthy == [], healthy                                   # the start was kept aside, not overwritten
    assert len(defaults) == 1 and 'of their spread' in defaults[0], defaults
    assert len(drifting) == 1 and 'between steps 50 and 100' in drifting[0], drifting   # mid-run energies taken
    if path_class.whole_chain: assert made[-1].runs == [(0, 50), (50, 100)], made[-1].runs


def test_a_step_that_changes_its_input_in_place_is_not_misread():
    "The protocol says steps leave their input alone; one that does not would make the start look unmoved: not judged."
    class Sloppy(LangevinDynamics):
        def step(self, state, params, ctx):
            new, info = super().step(state, params, ctx)
            state.x.copy_(new.x)
            return LangevinState(state.x, new.noise), info
    assert unconverged(lambda: Sloppy(gaussian(), step_size=0.05).sample(x=noise(1000), n_steps=300, generator=0)) == []


def test_inference_mode():
    with torch.inference_mode():
        messages = unconverged(lambda: HamiltonianMonteCarlo(gaussian()).sample(x=noise(1000), generator=0))
    assert len(messages) == 1, messages


def test_an_energy_without_a_gradient_falls_back_to_the_spread():
    "A random-walk sampler on an energy autograd cannot differentiate: the check uses the spread alone, without failing."
    from dataclasses import dataclass

    @dataclass
    class WalkState:
        x: torch.Tensor
        energy: torch.Tensor

    class Rounded(BaseModel):
        def forward(self, x): return 0.5 * (x - 1).detach().square().sum(-1)       # no graph: autograd refuses

    class Walk:
        diagnostic_keys, nonfinite_policy, nonfinite_check_every = ('mean',), 'warn', 32
        def reset_schedulers(self): pass
        def all_schedulers(self): return []
        def current_params(self): return {'step_size': 1e-3}
        def init(self, x, ctx): return WalkState(x, ctx.energy(x))
        def step(self, state, params, ctx):
            proposal = state.x + params['step_size'] * torch.randn(state.x.shape, generator=ctx.generator)
            energy = ctx.energy(proposal)
            accept = torch.rand(energy.shape, generator=ctx.generator).log() < state.energy - energy
            return (WalkState(torch.where(accept[:, None], proposal, state.x), torch.where(accept, energy, state.energy)),
                    StepInfo(accept))
    ctx = ChainContext(Rounded(), generator=torch.Generator().manual_seed(0))
    messages = unconverged(lambda: run_chain(Walk(), noise(500), 100, ctx=ctx))
    assert len(messages) == 1 and 'Walk (step_size=0.001)' in messages[0] and "length scale" not in messages[0], messages
