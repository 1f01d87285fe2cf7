"""Every integrator refuses, before it calls the field, a step size that is NaN, infinite or zero, a state that is not
a dict / lacks a key / has a momentum shaped unlike x, and a bad n_steps or time grid (issue 14: "a NaN step_size passed
to an integrator's step", "an integrator state that is not a dict"); adaptive integrators stop at once on a field that
returns NaN instead of shrinking the step for thousands of attempts."""
import math

import pytest
import torch

from torchebm_nb.integrators.integrator_utils import INTEGRATOR_REGISTRY, get_integrator

nan, inf = math.nan, math.inf
NAMES = sorted(set(INTEGRATOR_REGISTRY) - {'generalized_leapfrog', 'euler',   # aliases of other names
                                           'baoab', 'obabo', 'aboba'})   # need 'p' and friction: tests/integrators/test_langevin_splittings.py
SYMPLECTIC = {'leapfrog', 'generalised_leapfrog'}
ADAPTIVE = ['adaptive_heun', 'bosh3', 'dopri5', 'dopri8']


class Counter:
    "The field, counting its calls: drift(x, t), or force/velocity(x, p, t) for the generalised leapfrog."
    def __init__(self, value=None): self.calls, self.value = 0, value
    def __call__(self, *args):
        self.calls += 1
        return -args[0] if self.value is None else self.value(*args)


def fields(name, counter):
    if name == 'generalised_leapfrog': return dict(force=counter, velocity=lambda x, p, t: p)
    return dict(drift=counter)


def good_state(name):
    return {'x': torch.ones(3, 2), 'p': torch.zeros(3, 2)} if name in SYMPLECTIC else {'x': torch.ones(3, 2)}


