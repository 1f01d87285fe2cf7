"""Statistical and structural tests of the No-U-Turn sampler (nbs/20_samplers/08_nuts.ipynb) beyond the notebook.

Tolerances are Z = 4 Monte-Carlo standard errors computed from the sample itself; the moments come from the final
states of independent chains (i.i.d. draws), as in test_statistics.py, whose helpers are reused. The lockstep,
iterative tree is also checked point for point against a scalar transcription of the recursive algorithm.
"""
import math
from collections import Counter

import numpy as np
import pytest
import torch
from scipy import stats

from test_statistics import TiltedDoubleWell, Z, assert_cov_within, assert_mean_within, right_well_probability, seed
from torchebm_nb.core import BaseModel, GaussianModel, HarmonicModel
from torchebm_nb.core.mcmc import Force
from torchebm_nb.samplers import NUTS, window_adaptation
from torchebm_nb.samplers.hmc import kinetic_energy


# ---- a scalar, recursive transcription (Hoffman & Gelman 2014; Betancourt 2017; Stan's extra checks) -----------

class Banana(BaseModel):
    """A curved, non-Gaussian 3-D energy with a closed-form gradient."""
    def forward(self, x):
        bend = (x[..., 1] - 0.5 * x[..., 0] ** 2) / 0.7
        return 0.5 * (x[..., 0] / 2) ** 2 + 0.5 * bend ** 2 + 4.5 * x[..., 2] ** 2 + 0.1 * x[..., 2] ** 4

    def gradient(self, x, model_kwargs=None):
        r = (x[..., 1] - 0.5 * x[..., 0] ** 2) / 0.49
        return torch.stack([x[..., 0] / 4 - r * x[..., 0], r, 9 * x[..., 2] + 0.4 * x[..., 2] ** 3], -1)


class RecursiveNUTS:
    """One chain, float64, recursion as in the papers: build_tree(depth) = two build_tree(depth − 1) and a merge."""
    def __init__(self, model, step, inverse_mass, max_depth, max_energy_error, uniform):
        self.model, self.step, self.inverse_mass = model, step, inverse_mass
        self.max_depth, self.max_energy_error, self.uniform = max_depth, max_energy_error, uniform

    def energy(self, x): return float(self.model(torch.as_tensor(x)))
    def grad(self, x): return self.model.gradient(torch.as_tensor(x)[None])[0].numpy()
    def hamiltonian(self, x, p): return self.energy(x) + 0.5 * float(np.sum(p * p * self.inverse_mass))

    def keeps_going(self, p_minus, p_plus, rho):
        return np.dot(p_minus * self.inverse_mass, rho) > 0 and np.dot(p_plus * self.inverse_mass, rho) > 0

    def build(self, z, direction, depth):
        """A subtree of 2^depth points after z: dict(valid, end, first, last, rho, log_weight, sample)."""
        if depth == 0:
            x, p, g = z
            h = direction * self.step
            p = p - 0.5 * h * g
            x = x + h * self.inverse_mass * p
            g = self.grad(x)
            p = p - 0.5 * h * g
            error = self.hamiltonian(x, p) - self.h0
            if not math.isfinite(error): error = math.inf
            self.n_leapfrog += 1
            self.accept_sum += min(1.0, math.exp(-error))
            diverged = error > self.max_energy_error
            self.diverging |= diverged
            return dict(valid=not diverged, end=(x, p, g), first=p, last=p, rho=p.copy(), log_weight=-error, sample=x)
        left = self.build(z, direction, depth - 1)
        if not left['valid']: return left
        right = self.build(left['end'], direction, depth - 1)
        if not right['valid']: return right
        log_weight = np.logaddexp(left['log_weight'], right['log_weight'])
        sample = right['sample'] if self.uniform() < math.exp(right['log_weight'] - log_weight) else left['sample']
        rho = left['rho'] + right['rho']
        valid = (self.keeps_going(left['first'], right['last'], rho)
                 and self.keeps_going(left['first'], right['first'], left['rho'] + right['first'])
                 and self.keeps_going(left['last'], right['last'], right['rho'] + left['last']))
        return dict(valid=valid, end=right['end'], first=left['first'], last=right['last'], rho=rho,
                    log_weight=log_weight, sample=sample)

    def transition(self, x, p, directions):
        g = self.grad(x)
        self.h0, self.n_leapfrog, self.accept_sum, self.diverging = self.hamiltonian(x, p), 0, 0.0, False
        ends = {1: (x, p, g), -1: (x, p, g)}
        rho, log_weight, sample, depth = p.copy(), 0.0, x, 0
        while depth < self.max_depth:
            d = directions[depth]
            adjacent, far = ends[d][1], ends[-d][1]
            sub = self.build(ends[d], d, depth)
            depth += 1
            if not sub['valid']: break
            ends[d] = sub['end']
            if self.uniform() < math.exp(sub['log_weight'] - log_weight): sample = sub['sample']
            log_weight = np.logaddexp(log_weight, sub['log_weight'])
            joined = rho + sub['rho']
            going = (self.keeps_going(far, sub['last'], joined)
                     and self.keeps_going(far, sub['first'], rho + sub['first'])
                     and self.keeps_going(adjacent, sub['last'], sub['rho'] + adjacent))
            rho = joined
            if not going: break
        return sample, depth, self.n_leapfrog, self.accept_sum / self.n_leapfrog, self.diverging


