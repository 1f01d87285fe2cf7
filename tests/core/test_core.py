"""Property-based and reference tests of the core layer (the notebooks hold the worked examples)."""
import math
import warnings

import pytest
import torch
from hypothesis import given, settings, strategies as st

import torchebm_nb
from torchebm_nb.core import (AckleyModel, BaseModel, CompositeModel, ConstantScheduler, CosineScheduler,
                              DoubleWellModel, ExponentialDecayScheduler, GaussianModel, HarmonicModel,
                              HimmelblauModel, LinearScheduler, MultiStepScheduler, RastriginModel, RosenbrockModel,
                              StyblinskiTangModel, TemperatureScheduler, TorchEBMModule, WarmupScheduler)

API_CORE_NAMES = ('TorchEBMModule warn_once BaseModel DoubleWellModel GaussianModel HarmonicModel RosenbrockModel '
                  'AckleyModel RastriginModel HimmelblauModel BoothModel StyblinskiTangModel BaseScheduler '
                  'ConstantScheduler ExponentialDecayScheduler LinearScheduler CosineScheduler MultiStepScheduler '
                  'WarmupScheduler TemperatureScheduler Schedulable').split()


def test_core_exports_every_contract_name_built_so_far():
    import torchebm_nb.core as core
    for name in API_CORE_NAMES:
        assert name in core.__all__ and hasattr(core, name), name
    assert core.DeviceMixin is core.TorchEBMModule


def test_top_level_all_is_the_contract():
    assert set(torchebm_nb.__all__) == {'core', 'samplers', 'losses', 'utils', 'cuda', 'datasets', 'models',
                                        'integrators', 'interpolants', 'couplings', '__version__'}
    for name in torchebm_nb.__all__: getattr(torchebm_nb, name)


def test_lazy_subpackages_and_unknown_attribute():
    assert torchebm_nb.core.GaussianModel is GaussianModel
    with pytest.raises(AttributeError, match='no attribute'):
        torchebm_nb.not_a_subpackage
    assert isinstance(torchebm_nb.__version__, str)


ENERGIES = [DoubleWellModel(), DoubleWellModel(barrier_height=0.5, b=1.7), HarmonicModel(k=3.0), RosenbrockModel(),
            RosenbrockModel(a=0.5, b=10.0), AckleyModel(), RastriginModel(), HimmelblauModel(), StyblinskiTangModel()]


