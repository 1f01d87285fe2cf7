"""Reference, statistical and property-based tests of the interpolants (the notebooks hold the worked examples).

Conventions: x_t = α x1 + σ x0 with t = 0 noise (x0 ~ N(0, I)) and t = 1 data (x1). The exactly solvable case used
throughout is Gaussian data x1 ~ N(μ, s² I): x_t ~ N(αμ, V I) with V = α² s² + σ², so

    score    s(x, t) = -(x - αμ) / V
    noise    E[x0 | x_t = x] = σ (x - αμ) / V
    velocity v(x, t) = E[α' x1 + σ' x0 | x_t = x] = α'μ + (αα' s² + σσ') (x - αμ) / V = α'μ + V'/(2V) (x - αμ)

(Gaussian conditional means: E[x1 | x] = μ + α s² (x - αμ)/V, E[x0 | x] = σ (x - αμ)/V.)
"""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

import torchebm_nb.interpolants as interpolants
from torchebm_nb.core.base_interpolant import BaseInterpolant, expand_t_like_x
from torchebm_nb.interpolants import (CosineInterpolant, LinearInterpolant, VariancePreservingInterpolant,
                                      get_interpolant, resolve_interpolant)

F64 = torch.float64
PATHS = {'linear': LinearInterpolant(), 'cosine': CosineInterpolant(), 'vp': VariancePreservingInterpolant(),
         'vp(0.05,10)': VariancePreservingInterpolant(sigma_min=0.05, sigma_max=10.0)}
IDS = list(PATHS)
ALL = list(PATHS.values())
DIFFUSION_FORMS = ('constant', 'SBDM', 'sigma', 'linear', 'decreasing', 'increasing-decreasing')


def inner_times(n=97, lo=0.01, hi=0.99):
    return torch.linspace(lo, hi, n, dtype=F64)


def gaussian_fields(path, x, t, mu, s):
    "Exact (velocity, score, noise) of the path from N(0, I) to N(mu, s² I)."
    t = expand_t_like_x(t, x)
    (a, da), (sg, dsg) = path.compute_alpha_t(t), path.compute_sigma_t(t)
    sg_dsg = sg * dsg
    if isinstance(path, VariancePreservingInterpolant):   # σσ' = -αα' exactly (α² + σ² = 1): finite at t = 1 where σ' = -∞
        sg_dsg = -a * da
    var, centred = a ** 2 * s ** 2 + sg ** 2, x - a * mu
    return da * mu + (a * da * s ** 2 + sg_dsg) / var * centred, -centred / var, sg / var * centred


# ---------------------------------------------------------------------------------------------------------------
# package surface
# ---------------------------------------------------------------------------------------------------------------

def test_package_exports_exactly_the_contract_names():
    assert interpolants.__all__ == ['LinearInterpolant', 'CosineInterpolant', 'VariancePreservingInterpolant',
                                    'get_interpolant', 'resolve_interpolant']
    for name in interpolants.__all__: assert hasattr(interpolants, name)
    from torchebm_nb.interpolants.cosine import CosineInterpolant as C
    from torchebm_nb.interpolants.interpolant_utils import get_interpolant as g
    from torchebm_nb.interpolants.linear import LinearInterpolant as L
    from torchebm_nb.interpolants.variance_preserving import VariancePreservingInterpolant as V
    assert (C, g, L, V) == (CosineInterpolant, get_interpolant, LinearInterpolant, VariancePreservingInterpolant)


def test_base_is_a_plain_abstract_class():
    assert not issubclass(BaseInterpolant, torch.nn.Module)
    with pytest.raises(TypeError, match='abstract'): BaseInterpolant()

    class OnlyAlpha(BaseInterpolant):
        def compute_alpha_t(self, t): return t, torch.ones_like(t)
    with pytest.raises(TypeError, match='abstract'): OnlyAlpha()
    for p in ALL: assert isinstance(p, BaseInterpolant)


