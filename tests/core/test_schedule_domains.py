"""Schedules that leave a parameter's domain (issue 14): a step size that reaches 0 or below, a noise scale below 0, a loss
weight below 0. Known schedules are checked over the whole run before the model is evaluated; schedules with no closed form
are checked at each step; a schedule that goes bad only after the run is accepted. Also: wrapped numbers are reported under
the sampler's argument name, and `load_state_dict` refuses what `state_dict` never writes."""
import math

import pytest
import torch

from torchebm_nb.core import (BaseModel, BaseScheduler, ConstantScheduler, CosineScheduler, ExponentialDecayScheduler,
                              LinearScheduler, MultiStepScheduler, TemperatureScheduler, WarmupScheduler)
from torchebm_nb.losses import DenoisingScoreMatching
from torchebm_nb.samplers import (GradientDescentSampler, HamiltonianMonteCarlo, LangevinDynamics, MetropolisAdjustedLangevin,
                                  NesterovSampler, NoUTurnSampler, ParallelTempering, RiemannianManifoldHMC)

from counting import CountingGaussian


class Halving(BaseScheduler):
    "A user scheduler with no closed form: start / 2**k − offset."
    def __init__(self, start_value, offset=0.0):
        super().__init__(start_value)
        self.offset = offset
    def _compute_value(self):
        return self.start_value / 2 ** self.step_count - self.offset


def _metric(x): return torch.eye(x.shape[-1]).expand(x.shape[0], x.shape[-1], x.shape[-1])

STEP_SIZE_SAMPLERS = {
    'langevin': lambda m, h: LangevinDynamics(m, step_size=h),
    'hmc': lambda m, h: HamiltonianMonteCarlo(m, step_size=h, n_leapfrog_steps=2),
    'mala': lambda m, h: MetropolisAdjustedLangevin(m, step_size=h),
    'nuts': lambda m, h: NoUTurnSampler(m, step_size=h),
    'riemannian_hmc': lambda m, h: RiemannianManifoldHMC(m, metric_fn=_metric, step_size=h, n_leapfrog_steps=2),
    'gradient_descent': lambda m, h: GradientDescentSampler(m, step_size=h),
    'nesterov': lambda m, h: NesterovSampler(m, step_size=h),
    'parallel_tempering': lambda m, h: ParallelTempering(LangevinDynamics(m, step_size=h), n_replicas=2),
}
N_STEPS = 5
BAD_STEP_SIZES = {  # name: (schedule maker, words in the message)
    'constant 0': (lambda: ConstantScheduler(0.0), 'ConstantScheduler'),
    'constant negative': (lambda: ConstantScheduler(-0.1), 'ConstantScheduler'),
    'number nan': (lambda: math.nan, 'finite number'),
    'number inf': (lambda: math.inf, 'finite number'),
    'number 0': (lambda: 0.0, 'positive'),
    'linear reaching 0 at step 2': (lambda: LinearScheduler(0.1, -0.1, 4), 'gives 0.0 at step 2'),
    'linear below 0 only at the last step': (lambda: LinearScheduler(0.4, -0.1, 4), 'at step 4 (n_steps=5)'),
    'cosine through 0': (lambda: CosineScheduler(0.1, -0.1, 4), 'at step 2'),
    'exponential from below 0': (lambda: ExponentialDecayScheduler(-0.1, 0.5), 'ExponentialDecayScheduler'),
    'multistep with a negative factor': (lambda: MultiStepScheduler(0.1, [3], gamma=-1.0), 'at step 3'),
    'warmup around a linear through 0': (lambda: WarmupScheduler(LinearScheduler(0.1, -0.1, 4), 2), 'at step 4'),
    'warmup around a negative constant': (lambda: WarmupScheduler(ConstantScheduler(-0.1), 2), 'WarmupScheduler'),
    'warmup from 0': (lambda: WarmupScheduler(ConstantScheduler(0.1), 2, warmup_init_factor=0.0), 'WarmupScheduler'),
}


@pytest.mark.parametrize('schedule', list(BAD_STEP_SIZES))
@pytest.mark.parametrize('name', list(STEP_SIZE_SAMPLERS))
def test_step_size_schedules_outside_the_domain_are_refused_before_the_model_runs(name, schedule):
    make, words = BAD_STEP_SIZES[schedule]
    model = CountingGaussian()
    with pytest.raises(ValueError) as caught:
        STEP_SIZE_SAMPLERS[name](model, make()).sample(x=torch.zeros(4, 2), n_steps=N_STEPS, generator=0)
    message = str(caught.value)
    assert message.startswith('step_size must be') and words in message, message
    assert model.calls == 0


