"""`progress=True` (issue 18): a tqdm bar on stderr for `sample()` of the MCMC samplers and for `run_chain`. The chains
are bit-identical with and without it, it adds at most one host synchronisation per redraw (never one per step), it
writes nothing unless asked, it closes when a step raises, and a `progress` that is not a bool is refused before the
model is evaluated."""
import inspect

import pytest
import torch

from torchebm_nb.core import BaseModel, run_chain
from torchebm_nb.core.mcmc import ChainProgress
from torchebm_nb.samplers import HamiltonianMonteCarlo, LangevinDynamics, MetropolisAdjustedLangevin

from counting import CountingGaussian

SAMPLERS = {'langevin': lambda m: LangevinDynamics(m, step_size=0.1),
            'hmc': lambda m: HamiltonianMonteCarlo(m, step_size=0.2, n_leapfrog_steps=3),
            'mala': lambda m: MetropolisAdjustedLangevin(m, step_size=0.3)}
METROPOLIS = {'hmc', 'mala'}


@pytest.mark.parametrize('name', list(SAMPLERS))
def test_signature(name):
    parameters = inspect.signature(SAMPLERS[name](CountingGaussian()).sample).parameters
    assert list(parameters)[-2:] == ['generator', 'progress']
    assert parameters['progress'].kind is inspect.Parameter.KEYWORD_ONLY and parameters['progress'].default is False


@pytest.mark.parametrize('name', list(SAMPLERS))
def test_same_chains_and_stderr_only_when_asked(name, capsys):
    sampler = SAMPLERS[name](CountingGaussian())
    run = lambda **kw: sampler.sample(dim=2, n_samples=16, n_steps=120, thin=3, return_trajectory=True, generator=0, **kw)
    plain = run()
    quiet = capsys.readouterr()
    assert quiet.err == '' and quiet.out == ''
    with_bar = run(progress=True)
    shown = capsys.readouterr()
    assert torch.equal(plain, with_bar)
    assert shown.out == '' and type(sampler).__name__ in shown.err and 'step/s' in shown.err and '120/120' in shown.err
    assert ('acceptance=' in shown.err) == (name in METROPOLIS), shown.err


def _count_syncs(monkeypatch):
    "Count .item(), .tolist() and bool() of tensors (the host synchronisations a run can make)."
    counts = {'n': 0}
    for method in ('item', 'tolist', '__bool__'):
        original = getattr(torch.Tensor, method)
        def counted(self, *a, _original=original, **k):
            counts['n'] += 1
            return _original(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, method, counted)
    return counts


@pytest.mark.parametrize('name', ['hmc', 'langevin'])
def test_no_synchronisation_per_step(name, monkeypatch, capsys):
    sampler, n_steps = SAMPLERS[name](CountingGaussian()), 600
    reads = []
    original_read = ChainProgress.read
    monkeypatch.setattr(ChainProgress, 'read', lambda self: (reads.append(1), original_read(self))[1])
    counts = _count_syncs(monkeypatch)
    sampler.sample(dim=2, n_samples=8, n_steps=n_steps, generator=0)
    without = counts['n']; counts['n'] = 0
    sampler.sample(dim=2, n_samples=8, n_steps=n_steps, generator=0, progress=True)
    extra = counts['n'] - without
    assert extra == len(reads) <= n_steps // max(1, n_steps // 100) + 1, (extra, len(reads))   # one per redraw at most
    assert len(reads) >= (1 if name in METROPOLIS else 0)


def test_redraws_every_hundredth_of_the_run():
    bar = ChainProgress(1000, 'test', min_interval=0.0, file=open('/dev/null', 'w'))
    for done in range(1, 1001): bar.update(done, torch.ones(3, dtype=torch.bool))
    bar.close()
    assert bar.every == 10 and bar.reads == 101 and bar.shown == 1000   # 100 redraws + the final read


class _Failing(BaseModel):
    "A Gaussian energy that raises at its `fail_at`-th evaluation."
    def __init__(self, fail_at):
        super().__init__(); self.calls, self.fail_at = 0, fail_at
    def forward(self, x):
        self.calls += 1
        if self.calls == self.fail_at: raise RuntimeError('model failed')
        return 0.5 * x.pow(2).sum(-1)


@pytest.mark.parametrize('name', list(SAMPLERS))
def test_the_bar_closes_when_a_step_raises(name, monkeypatch, capsys):
    closed = []
    original_close = ChainProgress.close
    monkeypatch.setattr(ChainProgress, 'close', lambda self: (closed.append(self), original_close(self))[1])
    with pytest.raises(RuntimeError, match='model failed'):
        SAMPLERS[name](_Failing(fail_at=20)).sample(dim=2, n_samples=4, n_steps=100, generator=0, progress=True)
    assert len(closed) == 1 and closed[0].bar.disable and closed[0].shown < 100   # closed, mid-run


CASES = {  # name: (call, exception, argument named, expected words)
    **{f"{name} progress={value!r}": (lambda m, name=name, value=value: SAMPLERS[name](m).sample(
        x=torch.zeros(4, 2), n_steps=3, progress=value), TypeError, 'progress', 'must be a bool')
       for name in SAMPLERS for value in ('yes', 1, None, torch.tensor(True))},
    "run_chain progress='no'": (lambda m: run_chain(LangevinDynamics(m, step_size=0.1), torch.zeros(4, 2), 3,
                                                   ctx=LangevinDynamics(m, step_size=0.1).context(None, None, 0),
                                                   progress='no'), TypeError, 'progress', 'must be a bool'),
    'every=0': (lambda m: ChainProgress(10, every=0), ValueError, 'every', '≥ 1'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_progress_is_refused_before_the_model_runs(case, capsys):
    call, kind, name, words = CASES[case]
    model = CountingGaussian()
    with pytest.raises(kind) as caught:
        call(model)
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
    assert model.calls == 0
    assert capsys.readouterr().err == ''           # no bar was opened


def test_sensible_values_still_work(capsys):
    sampler = SAMPLERS['hmc'](CountingGaussian())
    assert sampler.sample(dim=2, n_samples=4, n_steps=0, generator=0, progress=True).shape == (4, 2)
    assert sampler.sample(dim=2, n_samples=4, n_steps=5, generator=0, progress=False).shape == (4, 2)
