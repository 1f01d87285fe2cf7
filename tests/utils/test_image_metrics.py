"""Seeing and measuring image EBMs (issue 15): the Fréchet distance against exact answers, the small classifier and the
class-conditional accuracy, `plot_image_grid`'s layouts, and the bad input each one refuses.

References are independent of `torchebm_nb.utils.metrics`: the Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) is
‖μ₁−μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) (Dowson & Landau 1982; Heusel et al. 2017), computed here with scipy.linalg.sqrtm of the
non-symmetric product Σ₁Σ₂ (the textbook form, not the library's symmetric eigendecompositions), and in closed form where
the covariances commute: 1-D (μ₁−μ₂)² + (σ₁−σ₂)², diagonal and co-diagonalisable ‖μ₁−μ₂‖² + ‖Σ₁^½ − Σ₂^½‖²_F.
"""
import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from scipy import linalg
from torch import nn

from torchebm_nb.utils import (ImageClassifier, classifier_features, conditional_accuracy, fit_classifier,
                               frechet_classifier_distance, frechet_distance, frechet_distance_from_moments,
                               plot_image_grid)

f64 = torch.float64


def scipy_frechet(mean1, cov1, mean2, cov2):
    "‖μ₁−μ₂‖² + tr(Σ₁ + Σ₂ − 2 sqrtm(Σ₁Σ₂)) with scipy's Schur-based square root of the product."
    mean1, cov1, mean2, cov2 = (np.asarray(v, dtype=np.float64) for v in (mean1, cov1, mean2, cov2))
    cross = linalg.sqrtm(cov1 @ cov2)
    return float(np.sum((mean1 - mean2)**2) + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(cross).real)


def random_spd(d, generator, rank=None):
    "A random symmetric positive (semi-)definite d × d matrix, of full rank unless `rank` is given."
    a = torch.randn(d, rank or d, generator=generator, dtype=f64)
    return a @ a.T / (rank or d) + (0 if rank else 0.1) * torch.eye(d, dtype=f64)


# ----------------------------------------------------------------------------------------------------------------------
# the Fréchet distance: exact answers

@pytest.mark.parametrize('mu1, s1, mu2, s2', [(0.0, 1.0, 0.0, 1.0), (1.0, 2.0, -0.5, 0.5), (3.0, 0.1, 3.0, 5.0),
                                              (-2.0, 1e-3, 2.0, 1e3), (0.0, 0.0, 1.0, 1.0)])
def test_one_dimension(mu1, s1, mu2, s2):
    got = frechet_distance_from_moments(torch.tensor([mu1]), torch.tensor([[s1**2]], dtype=f64),
                                        torch.tensor([mu2]), torch.tensor([[s2**2]], dtype=f64))
    exact = (mu1 - mu2)**2 + (s1 - s2)**2
    assert got.dtype == f64 and got.shape == ()
    assert abs(got.item() - exact) <= 1e-12 * max(1.0, exact), (got, exact)


def test_diagonal_covariances():
    g = torch.Generator().manual_seed(1)
    var1, var2 = torch.rand(6, generator=g, dtype=f64) * 3, torch.rand(6, generator=g, dtype=f64) * 3
    mean1, mean2 = torch.randn(6, generator=g, dtype=f64), torch.randn(6, generator=g, dtype=f64)
    got = frechet_distance_from_moments(mean1, torch.diag(var1), mean2, torch.diag(var2))
    exact = ((mean1 - mean2)**2 + (var1.sqrt() - var2.sqrt())**2).sum()
    assert torch.allclose(got, exact, rtol=1e-12, atol=1e-12), (got, exact)


@pytest.mark.parametrize('d', [2, 5, 16])
def test_commuting_covariances(d):
    g = torch.Generator().manual_seed(d)
    basis = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=f64))[0]
    a, b = torch.rand(d, generator=g, dtype=f64) + 0.01, torch.rand(d, generator=g, dtype=f64) * 4
    got = frechet_distance_from_moments(torch.zeros(d), basis @ torch.diag(a) @ basis.T,
                                        torch.ones(d), basis @ torch.diag(b) @ basis.T)
    exact = d + ((a.sqrt() - b.sqrt())**2).sum()
    assert torch.allclose(got, exact, rtol=1e-10), (got, exact)


