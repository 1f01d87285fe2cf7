"""Reference, statistical and distributed tests of the couplings (the notebooks hold the worked examples).

References: `scipy.optimize.linear_sum_assignment` (Jonker–Volgenant) for the exact assignment, a pure-Python scan for
the greedy heuristic, and the Sinkhorn plan itself for the distribution of the entropic draws.
"""
import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import torchebm_nb.couplings as couplings
from torchebm_nb.core.base_coupling import BaseCostCoupling, BaseCoupling, BaseModelCoupling, CouplingResult
from torchebm_nb.couplings import (ExactOTCoupling, GreedyCoupling, IndependentCoupling, ReflowCoupling,
                                   SinkhornCoupling, UnbalancedSinkhornCoupling, get_coupling, resolve_coupling)
from torchebm_nb.couplings.couplings import _auction_assignment, _draw_partners, _greedy_assignment, _sinkhorn_plan

NAMES = ['independent', 'ot', 'exact_ot', 'sinkhorn', 'greedy', 'unbalanced_sinkhorn']
COST_NAMES = ['ot', 'exact_ot', 'sinkhorn', 'greedy', 'unbalanced_sinkhorn']


def gen(seed): return torch.Generator().manual_seed(seed)


def clouds(n, seed, dim=2, shift=1.5, dtype=torch.float32):
    g = gen(seed)
    return torch.randn(n, dim, generator=g, dtype=dtype), torch.randn(n, dim, generator=g, dtype=dtype) + shift


def ring(n, seed, radius=4.0, std=0.3, dtype=torch.float32):
    "Noise N(0, I) and data from a ring of eight Gaussians: the typical multimodal flow-matching setting."
    g = gen(seed)
    angles = torch.randint(0, 8, (n,), generator=g) * (2 * math.pi / 8)
    data = radius * torch.stack([angles.cos(), angles.sin()], 1) + std * torch.randn(n, 2, generator=g)
    return torch.randn(n, 2, generator=g, dtype=dtype), data.to(dtype)


def total(cost, idx): return float(cost[np.arange(cost.shape[0]), idx].sum())


def scipy_total(cost):
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].sum())


def is_permutation(idx, n): return sorted(idx.tolist()) == list(range(n))


# ---------------------------------------------------------------------------------------------------------------
# package surface
# ---------------------------------------------------------------------------------------------------------------

def test_package_exports_exactly_the_contract_names():
    assert couplings.__all__ == ['get_coupling', 'resolve_coupling', 'CouplingResult', 'IndependentCoupling',
                                 'ExactOTCoupling', 'SinkhornCoupling', 'GreedyCoupling', 'UnbalancedSinkhornCoupling',
                                 'ReflowCoupling']
    for name in couplings.__all__: assert hasattr(couplings, name)
    assert couplings.CouplingResult is CouplingResult
    assert issubclass(ExactOTCoupling, BaseCostCoupling) and issubclass(SinkhornCoupling, BaseCostCoupling)
    assert issubclass(GreedyCoupling, BaseCostCoupling) and issubclass(UnbalancedSinkhornCoupling, BaseCostCoupling)
    assert issubclass(ReflowCoupling, BaseModelCoupling) and issubclass(IndependentCoupling, BaseCoupling)
    assert not issubclass(IndependentCoupling, (BaseCostCoupling, BaseModelCoupling))


def test_coupling_result_unpacks_as_the_pair_only():
    x0, x1, w = torch.zeros(3, 2), torch.ones(3, 2), torch.ones(3)
    result = CouplingResult(x0, x1, w)
    a, b = result
    assert a is x0 and b is x1 and result.weights is w
    assert len(list(result)) == 2
    with pytest.raises(Exception, match='cannot assign'): result.weights = None


# ---------------------------------------------------------------------------------------------------------------
# exact OT: the auction against scipy
# ---------------------------------------------------------------------------------------------------------------

