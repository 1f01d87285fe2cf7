"""Compiled steps (issue 19): `compile=True` on LangevinDynamics, HamiltonianMonteCarlo, MALA, UnderdampedLangevin, NUTS,
SGLD/pSGLD and SGHMC, and on the CD losses.

What is pinned down here, on CPU:
- seeded compiled chains equal the eager chains to float32 rounding (the same noise: the draws stay eager), for an MLP
  energy, closed-form energies, conditioning, a gradient clip, a box, a per-dimension mass and a scheduled step size;
  Metropolis decisions are the same;
- every kernel traces as one graph (`explain_step`: no graph breaks) on the library's models;
- a changing scheduled step size, a second run, a second sampler on a model of the same architecture and a training
  step on the model's weights recompile nothing (`compile_stats.graphs`);
- non-finite chains are reported as the eager path reports them;
- bad `compile` values are refused before any work, naming `compile`.

Compiling dominates the time, so the models are tiny and shared: every test on the MLP uses one architecture.
"""
import warnings

import pytest
import torch
from torch import nn

from torchebm_nb.core import (BaseModel, DoubleWellModel, GaussianModel, HarmonicModel, LinearScheduler,
                              RosenbrockModel, explain_step)
from torchebm_nb.losses import ContrastiveDivergence, PersistentContrastiveDivergence
from torchebm_nb.models import MLPEnergy
from torchebm_nb.samplers import (MALA, SGHMC, SGLD, GradientDescentSampler, HamiltonianMonteCarlo, LangevinDynamics,
                                  NoUTurnSampler, ParallelTempering, UnderdampedLangevin)
from torchebm_nb.samplers.nuts import CompiledSubtree, subtree_levels
from torchebm_nb.core.compiled import traced_energy_and_gradient

torch.set_num_threads(1)
D, B = 3, 64


class Confined(MLPEnergy):
    "A small MLP energy plus ½‖x‖² (curvature, so the leapfrog errs and the Metropolis test rejects)."
    def forward(self, x): return super().forward(x) + 0.5 * (x ** 2).sum(-1)


def mlp(seed=0):
    torch.manual_seed(seed)
    return Confined(D, hidden_dim=16)


def start(seed=0, n=B, d=D):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def pair(make, n_steps=15, x=None, **run):
    "The same seeded run, eager and compiled: (eager result, compiled result, the compiled sampler)."
    x = start() if x is None else x
    eager, fast = make(False), make(True)
    out_eager = eager.sample(x, n_steps=n_steps, generator=11, **run)
    out_fast = fast.sample(x, n_steps=n_steps, generator=11, **run)
    return out_eager, out_fast, fast


def close(a, b, tol=1e-4):
    assert torch.allclose(a, b, atol=tol, rtol=tol), float((a - b).abs().max())


# --- compiled chains are the eager chains --------------------------------------------------------------------------

SAMPLERS = {
    'langevin': lambda m, c: LangevinDynamics(m, step_size=0.01, noise_scale=0.7, compile=c),
    'langevin-scheduled-clip-box': lambda m, c: _clipped(LangevinDynamics(m, step_size=LinearScheduler(0.02, 0.002, 15),
                                                                          clamp=(-2.5, 2.5), compile=c)),
    'hmc': lambda m, c: HamiltonianMonteCarlo(m, step_size=0.6, n_leapfrog_steps=3, compile=c),
    'hmc-mass-scheduled': lambda m, c: HamiltonianMonteCarlo(m, step_size=LinearScheduler(0.9, 0.3, 15), n_leapfrog_steps=3,
                                                             mass=torch.tensor([1.0, 2.0, 0.5]), compile=c),
    'mala': lambda m, c: MALA(m, step_size=0.5, compile=c),
    'underdamped-baoab-mass': lambda m, c: UnderdampedLangevin(m, step_size=0.2, friction=0.5, mass=torch.tensor([1.0, 2.0, 0.5]),
                                                               compile=c),
    'underdamped-obabo-scheduled': lambda m, c: UnderdampedLangevin(m, step_size=LinearScheduler(0.3, 0.1, 15), friction=1.5,
                                                                    integrator='obabo', compile=c),
    'underdamped-aboba': lambda m, c: UnderdampedLangevin(m, step_size=0.2, integrator='aboba', compile=c),
}