BAD_NOISE_SCALES = {
    'number 0': (lambda: 0.0, 'noise_scale must be positive'),
    'number nan': (lambda: math.nan, 'noise_scale must be a finite number'),
    'constant negative': (lambda: ConstantScheduler(-0.1), 'ConstantScheduler'),
    'linear below 0 at step 3': (lambda: LinearScheduler(1.0, -1.0, 4), 'gives -0.5 at step 3'),
    'cosine below 0': (lambda: CosineScheduler(1.0, -1.0, 3), 'at step 2'),
    'warmup around a linear below 0': (lambda: WarmupScheduler(LinearScheduler(1.0, -1.0, 2), 1), 'at step 3'),
}


@pytest.mark.parametrize('schedule', list(BAD_NOISE_SCALES))
def test_langevin_noise_scale_schedules_outside_the_domain_are_refused(schedule):
    make, words = BAD_NOISE_SCALES[schedule]
    model = CountingGaussian()
    with pytest.raises(ValueError) as caught:
        LangevinDynamics(model, step_size=0.1, noise_scale=make()).sample(x=torch.zeros(4, 2), n_steps=N_STEPS, generator=0)
    message = str(caught.value)
    assert message.startswith('noise_scale must be') and words in message, message
    assert model.calls == 0


@pytest.mark.parametrize('name', list(STEP_SIZE_SAMPLERS))
def test_a_schedule_that_goes_bad_only_after_the_run_is_accepted(name):
    sampler = STEP_SIZE_SAMPLERS[name](CountingGaussian(), LinearScheduler(0.1, -0.1, 4))
    out = sampler.sample(x=torch.zeros(4, 2), n_steps=2, generator=0)   # reads 0.1 and 0.05; 0.0 would come at step 2
    assert out.shape == (4, 2) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match='step_size must be positive at every step of the run'):
        sampler.sample(x=torch.zeros(4, 2), n_steps=3, generator=0)


@pytest.mark.parametrize('schedule', [lambda: CosineScheduler(0.1, 0.01, 10), lambda: ExponentialDecayScheduler(0.1, 0.9, 1e-3),
                                      lambda: WarmupScheduler(LinearScheduler(0.1, 0.01, 5), 2),
                                      lambda: MultiStepScheduler(0.1, [2, 4], 0.5), lambda: Halving(0.1)],
                         ids=['cosine', 'exponential', 'warmup', 'multistep', 'user'])
@pytest.mark.parametrize('name', list(STEP_SIZE_SAMPLERS))
def test_good_schedules_still_work(name, schedule):
    out = STEP_SIZE_SAMPLERS[name](CountingGaussian(), schedule()).sample(x=torch.zeros(4, 2), n_steps=N_STEPS, generator=0)
    assert out.shape == (4, 2) and torch.isfinite(out).all()


def test_a_temperature_sweep_from_zero_is_a_valid_noise_scale():
    sampler = LangevinDynamics(CountingGaussian(), step_size=0.1, noise_scale=TemperatureScheduler(0.15, 0.5, n_steps=N_STEPS))
    assert sampler.sample(x=torch.zeros(4, 2), n_steps=N_STEPS, generator=0).shape == (4, 2)


@pytest.mark.parametrize('offset,n_steps,bad_step', [(0.02, 5, 3), (0.2, 5, 1)])
def test_user_schedules_without_a_closed_form_are_checked_at_each_step(offset, n_steps, bad_step):
    sampler = LangevinDynamics(CountingGaussian(), step_size=Halving(0.1, offset))
    with pytest.raises(ValueError, match=rf'step_size must be positive at every step; Halving\(.*\) gives .* at step {bad_step} of the run'):
        sampler.sample(x=torch.zeros(4, 2), n_steps=n_steps, generator=0)
    # the step that would read the bad value is never taken; a shorter run is fine
    assert sampler.sample(x=torch.zeros(4, 2), n_steps=bad_step, generator=0).shape == (4, 2)


def test_user_schedule_bad_from_the_start_is_refused_before_the_model_runs():
    model = CountingGaussian()
    sampler = LangevinDynamics(model, step_size=Halving(0.1, 0.05))
    sampler.schedulers['step_size'].current_value = -0.01   # as if stepped past its domain, run without a reset
    with pytest.raises(ValueError, match='step_size must be positive at every step of the run'):
        sampler.sample(x=torch.zeros(4, 2), n_steps=3, reset_schedulers=False, generator=0)
    assert model.calls == 0


