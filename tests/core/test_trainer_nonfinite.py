"""Non-finite training is never silent (issue 14): the trainer's `nonfinite_policy` ('warn', 'raise', 'skip') for
CD and PCD with HMC and MALA negatives, when the energy is NaN at a data point or a chain turns NaN; the history's
`nonfinite_steps` / `nonfinite_count`; and the `DivergenceGuard` tested by forcing a divergence."""
import copy
import functools
import math
import warnings

import pytest
import torch
from torch import nn

from torchebm_nb.core import BaseModel, BaseTrainer, ContrastiveDivergenceTrainer
from torchebm_nb.core.base_trainer import DivergenceGuard, TRAINER_NONFINITE_POLICIES
from torchebm_nb.samplers import HamiltonianMonteCarlo, MALA

THRESHOLD = 3.0   # the energy is NaN where x₀ > THRESHOLD


class NaNBeyond(BaseModel):
    "E(x) = a‖x‖²/2 + b·x₀ + c·√(3 − x₀): NaN (with NaN gradients for c) where x₀ > 3; counts its evaluations."
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = (nn.Parameter(torch.tensor(v)) for v in (1.0, 0.0, 0.01))
        self.calls = 0
    def forward(self, x):
        self.calls += 1
        return 0.5 * self.a * x.square().sum(-1) + self.b * x[..., 0] + self.c * (THRESHOLD - x[..., 0]).sqrt()


SAMPLERS = {'hmc': lambda m: HamiltonianMonteCarlo(m, step_size=0.05, n_leapfrog_steps=3),
            'mala': lambda m: MALA(m, step_size=0.05)}


def poison_on_batch(sampler, armed):
    "Make `sampler.sample` return one NaN chain while `armed[0]` is set: a chain that turned NaN during the step."
    original = sampler.sample
    @functools.wraps(original)
    def sample(*args, **kwargs):
        out = original(*args, **kwargs)
        if armed[0]: out = out.clone(); out[0] = math.nan
        return out
    sampler.sample = sample


class Recorder:
    "Copies of the weights, EMA, optimiser state and replay buffer around batch 1 (the bad one)."
    def __init__(self): self.before, self.after = None, None
    def _copy(self, t):
        buffer = t.loss_fn.replay_buffer
        return {'params': [p.detach().clone() for p in t.model.parameters()],
                'ema': [p.detach().clone() for p in t.ema.module.parameters()],
                'optimizer': copy.deepcopy(t.optimizer.state_dict()['state']),
                'buffer': None if buffer is None else buffer.clone()}
    def on_batch_start(self, t, i):
        if i == 1: self.before = self._copy(t)
    def on_batch_end(self, t, i, metrics):
        if i == 1: self.after = self._copy(t)


def run(policy, persistent, sampler_name, source):
    "Three batches; the second one is bad: NaN energy at a data point ('data') or a chain turning NaN ('chain')."
    model = NaNBeyond()
    sampler = SAMPLERS[sampler_name](model)
    armed = [False]
    poison_on_batch(sampler, armed)
    class Arm:
        def on_batch_start(self, t, i): armed[0] = source == 'chain' and i == 1
    recorder = Recorder()
    trainer = ContrastiveDivergenceTrainer(model, sampler, optimizer=torch.optim.Adam(model.parameters(), lr=0.01), k_steps=2,
                                           persistent=persistent, buffer_size=16, device='cpu', generator=0, progress=False,
                                           ema_decay=0.9, nonfinite_policy=policy, callbacks=[Arm(), recorder])
    trainer.loss_fn.init_steps = 0
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(8, 2, generator=g) for _ in range(3)]
    if source == 'data': batches[1][0, 0] = THRESHOLD + 2.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try: history, error = trainer.train(batches, num_epochs=1), None
        except FloatingPointError as e: history, error = None, e
    ours = [str(w.message) for w in caught if str(w.message).startswith('ContrastiveDivergenceTrainer')]
    return trainer, recorder, history, error, ours


def same(a, b):
    "Two Recorder copies are bit-identical."
    if not all(torch.equal(x, y) for x, y in zip(a['params'] + a['ema'], b['params'] + b['ema'])): return False
    if (a['buffer'] is None) != (b['buffer'] is None): return False
    if a['buffer'] is not None and not torch.equal(a['buffer'], b['buffer']): return False
    return all(torch.equal(a['optimizer'][k][s], b['optimizer'][k][s]) for k in a['optimizer'] for s in a['optimizer'][k])


MATRIX = [(policy, persistent, sampler, source) for policy in ('warn', 'raise', 'skip') for persistent in (False, True)
          for sampler in SAMPLERS for source in ('data', 'chain')]


@pytest.mark.parametrize('policy,persistent,sampler,source', MATRIX,
                         ids=[f"{p}-{'pcd' if q else 'cd'}-{s}-nan_{o}" for p, q, s, o in MATRIX])