@settings(max_examples=40, deadline=None)
@given(which=st.integers(0, len(ENERGIES) - 1), half_dim=st.integers(1, 5), batch=st.integers(1, 7),
       extra=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_closed_form_gradients_match_autograd(which, half_dim, batch, extra, seed):
    model = ENERGIES[which]
    shape = (batch, 3, 2 * half_dim) if extra else (batch, 2 * half_dim)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2
    closed = model.gradient(x)
    auto = BaseModel.gradient(model, x.reshape(-1, shape[-1])).reshape(shape)
    torch.testing.assert_close(closed, auto, rtol=1e-9, atol=1e-9)
    assert model(x).shape == shape[:-1]


@settings(max_examples=25, deadline=None)
@given(dim=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_gaussian_energy_is_negative_log_density_up_to_normaliser(dim, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    cov = a @ a.T + 0.5 * torch.eye(dim, dtype=torch.float64)
    mean = torch.randn(dim, generator=g, dtype=torch.float64)
    model = GaussianModel(mean, cov, dtype=torch.float64)
    reference = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
    x = torch.randn(16, dim, generator=g, dtype=torch.float64)
    log_z = 0.5 * torch.logdet(2 * math.pi * cov)
    torch.testing.assert_close(model(x), -reference.log_prob(x) - log_z)
    torch.testing.assert_close(model.gradient(x), BaseModel.gradient(model, x))


def test_composite_gradient_is_weighted_sum():
    parts = [DoubleWellModel(), HarmonicModel(k=2.0), RastriginModel()]
    model = CompositeModel(parts, weights=[0.3, 1.5, -0.2])
    x = torch.randn(32, 4, dtype=torch.float64)
    expected = sum(w * m.gradient(x) for w, m in zip([0.3, 1.5, -0.2], parts))
    torch.testing.assert_close(model.gradient(x), expected)
    torch.testing.assert_close(model.gradient(x), BaseModel.gradient(model, x))


def test_device_cache_follows_to():
    model = GaussianModel(torch.zeros(3), torch.eye(3))
    assert model.dtype == torch.float32
    model.to(torch.float64)
    assert model.dtype == torch.float64 and model.cov_inv.dtype == torch.float64
    assert model.gradient(torch.randn(2, 3)).dtype == torch.float32  # gradient follows the input dtype


def test_state_dict_holds_buffers_not_probe():
    model = GaussianModel(torch.zeros(2), torch.eye(2))
    assert set(model.state_dict()) == {'mean', 'cov', 'cov_inv'}
    assert list(TorchEBMModule().state_dict()) == []


@settings(max_examples=50, deadline=None)
@given(start=st.floats(-10, 10), end=st.floats(-10, 10), n=st.integers(1, 50), k=st.integers(0, 120))
def test_linear_and_cosine_schedules_stay_between_endpoints(start, end, n, k):
    lo, hi = min(start, end) - 1e-9, max(start, end) + 1e-9
    for cls in (LinearScheduler, CosineScheduler):
        s = cls(start, end, n)
        values = [s.step() for _ in range(k)]
        assert all(lo <= v <= hi for v in values)
        if k >= n: assert math.isclose(values[-1], end, abs_tol=1e-9)


@settings(max_examples=30, deadline=None)
@given(start=st.floats(0.01, 10), rate=st.floats(0.01, 1.0), floor=st.floats(0, 1), k=st.integers(1, 80))
def test_exponential_decay_is_monotone_and_floored(start, rate, floor, k):
    s = ExponentialDecayScheduler(start, rate, min_value=floor)
    values = [s.get_value()] + [s.step() for _ in range(k)]
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:]))
    assert all(v >= floor for v in values)


def test_warmup_is_continuous_into_main_schedule():
    main = CosineScheduler(2.0, 0.0, 10)
    w = WarmupScheduler(main, warmup_steps=5, warmup_init_factor=0.1)
    values = [w.get_value()] + [w.step() for _ in range(15)]
    assert values[0] == pytest.approx(0.2) and values[5] == pytest.approx(2.0)
    steps = [b - a for a, b in zip(values, values[1:])]
    assert max(abs(d) for d in steps) < 0.5  # no jump at the hand-over


def test_temperature_scheduler_matches_definition_at_every_step():
    s = TemperatureScheduler(0.15, tau_star=0.8, n_steps=50, sqrt=False)
    for k in range(1, 60):
        t = min(k, 50) / 50
        expected = 0.0 if t < 0.8 else 0.15 * (t - 0.8) / 0.2 if t < 1 else 0.15
        assert s.step() == pytest.approx(expected)


def test_scheduler_values_are_python_floats():
    for s in (ConstantScheduler(1), LinearScheduler(1, 2, 3), MultiStepScheduler(1, [1]), TemperatureScheduler(0.1)):
        assert type(s.step()) is float and type(s.get_value()) is float


def test_mixed_precision_warns_off_cuda():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        DoubleWellModel().setup_mixed_precision(True)
    assert any(issubclass(w.category, UserWarning) for w in caught)


def test_trainer_leaves_the_global_rng_alone():
    "Building a trainer without a generator must not reseed torch's global RNG (user code stays reproducible)."
    from torchebm_nb.core.base_trainer import BaseTrainer
    model = torch.nn.Linear(2, 1)
    torch.manual_seed(0); expected = torch.randn(3)
    torch.manual_seed(0)
    class MeanOutput(torch.nn.Module):
        def forward(self, x, **kwargs): return model(x).mean()
    BaseTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), MeanOutput(), device='cpu', progress=False)
    assert torch.equal(torch.randn(3), expected)