def _clipped(sampler):
    sampler.grad_clip = 0.3
    return sampler


@pytest.mark.parametrize('name', list(SAMPLERS))
def test_compiled_trajectory_equals_eager_on_an_mlp(name):
    model = mlp()
    (traj_e, diag_e), (traj_c, diag_c), fast = pair(lambda c: SAMPLERS[name](model, c), return_trajectory=True,
                                                    return_diagnostics=True)
    close(traj_c, traj_e)
    assert set(diag_c) == set(diag_e)
    if 'acceptance_rate' in diag_e:
        assert torch.equal(diag_c['acceptance_rate'], diag_e['acceptance_rate'])
        assert 0.05 < float(diag_e['acceptance_rate'].mean()) < 1.0   # a real Metropolis test, not all-accept
    close(diag_c['mean'], diag_e['mean'])
    assert fast.compile_stats.calls == 15


ANALYTIC = {
    'gaussian': lambda: GaussianModel(torch.tensor([1.0, -1.0, 0.5]), torch.tensor([[1.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 1.0]])),
    'double-well': lambda: DoubleWellModel(barrier_height=2.0),
    'rosenbrock': lambda: RosenbrockModel(),
}


@pytest.mark.parametrize('energy', list(ANALYTIC))
@pytest.mark.parametrize('kind', ['langevin', 'hmc'])
def test_compiled_equals_eager_on_closed_forms(energy, kind):
    model = ANALYTIC[energy]()
    make = SAMPLERS[kind]
    step = {'rosenbrock': 0.002, 'gaussian': 0.1 if kind == 'langevin' else 0.4}.get(energy)   # Rosenbrock's valley is steep
    def build(c):
        s = make(model, c)
        if step is not None: s.step_size = step
        return s
    out_e, out_c, _ = pair(build, n_steps=10, x=0.3 * start())
    close(out_c, out_e)


def test_conditioning_reaches_the_compiled_model():
    class Shifted(BaseModel):
        def __init__(self):
            super().__init__()
            self.net = mlp().net
        def forward(self, x, y=None):
            e = self.net(x).squeeze(-1)
            return e if y is None else e + ((x - y) ** 2).sum(-1)
    model, y = Shifted(), torch.randn(B, D, generator=torch.Generator().manual_seed(4))
    for kind in ('langevin', 'hmc'):
        eager, fast = SAMPLERS[kind](model, False), SAMPLERS[kind](model, True)
        close(fast.sample(start(), n_steps=8, y=y, generator=2), eager.sample(start(), n_steps=8, y=y, generator=2))
        other = fast.sample(start(), n_steps=8, y=y + 3.0, generator=2)   # y is an input, not a constant of the graph
        close(other, eager.sample(start(), n_steps=8, y=y + 3.0, generator=2))


def test_seeded_compiled_runs_are_bit_identical():
    fast = SAMPLERS['hmc'](mlp(), True)
    a = fast.sample(start(), n_steps=10, generator=3)
    b = fast.sample(start(), n_steps=10, generator=3)
    assert torch.equal(a, b)


# --- NUTS: a subtree per graph on the CPU, a call per point elsewhere -----------------------------------------------

NUTS_TARGETS = {
    'mlp': lambda: mlp(),
    'gaussian': ANALYTIC['gaussian'],
    'ill-conditioned-mass': lambda: GaussianModel(torch.zeros(D), torch.diag(torch.tensor([0.01, 0.1, 1.0]))),
}


@pytest.fixture(params=['whole', 'points'])
def nuts_path(request, monkeypatch):
    "Run the compiled NUTS on the CPU both ways: one graph per subtree (the CPU's default), and one call per point."
    monkeypatch.setattr(CompiledSubtree, 'whole_subtree_devices', ('cpu',) if request.param == 'whole' else ())
    return request.param


