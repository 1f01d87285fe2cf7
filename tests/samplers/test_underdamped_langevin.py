"""UnderdampedLangevin (issue 17): Gaussian moments within Monte-Carlo error for each splitting, a run resumes exactly
from its saved state (momentum and force carried over), more effective samples per gradient than overdamped Langevin on
the tutorial's rotated ill-conditioned Gaussian, and bad arguments refused naming the argument before the model runs."""
import math

import pytest
import torch

from torchebm_nb.core import BaseModel, ConstantScheduler, GaussianModel
from torchebm_nb.integrators.splitting import BAOABIntegrator, OBABOIntegrator
from torchebm_nb.samplers import LangevinDynamics
from torchebm_nb.samplers.underdamped_langevin import UnderdampedLangevin, UnderdampedState
from torchebm_nb.utils import effective_sample_size

from counting import CountingGaussian


class Quadratic(BaseModel):
    "E(x) = ½ xᵀ P x with a closed-form gradient."
    def __init__(self, precision):
        super().__init__()
        self.register_buffer('P', precision)
    def forward(self, x): return 0.5 * ((x @ self.P) * x).sum(-1)
    def gradient(self, x): return x @ self.P


def _correlated(d, rho=0.6):
    idx = torch.arange(d, dtype=torch.float64)
    return (rho ** (idx[:, None] - idx[None, :]).abs()).float()   # AR(1) covariance, unit variances


@pytest.mark.parametrize('name', ['baoab', 'obabo', 'aboba'])
@pytest.mark.parametrize('d', [2, 10])
def test_gaussian_moments(name, d):
    """Mean and covariance of the last draws of 4096 chains after 200 steps (h = 0.1, γ = 1, about 20 relaxation
    times). Tolerances are 5 standard errors of a mean (1/√n) and of a covariance entry (√((1 + ρ²)/n)), plus the
    splitting's O(h²) variance bias (zero for BAOAB on a Gaussian, ≤ h²/4 for the others)."""
    cov = _correlated(d)
    sampler = UnderdampedLangevin(Quadratic(torch.linalg.inv(cov)), step_size=0.1, friction=1.0, integrator=name)
    n = 4096
    x = sampler.sample(dim=d, n_samples=n, n_steps=200, generator=torch.Generator().manual_seed(d))
    bias = 0.0 if name == 'baoab' else 0.1**2 / 4 * 2.5   # largest eigenvalue of the AR(1) precision ≲ 4
    assert (x.mean(0).abs() < 5 / math.sqrt(n)).all(), x.mean(0)
    err = (torch.cov(x.T) - cov).abs()
    assert (err < 5 * torch.sqrt((1 + cov**2) / n) + bias).all(), err.max()


def test_each_splitting_by_name_and_instance():
    m = CountingGaussian()
    assert type(UnderdampedLangevin(m).integrator) is BAOABIntegrator
    assert type(UnderdampedLangevin(m, integrator='obabo').integrator) is OBABOIntegrator
    own = OBABOIntegrator()
    assert UnderdampedLangevin(m, integrator=own).integrator is own


def test_resume_is_bit_identical():
    "N steps, the state saved, then M steps from it, equal N + M steps (momentum and force carried over)."
    sampler = UnderdampedLangevin(Quadratic(torch.eye(3) * 2), step_size=0.2, friction=0.5, mass=torch.tensor([1.0, 2.0, 0.5]))
    params = sampler.current_params()
    def run(n, state=None, seed=3, ctx=None):
        ctx = ctx or sampler.context(None, None, torch.Generator().manual_seed(seed))
        state = state or sampler.init(torch.ones(16, 3), ctx)
        for _ in range(n): state, _ = sampler.step(state, params, ctx)
        return state, ctx
    whole, _ = run(13)
    half, ctx = run(6)
    saved = UnderdampedState(half.x.clone(), half.p.clone(), half.force.clone())
    rest, _ = run(7, saved, ctx=ctx)
    assert torch.equal(rest.x, whole.x) and torch.equal(rest.p, whole.p) and torch.equal(rest.force, whole.force)


def test_one_gradient_per_step_and_seeded_runs_repeat():
    model = CountingGaussian()
    sampler = UnderdampedLangevin(model, step_size=0.1)
    a = sampler.sample(x=torch.zeros(8, 2), n_steps=10, generator=5)
    assert model.calls == 11            # one force at init, then one per step
    assert torch.equal(a, sampler.sample(x=torch.zeros(8, 2), n_steps=10, generator=5))


