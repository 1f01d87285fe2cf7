"""Unit tests of ScoreMatching (exact / approx), DenoisingScoreMatching and SlicedScoreMatching.

Correctness on known targets, in float64:
- a Gaussian model E = ½(x−μ)ᵀP(x−μ) on data from N(m, C) has the exact score-matching objective
  J = ½E‖P(x−μ)‖² − tr P = ½[tr(PCP) + ‖P(m−μ)‖²] − tr P; the exact loss, the approx loss (which estimates
  ½E‖P(x−μ)‖² − tr P / D because of TorchEBM's division by D) and the sliced loss (whose expectation over
  projections is J for every projection type) are compared with it in Monte-Carlo standard errors;
- the minimiser of exact SM over (μ, P) is (sample mean, sample precision);
- DSM on E = ½a‖x‖² with N(0, s²I) data is minimised at a = 1/(s² + σ²) > 0, and the inverted-sign loss at −1/(s²+σ²).
Every random test is seeded with a torch.Generator.
"""
import importlib.util
import math
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from torchebm_nb.core import BaseModel, GaussianModel, LinearScheduler
from torchebm_nb.losses.score_matching import DenoisingScoreMatching, ScoreMatching, SlicedScoreMatching

from conftest import MLPEnergy

F64 = torch.float64
Z_MAX = 4.0   # |z| bound for the Monte-Carlo comparisons (two-sided p ≈ 6e-5 per check)


def gen(seed):
    return torch.Generator().manual_seed(seed)


class QuadraticEnergy(BaseModel):
    """E(x) = ½(x−μ)ᵀP(x−μ) with learnable μ and P = LLᵀ (L lower triangular)."""
    def __init__(self, mean, precision):
        super().__init__(dtype=F64)
        self.mean = nn.Parameter(mean.to(F64).clone())
        self.chol = nn.Parameter(torch.linalg.cholesky(precision.to(F64)).clone())

    @property
    def precision(self):
        lower = torch.tril(self.chol)
        return lower @ lower.T

    def forward(self, x):
        d = x - self.mean
        return 0.5 * ((d @ self.precision) * d).sum(-1)


class Bowl(BaseModel):
    """E(x) = ½a‖x‖² with a learnable a."""
    def __init__(self, a=1.0):
        super().__init__(dtype=F64)
        self.a = nn.Parameter(torch.tensor(float(a), dtype=F64))

    def forward(self, x):
        return 0.5 * self.a * x.square().sum(-1)


class TanhEnergy(BaseModel):
    """A small smooth network with a non-zero third derivative, for the autodiff checks."""
    def __init__(self, dim=3, hidden=16, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


# ---- the Gaussian setting of the closed-form checks ------------------------------------------------------
D = 3
MU = torch.tensor([0.3, -0.2, 0.5], dtype=F64)
_A = torch.tensor([[1.0, 0.0, 0.0], [0.5, 1.2, 0.0], [-0.3, 0.4, 0.8]], dtype=F64)
P_MODEL = _A @ _A.T + 0.2 * torch.eye(3, dtype=F64)                 # the model's precision (not the data's)
M_DATA = torch.tensor([0.1, 0.0, -0.4], dtype=F64)
_B = torch.tensor([[0.9, 0.0, 0.0], [-0.4, 0.7, 0.0], [0.2, 0.3, 1.1]], dtype=F64)
C_DATA = _B @ _B.T
HALF_SQ = 0.5 * (torch.trace(P_MODEL @ C_DATA @ P_MODEL) + (P_MODEL @ (M_DATA - MU)).square().sum())
J_EXACT = (HALF_SQ - torch.trace(P_MODEL)).item()
J_APPROX = (HALF_SQ - torch.trace(P_MODEL) / D).item()              # TorchEBM's 1/D on the trace term


def gaussian_data(n, generator):
    return M_DATA + torch.randn(n, D, dtype=F64, generator=generator) @ _B.T


def batch_means(loss, repeats=100, batch=500, seed=0):
    """Loss values of `repeats` independent batches (fresh data and fresh loss randomness each time)."""
    g = gen(seed)
    return torch.tensor([loss(gaussian_data(batch, g), generator=g).item() for _ in range(repeats)], dtype=F64)


def z_score(values, target):
    return ((values.mean() - target) / (values.std() / math.sqrt(values.numel()))).item()


# ---- exact score matching ---------------------------------------------------------------------------------
def test_exact_equals_closed_form_per_batch():
    model = QuadraticEnergy(MU, P_MODEL)
    x = gaussian_data(256, gen(1))
    expected = 0.5 * ((x - MU) @ P_MODEL).square().sum(-1).mean() - torch.trace(P_MODEL)
    value = ScoreMatching(model, dtype=F64)(x)
    assert value.ndim == 0
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12)