def test_a_nonfinite_step_is_surfaced_and_never_applied(policy, persistent, sampler, source):
    trainer, recorder, history, error, ours = run(policy, persistent, sampler, source)
    if policy == 'raise':
        assert error is not None and 'optimiser step 2 (epoch 1' in str(error), error
        assert 'non-finite gradients in c' in str(error) or 'replaced' in str(error), error
        after = recorder._copy(trainer)   # raised before the optimiser touched the weights, the EMA or the optimiser state
        after['buffer'] = recorder.before['buffer']   # (the buffer is what 'skip' restores; 'raise' leaves it as it is)
        assert same(recorder.before, after)
        assert all(p.grad is None for p in trainer.model.parameters())
        return
    assert error is None
    assert history['nonfinite_steps'] == [1], history
    assert history['nonfinite_count'][0] >= 1, history          # the loss's own counter reaches the history
    assert all(math.isfinite(float(p.detach())) for p in trainer.model.parameters())
    if policy == 'warn':
        assert len(ours) == 1 and 'optimiser step 2 (epoch 1, 1 micro-batch(es)) is non-finite' in ours[0], ours
    else:
        assert ours == []                                        # 'skip' is silent but counted
    before, after = recorder.before, recorder.after
    if policy == 'warn' and persistent:                          # 'warn' does not undo what the step wrote into the buffer:
        assert torch.isfinite(after['buffer']).all() == (source == 'data')   # a NaN chain stays there
        after = dict(after, buffer=before['buffer'])
    assert same(before, after)                                   # weights, EMA, optimiser state (and, for 'skip', buffer) untouched


def test_ignore_does_not_check_and_lets_nan_through():
    trainer, _, history, error, ours = run('ignore', False, 'mala', 'data')
    assert error is None and ours == [] and 'nonfinite_steps' not in history
    assert history['nonfinite_count'][0] >= 1                    # the loss still counts, and the history shows it
    assert not math.isfinite(float(trainer.model.c.detach()))


def test_a_clean_run_counts_zero():
    model = NaNBeyond()
    trainer = ContrastiveDivergenceTrainer(model, SAMPLERS['mala'](model), k_steps=2, device='cpu', generator=0, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        history = trainer.train([torch.randn(8, 2, generator=torch.Generator().manual_seed(i)) for i in range(3)], num_epochs=2)
    assert history['nonfinite_steps'] == [0, 0] and history['nonfinite_count'] == [0, 0]


class Counting(nn.Module):
    "A linear model that counts its evaluations."
    def __init__(self):
        super().__init__(); self.lin, self.calls = nn.Linear(2, 1), 0
    def forward(self, x):
        self.calls += 1
        return self.lin(x).squeeze(-1)


def _trainer(model, **kw):
    return BaseTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), lambda x, **k: model(x).mean(), device='cpu',
                       progress=False, **kw)


BAD = {  # name: (call, argument named, expected words, exception type)
    "nonfinite_policy='never'": (lambda m: _trainer(m, nonfinite_policy='never'), 'nonfinite_policy', "one of ('warn', 'raise', 'skip', 'ignore'); got 'never'", ValueError),
    "nonfinite_policy='WARN'": (lambda m: _trainer(m, nonfinite_policy='WARN'), 'nonfinite_policy', "got 'WARN'", ValueError),
    'nonfinite_policy=None': (lambda m: _trainer(m, nonfinite_policy=None), 'nonfinite_policy', 'got NoneType', TypeError),
    'nonfinite_policy=True': (lambda m: _trainer(m, nonfinite_policy=True), 'nonfinite_policy', 'got bool', TypeError),
    'max_loss=0': (lambda m: DivergenceGuard(max_loss=0), 'max_loss', 'must be', ValueError),
    'max_loss=nan': (lambda m: DivergenceGuard(max_loss=math.nan), 'max_loss', 'finite', ValueError),
    'max_loss="big"': (lambda m: DivergenceGuard(max_loss='big'), 'max_loss', 'got str', TypeError),
    'max_energy_gap=-1': (lambda m: DivergenceGuard(max_energy_gap=-1.0), 'max_energy_gap', 'must be', ValueError),
    'max_energy_gap=inf': (lambda m: DivergenceGuard(max_energy_gap=math.inf), 'max_energy_gap', 'finite', ValueError),
    'check_every=0': (lambda m: DivergenceGuard(check_every=0), 'check_every', 'must be ≥ 1', ValueError),
    'check_every=2.5': (lambda m: DivergenceGuard(check_every=2.5), 'check_every', 'got float', TypeError),
    'max_rollbacks=-1': (lambda m: DivergenceGuard(max_rollbacks=-1), 'max_rollbacks', 'must be ≥ 0', ValueError),
    'max_rollbacks=True': (lambda m: DivergenceGuard(max_rollbacks=True), 'max_rollbacks', 'got bool', TypeError),
}


@pytest.mark.parametrize('case', list(BAD))
def test_bad_arguments_are_refused_before_any_work(case):
    call, name, words, kind = BAD[case]
    model = Counting()
    with pytest.raises(kind) as caught:
        call(model)
    message = str(caught.value)
    assert type(caught.value) is kind and message.startswith(name) and words in message, message
    assert model.calls == 0