class Fed(NUTS):
    """NUTS with given momenta (standard normals) and a given stream of uniform draws (one (B,) tensor per draw)."""
    def __init__(self, *args, normals=None, uniforms=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.normals, self.uniforms = normals, uniforms

    def _draw_momentum(self, x, generator): return self.normals.clone()
    def _draw_uniform(self, x, generator): return next(self.uniforms).clone()
    def _draw_uniforms(self, x, n, generator): return torch.stack([self._draw_uniform(x, generator) for _ in range(n)])


def one_step(sampler, x0):
    "One NUTS iteration from x0 through the public step protocol: (new state, StepInfo)."
    ctx = sampler.context()
    return sampler.step(sampler.init(x0, ctx), sampler.current_params(), ctx)


def uniform_stream(directions, max_depth, n, generator):
    """The lockstep transition's draws in order: per doubling j a direction, 2^j point picks and one subtree pick."""
    for j in range(max_depth):
        yield directions[j]
        for _ in range(2 ** j + 1): yield torch.rand(n, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize('step,max_depth,max_energy_error', [(0.1, 6, 1000.0), (0.35, 4, 1000.0), (0.9, 6, 1000.0),
                                                             (0.6, 5, 2.0)])
def test_lockstep_tree_matches_the_recursive_algorithm_point_for_point(step, max_depth, max_energy_error):
    """Tree depth, leapfrog count, acceptance statistic and divergence depend only on the momenta and directions."""
    n, mass = 150, torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    g = seed(20)
    x0 = torch.randn(n, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 1.0, 0.3], dtype=torch.float64)
    normals = torch.randn(n, 3, generator=g, dtype=torch.float64)
    directions = torch.rand(max_depth, n, generator=g, dtype=torch.float64)
    model = Banana(dtype=torch.float64)
    sampler = Fed(model, step_size=step, max_tree_depth=max_depth, max_energy_error=max_energy_error, mass=mass,
                  dtype=torch.float64, normals=normals, uniforms=uniform_stream(directions, max_depth, n, seed(21)))
    state, info = one_step(sampler, x0.clone())
    accept = info.acceptance
    rng = np.random.default_rng(0)
    reference = RecursiveNUTS(model, step, (1 / mass).numpy(), max_depth, max_energy_error, rng.random)
    rows = [reference.transition(x0[b].numpy(), (normals[b] * mass.sqrt()).numpy(),
                                 [1 if directions[j, b] < 0.5 else -1 for j in range(max_depth)])[1:] for b in range(n)]
    depth, n_leapfrog, accept_ref, diverging = (np.array(c) for c in zip(*rows))
    np.testing.assert_array_equal(info.extras['tree_depth'].numpy(), depth)
    np.testing.assert_array_equal(info.extras['n_leapfrog'].numpy(), n_leapfrog)
    np.testing.assert_array_equal(info.extras['diverging'].numpy(), diverging)
    np.testing.assert_allclose(accept.numpy(), accept_ref, rtol=1e-10, atol=1e-12)
    assert depth.min() < depth.max()   # the batch mixes short and long trees


@pytest.mark.parametrize('step', [0.15, 0.5])
def test_the_draw_from_a_trajectory_has_the_recursive_algorithms_law(step):
    """One starting point and momentum, repeated: the distribution over the trajectory's points is the recursive one."""
    n, max_depth, mass = 3000, 6, torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    g = seed(22)
    x0 = torch.tensor([1.5, 0.4, -0.2], dtype=torch.float64)
    normal = torch.randn(3, generator=g, dtype=torch.float64)
    directions = torch.rand(max_depth, 1, generator=g, dtype=torch.float64)
    model = Banana(dtype=torch.float64)
    stream = (u.expand(n) if u.shape[0] == 1 else u for u in uniform_stream(directions, max_depth, n, seed(23)))
    sampler = Fed(model, step_size=step, max_tree_depth=max_depth, mass=mass, dtype=torch.float64,
                  normals=normal.expand(n, 3), uniforms=stream)
    ours = sampler.sample(x=x0.expand(n, 3), n_steps=1)
    rng = np.random.default_rng(1)
    reference = RecursiveNUTS(model, step, (1 / mass).numpy(), max_depth, 1000.0, rng.random)
    signs = [1 if directions[j, 0] < 0.5 else -1 for j in range(max_depth)]
    theirs = [reference.transition(x0.numpy(), (normal * mass.sqrt()).numpy(), signs)[0] for _ in range(n)]
    key = lambda rows: Counter(tuple(np.round(r, 9)) for r in rows)
    a, b = key(ours.numpy()), key(np.array(theirs))
    assert set(a) == set(b) and len(a) > 1, (len(a), len(b))
    table = np.array([[a[k] for k in a], [b[k] for k in a]])
    assert stats.chi2_contingency(table)[1] > 1e-3, table


# ---- exactness ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize('step', [0.2, 0.8, 1.5, 1.9, 2.5])
def test_one_transition_from_the_target_leaves_it_invariant(step):
    """Detailed balance, seen through one transition from exact N(0, I) draws: mean, variance and fourth moment stay.
    At h = 2.5 leapfrog is unstable on N(0, 1): trees end at once (a U-turn) or diverge; the law must still hold."""
    n = 40_000
    x0 = torch.randn(n, 3, generator=seed(30), dtype=torch.float64)
    sampler = NUTS(HarmonicModel(dtype=torch.float64), step_size=step, max_tree_depth=6, dtype=torch.float64)
    x = sampler.sample(x=x0, n_steps=1, generator=seed(31))
    moved = (x != x0).any(1).double().mean().item()
    assert moved > 0.02, moved
    assert_mean_within(x, torch.zeros(3, dtype=torch.float64), f'h = {step}: mean')
    for power, exact in ((2, 1.0), (4, 3.0)):
        m = x ** power
        z = ((m.mean(0) - exact) / (m.std(0) / math.sqrt(n))).abs()
        assert bool((z < Z).all()), f"h = {step}: E[x^{power}] off by |z| up to {z.max():.2f}"
    if step > 2: assert sampler.last_run_stats['divergences'].item() > n / 100


def test_one_transition_keeps_the_tilted_double_well():
    """The same check on a non-Gaussian target, from exact draws (inverse CDF on a fine grid)."""
    grid = torch.linspace(-3, 3, 200_001, dtype=torch.float64)
    density = torch.exp(-TiltedDoubleWell()(grid[:, None]))
    cdf = density.cumsum(0) / density.sum()
    n = 40_000
    x0 = grid[torch.searchsorted(cdf, torch.rand(n, generator=seed(32), dtype=torch.float64)).clamp(max=grid.numel() - 1)]
    weights = density / density.sum()
    for step in (0.3, 1.0):
        x = NUTS(TiltedDoubleWell(dtype=torch.float64), step_size=step, dtype=torch.float64).sample(
            x=x0[:, None], n_steps=1, generator=seed(33))[:, 0]
        for f in (lambda v: v, lambda v: v.square(), lambda v: (v > 0).double()):
            values, exact = f(x), (f(grid) * weights).sum()
            z = abs((values.mean() - exact) / (values.std() / math.sqrt(n)))
            assert z < Z, (step, float(values.mean()), float(exact))


def test_50d_gaussian_with_a_preconditioning_mass():
    """Standard deviations 0.1 … 10 with mass 1/σ²: one step size serves every coordinate; moments within MC error."""
    scales = torch.logspace(-1, 1, 50, dtype=torch.float64)
    model = GaussianModel(torch.zeros(50, dtype=torch.float64), torch.diag(scales.square()), dtype=torch.float64)
    sampler = NUTS(model, step_size=0.5, mass=scales.square().reciprocal(), dtype=torch.float64)
    x, diag = sampler.sample(x=torch.randn(4000, 50, generator=seed(34), dtype=torch.float64), n_steps=25,
                             return_diagnostics=True, generator=seed(35))
    assert diag['acceptance_rate'][5:].mean() > 0.6
    assert sampler.last_run_stats['divergences'].sum() == 0
    assert_mean_within(x, torch.zeros(50, dtype=torch.float64), 'NUTS 50-D mean')
    z = ((x.var(0) - scales.square()) / (scales.square() * math.sqrt(2 / (x.shape[0] - 1)))).abs()
    assert bool((z < Z).all()), f"NUTS 50-D variances: |z| up to {z.max():.2f}"


def test_ill_conditioned_2d_gaussian():
    """Correlation 0.995 and scales 1 and 3 (condition number ≈ 3000): deep trees, exact moments."""
    sd = torch.tensor([1.0, 3.0], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.995], [0.995, 1.0]], dtype=torch.float64) * sd[:, None] * sd[None, :]
    mean = torch.tensor([1.0, -2.0], dtype=torch.float64)
    sampler = NUTS(GaussianModel(mean, cov, dtype=torch.float64), step_size=0.1, dtype=torch.float64)
    x = sampler.sample(n_samples=4000, n_steps=20, generator=seed(36))
    assert sampler.last_run_stats['tree_depth'][5:].mean() > 4
    assert_mean_within(x, mean, 'NUTS ill-conditioned mean')
    assert_cov_within(x, cov, 'NUTS ill-conditioned covariance')