def test_exact_matches_population_objective():
    values = batch_means(ScoreMatching(QuadraticEnergy(MU, P_MODEL), dtype=F64))
    z = z_score(values, J_EXACT)
    print(f"exact SM: mean {values.mean():.5f}, closed form {J_EXACT:.5f}, z = {z:+.2f}")
    assert abs(z) < Z_MAX


def test_approx_matches_its_objective_with_the_division_by_D():
    values = batch_means(ScoreMatching(QuadraticEnergy(MU, P_MODEL), hessian_method='approx', dtype=F64))
    z = z_score(values, J_APPROX)
    z_exact = z_score(values, J_EXACT)
    print(f"approx SM: mean {values.mean():.5f}, ½E‖P(x−μ)‖² − trP/D = {J_APPROX:.5f} (z = {z:+.2f}); "
          f"exact objective {J_EXACT:.5f} (z = {z_exact:+.1f})")
    assert abs(z) < Z_MAX
    assert abs(z_exact) > 20   # the 1/D makes it a different objective, as documented


@pytest.mark.parametrize('projection_type', ['rademacher', 'sphere', 'gaussian'])
def test_sliced_expectation_is_the_exact_objective(projection_type):
    loss = SlicedScoreMatching(QuadraticEnergy(MU, P_MODEL), n_projections=2, projection_type=projection_type, dtype=F64)
    values = batch_means(loss)
    z = z_score(values, J_EXACT)
    print(f"SSM {projection_type}: mean {values.mean():.5f}, closed form {J_EXACT:.5f}, z = {z:+.2f}, "
          f"SE {values.std().item() / 10:.5f}")
    assert abs(z) < Z_MAX


