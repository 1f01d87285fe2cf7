"""Samplers: drive a field derived from a model through an integrator (MCMC chains, descent, flows)."""
from .langevin_dynamics import LangevinDynamics, clipped_force
from .underdamped_langevin import UnderdampedLangevin
from .hmc import HamiltonianMonteCarlo
from .mala import MetropolisAdjustedLangevin, MALA
from .nuts import NoUTurnSampler, NUTS
from .riemannian_hmc import RiemannianManifoldHMC
from .gradient_descent import GradientDescentSampler, NesterovSampler
from .flow import FlowSampler, PredictionType, as_prediction_type
from .flow_likelihood import (flow_log_likelihood, bits_per_dim, flow_velocity, exact_divergence, hutchinson_divergence,
                              draw_probes, standard_normal_log_prob)
from .adaptation import AdaptationResult, DualAveragingScheduler, WindowAdaptation, adaptation_windows, window_adaptation
from .stochastic_gradient import (StochasticGradientLangevin, StochasticGradientHMC, SGLD, SGHMC, MinibatchPosterior,
                                  MinibatchData)
from .ais import (AISResult, AnnealedEnergy, annealed_importance_sampling, annealing_schedule, base_rate_bias,
                  ReverseAISResult, reverse_annealed_importance_sampling, LogPartitionBounds, bidirectional_monte_carlo)
from .parallel_tempering import ParallelTempering, ReplicaExchange
from .gibbs import GibbsSampler
from .gradient_discrete import GibbsWithGradients, DiscreteMetropolisAdjustedLangevin, DMALA

__all__ = ['GibbsSampler', 'GibbsWithGradients', 'DiscreteMetropolisAdjustedLangevin', 'DMALA', 'LangevinDynamics', 'clipped_force', 'UnderdampedLangevin', 'HamiltonianMonteCarlo', 'MetropolisAdjustedLangevin', 'MALA', 'NoUTurnSampler', 'NUTS',
           'RiemannianManifoldHMC', 'GradientDescentSampler', 'NesterovSampler', 'FlowSampler',
           'PredictionType', 'as_prediction_type', 'flow_log_likelihood', 'bits_per_dim', 'flow_velocity', 'exact_divergence',
           'hutchinson_divergence', 'draw_probes', 'standard_normal_log_prob', 'AdaptationResult', 'DualAveragingScheduler', 'WindowAdaptation', 'adaptation_windows', 'window_adaptation',
           'AISResult', 'AnnealedEnergy', 'annealed_importance_sampling', 'annealing_schedule', 'base_rate_bias',
           'ReverseAISResult', 'reverse_annealed_importance_sampling', 'LogPartitionBounds', 'bidirectional_monte_carlo',
           'ParallelTempering', 'ReplicaExchange',
           'StochasticGradientLangevin', 'StochasticGradientHMC', 'SGLD', 'SGHMC', 'MinibatchPosterior', 'MinibatchData']