def same_nuts_runs(model, x0, n_steps=12, kwargs=None, **sampler):
    "Seeded eager and compiled NUTS runs: trajectories to rounding, acceptance, and identical trees."
    runs = [NoUTurnSampler(model, compile=c, **sampler) for c in (False, True)]
    (te, de), (tc, dc) = (s.sample(x0, n_steps=n_steps, return_trajectory=True, return_diagnostics=True, generator=8,
                                   **(kwargs or {})) for s in runs)
    close(tc, te, tol=1e-4 if x0.dtype == torch.float32 else 1e-10)
    close(dc['acceptance_rate'], de['acceptance_rate'], tol=1e-5)
    for key in ('tree_depth', 'n_leapfrog', 'divergences'):
        assert torch.equal(runs[1].last_run_stats[key], runs[0].last_run_stats[key]), key
    return runs


@pytest.mark.parametrize('target', list(NUTS_TARGETS))
def test_compiled_nuts_equals_eager(target, nuts_path):
    model = NUTS_TARGETS[target]()
    scaled = target == 'ill-conditioned-mass'   # variances 0.01, 0.1, 1: mass Σ⁻¹, chains started in equilibrium
    mass = torch.tensor([100.0, 10.0, 1.0]) if scaled else None
    x0 = start() * torch.tensor([0.1, 0.1 ** 0.5, 1.0]) if scaled else start()
    eager, fast = same_nuts_runs(model, x0, step_size=0.2, mass=mass)
    assert 0.5 < float(eager.last_run_stats['n_leapfrog'].mean()) and fast.compile_stats.calls > 12


def test_compiled_nuts_equals_eager_on_deep_trees():
    "Step 0.05 on scales 0.1 … 1: mean tree depths near 5, so subtrees of 16 and 32 points, whose blocks of 4 to 16 are checked."
    model = GaussianModel(torch.zeros(D), torch.diag(torch.tensor([0.01, 0.1, 1.0])))
    eager, _ = same_nuts_runs(model, start() * torch.tensor([0.1, 0.1 ** 0.5, 1.0]), n_steps=6, step_size=0.05)
    assert float(eager.last_run_stats['tree_depth'].min()) > 4.4


def test_compiled_nuts_edge_cases_equal_eager():
    "One doubling at most; float64; an event of shape (2, 3) with an autograd energy; conditioning."
    model = GaussianModel(torch.zeros(D), torch.eye(D))
    same_nuts_runs(model, start(), step_size=0.8, max_tree_depth=1)
    same_nuts_runs(model.double(), start().double(), step_size=0.3, dtype=torch.float64)

    class Grid(BaseModel):   # a quadratic bowl over (2, 3) events, through autograd
        def forward(self, x): return 0.5 * (x * torch.arange(1.0, 7.0).reshape(2, 3) * x).sum((-1, -2))
    same_nuts_runs(Grid(), torch.randn(32, 2, 3, generator=torch.Generator().manual_seed(5)), step_size=0.2)

    class Shifted(BaseModel):
        def forward(self, x, y): return 0.5 * ((x - y) ** 2).sum(-1)
    y = torch.randn(B, D, generator=torch.Generator().manual_seed(4))
    eager, _ = same_nuts_runs(Shifted(), start(), kwargs={'y': y}, step_size=0.3)
    traj = eager.sample(start(), n_steps=30, generator=1, y=y)
    assert float((traj - y).mean().abs()) < 0.2   # the chains sit around y: conditioning reached the model


def test_compiled_nuts_counts_divergences_as_eagerly():
    model = ANALYTIC['double-well']()
    runs = [NoUTurnSampler(model, step_size=3.0, compile=c) for c in (False, True)]
    for s in runs: s.sample(start(), n_steps=5, generator=2)
    assert runs[0].last_run_stats['divergences'].sum() > 0
    assert torch.equal(runs[1].last_run_stats['divergences'], runs[0].last_run_stats['divergences'])