def test_sensible_arguments_still_work():
    for policy in TRAINER_NONFINITE_POLICIES: assert _trainer(Counting(), nonfinite_policy=policy).nonfinite_policy == policy
    guard = DivergenceGuard(max_loss=1.0, max_energy_gap=2.0, check_every=1, max_rollbacks=0)
    assert (guard.max_loss, guard.max_energy_gap, guard.check_every, guard.max_rollbacks) == (1.0, 2.0, 1, 0)


# --- the divergence guard, by forcing a divergence ---------------------------------------------------------------------

class Small(BaseModel):
    def __init__(self):
        super().__init__(); torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Linear(16, 1))
    def forward(self, x): return self.net(x).squeeze(-1)


class Sabotage:
    "Blow the last layer's weights up by 10⁶ after the optimiser steps in `at`: a forced divergence."
    def __init__(self, at): self.at = set(at)
    def on_batch_end(self, t, i, metrics):
        if t.pending_micro_batches == 0 and t.global_step in self.at:
            with torch.no_grad(): t.model.net[2].weight.mul_(1e6)


class Snapshots:
    "Copies of the model, EMA and replay buffer after every optimiser step (after the guard has acted)."
    def __init__(self): self.at = {}
    def on_batch_end(self, t, i, metrics):
        if t.pending_micro_batches == 0:
            self.at[t.global_step] = ([p.detach().clone() for p in t.model.parameters()],
                                      [p.detach().clone() for p in t.ema.module.parameters()], t.loss_fn.replay_buffer.clone(),
                                      copy.deepcopy(t.optimizer.state_dict()['state']))


def guarded_run(sabotage_at, epochs=3, max_rollbacks=3):
    model = Small()
    guard, snaps = DivergenceGuard(max_energy_gap=1e3, check_every=4, max_rollbacks=max_rollbacks), Snapshots()
    trainer = ContrastiveDivergenceTrainer(model, MALA(model, step_size=0.05), learning_rate=1e-3, k_steps=2, persistent=True,
                                           buffer_size=32, device='cpu', generator=3, progress=False, ema_decay=0.9,
                                           callbacks=[guard, snaps, Sabotage(sabotage_at)])
    g = torch.Generator().manual_seed(2)
    batches = [torch.randn(16, 2, generator=g) for _ in range(4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try: history, error = trainer.train(batches, num_epochs=epochs), None
        except RuntimeError as e: history, error = None, e
    return trainer, snaps, history, error, [str(w.message) for w in caught if 'DivergenceGuard' in str(w.message)]


def assert_state_equal(a, b):
    for x, y in zip(a[0] + a[1], b[0] + b[1]): assert torch.equal(x, y)
    assert torch.equal(a[2], b[2])
    assert all(torch.equal(a[3][k][s], b[3][k][s]) for k in a[3] for s in a[3][k] if s != 'step')


def test_a_forced_divergence_is_rolled_back_with_a_new_seed_and_logged():
    trainer, snaps, history, error, logged = guarded_run(sabotage_at={6})
    assert error is None and history['rollbacks'] == [0, 1, 0], history
    assert len(logged) == 1 and 'between optimiser steps 4 and 8' in logged[0] and 'max_energy_gap=1000' in logged[0], logged
    assert_state_equal(snaps.at[8], snaps.at[4])     # model, EMA, replay buffer and optimiser as they were after step 4
    assert trainer.global_step == 12 and all(math.isfinite(v) for v in history['loss'])
    again, *_ = guarded_run(sabotage_at={6})         # the reseed is drawn from the generator: a seeded run is reproducible
    for p, q in zip(trainer.model.parameters(), again.model.parameters()): assert torch.equal(p, q)
    assert torch.equal(trainer.generator.get_state(), again.generator.get_state())


def test_the_guard_gives_up_after_max_rollbacks_in_a_row():
    trainer, snaps, history, error, logged = guarded_run(sabotage_at=range(5, 100), epochs=6, max_rollbacks=2)
    assert error is not None and 'diverged 3 times in a row' in str(error) and 'giving up (max_rollbacks=2)' in str(error), error
    assert len(logged) == 2
    now = ([p.detach().clone() for p in trainer.model.parameters()], [p.detach().clone() for p in trainer.ema.module.parameters()],
           trainer.loss_fn.replay_buffer.clone(), copy.deepcopy(trainer.optimizer.state_dict()['state']))
    assert_state_equal(now, snaps.at[4])             # left at the last good state


def test_a_nan_loss_counts_as_a_divergence():
    model = Small()
    calls = [0]
    def loss(x, **kw):
        calls[0] += 1
        value = model(x).square().mean()
        return value * math.nan if calls[0] == 3 else value
    trainer = BaseTrainer(model, torch.optim.SGD(model.parameters(), lr=0.01), loss, device='cpu', progress=False, generator=0,
                          nonfinite_policy='skip', callbacks=[DivergenceGuard(check_every=2)])
    with pytest.warns(RuntimeWarning, match=r'\|loss\| reached nan'):
        history = trainer.train([torch.randn(4, 2)] * 4, num_epochs=1)
    assert history['rollbacks'] == [1] and history['nonfinite_steps'] == [1]