def cost_cases():
    "Random cost matrices of sizes 1-256: uniform, squared distances, integer ties, duplicated points, constants."
    rng = np.random.default_rng(0)
    sizes = [1, 2, 3, 4, 5, 7, 8, 13, 16, 31, 64, 100, 128, 256]
    for seed, n in enumerate(sizes):
        yield f'uniform-{n}', rng.random((n, n))
        x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + 1.0
        d = ((x[:, None] - y[None]) ** 2).sum(-1)
        yield f'sqdist-{n}', d / d.max()
        yield f'int-ties-{n}', rng.integers(0, 3, size=(n, n)).astype(float)
        points = rng.normal(size=(max(1, n // 4), 3))[rng.integers(0, max(1, n // 4), size=n)]  # many duplicates
        d = ((points[:, None] - points[rng.permutation(n)][None]) ** 2).sum(-1)
        yield f'duplicates-{n}', d / max(d.max(), 1e-300)
    for n in (1, 6, 50):
        yield f'constant-{n}', np.full((n, n), 0.3)
    for seed in range(40):                                    # many seeds at moderate sizes
        n = int(rng.integers(2, 40))
        yield f'seed{seed}-{n}', rng.random((n, n)) ** 3


CASES = list(cost_cases())


@pytest.mark.parametrize('name,cost', CASES, ids=[c[0] for c in CASES])
def test_auction_matches_scipy_to_1e9_relative_with_a_tight_tol(name, cost):
    idx = _auction_assignment(torch.from_numpy(cost), tol=1e-10)
    assert idx.dtype == torch.long and is_permutation(idx, cost.shape[0])
    ours, reference = total(cost, idx.numpy()), scipy_total(cost)
    assert ours >= reference - 1e-12
    assert ours - reference <= 1e-9 * abs(reference) + 1e-12, (ours, reference)


@pytest.mark.parametrize('name,cost', CASES, ids=[c[0] for c in CASES])
def test_auction_with_default_tol_is_within_its_bound(name, cost):
    "tol = 1e-4: the last phase has ε < tol/n, so the total is within n·ε < tol·(max C - min C) of the optimum."
    idx = _auction_assignment(torch.from_numpy(cost))
    assert is_permutation(idx, cost.shape[0])
    gap = total(cost, idx.numpy()) - scipy_total(cost)
    assert -1e-12 <= gap < 1e-4 * (cost.max() - cost.min()) + 1e-12


def test_auction_default_tol_is_exact_on_most_point_clouds():
    "Informational strength check: on 2-D point clouds the default tol almost always finds the optimum itself."
    exact = 0
    for seed in range(30):
        x0, x1 = clouds(64, seed, dtype=torch.float64)
        cost = ExactOTCoupling().compute_cost(x0, x1).numpy()
        exact += total(cost, _auction_assignment(torch.from_numpy(cost)).numpy()) - scipy_total(cost) <= 1e-9 * scipy_total(cost)
    assert exact >= 25


def test_auction_against_brute_force():
    rng = np.random.default_rng(1)
    for n in range(1, 7):
        for _ in range(5):
            cost = rng.random((n, n))
            best = min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(n)))
            assert abs(total(cost, _auction_assignment(torch.from_numpy(cost), tol=1e-10).numpy()) - best) < 1e-10


def test_exact_ot_coupling_end_to_end_matches_scipy_pairing_cost():
    for seed, (n, dim) in enumerate([(32, 2), (64, 5), (128, 2), (200, 3)]):
        x0, x1 = clouds(n, seed, dim=dim, dtype=torch.float64)
        out = ExactOTCoupling(tol=1e-10)(x0, x1)
        d = torch.cdist(x0, x1).square().numpy()
        ours = float((out.x0 - out.x1).pow(2).sum())
        assert abs(ours - scipy_total(d)) <= 1e-9 * scipy_total(d)
        assert torch.equal(out.x1.sort(0).values, x1.sort(0).values)     # a permutation of x1


def test_exact_ot_scale_invariance_and_translation():
    "Optimal pairs do not change when the data are scaled (the cost is normalised) or costs are shifted."
    x0, x1 = clouds(48, 3, dtype=torch.float64)
    a = ExactOTCoupling(tol=1e-10)(x0, x1).x1
    b = ExactOTCoupling(tol=1e-10)(1000 * x0, 1000 * x1).x1 / 1000
    assert torch.allclose(a, b)
    cost = torch.rand(20, 20, generator=gen(0), dtype=torch.float64)
    assert torch.equal(_auction_assignment(cost, tol=1e-10), _auction_assignment(5 * cost + 3, tol=1e-10))


def test_auction_rejects_non_finite_costs():
    with pytest.raises(ValueError, match='must be finite'):
        _auction_assignment(torch.tensor([[0.0, math.inf], [1.0, 0.0]]))


@pytest.mark.parametrize('tol,err,match', [(0, ValueError, 'tol must be positive'), (-1e-3, ValueError, 'tol must be positive'),
                                           ('1e-4', TypeError, 'tol must be a real number'),
                                           (math.nan, ValueError, 'tol must be finite')])
def test_exact_ot_validates_tol(tol, err, match):
    with pytest.raises(err, match=match): ExactOTCoupling(tol=tol)


# ---------------------------------------------------------------------------------------------------------------
# Sinkhorn
# ---------------------------------------------------------------------------------------------------------------

def test_sinkhorn_plan_marginals_converge_with_n_iters():
    x0, x1 = clouds(64, 0, dtype=torch.float64)
    cost = SinkhornCoupling().compute_cost(x0, x1)
    errors = []
    for n_iters in (1, 3, 10, 30, 100, 300):
        plan = _sinkhorn_plan(cost, 0.01, n_iters)
        assert torch.allclose(plan.sum(0), torch.full((64,), 1 / 64, dtype=torch.float64), atol=1e-14)  # columns exact
        errors.append((plan.sum(1) * 64 - 1).abs().max().item())
    assert all(later < earlier or later < 1e-13 for earlier, later in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-10 and errors[2] > 1e-4 and errors[0] > 1e-1


def test_sinkhorn_plan_approaches_the_exact_plan_as_reg_shrinks_and_independence_as_it_grows():
    x0, x1 = clouds(32, 1, dtype=torch.float64)
    cost = SinkhornCoupling().compute_cost(x0, x1)
    optimum = scipy_total(cost.numpy()) / 32
    values = [(_sinkhorn_plan(cost, reg, 2000) * cost).sum().item() for reg in (1.0, 0.1, 0.01, 0.003)]
    assert all(later < earlier for earlier, later in zip(values, values[1:]))
    assert values[-1] - optimum < 0.02 * optimum
    assert torch.allclose(_sinkhorn_plan(cost, 1e4, 50), torch.full((32, 32), 1 / 32 ** 2, dtype=torch.float64), rtol=1e-3)


def test_sinkhorn_draws_follow_the_rows_of_the_plan():
    "Each row's partner is a multinomial draw from its row: frequencies within 4.5 binomial standard errors."
    x0, x1 = clouds(5, 2)
    coupling = SinkhornCoupling(reg=0.2)
    plan = coupling.transport_plan(x0, x1).double()
    rows = plan / plan.sum(1, keepdim=True)
    n = 4000
    idx = _draw_partners(plan.repeat(n, 1), gen(0)).reshape(n, 5)           # n independent draws of every row
    counts = torch.zeros(5, 5, dtype=torch.float64)
    counts.index_put_((torch.arange(5).repeat(n), idx.flatten()), torch.ones(5 * n, dtype=torch.float64), accumulate=True)
    assert torch.equal(coupling._solve(coupling.compute_cost(x0, x1), generator=gen(1)),
                       _draw_partners(plan.float(), gen(1)))                  # _solve draws from this plan
    se = (rows * (1 - rows) / n).sqrt()
    assert ((counts / n - rows).abs() <= 4.5 * se + 1e-3).all()


def test_sinkhorn_pairs_are_cheaper_than_independent_and_sampled_with_replacement():
    duplicates = 0
    for seed in range(10):
        for x0, x1, factor in (clouds(128, seed) + (0.95,), ring(128, seed) + (0.7,)):
            out = SinkhornCoupling()(x0, x1, generator=seed)
            assert (out.x0 - out.x1).pow(2).sum(1).mean() < factor * (x0 - x1).pow(2).sum(1).mean()
            duplicates += 128 - len({tuple(r) for r in out.x1.tolist()})
            rows_of_x1 = {tuple(r) for r in x1.tolist()}
            assert all(tuple(r) in rows_of_x1 for r in out.x1.tolist())   # partners are rows of x1
    assert duplicates > 0


def test_sinkhorn_is_reproducible_with_a_generator_and_leaves_the_global_rng_alone():
    x0, x1 = clouds(64, 4)
    state = torch.get_rng_state()
    a = SinkhornCoupling()(x0, x1, generator=gen(11)).x1
    b = SinkhornCoupling()(x0, x1, generator=gen(11)).x1
    c = SinkhornCoupling()(x0, x1, generator=11).x1
    assert torch.equal(a, b) and torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(a, SinkhornCoupling()(x0, x1, generator=gen(12)).x1)


@pytest.mark.parametrize('kwargs,match', [({'reg': 0}, 'reg must be positive'), ({'reg': -0.1}, 'reg must be positive'),
                                          ({'n_iters': 0}, 'n_iters must be'), ({'n_iters': -3}, 'n_iters must be')])
def test_sinkhorn_validates_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match): SinkhornCoupling(**kwargs)
    with pytest.raises(ValueError, match=match): UnbalancedSinkhornCoupling(**kwargs)


# ---------------------------------------------------------------------------------------------------------------
# unbalanced Sinkhorn
# ---------------------------------------------------------------------------------------------------------------

def test_unbalanced_weights_are_positive_with_mean_one():
    for seed in range(5):
        x0, x1 = clouds(64, seed)
        out = UnbalancedSinkhornCoupling(reg_marginal=0.5)(x0, x1, generator=seed)
        assert out.weights.shape == (64,) and out.weights.dtype == torch.float32
        assert (out.weights > 0).all()
        assert abs(out.weights.mean().item() - 1) < 1e-5
        assert out.weights.std() > 1e-3                                   # non-trivial at small rho


def test_unbalanced_approaches_balanced_sinkhorn_as_reg_marginal_grows():
    x0, x1 = clouds(48, 5, dtype=torch.float64)
    balanced = SinkhornCoupling().transport_plan(x0, x1)
    distances = [(UnbalancedSinkhornCoupling(reg_marginal=rho).transport_plan(x0, x1) - balanced).abs().sum().item()
                 for rho in (0.1, 1.0, 10.0, 1e3, 1e6)]
    assert all(later < earlier for earlier, later in zip(distances, distances[1:])), distances
    assert distances[-1] < 1e-4
    weights = UnbalancedSinkhornCoupling(reg_marginal=1e6)(x0, x1).weights
    assert torch.allclose(weights, torch.ones_like(weights), atol=1e-4)
    # same plan, same generator: the same draws as balanced Sinkhorn
    assert torch.equal(UnbalancedSinkhornCoupling(reg_marginal=1e9)(x0, x1, generator=3).x1,
                       SinkhornCoupling()(x0, x1, generator=3).x1)


def test_unbalanced_down_weights_outliers():
    x0, x1 = clouds(40, 6)
    x0 = torch.cat([x0[:-2], torch.tensor([[-15.0, 0.0], [15.0, -15.0]])])
    weights = UnbalancedSinkhornCoupling(reg_marginal=0.2)(x0, x1, generator=0).weights
    assert weights[-2:].max() < 0.5 * weights[:-2].min()


def test_unbalanced_weights_follow_x0_dtype():
    x0, x1 = clouds(8, 7, dtype=torch.float64)
    assert UnbalancedSinkhornCoupling()(x0, x1).weights.dtype == torch.float64
    assert UnbalancedSinkhornCoupling()(x0.bfloat16(), x1.bfloat16()).weights.dtype == torch.bfloat16


# ---------------------------------------------------------------------------------------------------------------
# greedy
# ---------------------------------------------------------------------------------------------------------------

def reference_greedy(cost):
    n = cost.shape[0]
    order = sorted(range(n * n), key=lambda k: (cost.flat[k], k))
    out, used_rows, used_cols = [-1] * n, set(), set()
    for k in order:
        i, j = divmod(k, n)
        if i not in used_rows and j not in used_cols:
            out[i] = j; used_rows.add(i); used_cols.add(j)
    return out


def test_greedy_matches_a_plain_python_scan():
    rng = np.random.default_rng(2)
    for n in (1, 2, 3, 10, 33, 64):
        for cost in (rng.random((n, n)), rng.integers(0, 4, size=(n, n)).astype(float)):
            assert _greedy_assignment(torch.from_numpy(cost)).tolist() == reference_greedy(cost)


def test_greedy_is_a_permutation_between_exact_and_independent():
    "On multimodal data (noise to a ring of Gaussians). On two overlapping Gaussians greedy is no better than independent."
    for seed in range(15):
        x0, x1 = ring(96, seed, dtype=torch.float64)
        cost = GreedyCoupling().compute_cost(x0, x1)
        idx = _greedy_assignment(cost)
        assert is_permutation(idx, 96)
        greedy, exact = total(cost.numpy(), idx.numpy()), scipy_total(cost.numpy())
        independent = cost.diagonal().sum().item()
        assert exact - 1e-12 <= greedy <= independent


# ---------------------------------------------------------------------------------------------------------------
# the shared contract, for every coupling
# ---------------------------------------------------------------------------------------------------------------

def make(name):
    if name == 'reflow': return ReflowCoupling(lambda x: x.flip(0) * 2.0)
    return get_coupling(name)


ALL = NAMES + ['reflow']


@pytest.mark.parametrize('name', ALL)
@pytest.mark.parametrize('shape', [(2,), (3, 4, 4)])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.bfloat16])
def test_contract_shapes_dtypes_identity_of_x0(name, shape, dtype):
    g = gen(0)
    x0, x1 = torch.randn(12, *shape, generator=g).to(dtype), torch.randn(12, *shape, generator=g).to(dtype)
    out = make(name)(x0, x1, generator=0)
    assert isinstance(out, CouplingResult)
    assert out.x0 is x0
    assert out.x1.shape == (12, *shape) and out.x1.dtype == dtype and out.x1.device == x0.device
    if name in ('ot', 'exact_ot', 'greedy'):                                  # permutations of x1
        assert torch.equal(out.x1.flatten(1).sort(0).values, x1.flatten(1).sort(0).values)
    if name == 'unbalanced_sinkhorn': assert out.weights.shape == (12,)
    else: assert out.weights is None


