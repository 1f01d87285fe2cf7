"""EMA, checkpoints, profiling, distributed helpers (a real 2-process gloo group on loopback) and plotting helpers.

Diagnostics and metrics are checked against numpy references in test_diagnostics_metrics.py.
"""
import copy
import json
import os
import sys
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import torchebm_nb.utils as utils
from torchebm_nb.utils import (EMA, all_gather_cat, broadcast_object, broadcast_tensor, get_rank, get_world_size,
                               is_distributed, load_checkpoint, profile_context, requires_grad, save_checkpoint,
                               unsharded, update_ema)


def small_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 1))


# ----------------------------------------------------------------------------------------------------------------------
# EMA

def test_exports_match_the_contract():
    contract = ['EMA', 'update_ema', 'requires_grad', 'save_checkpoint', 'load_checkpoint', 'profile_context',
                'is_distributed', 'get_rank', 'get_world_size', 'all_gather_cat', 'broadcast_object',
                'broadcast_tensor', 'unsharded']
    assert set(contract) <= set(utils.__all__)
    assert all(hasattr(utils, name) for name in utils.__all__)
    from torchebm_nb.utils.training import update_ema as u, requires_grad as r     # TorchEBM's module path works
    assert u is update_ema and r is requires_grad


def test_ema_warmup_schedule_and_closed_form():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad(): model.weight.zero_()
    ema = EMA(model, decay=0.9, decay_schedule='warmup')
    with torch.no_grad(): model.weight.fill_(1.0)
    expected = 0.0
    for k in range(30):
        d = min(0.9, (1 + k) / (10 + k))
        assert ema._current_decay() == d
        ema.update(model)
        expected = d * expected + (1 - d)
        assert abs(ema.module.weight.item() - expected) < 1e-6
    assert ema.step == 30


def test_ema_state_dict_round_trip_and_buffers():
    model = small_net()
    ema = EMA(model, decay=0.5, decay_schedule='warmup')
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.randn(16, 3)
    for _ in range(5):
        loss = model(data).pow(2).mean(); opt.zero_grad(); loss.backward(); opt.step(); ema.update(model)
    assert torch.equal(ema.module[1].running_var, model[1].running_var)
    assert ema.module[1].num_batches_tracked.item() == 5
    restored = EMA(small_net(1), decay=0.5, decay_schedule='warmup')
    restored.load_state_dict(ema.state_dict())
    assert restored.step == 5
    for (k, a), (_, b) in zip(ema.state_dict().items(), restored.state_dict().items()):
        assert a == b if k == '_extra_state' else torch.equal(a, b)
    # both continue identically
    ema.update(model); restored.update(model)
    assert all(torch.equal(a, b) for a, b in zip(ema.module.parameters(), restored.module.parameters()))


def test_ema_average_parameters_and_errors():
    model = small_net(); ema = EMA(model, decay=0.0)
    with torch.no_grad():
        for p in model.parameters(): p.add_(1.0)
    before = copy.deepcopy(model.state_dict())
    with ema.average_parameters(model) as m:
        assert m is model and not torch.equal(model[0].weight, before['0.weight'])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match=r'decay must be in \[0, 1\)'): EMA(model, decay=1.0)
    with pytest.raises(TypeError, match='decay must be a real number'): EMA(model, decay=None)
    with pytest.raises(ValueError, match='model does not match'): ema.update(nn.Linear(3, 1))


def test_update_ema_by_name_across_dtypes_and_wrappers():
    live, avg = nn.Linear(4, 2), nn.Linear(4, 2).double()
    update_ema(avg, nn.DataParallel(live), decay=0.75)          # the wrapper is unwrapped, the average stays float64
    assert avg.weight.dtype == torch.float64
    fresh = nn.Linear(4, 2).double()
    update_ema(fresh, live, decay=0.0)
    torch.testing.assert_close(fresh.weight, live.weight.double())
    requires_grad(avg, False)
    assert not any(p.requires_grad for p in avg.parameters())