def test_vp_defaults_and_validation():
    vp = VariancePreservingInterpolant()
    assert (vp.sigma_min, vp.sigma_max) == (0.1, 20.0)
    assert repr(vp) == 'VariancePreservingInterpolant(sigma_min=0.1, sigma_max=20)'
    assert repr(LinearInterpolant()) == 'LinearInterpolant()'
    with pytest.raises(ValueError, match='sigma_min must be ≥ 0'): VariancePreservingInterpolant(-1.0)
    with pytest.raises(ValueError, match='sigma_max must be finite'): VariancePreservingInterpolant(0.1, math.nan)
    with pytest.raises(ValueError, match='sigma_max must be positive and ≥ sigma_min'): VariancePreservingInterpolant(2.0, 1.0)
    with pytest.raises(TypeError, match='sigma_max must be a real number'): VariancePreservingInterpolant(0.1, '20')


# ---------------------------------------------------------------------------------------------------------------
# expand_t_like_x
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('shape', [(7,), (7, 2), (7, 3, 5), (7, 1, 4, 4)])
def test_expand_t_like_x_shapes(shape):
    x = torch.randn(*shape, dtype=F64)
    t = torch.rand(7)
    e = expand_t_like_x(t, x)
    assert e.shape == (7,) + (1,) * (len(shape) - 1) and e.dtype == F64
    assert torch.equal(e.flatten(), t.double())
    assert (e * x).shape == x.shape
    assert expand_t_like_x(0.3, x).shape == (1,) * len(shape)
    assert expand_t_like_x(torch.tensor(0.3), x).shape == (1,) * len(shape)
    assert expand_t_like_x(e, x).shape == e.shape
    with pytest.raises(ValueError, match=r't must have shape \(B,\) = \(7,\)'): expand_t_like_x(torch.rand(6), x)


# ---------------------------------------------------------------------------------------------------------------
# coefficients: formulas, endpoints, finite differences
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('path', ALL, ids=IDS)
def test_derivatives_match_central_differences(path):
    t, h = inner_times(), 1e-6
    for f in (path.compute_alpha_t, path.compute_sigma_t):
        value, derivative = f(t)
        central = (f(t + h)[0] - f(t - h)[0]) / (2 * h)
        torch.testing.assert_close(derivative, central, rtol=1e-7, atol=1e-8)
    alpha, _ = path.compute_alpha_t(t)
    log_derivative = (torch.log(path.compute_alpha_t(t + h)[0]) - torch.log(path.compute_alpha_t(t - h)[0])) / (2 * h)
    torch.testing.assert_close(path.compute_d_alpha_alpha_ratio_t(t), log_derivative, rtol=1e-7, atol=1e-8)


