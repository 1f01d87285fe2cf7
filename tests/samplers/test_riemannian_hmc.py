"""Riemannian-manifold HMC: exactness on targets with known laws, agreement with HMC at G = I, the force against
finite differences, failure handling, the deprecated solver arguments, and every documented error.

Statistical tolerances are 4 Monte-Carlo standard errors computed from the sample itself. Chains are independent,
start away from the target (all at one point) and only their final states are used, so the draws are i.i.d. and
the test sees whether the chain reached the right law, not only whether it stayed there.
"""
import inspect
import math
import warnings

import pytest
import torch

from torchebm_nb.core import BaseModel, DoubleWellModel, GaussianModel, HarmonicModel
from torchebm_nb.core.base_module import _WARNED_ONCE
from torchebm_nb._deprecation import TorchEBMDeprecationWarning
from torchebm_nb.integrators import GeneralisedLeapfrogIntegrator, LeapfrogIntegrator
from torchebm_nb.samplers.hmc import HamiltonianMonteCarlo
from torchebm_nb.samplers.riemannian_hmc import RiemannianManifoldHMC, _Geometry, _SOLVER_DEPRECATION

Z = 4.0  # standard errors
F64 = torch.float64


def seed(s):
    return torch.Generator().manual_seed(s)


def assert_moments_within(samples, mean, cov, what):
    """Mean and every covariance entry against the truth, in standard errors of the estimators."""
    n = samples.shape[0]
    z_mean = (samples.mean(0) - mean) / (samples.std(0) / math.sqrt(n))
    c = samples - samples.mean(0)
    products = c[:, :, None] * c[:, None, :]
    z_cov = (products.mean(0) - cov) / (products.std(0) / math.sqrt(n))
    assert bool((z_mean.abs() < Z).all()), f"{what}: mean z {z_mean.tolist()} (means {samples.mean(0).tolist()})"
    assert bool((z_cov.abs() < Z).all()), f"{what}: cov z {z_cov.tolist()}\n{products.mean(0)}\nvs\n{cov}"
    return z_mean, z_cov


def start_at(point, n):
    return torch.tensor(point, dtype=F64).expand(n, -1).clone()


# ---- exactness -----------------------------------------------------------------------------------------------
def test_constant_metric_samples_a_correlated_gaussian():
    mean = torch.tensor([1.0, -1.0], dtype=F64)
    cov = torch.tensor([[1.0, 0.95], [0.95, 1.0]], dtype=F64)
    model = GaussianModel(mean, cov, dtype=F64)
    precision = torch.linalg.inv(cov)
    sampler = RiemannianManifoldHMC(model, lambda x: precision.expand(x.shape[0], 2, 2), step_size=0.5,
                                    n_leapfrog_steps=3, dtype=F64)
    xs, diag = sampler.sample(x=start_at([3.0, 2.0], 4000), n_steps=25, return_diagnostics=True, generator=seed(0))
    assert_moments_within(xs, mean, cov, 'constant metric Σ⁻¹')
    assert diag['acceptance_rate'][5:].mean() > 0.9


def diagonal_growing_metric(x):
    return torch.diag_embed(1 + x.square())


def test_position_dependent_metric_keeps_the_target_exact():
    """G(x) = diag(1 + x²) on N(0, I): only a correct log-det and quadratic-form derivative give N(0, I)."""
    sampler = RiemannianManifoldHMC(HarmonicModel(dtype=F64), diagonal_growing_metric, step_size=0.4,
                                    n_leapfrog_steps=4, dtype=F64)
    xs, diag = sampler.sample(x=start_at([2.0, -1.5], 4000), n_steps=20, return_diagnostics=True, generator=seed(1))
    assert_moments_within(xs, torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), 'diag(1 + x²) on N(0, I)')
    assert diag['acceptance_rate'][5:].mean() > 0.8


def test_dense_position_dependent_metric_on_a_correlated_gaussian():
    """A metric with x-dependent off-diagonal entries (every term of ∂G/∂x is non-zero)."""
    mean = torch.tensor([0.5, -0.5], dtype=F64)
    cov = torch.tensor([[1.0, 0.6], [0.6, 2.0]], dtype=F64)

    def metric(x):
        a, b = x[:, 0], x[:, 1]
        off = 0.4 * torch.tanh(a * b)
        return torch.stack([torch.stack([1.5 + 0.5 * a.square(), off], -1),
                            torch.stack([off, 1.0 + 0.3 * torch.sin(b).square()], -1)], -2)

    sampler = RiemannianManifoldHMC(GaussianModel(mean, cov, dtype=F64), metric, step_size=0.4, n_leapfrog_steps=4,
                                    dtype=F64)
    xs = sampler.sample(x=start_at([-1.5, 1.5], 4000), n_steps=20, generator=seed(2))
    assert_moments_within(xs, mean, cov, 'dense x-dependent metric')