def test_compiled_nuts_does_not_recompile_across_runs_and_step_sizes():
    fast = NoUTurnSampler(mlp(), step_size=0.2, compile=True)
    fast.sample(start(), n_steps=10, generator=1)
    graphs = fast.compile_stats.graphs
    assert graphs <= 1   # one graph for every depth (dynamic from the first call), none if an earlier test compiled it
    fast.step_size = 0.15
    fast.sample(start(), n_steps=10, generator=2)
    assert fast.compile_stats.graphs == graphs


def test_a_subtree_is_one_compiled_call_on_the_cpu():
    fast = NoUTurnSampler(GaussianModel(torch.zeros(D), torch.eye(D)), step_size=0.3, compile=True)
    ctx = fast.context(generator=3)
    state = fast.init(start(), ctx)
    doublings, points = 0, 0
    for _ in range(8):
        state, info = fast.step(state, fast.current_params(), ctx)
        depth = int(info.extras['tree_depth'].max())   # the batch doubles as often as its deepest tree
        doublings, points = doublings + depth, points + 2 ** depth - 1
    assert fast.compile_stats.calls == doublings and points > 2 * doublings   # a call per subtree, none per point


def test_subtree_levels_and_the_joint_closed_form_in_the_kernel():
    assert subtree_levels(4).tolist() == [4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4]
    g = GaussianModel(torch.tensor([0.5, -1.0]), torch.tensor([[1.0, 0.3], [0.3, 0.5]]))
    x = torch.randn(9, 2, generator=torch.Generator().manual_seed(1))
    energy, gradient = traced_energy_and_gradient(g, x)   # one product for both, the very numbers of forward and gradient
    assert torch.equal(energy, g(x)) and torch.equal(gradient, g.gradient(x))


# --- SG-MCMC on minibatches ----------------------------------------------------------------------------------------

class SquaredError(nn.Module):
    "Σ_batch ½(y − θ·x)², one energy per chain."
    def forward(self, theta, batch):
        inputs, targets = batch
        return 0.5 * (targets - theta @ inputs.T).square().sum(-1)


def regression(n=96, seed=3):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, D, generator=g)
    return X, X @ torch.tensor([1.0, -2.0, 0.5]) + 0.3 * torch.randn(n, generator=g)


SG = {
    'sgld-prior-scheduled': lambda data, c: SGLD(SquaredError(), data, step_size=LinearScheduler(0.004, 0.001, 12), batch_size=16,
                                                 prior=lambda t: 0.5 * t.square().sum(-1), compile=c),
    'psgld': lambda data, c: SGLD(SquaredError(), data, step_size=0.003, batch_size=16, preconditioned=True, compile=c),
    'sghmc': lambda data, c: SGHMC(SquaredError(), data, step_size=0.002, friction=0.3, noise_estimate=0.1, batch_size=16,
                                   compile=c),
}


@pytest.mark.parametrize('kind', list(SG))
def test_compiled_sg_samplers_equal_eager_on_tensor_data(kind):
    data = regression()
    runs = [SG[kind](data, c) for c in (False, True)]
    eager, fast = (s.sample(torch.zeros(B, D), n_steps=12, return_trajectory=True, generator=4) for s in runs)
    close(fast, eager)
    assert runs[1].compile_stats.calls == 12 and runs[1].compile_stats.graphs <= 2


def test_compiled_sgld_on_a_data_loader_with_a_short_last_batch():
    X, y = regression(n=40)
    def make(c):
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=16)   # 16, 16, 8
        return SGLD(SquaredError(), loader, step_size=0.003, compile=c)
    runs = [make(c) for c in (False, True)]
    eager, fast = (s.sample(torch.zeros(B, D), n_steps=9, return_trajectory=True, generator=1) for s in runs)
    close(fast, eager)
    assert runs[1].compile_stats.graphs <= 2   # the batch of 8 recompiles at most once


def test_compiled_sg_checks_the_model_like_the_eager_step():
    class Pooled(nn.Module):
        def forward(self, theta, batch): return SquaredError()(theta, batch).sum()
    with pytest.raises(ValueError, match='one energy per chain'):
        SGLD(Pooled(), regression(), compile=True).sample(torch.zeros(4, D), n_steps=1)


# --- one graph, and no recompilation ----------------------------------------------------------------------------