def test_closed_forms_of_the_coefficients():
    t = inner_times()
    lin, cos, vp = PATHS['linear'], PATHS['cosine'], PATHS['vp']
    assert torch.equal(lin.compute_alpha_t(t)[0], t) and torch.equal(lin.compute_sigma_t(t)[0], 1 - t)
    torch.testing.assert_close(lin.compute_d_alpha_alpha_ratio_t(t), 1 / t)
    torch.testing.assert_close(cos.compute_alpha_t(t)[0], torch.sin(math.pi * t / 2))
    torch.testing.assert_close(cos.compute_sigma_t(t)[0], torch.cos(math.pi * t / 2))
    torch.testing.assert_close(cos.compute_d_alpha_alpha_ratio_t(t), math.pi / 2 / torch.tan(math.pi * t / 2))
    for vp in (PATHS['vp'], PATHS['vp(0.05,10)']):
        lo, hi = vp.sigma_min, vp.sigma_max
        log_alpha = -0.25 * (1 - t) ** 2 * (hi - lo) - 0.5 * (1 - t) * lo
        alpha = vp.compute_alpha_t(t)[0]
        torch.testing.assert_close(torch.log(alpha), log_alpha, rtol=1e-13, atol=1e-14)
        torch.testing.assert_close(vp.compute_sigma_t(t)[0], torch.sqrt(1 - alpha ** 2), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(vp.compute_d_alpha_alpha_ratio_t(t), 0.5 * (1 - t) * (hi - lo) + 0.5 * lo)


@pytest.mark.parametrize('dtype', [torch.float32, F64])
def test_endpoint_values(dtype):
    ends = torch.tensor([0.0, 1.0], dtype=dtype)
    tol = dict(rtol=0, atol=1e-7 if dtype == torch.float32 else 1e-15)
    for name in ('linear', 'cosine'):
        p = PATHS[name]
        torch.testing.assert_close(p.compute_alpha_t(ends)[0], torch.tensor([0.0, 1.0], dtype=dtype), **tol)
        torch.testing.assert_close(p.compute_sigma_t(ends)[0], torch.tensor([1.0, 0.0], dtype=dtype), **tol)
        assert p.compute_alpha_t(ends)[0][0].item() == 0.0                            # exactly noise at t = 0
    for vp in (PATHS['vp'], PATHS['vp(0.05,10)']):
        a0 = math.exp(-0.25 * (vp.sigma_max - vp.sigma_min) - 0.5 * vp.sigma_min)
        torch.testing.assert_close(vp.compute_alpha_t(ends)[0], torch.tensor([a0, 1.0], dtype=dtype), **tol)
        torch.testing.assert_close(vp.compute_sigma_t(ends)[0], torch.tensor([math.sqrt(1 - a0 ** 2), 0.0], dtype=dtype), **tol)
        assert vp.compute_sigma_t(ends)[1][1].item() == -math.inf                     # σ'(1) = -∞, σ(1) = +0
    assert PATHS['linear'].compute_d_alpha_alpha_ratio_t(ends)[0].item() == math.inf
    assert PATHS['cosine'].compute_d_alpha_alpha_ratio_t(ends)[0].item() == math.inf


def test_cosine_and_vp_preserve_variance():
    t = torch.linspace(0, 1, 101, dtype=F64)
    for p in (PATHS['cosine'], PATHS['vp'], PATHS['vp(0.05,10)']):
        a, s = p.compute_alpha_t(t)[0], p.compute_sigma_t(t)[0]
        torch.testing.assert_close(a ** 2 + s ** 2, torch.ones_like(t), rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------------------------------------------
# interpolate, drift, diffusion
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('path', ALL, ids=IDS)
def test_interpolate_and_its_velocity(path):
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(9, 3, 4, dtype=F64, generator=g), torch.randn(9, 3, 4, dtype=F64, generator=g)
    t, h = inner_times(9, 0.05, 0.95), 1e-6
    xt, ut = path.interpolate(x0, x1, t)
    te = t[:, None, None]
    a, s = path.compute_alpha_t(te)[0], path.compute_sigma_t(te)[0]
    torch.testing.assert_close(xt, a * x1 + s * x0)
    central = (path.interpolate(x0, x1, t + h)[0] - path.interpolate(x0, x1, t - h)[0]) / (2 * h)
    torch.testing.assert_close(ut, central, rtol=1e-7, atol=1e-8)                     # u_t = d x_t / dt
    with pytest.raises(ValueError, match=r'x0 and x1 must have the same shape; got \(9, 3, 4\) and \(9, 3, 1\)'):
        path.interpolate(x0, x1[..., :1], t)


@pytest.mark.parametrize('path', ALL, ids=IDS)
def test_drift_is_the_generic_formula(path):
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(97, 2, 3, dtype=F64, generator=g), inner_times()
    mean, var = path.compute_drift(x, t)
    assert mean.shape == x.shape and var.shape == (97, 1, 1)
    te = t[:, None, None]
    ratio = path.compute_d_alpha_alpha_ratio_t(te)
    sigma, d_sigma = path.compute_sigma_t(te)
    torch.testing.assert_close(mean, -ratio * x)
    torch.testing.assert_close(var, ratio * sigma ** 2 - sigma * d_sigma, rtol=1e-10, atol=1e-12)
    if isinstance(path, VariancePreservingInterpolant):                                # the VP override (-½βx, β/2)
        beta = path.sigma_min + (1 - te) * (path.sigma_max - path.sigma_min)
        torch.testing.assert_close(mean, -0.5 * beta * x)
        torch.testing.assert_close(var, 0.5 * beta)


@pytest.mark.parametrize('path', ALL, ids=IDS)
@pytest.mark.parametrize('norm', [1.0, 0.3])
def test_diffusion_forms(path, norm):
    g = torch.Generator().manual_seed(2)
    x, t = torch.randn(97, 5, dtype=F64, generator=g), inner_times()
    te = t[:, None]
    sigma = path.compute_sigma_t(te)[0]
    expected = {'constant': norm * torch.ones_like(te), 'SBDM': norm * path.compute_drift(x, t)[1] / sigma,
                'sigma': norm * sigma, 'linear': norm * (1 - te), 'decreasing': norm * (1 - te) ** 2,
                'increasing-decreasing': 4 * norm * te * (1 - te)}
    for form in DIFFUSION_FORMS:
        d = path.compute_diffusion(x, t, form=form, norm=norm)
        assert d.shape == (97, 1), form
        torch.testing.assert_close(d, expected[form], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(path.compute_diffusion(x, t), expected['SBDM'] / norm, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="Unknown diffusion form 'Sigma'; choose from 'constant', 'SBDM', 'sigma', "
                                         "'linear', 'decreasing', 'increasing-decreasing'"):
        path.compute_diffusion(x, t, form='Sigma')
    with pytest.raises(ValueError, match='Unknown diffusion form None'): path.compute_diffusion(x, t, form=None)


def test_sbdm_at_the_data_end():
    "SBDM = D_t/σ has a finite limit at t = 1 for linear (1) and cosine (π/2); VP's β/(2σ) is infinite there."
    x, one = torch.zeros(1, 2, dtype=F64), torch.ones(1, dtype=F64)
    assert PATHS['linear'].compute_diffusion(x, one).item() == 1.0
    assert PATHS['cosine'].compute_diffusion(x, one).item() == pytest.approx(math.pi / 2, rel=1e-15)
    assert PATHS['vp'].compute_diffusion(x, one).item() == math.inf


# ---------------------------------------------------------------------------------------------------------------
# conversions
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('path', ALL, ids=IDS)
@pytest.mark.parametrize('mu,s', [(0.0, 1.0), (2.0, 0.5), (-1.0, 3.0)])
def test_conversions_map_exact_fields_to_exact_fields(path, mu, s):
    g = torch.Generator().manual_seed(3)
    x, t = 3 * torch.randn(97, 4, dtype=F64, generator=g), inner_times()
    mu = torch.full((4,), mu, dtype=F64) + torch.arange(4, dtype=F64) / 4
    v, score, noise = gaussian_fields(path, x, t, mu, s)
    scale = lambda z: dict(rtol=1e-9, atol=1e-9 * (1 + z.abs().max().item()))
    torch.testing.assert_close(path.velocity_to_score(v, x, t), score, **scale(score))
    torch.testing.assert_close(path.score_to_velocity(score, x, t), v, **scale(v))
    torch.testing.assert_close(path.velocity_to_noise(v, x, t), noise, **scale(noise))
    sigma = path.compute_sigma_t(t[:, None])[0]
    torch.testing.assert_close(path.velocity_to_noise(v, x, t), -sigma * path.velocity_to_score(v, x, t), **scale(noise))


@pytest.mark.parametrize('path', ALL, ids=IDS)
def test_conversions_at_the_endpoints_where_valid(path):
    "At t = 0 the noise is x0 = x itself; at t = 1 it is E[x0] = 0; the score at t = 0 is that of N(0, I) for α(0) = 0."
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, dtype=F64, generator=g)
    ends = torch.tensor([0.0, 1.0], dtype=F64)
    mu, s = torch.tensor([1.0, -2.0, 0.5], dtype=F64), 0.8
    v, score, noise = gaussian_fields(path, x, ends, mu, s)
    torch.testing.assert_close(path.velocity_to_noise(v, x, ends), noise, rtol=1e-10, atol=1e-10)
    assert path.velocity_to_noise(v, x, ends)[1].abs().max().item() < 1e-12
    torch.testing.assert_close(path.velocity_to_score(v[:1], x[:1], ends[:1]), score[:1], rtol=1e-12, atol=1e-12)
    if isinstance(path, VariancePreservingInterpolant):
        torch.testing.assert_close(path.score_to_velocity(score, x, ends), v, rtol=1e-12, atol=1e-12)
    else:
        torch.testing.assert_close(path.velocity_to_noise(v[:1], x[:1], ends[:1]), x[:1], rtol=0, atol=1e-15)
        torch.testing.assert_close(path.score_to_velocity(score[1:], x[1:], ends[1:]), v[1:], rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(which=st.integers(0, len(ALL) - 1), batch=st.integers(1, 6), shape=st.lists(st.integers(1, 4), max_size=3),
       seed=st.integers(0, 2 ** 31 - 1), t_lo=st.floats(0.01, 0.98))
def test_round_trips(which, batch, shape, seed, t_lo):
    "score_to_velocity ∘ velocity_to_score = id and back, for any shape, inside (0, 1)."
    path = ALL[which]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *shape, dtype=F64, generator=g)
    v = torch.randn(batch, *shape, dtype=F64, generator=g)
    t = t_lo + (0.99 - t_lo) * torch.rand(batch, dtype=F64, generator=g)
    s = path.velocity_to_score(v, x, t)
    assert s.shape == x.shape
    torch.testing.assert_close(path.score_to_velocity(s, x, t), v, rtol=1e-8, atol=1e-8 * (1 + s.abs().max().item()))
    torch.testing.assert_close(path.velocity_to_score(path.score_to_velocity(v, x, t), x, t), v, rtol=1e-8,
                               atol=1e-8 * (1 + path.score_to_velocity(v, x, t).abs().max().item()))


# ---------------------------------------------------------------------------------------------------------------
# the derived Gaussian velocity really is the marginal velocity
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('path', ALL, ids=IDS)
def test_gaussian_velocity_solves_the_continuity_equation(path):
    "∂_t log p + v ∂_x log p + ∂_x v = 0 for p_t = N(αμ, V) and the closed-form v (finite differences in t and x)."
    mu, s, h = 1.3, 0.6, 1e-5
    x = torch.linspace(-3, 3, 61, dtype=F64)[:, None]
    for t in (0.1, 0.4, 0.7, 0.95):
        def log_p(tt, xx):
            a, sg = path.compute_alpha_t(torch.tensor(tt, dtype=F64))[0], path.compute_sigma_t(torch.tensor(tt, dtype=F64))[0]
            var = a ** 2 * s ** 2 + sg ** 2
            return -0.5 * (xx - a * mu) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)
        tb = torch.full((61,), t, dtype=F64)
        v, score, _ = gaussian_fields(path, x, tb, torch.tensor([mu], dtype=F64), s)
        dv_dx = (gaussian_fields(path, x + h, tb, torch.tensor([mu], dtype=F64), s)[0]
                 - gaussian_fields(path, x - h, tb, torch.tensor([mu], dtype=F64), s)[0]) / (2 * h)
        dlogp_dt = (log_p(t + h, x) - log_p(t - h, x)) / (2 * h)
        residual = dlogp_dt + v * score + dv_dx
        assert residual.abs().max().item() < 1e-6 * (1 + dlogp_dt.abs().max().item()), (t, residual.abs().max())


@pytest.mark.parametrize('path', ALL, ids=IDS)
def test_gaussian_velocity_is_the_regression_of_u_on_x(path):
    "Monte Carlo: E[u_t | x_t] is linear for Gaussian data; its OLS fit matches the closed form within 5 standard errors."
    g = torch.Generator().manual_seed(5)
    n, mu, s = 400_000, 1.5, 0.5
    x0 = torch.randn(n, 1, dtype=F64, generator=g)
    x1 = mu + s * torch.randn(n, 1, dtype=F64, generator=g)
    for t in (0.2, 0.5, 0.8):
        tt = torch.full((n,), t, dtype=F64)
        xt, ut = path.interpolate(x0, x1, tt)
        xc, uc = xt - xt.mean(), ut - ut.mean()
        slope = (xc * uc).sum() / (xc * xc).sum()
        intercept = ut.mean() - slope * xt.mean()
        (a, da), (sg, dsg) = path.compute_alpha_t(tt[:1]), path.compute_sigma_t(tt[:1])
        var, cov = a ** 2 * s ** 2 + sg ** 2, a * da * s ** 2 + sg * dsg
        true_slope = cov / var
        true_intercept = da * mu - true_slope * a * mu
        residual_var = da ** 2 * s ** 2 + dsg ** 2 - cov ** 2 / var
        se_slope = torch.sqrt(residual_var / (n * var))
        se_intercept = torch.sqrt(residual_var * (1 / n + (a * mu) ** 2 / (n * var)))
        assert abs(slope - true_slope).item() < 5 * se_slope.item(), (t, slope, true_slope, se_slope)
        assert abs(intercept - true_intercept).item() < 5 * se_intercept.item(), (t, intercept, true_intercept)
        # and velocity_to_score applied to the fitted field gives back the Gaussian score
        v_fit = intercept + slope * xt[:100]
        score = -(xt[:100] - a * mu) / var
        torch.testing.assert_close(path.velocity_to_score(v_fit, xt[:100], tt[:100]), score, rtol=0, atol=0.02)


# ---------------------------------------------------------------------------------------------------------------
# valid intervals, dtypes, devices
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('dtype', [torch.float32, F64])
@pytest.mark.parametrize('name', IDS)
def test_finite_inside_the_documented_intervals(name, dtype):
    path, vp = PATHS[name], name.startswith('vp')
    g = torch.Generator().manual_seed(6)
    t = torch.linspace(0, 1, 1001, dtype=dtype)
    x, v = torch.randn(1001, 3, dtype=dtype, generator=g), torch.randn(1001, 3, dtype=dtype, generator=g)
    finite = lambda z: bool(z.isfinite().all())
    from_zero = slice(0, None) if vp else slice(1, None)
    sbdm = slice(0, -1) if vp else slice(1, None)
    assert finite(path.interpolate(x, v, t)[0])
    assert finite(path.interpolate(x, v, t)[1][sbdm if vp else slice(None)])          # u_t: [0, 1) for VP (σ'(1) = -∞)
    if vp: assert not finite(path.interpolate(x, v, t)[1][-1])
    assert finite(path.velocity_to_noise(v, x, t))
    assert finite(path.velocity_to_score(v[:-1], x[:-1], t[:-1]))
    assert finite(path.compute_drift(x[from_zero], t[from_zero])[0])
    assert finite(path.compute_drift(x[from_zero], t[from_zero])[1])
    assert finite(path.score_to_velocity(v[from_zero], x[from_zero], t[from_zero]))
    assert finite(path.compute_diffusion(x[sbdm], t[sbdm]))
    for form in DIFFUSION_FORMS[:1] + DIFFUSION_FORMS[2:]:
        assert finite(path.compute_diffusion(x, t, form=form))


@pytest.mark.parametrize('path', ALL, ids=IDS)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16, torch.float32, F64])
def test_outputs_keep_the_input_dtype_and_shape(path, dtype):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(4, 2, 3, generator=g).to(dtype)
    t = torch.tensor([0.2, 0.4, 0.6, 0.8])                                            # float32 times, cast to x's dtype
    outputs = [*path.interpolate(x, x, t), *path.compute_drift(x, t), path.compute_diffusion(x, t),
               path.velocity_to_score(x, x, t), path.velocity_to_noise(x, x, t), path.score_to_velocity(x, x, t)]
    assert {o.dtype for o in outputs} == {dtype}
    assert [tuple(o.shape) for o in outputs] == [(4, 2, 3)] * 3 + [(4, 1, 1), (4, 1, 1)] + [(4, 2, 3)] * 3