# name: (how the integrator is called, argument named, expected words, exception type)
CASES = {
    'step_size=nan': (lambda ig, s, f: ig.step(s, nan, **f), 'step_size', 'must be finite', ValueError),
    'step_size=inf': (lambda ig, s, f: ig.step(s, inf, **f), 'step_size', 'must be finite', ValueError),
    'step_size=-inf': (lambda ig, s, f: ig.step(s, -inf, **f), 'step_size', 'must be finite', ValueError),
    'step_size=0': (lambda ig, s, f: ig.step(s, 0.0, **f), 'step_size', 'must be non-zero', ValueError),
    'step_size=0 (int)': (lambda ig, s, f: ig.step(s, 0, **f), 'step_size', 'must be non-zero', ValueError),
    'step_size=None': (lambda ig, s, f: ig.step(s, None, **f), 'step_size', 'is required', ValueError),
    'step_size="0.1"': (lambda ig, s, f: ig.step(s, '0.1', **f), 'step_size', 'must be a real number', TypeError),
    'step_size tensor nan': (lambda ig, s, f: ig.step(s, torch.tensor(nan), **f), 'step_size', 'must be finite', ValueError),
    'step_size per-chain inf': (lambda ig, s, f: ig.step(s, torch.tensor([0.1, inf, 0.1]), **f), 'step_size', 'must be finite', ValueError),
    'integrate step_size=nan': (lambda ig, s, f: ig.integrate(s, nan, 3, **f), 'step_size', 'must be finite', ValueError),
    'integrate step_size=0': (lambda ig, s, f: ig.integrate(s, 0.0, 3, **f), 'step_size', 'must be non-zero', ValueError),
    'integrate step_size tensor inf': (lambda ig, s, f: ig.integrate(s, torch.tensor(inf), 3, **f), 'step_size', 'must be finite', ValueError),
    'integrate n_steps=0': (lambda ig, s, f: ig.integrate(s, 0.1, 0, **f), 'n_steps', 'must be positive', ValueError),
    'integrate n_steps=2.5': (lambda ig, s, f: ig.integrate(s, 0.1, 2.5, **f), 'n_steps', 'must be an int', TypeError),
    'state a list': (lambda ig, s, f: ig.step([s['x']], 0.1, **f), 'state', 'must be a dict', TypeError),
    'state a tensor': (lambda ig, s, f: ig.integrate(s['x'], 0.1, 3, **f), 'state', 'must be a dict', TypeError),
    'state without x': (lambda ig, s, f: ig.step({k: v for k, v in s.items() if k != 'x'} or {'y': s['x']}, 0.1, **f),
                        'state', "must have the key 'x'", ValueError),
    'state x not a tensor': (lambda ig, s, f: ig.step({**s, 'x': [[1.0, 1.0]] * 3}, 0.1, **f), "state['x']", 'must be a floating torch.Tensor', TypeError),
    'state x integer': (lambda ig, s, f: ig.step({**s, 'x': torch.ones(3, 2, dtype=torch.long)}, 0.1, **f), "state['x']", 'floating', TypeError),
    'state x 0-d': (lambda ig, s, f: ig.integrate({**s, 'x': torch.tensor(1.0)}, 0.1, 3, **f), "state['x']", 'batch dimension', ValueError),
}
SYMPLECTIC_CASES = {
    'state without p': (lambda ig, s, f: ig.step({'x': s['x']}, 0.1, **f), 'state', "must have the key 'p'", ValueError),
    'integrate state without p': (lambda ig, s, f: ig.integrate({'x': s['x']}, 0.1, 3, **f), 'state', "must have the key 'p'", ValueError),
    'p of another shape': (lambda ig, s, f: ig.step({**s, 'p': torch.zeros(3, 3)}, 0.1, **f), "state['p']",
                           "must have the shape of state['x'] (3, 2); got (3, 3)", ValueError),
    'integrate p of another shape': (lambda ig, s, f: ig.integrate({**s, 'p': torch.zeros(2)}, 0.1, 3, **f), "state['p']", 'got (2,)', ValueError),
    'p not a tensor': (lambda ig, s, f: ig.step({**s, 'p': 0.0}, 0.1, **f), "state['p']", 'must be a torch.Tensor', TypeError),
}
LEAPFROG_CASES = {
    'force of another shape': (lambda ig, s, f: ig.step({**s, 'force': torch.zeros(3, 1)}, 0.1, **f), "state['force']", 'got (3, 1)', ValueError),
    'mass=nan': (lambda ig, s, f: ig.step(s, 0.1, mass=nan, **f), 'mass', 'must be finite', ValueError),
    'mass=-1': (lambda ig, s, f: ig.step(s, 0.1, mass=-1.0, **f), 'mass', 'must be positive', ValueError),
    'integrate mass=0': (lambda ig, s, f: ig.integrate(s, 0.1, 3, mass=0.0, **f), 'mass', 'must be positive', ValueError),
}
SDE = {'euler_maruyama', 'backward_euler_maruyama', 'heun'}   # the stochastic ones take noise_scale / diffusion
SDE_CASES = {
    'noise_scale=inf': (lambda ig, s, f: ig.step(s, 0.1, noise_scale=inf, **f), 'noise_scale', 'must be finite', ValueError),
    'noise_scale=nan': (lambda ig, s, f: ig.step(s, 0.1, noise_scale=nan, **f), 'noise_scale', 'must be finite', ValueError),
    'noise_scale=inf with noise given': (lambda ig, s, f: ig.step(s, 0.1, noise_scale=inf, noise=torch.zeros(3, 2), **f),
                                         'noise_scale', 'must be finite', ValueError),
    'diffusion=inf': (lambda ig, s, f: ig.step(s, 0.1, diffusion=inf, **f), 'diffusion', 'must be finite', ValueError),
    'diffusion=-1': (lambda ig, s, f: ig.step(s, 0.1, diffusion=-1.0, **f), 'diffusion', 'must be ≥ 0', ValueError),
}
GRID_CASES = {   # Runge–Kutta integrators take a time grid
    'grid with nan': (lambda ig, s, f: ig.integrate(s, 0.1, 3, t=torch.tensor([0.0, nan, 1.0]), **f), 't', 'finite times', ValueError),
    'grid with inf': (lambda ig, s, f: ig.integrate(s, 0.1, 3, t=torch.tensor([0.0, inf]), **f), 't', 'finite times', ValueError),
    'grid not monotone': (lambda ig, s, f: ig.integrate(s, 0.1, 3, t=torch.tensor([0.0, 1.0, 0.5]), **f), 't', 'must be monotone', ValueError),
    'grid of one point': (lambda ig, s, f: ig.integrate(s, 0.1, 3, t=torch.tensor([0.0]), **f), 't', 'at least 2 points', ValueError),
    'step t=nan': (lambda ig, s, f: ig.step(s, 0.1, t=nan, **f), 't', 'must be finite', ValueError),
}


def all_cases():
    for name in NAMES:
        table = dict(CASES)
        if name in SYMPLECTIC: table.update(SYMPLECTIC_CASES)
        else: table.update(GRID_CASES)
        if name == 'leapfrog': table.update(LEAPFROG_CASES)
        if name in SDE: table.update(SDE_CASES)
        for case in table: yield pytest.param(name, table[case], id=f"{name}-{case}")