@pytest.mark.parametrize('name', ALL)
def test_contract_no_gradient_tracking(name):
    x0 = torch.randn(10, 3, generator=gen(1)).requires_grad_()
    x1 = torch.randn(10, 3, generator=gen(2)).requires_grad_()
    out = make(name)(x0, x1, generator=0)
    assert out.x0 is x0
    if name == 'independent': assert out.x1 is x1                              # the identity: returned as given
    else: assert not out.x1.requires_grad and out.x1.grad_fn is None
    if out.weights is not None: assert not out.weights.requires_grad


@pytest.mark.parametrize('name', ALL)
def test_contract_batch_of_one_passes_through(name):
    x0, x1 = torch.randn(1, 4, generator=gen(3)), torch.randn(1, 4, generator=gen(4))
    out = make(name)(x0, x1)
    assert out.x0 is x0
    if name != 'reflow': assert out.x1 is x1
    if name == 'unbalanced_sinkhorn': assert torch.equal(out.weights, torch.ones(1))


@pytest.mark.parametrize('name', NAMES)
def test_contract_errors_of_pairing_families(name):
    x0, x1 = torch.randn(6, 2), torch.randn(5, 2)
    coupling = get_coupling(name)
    with pytest.raises(ValueError, match='needs batches of equal size; got 6 samples in x0 and 5 in x1'): coupling(x0, x1)
    with pytest.raises(ValueError, match='x1 must not be None'): coupling(x0)
    with pytest.raises(ValueError, match='x1 must not be None'): coupling.couple(x0, None)
    with pytest.raises(TypeError, match='x0 must be a torch.Tensor'): coupling(x0.tolist(), x0)