def exact_sm_double_loop(model, x):
    """TorchEBM's way: ½‖∇log p‖² plus the Laplacian by explicit loops over samples and coordinates."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad((-model(x)).sum(), x, create_graph=True)
    per_sample = []
    for b in range(x.shape[0]):
        laplacian = sum(torch.autograd.grad(g[b, i], x, create_graph=True)[0][b, i] for i in range(x.shape[1]))
        per_sample.append(0.5 * g[b].square().sum() + laplacian)
    return torch.stack(per_sample).mean()


def param_grads(value, model):
    return torch.autograd.grad(value, list(model.parameters()), allow_unused=True, materialize_grads=True)


def test_exact_vmap_jacrev_matches_double_loop_in_value_and_parameter_gradient():
    model = TanhEnergy().double()
    x = torch.randn(8, 3, dtype=F64, generator=gen(2))
    ours, reference = ScoreMatching(model)(x), exact_sm_double_loop(model, x)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    for a, b in zip(param_grads(ours, model), param_grads(reference, model)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_exact_on_multidimensional_samples():
    """(B, 2, 3) samples are flattened for the trace: same value as the (B, 6) version."""
    class Flat(BaseModel):
        def __init__(self, inner): super().__init__(); self.inner = inner
        def forward(self, x): return self.inner(x.reshape(x.shape[0], -1))
    inner = TanhEnergy(dim=6).double()
    x = torch.randn(5, 2, 3, dtype=F64, generator=gen(3))
    torch.testing.assert_close(ScoreMatching(Flat(inner))(x), ScoreMatching(inner)(x.reshape(5, 6)))
    torch.testing.assert_close(ScoreMatching(Flat(inner))(x), exact_sm_double_loop(inner, x.reshape(5, 6)))


def test_exact_minimiser_is_the_sample_precision():
    """Adam on exact SM over (μ, P) recovers the sample mean and the inverse sample covariance, hence C⁻¹."""
    c = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=F64)
    m = torch.tensor([1.0, -0.5], dtype=F64)
    x = m + torch.randn(4000, 2, dtype=F64, generator=gen(4)) @ torch.linalg.cholesky(c).T
    model = QuadraticEnergy(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    loss_fn = ScoreMatching(model, dtype=F64)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, 300, 0.1)
    for _ in range(900):
        loss = loss_fn(x)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    sample_prec = torch.linalg.inv(torch.cov(x.T, correction=0))
    got = model.precision.detach()
    print('fitted precision', got.tolist(), '\nsample precision', sample_prec.tolist(), '\ntrue C⁻¹', torch.linalg.inv(c).tolist())
    torch.testing.assert_close(got, sample_prec, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(model.mean.detach(), x.mean(0), rtol=1e-4, atol=1e-4)
    assert (got - torch.linalg.inv(c)).norm() / torch.linalg.inv(c).norm() < 0.05


def test_sliced_minimiser_is_the_precision():
    """Minibatch Adam on SSM (rademacher) recovers C⁻¹ too (noisier: stochastic projections)."""
    c = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=F64)
    chol = torch.linalg.cholesky(c)
    model = QuadraticEnergy(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    loss_fn = SlicedScoreMatching(model, n_projections=4, dtype=F64)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    sched = torch.optim.lr_scheduler.StepLR(opt, 400, 0.1)
    g = gen(5)
    for _ in range(1200):
        x = torch.randn(1024, 2, dtype=F64, generator=g) @ chol.T
        loss = loss_fn(x, generator=g)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    rel = ((model.precision.detach() - torch.linalg.inv(c)).norm() / torch.linalg.inv(c).norm()).item()
    print(f"SSM fitted precision {model.precision.detach().tolist()}, relative error {rel:.4f}")
    assert rel < 0.1


# ---- denoising score matching -----------------------------------------------------------------------------
def quadratic_minimiser(loss_of_a):
    """argmin of a quadratic in a, from its values at −1, 0, 1."""
    lm, l0, lp = (loss_of_a(a) for a in (-1.0, 0.0, 1.0))
    return -(lp - lm) / 2 / (lp + lm - 2 * l0)


def test_dsm_sign_minimiser_of_quadratic_energy_is_positive_and_inverted_sign_is_negative():
    s, sigma = 0.5, 0.3
    data = s * torch.randn(50_000, 2, dtype=F64, generator=gen(6))
    target = 1 / (s ** 2 + sigma ** 2)

    def dsm(a):
        return DenoisingScoreMatching(Bowl(a), noise_scale=sigma, dtype=F64)(data, generator=7).item()

    def inverted(a):   # the classic bug: regress ∇E(x̃) on −(x̃ − x)/σ²
        noisy, noise = DenoisingScoreMatching(Bowl(a), noise_scale=sigma, dtype=F64).perturb_data(data, generator=7)
        return (0.5 * (a * noisy + noise / sigma ** 2).square().sum(-1).mean()).item()

    ours, wrong = quadratic_minimiser(dsm), quadratic_minimiser(inverted)
    print(f"DSM minimiser {ours:.4f}, inverted-sign minimiser {wrong:.4f}, 1/(s²+σ²) = {target:.4f}")
    assert ours > 0 and abs(ours - target) < 0.03 * target
    assert wrong < 0 and abs(wrong + target) < 0.03 * target


def test_dsm_trains_a_bowl_to_the_smoothed_precision():
    s, sigma = 0.5, 0.3
    model = Bowl(0.1)
    loss_fn = DenoisingScoreMatching(model, noise_scale=sigma, dtype=F64)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    g = gen(8)
    for _ in range(400):
        loss = loss_fn(s * torch.randn(512, 2, dtype=F64, generator=g), generator=g)
        opt.zero_grad(); loss.backward(); opt.step()
    assert abs(model.a.item() - 1 / (s ** 2 + sigma ** 2)) < 0.1 * (1 / (s ** 2 + sigma ** 2))


def test_dsm_gaussian_minimiser_is_the_smoothed_precision():
    """DSM on a Gaussian family converges to (C + σ²I)⁻¹: the bias of smoothing, in closed form."""
    c = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=F64)
    chol, sigma = torch.linalg.cholesky(c), 0.4
    model = QuadraticEnergy(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    loss_fn = DenoisingScoreMatching(model, noise_scale=sigma, dtype=F64)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    sched = torch.optim.lr_scheduler.StepLR(opt, 400, 0.1)
    g = gen(9)
    for _ in range(1200):
        loss = loss_fn(torch.randn(1024, 2, dtype=F64, generator=g) @ chol.T, generator=g)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    target = torch.linalg.inv(c + sigma ** 2 * torch.eye(2, dtype=F64))
    rel = ((model.precision.detach() - target).norm() / target.norm()).item()
    print(f"DSM fitted precision {model.precision.detach().tolist()}, (C+σ²I)⁻¹ {target.tolist()}, rel. error {rel:.4f}")
    assert rel < 0.05


def test_dsm_formula_matches_hand_computation():
    model = TanhEnergy(dim=2).double()
    x = torch.randn(32, 2, dtype=F64, generator=gen(10))
    sigma = 0.2
    value = DenoisingScoreMatching(model, noise_scale=sigma)(x, generator=11)
    noise = sigma * torch.randn(x.shape, dtype=F64, generator=gen(11))
    noisy = (x + noise).requires_grad_(True)
    (grad,) = torch.autograd.grad(model(noisy).sum(), noisy)
    expected = 0.5 * (grad - noise / sigma ** 2).square().sum(-1).mean()
    torch.testing.assert_close(value.detach(), expected, rtol=1e-12, atol=1e-12)


# ---- the approx and sliced formulas by hand --------------------------------------------------------------
def test_approx_formula_matches_hand_computation():
    model = TanhEnergy().double()
    x = torch.randn(16, 3, dtype=F64, generator=gen(12))
    value = ScoreMatching(model, hessian_method='approx')(x, generator=13)
    eps = 1e-5
    step = eps * torch.randn(x.shape, dtype=F64, generator=gen(13))
    def grad_at(p):
        p = p.detach().requires_grad_(True)
        return torch.autograd.grad(model(p).sum(), p)[0]
    g0, g1 = grad_at(x), grad_at(x + step)
    expected = (0.5 * g0.square().sum(-1) - ((g1 - g0) * step).sum(-1) / (eps ** 2 * 3)).mean()
    torch.testing.assert_close(value.detach(), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('projection_type', ['rademacher', 'sphere', 'gaussian'])
def test_sliced_formula_matches_explicit_hessian(projection_type):
    model = TanhEnergy().double()
    x = torch.randn(6, 3, dtype=F64, generator=gen(14))
    n_proj = 3
    value = SlicedScoreMatching(model, n_projections=n_proj, projection_type=projection_type)(x, generator=15)
    v = torch.randn(n_proj * 6, 3, dtype=F64, generator=gen(15))
    if projection_type == 'rademacher': v = v.sign()
    if projection_type == 'sphere': v = math.sqrt(3) * v / v.norm(dim=1, keepdim=True)
    xr = x.repeat(n_proj, 1)
    terms = []
    for xi, vi in zip(xr, v):
        grad = torch.func.grad(lambda p: model(p[None])[0])(xi)
        hess = torch.autograd.functional.hessian(lambda p: model(p[None])[0], xi)
        s = -grad                                           # the score of p = e^{−E}
        terms.append(0.5 * (vi @ s) ** 2 + vi @ (-hess) @ vi)   # ½(vᵀs)² + vᵀ∇(vᵀs), ∇s = −∇²E
    torch.testing.assert_close(value.detach(), torch.stack(terms).mean(), rtol=1e-10, atol=1e-12)


def test_sliced_handles_an_energy_linear_in_x():
    """∇E independent of x: the Hessian-vector product is zero, not an autograd error."""
    class Linear(BaseModel):
        def __init__(self):
            super().__init__(dtype=F64); self.w = nn.Parameter(torch.tensor([1.0, -2.0], dtype=F64))
        def forward(self, x): return x @ self.w
    x = torch.randn(10, 2, dtype=F64, generator=gen(16))
    value = SlicedScoreMatching(Linear(), projection_type='gaussian')(x, generator=0)
    v = torch.randn(50, 2, dtype=F64, generator=gen(0))
    torch.testing.assert_close(value.detach(), 0.5 * (v @ torch.tensor([1.0, -2.0], dtype=F64)).square().mean())


# ---- contract: 0-d output, gradients, generator, dtype, no_grad, functional path ---------------------------
LOSSES = {
    'exact': lambda m, **kw: ScoreMatching(m, **kw),
    'approx': lambda m, **kw: ScoreMatching(m, hessian_method='approx', **kw),
    'dsm': lambda m, **kw: DenoisingScoreMatching(m, noise_scale=0.1, **kw),
    'ssm': lambda m, **kw: SlicedScoreMatching(m, **kw),
}


@pytest.mark.parametrize('name', LOSSES)
def test_zero_d_loss_with_parameter_gradients(name):
    model = MLPEnergy(hidden=32)
    loss = LOSSES[name](model)(torch.randn(64, 2, generator=gen(0)), generator=1)
    assert loss.ndim == 0 and loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in list(model.parameters())[:-1])   # the last bias cannot move ∇E
    assert any(p.grad.abs().sum() > 0 for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize('name', ['approx', 'dsm', 'ssm'])
def test_generator_makes_the_loss_reproducible_and_leaves_the_global_rng_alone(name):
    model, x = MLPEnergy(hidden=32), torch.randn(64, 2, generator=gen(0))
    loss = LOSSES[name](model)
    state = torch.random.get_rng_state()
    a, b = loss(x, generator=gen(3)), loss(x, generator=3)
    c = loss(x, generator=gen(4))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.item() == b.item() and a.item() != c.item()


@pytest.mark.parametrize('name', LOSSES)
def test_works_under_no_grad(name):
    model, x = MLPEnergy(hidden=32), torch.randn(16, 2, generator=gen(0))
    with torch.no_grad():
        inside = LOSSES[name](model)(x, generator=5)
    outside = LOSSES[name](model)(x, generator=5)
    torch.testing.assert_close(inside.detach(), outside.detach())


@pytest.mark.parametrize('name', LOSSES)
def test_input_is_cast_to_the_model_dtype(name):
    model = TanhEnergy(dim=2).double()
    loss = LOSSES[name](model)(torch.randn(8, 2, generator=gen(0)), generator=0)
    assert loss.dtype == F64


@pytest.mark.parametrize('name', LOSSES)
def test_functional_path_matches_autograd_path(name):
    model, x = TanhEnergy(dim=2).double(), torch.randn(16, 2, dtype=F64, generator=gen(0))
    a = LOSSES[name](model)(x, generator=6)
    b = LOSSES[name](model, use_autograd=False)(x, generator=6)
    torch.testing.assert_close(a, b)
    for ga, gb in zip(param_grads(a, model), param_grads(b, model)):
        torch.testing.assert_close(ga, gb)


# ---- regularisation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', LOSSES)
def test_default_regulariser_adds_lambda_mean_squared_gradient(name):
    model, x = Bowl(2.0), torch.randn(32, 2, dtype=F64, generator=gen(0))
    plain = LOSSES[name](model, dtype=F64)(x, generator=1)
    penalised = LOSSES[name](model, regularization_strength=0.25, dtype=F64)(x, generator=1)
    torch.testing.assert_close(penalised - plain, 0.25 * (2.0 * x).square().sum(-1).mean())


def test_custom_regulariser_and_scheduled_strength():
    model, x = Bowl(2.0), torch.randn(32, 2, dtype=F64, generator=gen(0))
    custom = DenoisingScoreMatching(model, 0.1, regularization_strength=LinearScheduler(1.0, 0.0, 2),
                                    custom_regularization=lambda x, m: m(x).mean(), dtype=F64)
    plain = DenoisingScoreMatching(model, 0.1, dtype=F64)(x, generator=1)
    torch.testing.assert_close(custom(x, generator=1) - plain, model(x).mean())
    custom.step_schedulers()
    torch.testing.assert_close(custom(x, generator=1) - plain, 0.5 * model(x).mean())
    custom.step_schedulers()
    torch.testing.assert_close(custom(x, generator=1), plain)


# ---- assignable hyperparameters ----------------------------------------------------------------------------
@pytest.mark.parametrize('name', LOSSES)
def test_assigned_regularization_strength_takes_effect_on_the_next_call(name):
    model, x = Bowl(2.0), torch.randn(32, 2, dtype=F64, generator=gen(0))
    loss = LOSSES[name](model, dtype=F64)
    plain = loss(x, generator=1)
    loss.regularization_strength = 0.25
    assert loss.regularization_strength == 0.25
    torch.testing.assert_close(loss(x, generator=1) - plain, 0.25 * (2.0 * x).square().sum(-1).mean())
    loss.regularization_strength = LinearScheduler(0.5, 0.0, 2)
    loss.step_schedulers()
    torch.testing.assert_close(loss(x, generator=1) - plain, 0.25 * (2.0 * x).square().sum(-1).mean())
    loss.regularization_strength = 0
    torch.testing.assert_close(loss(x, generator=1), plain)


def test_assigned_noise_scale_takes_effect_on_the_next_call():
    model, x = Bowl(2.0), torch.randn(32, 2, dtype=F64, generator=gen(0))
    loss = DenoisingScoreMatching(model, noise_scale=0.1, dtype=F64)
    loss.noise_scale = 0.3
    assert loss.noise_scale == 0.3
    torch.testing.assert_close(loss(x, generator=2), DenoisingScoreMatching(model, noise_scale=0.3, dtype=F64)(x, generator=2))
    assert repr(loss) == 'DenoisingScoreMatching(model=Bowl, noise_scale=0.3)'
    # by hand: ½ mean‖a·x̃ − n/σ‖², x̃ = x + σn
    noise = torch.randn(x.shape, generator=gen(2), dtype=F64)
    noisy = x + 0.3 * noise
    torch.testing.assert_close(loss(x, generator=2), 0.5 * (2.0 * noisy - noise / 0.3).square().sum(-1).mean())


@pytest.mark.parametrize('name', LOSSES)
@pytest.mark.parametrize('attribute, value, message', [
    ('noise_scale', 0.0, 'noise_scale must be positive; got 0.0'),
    ('noise_scale', -0.5, 'noise_scale must be positive; got -0.5'),
    ('noise_scale', float('nan'), 'noise_scale must be a finite number; got nan'),
    ('regularization_strength', -1.0, 'regularization_strength must be ≥ 0; got -1.0'),
    ('regularization_strength', float('inf'), 'regularization_strength must be a finite number; got inf'),
])
def test_invalid_assignments_are_refused_and_change_nothing(name, attribute, value, message):
    loss = LOSSES[name](Bowl(2.0), dtype=F64)
    before = getattr(loss, attribute)
    with pytest.raises(ValueError, match=message):
        setattr(loss, attribute, value)
    assert getattr(loss, attribute) == before
    with pytest.raises(TypeError, match=f'{attribute} must be a number or a BaseScheduler'):
        setattr(loss, attribute, 'large')
    with pytest.raises(ValueError, match=f'{attribute} must be'):
        setattr(loss, attribute, LinearScheduler(-1.0, 1.0, 4))


# ---- functional_model is a template, not a submodule -------------------------------------------------------
class DropoutEnergy(BaseModel):
    """E(x) = MLP(x) with dropout, float64 (its train/eval mode matters)."""
    def __init__(self, seed):
        super().__init__(dtype=F64)
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 1)).double()

    def forward(self, x):
        return self.net(x).squeeze(-1)


@pytest.mark.parametrize('name', LOSSES)
def test_functional_model_adds_no_parameters_and_no_state(name):
    model, template = DropoutEnergy(seed=0), DropoutEnergy(seed=1)      # the template has its own, different weights
    plain = LOSSES[name](model, dtype=F64)
    functional = LOSSES[name](model, use_autograd=False, functional_model=template, dtype=F64)
    assert [id(p) for p in functional.parameters()] == [id(p) for p in model.parameters()]
    assert len(list(functional.parameters())) == len(list(model.parameters())) == 4
    assert list(functional.state_dict()) == list(plain.state_dict())
    assert all('functional' not in k for k in functional.state_dict())
    assert functional.functional_model is template
    assert dict(functional.named_modules()).keys() == dict(plain.named_modules()).keys()
    # the template runs with the model's weights and follows the loss's train/eval mode
    x = torch.randn(16, 2, dtype=F64, generator=gen(0))
    functional.eval(); plain.eval()
    torch.testing.assert_close(functional(x, generator=3), plain(x, generator=3))
    assert template.training is False
    functional.train()
    functional.compute_score(x)                  # (exact SM itself cannot run dropout in training mode: vmap forbids it)
    assert template.training is True


# ---- options, warnings and errors --------------------------------------------------------------------------
def test_invalid_hessian_method_warns_and_falls_back_to_exact():
    with pytest.warns(UserWarning, match="invalid hessian_method 'hutchinson'"):
        loss = ScoreMatching(Bowl(), hessian_method='hutchinson')
    assert loss.hessian_method == 'exact'


def test_invalid_projection_type_warns_and_falls_back_to_rademacher():
    with pytest.warns(UserWarning, match="invalid projection_type 'hadamard'"):
        loss = SlicedScoreMatching(Bowl(), projection_type='hadamard')
    assert loss.projection_type == 'rademacher'
    v = loss._random_projections(torch.Size((100, 3)), torch.zeros(1), gen(0))
    assert set(v.unique().tolist()) == {-1.0, 1.0}


class ShiftedBowl(BaseModel):
    """E(x | y) = ½k‖x − y‖²: a conditional energy that uses its condition."""
    def __init__(self):
        super().__init__(dtype=F64)
        self.log_k = nn.Parameter(torch.zeros((), dtype=F64))

    def forward(self, x, y=None):
        return 0.5 * self.log_k.exp() * (x - y[:, None].to(x.dtype)).square().sum(-1)


def test_conditioning_is_refused_by_exact_and_sliced():
    model, x, y = ShiftedBowl(), torch.randn(8, 2, dtype=F64), torch.arange(8)
    for loss in (ScoreMatching(model, dtype=F64), SlicedScoreMatching(model, dtype=F64)):
        with pytest.raises(NotImplementedError, match='conditioning'): loss(x, y=y)
        with pytest.raises(NotImplementedError, match='conditioning'): loss(x, model_kwargs={'y': y})
        with pytest.raises(NotImplementedError, match='conditioning'): loss(x, y=y.double())
        with pytest.raises(NotImplementedError, match='conditioning'): loss.compute_loss(x, model_kwargs={'y': y})


def test_conditioning_reaches_the_model_in_dsm_and_approx():
    model, x = ShiftedBowl(), torch.randn(64, 2, dtype=F64, generator=gen(0))
    y = torch.arange(64) % 4
    for make in (lambda: DenoisingScoreMatching(model, 0.1, dtype=F64), lambda: ScoreMatching(model, 'approx', dtype=F64)):
        with_y = make()(x, y=y, generator=1)
        with_kwargs = make()(x, model_kwargs={'y': y}, generator=1)
        torch.testing.assert_close(with_y, with_kwargs)
        assert with_y.ndim == 0


def test_dsm_with_y_equals_dsm_on_shifted_data():
    """E(x | y) = ½‖x − y‖²: DSM with y equals unconditional DSM of the same bowl on x − y."""
    model, x = ShiftedBowl(), torch.randn(64, 2, dtype=F64, generator=gen(0))
    y = (torch.arange(64) % 4).double()
    conditional = DenoisingScoreMatching(model, 0.1, dtype=F64, check_conditioning=False)(x, y=y, generator=1)
    unconditional = DenoisingScoreMatching(Bowl(1.0), 0.1, dtype=F64)(x - y[:, None], generator=1)
    torch.testing.assert_close(conditional, unconditional)


def test_conditioning_probe_catches_a_model_that_ignores_y():
    class Ignores(ShiftedBowl):
        def forward(self, x, y=None): return super().forward(x, torch.ones(x.shape[0], dtype=F64))
    with pytest.raises(ValueError, match='ignores its condition'):
        DenoisingScoreMatching(Ignores(), 0.1, dtype=F64)(torch.randn(8, 2, dtype=F64), y=torch.arange(8))


def test_bare_keyword_conditioning_is_deprecated_but_works():
    class Shifted(BaseModel):
        def __init__(self): super().__init__(dtype=F64); self.k = nn.Parameter(torch.ones((), dtype=F64))
        def forward(self, x, shift=None): return 0.5 * self.k * (x - shift[:, None]).square().sum(-1)
    model, x = Shifted(), torch.randn(8, 2, dtype=F64, generator=gen(0))
    shift = torch.linspace(-1, 1, 8, dtype=F64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        bare = DenoisingScoreMatching(model, 0.1, dtype=F64)(x, generator=1, shift=shift)
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    torch.testing.assert_close(bare, DenoisingScoreMatching(model, 0.1, dtype=F64)(x, model_kwargs={'shift': shift}, generator=1))


def test_argument_errors():
    with pytest.raises(TypeError, match="unexpected keyword argument"): ScoreMatching(Bowl(), hessian_metod='exact')
    with pytest.raises(TypeError, match='unexpected positional'): DenoisingScoreMatching(Bowl(), 0.1, 0.0, None, True, None, F64, None, 5)
    with pytest.raises(TypeError, match='unexpected positional'): DenoisingScoreMatching(Bowl(), dtype=F64)(torch.randn(4, 2), 3)
    with pytest.raises(TypeError, match='unexpected positional'): SlicedScoreMatching(Bowl(), dtype=F64).compute_loss(torch.randn(4, 2), 3)
    with pytest.raises(ValueError, match='noise_scale must be positive'): DenoisingScoreMatching(Bowl(), noise_scale=0.0)
    with pytest.raises(ValueError, match='n_projections must be ≥ 1'): SlicedScoreMatching(Bowl(), n_projections=0)
    with pytest.raises(TypeError, match='n_projections must be an int'): SlicedScoreMatching(Bowl(), n_projections=2.5)
    with pytest.raises(ValueError, match='regularization_strength'): ScoreMatching(Bowl(), regularization_strength=-1.0)
    with pytest.raises(ValueError, match='must be a batch'): ScoreMatching(Bowl(), dtype=F64)(torch.randn(3, dtype=F64))
    with pytest.raises(TypeError, match='generator'): DenoisingScoreMatching(Bowl(), dtype=F64)(torch.randn(4, 2), generator='seed')

    class WrongShape(BaseModel):
        def __init__(self): super().__init__(dtype=F64); self.w = nn.Parameter(torch.ones((), dtype=F64))
        def forward(self, x): return self.w * x.square()        # (B, D) instead of (B,)
    for loss in (ScoreMatching(WrongShape()), DenoisingScoreMatching(WrongShape()), SlicedScoreMatching(WrongShape())):
        with pytest.raises(ValueError, match='shape'): loss(torch.randn(4, 2, dtype=F64), generator=0)


def test_cfg_dropout_replaces_the_condition_in_training_mode():
    loss = DenoisingScoreMatching(ShiftedBowl(), 0.1, dtype=F64, cfg_dropout=1.0, null_condition=0, check_conditioning=False)
    x, y = torch.randn(16, 2, dtype=F64, generator=gen(0)), torch.arange(16) % 3 + 1
    loss.train()
    dropped = loss(x, y=y, generator=2)
    g = gen(2); torch.rand(16, generator=g)          # the dropout mask is drawn first, from the same generator
    loss.eval()
    torch.testing.assert_close(dropped, loss(x, y=torch.zeros(16, dtype=torch.long), generator=g))
    assert loss(x, y=y, generator=2).item() != dropped.item()


# ---- FSDP2 / DTensor ---------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def device_mesh():
    dist = torch.distributed
    if not dist.is_available(): pytest.skip('torch.distributed is not available')
    if dist.is_initialized(): pytest.skip('a process group is already initialised')
    try:
        dist.init_process_group('gloo', store=dist.HashStore(), rank=0, world_size=1)
        from torch.distributed.device_mesh import init_device_mesh
        mesh = init_device_mesh('cpu', (1,))
    except Exception as e:  # pragma: no cover - depends on the torch build
        pytest.skip(f'cannot build a one-process device mesh: {e}')
    yield mesh
    dist.destroy_process_group()


def sharded_copy(model, mesh):
    from torch.distributed.tensor import Shard, distribute_tensor
    sharded = TanhEnergy(dim=2).double()
    sharded.load_state_dict(model.state_dict())
    for name, p in list(sharded.net.named_parameters()):
        owner, attr = name.rsplit('.', 1)
        setattr(sharded.net.get_submodule(owner), attr, nn.Parameter(distribute_tensor(p.detach(), mesh, [Shard(0)])))
    return sharded


def test_dtensor_parameters(device_mesh):
    reference = TanhEnergy(dim=2).double()
    sharded = sharded_copy(reference, device_mesh)
    x = torch.randn(16, 2, dtype=F64, generator=gen(0))
    with pytest.raises(NotImplementedError, match='DTensor'):
        ScoreMatching(sharded)(x)
    with pytest.raises(NotImplementedError, match='DTensor'):
        ScoreMatching(sharded, use_autograd=False, functional_model=reference)(x)
    for name in ('approx', 'dsm', 'ssm'):
        with pytest.raises(RuntimeError, match='DTensor'):
            LOSSES[name](sharded)(x, generator=0)
        functional = LOSSES[name](sharded, use_autograd=False, functional_model=reference)(x, generator=1)
        torch.testing.assert_close(functional, LOSSES[name](reference)(x, generator=1))
        functional.backward()
        assert type(sharded.net[0].weight.grad).__name__ == 'DTensor'


# ---- the exported signatures against the contract ----------------------------------------------------------
def test_signatures_match_the_contract():
    path = Path(__file__).resolve().parents[1] / 'test_api_contract.py'
    spec = importlib.util.spec_from_file_location('_api_contract', path)
    contract = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(contract)
    if not contract.CONTRACT.exists(): pytest.skip('API_SIGNATURES.md is not beside the checkout')
    entries = {e['name']: e for e in contract.parse_contract() if e['module'] == 'torchebm_nb.losses'}
    problems = []
    for cls in (ScoreMatching, DenoisingScoreMatching, SlicedScoreMatching):
        entry = entries[cls.__name__]
        problems += contract.compare(entry['sig'], cls, cls.__name__)
        for method, sig in entry['methods']:
            problems += contract.compare(sig, getattr(cls, method), f'{cls.__name__}.{method}')
        assert cls.__mro__[1].__name__ == 'BaseScoreMatching'
    assert not problems, '\n'.join(problems)