@pytest.mark.parametrize('d, seed', [(2, 0), (3, 1), (8, 2), (32, 3), (64, 4)])
def test_non_commuting_covariances_against_scipy(d, seed):
    g = torch.Generator().manual_seed(seed)
    cov1, cov2 = random_spd(d, g), random_spd(d, g)
    assert not torch.allclose(cov1 @ cov2, cov2 @ cov1)
    mean1, mean2 = torch.randn(d, generator=g, dtype=f64), torch.randn(d, generator=g, dtype=f64)
    got = frechet_distance_from_moments(mean1, cov1, mean2, cov2).item()
    reference = scipy_frechet(mean1, cov1, mean2, cov2)
    assert abs(got - reference) <= 1e-8 * max(1.0, reference), (got, reference)
    assert abs(frechet_distance_from_moments(mean2, cov2, mean1, cov1).item() - got) <= 1e-9 * max(1.0, got)   # symmetric


@pytest.mark.parametrize('d, rank', [(6, 2), (10, 5)])
def test_singular_covariances_against_scipy(d, rank):
    "Rank-deficient covariances (fewer samples than features): scipy's sqrtm of the product, to its own accuracy."
    g = torch.Generator().manual_seed(rank)
    cov1, cov2 = random_spd(d, g, rank=rank), random_spd(d, g)
    got = frechet_distance_from_moments(torch.zeros(d), cov1, torch.zeros(d), cov2).item()
    reference = scipy_frechet(np.zeros(d), cov1, np.zeros(d), cov2)
    assert abs(got - reference) <= 1e-6 * max(1.0, reference), (got, reference)


def test_sample_moments_are_the_mean_and_unbiased_covariance():
    "frechet_distance(x, y) is the moments-level distance of x's and y's mean and np.cov (ddof = 1), to round-off."
    g = torch.Generator().manual_seed(5)
    x = torch.randn(50, 7, generator=g, dtype=f64) @ torch.randn(7, 7, generator=g, dtype=f64)
    y = torch.randn(80, 7, generator=g, dtype=f64) + 0.3
    reference = scipy_frechet(x.mean(0), np.cov(x.numpy().T), y.mean(0), np.cov(y.numpy().T))
    assert abs(frechet_distance(x, y).item() - reference) <= 1e-8 * reference
    assert frechet_distance(x.float(), y.float()).dtype == f64                       # float32 in, float64 arithmetic


def test_large_samples_approach_the_population_value():
    """Replicates of d_F² between samples of N(μ₁, Σ₁) and N(μ₂, Σ₂) against the exact population value (scipy). The
    plug-in estimate is biased upwards by O(d/n); at n = 20000, d = 4 that is below 2e-3 here, far below the spread."""
    g = torch.Generator().manual_seed(6)
    d, n, replicates = 4, 20000, 12
    cov1, cov2 = random_spd(d, g), random_spd(d, g)
    mean1, mean2 = torch.zeros(d, dtype=f64), torch.full((d,), 0.5, dtype=f64)
    exact = scipy_frechet(mean1, cov1, mean2, cov2)
    root1, root2 = torch.linalg.cholesky(cov1), torch.linalg.cholesky(cov2)
    values = torch.stack([frechet_distance(torch.randn(n, d, generator=g, dtype=f64) @ root1.T + mean1,
                                           torch.randn(n, d, generator=g, dtype=f64) @ root2.T + mean2)
                          for _ in range(replicates)])
    standard_error = values.std() / math.sqrt(replicates)
    assert abs(values.mean().item() - exact) < 4 * standard_error.item() + 2e-3, (values.mean(), exact, standard_error)


def test_identical_samples_and_shifts():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(200, 5, generator=g, dtype=f64)                                  # float64: x + shift is exact enough
    assert frechet_distance(x, x).item() == pytest.approx(0.0, abs=1e-10)
    assert frechet_distance(x.float(), x.float()).item() >= 0
    shift = torch.tensor([1.0, -2.0, 0.0, 0.5, 3.0], dtype=f64)
    assert frechet_distance(x, x + shift).item() == pytest.approx(float(shift.square().sum()), rel=1e-9)
    y = torch.randn(300, 5, generator=g, dtype=f64) * 2
    assert frechet_distance(x + shift, y + shift).item() == pytest.approx(frechet_distance(x, y).item(), rel=1e-9)
    assert frechet_distance(x, y).item() == pytest.approx(frechet_distance(y, x).item(), rel=1e-9)