@pytest.mark.parametrize('name', COST_NAMES)
def test_cost_couplings_check_sample_shapes_and_devices(name):
    with pytest.raises(ValueError, match='needs samples of the same shape'): get_coupling(name)(torch.randn(4, 2), torch.randn(4, 3))
    with pytest.raises(ValueError, match='must be on the same device'):
        get_coupling(name)(torch.randn(4, 2), torch.randn(4, 2, device='meta'))


def test_call_is_an_alias_of_couple():
    x0, x1 = clouds(20, 8)
    assert torch.equal(SinkhornCoupling()(x0, x1, generator=5).x1, SinkhornCoupling().couple(x0, x1, generator=5).x1)
    assert torch.equal(ExactOTCoupling()(x0, x1).x1, ExactOTCoupling().couple(x0, x1).x1)


def test_model_coupling_ignores_x1():
    x0 = torch.randn(5, 2, generator=gen(9))
    coupling = ReflowCoupling(lambda x: x + 1)
    assert torch.equal(coupling(x0).x1, x0 + 1)
    assert torch.equal(coupling(x0, torch.zeros(3, 7)).x1, x0 + 1)


# ---------------------------------------------------------------------------------------------------------------
# process groups
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('cls', [ExactOTCoupling, GreedyCoupling, UnbalancedSinkhornCoupling])
def test_only_sinkhorn_accepts_a_process_group(cls):
    with pytest.raises(ValueError, match=f'{cls.__name__} does not support process_group'): cls(process_group=object())
    assert SinkhornCoupling(process_group=object()).process_group is not None


