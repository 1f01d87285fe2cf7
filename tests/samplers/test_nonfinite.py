"""No sampler returns a non-finite chain silently.

A chain whose energy is NaN cannot move under a Metropolis test (every ratio is NaN); one whose energy is +inf moves only
because its energy was clamped. Both used to come back as valid samples. Every MCMC sampler (and parallel tempering over
each of them) now reports such chains per `nonfinite_policy`: a RuntimeWarning naming the sampler and the step window,
or a RuntimeError with 'raise'. A healthy run reports nothing.
"""
import warnings

import pytest
import torch

from torchebm_nb.core import BaseModel
from torchebm_nb.samplers import (GradientDescentSampler, HamiltonianMonteCarlo, LangevinDynamics, MetropolisAdjustedLangevin,
                                  NoUTurnSampler, ParallelTempering, RiemannianManifoldHMC)


class Walled(BaseModel):
    "½‖x‖² where x₀ < 3; +inf where 3 ≤ x₀ < 6; NaN where x₀ ≥ 6. The gradient is x everywhere (finite)."
    def forward(self, x):
        e = 0.5 * x.square().sum(-1)
        e = torch.where(x[:, 0] >= 3, torch.full_like(e, float('inf')), e)
        return torch.where(x[:, 0] >= 6, torch.full_like(e, float('nan')), e)

    def gradient(self, x, model_kwargs=None):
        return x.clone()


def identity_metric(x):
    return torch.eye(x.shape[1]).expand(x.shape[0], -1, -1)


SAMPLERS = {
    'HMC': lambda m: HamiltonianMonteCarlo(m, step_size=0.2, n_leapfrog_steps=3),
    'MALA': lambda m: MetropolisAdjustedLangevin(m, step_size=0.05),
    'NUTS': lambda m: NoUTurnSampler(m, step_size=0.2, max_tree_depth=3),
    'RMHMC': lambda m: RiemannianManifoldHMC(m, identity_metric, step_size=0.2, n_leapfrog_steps=2),
    'PT(HMC)': lambda m: ParallelTempering(HamiltonianMonteCarlo(m, step_size=0.2, n_leapfrog_steps=3), n_replicas=2),
    'PT(MALA)': lambda m: ParallelTempering(MetropolisAdjustedLangevin(m, step_size=0.05), n_replicas=2),
}
START = torch.tensor([[0.0, 0.0], [4.0, 0.0], [7.0, 0.0], [-1.0, 1.0]])   # finite, +inf, NaN, finite


def runtime_warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = fn()
    return out, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize('name', SAMPLERS)
def test_chains_with_non_finite_energy_are_reported(name):
    sampler = SAMPLERS[name](Walled())
    _, messages = runtime_warnings(lambda: sampler.sample(x=START, n_steps=5, generator=0))
    owner = 'ParallelTempering' if name.startswith('PT') else type(sampler).__name__
    assert len(messages) == 1, messages
    window = 'between steps 1 and 1;' if name.startswith('PT') else 'between steps 1 and 5;'   # PT: one window per swap sweep
    assert messages[0].startswith(f'{owner}: ') and f'became non-finite (NaN or inf) {window}' in messages[0], messages
    n_chains = 8 if name.startswith('PT') else 4
    worst = int(messages[0].split('; ')[1].split(' of ')[0])
    assert 2 <= worst <= n_chains, messages   # the NaN chain at least, and the +inf one at its first step


@pytest.mark.parametrize('name', SAMPLERS)
def test_raise_policy(name):
    sampler = SAMPLERS[name](Walled())
    sampler.nonfinite_policy = 'raise'
    with pytest.raises(RuntimeError, match='became non-finite'):
        sampler.sample(x=START, n_steps=3, generator=0)


@pytest.mark.parametrize('name', SAMPLERS)
def test_a_healthy_run_reports_nothing(name):
    out, messages = runtime_warnings(lambda: SAMPLERS[name](Walled()).sample(x=START[[0, 3]], n_steps=6, generator=1))
    assert messages == [] and torch.isfinite(out).all(), messages


def test_a_chain_that_starts_at_infinite_energy_is_reported_even_after_it_moves():
    "HMC accepts any move away from E = +inf (its clamped energy makes every ratio large): the chain ends finite, and is reported."
    out, messages = runtime_warnings(lambda: HamiltonianMonteCarlo(Walled(), step_size=0.3, n_leapfrog_steps=5).sample(
        x=START[[1]], n_steps=40, generator=2))
    assert torch.isfinite(out).all() and out[0, 0] < 3, out
    assert len(messages) == 1 and '1 of 1 chains became non-finite (NaN or inf) between steps 1 and 32' in messages[0], messages


@pytest.mark.parametrize('make,expected', [
    (lambda m: LangevinDynamics(m, step_size=3.0), '2 of 2 chains'),             # the noise moves the chain at 0 too
    (lambda m: GradientDescentSampler(m, step_size=3.0), '1 of 2 chains')],      # 0 is a fixed point of descent
    ids=['Langevin', 'GradientDescent'])
def test_unadjusted_samplers_report_diverging_positions(make, expected):
    "Without an energy in the state, the driver checks the positions: a step of 3 on ½x² multiplies x by −2, so float32 overflows near step 128."
    _, messages = runtime_warnings(lambda: make(Walled()).sample(x=torch.tensor([[0.0, 0.0], [-1.0, 1.0]]), n_steps=200,
                                                                 generator=3))
    assert len(messages) == 1 and f'{expected} became non-finite (NaN or inf) between steps 97 and 128' in messages[0], messages
