"""Losses: training objectives for energy-based models and flows (score matching, contrastive divergence, joint energy models, pseudo-likelihood and ratio matching for discrete models, flow/equilibrium/energy matching)."""
from .contrastive_divergence import ContrastiveDivergence, PersistentContrastiveDivergence, ParallelTemperingCD
from .score_matching import ScoreMatching, DenoisingScoreMatching, SlicedScoreMatching
from .discrete import PseudoLikelihoodLoss, RatioMatchingLoss
from .flow_matching import FlowMatchingLoss
from .equilibrium_matching import EquilibriumMatchingLoss
from .energy_matching import EnergyMatchingLoss
from .jem import JEMLoss, ClassifierEnergy, marginal_energy, conditional_energy, classifier_logits
from .loss_utils import mean_flat, get_interpolant, trimmed_mean, compute_flow_weight, compute_eqm_ct, dispersive_loss

__all__ = ['PseudoLikelihoodLoss', 'RatioMatchingLoss', 'ContrastiveDivergence', 'PersistentContrastiveDivergence', 'ParallelTemperingCD', 'ScoreMatching', 'DenoisingScoreMatching', 'SlicedScoreMatching', 'EquilibriumMatchingLoss',
           'FlowMatchingLoss', 'EnergyMatchingLoss', 'JEMLoss', 'ClassifierEnergy', 'marginal_energy',
           'conditional_energy', 'classifier_logits', 'mean_flat', 'get_interpolant', 'trimmed_mean',
           'compute_flow_weight', 'compute_eqm_ct', 'dispersive_loss']
