"""Gibbs-with-Gradients and DMALA on binary states (issue 16): moments against exact enumeration (Ising, RBM), detailed
balance of the exact one-step kernel on tiny models, the kernel against one sampled step, acceptance in the diagnostics,
seeded reproducibility, bad input refused before the model is evaluated, and no per-step host sync (steps evaluate
the model inside skip_value_checks(); only the start is checked)."""
import itertools
import math

import pytest
import torch
from torch import nn

from torchebm_nb.core import BaseModel
from torchebm_nb.models import RBM, IsingModel
from torchebm_nb.samplers.gradient_discrete import (DMALA, GibbsWithGradients, dmala_log_flip, flipped,
                                                     gwg_log_proposal)

F64 = torch.float64


def random_ising(n_sites, seed, scale=0.4):
    g = torch.Generator().manual_seed(seed)
    J = torch.randn(n_sites, n_sites, generator=g, dtype=F64).triu(1) * scale
    return IsingModel(J + J.T, torch.randn(n_sites, generator=g, dtype=F64) * 0.3, dtype=F64)


def random_rbm(n_visible, n_hidden, seed):
    rbm = RBM(n_visible, n_hidden, init_std=0.8, generator=seed, dtype=F64)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        rbm.visible_bias.copy_(torch.randn(n_visible, generator=g, dtype=F64) * 0.5)
        rbm.hidden_bias.copy_(torch.randn(n_hidden, generator=g, dtype=F64) * 0.5)
    return rbm


def all_states(n, alphabet):
    bits = ((torch.arange(2 ** n)[:, None] >> torch.arange(n)) & 1).to(F64)
    return bits if alphabet == 'binary' else 2 * bits - 1


def exact_moments(model, alphabet, n):
    states = all_states(n, alphabet)
    with torch.no_grad():
        log_w = -model(states)
    p = torch.softmax(log_w, 0)
    return (p[:, None] * states).sum(0), torch.einsum('s,si,sj->ij', p, states, states)


# ----------------------------------------------------------------------------------------------- moments vs exact
MOMENT_CASES = {
    'gwg-ising-12': (lambda: random_ising(12, 0), GibbsWithGradients, {}, 'spin', 12),
    'dmala-ising-12': (lambda: random_ising(12, 0), DMALA, {'step_size': 0.3}, 'spin', 12),
    'gwg-rbm-10': (lambda: random_rbm(10, 4, 1), GibbsWithGradients, {}, 'binary', 10),
    'dmala-rbm-10': (lambda: random_rbm(10, 4, 1), DMALA, {'step_size': 0.3}, 'binary', 10),
}


@pytest.mark.parametrize('name', list(MOMENT_CASES))
def test_moments_match_exact_enumeration(name):
    make, cls, kwargs, alphabet, n = MOMENT_CASES[name]
    model = make()
    sampler = cls(model, dtype=F64, **kwargs)
    assert sampler.alphabet == alphabet
    B, burn, T = 128, 300, 1500
    traj = sampler.sample(n_samples=B, n_steps=burn + T, return_trajectory=True, generator=7)[:, burn:]
    mean_exact, pair_exact = exact_moments(model, alphabet, n)
    iu = torch.triu_indices(n, n, 1)
    per_chain = torch.cat([traj.mean(1), (traj[..., :, None] * traj[..., None, :]).mean(1)[:, iu[0], iu[1]]], 1)
    exact = torch.cat([mean_exact, pair_exact[iu[0], iu[1]]])
    # the chains are independent: the spread of their time averages gives the MC standard error, autocorrelation included
    se = per_chain.std(0) / math.sqrt(B)
    z = (per_chain.mean(0) - exact).abs() / se.clamp_min(1e-3)
    assert z.max() < 5.0, f"{name}: worst z = {z.max():.2f} at statistic {int(z.argmax())}"


# ----------------------------------------------------------------------------------------------- exact kernels
def exact_kernel(sampler, model, n):
    "K[x, y] from the proposal and acceptance formulas the sampler uses, for every pair of states (no sampling)."
    alphabet, ctx = sampler.alphabet, sampler.context(None, None, None)
    states = all_states(n, alphabet)
    energy, gradient = ctx.energy_and_gradient(states)
    S, K = 2 ** n, torch.zeros(2 ** n, 2 ** n, dtype=F64)
    index_of = {tuple(s.tolist()): k for k, s in enumerate(states)}
    for a in range(S):
        x, g, e = states[a:a + 1], gradient[a:a + 1], energy[a]
        if isinstance(sampler, GibbsWithGradients):
            log_q = gwg_log_proposal(x, g, alphabet)[0]
            for i in range(n):
                y = x.clone(); y[0, i] = flipped(y[0, i], alphabet)
                b = index_of[tuple(y[0].tolist())]
                log_q_back = gwg_log_proposal(y, gradient[b:b + 1], alphabet)[0, i]
                K[a, b] += log_q[i].exp() * torch.exp(torch.clamp(e - energy[b] + log_q_back - log_q[i], max=0.0))
        else:
            h = sampler.step_size
            log_flip, log_stay = (t[0] for t in dmala_log_flip(x, g, h, alphabet))
            for mask in itertools.product([False, True], repeat=n):
                m = torch.tensor(mask)
                y = torch.where(m, flipped(x[0], alphabet), x[0])
                b = index_of[tuple(y.tolist())]
                back_flip, back_stay = (t[0] for t in dmala_log_flip(y[None], gradient[b:b + 1], h, alphabet))
                fwd = torch.where(m, log_flip, log_stay).sum()
                bwd = torch.where(m, back_flip, back_stay).sum()
                K[a, b] += fwd.exp() * torch.exp(torch.clamp(e - energy[b] + bwd - fwd, max=0.0))
        K[a, a] += 1 - K[a].sum()
    return states, energy, K


