"""Bad run arguments to every MCMC sampler's `sample()`: flags that are not bools and empty batches are refused with an
error naming the argument, before the model is evaluated (issue 14's classes "wrong types coerced" and "empty batches");
integer starting points are refused, not cast."""
import pytest
import torch

from torchebm_nb.core import BaseModel, run_chain
from torchebm_nb.samplers import (GradientDescentSampler, HamiltonianMonteCarlo, LangevinDynamics,
                                  MetropolisAdjustedLangevin, NesterovSampler, NoUTurnSampler)

from counting import CountingGaussian


SAMPLERS = {'langevin': lambda m: LangevinDynamics(m, step_size=0.1),
            'hmc': lambda m: HamiltonianMonteCarlo(m, step_size=0.1, n_leapfrog_steps=3),
            'mala': lambda m: MetropolisAdjustedLangevin(m, step_size=0.1),
            'nuts': lambda m: NoUTurnSampler(m, step_size=0.1),
            'gradient_descent': lambda m: GradientDescentSampler(m, step_size=0.1),
            'nesterov': lambda m: NesterovSampler(m, step_size=0.1)}
FLAGS = ['return_trajectory', 'return_diagnostics', 'reset_schedulers']
NOT_BOOLS = ['no', 'False', 1, 0, None, torch.tensor(True), 1.0]


@pytest.mark.parametrize('value', NOT_BOOLS, ids=repr)
@pytest.mark.parametrize('flag', FLAGS)
@pytest.mark.parametrize('name', list(SAMPLERS))
def test_flags_must_be_bools(name, flag, value):
    model = CountingGaussian()
    with pytest.raises(TypeError, match=rf"{flag} must be a bool; got"):
        SAMPLERS[name](model).sample(x=torch.zeros(4, 2), n_steps=3, **{flag: value})
    assert model.calls == 0


@pytest.mark.parametrize('shape', [(0, 2), (0, 3, 4)])
@pytest.mark.parametrize('name', list(SAMPLERS))
def test_empty_batches_name_x(name, shape):
    model = CountingGaussian()
    with pytest.raises(ValueError, match=r"x must hold at least one (chain|sample); got an empty batch of shape \(0,"):
        SAMPLERS[name](model).sample(x=torch.zeros(*shape), n_steps=3)
    assert model.calls == 0


@pytest.mark.parametrize('dtype', [torch.int64, torch.int32, torch.bool])
@pytest.mark.parametrize('name', list(SAMPLERS))
def test_integer_starting_points_are_refused_not_cast(name, dtype):
    "One rule for integer batches everywhere (losses, couplings, samplers): refused with a TypeError naming x."
    model = CountingGaussian()
    with pytest.raises(TypeError, match=rf"x must be a floating tensor; got dtype {dtype}"):
        SAMPLERS[name](model).sample(x=torch.ones(4, 2, dtype=dtype), n_steps=3)
    assert model.calls == 0


def test_run_chain_refuses_what_is_not_a_tensor():
    sampler = LangevinDynamics(CountingGaussian(), step_size=0.1)
    with pytest.raises(TypeError, match='x must be a tensor of chains'):
        run_chain(sampler, [[0.0, 0.0]], 3, ctx=sampler.context(None, None, None))


def test_run_chain_checks_too():
    model = CountingGaussian()
    sampler = LangevinDynamics(model, step_size=0.1)
    ctx = sampler.context(None, None, None)
    with pytest.raises(TypeError, match='return_trajectory must be a bool'):
        run_chain(sampler, torch.zeros(4, 2), 3, ctx=ctx, return_trajectory='no')
    with pytest.raises(ValueError, match='x must hold at least one chain'):
        run_chain(sampler, torch.zeros(0, 2), 3, ctx=ctx)
    assert model.calls == 0
    assert run_chain(sampler, torch.zeros(4, 2), 3, ctx=ctx, return_trajectory=True).shape == (4, 3, 2)
