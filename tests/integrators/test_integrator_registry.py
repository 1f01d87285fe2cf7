"""Registry, families, resolve_integrator and the public surface of torchebm_nb.integrators."""
import pytest
import torch

import torchebm_nb.integrators as integrators
from torchebm_nb.core.base_integrator import (BaseIntegrator, BaseRungeKuttaIntegrator, BaseSDERungeKuttaIntegrator,
                                              BaseSymplecticIntegrator)
from torchebm_nb.integrators import _integrate_time_grid, get_integrator, resolve_integrator
from torchebm_nb.integrators.integrator_utils import INTEGRATOR_REGISTRY
from torchebm_nb.integrators.splitting import LangevinSplittingIntegrator

API_NAMES = ['get_integrator', 'resolve_integrator', '_integrate_time_grid', 'EulerMaruyamaIntegrator',
             'BackwardEulerMaruyamaIntegrator', 'HeunIntegrator', 'LeapfrogIntegrator', 'GeneralisedLeapfrogIntegrator',
             'Dopri5Integrator', 'Dopri8Integrator', 'RK4Integrator', 'RK438Integrator', 'MidpointIntegrator',
             'AdaptiveHeunIntegrator', 'Bosh3Integrator', 'inverse_mass', 'LangevinSplittingIntegrator', 'BAOABIntegrator',
             'OBABOIntegrator', 'ABOBAIntegrator', 'compile_splitting']

TABLE = {  # name: (class name, family, adaptive / separable)
    'euler': ('EulerMaruyamaIntegrator', BaseSDERungeKuttaIntegrator, False),
    'euler_maruyama': ('EulerMaruyamaIntegrator', BaseSDERungeKuttaIntegrator, False),
    'backward_euler_maruyama': ('BackwardEulerMaruyamaIntegrator', BaseSDERungeKuttaIntegrator, False),
    'heun': ('HeunIntegrator', BaseSDERungeKuttaIntegrator, False),
    'midpoint': ('MidpointIntegrator', BaseRungeKuttaIntegrator, False),
    'rk4': ('RK4Integrator', BaseRungeKuttaIntegrator, False),
    'rk438': ('RK438Integrator', BaseRungeKuttaIntegrator, False),
    'adaptive_heun': ('AdaptiveHeunIntegrator', BaseRungeKuttaIntegrator, True),
    'bosh3': ('Bosh3Integrator', BaseRungeKuttaIntegrator, True),
    'dopri5': ('Dopri5Integrator', BaseRungeKuttaIntegrator, True),
    'dopri8': ('Dopri8Integrator', BaseRungeKuttaIntegrator, True),
    'leapfrog': ('LeapfrogIntegrator', BaseSymplecticIntegrator, True),
    'generalised_leapfrog': ('GeneralisedLeapfrogIntegrator', BaseSymplecticIntegrator, False),
    'generalized_leapfrog': ('GeneralisedLeapfrogIntegrator', BaseSymplecticIntegrator, False),
    'baoab': ('BAOABIntegrator', LangevinSplittingIntegrator, 'BAOAB'),   # splittings: the word of sub-steps
    'obabo': ('OBABOIntegrator', LangevinSplittingIntegrator, 'OBABO'),
    'aboba': ('ABOBAIntegrator', LangevinSplittingIntegrator, 'ABOBA'),
}


def test_public_surface():
    assert sorted(integrators.__all__) == sorted(API_NAMES)
    for name in API_NAMES: assert getattr(integrators, name) is not None


@pytest.mark.parametrize("name", list(TABLE))
def test_registry_table(name):
    cls_name, family, flag = TABLE[name]
    ig = get_integrator(name)
    assert type(ig).__name__ == cls_name and isinstance(ig, family) and isinstance(ig, BaseIntegrator)
    if family is BaseSymplecticIntegrator: assert type(ig).separable is flag
    elif family is LangevinSplittingIntegrator: assert type(ig).splitting == flag
    else: assert (ig.error_weights is not None) is flag
    if family is BaseRungeKuttaIntegrator: assert not isinstance(ig, BaseSDERungeKuttaIntegrator)
    assert get_integrator(name, dtype=torch.float64).dtype == torch.float64
    assert get_integrator(name, device="cpu").device == torch.device("cpu")


def test_registry_has_exactly_the_api_names():
    assert set(INTEGRATOR_REGISTRY) == set(TABLE)