def test_momentum_beats_overdamped_langevin_per_gradient():
    """The tutorial's 20-D Gaussian (scales 0.1 … 3, rotated). Each sampler runs at half its linear stability bound on
    the stiffest direction (σ_min = 0.1): overdamped Euler–Maruyama is stable for h < 2σ_min² (h = 0.01), BAOAB for
    h < 2σ_min (h = 0.1); both take one gradient per step, so ESS per gradient is ESS per step. Worst coordinate."""
    D = 20
    rotation, _ = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(0)))
    scales = torch.logspace(math.log10(0.1), math.log10(3.0), D)
    target = GaussianModel(torch.zeros(D), rotation @ torch.diag(scales**2) @ rotation.T)
    x0 = torch.randn(16, D, generator=torch.Generator().manual_seed(1)) * scales @ rotation.T   # started in the target
    ess = {}
    for name, sampler in (('overdamped', LangevinDynamics(target, step_size=0.01)),
                          ('underdamped', UnderdampedLangevin(target, step_size=0.1, friction=0.5))):
        traj = sampler.sample(x=x0, n_steps=600, return_trajectory=True, generator=2)
        ess[name] = effective_sample_size(traj).min().item() / (16 * 600)
    assert ess['underdamped'] > 3 * ess['overdamped'], ess


def test_friction_may_be_scheduled():
    sampler = UnderdampedLangevin(CountingGaussian(), friction=ConstantScheduler(2.0))
    assert sampler.current_params().friction == 2.0
    assert sampler.sample(x=torch.zeros(4, 2), n_steps=3, generator=0).shape == (4, 2)


CASES = {  # name: (call on a model, exception type, argument named, expected words)
    'friction=0': (lambda m: UnderdampedLangevin(m, friction=0.0), ValueError, 'friction', 'positive'),
    'friction=-1': (lambda m: UnderdampedLangevin(m, friction=-1.0), ValueError, 'friction', 'positive'),
    'friction=nan': (lambda m: UnderdampedLangevin(m, friction=math.nan), ValueError, 'friction', 'finite'),
    'friction=inf': (lambda m: UnderdampedLangevin(m, friction=math.inf), ValueError, 'friction', 'finite'),
    'friction=True': (lambda m: UnderdampedLangevin(m, friction=True), TypeError, 'friction', 'number'),
    'friction="high"': (lambda m: UnderdampedLangevin(m, friction='high'), TypeError, 'friction', "'high'"),
    'step_size=0': (lambda m: UnderdampedLangevin(m, step_size=0.0), ValueError, 'step_size', 'positive'),
    'step_size=-0.1': (lambda m: UnderdampedLangevin(m, step_size=-0.1), ValueError, 'step_size', 'positive'),
    'mass=0': (lambda m: UnderdampedLangevin(m, mass=0.0), ValueError, 'mass', 'positive'),
    'mass=-1': (lambda m: UnderdampedLangevin(m, mass=-1.0), ValueError, 'mass', 'positive'),
    'mass tensor with 0': (lambda m: UnderdampedLangevin(m, mass=torch.tensor([1.0, 0.0])), ValueError, 'mass', 'positive'),
    'mass "1"': (lambda m: UnderdampedLangevin(m, mass='1'), TypeError, 'mass', 'str'),
    'integrator "nope"': (lambda m: UnderdampedLangevin(m, integrator='nope'), ValueError, 'Unknown integrator', "'nope'"),
    'integrator "leapfrog"': (lambda m: UnderdampedLangevin(m, integrator='leapfrog'), TypeError, 'UnderdampedLangevin',
                              'LangevinSplittingIntegrator'),
    'mass of the wrong shape': (lambda m: UnderdampedLangevin(m, mass=torch.ones(3)).sample(x=torch.zeros(4, 2), n_steps=2),
                                ValueError, 'mass', 'event shape'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_arguments_are_refused_before_the_model_runs(case):
    call, kind, name, words = CASES[case]
    model = CountingGaussian()
    with pytest.raises(kind) as caught:
        call(model)
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
    assert model.calls == 0


def test_sensible_values_still_work():
    model = CountingGaussian()
    s = UnderdampedLangevin(model, step_size=0.05, friction=1e-3, mass=torch.tensor([1.0, 4.0]), integrator='aboba')
    assert s.sample(x=torch.zeros(4, 2), n_steps=3, generator=0).shape == (4, 2)
    assert 'ABOBAIntegrator' in repr(s) and 'friction=0.001' in repr(s)


@pytest.mark.parametrize('thin', [1, 3])
def test_whole_chain_path_equals_the_step_loop(thin):
    "`sample()` steps private copies in place (InPlaceChainPath); a callback forces the step loop: same chains, start untouched."
    from torchebm_nb.core.mcmc import run_chain
    sampler = UnderdampedLangevin(Quadratic(torch.tensor([[2.0, 0.3], [0.3, 1.0]])), step_size=0.2, friction=0.7,
                                  mass=torch.tensor([1.0, 2.0]))
    x0 = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    start = x0.clone()
    run = lambda **kw: run_chain(sampler, x0, 40, ctx=sampler.context(None, None, torch.Generator().manual_seed(9)),
                                 thin=thin, return_trajectory=True, return_diagnostics=True, **kw)
    (a, da), (b, db) = run(), run(callback=lambda i, state, info: None)
    assert torch.equal(a, b) and torch.equal(x0, start)
    assert all(torch.equal(da[k], db[k]) for k in da)