@pytest.mark.parametrize('path', ALL, ids=IDS)
def test_a_python_float_time_broadcasts(path):
    x = torch.randn(5, 2, dtype=F64)
    xt, _ = path.interpolate(x, x + 1, 0.5)
    torch.testing.assert_close(xt, path.interpolate(x, x + 1, torch.full((5,), 0.5, dtype=F64))[0])
    torch.testing.assert_close(path.compute_diffusion(x, 0.5, form='sigma').expand(5, 1),
                               path.compute_diffusion(x, torch.full((5,), 0.5), form='sigma'))


@pytest.mark.parametrize('path', ALL, ids=IDS)
def test_gradients_flow_through_the_conversions(path):
    g = torch.Generator().manual_seed(8)
    v = torch.randn(6, 3, dtype=F64, generator=g, requires_grad=True)
    x = torch.randn(6, 3, dtype=F64, generator=g, requires_grad=True)
    t = inner_times(6, 0.1, 0.9)
    loss = (path.velocity_to_score(v, x, t) ** 2).sum() + (path.velocity_to_noise(v, x, t) ** 2).sum()
    gv, gx = torch.autograd.grad(loss, (v, x))
    assert bool(gv.isfinite().all() and gx.isfinite().all())
    assert torch.autograd.gradcheck(lambda vv: path.velocity_to_score(vv, x.detach(), t), (v,))