def test_conditioning_with_a_process_group_is_not_implemented():
    with pytest.raises(NotImplementedError, match=r"does not take conditioning kwargs \(got \['y'\]\)"):
        SinkhornCoupling(process_group=object())(torch.randn(4, 2), torch.randn(4, 2), y=torch.zeros(4))


WORKER = r"""
import sys, torch, torch.distributed as dist
torch.set_num_threads(1)
from torchebm_nb.couplings import SinkhornCoupling
rank, world_size, store, out_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
dist.init_process_group('gloo', init_method='file://' + store, rank=rank, world_size=world_size)
g = torch.Generator().manual_seed(100 + rank)
x0, x1 = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g) + 2
out = SinkhornCoupling(process_group=dist.group.WORLD)(x0, x1, generator=torch.Generator().manual_seed(7))
try:                                   # unequal batch sizes across ranks
    SinkhornCoupling(process_group=dist.group.WORLD)(x0[:4 + rank], x1[:4 + rank])
    unequal = 'no error'
except ValueError as e:
    unequal = str(e)
torch.save({'x0': x0, 'x1': x1, 'paired': out.x1, 'x0_is_x0': out.x0 is x0, 'unequal': unequal}, out_path)
dist.barrier()                         # neither rank tears the group down while the other still uses it
dist.destroy_process_group()
"""