TINY = {
    'gwg-ising-4': (lambda: random_ising(4, 3, scale=0.8), lambda m: GibbsWithGradients(m, dtype=F64), 4),
    'gwg-rbm-3': (lambda: random_rbm(3, 2, 4), lambda m: GibbsWithGradients(m, dtype=F64), 3),
    'dmala-ising-4': (lambda: random_ising(4, 3, scale=0.8), lambda m: DMALA(m, step_size=0.7, dtype=F64), 4),
    'dmala-rbm-3': (lambda: random_rbm(3, 2, 4), lambda m: DMALA(m, step_size=1.5, dtype=F64), 3),
}


@pytest.mark.parametrize('name', list(TINY))
def test_exact_kernel_satisfies_detailed_balance(name):
    make, build, n = TINY[name]
    model = make()
    _, energy, K = exact_kernel(build(model), model, n)
    pi = torch.softmax(-energy.detach(), 0)
    flow = pi[:, None] * K
    assert (K >= -1e-15).all() and torch.allclose(K.sum(1), torch.ones(2 ** n, dtype=F64), atol=1e-12)
    assert (flow - flow.T).abs().max() < 1e-10
    assert (pi @ K - pi).abs().max() < 1e-10          # hence π is stationary
    assert (K - torch.diag(K.diagonal())).abs().max() > 1e-3   # and the chain does move


@pytest.mark.parametrize('name', list(TINY))
def test_one_sampled_step_follows_the_exact_kernel(name):
    "One `step` from every state, many copies each: the transition frequencies match K within 5 binomial SEs."
    make, build, n = TINY[name]
    model = make()
    sampler = build(model)
    states, _, K = exact_kernel(sampler, model, n)
    copies, S = 4000, 2 ** n
    x = states.repeat_interleave(copies, 0)
    ctx = sampler.context(None, None, 11)
    with torch.no_grad():
        state, info = sampler.step(sampler.init(x, ctx), sampler.current_params(), ctx)
    assert info.acceptance.shape == (S * copies,)
    codes = (((state.x > 0).long() << torch.arange(n)).sum(1)).reshape(S, copies)
    freq = torch.stack([torch.bincount(row, minlength=S) for row in codes]).to(F64) / copies
    se = (K * (1 - K) / copies).sqrt()
    assert ((freq - K).abs() <= 5 * se + 1e-3).all(), f"worst gap {(freq - K).abs().max():.4f}"


# ----------------------------------------------------------------------------------------------- contract
@pytest.mark.parametrize('cls', [GibbsWithGradients, DMALA])
def test_acceptance_in_diagnostics_and_seeded_runs_bit_identical(cls):
    model = random_ising(10, 5)
    sampler = cls(model, dtype=F64)
    out1, diag1 = sampler.sample(n_samples=16, n_steps=40, return_diagnostics=True, generator=123)
    out2, diag2 = sampler.sample(n_samples=16, n_steps=40, return_diagnostics=True, generator=123)
    assert torch.equal(out1, out2) and torch.equal(diag1['acceptance_rate'], diag2['acceptance_rate'])
    rate = diag1['acceptance_rate']
    assert rate.shape == (40,) and (rate >= 0).all() and (rate <= 1).all() and rate.mean() > 0.2
    assert not torch.equal(out1, sampler.sample(n_samples=16, n_steps=40, generator=124))
    assert set(out1.unique().tolist()) <= {-1.0, 1.0}


def test_event_shape_and_given_start():
    "Chains of shape (B, 2, 3) on bits: flattened for the proposal, reshaped back."
    class Quadratic(BaseModel):
        def forward(self, x): return (x.flatten(1) * torch.arange(6.0, dtype=x.dtype)).sum(1) * 0.3
    sampler = GibbsWithGradients(Quadratic(), alphabet='binary')
    out = sampler.sample(x=torch.zeros(5, 2, 3), n_steps=30, generator=0)
    assert out.shape == (5, 2, 3) and set(out.unique().tolist()) <= {0.0, 1.0}
    assert DMALA(Quadratic()).sample(dim=(2, 3), n_samples=4, n_steps=5, generator=0).shape == (4, 2, 3)


# ----------------------------------------------------------------------------------------------- bad input
class CountingBits(BaseModel):
    "A linear energy on bits that counts its evaluations."
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(4))
        self.calls = 0
    def forward(self, x):
        self.calls += 1
        return x @ self.weight