# ---- loss parameters: the run length is unknown, so each value is checked when the loss reads it ----------------------
LOSS_CASES = {  # name: (make the loss, the argument, words)
    'noise_scale constant 0': (lambda m: DenoisingScoreMatching(m, noise_scale=ConstantScheduler(0.0)), 'noise_scale', 'ConstantScheduler'),
    'noise_scale constant negative': (lambda m: DenoisingScoreMatching(m, noise_scale=ConstantScheduler(-1.0)), 'noise_scale', 'starts at -1.0'),
    'noise_scale nan': (lambda m: DenoisingScoreMatching(m, noise_scale=math.nan), 'noise_scale', 'finite number'),
    'noise_scale warmup from 0': (lambda m: DenoisingScoreMatching(m, noise_scale=WarmupScheduler(ConstantScheduler(0.1), 2, 0.0)),
                                  'noise_scale', 'WarmupScheduler'),
    'regularization_strength negative': (lambda m: DenoisingScoreMatching(m, regularization_strength=ConstantScheduler(-0.5)),
                                         'regularization_strength', 'must be ≥ 0'),
}


@pytest.mark.parametrize('case', list(LOSS_CASES))
def test_loss_parameters_outside_the_domain_are_refused_where_they_enter(case):
    make, name, words = LOSS_CASES[case]
    model = CountingGaussian()
    with pytest.raises(ValueError) as caught:
        make(model)(torch.zeros(4, 2), generator=0)
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
    assert model.calls == 0


def test_loss_schedule_checked_at_the_step_it_goes_bad():
    model = CountingGaussian()
    loss = DenoisingScoreMatching(model, noise_scale=LinearScheduler(0.1, -0.1, 4))
    loss(torch.zeros(4, 2), generator=0); loss.step_schedulers()   # 0.1, then 0.05: fine
    loss(torch.zeros(4, 2), generator=0); loss.step_schedulers()
    calls = model.calls
    with pytest.raises(ValueError, match=r'noise_scale must be positive at every step; LinearScheduler\(value=0, step=2\) gives 0.0 at step 2'):
        loss(torch.zeros(4, 2), generator=0)
    assert model.calls == calls   # the value is read before the model is evaluated


def test_loss_regularization_strength_checked_when_read():
    loss = DenoisingScoreMatching(CountingGaussian(), regularization_strength=LinearScheduler(0.1, -0.1, 2))
    loss(torch.zeros(4, 2), generator=0); loss.step_schedulers()   # 0.1, then 0.0: ≥ 0 is fine
    loss(torch.zeros(4, 2), generator=0); loss.step_schedulers()
    with pytest.raises(ValueError, match='regularization_strength must be ≥ 0 at every step'):
        loss(torch.zeros(4, 2), generator=0)


# ---- a wrapped number is reported under the sampler's argument, not the scheduler's -----------------------------------
@pytest.mark.parametrize('value', [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize('name', list(STEP_SIZE_SAMPLERS))
def test_a_bad_number_names_the_samplers_argument(name, value):
    with pytest.raises(ValueError) as caught:
        STEP_SIZE_SAMPLERS[name](CountingGaussian(), value)
    assert str(caught.value).startswith('step_size must be a finite number'), str(caught.value)
    assert 'start_value' not in str(caught.value)


# ---- load_state_dict refuses what state_dict never writes ----------------------------------------------------------------
SCHEDULERS = {'constant': lambda: ConstantScheduler(0.1), 'linear': lambda: LinearScheduler(1.0, 0.0, 4),
              'exponential': lambda: ExponentialDecayScheduler(1.0, 0.5), 'multistep': lambda: MultiStepScheduler(1.0, [2]),
              'warmup': lambda: WarmupScheduler(CosineScheduler(1.0, 0.0, 4), 2), 'temperature': lambda: TemperatureScheduler(0.1)}


@pytest.mark.parametrize('bad', [3, None, 'state', [1, 2], 0.5], ids=repr)
@pytest.mark.parametrize('name', list(SCHEDULERS))
def test_load_state_dict_needs_a_dict(name, bad):
    with pytest.raises(TypeError, match='state_dict must be a dict'):
        SCHEDULERS[name]().load_state_dict(bad)


@pytest.mark.parametrize('name', list(SCHEDULERS))
def test_load_state_dict_names_missing_and_unknown_entries(name):
    good = SCHEDULERS[name]().state_dict()
    target = SCHEDULERS[name]()
    target.step()
    with pytest.raises(ValueError, match=r"missing entries \['step_count'\]"):
        target.load_state_dict({k: v for k, v in good.items() if k != 'step_count'})
    with pytest.raises(ValueError, match=r"unknown entries \['colour'\]"):
        target.load_state_dict({**good, 'colour': 'red'})
    assert target.step_count == 1   # refused before anything changed
    target.load_state_dict(good)
    assert target.step_count == 0