def test_unknown_name():
    with pytest.raises(ValueError, match=r"Unknown integrator 'rk45'\. Valid names: aboba, adaptive_heun, backward_euler_maruyama, baoab, bosh3"):
        get_integrator("rk45")
    with pytest.raises(ValueError, match="Valid names"):
        resolve_integrator("RK4", default="rk4", family=BaseRungeKuttaIntegrator, owner="FlowSampler")


def test_resolve_defaults_names_and_instances():
    kw = dict(default="euler_maruyama", family=BaseSDERungeKuttaIntegrator, owner="LangevinDynamics")
    ig = resolve_integrator(None, **kw, device="cpu", dtype=torch.float64)
    assert type(ig).__name__ == "EulerMaruyamaIntegrator" and ig.dtype == torch.float64
    assert type(resolve_integrator("heun", **kw)).__name__ == "HeunIntegrator"
    inst = integrators.HeunIntegrator(dtype=torch.float64)
    assert resolve_integrator(inst, **kw, device=torch.device("cpu"), dtype=torch.float64) is inst


@pytest.mark.parametrize("given", ["rk4", "dopri5", "leapfrog", "instance-rk4", "instance-leapfrog"])
def test_wrong_family_raises_type_error(given):
    value = {"instance-rk4": integrators.RK4Integrator(), "instance-leapfrog": integrators.LeapfrogIntegrator()}.get(given, given)
    expected = {"rk4": "RK4Integrator", "dopri5": "Dopri5Integrator", "leapfrog": "LeapfrogIntegrator",
                "instance-rk4": "RK4Integrator", "instance-leapfrog": "LeapfrogIntegrator"}[given]
    with pytest.raises(TypeError, match=f"LangevinDynamics requires a BaseSDERungeKuttaIntegrator; got {expected}"):
        resolve_integrator(value, default="euler_maruyama", family=BaseSDERungeKuttaIntegrator, owner="LangevinDynamics")


def test_family_nesting():
    kw = dict(default="dopri5", family=BaseRungeKuttaIntegrator, owner="FlowSampler")
    assert isinstance(resolve_integrator("euler", **kw), BaseSDERungeKuttaIntegrator)   # SDE-RK ⊂ RK
    with pytest.raises(TypeError, match="FlowSampler requires a BaseRungeKuttaIntegrator; got GeneralisedLeapfrogIntegrator"):
        resolve_integrator("generalized_leapfrog", **kw)
    with pytest.raises(TypeError, match="requires a BaseSymplecticIntegrator; got int"):
        resolve_integrator(5, default="leapfrog", family=BaseSymplecticIntegrator, owner="HMC")


def test_device_and_dtype_mismatch_raise_value_error():
    kw = dict(default="leapfrog", family=BaseSymplecticIntegrator, owner="HamiltonianMonteCarlo")
    lf32 = integrators.LeapfrogIntegrator(dtype=torch.float32)
    with pytest.raises(ValueError, match="dtype=torch.float64 but the integrator LeapfrogIntegrator"):
        resolve_integrator(lf32, **kw, device="cpu", dtype=torch.float64)
    meta = integrators.LeapfrogIntegrator(device="meta")                               # another device, no GPU needed
    with pytest.raises(ValueError, match="no implicit .to"):
        resolve_integrator(meta, **kw, device="cpu", dtype=torch.float32)
    assert meta.device == torch.device("meta")                                         # not moved
    assert resolve_integrator(lf32, **kw) is lf32                                      # nothing given: nothing checked


def test_integrate_time_grid():
    x = torch.ones(3, 2, dtype=torch.float64)
    t = torch.tensor([0.0, 0.1, 0.3, 0.6], dtype=torch.float64)
    calls = []
    def step(x, tb, dt):
        calls.append((tuple(tb.shape), tb[0].item(), dt.item(), dt.ndim)); return x * (1 + dt)
    out = _integrate_time_grid(x, t, step)
    assert calls == [((3,), 0.0, pytest.approx(0.1), 0), ((3,), 0.1, pytest.approx(0.2), 0), ((3,), 0.3, pytest.approx(0.3), 0)]
    assert torch.allclose(out, x * 1.1 * 1.2 * 1.3)
    with pytest.raises(ValueError, match="at least 2 points"): _integrate_time_grid(x, torch.tensor([0.0]), step)
    with pytest.raises(ValueError, match="1-D time grid"): _integrate_time_grid(x, torch.zeros(2, 2), step)
