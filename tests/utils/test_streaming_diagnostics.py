"""`StreamingDiagnostics` (issue 18): running mean/variance and split R-hat equal the full-trajectory estimators, the
batch-means ESS agrees with `effective_sample_size` within its standard error on AR(1) chains, memory does not grow
with the run, it works as a `run_chain` callback (with thinning), and bad arguments are refused by name."""
import math

import pytest
import torch

from torchebm_nb.core import run_chain
from torchebm_nb.samplers import HamiltonianMonteCarlo, LangevinDynamics
from torchebm_nb.utils.diagnostics import StreamingDiagnostics, effective_sample_size, split_rhat

from counting import CountingGaussian


def ar1(phi, n_chains, n_draws, seed, dim=2):
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n_chains, n_draws, dim, generator=g, dtype=torch.float64)
    x = torch.empty_like(noise)
    x[:, 0] = noise[:, 0]
    for i in range(1, n_draws): x[:, i] = phi * x[:, i - 1] + math.sqrt(1 - phi ** 2) * noise[:, i]
    return x


def stream(x, **kw):
    s = StreamingDiagnostics(x.shape[0], tuple(x.shape[2:]), x.shape[1], **kw)
    for i in range(x.shape[1]): s.update(x[:, i])
    return s


@pytest.mark.parametrize('n_draws', [4000, 4001])
@pytest.mark.parametrize('phi', [0.0, 0.5, 0.8])
def test_agrees_with_the_full_trajectory(phi, n_draws):
    x = ar1(phi, 16, n_draws, seed=int(10 * phi) + n_draws)
    s = stream(x, batch_size=100)
    r = s.result()
    torch.testing.assert_close(r['mean'], x.mean((0, 1)), rtol=0, atol=1e-12)
    torch.testing.assert_close(r['var'], x.var((0, 1)), rtol=1e-10, atol=0)
    torch.testing.assert_close(r['rhat'], split_rhat(x), rtol=1e-10, atol=0)
    # batch means: relative standard error √(2 / (C (n_batches − 1))); bias ≈ 2φ/((1−φ)² b τ), τ = (1+φ)/(1−φ)
    se = math.sqrt(2 / (16 * (s.n_batches - 1)))
    bias = 2 * phi / ((1 - phi) ** 2 * s.batch_size * (1 + phi) / (1 - phi))
    ratio = r['ess'] / effective_sample_size(x)
    assert ((ratio - 1).abs() < 4 * se + bias).all(), (ratio, se, bias)
    exact = x.shape[0] * x.shape[1] * (1 - phi) / (1 + phi)
    assert ((r['ess'] / exact - 1).abs() < 4 * se + bias + 0.05).all(), r['ess']


def test_memory_is_constant_in_the_run_length():
    sizes = []
    for n in (20, 2000):
        s = stream(ar1(0.5, 4, n, seed=n), batch_size=5)
        sizes.append(sum(t.numel() for pair in s.state.values() for t in pair))
    assert sizes[0] == sizes[1] == 10 * 4 * 2


def test_result_before_the_end_and_in_float32():
    x = ar1(0.5, 4, 100, seed=3).float()
    s = StreamingDiagnostics(4, (2,), 200, batch_size=10)
    for i in range(100): s.update(x[:, i])
    r = s.result()
    assert torch.isnan(r['rhat']).all() and r['mean'].dtype == torch.float32 and torch.isfinite(r['ess']).all()
    torch.testing.assert_close(r['mean'], x.mean((0, 1)), rtol=0, atol=1e-5)


@pytest.mark.parametrize('thin', [1, 3])
def test_as_a_run_chain_callback(thin):
    model = CountingGaussian()
    sampler = LangevinDynamics(model, step_size=0.1)
    n_steps = 300
    s = StreamingDiagnostics(8, (2,), n_steps // thin, thin=thin)
    ctx = lambda: sampler.context(None, None, 0)
    traj = run_chain(sampler, torch.zeros(8, 2), n_steps, ctx=ctx(), thin=thin, return_trajectory=True, callback=s)
    r = s.result()
    assert s.seen == traj.shape[1] == n_steps // thin
    torch.testing.assert_close(r['mean'], traj.mean((0, 1)), rtol=0, atol=1e-5)
    torch.testing.assert_close(r['rhat'], split_rhat(traj), rtol=1e-4, atol=0)
    plain = run_chain(sampler, torch.zeros(8, 2), n_steps, ctx=ctx(), thin=thin, return_trajectory=True)
    assert torch.equal(plain, traj)                           # the callback changes nothing


CASES = {  # name: (call, exception, argument named, expected words)
    'n_chains 0': (lambda: StreamingDiagnostics(0, (2,), 100), ValueError, 'n_chains', '≥ 1'),
    'n_chains 2.0': (lambda: StreamingDiagnostics(2.0, (2,), 100), TypeError, 'n_chains', 'int'),
    'event_shape 2': (lambda: StreamingDiagnostics(2, 2, 100), TypeError, 'event_shape', 'tuple'),
    'event_shape (0,)': (lambda: StreamingDiagnostics(2, (0,), 100), ValueError, 'event_shape', '≥ 1'),
    'n_draws 3': (lambda: StreamingDiagnostics(2, (2,), 3), ValueError, 'n_draws', '≥ 4'),
    'n_draws None': (lambda: StreamingDiagnostics(2, (2,), None), TypeError, 'n_draws', 'int'),
    'batch_size 0': (lambda: StreamingDiagnostics(2, (2,), 100, batch_size=0), ValueError, 'batch_size', '[1, 50]'),
    'batch_size 51': (lambda: StreamingDiagnostics(2, (2,), 100, batch_size=51), ValueError, 'batch_size', '[1, 50]'),
    'thin 0': (lambda: StreamingDiagnostics(2, (2,), 100, thin=0), ValueError, 'thin', '≥ 1'),
    'x of the wrong shape': (lambda: StreamingDiagnostics(2, (2,), 100).update(torch.zeros(3, 2)), ValueError, 'x', '(2, 2)'),
    'result before a draw': (lambda: StreamingDiagnostics(2, (2,), 100).result(), ValueError, 'result()', 'update'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_arguments_are_refused(case):
    call, kind, name, words = CASES[case]
    with pytest.raises(kind) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(name) and words in message, message


def test_a_bad_callback_shape_fails_before_the_model_runs_twice():
    "A stream announced for the wrong batch fails at the first step: the model has been evaluated only by that step."
    model = CountingGaussian()
    sampler = HamiltonianMonteCarlo(model, step_size=0.1, n_leapfrog_steps=2)
    with pytest.raises(ValueError, match=r'^x must have shape \(5, 2\)'):
        run_chain(sampler, torch.zeros(4, 2), 10, ctx=sampler.context(None, None, 0), callback=StreamingDiagnostics(5, (2,), 10))
    assert model.calls <= 4