def _gwg(model, **kw): return GibbsWithGradients(model, **kw)
def _dmala(model, **kw): return DMALA(model, **kw)


BAD = {
    'alphabet-unknown': (lambda m: _gwg(m, alphabet='ternary'), ValueError, 'alphabet', "'ternary'"),
    'alphabet-not-str': (lambda m: _dmala(m, alphabet=2), TypeError, 'alphabet', 'int'),
    'step-size-zero': (lambda m: _dmala(m, step_size=0.0), ValueError, 'step_size', 'positive'),
    'step-size-negative': (lambda m: _dmala(m, step_size=-0.5), ValueError, 'step_size', '-0.5'),
    'step-size-nan': (lambda m: _dmala(m, step_size=float('nan')), ValueError, 'step_size', 'nan'),
    'step-size-str': (lambda m: _dmala(m, step_size='big'), TypeError, 'step_size', 'str'),
    'model-not-module': (lambda m: _gwg('energy'), TypeError, 'model', 'str'),
    'x-not-binary': (lambda m: _gwg(m).sample(x=torch.full((2, 4), 0.5), n_steps=2), ValueError, 'x', '0.5'),
    'x-spins-for-bits': (lambda m: _dmala(m).sample(x=-torch.ones(2, 4), n_steps=2), ValueError, 'x', "'binary'"),
    'x-bits-for-spins': (lambda m: _gwg(m, alphabet='spin').sample(x=torch.zeros(2, 4), n_steps=2), ValueError, 'x', "'spin'"),
    'x-integer': (lambda m: _gwg(m).sample(x=torch.ones(2, 4, dtype=torch.long), n_steps=2), TypeError, 'x', 'int64'),
    'x-empty': (lambda m: _dmala(m).sample(x=torch.zeros(0, 4), n_steps=2), ValueError, 'x', '(0, 4)'),
    'x-not-tensor': (lambda m: _gwg(m).sample(x=[[0.0] * 4], n_steps=2), TypeError, 'x', 'list'),
    'n-steps-negative': (lambda m: _gwg(m).sample(n_samples=2, n_steps=-1), ValueError, 'n_steps', '-1'),
    'flag-not-bool': (lambda m: _dmala(m).sample(n_samples=2, n_steps=2, return_diagnostics='yes'), TypeError,
                      'return_diagnostics', 'yes'),
}


@pytest.mark.parametrize('name', list(BAD))
def test_bad_input_is_refused_before_the_model_is_evaluated(name):
    call, error, argument, words = BAD[name]
    model = CountingBits()
    with pytest.raises(error) as info:
        call(model)
    message = str(info.value)
    assert argument in message and words in message, message
    assert model.calls == 0


@pytest.mark.parametrize('make', [_gwg, _dmala])
def test_sensible_values_still_work(make):
    model = CountingBits()
    out = make(model).sample(x=torch.tensor([[0.0, 1.0, 0.0, 1.0]] * 3), n_steps=4, generator=0)
    assert out.shape == (3, 4) and set(out.unique().tolist()) <= {0.0, 1.0}
    assert model.calls > 0
    assert make(CountingBits()).sample(dim=4, n_samples=2, n_steps=2, generator=0).shape == (2, 4)


# ----------------------------------------------------------------------------------------------- no per-step host sync
class RecordingIsing(BaseModel):
    "Wraps an IsingModel; records, at each call, whether the model's value checks (a host sync) were on."
    def __init__(self, model):
        super().__init__(dtype=F64)
        self.model, self.site_values, self.n_sites = model, model.site_values, model.n_sites
        self.checks = []
    def forward(self, s):
        from torchebm_nb.core.validation import value_checks_enabled
        self.checks.append(value_checks_enabled())
        return self.model(s)


@pytest.mark.parametrize('cls', [GibbsWithGradients, DMALA])
def test_steps_evaluate_the_model_with_value_checks_off(cls):
    "The start is checked once (value checks on); every one of the n_steps evaluations runs inside skip_value_checks()."
    model = RecordingIsing(random_ising(6, 2))
    n_steps = 7
    out = cls(model, dtype=F64).sample(n_samples=3, n_steps=n_steps, generator=0)
    assert set(out.unique().tolist()) <= {-1.0, 1.0}
    assert model.checks == [True] + [False] * n_steps   # the start checked once, then no value check in any step


def test_ising_value_checks_only_outside_the_skip_block():
    from torchebm_nb.core.validation import skip_value_checks
    model = random_ising(4, 1)
    halves = torch.full((2, 4), 0.5, dtype=F64)
    with pytest.raises(ValueError, match='s must hold spins'): model(halves)
    with pytest.raises(ValueError, match='s must hold spins'): model.local_fields(halves)
    with skip_value_checks():
        assert model(halves).shape == (2,)                  # the values are not read: no error, no host sync
        assert model.local_fields(halves).shape == (2, 4)
        with pytest.raises(ValueError, match=r'\(B, 4\)'): model(torch.ones(2, 5, dtype=F64))   # shapes still are
    with pytest.raises(ValueError, match='s must hold spins'): model(halves)   # and the checks come back after it