@pytest.mark.cuda
def test_frechet_distance_on_cuda_matches_cpu():
    g = torch.Generator().manual_seed(8)
    x, y = torch.randn(100, 6, generator=g), torch.randn(120, 6, generator=g) + 0.2
    on_gpu = frechet_distance(x.cuda(), y.cuda())
    assert on_gpu.device.type == 'cuda' and on_gpu.dtype == f64
    assert on_gpu.cpu().item() == pytest.approx(frechet_distance(x, y).item(), rel=1e-8)


# ----------------------------------------------------------------------------------------------------------------------
# the classifier and the conditional accuracy

QUADRANTS = torch.zeros(4, 8, 8)
for _k in range(4): QUADRANTS[_k, 4 * (_k // 2):4 * (_k // 2) + 4, 4 * (_k % 2):4 * (_k % 2) + 4] = 1


def quadrant_images(n, generator, channels=1, noise=0.3):
    "8×8 images in [-1, 1] whose class (0–3) is the bright quadrant, with Gaussian pixel noise."
    labels = torch.randint(0, 4, (n,), generator=generator)
    clean = (2 * QUADRANTS[labels] - 1)[:, None].expand(n, channels, 8, 8)
    return (clean + noise * torch.randn(n, channels, 8, 8, generator=generator)).clamp(-1, 1), labels


class QuadrantOracle(nn.Module):
    "A hand-built classifier: the logit of class k is the mean brightness of quadrant k; features are the four means."
    def __init__(self):
        super().__init__()
        self.calls = 0
    def features(self, images):
        self.calls += 1
        return torch.einsum('bchw,khw->bk', images, QUADRANTS.to(images)) / 16
    def forward(self, images):
        return self.features(images)


class CountingClassifier(ImageClassifier):
    "An ImageClassifier that counts its evaluations."
    calls = 0
    def features(self, images):
        self.calls += 1
        return super().features(images)


def weights(module):
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


@pytest.mark.parametrize('channels', [1, 3])
def test_fit_classifier_learns_an_easy_task(channels):
    images, labels = quadrant_images(800, torch.Generator().manual_seed(0), channels=channels)
    classifier, accuracy = fit_classifier(images, labels, epochs=8, generator=1)
    assert isinstance(classifier, ImageClassifier) and not classifier.training
    assert accuracy >= 0.98, accuracy
    held_out, held_labels = quadrant_images(400, torch.Generator().manual_seed(2), channels=channels)
    assert conditional_accuracy(classifier, held_out, held_labels).item() >= 0.98
    assert classifier_features(classifier, held_out).shape == (400, 64)


def test_fit_classifier_is_seeded():
    images, labels = quadrant_images(200, torch.Generator().manual_seed(0))
    a, accuracy_a = fit_classifier(images, labels, epochs=2, generator=torch.Generator().manual_seed(3))
    b, accuracy_b = fit_classifier(images, labels, epochs=2, generator=3)
    c, _ = fit_classifier(images, labels, epochs=2, generator=4)
    assert torch.equal(weights(a), weights(b)) and accuracy_a == accuracy_b
    assert not torch.equal(weights(a), weights(c))
    assert torch.equal(weights(ImageClassifier(1, 4, 8, generator=9)), weights(ImageClassifier(1, 4, 8, generator=9)))


def test_conditional_accuracy_is_exact_on_a_hand_built_case():
    intended = torch.arange(4).repeat_interleave(25)                          # 25 samples drawn for each class
    drawn = intended.clone()
    wrong = torch.tensor([0, 3, 30, 31, 32, 60, 99])                          # 7 samples that came out as another class
    drawn[wrong] = (drawn[wrong] + 2) % 4
    samples = (2 * QUADRANTS[drawn] - 1)[:, None]
    oracle = QuadrantOracle()
    assert conditional_accuracy(oracle, samples, intended).item() == pytest.approx(93 / 100, abs=1e-7)
    assert conditional_accuracy(oracle, samples, intended, batch_size=7).item() == pytest.approx(0.93, abs=1e-7)
    assert conditional_accuracy(oracle, samples[:25], 0).item() == pytest.approx(23 / 25, abs=1e-7)   # one class for all
    assert conditional_accuracy(oracle, samples, drawn).item() == 1.0
    assert oracle.training                                                    # the mode is restored


def test_frechet_classifier_distance_is_frechet_of_the_features():
    g = torch.Generator().manual_seed(4)
    x, _ = quadrant_images(300, g)
    y, _ = quadrant_images(200, g, noise=0.6)
    oracle = QuadrantOracle()
    expected = frechet_distance(oracle.features(x), oracle.features(y))
    assert frechet_classifier_distance(x, y, oracle, batch_size=64).item() == pytest.approx(expected.item(), rel=1e-9)
    assert frechet_classifier_distance(x, x, oracle).item() == pytest.approx(0.0, abs=1e-10)


# ----------------------------------------------------------------------------------------------------------------------
# bad input: refused before any classifier is evaluated

IMAGES = torch.zeros(6, 1, 8, 8)
LABELS = torch.tensor([0, 1, 2, 3, 0, 1])
FEATURES = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
NAN_IMAGES = IMAGES.clone(); NAN_IMAGES[2, 0, 1, 1] = math.nan

CASES = {  # name: (call(classifier), exception, argument named, expected words)
    'x_features one sample': (lambda c: frechet_distance(FEATURES[:1], FEATURES), ValueError, 'x_features', 'at least 2 samples'),
    'y_features one sample': (lambda c: frechet_distance(FEATURES, FEATURES[:1]), ValueError, 'y_features', 'at least 2 samples'),
    'feature dims differ': (lambda c: frechet_distance(FEATURES, FEATURES[:, :2]), ValueError, 'x_features', 'got 3 and 2'),
    'x_features nan': (lambda c: frechet_distance(FEATURES * math.nan, FEATURES), ValueError, 'x_features', 'non-finite'),
    'y_features inf': (lambda c: frechet_distance(FEATURES, FEATURES / 0), ValueError, 'y_features', 'non-finite'),
    'x_features 1-D': (lambda c: frechet_distance(FEATURES[:, 0], FEATURES), ValueError, 'x_features', 'shape (n, d)'),
    'x_features list': (lambda c: frechet_distance([[0.0]], FEATURES), TypeError, 'x_features', 'torch.Tensor'),
    'y_features int': (lambda c: frechet_distance(FEATURES, FEATURES.long()), TypeError, 'y_features', 'floating'),
    'cov1 wrong shape': (lambda c: frechet_distance_from_moments(torch.zeros(3), torch.eye(2), torch.zeros(3), torch.eye(3)),
                         ValueError, 'cov1', 'shape (3, 3)'),
    'mean2 wrong size': (lambda c: frechet_distance_from_moments(torch.zeros(3), torch.eye(3), torch.zeros(2), torch.eye(2)),
                         ValueError, 'mean2', '3 entries'),
    'cov2 not symmetric': (lambda c: frechet_distance_from_moments(torch.zeros(2), torch.eye(2), torch.zeros(2),
                                                                   torch.tensor([[1.0, 0.3], [0.0, 1.0]])), ValueError, 'cov2', 'symmetric'),
    'cov1 indefinite': (lambda c: frechet_distance_from_moments(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]]),
                                                                torch.zeros(2), torch.eye(2)), ValueError, 'cov1', 'positive semi-definite'),
    'mean1 nan': (lambda c: frechet_distance_from_moments(torch.tensor([math.nan]), torch.eye(1), torch.zeros(1), torch.eye(1)),
                  ValueError, 'mean1', 'finite'),
    'cov2 int': (lambda c: frechet_distance_from_moments(torch.zeros(1), torch.eye(1), torch.zeros(1), torch.ones(1, 1, dtype=torch.long)),
                 TypeError, 'cov2', 'floating'),
    'samples wrong shape': (lambda c: conditional_accuracy(c, torch.zeros(6, 3, 8, 8), LABELS), ValueError, 'samples', '(B, 1, 8, 8)'),
    'samples nan': (lambda c: conditional_accuracy(c, NAN_IMAGES, LABELS), ValueError, 'samples', 'non-finite'),
    'samples int': (lambda c: conditional_accuracy(c, IMAGES.long(), LABELS), TypeError, 'samples', 'floating'),
    'labels too few': (lambda c: conditional_accuracy(c, IMAGES, LABELS[:3]), ValueError, 'labels', 'shape (6,)'),
    'labels float': (lambda c: conditional_accuracy(c, IMAGES, LABELS.float()), TypeError, 'labels', 'integer tensor'),
    'labels out of range': (lambda c: conditional_accuracy(c, IMAGES, LABELS + 1), ValueError, 'labels', '[0, 4)'),
    'labels negative int': (lambda c: conditional_accuracy(c, IMAGES, -1), ValueError, 'labels', '[0, 4)'),
    'labels a list': (lambda c: conditional_accuracy(c, IMAGES, [0] * 6), TypeError, 'labels', 'torch.Tensor'),
    'batch_size 0': (lambda c: conditional_accuracy(c, IMAGES, LABELS, batch_size=0), ValueError, 'batch_size', '≥ 1'),
    'features batch_size str': (lambda c: classifier_features(c, IMAGES, batch_size='all'), TypeError, 'batch_size', 'int'),
    'features of wrong shape': (lambda c: classifier_features(c, IMAGES[:, :, :4]), ValueError, 'images', '(B, 1, 8, 8)'),
    'distance x one image': (lambda c: frechet_classifier_distance(IMAGES[:1], IMAGES, c), ValueError, 'x', 'at least 2 images'),
    'distance y nan': (lambda c: frechet_classifier_distance(IMAGES, NAN_IMAGES, c), ValueError, 'y', 'non-finite'),
    'distance y not a tensor': (lambda c: frechet_classifier_distance(IMAGES, IMAGES.numpy(), c), TypeError, 'y', 'torch.Tensor'),
    'classifier not a module': (lambda c: conditional_accuracy(lambda x: x, IMAGES, LABELS), TypeError, 'classifier', 'torch.nn.Module'),
    'classifier without features': (lambda c: classifier_features(nn.Flatten(), IMAGES), TypeError, 'classifier', 'features(images)'),
    'fit images 3-D': (lambda c: fit_classifier(IMAGES[:, 0], LABELS), ValueError, 'images', '(B, C, H, W)'),
    'fit images nan': (lambda c: fit_classifier(NAN_IMAGES, LABELS), ValueError, 'images', 'non-finite'),
    'fit labels wrong length': (lambda c: fit_classifier(IMAGES, LABELS[:5]), ValueError, 'labels', 'shape (6,)'),
    'fit n_classes 1': (lambda c: fit_classifier(IMAGES, LABELS, n_classes=1), ValueError, 'n_classes', '≥ 2'),
    'fit labels beyond n_classes': (lambda c: fit_classifier(IMAGES, LABELS, n_classes=3), ValueError, 'labels', '[0, 3)'),
    'fit epochs 0': (lambda c: fit_classifier(IMAGES, LABELS, epochs=0), ValueError, 'epochs', '≥ 1'),
    'fit learning_rate 0': (lambda c: fit_classifier(IMAGES, LABELS, learning_rate=0.0), ValueError, 'learning_rate', 'positive'),
    'fit test_fraction 1': (lambda c: fit_classifier(IMAGES, LABELS, test_fraction=1.0), ValueError, 'test_fraction', '(0, 1)'),
    'fit test_fraction leaves none': (lambda c: fit_classifier(IMAGES, LABELS, test_fraction=0.05), ValueError, 'test_fraction', 'leaves 0'),
    'fit generator str': (lambda c: fit_classifier(IMAGES, LABELS, generator='seed'), TypeError, 'generator', 'torch.Generator'),
    'classifier in_channels 0': (lambda c: ImageClassifier(0, 4, 8), ValueError, 'in_channels', '≥ 1'),
    'classifier image_size triple': (lambda c: ImageClassifier(1, 4, (8, 8, 8)), ValueError, 'image_size', 'pair (H, W)'),
    'classifier image_size float': (lambda c: ImageClassifier(1, 4, 8.0), TypeError, 'image_size', 'int'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_input_is_refused_before_evaluation(case):
    call, error, name, words = CASES[case]
    classifier = CountingClassifier(1, 4, 8, generator=0)
    with pytest.raises(error) as caught:
        call(classifier)
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
    assert classifier.calls == 0


def test_sensible_values_still_work():
    classifier = CountingClassifier(1, 4, 8, generator=0)
    assert 0.0 <= conditional_accuracy(classifier, IMAGES, LABELS, batch_size=1).item() <= 1.0
    assert classifier.calls == 6
    assert classifier_features(classifier, IMAGES).shape == (6, 64)
    assert frechet_classifier_distance(IMAGES, IMAGES + 0.1, classifier).item() >= 0
    assert frechet_distance(FEATURES[:2], FEATURES[2:4]).item() >= 0                            # n = 2 is enough
    assert frechet_distance_from_moments(torch.zeros(2), torch.zeros(2, 2), torch.zeros(2), torch.zeros(2, 2)).item() == 0
    _, accuracy = fit_classifier(IMAGES, LABELS, epochs=1, test_fraction=0.5, generator=0)
    assert 0.0 <= accuracy <= 1.0


# ----------------------------------------------------------------------------------------------------------------------
# plot_image_grid

LAYOUTS = {  # name: (shape, keyword arguments, number of Axes, Axes per row)
    'one image': ((1, 1, 5, 5), {}, 1, 1),
    'a full grid': ((16, 3, 6, 6), {'nrow': 4}, 16, 4),
    'a ragged last row': ((10, 1, 4, 4), {'nrow': 4}, 10, 4),
    'fewer than nrow': ((3, 1, 4, 4), {}, 3, 3),
    'max_images': ((100, 1, 4, 4), {'max_images': 20, 'nrow': 10}, 20, 10),
    'a trajectory': ((5, 30, 1, 6, 6), {}, 5 * 8, 8),
    'a short trajectory': ((2, 3, 3, 6, 6), {}, 2 * 3, 3),
    'trajectory steps list': ((4, 30, 1, 6, 6), {'steps': [0, 10, -1]}, 4 * 3, 3),
    'trajectory steps int': ((4, 30, 1, 6, 6), {'steps': 5}, 4 * 5, 5),
    'trajectory max_chains': ((20, 30, 1, 6, 6), {'max_chains': 3}, 3 * 8, 8),
}


@pytest.mark.parametrize('case', list(LAYOUTS))
def test_image_grid_layouts(case):
    shape, kwargs, n_axes, per_row = LAYOUTS[case]
    fig = plot_image_grid(torch.zeros(shape), **kwargs)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == n_axes
    columns = {round(a.get_position().x0, 6) for a in fig.axes}
    assert len(columns) == per_row, columns
    channels = shape[-3]
    assert fig.axes[0].images[0].get_array().shape == (shape[-2], shape[-1]) + ((3,) if channels == 3 else ())
    plt.close(fig)


def test_trajectory_grid_shows_the_chosen_steps_row_by_row():
    steps = torch.arange(10, dtype=torch.float32) / 9                                # step t is a flat image of value t/9
    trajectory = torch.stack([steps + c for c in (0.0, -1.0)])[:, :, None, None, None].expand(2, 10, 1, 3, 3)
    fig = plot_image_grid(trajectory, steps=[0, 9, 4], row_labels=['a', 'b'], value_range=(-1.0, 1.0))
    assert [a.get_title() for a in fig.axes] == ['step 0', 'step 9', 'step 4', '', '', '']
    assert [a.get_ylabel() for a in fig.axes[::3]] == ['a', 'b']
    shown = [float(a.images[0].get_array()[0, 0]) for a in fig.axes]
    expected = [(v + 1) / 2 for v in (0.0, 1.0, 4 / 9, -1.0, 0.0, 4 / 9 - 1)]
    assert shown == pytest.approx(expected, abs=1e-6)
    plt.close(fig)


def test_image_grid_clips_to_value_range_and_takes_numpy():
    values = np.array([[[[-5.0, 0.0], [127.5, 400.0]]]])
    fig = plot_image_grid(values, value_range=(0, 255), titles=['x'])
    assert np.allclose(fig.axes[0].images[0].get_array(), [[0.0, 0.0], [0.5, 1.0]])
    assert fig.axes[0].get_title() == 'x'
    plt.close(fig)


GRID_CASES = {  # name: (call, exception, argument named, expected words)
    'images 3-D': (lambda: plot_image_grid(torch.zeros(4, 8, 8)), ValueError, 'images', 'shape (B, C, H, W)'),
    'two channels': (lambda: plot_image_grid(torch.zeros(4, 2, 8, 8)), ValueError, 'images', 'C = 1 or 3'),
    'empty batch': (lambda: plot_image_grid(torch.zeros(0, 1, 8, 8)), ValueError, 'images', 'no empty dimension'),
    'uint8 images': (lambda: plot_image_grid(torch.zeros(4, 1, 8, 8, dtype=torch.uint8)), TypeError, 'images', 'floating'),
    'int numpy images': (lambda: plot_image_grid(np.zeros((4, 1, 8, 8), dtype=np.int64)), TypeError, 'images', 'floating'),
    'a list': (lambda: plot_image_grid([[[[0.0]]]]), TypeError, 'images', 'torch.Tensor or numpy array'),
    'value_range reversed': (lambda: plot_image_grid(IMAGES, value_range=(1, 0)), ValueError, 'value_range', 'low < high'),
    'value_range scalar': (lambda: plot_image_grid(IMAGES, value_range=1.0), TypeError, 'value_range', 'pair'),
    'value_range nan': (lambda: plot_image_grid(IMAGES, value_range=(math.nan, 1.0)), ValueError, 'value_range[0]', 'finite'),
    'nrow 0': (lambda: plot_image_grid(IMAGES, nrow=0), ValueError, 'nrow', '≥ 1'),
    'nrow float': (lambda: plot_image_grid(IMAGES, nrow=2.0), TypeError, 'nrow', 'int'),
    'max_images 0': (lambda: plot_image_grid(IMAGES, max_images=0), ValueError, 'max_images', '≥ 1'),
    'image_inches negative': (lambda: plot_image_grid(IMAGES, image_inches=-1.0), ValueError, 'image_inches', 'positive'),
    'titles too few': (lambda: plot_image_grid(IMAGES, titles=['a']), ValueError, 'titles', 'one entry per image drawn, 6; got 1'),
    'titles a string': (lambda: plot_image_grid(IMAGES, titles='abcdef'), TypeError, 'titles', 'list of strings'),
    'row_labels too many': (lambda: plot_image_grid(IMAGES, nrow=3, row_labels=['a', 'b', 'c']), ValueError, 'row_labels', 'per row drawn, 2'),
    'steps on a batch': (lambda: plot_image_grid(IMAGES, steps=3), ValueError, 'steps', 'trajectory'),
    'steps out of range': (lambda: plot_image_grid(torch.zeros(2, 5, 1, 4, 4), steps=[5]), ValueError, 'steps', '[-5, 5)'),
    'steps empty': (lambda: plot_image_grid(torch.zeros(2, 5, 1, 4, 4), steps=[]), TypeError, 'steps', 'non-empty list'),
    'steps 0': (lambda: plot_image_grid(torch.zeros(2, 5, 1, 4, 4), steps=0), ValueError, 'steps', '≥ 1'),
    'trajectory titles per image': (lambda: plot_image_grid(torch.zeros(2, 5, 1, 4, 4), steps=2, titles=['a'] * 4),
                                    ValueError, 'titles', 'per step shown, 2'),
    'max_chains 0': (lambda: plot_image_grid(torch.zeros(2, 5, 1, 4, 4), max_chains=0), ValueError, 'max_chains', '≥ 1'),
}


@pytest.mark.parametrize('case', list(GRID_CASES))
def test_image_grid_refuses_bad_input_before_drawing(case):
    call, error, name, words = GRID_CASES[case]
    before = plt.get_fignums()
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
    assert plt.get_fignums() == before                                               # no figure was opened
