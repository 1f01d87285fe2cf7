"""FSDP2 (`fully_shard`, two gloo processes on CPU) gives the gradients of the unsharded reference (issue 14).

Every rank differentiates its own batch with its own generator seed. Sharded gradients (gathered with `full_tensor`) must
equal the mean over ranks of the unsharded per-rank gradients, and one optimiser step (SGD, Adam) on the sharded model must
equal the single-process step on the concatenated batch with the same draws. The score-matching losses go through their
functional path (`use_autograd=False`, `functional_model=`), whose gather used to back-propagate each rank's own gradient
without reducing it; EqM's implicit field goes through the sharded module's own forward (FSDP2's hooks). Losses that have no
functional path must refuse sharded parameters before evaluating the model.

The two processes are spawned once for the whole file; rank 0 writes every comparison into a JSON file that the tests read.
"""
import copy
import json
import os
import traceback
from datetime import timedelta

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from torchebm_nb.core import BaseModel
from torchebm_nb.losses import (DenoisingScoreMatching, EnergyMatchingLoss, EquilibriumMatchingLoss, ScoreMatching,
                                SlicedScoreMatching)

F64, WORLD, BATCH, DIM = torch.float64, 2, 8, 3
GRADIENT_TOLERANCE = STEP_TOLERANCE = 1e-9   # float64; the issue asks for 1e-5 (approx SM, dividing by ε², reaches ~2e-13)


class CountingEnergy(BaseModel):
    """E(x) = MLP(x), float64, counting its forward calls."""
    def __init__(self):
        super().__init__(dtype=F64)
        torch.manual_seed(0)   # tests only: the same initial weights in every process
        self.net = nn.Sequential(nn.Linear(DIM, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1)).double()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.net(x).squeeze(-1)


class CountingField(nn.Module):
    """A field f(x, t) = MLP([x, t]), float64, counting its forward calls (for EqM)."""
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.net = nn.Sequential(nn.Linear(DIM + 1, 8), nn.Tanh(), nn.Linear(8, DIM)).double()
        self.calls = 0

    def forward(self, x, t):
        self.calls += 1
        return self.net(torch.cat([x, t.reshape(-1, 1).to(x.dtype)], dim=-1))


def functional(make):
    """`make(model, **kw)` on its functional path with `template`, or on the autograd path for the reference (None)."""
    return lambda model, template: (make(model) if template is None
                                    else make(model, use_autograd=False, functional_model=template))


# name: (model class, loss factory (model, template) -> loss); each is checked for gradients and SGD/Adam steps
TRAINED = {
    'dsm': (CountingEnergy, functional(lambda m, **kw: DenoisingScoreMatching(m, noise_scale=0.1, dtype=F64, **kw))),
    'dsm with penalty': (CountingEnergy, functional(lambda m, **kw: DenoisingScoreMatching(
        m, noise_scale=0.1, regularization_strength=0.5, dtype=F64, **kw))),
    'ssm': (CountingEnergy, functional(lambda m, **kw: SlicedScoreMatching(m, n_projections=2, dtype=F64, **kw))),
    'approx sm': (CountingEnergy, functional(lambda m, **kw: ScoreMatching(m, hessian_method='approx', dtype=F64, **kw))),
    'eqm implicit field': (CountingField, lambda m, template: EquilibriumMatchingLoss(m, dtype=F64)),
}
OPTIMISERS = {'sgd': lambda params: torch.optim.SGD(params, lr=0.1),
              'adam': lambda params: torch.optim.Adam(params, lr=0.01)}

