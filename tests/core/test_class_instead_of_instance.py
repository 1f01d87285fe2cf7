"""A class passed where an instance is expected: every constructor that takes a model, a sampler, a loss, an optimiser
or a scheduler says so and how to fix it (core.validation.describe_type / check_instance), never 'got ABCMeta'."""
import pytest
import torch

from torchebm_nb import core
from torchebm_nb.core import (BaseTrainer, CompositeModel, ContrastiveDivergenceTrainer, ConstantScheduler, DoubleWellModel,
                              GaussianModel, WarmupScheduler)
from torchebm_nb.core.base_loss import as_module
from torchebm_nb.core.base_trainer import BaseTrainer as TrainerInItsModule
from torchebm_nb.core.validation import check_instance, describe_type
from torchebm_nb.losses import (ContrastiveDivergence, DenoisingScoreMatching, EnergyMatchingLoss, FlowMatchingLoss,
                                ParallelTemperingCD, ScoreMatching)
from torchebm_nb.models import EqMEnergy, MLPEnergy, TimeConditionedMLP
from torchebm_nb.samplers import FlowSampler, HamiltonianMonteCarlo, LangevinDynamics
from torchebm_nb.utils import EMA

gauss = GaussianModel(torch.zeros(2), torch.eye(2))
net = MLPEnergy(2, hidden_dim=8)

CASES = {  # what a newcomer writes -> the class the message must name
    'sampler given a model class': (lambda: LangevinDynamics(GaussianModel), 'GaussianModel'),
    'HMC given a model class': (lambda: HamiltonianMonteCarlo(DoubleWellModel, step_size=0.1), 'DoubleWellModel'),
    'flow sampler given a field class': (lambda: FlowSampler(TimeConditionedMLP), 'TimeConditionedMLP'),
    'CD given a sampler class': (lambda: ContrastiveDivergence(model=gauss, sampler=LangevinDynamics), 'LangevinDynamics'),
    'CD given a model class': (lambda: ContrastiveDivergence(model=GaussianModel, sampler=LangevinDynamics(gauss)), 'GaussianModel'),
    'PT-CD given a sampler class': (lambda: ParallelTemperingCD(gauss, LangevinDynamics), 'LangevinDynamics'),
    'score matching given a model class': (lambda: ScoreMatching(MLPEnergy), 'MLPEnergy'),
    'DSM given a model class': (lambda: DenoisingScoreMatching(MLPEnergy), 'MLPEnergy'),
    'flow matching given a field class': (lambda: FlowMatchingLoss(TimeConditionedMLP), 'TimeConditionedMLP'),
    'energy matching given a model class': (lambda: EnergyMatchingLoss(GaussianModel), 'GaussianModel'),
    'energy matching given a sampler class': (lambda: EnergyMatchingLoss(gauss, sampler=LangevinDynamics), 'LangevinDynamics'),
    'EqM energy given a field class': (lambda: EqMEnergy(TimeConditionedMLP), 'TimeConditionedMLP'),
    'trainer given an optimiser class': (lambda: BaseTrainer(net, torch.optim.Adam, DenoisingScoreMatching(net)), 'Adam'),
    'trainer given a loss class': (lambda: BaseTrainer(net, torch.optim.Adam(net.parameters()), DenoisingScoreMatching), 'DenoisingScoreMatching'),
    'trainer given a model class': (lambda: BaseTrainer(MLPEnergy, torch.optim.Adam(net.parameters()), DenoisingScoreMatching(net)), 'MLPEnergy'),
    'EMA given a model class': (lambda: EMA(MLPEnergy), 'MLPEnergy'),
    'composite given a model class': (lambda: CompositeModel([gauss, DoubleWellModel]), 'DoubleWellModel'),
    'warm-up given a scheduler class': (lambda: WarmupScheduler(ConstantScheduler, 2), 'ConstantScheduler'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_a_class_where_an_instance_belongs_is_named(case):
    make, cls = CASES[case]
    with pytest.raises(TypeError) as error: make()
    message = str(error.value)
    assert f"got the class {cls} (instantiate it): pass {cls}(...), not the class itself" in message, message
    assert 'ABCMeta' not in message and "got type" not in message, message


def test_describe_type_and_check_instance():
    assert describe_type(GaussianModel) == 'the class GaussianModel (instantiate it): pass GaussianModel(...), not the class itself'
    assert describe_type(gauss) == 'GaussianModel' and describe_type(3) == 'int'
    assert check_instance(gauss, 'model', torch.nn.Module) is gauss
    f = lambda x: x.sum(-1)
    assert check_instance(f, 'model', torch.nn.Module, allow_callable=True) is f
    with pytest.raises(TypeError, match=r"^model must be a BaseModel instance or a callable; got the class GaussianModel "):
        check_instance(GaussianModel, 'model', torch.nn.Module, 'a BaseModel instance or a callable', allow_callable=True)
    with pytest.raises(TypeError, match=r"^n must be one of int, float; got str$"): check_instance('3', 'n', (int, float))


def test_instances_and_callables_still_accepted():
    assert isinstance(as_module(lambda x: x.sum(-1)), torch.nn.Module)
    LangevinDynamics(gauss, step_size=0.1)
    ContrastiveDivergence(model=gauss, sampler=LangevinDynamics(gauss, step_size=0.1))
    BaseTrainer(net, torch.optim.Adam(net.parameters()), lambda batch: batch.sum(), progress=False)
    assert not core.is_mcmc_sampler(LangevinDynamics) and core.is_mcmc_sampler(LangevinDynamics(gauss, step_size=0.1))


def test_trainers_importable_from_core():
    assert core.BaseTrainer is TrainerInItsModule
    assert 'BaseTrainer' in core.__all__ and 'ContrastiveDivergenceTrainer' in core.__all__
    assert issubclass(ContrastiveDivergenceTrainer, BaseTrainer)
