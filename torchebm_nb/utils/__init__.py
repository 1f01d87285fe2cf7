"""Utilities: EMA of weights, checkpoints, profiling, distributed helpers, MCMC diagnostics (ESS, R-hat, summaries,
streaming accumulators), Stein discrepancies (KSD, its goodness-of-fit test, Fisher divergence), the classifier
two-sample test, sample-quality metrics (two-sample distances; for images a Fréchet distance in a small classifier's
features, which is not FID, and the accuracy of class-conditional samples) and plotting helpers (matplotlib is
imported only when a plot is drawn)."""
from .ema import EMA, update_ema, requires_grad
from .training import save_checkpoint, load_checkpoint
from .profiling import profile_context
from .distributed import (is_distributed, get_rank, get_world_size, all_gather_cat, broadcast_object, broadcast_tensor,
                          unsharded)
from .diagnostics import (autocorrelation, effective_sample_size, split_rhat, split_chains, acceptance_rate,
                          bulk_effective_sample_size, tail_effective_sample_size, Summary, summary, StreamingDiagnostics)
from .metrics import (mmd, energy_distance, frechet_distance, frechet_distance_from_moments, ImageClassifier, fit_classifier,
                      classifier_features, frechet_classifier_distance, conditional_accuracy)
from .stein import stein_kernel, kernel_stein_discrepancy, KSDTest, ksd_test, FisherDivergence, fisher_divergence
from .two_sample import binomial_tail, clopper_pearson_interval, TwoSampleTestResult, classifier_two_sample_test
from .visualization import (plot_energy_landscape, plot_samples, plot_trajectories, plot_trace,
                            plot_autocorrelation, plot_image_grid)

__all__ = ['EMA', 'update_ema', 'requires_grad', 'save_checkpoint', 'load_checkpoint', 'profile_context',
           'is_distributed', 'get_rank', 'get_world_size', 'all_gather_cat', 'broadcast_object', 'broadcast_tensor',
           'unsharded',
           'autocorrelation', 'effective_sample_size', 'split_rhat', 'split_chains', 'acceptance_rate',
           'bulk_effective_sample_size', 'tail_effective_sample_size', 'Summary', 'summary', 'StreamingDiagnostics',
           'mmd', 'energy_distance', 'frechet_distance', 'frechet_distance_from_moments', 'ImageClassifier', 'fit_classifier',
           'classifier_features', 'frechet_classifier_distance', 'conditional_accuracy',
           'stein_kernel', 'kernel_stein_discrepancy', 'KSDTest', 'ksd_test', 'FisherDivergence', 'fisher_divergence',
           'binomial_tail', 'clopper_pearson_interval', 'TwoSampleTestResult', 'classifier_two_sample_test',
           'plot_energy_landscape', 'plot_samples', 'plot_trajectories', 'plot_trace', 'plot_autocorrelation',
           'plot_image_grid']
