"""Bad batches handed to every coupling (issue 14, "NaN rows handed to a coupling"): a NaN or ±inf row in `x0` or `x1` is
a `ValueError` naming the batch and its first bad row, raised before any plan is computed; unequal batch sizes and
sample shapes name the batches too. Model couplings (reflow) use only `x0`, and check its rows."""
import pytest
import torch

from torchebm_nb import couplings as C
from torchebm_nb.core.base_coupling import BaseCostCoupling
from torchebm_nb.core.base_module import check_finite_rows

PAIRING = ['IndependentCoupling', 'ExactOTCoupling', 'SinkhornCoupling', 'GreedyCoupling', 'UnbalancedSinkhornCoupling']
BAD_VALUES = {'nan': float('nan'), '+inf': float('inf'), '-inf': float('-inf')}


class CountingFlow:
    "A stand-in flow for ReflowCoupling that counts its evaluations: x0 ↦ x0 + 1."
    def __init__(self): self.calls = 0
    def sample(self, x=None, n_steps=1, **kwargs):
        self.calls += 1
        return x + 1


class SolveCounter:
    "Counts calls of a cost coupling's solver, to show the check comes before the plan."
    def __init__(self, coupling):
        self.calls = 0
        solve = coupling._solve
        def counted(*args, **kwargs):
            self.calls += 1
            return solve(*args, **kwargs)
        coupling._solve = counted



def batches(seed=0, n=8, shape=(2,)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randn(n, *shape, generator=g) + 1.0


# ---- non-finite rows: every pairing coupling x (x0, x1) x (nan, +inf, -inf) x sample shape -----------------------
CASES = {f'{which} {value} {len(shape)}-d': (which, value, shape)
         for which in ('x0', 'x1') for value in BAD_VALUES for shape in [(2,), (1, 3, 3)]}


@pytest.mark.parametrize('case', list(CASES))
@pytest.mark.parametrize('name', PAIRING)
def test_pairing_couplings_name_the_first_non_finite_row(name, case):
    which, value, shape = CASES[case]
    coupling = getattr(C, name)()
    counter = SolveCounter(coupling) if isinstance(coupling, BaseCostCoupling) else None
    x = dict(zip(('x0', 'x1'), batches(shape=shape)))
    x[which][5].view(-1)[-1] = BAD_VALUES[value]
    x[which][6].view(-1)[0] = BAD_VALUES[value]
    with pytest.raises(ValueError) as caught:
        coupling(x['x0'], x['x1'], generator=0)
    message = str(caught.value)
    assert message.startswith(f'{which} has non-finite values (NaN or inf) in 2 of its 8 rows, the first being row 5'), message
    if counter is not None: assert counter.calls == 0


@pytest.mark.parametrize('value', list(BAD_VALUES))
def test_sinkhorn_transport_plan_checks_rows_too(value):
    x0, x1 = batches()
    x1[2, 0] = BAD_VALUES[value]
    with pytest.raises(ValueError, match=r'^x1 has non-finite values .* the first being row 2'):
        C.SinkhornCoupling().transport_plan(x0, x1)


@pytest.mark.parametrize('value', list(BAD_VALUES))
def test_reflow_checks_the_rows_of_x0_before_the_flow_runs(value):
    flow = CountingFlow()
    x0, _ = batches()
    x0[3, 1] = BAD_VALUES[value]
    with pytest.raises(ValueError, match=r'^x0 has non-finite values .* the first being row 3'):
        C.ReflowCoupling(flow, n_steps=2)(x0)
    assert flow.calls == 0


def test_reflow_ignores_x1_as_documented():
    flow = CountingFlow()
    x0, x1 = batches()
    x1[0, 0] = float('nan')                       # x1 is not used by a model coupling
    assert torch.equal(C.ReflowCoupling(flow)(x0, x1).x1, x0 + 1)


# ---- shapes ---------------------------------------------------------------------------------------------------
SHAPES = {'batch sizes': ((6, 2), (5, 2), 'needs batches of equal size; got 6 samples in x0 and 5 in x1'),
          'sample shapes': ((4, 2), (4, 3), 'needs samples of the same shape; got x0 of shape (4, 2) and x1 of shape (4, 3)'),
          'image vs flat': ((4, 1, 2, 2), (4, 4), 'got x0 of shape (4, 1, 2, 2) and x1 of shape (4, 4)')}


@pytest.mark.parametrize('case', list(SHAPES))
@pytest.mark.parametrize('name', PAIRING)
def test_pairing_couplings_name_mismatched_shapes(name, case):
    shape0, shape1, words = SHAPES[case]
    coupling = getattr(C, name)()
    counter = SolveCounter(coupling) if isinstance(coupling, BaseCostCoupling) else None
    with pytest.raises(ValueError) as caught:
        coupling(torch.zeros(shape0), torch.zeros(shape1))
    assert words in str(caught.value), str(caught.value)
    if counter is not None: assert counter.calls == 0


@pytest.mark.parametrize('which', ['x0', 'x1'])
@pytest.mark.parametrize('name', PAIRING)
def test_pairing_couplings_name_a_non_tensor(name, which):
    x = dict(zip(('x0', 'x1'), batches()))
    x[which] = x[which].tolist()
    with pytest.raises(TypeError, match=rf'^{which} must be a torch.Tensor; got list'):
        getattr(C, name)()(x['x0'], x['x1'])


# ---- good input still pairs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', PAIRING)
def test_finite_batches_still_pair(name):
    x0, x1 = batches()
    out = getattr(C, name)()(x0, x1, generator=0)
    assert out.x0 is x0 and out.x1.shape == x1.shape and torch.isfinite(out.x1).all()


def test_integer_batches_are_finite():
    labels = torch.arange(8)
    assert check_finite_rows(labels, 'labels') is labels
