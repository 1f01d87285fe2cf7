"""Core layer: device/dtype handling, schedulers, energy models, the MCMC step protocol, the base classes of every family and the trainers."""
from .base_module import TorchEBMModule, DeviceMixin, patch_override, warn_once
from .base_scheduler import (BaseScheduler, ConstantScheduler, ExponentialDecayScheduler, LinearScheduler,
                             CosineScheduler, MultiStepScheduler, WarmupScheduler, TemperatureScheduler, CyclicalScheduler, Schedulable)
from .base_integrator import (BaseIntegrator, BaseRungeKuttaIntegrator, BaseSDERungeKuttaIntegrator,
                              BaseSymplecticIntegrator)
from .base_coupling import BaseCoupling, BaseCostCoupling, BaseModelCoupling, CouplingResult
from .base_interpolant import BaseInterpolant, expand_t_like_x
from .mcmc import (ChainContext, ChainProgress, ChainRecorder, Force, StepInfo, UnconvergedWarning, no_convergence_check, nonfinite_chains,
                   nonfinite_energies, register_accelerator, report_nonfinite, run_chain)
from .base_sampler import BaseSampler, is_mcmc_sampler, mcmc_sample
from .compiled import CompileStats, CompiledKernel, CompiledStep, StepExplanation, compiled_step, explain_step, step_tensor, traced_energy_and_gradient
from .base_loss import BaseLoss, BaseContrastiveDivergence, BaseScoreMatching
from .base_model import (BaseModel, DoubleWellModel, GaussianModel, HarmonicModel, RosenbrockModel, AckleyModel,
                         RastriginModel, HimmelblauModel, BoothModel, StyblinskiTangModel, CompositeModel)
from .base_trainer import TRAINER_NONFINITE_POLICIES, BaseTrainer, ContrastiveDivergenceTrainer, DivergenceGuard

__all__ = [
    'TorchEBMModule', 'DeviceMixin', 'patch_override', 'warn_once', 'BaseSampler', 'BaseLoss', 'BaseContrastiveDivergence', 'BaseScoreMatching', 'BaseInterpolant', 'expand_t_like_x',
    'BaseCoupling', 'BaseCostCoupling', 'BaseModelCoupling', 'CouplingResult',
    'BaseIntegrator', 'BaseRungeKuttaIntegrator', 'BaseSDERungeKuttaIntegrator', 'BaseSymplecticIntegrator',
    'BaseModel', 'DoubleWellModel', 'GaussianModel', 'HarmonicModel', 'RosenbrockModel', 'AckleyModel',
    'RastriginModel', 'HimmelblauModel', 'BoothModel', 'StyblinskiTangModel', 'CompositeModel',
    'BaseScheduler', 'ConstantScheduler', 'ExponentialDecayScheduler', 'LinearScheduler', 'CosineScheduler',
    'MultiStepScheduler', 'WarmupScheduler', 'TemperatureScheduler', 'CyclicalScheduler', 'Schedulable',
    'ChainContext', 'ChainProgress', 'ChainRecorder', 'Force', 'StepInfo', 'nonfinite_chains', 'nonfinite_energies', 'register_accelerator', 'report_nonfinite',
    'run_chain', 'CompileStats', 'CompiledKernel', 'CompiledStep', 'StepExplanation', 'compiled_step', 'explain_step', 'step_tensor', 'traced_energy_and_gradient', 'UnconvergedWarning', 'no_convergence_check', 'is_mcmc_sampler', 'mcmc_sample',
    'BaseTrainer', 'ContrastiveDivergenceTrainer', 'DivergenceGuard', 'TRAINER_NONFINITE_POLICIES',
]