def test_double_well_occupancy_matches_quadrature():
    """Every chain starts in the left well; after 150 iterations the right well holds its quadrature share."""
    x = NUTS(TiltedDoubleWell(dtype=torch.float64), step_size=0.25, dtype=torch.float64).sample(
        x=-torch.ones(8000, 1, dtype=torch.float64), n_steps=150, generator=seed(37))
    right = (x > 0).double()
    assert_mean_within(right, torch.tensor([right_well_probability()], dtype=torch.float64), 'NUTS right-well occupancy')


# ---- lockstep masking ----------------------------------------------------------------------------------------

def test_a_chain_is_unaffected_by_the_rest_of_its_batch():
    """Chains that finish early are masked while the others keep doubling: run alone, with the same draws, every
    chain ends in the same place after the same tree."""
    n, max_depth = 64, 7
    g = seed(40)
    x0 = torch.randn(n, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 1.0, 0.3], dtype=torch.float64)
    normals = torch.randn(n, 3, generator=g, dtype=torch.float64)
    directions = torch.rand(max_depth, n, generator=g, dtype=torch.float64)
    draws = list(uniform_stream(directions, max_depth, n, seed(41)))
    model = Banana(dtype=torch.float64)
    def run(rows):
        sampler = Fed(model, step_size=0.2, max_tree_depth=max_depth, dtype=torch.float64, normals=normals[rows],
                      uniforms=iter([d[rows] for d in draws]))
        state, info = one_step(sampler, x0[rows].clone())
        return {'x': state.x, **info.extras}
    batch = run(torch.arange(n))
    assert batch['tree_depth'].min() < batch['tree_depth'].max()
    for rows in (torch.arange(0, n, 2), batch['tree_depth'].argsort()[:5], batch['tree_depth'].argsort()[-3:]):
        alone = run(rows)
        assert torch.equal(alone['tree_depth'], batch['tree_depth'][rows])
        assert torch.equal(alone['n_leapfrog'], batch['n_leapfrog'][rows])
        torch.testing.assert_close(alone['x'], batch['x'][rows], rtol=0, atol=1e-12)