# ----------------------------------------------------------------------------------------------------------------------
# checkpoints

def test_checkpoint_round_trip_bit_for_bit(tmp_path):
    def run(seed):
        model = small_net(seed)
        return model, torch.optim.AdamW(model.parameters(), lr=1e-2), EMA(model, decay=0.9, decay_schedule='warmup')

    def train(model, opt, ema, steps):
        g = torch.Generator().manual_seed(123)
        for _ in range(steps):
            x = torch.randn(32, 3, generator=g)
            loss = (model(x).squeeze(-1) - x.sum(-1)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step(); ema.update(model)

    model, opt, ema = run(0)
    train(model, opt, ema, 7)
    path = save_checkpoint(nn.DataParallel(model), opt, 7, str(tmp_path / 'ckpts'), ema_model=ema, args={'lr': 0.01})
    assert path == str(tmp_path / 'ckpts' / '0000007.pt') and os.listdir(tmp_path / 'ckpts') == ['0000007.pt']
    model2, opt2, ema2 = run(1)
    ckpt = load_checkpoint(path, model2, ema_model=ema2, optimizer=opt2, device=torch.device('cpu'))
    assert ckpt['step'] == 7 and ckpt['args'] == {'lr': 0.01} and set(ckpt) == {'model', 'opt', 'step', 'ema', 'args'}
    assert list(ckpt['model']) == list(model.state_dict())           # unwrapped: no 'module.' prefix
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()): assert torch.equal(a, b)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1['param_groups'] == s2['param_groups']
    for k in s1['state']:
        for name in s1['state'][k]: assert torch.equal(s1['state'][k][name], s2['state'][k][name])
    train(model, opt, ema, 3); train(model2, opt2, ema2, 3)
    for a, b in zip(list(model.parameters()) + list(ema.module.parameters()),
                    list(model2.parameters()) + list(ema2.module.parameters())):
        assert torch.equal(a, b)
    assert ema2.step == 10


def test_checkpoint_validation(tmp_path):
    model = nn.Linear(2, 1); opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match='model must be a torch.nn.Module'): save_checkpoint({}, opt, 0, str(tmp_path))
    with pytest.raises(ValueError, match='step must be ≥ 0'): save_checkpoint(model, opt, -3, str(tmp_path))
    with pytest.raises(FileNotFoundError, match='is not a file'): load_checkpoint(str(tmp_path / 'x.pt'), model)
    path = save_checkpoint(model, opt, 0, tmp_path)                    # a Path works too
    assert os.path.basename(path) == '0000000.pt' and set(load_checkpoint(path, model)) == {'model', 'opt', 'step'}


# ----------------------------------------------------------------------------------------------------------------------
# profiling

def test_profile_context_table_and_trace(tmp_path, capsys):
    trace = tmp_path / 'nested' / 'trace.json'
    with profile_context(activities=[torch.profiler.ProfilerActivity.CPU], row_limit=5, export_trace=str(trace)) as prof:
        with torch.profiler.record_function('tiny_workload'):
            torch.randn(32, 32).matmul(torch.randn(32, 32)).sum()
    out = capsys.readouterr().out
    assert 'tiny_workload' in out and 'CPU total' in out
    events = json.loads(trace.read_text())['traceEvents']
    assert any(e.get('name') == 'tiny_workload' for e in events)
    assert any(e.key == 'aten::matmul' for e in prof.key_averages())
    with profile_context(print_table=False):
        torch.ones(3).sum()
    assert capsys.readouterr().out == ''
    with pytest.raises(ValueError, match='sort_by must be None or one of'):
        with profile_context(sort_by='time'): pass


# ----------------------------------------------------------------------------------------------------------------------
# distributed: identity without a group, real collectives with two gloo processes

def test_distributed_helpers_are_identities_without_a_group():
    x = torch.randn(3, 2)
    assert not is_distributed() and get_rank() == 0 and get_world_size() == 1
    assert all_gather_cat(x, dim=1) is x and broadcast_tensor(x) is x and broadcast_object('a') == 'a'
    with unsharded(nn.Linear(2, 2)) as m: assert isinstance(m, nn.Linear)
    with pytest.raises(ValueError, match=r'src must be a rank in \[0, 1\)'): broadcast_tensor(x, src=1)