# name: (model class, loss factory (sharded model, template) -> loss, expected exception, expected words)
REFUSED = {
    'exact sm, functional path': (CountingEnergy, functional(lambda m, **kw: ScoreMatching(m, dtype=F64, **kw)),
                                  NotImplementedError, 'DTensor'),
    'dsm, autograd path': (CountingEnergy, lambda m, template: DenoisingScoreMatching(m, noise_scale=0.1, dtype=F64),
                           RuntimeError, 'use_autograd=False'),
    'dsm without functional_model': (CountingEnergy, lambda m, template: DenoisingScoreMatching(
        m, noise_scale=0.1, use_autograd=False, dtype=F64), RuntimeError, 'functional_model'),
    'eqm explicit energy': (CountingField, lambda m, template: EquilibriumMatchingLoss(m, energy_type='dot', dtype=F64),
                            RuntimeError, 'DTensor'),
    'energy matching': (CountingEnergy, lambda m, template: EnergyMatchingLoss(m, lambda_cd=0.0, dtype=F64),
                        RuntimeError, 'DTensor'),
}


def batch(rank):
    """Rank `rank`'s data batch (its own seed)."""
    return torch.randn(BATCH, DIM, dtype=F64, generator=torch.Generator().manual_seed(100 + rank))


def seed(rank):
    """Rank `rank`'s loss seed (noise, projections, times)."""
    return 7 + rank


def gradients(model):
    """name -> gradient (None where the loss does not depend on the parameter)."""
    return {n: None if p.grad is None else p.grad.detach().clone() for n, p in model.named_parameters()}


def largest_difference(a, b):
    """max |a − b| over matching entries of two name -> tensor-or-None dicts; inf where only one side is None."""
    worst = 0.0
    for n in a:
        if (a[n] is None) != (b[n] is None): return float('inf')
        if a[n] is not None: worst = max(worst, (a[n] - b[n]).abs().max().item() if a[n].numel() else 0.0)
    return worst


def reference_gradients(model_cls, make):
    """The mean over ranks of the unsharded per-rank gradients, computed in this one process."""
    per_rank = []
    for rank in range(WORLD):
        model = model_cls()
        make(model, None)(batch(rank), generator=seed(rank)).backward()
        per_rank.append(gradients(model))
    return {n: None if per_rank[0][n] is None else sum(g[n] for g in per_rank) / WORLD for n in per_rank[0]}


def reference_step(model_cls, make, optimiser):
    """Parameters after one single-process step on the concatenated batch, each rank's draws kept (mean of batch means)."""
    model = model_cls()
    opt = OPTIMISERS[optimiser](model.parameters())
    loss = make(model, None)
    sum(loss(batch(rank), generator=seed(rank)) for rank in range(WORLD)).div(WORLD).backward()
    opt.step()
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def sharded(model_cls, mesh):
    """A fresh model sharded with fully_shard, and an unsharded template of it."""
    from torch.distributed.fsdp import fully_shard
    model, template = model_cls(), model_cls()
    fully_shard(model, mesh=mesh)
    return model, template


def full(tensors):
    """Gather every DTensor of a name -> tensor-or-None dict (a collective: every rank must call it)."""
    return {n: None if t is None else t.full_tensor().detach() for n, t in tensors.items()}


def check_trained(name, mesh, rank, results):
    """Loss value, gradients and one SGD and one Adam step of TRAINED[name] against the unsharded reference."""
    model_cls, make = TRAINED[name]
    model, template = sharded(model_cls, mesh)
    value = make(model, template)(batch(rank), generator=seed(rank))
    value.backward()
    grads = full({n: p.grad for n, p in model.named_parameters()})
    if rank == 0:
        expected = make(model_cls(), None)(batch(0), generator=seed(0))
        results[f'{name}: loss'] = abs(value.item() - expected.item())
        results[f'{name}: gradients'] = largest_difference(grads, reference_gradients(model_cls, make))
    for optimiser in OPTIMISERS:
        model, template = sharded(model_cls, mesh)
        opt = OPTIMISERS[optimiser](model.parameters())
        make(model, template)(batch(rank), generator=seed(rank)).backward()
        opt.step()
        after = full(dict(model.named_parameters()))
        if rank == 0: results[f'{name}: {optimiser} step'] = largest_difference(after, reference_step(model_cls, make, optimiser))