def test_sinkhorn_with_a_process_group_couples_the_pooled_batches(tmp_path):
    "Two gloo ranks: the pooled problem is solved and drawn on rank 0; each rank keeps its rows."
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path(__file__).resolve().parents[2])}
    processes = [subprocess.Popen([sys.executable, '-c', WORKER, str(rank), '2', str(tmp_path / 'store'),
                                   str(tmp_path / f'rank{rank}.pt')], env=env, stderr=subprocess.PIPE) for rank in (0, 1)]
    for p in processes:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()[-2000:]
    results = [torch.load(tmp_path / f'rank{rank}.pt') for rank in (0, 1)]
    assert all(r['x0_is_x0'] for r in results)
    pooled_x0, pooled_x1 = torch.cat([r['x0'] for r in results]), torch.cat([r['x1'] for r in results])
    expected = SinkhornCoupling()(pooled_x0, pooled_x1, generator=gen(7)).x1      # what rank 0 solved and drew
    assert torch.equal(torch.cat([r['paired'] for r in results]), expected)
    other_rank_rows = [{tuple(v) for v in results[1 - rank]['x1'].tolist()} for rank in (0, 1)]
    assert any(tuple(row) in other_rank_rows[rank] for rank in (0, 1) for row in results[rank]['paired'].tolist())
    for r in results: assert 'same batch size on every rank; got [4, 5]' in r['unequal']