@pytest.mark.parametrize('kind', ['langevin', 'hmc', 'mala', 'underdamped-baoab-mass'])
@pytest.mark.parametrize('energy', ['mlp', 'gaussian', 'double-well', 'harmonic'])
def test_kernels_trace_as_one_graph(kind, energy):
    model = {'mlp': mlp, 'harmonic': HarmonicModel, **ANALYTIC}[energy]()
    report = explain_step(SAMPLERS[kind](model, True), start())
    assert report.one_graph and report.reason is None, report.reason


def test_a_graph_break_is_explained_and_refused():
    class Branchy(nn.Module):
        def forward(self, x):
            e = 0.5 * (x ** 2).sum(-1)
            return e / e.mean() if e.mean() > 100.0 else e
    for kind in ('langevin', 'hmc'):
        sampler = SAMPLERS[kind](Branchy(), True)
        report = explain_step(sampler, start())
        assert not report.one_graph and 'Data-dependent branching' in report.reason and 'forward' in report.reason
        with pytest.raises(RuntimeError, match='cannot be compiled as one graph'):
            sampler.sample(start(), n_steps=1)


def test_schedules_runs_and_new_samplers_do_not_recompile():
    model = mlp()
    fast = LangevinDynamics(model, step_size=LinearScheduler(0.05, 0.001, 20), compile=True)
    fast.sample(start(), n_steps=20, generator=0)
    graphs = fast.compile_stats.graphs
    assert graphs <= 1   # 0 when an earlier test compiled this kernel for this architecture already
    fast.step_size = 0.003                                    # a new constant value: an input, not a constant
    fast.sample(start(), n_steps=5, generator=1)
    twin = LangevinDynamics(mlp(seed=1), step_size=0.01, compile=True)   # other weights, same architecture
    twin.sample(start(), n_steps=5, generator=1)
    assert fast.compile_stats.graphs == graphs and twin.compile_stats.graphs == 0
    assert fast.compile_stats.calls == 25 and fast.compile_stats.seconds >= 0.0


def test_training_the_model_does_not_recompile_and_matches_eager():
    def train(compile):
        model = mlp()
        sampler = LangevinDynamics(model, step_size=0.01, noise_scale=0.1)
        loss_fn = ContrastiveDivergence(model, sampler, k_steps=5, init_steps=0, new_sample_ratio=0.0, compile=compile)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        data, losses = start(5), []
        for i in range(4):
            opt.zero_grad()
            loss, _ = loss_fn(data, generator=i)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        return torch.tensor(losses), sampler
    eager, _ = train(False)
    fast, sampler = train(True)
    assert sampler.compiled
    close(fast, eager, tol=1e-4)
    assert sampler.compile_stats.graphs <= 1 and sampler.compile_stats.calls == 20


def test_persistent_cd_passes_compile_to_its_sampler():
    model = mlp()
    sampler = HamiltonianMonteCarlo(model, step_size=0.1, n_leapfrog_steps=2)
    PersistentContrastiveDivergence(model, sampler, buffer_size=32, compile=True)
    assert sampler.compiled


def test_parallel_tempering_runs_the_compiled_step_on_tempered_energies():
    def run(compile):
        model = mlp()
        pt = ParallelTempering(LangevinDynamics(model, step_size=0.01, compile=compile), temperatures=[1.0, 2.0, 4.0])
        return pt.sample(start(), n_steps=6, generator=5)
    close(run(True), run(False))


# --- non-finite chains ------------------------------------------------------------------------------------------

class Cliff(BaseModel):
    "½‖x‖² for x₀ < 1.5, NaN beyond: chains started past the cliff have non-finite energies."
    def forward(self, x):
        e = 0.5 * (x ** 2).sum(-1)
        return torch.where(x[:, 0] < 1.5, e, torch.full_like(e, float('nan')))


class Steep(BaseModel):
    "Σ x⁴: Langevin with a large step overflows to inf and NaN."
    def forward(self, x): return (x ** 4).sum(-1)