@pytest.mark.cuda
@pytest.mark.parametrize('path', ALL, ids=IDS)
def test_cuda_runs_on_device_without_host_syncs(path):
    x = torch.randn(64, 3, 8, device='cuda')
    t = torch.rand(64, device='cuda') * 0.98 + 0.01
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode('error')
    try:
        outputs = [*path.interpolate(x, x.flip(0), t), *path.compute_drift(x, t),
                   *[path.compute_diffusion(x, t, form=f) for f in DIFFUSION_FORMS],
                   path.velocity_to_score(x, x, t), path.velocity_to_noise(x, x, t), path.score_to_velocity(x, x, t)]
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert all(o.device.type == 'cuda' and o.dtype == torch.float32 for o in outputs)
    cpu = path.velocity_to_score(x.cpu(), x.cpu(), t.cpu())
    torch.testing.assert_close(outputs[-3].cpu(), cpu, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------------------------

def test_registry():
    for name, cls in [('linear', LinearInterpolant), ('cosine', CosineInterpolant), ('vp', VariancePreservingInterpolant)]:
        assert type(get_interpolant(name)) is cls
        assert type(resolve_interpolant(name, default='linear', owner='X')) is cls
        assert type(resolve_interpolant(None, default=name, owner='X')) is cls
    assert get_interpolant('vp') is not get_interpolant('vp')
    with pytest.raises(ValueError, match=r"Unknown interpolant: 'VP'\. Choose from \['linear', 'cosine', 'vp'\]"):
        get_interpolant('VP')
    with pytest.raises(ValueError, match='Unknown interpolant'): get_interpolant({'a': 1})
    mine = CosineInterpolant()
    assert resolve_interpolant(mine, default='linear', owner='FlowSampler') is mine
    with pytest.raises(TypeError, match='FlowMatchingLoss requires a BaseInterpolant'):
        resolve_interpolant(1.5, default='linear', owner='FlowMatchingLoss')
    with pytest.raises(TypeError, match=r'pass CosineInterpolant\(\) instead'):
        resolve_interpolant(CosineInterpolant, default='linear', owner='FlowSampler')
    with pytest.raises(TypeError, match='FlowSampler requires'):
        resolve_interpolant(torch.nn.Linear(2, 2), default='linear', owner='FlowSampler')