class Quartic(BaseModel):
    """E(x) = x⁴/4 in 1-D: E[x²] = 2Γ(3/4)/Γ(1/4), E[x⁴] = 1."""
    def forward(self, x):
        return x.pow(4).sum(-1) / 4


def test_curvature_metric_on_a_quartic():
    """A 1-D target with a metric ∝ its local curvature (3x², plus 1 to stay SPD at 0).

    The step is kept small enough for the Picard iterations to contract: at h = 0.5 the implicit updates are not
    solved for a fraction of the trajectories, and E[x²] comes out ~3 SE high at 10⁵ chains (see the notebook)."""
    sampler = RiemannianManifoldHMC(Quartic(dtype=F64), lambda x: (1 + 3 * x.square()).unsqueeze(-1),
                                    step_size=0.25, n_leapfrog_steps=6, dtype=F64)
    xs, diag = sampler.sample(x=start_at([1.5], 4000), n_steps=20, return_diagnostics=True, generator=seed(3))
    x = xs[:, 0]
    n = x.numel()
    for what, values, expected in (('E[x]', x, 0.0), ('E[x²]', x.square(), 2 * math.gamma(0.75) / math.gamma(0.25)),
                                   ('E[x⁴]', x.pow(4), 1.0)):
        z = (values.mean().item() - expected) / (values.std().item() / math.sqrt(n))
        assert abs(z) < Z, f"quartic {what}: {values.mean().item():.4f} vs {expected:.4f} (z = {z:.2f})"
    assert diag['acceptance_rate'][5:].mean() > 0.8


# ---- agreement with HMC and the derivatives ------------------------------------------------------------------
def identity_metric(x):
    return torch.eye(x.shape[1], dtype=x.dtype).expand(x.shape[0], -1, -1)


@pytest.mark.parametrize('n_steps', [1, 3])
def test_identity_metric_equals_hmc(n_steps):
    model = GaussianModel(torch.tensor([0.5, -0.5], dtype=F64), torch.tensor([[1.0, 0.9], [0.9, 1.0]], dtype=F64),
                          dtype=F64)
    x0 = torch.randn(100, 2, dtype=F64, generator=seed(4))
    kw = dict(step_size=0.3, n_leapfrog_steps=6, dtype=F64)
    a, da = RiemannianManifoldHMC(model, identity_metric, **kw).sample(x=x0, n_steps=n_steps, return_diagnostics=True,
                                                                       generator=seed(5))
    b, db = HamiltonianMonteCarlo(model, **kw).sample(x=x0, n_steps=n_steps, return_diagnostics=True, generator=seed(5))
    assert (a - b).abs().max() < 1e-6
    assert torch.equal(da['acceptance_rate'], db['acceptance_rate'])
    assert 0 < da['acceptance_rate'][0] < 1 or n_steps > 1
    assert (a != x0).any(1).float().mean() > 0.5


def test_force_and_velocity_match_finite_differences():
    def metric(x):
        a, b = x[:, 0], x[:, 1]
        off = 0.5 * torch.sin(a * b)
        return torch.stack([torch.stack([2 + a.square(), off], -1),
                            torch.stack([off, 1.5 + torch.exp(0.3 * b)], -1)], -2)

    class Banana(BaseModel):
        def forward(self, x):
            return (x[:, 0] - 0.5).square() + 0.3 * (x[:, 1] - x[:, 0].square()).square()

    model = Banana(dtype=F64)
    g = seed(6)
    x = torch.randn(8, 2, dtype=F64, generator=g)
    p = torch.randn(8, 2, dtype=F64, generator=g)
    geometry = _Geometry(metric, model.gradient, x)
    eps, basis = 1e-6, torch.eye(2, dtype=F64)
    H = lambda y, q: geometry.hamiltonian(y, q, model(y))
    dH_dx = torch.stack([(H(x + eps * e, p) - H(x - eps * e, p)) / (2 * eps) for e in basis], -1)
    dH_dp = torch.stack([(H(x, p + eps * e) - H(x, p - eps * e)) / (2 * eps) for e in basis], -1)
    assert (geometry.force(x, p) + dH_dx).abs().max() < 1e-7
    assert (geometry.velocity(x, p) - dH_dp).abs().max() < 1e-7
    assert not geometry.failed.any()


