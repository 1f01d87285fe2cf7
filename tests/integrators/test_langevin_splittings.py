"""The Langevin splittings BAOAB, OBABO and ABOBA (issue 17): the O-step is exact, the friction limits behave as the
maths says, one force evaluation per step, a step is the hand-written composition of its sub-steps, seeded runs repeat,
BAOAB's configurational bias falls like h² and is smaller than OBABO's, and bad input is refused naming the argument."""
import math

import numpy as np
import pytest
import torch

from torchebm_nb.integrators.integrator_utils import get_integrator
from torchebm_nb.integrators.leapfrog import LeapfrogIntegrator
from torchebm_nb.integrators.splitting import (ABOBAIntegrator, BAOABIntegrator, LangevinSplittingIntegrator,
                                               OBABOIntegrator, compile_splitting)

SPLITTINGS = {'baoab': BAOABIntegrator, 'obabo': OBABOIntegrator, 'aboba': ABOBAIntegrator}
F64 = torch.float64


def _state(n=4, d=2, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {'x': torch.randn(n, d, generator=g, dtype=dtype), 'p': torch.randn(n, d, generator=g, dtype=dtype)}


@pytest.mark.parametrize('name', list(SPLITTINGS))
def test_registered_by_name(name):
    integrator = get_integrator(name)
    assert type(integrator) is SPLITTINGS[name] and isinstance(integrator, LangevinSplittingIntegrator)


@pytest.mark.parametrize('tau', [0.01, 0.5, 5.0])
def test_o_step_leaves_the_momentum_law_invariant(tau):
    "A pure O-step (mass (2, 0.5)) maps N(0, M) draws to N(0, M): mean 0 and covariance M within standard errors."
    n, m = 2**17, torch.tensor([2.0, 0.5], dtype=F64)
    integ = BAOABIntegrator(dtype=F64)
    g = torch.Generator().manual_seed(1)
    p = torch.randn(n, 2, generator=g, dtype=F64) * m.sqrt()
    ((_, c, s),) = [sub for sub in integ.coefficients(tau, 1.0, 1.0 / m) if sub[0] == 'O']
    q = c * p + s * torch.randn(n, 2, generator=g, dtype=F64)
    cov = torch.cov(q.T)
    se_var = m * math.sqrt(2.0 / n)   # standard error of a sample variance of N(0, m)
    assert (q.mean(0).abs() < 4 * (m / n).sqrt()).all(), q.mean(0)
    assert ((cov.diagonal() - m).abs() < 4 * se_var).all(), cov
    assert abs(cov[0, 1]) < 4 / math.sqrt(n), cov


def test_tiny_friction_is_leapfrog():
    "γ → 0: the O-step is the identity, so BAOAB is a leapfrog step (B A A B)."
    s = _state(dtype=F64)
    force = lambda x, t: -x**3
    out = BAOABIntegrator(dtype=F64).step(s, 0.1, drift=force, friction=1e-14, generator=torch.Generator().manual_seed(0))
    ref = LeapfrogIntegrator(dtype=F64).step(s, 0.1, drift=force)
    assert torch.allclose(out['x'], ref['x'], atol=1e-9) and torch.allclose(out['p'], ref['p'], atol=1e-9)


def test_huge_friction_forgets_the_momentum():
    "γ → ∞: OBABO's first half O-step resamples p, so the step no longer depends on the starting momentum."
    s = _state(dtype=F64)
    other = {'x': s['x'], 'p': 10 * s['p'] + 3}
    run = lambda st: OBABOIntegrator(dtype=F64).step(st, 0.1, drift=lambda x, t: -x, friction=1e9,
                                                      generator=torch.Generator().manual_seed(2))
    a, b = run(s), run(other)
    assert torch.allclose(a['x'], b['x'], atol=1e-12) and torch.allclose(a['p'], b['p'], atol=1e-12)


@pytest.mark.parametrize('name', list(SPLITTINGS))
def test_one_force_evaluation_per_step(name):
    calls = [0]
    def force(x, t): calls[0] += 1; return -x
    s = _state()
    s['force'] = -s['x']
    out = SPLITTINGS[name]().integrate(s, 0.1, 9, drift=force, friction=1.0)
    assert calls[0] == 9
    assert ('force' in out) == (name != 'aboba')   # ABOBA's force is at the midpoint: never handed on
    if name != 'aboba': assert torch.equal(out['force'], -out['x'])


def _by_hand(word, x, p, h, gamma, m, force, xi):
    "The splitting written out: each letter's occurrences share h; the O-steps use the noises `xi` in order."
    xi = list(xi)
    for letter in word:
        tau = h / word.count(letter)
        if letter == 'A': x = x + tau * p / m
        elif letter == 'B': p = p + tau * force(x)
        else:
            c = math.exp(-gamma * tau)
            p = c * p + math.sqrt(1 - c * c) * m.sqrt() * xi.pop(0)
    return x, p


@pytest.mark.parametrize('name', list(SPLITTINGS))
def test_step_is_the_composition_of_its_sub_steps(name):
    s = _state(3, 2, F64, seed=4)
    m, h, gamma, force = torch.tensor([2.0, 0.5], dtype=F64), 0.2, 1.5, (lambda x, t=None: -x**3 + 0.5 * x)
    word = SPLITTINGS[name].splitting
    g = torch.Generator().manual_seed(7)
    xi = [torch.randn(3, 2, generator=g, dtype=F64) for _ in range(word.count('O'))]
    out = SPLITTINGS[name](dtype=F64).step(s, h, m, drift=force, friction=gamma, generator=torch.Generator().manual_seed(7))
    x, p = _by_hand(word, s['x'], s['p'], h, gamma, m, force, xi)
    assert torch.allclose(out['x'], x, atol=1e-14, rtol=0) and torch.allclose(out['p'], p, atol=1e-14, rtol=0)


@pytest.mark.parametrize('name', list(SPLITTINGS))
def test_seeded_runs_are_bit_identical_and_inputs_untouched(name):
    s = _state()
    before = {k: v.clone() for k, v in s.items()}
    run = lambda: SPLITTINGS[name]().integrate(s, 0.1, 20, torch.tensor([1.0, 2.0]), drift=lambda x, t: -x,
                                               friction=0.7, generator=torch.Generator().manual_seed(11))
    a, b = run(), run()
    assert torch.equal(a['x'], b['x']) and torch.equal(a['p'], b['p'])
    assert all(torch.equal(s[k], before[k]) for k in s)


def _second_moment_bias(cls, h, n=2**18, time=200.0, burn=8.0, seed=0):
    "Time- and chain-averaged x² minus its exact value 2Γ(3/4)/Γ(1/4) on E = x⁴/4 (γ = 1)."
    g = torch.Generator().manual_seed(seed)
    s = {'x': 0.8 * torch.randn(n, 1, generator=g), 'p': torch.randn(n, 1, generator=g)}
    integ, drift, total, count = cls(), (lambda x, t: -x**3), torch.zeros((), dtype=F64), 0
    with torch.no_grad():
        s = integ.integrate(s, h, int(burn / h), drift=drift, friction=1.0, generator=g)
        for _ in range(int(time / h)):
            s = integ.step(s, h, drift=drift, friction=1.0, generator=g)
            total += s['x'].square().mean(dtype=F64); count += 1
    return total.item() / count - 2 * math.gamma(0.75) / math.gamma(0.25)


def test_baoab_bias_is_second_order_and_smaller_than_obabo():
    """BAOAB's bias on the quartic is ≈ −0.023 h² (Leimkuhler–Matthews' leading term), a few 1e-3 here against a
    Monte-Carlo error of ≈ 5e-5 (2¹⁸ chains, 200 time units); OBABO's is several times larger at the same step."""
    steps = [0.2, 0.25, 0.3, 0.35]
    bias = [_second_moment_bias(BAOABIntegrator, h) for h in steps]
    slope = np.polyfit(np.log(steps), np.log(np.abs(bias)), 1)[0]
    assert 1.6 <= slope <= 2.4, (slope, bias)
    obabo = _second_moment_bias(OBABOIntegrator, 0.3, n=2**15, time=50.0)
    assert abs(obabo) > 2 * abs(bias[2]), (obabo, bias)


def test_baoab_is_exact_on_a_gaussian_and_obabo_is_not():
    "E = x²/2, h = 1 < 2/ω: BAOAB's x-variance is 1 (exact), OBABO's the leapfrog shadow value 1/(1 − h²/4) = 4/3."
    def variance(cls):
        g = torch.Generator().manual_seed(3)
        s = {'x': torch.randn(2**14, 1, generator=g, dtype=F64), 'p': torch.randn(2**14, 1, generator=g, dtype=F64)}
        integ, acc = cls(dtype=F64), []
        s = integ.integrate(s, 1.0, 20, drift=lambda x, t: -x, friction=1.0, generator=g)
        for _ in range(200):
            s = integ.step(s, 1.0, drift=lambda x, t: -x, friction=1.0, generator=g); acc.append(s['x'].square().mean())
        return torch.stack(acc).mean().item()
    # standard error: var(x²) = 2, ~200 steps with autocorrelation time ~ a few steps over 2¹⁴ chains: ≈ 0.005
    assert abs(variance(BAOABIntegrator) - 1.0) < 0.025
    assert abs(variance(OBABOIntegrator) - 4 / 3) < 0.035


X = {'x': torch.ones(3, 2), 'p': torch.zeros(3, 2)}
FORCE = lambda x, t: -x
CASES = {  # name: (call, exception type, argument named, expected words)
    'friction=0': (lambda: BAOABIntegrator().step(X, 0.1, drift=FORCE, friction=0.0), ValueError, 'friction', 'positive'),
    'friction=-1': (lambda: BAOABIntegrator().step(X, 0.1, drift=FORCE, friction=-1.0), ValueError, 'friction', 'positive'),
    'friction=nan': (lambda: BAOABIntegrator().step(X, 0.1, drift=FORCE, friction=math.nan), ValueError, 'friction', 'finite'),
    'friction=inf': (lambda: BAOABIntegrator().step(X, 0.1, drift=FORCE, friction=math.inf), ValueError, 'friction', 'finite'),
    'friction=True': (lambda: BAOABIntegrator().step(X, 0.1, drift=FORCE, friction=True), TypeError, 'friction', 'real number'),
    'friction="1"': (lambda: OBABOIntegrator().step(X, 0.1, drift=FORCE, friction='1'), TypeError, 'friction', 'real number'),
    'friction missing': (lambda: ABOBAIntegrator().step(X, 0.1, drift=FORCE), ValueError, 'friction', 'required'),
    'mass=0': (lambda: BAOABIntegrator().step(X, 0.1, 0.0, drift=FORCE, friction=1.0), ValueError, 'mass', 'positive'),
    'mass=-2': (lambda: BAOABIntegrator().step(X, 0.1, -2.0, drift=FORCE, friction=1.0), ValueError, 'mass', 'positive'),
    'mass tensor ≤ 0': (lambda: BAOABIntegrator().step(X, 0.1, torch.tensor([1.0, 0.0]), drift=FORCE, friction=1.0),
                        ValueError, 'mass', '> 0'),
    'mass wrong shape': (lambda: BAOABIntegrator().step(X, 0.1, torch.ones(3), drift=FORCE, friction=1.0),
                         ValueError, 'mass', 'one value per element'),
    'state without p': (lambda: BAOABIntegrator().step({'x': torch.ones(3, 2)}, 0.1, drift=FORCE, friction=1.0),
                        ValueError, 'state', "'p'"),
    'p wrong shape': (lambda: BAOABIntegrator().step({'x': torch.ones(3, 2), 'p': torch.ones(3, 3)}, 0.1, drift=FORCE, friction=1.0),
                      ValueError, "state['p']", 'shape'),
    'force wrong shape': (lambda: BAOABIntegrator().step({**X, 'force': torch.ones(2, 2)}, 0.1, drift=FORCE, friction=1.0),
                          ValueError, "state['force']", 'shape'),
    'state not a dict': (lambda: BAOABIntegrator().step(torch.ones(3, 2), 0.1, drift=FORCE, friction=1.0), TypeError, 'state', 'dict'),
    'step_size=-0.1': (lambda: BAOABIntegrator().step(X, -0.1, drift=FORCE, friction=1.0), ValueError, 'step_size', '> 0'),
    'step_size=0': (lambda: BAOABIntegrator().step(X, 0.0, drift=FORCE, friction=1.0), ValueError, 'step_size', 'non-zero'),
    'n_steps=0': (lambda: BAOABIntegrator().integrate(X, 0.1, 0, drift=FORCE, friction=1.0), ValueError, 'n_steps', ''),
    'drift missing': (lambda: BAOABIntegrator().step(X, 0.1, friction=1.0), ValueError, 'BAOABIntegrator needs the callable `drift`', ''),
    'splitting "BAB"': (lambda: compile_splitting('BAB'), ValueError, 'splitting', 'A, B and O'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_input_is_refused_naming_the_argument(case):
    call, kind, name, words = CASES[case]
    with pytest.raises(kind) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(name) and words in message, message


def test_bad_input_never_evaluates_the_force():
    calls = [0]
    def force(x, t): calls[0] += 1; return -x
    for bad in (dict(friction=0.0), dict(friction=1.0, mass=-1.0), dict(friction=1.0, mass=torch.ones(5))):
        friction = bad.pop('friction')
        with pytest.raises(ValueError): BAOABIntegrator().step(X, 0.1, bad.get('mass'), drift=force, friction=friction)
    assert calls[0] == 0


def test_sensible_values_still_work():
    out = BAOABIntegrator().step(X, torch.full((3,), 0.1), torch.tensor([1.0, 2.0]), drift=FORCE, friction=1e-3)
    assert out['x'].shape == (3, 2) and torch.isfinite(out['p']).all()
    assert OBABOIntegrator().integrate(X, 0.1, 2, 2.0, drift=FORCE, friction=5, inference_mode=True)['x'].shape == (3, 2)