NONFINITE = {   # a sampler, its model and a start that make some chains non-finite
    'langevin': (lambda c: LangevinDynamics(Steep(), step_size=0.5, compile=c), lambda: 3.0 * start()),
    'hmc': (lambda c: HamiltonianMonteCarlo(Cliff(), step_size=0.3, n_leapfrog_steps=2, compile=c),
            lambda: start() + torch.tensor([2.0, 0.0, 0.0]) * (torch.arange(B) % 2 == 0).unsqueeze(1)),
}


@pytest.mark.parametrize('kind', list(NONFINITE))
def test_nonfinite_chains_are_reported_as_eagerly(kind):
    make, x0 = NONFINITE[kind]
    def run(compile):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            out = make(compile).sample(x0(), n_steps=6, generator=1)
        return out, [str(w.message) for w in caught if 'non-finite' in str(w.message)]
    (out_e, said_e), (out_c, said_c) = run(False), run(True)
    assert said_e and said_c == said_e, (said_e, said_c)
    assert torch.equal(torch.isfinite(out_c), torch.isfinite(out_e))


# --- bad input ----------------------------------------------------------------------------------------------------

class Counting(nn.Module):
    calls = 0
    def forward(self, x):
        Counting.calls += 1
        return 0.5 * (x ** 2).sum(-1)


class NoisyHeun:
    pass


BAD = {
    'langevin-string': (lambda m: LangevinDynamics(m, compile='yes'), TypeError, 'compile'),
    'langevin-int': (lambda m: LangevinDynamics(m, compile=1), TypeError, 'compile'),
    'hmc-none': (lambda m: HamiltonianMonteCarlo(m, compile=None), TypeError, 'compile'),
    'mala-float': (lambda m: MALA(m, compile=1.0), TypeError, 'compile'),
    'langevin-heun': (lambda m: LangevinDynamics(m, integrator='heun', compile=True), ValueError, 'Euler–Maruyama'),
    'nuts-string': (lambda m: NoUTurnSampler(m, step_size=0.1, compile='on'), TypeError, 'compile'),
    'descent-attribute': (lambda m: setattr(GradientDescentSampler(m, step_size=0.1), 'compiled', True), ValueError,
                          'no compiled step'),
    'underdamped-string': (lambda m: UnderdampedLangevin(m, compile='on'), TypeError, 'compile'),
    'sgld-int': (lambda m: SGLD(m, regression(), compile=0), TypeError, 'compile'),
    'sghmc-none': (lambda m: SGHMC(m, regression(), compile=None), TypeError, 'compile'),
    'cd-string': (lambda m: ContrastiveDivergence(m, LangevinDynamics(m), compile='true'), TypeError, 'compile'),
    'cd-duck-sampler': (lambda m: ContrastiveDivergence(m, _Duck(m), compile=True), TypeError, 'library sampler'),
    'cd-descent': (lambda m: ContrastiveDivergence(m, GradientDescentSampler(m, step_size=0.1), compile=True), ValueError,
                   'no compiled step'),
    'mixed-precision-model': (lambda m: LangevinDynamics(_mixed(), compile=True), ValueError, 'use_mixed_precision'),
}


class _Duck:
    def __init__(self, model): self.model = model
    def sample(self, x=None, n_steps=1, **kw): return x


def _mixed():
    model = mlp()
    model.use_mixed_precision = True
    return model


@pytest.mark.parametrize('case', list(BAD))
def test_bad_compile_values_are_refused_before_any_work(case):
    make, error, words = BAD[case]
    Counting.calls = 0
    with pytest.raises(error) as info:
        make(Counting())
    message = str(info.value)
    assert 'compile' in message and words in message, message
    assert Counting.calls == 0


def test_sensible_values_still_work():
    for c in (False, True):
        s = LangevinDynamics(HarmonicModel(), step_size=0.1, compile=c)
        assert s.compiled is c and s.compile_problem() is None
    s.compiled = False
    assert s.compiled is False and s.compile_stats.calls == 0


def test_explain_step_says_nuts_has_no_single_graph():
    with pytest.raises(ValueError, match='no kernel to trace'):
        explain_step(NoUTurnSampler(HarmonicModel(), step_size=0.1, compile=True), start())