def test_finished_chains_keep_their_tree_during_a_doubling():
    sampler = NUTS(HarmonicModel(dtype=torch.float64), step_size=0.3, dtype=torch.float64)
    ctx = sampler.context()
    state = sampler.init(torch.randn(10, 2, generator=seed(42), dtype=torch.float64), ctx)
    x, p, f = state.x, torch.randn(10, 2, generator=seed(43), dtype=torch.float64), state.force
    tree = {'left': (x, p, f), 'right': (x, p, f), 'sample': (x, state.energy, f), 'h0': kinetic_energy(p) + state.energy,
            'log_weight': torch.zeros(10, dtype=torch.float64), 'momentum_sum': p}
    done = torch.arange(10) % 2 == 0
    chains = {'done': done.clone(), 'diverging': torch.zeros(10, dtype=torch.bool), 'tree_depth': torch.zeros(10, dtype=torch.long),
              'n_leapfrog': torch.zeros(10, dtype=torch.long), 'accept_sum': torch.zeros(10, dtype=torch.float64)}
    g = seed(44)
    force = Force(ctx)
    leapfrog = lambda point, h: sampler._leaf(point, h, 1.0, force)
    sampler._extend(tree, chains, torch.ones(10, dtype=torch.bool), 2, torch.full((10,), 0.3, dtype=torch.float64),
                    sampler.current_params(), leapfrog, lambda n: torch.rand(n, 10, generator=g, dtype=torch.float64))
    assert torch.equal(chains['n_leapfrog'][done], torch.zeros(5, dtype=torch.long))
    assert bool((chains['n_leapfrog'][~done] > 0).all())
    for key in ('left', 'right', 'sample'):
        for new, old in zip(tree[key], (x, p, f) if key != 'sample' else (x, state.energy, f)):
            assert torch.equal(new[done], old[done]), key
    assert torch.equal(tree['momentum_sum'][done], p[done]) and not torch.equal(tree['right'][0][~done], x[~done])


# ---- adaptation -----------------------------------------------------------------------------------------------

def test_window_adaptation_tunes_nuts_to_its_target_and_stays_exact():
    g = torch.Generator().manual_seed(50)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64) / math.sqrt(6)
    scales = torch.logspace(-0.5, 0.5, 6, dtype=torch.float64)
    cov = (a @ a.T + 0.3 * torch.eye(6, dtype=torch.float64)) * scales[:, None] * scales[None, :]
    mean = torch.randn(6, generator=g, dtype=torch.float64)
    sampler = NUTS(GaussianModel(mean, cov, dtype=torch.float64), step_size=1e-2, dtype=torch.float64)
    res = window_adaptation(sampler, n_samples=1000, n_warmup=150, adapt_mass=True, generator=51)
    assert abs(res.acceptance_rate - NUTS.optimal_acceptance) < 0.05, res.acceptance_rate
    x, d = sampler.sample(x=res.x, n_steps=20, return_diagnostics=True, generator=52)
    assert abs(float(d['acceptance_rate'].mean()) - 0.8) < 0.05
    assert_mean_within(x, mean, 'adapted NUTS mean')
    assert_cov_within(x, cov, 'adapted NUTS covariance')
