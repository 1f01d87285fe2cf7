"""Butcher-tableau facts: every tableau satisfies the rooted-tree order conditions to exactly its claimed order."""
import math

import pytest

from torchebm_nb.integrators import (AdaptiveHeunIntegrator, BackwardEulerMaruyamaIntegrator, Bosh3Integrator,
                                     Dopri5Integrator, Dopri8Integrator, EulerMaruyamaIntegrator, HeunIntegrator,
                                     MidpointIntegrator, RK4Integrator, RK438Integrator)
from torchebm_nb.integrators.deterministic import _butcher_order, _rooted_trees

ALL = [(EulerMaruyamaIntegrator, 1), (BackwardEulerMaruyamaIntegrator, 1), (HeunIntegrator, 2),
       (MidpointIntegrator, 2), (RK4Integrator, 4), (RK438Integrator, 4), (AdaptiveHeunIntegrator, 2),
       (Bosh3Integrator, 3), (Dopri5Integrator, 5), (Dopri8Integrator, 8)]
ADAPTIVE = [AdaptiveHeunIntegrator, Bosh3Integrator, Dopri5Integrator, Dopri8Integrator]


def test_tree_counts():
    # OEIS A000081: number of rooted trees with n vertices
    assert [len(_rooted_trees(n)) for n in range(1, 10)] == [1, 1, 2, 4, 9, 20, 48, 115, 286]


@pytest.mark.parametrize("cls,order", ALL, ids=lambda v: getattr(v, "__name__", str(v)))
def test_order_conditions_exact_order(cls, order):
    ig = cls()
    assert ig.order == order
    # all conditions up to `order` hold (to 1e-12), and at least one of order+1 fails: the order is exactly `order`
    assert _butcher_order(ig.tableau_a, ig.tableau_b, max_order=order + 1, tol=1e-12) == order


@pytest.mark.parametrize("cls", [c for c, _ in ALL], ids=lambda c: c.__name__)
def test_tableau_shape_and_row_sums(cls):
    ig = cls()
    s = ig.n_stages
    assert len(ig.tableau_a) == len(ig.tableau_c) == len(ig.tableau_b) == s
    for i, row in enumerate(ig.tableau_a):
        assert len(row) == i + 1                                          # lower triangular incl. diagonal
        assert math.isclose(sum(row), ig.tableau_c[i], abs_tol=1e-12)    # c_i = Σ_j a_ij
    assert math.isclose(sum(ig.tableau_b), 1.0, abs_tol=1e-14)


@pytest.mark.parametrize("cls", ADAPTIVE, ids=lambda c: c.__name__)
def test_embedded_order(cls):
    ig = cls()
    b_hat = [b - e for b, e in zip(ig.tableau_b, ig.error_weights)]
    assert _butcher_order(ig.tableau_a, b_hat, max_order=ig.order, tol=1e-12) == ig.order - 1
    assert math.isclose(sum(ig.error_weights), 0.0, abs_tol=1e-14)      # both solutions are consistent


@pytest.mark.parametrize("cls", [Bosh3Integrator, Dopri5Integrator, Dopri8Integrator], ids=lambda c: c.__name__)
def test_fsal_structure(cls):
    ig = cls()
    assert ig.fsal
    assert ig.tableau_c[-1] == 1.0 and ig.tableau_b[-1] == 0.0
    for a, b in zip(ig.tableau_a[-1][:-1], ig.tableau_b[:-1]): assert math.isclose(a, b, rel_tol=1e-14)


def test_published_facts():
    d5 = Dopri5Integrator()
    assert (d5.n_stages, len(d5.error_weights)) == (7, 7)                # 7 error weights incl. the FSAL stage
    assert math.isclose(d5.error_weights[0], 71 / 57600) and math.isclose(d5.error_weights[6], -1 / 40)
    assert d5.tableau_c == (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
    d8 = Dopri8Integrator()
    assert (d8.n_stages, len(d8.error_weights)) == (14, 14)
    assert math.isclose(d8.tableau_c[8], 5490023248 / 9719169821)
    b3 = Bosh3Integrator()
    assert b3.error_weights == pytest.approx((-5 / 72, 1 / 12, 1 / 9, -1 / 8))
    assert AdaptiveHeunIntegrator().error_weights == (0.5, -0.5)
    assert RK438Integrator().tableau_b == (1 / 8, 3 / 8, 3 / 8, 1 / 8)
    assert BackwardEulerMaruyamaIntegrator().tableau_a == ((1.0,),)
    assert BackwardEulerMaruyamaIntegrator().tableau_c == (1.0,)
    assert EulerMaruyamaIntegrator().tableau_b == (1.0,) and EulerMaruyamaIntegrator().tableau_c == (0.0,)
    assert HeunIntegrator().tableau_b == (0.5, 0.5) and HeunIntegrator().tableau_c == (0.0, 1.0)
    assert MidpointIntegrator().tableau_b == (0.0, 1.0) and MidpointIntegrator().tableau_c == (0.0, 0.5)
    for cls in [MidpointIntegrator, RK4Integrator, RK438Integrator, EulerMaruyamaIntegrator, HeunIntegrator]:
        assert cls().error_weights is None and cls().fsal is False


def test_tableau_constants():
    """Each method's tableau is one module-level constant with its order and a reference; Heun's is written once."""
    from torchebm_nb.core.base_integrator import ButcherTableau
    from torchebm_nb.integrators import deterministic, stochastic
    constants = {name: value for module in (deterministic, stochastic) for name, value in vars(module).items()
                 if name.endswith('_TABLEAU')}
    assert len(constants) == 10, sorted(constants)           # HEUN_TABLEAU is the same constant in both modules
    for name, tableau in constants.items():
        assert isinstance(tableau, ButcherTableau) and tableau.reference, name
        assert _butcher_order(tableau.a, tableau.b, max_order=tableau.order + 1, tol=1e-12) == tableau.order, name
    for cls, _ in ALL: assert cls.tableau in constants.values(), cls.__name__
    assert HeunIntegrator.tableau is deterministic.HEUN_TABLEAU is stochastic.HEUN_TABLEAU
    assert AdaptiveHeunIntegrator.tableau[:4] == HeunIntegrator.tableau[:4]
    assert HeunIntegrator().error_weights is None and AdaptiveHeunIntegrator().error_weights == (0.5, -0.5)