# ---- robustness ----------------------------------------------------------------------------------------------
def test_a_metric_that_fails_mid_run_rejects_the_proposal():
    """G = (1.5 − x₁)I is SPD only for x₁ < 1.5: crossing proposals are rejected, nothing crashes."""
    metric = lambda x: (1.5 - x[:, :1]).unsqueeze(-1) * torch.eye(2, dtype=x.dtype)
    start = 0.5 * torch.randn(300, 2, generator=seed(7)) - 1.0
    xs, diag = RiemannianManifoldHMC(HarmonicModel(), metric, step_size=0.5, n_leapfrog_steps=5).sample(
        x=start, n_steps=15, return_diagnostics=True, generator=seed(8))
    assert torch.isfinite(xs).all() and (xs[:, 0] < 1.5).all()
    assert 0 < diag['acceptance_rate'].mean() < 1


def test_a_nan_metric_for_some_chains_only_rejects_those():
    metric = lambda x: torch.where((x[:, :1] > 1.0).unsqueeze(-1), torch.full_like(identity_metric(x), float('nan')),
                                   identity_metric(x))
    xs = RiemannianManifoldHMC(HarmonicModel(), metric, step_size=0.5, n_leapfrog_steps=4).sample(
        x=torch.zeros(200, 2), n_steps=10, generator=seed(9))
    assert torch.isfinite(xs).all() and (xs[:, 0] <= 1.0).all()
    assert (xs != 0).any(1).float().mean() > 0.5


class Cliff(BaseModel):
    def forward(self, x):
        return torch.where(x[:, 0] > 0.5, torch.full_like(x[:, 0], float('nan')), 0.5 * x.square().sum(-1))

    def gradient(self, x, model_kwargs=None):
        return x.clone()


def test_non_finite_proposals_are_rejected():
    out, d = RiemannianManifoldHMC(Cliff(), diagonal_growing_metric, step_size=0.5, n_leapfrog_steps=4).sample(
        x=torch.zeros(50, 2), n_steps=10, return_diagnostics=True, generator=seed(10))
    assert torch.isfinite(out).all() and (out[:, 0] <= 0.5).all()
    assert d['acceptance_rate'].mean() < 1


def test_conditioning_reaches_energy_and_gradient():
    class Shifted(BaseModel):
        def forward(self, x, y=None):
            return 0.5 * (x - y).square().sum(-1)

    y = torch.full((2000, 2), 3.0)
    metric = lambda x: torch.diag_embed(1 + 0.1 * (x - 3).square())
    xs = RiemannianManifoldHMC(Shifted(), metric, step_size=0.3, n_leapfrog_steps=5).sample(
        x=torch.zeros(2000, 2), n_steps=12, y=y, generator=seed(11))
    se = xs.std(0) / math.sqrt(xs.shape[0])
    assert ((xs.mean(0) - 3.0).abs() < Z * se).all(), xs.mean(0)


# ---- the contract --------------------------------------------------------------------------------------------
def test_signature():
    params = inspect.signature(RiemannianManifoldHMC.__init__).parameters
    assert [(n, p.default) for n, p in params.items() if n != 'self'] == [
        ('model', inspect.Parameter.empty), ('metric_fn', inspect.Parameter.empty), ('step_size', 1e-3),
        ('n_leapfrog_steps', 10), ('solver_max_iter', None), ('solver_tol', None), ('solver_check_every', None),
        ('dtype', torch.float32), ('device', None), ('integrator', None)]
    assert list(inspect.signature(RiemannianManifoldHMC.sample).parameters) == list(
        inspect.signature(HamiltonianMonteCarlo.sample).parameters)