def _two_rank_worker(rank, world_size, store, out_dir):
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=30))
    try:
        result = {'rank': get_rank(), 'world_size': get_world_size(), 'distributed': is_distributed()}
        local = torch.arange(6.0).reshape(2, 3) + 10 * rank
        result['cat0'] = all_gather_cat(local)
        result['cat1'] = all_gather_cat(local, dim=-1)
        grad_input = local.clone().requires_grad_(True)
        result['gathered_requires_grad'] = all_gather_cat(grad_input).requires_grad
        result['object'] = broadcast_object({'seed': 42, 'from': rank}, src=1)
        t = torch.full((4,), float(rank))
        out = broadcast_tensor(t, src=0)
        result['tensor'], result['in_place'] = out, out.data_ptr() == t.data_ptr()
        result['int_tensor'] = broadcast_tensor(torch.tensor([rank * 7], dtype=torch.int64), src=1)
        group = dist.new_group([0, 1])
        result['group_rank'], result['group_cat'] = get_rank(group), all_gather_cat(torch.tensor([rank]), group=group)
        try:
            broadcast_object(1, src=2)
        except ValueError as e:
            result['src_error'] = str(e)
        with unsharded(nn.Linear(2, 2)) as m: result['unsharded'] = isinstance(m, nn.Linear)
        torch.save(result, os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or 'fork' not in mp.get_all_start_methods(),
                    reason='needs torch.distributed and the fork start method')
def test_two_process_gloo_group(tmp_path):
    mp.start_processes(_two_rank_worker, args=(2, str(tmp_path / 'store'), str(tmp_path)), nprocs=2,
                       start_method='fork')
    results = [torch.load(tmp_path / f'rank{r}.pt') for r in range(2)]
    expected0 = torch.cat([torch.arange(6.0).reshape(2, 3), torch.arange(6.0).reshape(2, 3) + 10])
    for r, res in enumerate(results):
        assert (res['rank'], res['world_size'], res['distributed']) == (r, 2, True)
        assert torch.equal(res['cat0'], expected0)
        assert torch.equal(res['cat1'], torch.cat([torch.arange(6.0).reshape(2, 3), torch.arange(6.0).reshape(2, 3) + 10], 1))
        assert res['gathered_requires_grad'] is False
        assert res['object'] == {'seed': 42, 'from': 1}
        assert torch.equal(res['tensor'], torch.zeros(4)) and res['in_place']
        assert torch.equal(res['int_tensor'], torch.tensor([7]))
        assert res['group_rank'] == r and torch.equal(res['group_cat'], torch.tensor([0, 1]))
        assert 'src must be a rank in [0, 2)' in res['src_error']
        assert res['unsharded']
    assert not is_distributed()


# ----------------------------------------------------------------------------------------------------------------------
# plotting

def test_plot_helpers_return_figures_and_need_matplotlib(monkeypatch):
    matplotlib = pytest.importorskip('matplotlib')
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from torchebm_nb.core import GaussianModel
    gauss = GaussianModel(torch.zeros(2), torch.eye(2))
    chains = torch.randn(4, 50, 2)
    figures = [utils.plot_energy_landscape(gauss, n=20, gradient_field=True),
               utils.plot_energy_landscape(gauss, n=10, kind='surface'),
               utils.plot_samples(chains[:, -1], data=torch.randn(20, 2)),
               utils.plot_trajectories(chains, model=gauss),
               utils.plot_trace(chains),
               utils.plot_autocorrelation(chains, max_lag=10)]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figures)
    plt.close('all')
    monkeypatch.setitem(sys.modules, 'matplotlib.pyplot', None)
    with pytest.raises(ImportError, match=r'plot_trace: matplotlib is not installed.*pip install "torchebm_nb\[plot\]"'): utils.plot_trace(chains)
