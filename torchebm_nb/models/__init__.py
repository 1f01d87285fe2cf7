"""Models: the DiT and MLP backbones, the convolutional energies ConvEnergy and WideResNetEnergy, the discrete RBM, IsingModel and PottsModel, the wrappers EqMEnergy, InteractionModel and ClassifierFreeGuidance, and their components (see nbs/50_data_models/)."""
from .components import (MLPTimestepEmbedder, LabelEmbedder, build_2d_sincos_pos_embed, ConvPatchEmbed2d, patchify2d,
                         unpatchify2d, FeedForward, MultiheadSelfAttention, AdaLNZeroBlock, AdaLNZeroMLPBlock,
                         AdaLNZeroLinearHead, AdaLNZeroPatchHead)
from .dit import (DiT, dit_s_2, dit_s_4, dit_s_8, dit_b_2, dit_b_4, dit_b_8, dit_l_2, dit_l_4, dit_l_8, dit_xl_2, dit_xl_4,
                  dit_xl_8)
from .mlp import TimeConditionedMLP, MLPEnergy
from .conv import ConvEnergy, WideResNetEnergy
from .conditional_transformer_2d import ConditionalTransformer2D
from .wrappers import ClassifierFreeGuidance, InteractionModel, EqMEnergy
from .rbm import RBM
from .lattice import IsingModel, PottsModel, lattice_couplings

__all__ = [
    'DiT', 'TimeConditionedMLP',
    'dit_s_2', 'dit_s_4', 'dit_s_8', 'dit_b_2', 'dit_b_4', 'dit_b_8',
    'dit_l_2', 'dit_l_4', 'dit_l_8', 'dit_xl_2', 'dit_xl_4', 'dit_xl_8',
    'ClassifierFreeGuidance', 'ConditionalTransformer2D', 'InteractionModel', 'EqMEnergy',
    'MLPTimestepEmbedder', 'LabelEmbedder', 'build_2d_sincos_pos_embed', 'ConvPatchEmbed2d', 'patchify2d', 'unpatchify2d',
    'FeedForward', 'MultiheadSelfAttention', 'AdaLNZeroBlock', 'AdaLNZeroMLPBlock', 'AdaLNZeroLinearHead',
    'AdaLNZeroPatchHead',
    'MLPEnergy',  # a torchebm_nb addition: a plain MLP energy for tutorials
    'RBM', 'IsingModel', 'PottsModel', 'lattice_couplings',  # torchebm_nb additions: discrete energy-based models
    'ConvEnergy', 'WideResNetEnergy',  # torchebm_nb additions: IGEBM-style and JEM wide-ResNet image energies
]