def test_shapes_diagnostics_and_repr():
    model = GaussianModel(torch.zeros(3), torch.eye(3))
    sampler = RiemannianManifoldHMC(model, diagonal_growing_metric, step_size=0.2, n_leapfrog_steps=2)
    assert sampler.diagnostic_keys == ('mean', 'var', 'energy', 'acceptance_rate')
    assert sampler.sample(n_samples=5, n_steps=2).shape == (5, 3)                      # dim from model.mean
    traj, d = sampler.sample(n_samples=4, n_steps=6, thin=3, return_trajectory=True, return_diagnostics=True)
    assert traj.shape == (4, 2, 3) and set(d) == {'mean', 'var', 'energy', 'acceptance_rate'}
    assert d['mean'].shape == (2, 3) and d['energy'].shape == (2,) and d['acceptance_rate'].shape == (2,)
    assert sampler.sample(x=torch.zeros(2, 3, dtype=F64), n_steps=1).dtype == torch.float32
    assert repr(sampler) == ('RiemannianManifoldHMC(model=GaussianModel, metric_fn=diagonal_growing_metric, '
                             'step_size=0.2, n_leapfrog_steps=2, integrator=GeneralisedLeapfrogIntegrator)')
    assert type(RiemannianManifoldHMC(model, identity_metric).integrator) is GeneralisedLeapfrogIntegrator


def test_deprecated_solver_arguments_warn_and_build_the_integrator():
    model = GaussianModel(torch.zeros(2), torch.eye(2))
    _WARNED_ONCE.discard(f"deprecation:{_SOLVER_DEPRECATION.module}:{_SOLVER_DEPRECATION.name}")
    with pytest.warns(TorchEBMDeprecationWarning, match='solver_max_iter'):
        sampler = RiemannianManifoldHMC(model, identity_metric, solver_tol=1e-3, solver_check_every=2)
    integrator = sampler.integrator
    assert type(integrator) is GeneralisedLeapfrogIntegrator
    assert (integrator.solver_max_iter, integrator.solver_tol, integrator.solver_check_every) == (8, 1e-3, 2)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        RiemannianManifoldHMC(model, identity_metric)                                 # no solver_*: no warning
    assert _SOLVER_DEPRECATION.replacement and _SOLVER_DEPRECATION.module == 'torchebm_nb.samplers.riemannian_hmc'


GAUSS = GaussianModel(torch.zeros(2), torch.eye(2))


@pytest.mark.parametrize('make, error, match', [
    (lambda: RiemannianManifoldHMC(GAUSS, 'not a function'), TypeError, 'metric_fn must be callable'),
    (lambda: RiemannianManifoldHMC(GAUSS, identity_metric, step_size=0.0), ValueError, 'step_size must be positive'),
    (lambda: RiemannianManifoldHMC(GAUSS, identity_metric, step_size=-1.0), ValueError, 'step_size must be positive'),
    (lambda: RiemannianManifoldHMC(GAUSS, identity_metric, n_leapfrog_steps=0), ValueError, 'n_leapfrog_steps must be'),
    (lambda: RiemannianManifoldHMC(GAUSS, identity_metric, solver_max_iter=4, integrator='generalised_leapfrog'),
     ValueError, 'together with integrator='),
    (lambda: RiemannianManifoldHMC(GAUSS, identity_metric, solver_tol=1e-3, integrator=GeneralisedLeapfrogIntegrator()),
     ValueError, 'together with integrator='),
    (lambda: RiemannianManifoldHMC(GAUSS, identity_metric, integrator='leapfrog'), TypeError, 'non-separable'),
    (lambda: RiemannianManifoldHMC(GAUSS, identity_metric, integrator=LeapfrogIntegrator()), TypeError, 'non-separable'),
    (lambda: RiemannianManifoldHMC(GAUSS, identity_metric, integrator='dopri5'), TypeError,
     'requires a BaseSymplecticIntegrator'),
    (lambda: RiemannianManifoldHMC(DoubleWellModel(), identity_metric).sample(n_steps=1), ValueError,
     'dim must be provided'),
    (lambda: RiemannianManifoldHMC(GAUSS, lambda x: x).sample(n_samples=3, n_steps=1), ValueError,
     r'shape \(B, d, d\) = \(3, 2, 2\)'),
    (lambda: RiemannianManifoldHMC(GAUSS, lambda x: x.tolist()).sample(n_samples=3, n_steps=1), TypeError,
     'must return a tensor'),
    (lambda: RiemannianManifoldHMC(GAUSS, lambda x: -identity_metric(x)).sample(n_samples=3, n_steps=1), ValueError,
     'not symmetric positive definite'),
])
def test_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()
