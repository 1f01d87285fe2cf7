"""FlowSampler and a field that returns NaN (issue 14: "FlowSampler with an adaptive integrator and a field that returns
NaN collapses the step size to ~1e-142 over thousands of attempts, then blames the tolerances"). An adaptive run now
stops at the first attempt that meets the non-finite field and reports it per `nonfinite_policy`, naming the model and
the time; a fixed-step run goes to the end and reports the non-finite chains, as before."""
import math
import re
import warnings

import pytest
import torch
from torch import nn

from torchebm_nb.samplers import FlowSampler

ADAPTIVE = ['adaptive_heun', 'bosh3', 'dopri5', 'dopri8']


class BrokenField(nn.Module):
    "A velocity field −x that turns NaN for t > `after` (after=-1: NaN everywhere), on the chains in `rows`; counts its calls."
    def __init__(self, after=-1.0, rows=slice(None)):
        super().__init__()
        self.after, self.rows, self.calls = after, rows, 0
    def forward(self, x, t):
        self.calls += 1
        v = -x.clone()
        bad = (t > self.after)[self.rows]
        v[self.rows] = torch.where(bad[:, None], torch.full_like(v[self.rows], math.nan), v[self.rows])
        return v


def run(sampler, policy, **kw):
    sampler.nonfinite_policy = policy
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = sampler.sample(dim=2, n_samples=6, generator=torch.Generator().manual_seed(0), **kw)
    return out, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize('after', [-1.0, 0.5])
@pytest.mark.parametrize('integrator', ADAPTIVE)
def test_adaptive_raise_names_the_model_and_the_time(integrator, after):
    field = BrokenField(after)
    sampler = FlowSampler(field, integrator=integrator)
    with pytest.raises(RuntimeError) as caught:
        run(sampler, 'raise')
    message = str(caught.value)
    assert message.startswith('FlowSampler: 6 of 6 chains became non-finite'), message
    assert "The model's field (BrokenField) is not finite" in message and f'adaptive {type(sampler.integrator).__name__}' in message
    assert re.search(r'at t=[0-9.]+', message), message
    assert isinstance(caught.value.__cause__, FloatingPointError)
    assert field.calls < 60, field.calls                              # a handful of attempts, not thousands
    if after < 0: assert 'at t=0 at the current state' in message and field.calls <= 14, (field.calls, message)


@pytest.mark.parametrize('integrator', ADAPTIVE)
def test_adaptive_warn_returns_nan_chains_with_one_warning(integrator):
    field = BrokenField(0.5, rows=slice(0, 2))                        # two of six chains break
    out, messages = run(FlowSampler(field, integrator=integrator), 'warn')
    assert out.shape == (6, 2) and bool(out.isnan().all())
    assert len(messages) == 1 and "The model's field (BrokenField) is not finite" in messages[0], messages
    assert field.calls < 60, field.calls


def test_adaptive_ignore_is_silent():
    out, messages = run(FlowSampler(BrokenField()), 'ignore')
    assert messages == [] and bool(out.isnan().all())


@pytest.mark.parametrize('integrator', ['rk4', 'midpoint', 'heun'])
def test_fixed_step_runs_to_the_end_and_reports_the_nonfinite_chains(integrator):
    field = BrokenField(0.5, rows=slice(0, 2))
    out, messages = run(FlowSampler(field, integrator=integrator), 'warn', n_steps=10)
    assert bool(out[:2].isnan().all()) and bool(torch.isfinite(out[2:]).all())    # the finite chains are kept
    assert len(messages) == 1 and messages[0].startswith('FlowSampler: 2 of 6 chains became non-finite'), messages
    stages = {'rk4': 4, 'midpoint': 2, 'heun': 2}[integrator]
    assert field.calls == 10 * stages
    with pytest.raises(RuntimeError, match='FlowSampler: 2 of 6 chains became non-finite'):
        run(FlowSampler(BrokenField(0.5, rows=slice(0, 2)), integrator=integrator), 'raise', n_steps=10)


def test_sde_mode_reports_the_nonfinite_chains():
    field = BrokenField(0.5)
    out, messages = run(FlowSampler(field, mode='sde', sample_eps=1e-3), 'warn', n_steps=20)
    assert bool(out.isnan().all()) and len(messages) == 1 and 'became non-finite' in messages[0], messages


@pytest.mark.parametrize('integrator', ['dopri5', 'rk4'])
@pytest.mark.parametrize('reverse', [False, True])
def test_a_finite_field_still_samples_without_warnings(integrator, reverse):
    field = BrokenField(after=2.0)                                    # never breaks on [0, 1]
    out, messages = run(FlowSampler(field, integrator=integrator, reverse=reverse), 'raise', n_steps=10)
    assert messages == [] and bool(torch.isfinite(out).all())