# ---------------------------------------------------------------------------------------------------------------
# reflow and the registry
# ---------------------------------------------------------------------------------------------------------------

def test_reflow_with_a_flow_sampler():
    FlowSampler = pytest.importorskip('torchebm_nb.samplers').FlowSampler

    class ConstantVelocity(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.velocity = torch.nn.Parameter(torch.tensor([3.0, -1.0]))
        def forward(self, x, t, **kwargs): return self.velocity.expand_as(x)

    x0 = torch.randn(6, 2, generator=gen(10))
    for sampler in (FlowSampler(ConstantVelocity()), FlowSampler(ConstantVelocity(), integrator='euler')):
        out = ReflowCoupling(sampler, n_steps=8)(x0, torch.zeros(6, 2))
        assert out.x0 is x0 and not out.x1.requires_grad
        assert torch.allclose(out.x1 - x0, torch.tensor([3.0, -1.0]).expand(6, 2), atol=1e-5)


def test_reflow_passes_n_steps_generator_and_conditioning():
    calls = []

    class Recorder:
        def sample(self, x, n_steps, **kwargs):
            calls.append((n_steps, sorted(kwargs)))
            return x * 2

    x0 = torch.randn(3, 2)
    ReflowCoupling(Recorder(), n_steps=7)(x0)
    ReflowCoupling(Recorder(), n_steps=7)(x0, generator=gen(0), y=torch.zeros(3))
    assert calls == [(7, []), (7, ['generator', 'y'])]


@pytest.mark.parametrize('n_steps,err,match', [(0, ValueError, 'n_steps must be'), (-1, ValueError, 'n_steps must be'),
                                               (2.5, TypeError, 'n_steps must be an int')])
def test_reflow_validates_n_steps(n_steps, err, match):
    with pytest.raises(err, match=match): ReflowCoupling(lambda x: x, n_steps=n_steps)


def test_reflow_needs_a_sampler_or_a_callable():
    with pytest.raises(TypeError, match='ReflowCoupling needs a flow with a sample'): ReflowCoupling(object())
    with pytest.raises(ValueError, match='the map must return a batch of 4 samples'):
        ReflowCoupling(lambda x: x[:2])(torch.randn(4, 2))


def test_registry_and_resolver():
    for name in NAMES: assert isinstance(get_coupling(name), BaseCoupling)
    assert type(get_coupling('ot')) is type(get_coupling('exact_ot')) is ExactOTCoupling
    with pytest.raises(ValueError, match=r"Unknown coupling 'emd'\. Valid names: independent, ot, exact_ot, sinkhorn"):
        get_coupling('emd')
    with pytest.raises(ValueError, match='model coupling'): get_coupling('reflow')
    with pytest.raises(ValueError, match='model coupling'): resolve_coupling('reflow', default='ot', owner='FlowMatchingLoss')
    assert isinstance(resolve_coupling(None, default='sinkhorn', owner='X'), SinkhornCoupling)
    reflow = ReflowCoupling(lambda x: x)
    assert resolve_coupling(reflow, default='ot', owner='X') is reflow
    with pytest.raises(TypeError, match='EnergyMatchingLoss requires a BaseCostCoupling; got ReflowCoupling'):
        resolve_coupling(reflow, default='ot', owner='EnergyMatchingLoss', family=BaseCostCoupling)
    with pytest.raises(TypeError, match='X requires a BaseCoupling or one of the names'):
        resolve_coupling(1.5, default='ot', owner='X')