@pytest.mark.parametrize('name,case', list(all_cases()))
def test_bad_input_is_refused_before_the_field_is_called(name, case):
    call, argument, words, error = case
    counter = Counter()
    with pytest.raises(error) as caught:
        call(get_integrator(name), good_state(name), fields(name, counter))
    message = str(caught.value)
    assert message.startswith(argument) and words in message, message
    assert counter.calls == 0


@pytest.mark.parametrize('name', NAMES)
def test_sensible_input_still_works(name):
    ig, counter = get_integrator(name), Counter()
    state, f = good_state(name), fields(name, counter)
    for h in (0.1, -0.1, torch.tensor(0.1), torch.tensor([0.1, 0.0, -0.1])):     # negative: backwards; per-chain zeros
        out = ig.step(state, h, **f)
        assert out['x'].shape == (3, 2) and torch.isfinite(out['x']).all()
    assert torch.isfinite(ig.integrate(state, 0.1, 3, **f)['x']).all()
    if name not in SYMPLECTIC:
        for grid in ([1.0, 0.5, 0.0], [0.0, 0.5, 0.5, 1.0]):     # backwards; a repeated time is an empty step
            assert torch.isfinite(ig.integrate(state, None, 3, t=torch.tensor(grid), **f)['x']).all()
    assert counter.calls > 0


def test_leapfrog_runs_backwards_with_a_negative_step():
    lf, force = get_integrator('leapfrog', dtype=torch.float64), lambda x, t: -x
    s0 = {'x': torch.randn(4, 2, dtype=torch.float64), 'p': torch.randn(4, 2, dtype=torch.float64)}
    there = lf.integrate(s0, 0.1, 7, drift=force)
    back = lf.integrate({'x': there['x'], 'p': there['p']}, -0.1, 7, drift=force)
    torch.testing.assert_close(back['x'], s0['x'])


# ---- adaptive integrators and a field that is not finite -------------------------------------------------------------
@pytest.mark.parametrize('name', ADAPTIVE)
def test_a_nan_field_stops_the_run_at_once(name):
    counter = Counter(lambda x, t: x * nan)
    with pytest.raises(FloatingPointError, match=r'drift returned non-finite values \(NaN or inf\) at t=0 at the current state'):
        get_integrator(name).integrate({'x': torch.ones(4, 2)}, 0.1, 10, drift=counter)
    assert counter.calls <= 14, counter.calls        # one attempt: the stages of a single step


@pytest.mark.parametrize('tstar', [0.5, 0.3137, 0.999])
@pytest.mark.parametrize('name', ADAPTIVE)
def test_a_field_that_turns_nan_later_stops_where_it_breaks(name, tstar):
    counter = Counter(lambda x, t: torch.where(t[:, None] > tstar, nan, -x))
    with pytest.raises(FloatingPointError) as caught:
        get_integrator(name).integrate({'x': torch.ones(4, 2)}, 0.1, 10, drift=counter)
    message = str(caught.value)
    bad, good = (float(v) for v in __import__('re').findall(r't=([0-9.e+-]+)', message)[:2])
    assert 'even at the current state' in message and good <= tstar < bad, message   # the break lies between the two times
    assert counter.calls < 60, counter.calls        # a handful of attempts, not thousands


@pytest.mark.parametrize('name', ADAPTIVE)
def test_an_initial_state_with_nan_names_state(name):
    with pytest.raises(ValueError, match=r"state\['x'\] must be finite"):
        get_integrator(name).integrate({'x': torch.tensor([[nan, 1.0]])}, 0.1, 10, drift=lambda x, t: -x)


@pytest.mark.parametrize('name', ADAPTIVE)
def test_a_step_that_overflows_is_only_rejected(name):
    "A first step so long that a stage overflows (NaN) is rejected and shortened, as before: the field is finite there."
    counter = Counter(lambda x, t: -x + 0.0 * (-1000 * x).exp())    # NaN only where a stage overshoots below x = -0.71
    out = get_integrator(name, dtype=torch.float64).integrate({'x': torch.ones(1, 1, dtype=torch.float64)}, 5.0, 1,
                                                              drift=counter, t=torch.tensor([0.0, 3.0]))
    assert abs(out['x'].item() - math.exp(-3.0)) < 1e-3, out['x']