def check_refused(name, mesh, rank, results):
    """REFUSED[name] raises its exception on the sharded model before evaluating it (local: no collective)."""
    model_cls, make, _, _ = REFUSED[name]
    model, template = sharded(model_cls, mesh)
    try:
        make(model, template)(batch(rank), generator=seed(rank))
        outcome = {'raised': None}
    except Exception as e:  # the test compares the type and the words
        outcome = {'raised': type(e).__name__, 'message': str(e)}
    outcome['calls'] = model.calls + template.calls
    if rank == 0: results[name] = outcome


def worker(rank, store_path, results_path):
    """One rank: every case in turn; rank 0 writes the comparisons (or the failure) to `results_path`."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{store_path}', rank=rank, world_size=WORLD,
                            timeout=timedelta(seconds=60))
    results = {}
    try:
        mesh = init_device_mesh('cpu', (WORLD,))
        for name in TRAINED: check_trained(name, mesh, rank, results)
        for name in REFUSED: check_refused(name, mesh, rank, results)
    except Exception:
        results['worker failure'] = traceback.format_exc()
        raise
    finally:
        if rank == 0:
            with open(results_path, 'w') as f: json.dump(results, f)
        dist.destroy_process_group()


@pytest.fixture(scope='module')
def results(tmp_path_factory):
    dist = torch.distributed
    if not dist.is_available(): pytest.skip('torch.distributed is not available')
    if not dist.is_gloo_available(): pytest.skip('the gloo backend is not available')
    try:
        from torch.distributed.fsdp import fully_shard  # noqa: F401
        from torch.distributed.tensor import Partial  # noqa: F401
    except ImportError as e:
        pytest.skip(f'FSDP2 (fully_shard) or DTensor Partial is not available: {e}')
    folder = tmp_path_factory.mktemp('fsdp2')
    path = folder / 'results.json'
    old = {k: os.environ.get(k) for k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')}
    os.environ.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    try:
        mp.start_processes(worker, args=(str(folder / 'store'), str(path)), nprocs=WORLD, start_method='spawn')
    except Exception as e:
        found = json.loads(path.read_text()) if path.exists() else {}
        pytest.fail(f"the FSDP2 workers failed: {found.get('worker failure', e)}")
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    return json.loads(path.read_text())


@pytest.mark.parametrize('name', list(TRAINED))
@pytest.mark.parametrize('quantity', ['loss', 'gradients', 'sgd step', 'adam step'])
def test_sharded_training_matches_the_unsharded_reference(results, name, quantity):
    tolerance = STEP_TOLERANCE if quantity.endswith('step') else GRADIENT_TOLERANCE
    assert results[f'{name}: {quantity}'] <= tolerance, (name, quantity, results[f'{name}: {quantity}'])


@pytest.mark.parametrize('name', list(REFUSED))
def test_losses_without_a_sharded_path_refuse_before_evaluating(results, name):
    _, _, error, words = REFUSED[name]
    outcome = results[name]
    assert outcome['raised'] == error.__name__, outcome
    assert words in outcome['message'], outcome['message']
    assert outcome['calls'] == 0, outcome   # refused before the model (or its template) was evaluated


def test_the_reference_is_the_concatenated_batch():
    """Mean of per-rank DSM losses == DSM on the concatenated batch with the concatenated per-rank noise draws."""
    make = TRAINED['dsm'][1]
    loss = make(CountingEnergy(), None)
    per_rank = sum(loss(batch(r), generator=seed(r)) for r in range(WORLD)) / WORLD
    x = torch.cat([batch(r) for r in range(WORLD)])
    noise = torch.cat([0.1 * torch.randn(BATCH, DIM, dtype=F64, generator=torch.Generator().manual_seed(seed(r)))
                       for r in range(WORLD)])
    target = loss.compute_score(x + noise) - noise / 0.1 ** 2
    torch.testing.assert_close(per_rank, 0.5 * target.square().sum(-1).mean(), rtol=1e-12, atol=1e-12)
