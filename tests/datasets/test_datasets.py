"""Tests of torchebm_nb.datasets: the Dataset contract, reproducibility with a private generator (the global RNG
state never moves), dtypes and devices, argument checks, and each dataset's defining property.

Statistical checks compare with the exact law; tolerances are Z Monte-Carlo standard errors computed from the
known variance (Z = 4, or 4.5 where one assertion covers many cells). Every random draw is seeded.
"""
import inspect
import math
import random
import re

import pytest
import torch
from torch.utils.data import DataLoader

import torchebm_nb.datasets as datasets
from torchebm_nb.datasets import (CheckerboardDataset, CircleDataset, EightGaussiansDataset, GaussianMixtureDataset,
                                  GridDataset, PinwheelDataset, SwissRollDataset, TwoMoonsDataset)
from torchebm_nb.datasets.generators import BaseSyntheticDataset

Z = 4.0
ALL = [GaussianMixtureDataset, EightGaussiansDataset, TwoMoonsDataset, SwissRollDataset, CircleDataset,
       CheckerboardDataset, PinwheelDataset, GridDataset]
NOISY = [TwoMoonsDataset, SwissRollDataset, CircleDataset, CheckerboardDataset, PinwheelDataset, GridDataset]
IDS = [c.__name__ for c in ALL]


def make(cls, n=500, **kwargs):
    """A small instance: `n` points, or a lattice of about `n` points for GridDataset."""
    if cls is GridDataset: return cls(max(1, round(math.sqrt(n))), **kwargs)
    return cls(n, **kwargs)


def within(value, expected, se, z=Z):
    return abs(float(value) - expected) < z * se


# --- exports and signatures -------------------------------------------------------------------------------

def test_exports():
    assert datasets.__all__ == [c.__name__ for c in ALL] + ['DigitsDataset', 'MNISTDataset', 'FashionMNISTDataset', 'CIFAR10Dataset']
    assert 'BaseSyntheticDataset' not in datasets.__all__ and not hasattr(datasets, 'BaseSyntheticDataset')
    assert all(issubclass(c, BaseSyntheticDataset) and issubclass(c, torch.utils.data.Dataset) for c in ALL)


SIGNATURES = {
    GaussianMixtureDataset: dict(n_samples=2000, n_components=8, std=0.05, radius=1.0),
    EightGaussiansDataset: dict(n_samples=2000, std=0.02, scale=2.0),
    TwoMoonsDataset: dict(n_samples=2000, noise=0.05),
    SwissRollDataset: dict(n_samples=2000, noise=0.05, arclength=3.0),
    CircleDataset: dict(n_samples=2000, noise=0.05, radius=1.0),
    CheckerboardDataset: dict(n_samples=2000, range_limit=4.0, noise=0.0),
    PinwheelDataset: dict(n_samples=2000, n_classes=5, noise=0.05, radial_scale=2.0, angular_scale=0.1,
                          spiral_scale=5.0),
    GridDataset: dict(n_samples_per_dim=10, range_limit=1.0, noise=0.01),
}


@pytest.mark.parametrize('cls', ALL, ids=IDS)
def test_signature_and_defaults(cls):
    params = inspect.signature(cls).parameters
    expected = {**SIGNATURES[cls], 'device': None, 'dtype': torch.float32, 'seed': None}
    assert list(params) == list(expected)
    assert {k: p.default for k, p in params.items()} == expected
    ds = cls(seed=0)
    for name, value in SIGNATURES[cls].items():
        if name != 'n_samples': assert getattr(ds, name) == value
    assert len(ds) == (100 if cls is GridDataset else 2000)


# --- the Dataset contract ---------------------------------------------------------------------------------

@pytest.mark.parametrize('cls', ALL, ids=IDS)
def test_shape_dtype_device_and_protocol(cls):
    ds = make(cls, 400, seed=0)
    n = len(ds)
    assert ds.data.shape == (n, 2) and ds.n_samples == n
    assert ds.data.dtype == torch.float32 and ds.data.device == torch.device('cpu') and ds.device == torch.device('cpu')
    assert ds.data.is_contiguous() and not ds.data.requires_grad and bool(torch.isfinite(ds.data).all())
    assert ds.get_data() is ds.data
    assert torch.equal(ds[0], ds.data[0]) and torch.equal(ds[-1], ds.data[n - 1]) and torch.equal(ds[-n], ds.data[0])
    assert torch.equal(ds[torch.tensor(3)], ds.data[3])
    with pytest.raises(IndexError, match='out of range'): ds[n]
    with pytest.raises(IndexError, match='out of range'): ds[-n - 1]
    with pytest.raises(TypeError, match='indices must be integers'): ds[1.0]
    assert repr(ds) == f"{cls.__name__}(n_samples={n}, device=cpu, dtype=torch.float32)"
    batches = list(DataLoader(ds, batch_size=64))
    assert torch.equal(torch.cat(batches), ds.data)


@pytest.mark.parametrize('cls', ALL, ids=IDS)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float16, torch.bfloat16])
def test_dtypes(cls, dtype):
    ds = make(cls, 200, seed=1, dtype=dtype)
    assert ds.data.dtype == dtype and ds.dtype == dtype and str(dtype) in repr(ds)


@pytest.mark.parametrize('cls', [c for c in ALL if c is not CheckerboardDataset], ids=lambda c: c.__name__)
def test_same_points_in_every_precision(cls):
    """Points are drawn in float64 and rounded, so float32 data is float64 data rounded."""
    assert torch.equal(make(cls, seed=5, dtype=torch.float64).data.float(), make(cls, seed=5).data)


def test_checkerboard_precision_rule_is_decided_after_rounding():
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        x = CheckerboardDataset(3000, range_limit=3.0, seed=2, dtype=dtype).data.double()
        assert bool((x.floor().sum(1).remainder(2) == 1).all()), dtype


@pytest.mark.parametrize('cls', ALL, ids=IDS)
def test_device_none_follows_torch_default_device_and_generation_stays_on_cpu(cls):
    """Under a default-device context `device=None` means that device; the draws still come from the CPU generator."""
    with torch.device('meta'):
        ds = make(cls, 50, seed=0)
    assert ds.device == torch.device('meta') and ds.data.is_meta
    assert ds.seed == 0 and make(cls, 50, seed=0, device='cpu').device == torch.device('cpu')


@pytest.mark.cuda
@pytest.mark.parametrize('cls', ALL, ids=IDS)
def test_cuda_same_points_and_cuda_rng_untouched(cls):
    cuda_state = torch.cuda.get_rng_state()
    ds = make(cls, 300, seed=3, device='cuda')
    assert ds.data.device.type == 'cuda' and ds.device == torch.device('cuda')
    assert repr(ds) == f"{cls.__name__}(n_samples={len(ds)}, device=cuda, dtype=torch.float32)"
    assert torch.equal(ds.data.cpu(), make(cls, 300, seed=3).data)
    assert ds[0].device.type == 'cuda'
    ds.regenerate(); make(cls, 300, device='cuda')
    assert torch.equal(torch.cuda.get_rng_state(), cuda_state)


# --- reproducibility and the global RNG ---------------------------------------------------------------------

@pytest.mark.parametrize('cls', ALL, ids=IDS)
def test_reproducibility(cls):
    a, b, c = make(cls, seed=11), make(cls, seed=11), make(cls, seed=12)
    assert torch.equal(a.data, b.data) and not torch.equal(a.data, c.data)
    assert a.seed == 11
    first = a.data.clone()
    second = a.regenerate()                       # continues the stream: new points, reproducibly
    assert second is a.data and not torch.equal(second, first)
    assert torch.equal(second, b.regenerate())
    third = a.regenerate(seed=12)                 # reseeding equals a fresh dataset with that seed
    assert torch.equal(third, c.data) and a.seed == 12
    assert torch.equal(a.regenerate(seed=11), first)


@pytest.mark.parametrize('cls', ALL, ids=IDS)
def test_seed_none_draws_an_os_seed_and_records_it(cls):
    a, b = make(cls), make(cls)
    assert isinstance(a.seed, int) and 0 <= a.seed < 2**64 and a.seed != b.seed
    assert not torch.equal(a.data, b.data)
    assert torch.equal(a.data, make(cls, seed=a.seed).data)


@pytest.mark.parametrize('cls', ALL, ids=IDS)
def test_global_rng_state_untouched(cls):
    torch.manual_seed(1234); random.seed(1234)
    torch_state, python_state = torch.get_rng_state(), random.getstate()
    for seed in (0, None, 2**64 - 1):
        ds = make(cls, 300, seed=seed)
        ds.regenerate(); ds.regenerate(seed=7)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == python_state


@pytest.mark.parametrize('cls', NOISY, ids=lambda c: c.__name__)
def test_noise_is_drawn_last_and_scales_linearly(cls):
    clean, noisy, noisier = (make(cls, 400, noise=s, seed=9, dtype=torch.float64).data for s in (0.0, 0.1, 0.3))
    torch.testing.assert_close(noisier - clean, 3 * (noisy - clean), rtol=0, atol=1e-12)
    xi = ((noisy - clean) / 0.1).flatten()          # the noise itself: standard normal
    assert within(xi.mean(), 0.0, 1 / math.sqrt(xi.numel()))
    assert within(xi.std(), 1.0, 1 / math.sqrt(2 * xi.numel()))


# --- defining properties ------------------------------------------------------------------------------------

def test_gaussian_mixture_ring_balance_and_spread():
    n, K, std, R = 4000, 7, 0.05, 1.5
    ds = GaussianMixtureDataset(n, n_components=K, std=std, radius=R, seed=0, dtype=torch.float64)
    centers = ds.centers
    assert centers.shape == (K, 2)
    torch.testing.assert_close(centers.norm(dim=1), torch.full((K,), R, dtype=torch.float64))
    angles = torch.atan2(centers[:, 1], centers[:, 0]).remainder(2 * math.pi)
    torch.testing.assert_close(angles, 2 * math.pi * torch.arange(K, dtype=torch.float64) / K)
    d, nearest = torch.cdist(ds.data, centers).min(1)
    counts = nearest.bincount(minlength=K).double()
    assert bool(((counts - n / K).abs() < Z * math.sqrt(n / K * (1 - 1 / K))).all()), counts
    chi2 = (d / std) ** 2                             # χ²₂: mean 2, sd 2
    assert within(chi2.mean(), 2.0, 2 / math.sqrt(n))
    exact = GaussianMixtureDataset(50, n_components=3, std=0.0, seed=1, dtype=torch.float64)
    assert bool((torch.cdist(exact.data, exact.centers).min(1).values < 1e-12).all())


def test_eight_gaussians_classic_centres():
    ds = EightGaussiansDataset(4000, seed=0, dtype=torch.float64)
    d = 1 / math.sqrt(2)
    classic = 2.0 * torch.tensor([(1, 0), (-1, 0), (0, 1), (0, -1), (d, d), (d, -d), (-d, d), (-d, -d)],
                                 dtype=torch.float64)
    torch.testing.assert_close(ds.centers, classic)
    dist, nearest = torch.cdist(ds.data, ds.centers).min(1)
    assert float(dist.max()) < 6 * 0.02             # P(χ₂ > 6) = e⁻¹⁸ per point
    counts = nearest.bincount(minlength=8).double()
    assert bool(((counts - 500).abs() < Z * math.sqrt(4000 / 8 * 7 / 8)).all()), counts
    for k in range(8):                                # each component's mean is its centre
        pts = ds.data[nearest == k]
        assert bool(((pts.mean(0) - ds.centers[k]).abs() < Z * 0.02 / math.sqrt(len(pts))).all())
    assert EightGaussiansDataset(10, scale=3.0, seed=0).centers.norm(dim=1).allclose(torch.full((8,), 3.0))


def test_two_moons_two_arcs():
    n = 4000
    x = TwoMoonsDataset(n, noise=0.0, seed=0, dtype=torch.float64).data
    outer = (x.norm(dim=1) - 1).abs() < 1e-12
    inner = ((x - torch.tensor([1.0, 0.5], dtype=torch.float64)).norm(dim=1) - 1).abs() < 1e-12
    assert bool((outer ^ inner).all())               # each point on exactly one moon
    assert bool((x[outer, 1] >= 0).all()) and bool((x[inner, 1] <= 0.5).all())
    assert within(outer.sum(), n / 2, math.sqrt(n / 4))
    # t ~ U[0, π]: the outer moon's x = cos t has mean 0 and variance 1/2
    assert within(x[outer, 0].mean(), 0.0, math.sqrt(0.5 / int(outer.sum())))
    assert within(x[inner, 0].mean(), 1.0, math.sqrt(0.5 / int(inner.sum())))
    # with noise: two clusters, every point within 6σ of its moon
    sigma = 0.05
    y = TwoMoonsDataset(n, noise=sigma, seed=1, dtype=torch.float64).data
    to_outer = (y.norm(dim=1) - 1).abs()
    to_inner = ((y - torch.tensor([1.0, 0.5], dtype=torch.float64)).norm(dim=1) - 1).abs()
    assert float(torch.minimum(to_outer, to_inner).max()) < 6 * sigma


def test_swiss_roll_unwinds_and_is_centred():
    n, arclength = 4000, 3.0
    ds = SwissRollDataset(n, noise=0.0, arclength=arclength, seed=0, dtype=torch.float64)
    a = math.pi * arclength
    assert ds.scale == pytest.approx(3 * a)
    raw = ds.data * ds.scale + torch.tensor(ds.center, dtype=torch.float64)
    r = raw.norm(dim=1)
    torch.testing.assert_close(raw / r[:, None], torch.stack([r.cos(), r.sin()], 1), rtol=0, atol=1e-9)
    assert bool(((r >= a - 1e-9) & (r <= 3 * a + 1e-9)).all())
    u = (r - a) / (2 * a)                              # uniform on [0, 1]
    assert within(u.mean(), 0.5, math.sqrt(1 / 12 / n))
    assert within((u < 0.25).double().mean(), 0.25, math.sqrt(0.25 * 0.75 / n))
    se = ds.data.std(0) / math.sqrt(n)
    assert bool((ds.data.mean(0).abs() < Z * se).all())
    assert float(ds.data.norm(dim=1).max()) < 1.1     # scaled to about the unit disc
    for arc in (0.5, 1.5, 2.2):                        # the exact centre equals a numerical mean
        t = torch.linspace(arc * math.pi, 3 * arc * math.pi, 200001, dtype=torch.float64)
        numeric = torch.trapezoid(torch.stack([t * t.cos(), t * t.sin()]), t, dim=1) / (2 * arc * math.pi)
        assert SwissRollDataset(2, arclength=arc).center == pytest.approx(numeric.tolist(), abs=1e-7)


def test_circle_radius_and_uniform_angle():
    n, R, sigma = 4000, 2.0, 0.05
    exact = CircleDataset(500, noise=0.0, radius=R, seed=0, dtype=torch.float64).data
    torch.testing.assert_close(exact.norm(dim=1), torch.full((500,), R, dtype=torch.float64))
    x = CircleDataset(n, noise=sigma, radius=R, seed=1, dtype=torch.float64).data
    radii = x.norm(dim=1)
    assert abs(float(radii.mean()) - R) < Z * sigma / math.sqrt(n) + sigma ** 2 / R   # bias ≈ σ²/2R
    assert within(radii.std(), sigma, sigma / math.sqrt(2 * n))
    theta = torch.atan2(x[:, 1], x[:, 0])
    for f in (torch.cos, torch.sin, lambda t: torch.cos(2 * t)):
        assert within(f(theta).mean(), 0.0, math.sqrt(0.5 / n))


@pytest.mark.parametrize('range_limit', [4.0, 2.5, 0.3])
def test_checkerboard_rule_bounds_and_balance(range_limit):
    n = 6000
    x = CheckerboardDataset(n, range_limit=range_limit, seed=0, dtype=torch.float64).data
    cells = x.floor()
    assert bool((cells.sum(1).remainder(2) == 1).all())
    assert bool((x >= -range_limit).all()) and bool((x < range_limit).all())
    # uniform on the black area: each black cell's share is its area over the black area (= half the square)
    lo = math.floor(-range_limit); side = math.ceil(range_limit) - lo
    index = ((cells[:, 0] - lo) * side + cells[:, 1] - lo).long()
    counts = index.bincount(minlength=side * side).double()
    edges = torch.arange(lo, lo + side + 1, dtype=torch.float64).clamp(-range_limit, range_limit)
    width = edges[1:] - edges[:-1]
    area = width[:, None] * width[None, :]
    black = (torch.arange(lo, lo + side)[:, None] + torch.arange(lo, lo + side)[None, :]).remainder(2) == 1
    p = (area * black).flatten() / (2 * range_limit) ** 2 * 2
    torch.testing.assert_close(p.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert bool(((counts - n * p).abs() <= 4.5 * (n * p * (1 - p)).sqrt() + 1e-9).all())


def test_checkerboard_noise_added_after_rejection():
    clean = CheckerboardDataset(2000, seed=4, dtype=torch.float64).data
    noisy = CheckerboardDataset(2000, noise=0.05, seed=4, dtype=torch.float64).data
    assert bool((clean.floor().sum(1).remainder(2) == 1).all())
    assert not bool((noisy.floor().sum(1).remainder(2) == 1).all())   # noise crosses cell edges
    xi = ((noisy - clean) / 0.05).flatten()
    assert within(xi.std(), 1.0, 1 / math.sqrt(2 * xi.numel()))


def unwound(ds):
    x = ds.data.double()
    r, theta = x.norm(dim=1), torch.atan2(x[:, 1], x[:, 0])
    residual = theta - ds.spiral_scale * r / ds.radial_scale
    width = 2 * math.pi / ds.n_classes
    blade = torch.round(residual / width)
    return residual - blade * width, blade.long().remainder(ds.n_classes), r


@pytest.mark.parametrize('spiral_scale', [5.0, -3.0, 0.0])
def test_pinwheel_blades(spiral_scale):
    n, C, alpha, rho = 5000, 4, 0.08, 1.5
    ds = PinwheelDataset(n, n_classes=C, noise=0.0, radial_scale=rho, angular_scale=alpha,
                         spiral_scale=spiral_scale, seed=0, dtype=torch.float64)
    angle, blade, r = unwound(ds)
    assert within(angle.mean(), 0.0, alpha / math.sqrt(n))
    assert within(angle.std(), alpha, alpha / math.sqrt(2 * n))
    counts = blade.bincount(minlength=C).double()
    assert bool(((counts - n / C).abs() < Z * math.sqrt(n / C * (1 - 1 / C))).all()), counts
    assert bool((r <= rho + 1e-12).all())
    u = (r / rho) ** 2                                  # τ² is uniform on [0, 1]
    assert within(u.mean(), 0.5, math.sqrt(1 / 12 / n))
    assert within((u < 0.5).double().mean(), 0.5, math.sqrt(0.25 / n))
    exact, _, _ = unwound(PinwheelDataset(500, n_classes=C, noise=0.0, radial_scale=rho, angular_scale=0.0,
                                          spiral_scale=spiral_scale, seed=1, dtype=torch.float64))
    assert float(exact.abs().max()) < 1e-9


def test_pinwheel_single_blade():
    _, blade, _ = unwound(PinwheelDataset(300, n_classes=1, noise=0.0, seed=0, dtype=torch.float64))
    assert bool((blade == 0).all())


@pytest.mark.parametrize('k, L', [(10, 1.0), (7, 2.5), (2, 0.5)])
def test_grid_lattice(k, L):
    ds = GridDataset(k, range_limit=L, noise=0.0, seed=0, dtype=torch.float64)
    assert len(ds) == k * k and ds.data.shape == (k * k, 2)
    axis = torch.linspace(-L, L, k, dtype=torch.float64)
    torch.testing.assert_close(ds.data, torch.cartesian_prod(axis, axis))       # first coordinate slowest
    steps = (ds.data + L) / (2 * L / (k - 1))
    torch.testing.assert_close(steps, steps.round(), rtol=0, atol=1e-9)
    sigma = 0.02
    noisy = GridDataset(k, range_limit=L, noise=sigma, seed=1, dtype=torch.float64)
    residual = ((noisy.data - noisy.nodes) / sigma).flatten()
    assert within(residual.std(), 1.0, 1 / math.sqrt(2 * residual.numel()), z=5)
    assert float(residual.abs().max()) < 6


def test_grid_single_node_at_origin():
    assert torch.equal(GridDataset(1, noise=0.0).data, torch.zeros(1, 2))


# --- errors -------------------------------------------------------------------------------------------------

ERRORS = [
    (cls, dict(n_samples=0), ValueError, 'n_samples must be ≥ 1; got 0') for cls in ALL if cls is not GridDataset
] + [
    (cls, dict(n_samples=-5), ValueError, 'n_samples must be ≥ 1') for cls in ALL if cls is not GridDataset
] + [
    (cls, dict(n_samples=100.0), TypeError, 'n_samples must be an int') for cls in ALL if cls is not GridDataset
] + [
    (cls, dict(n_samples=True), TypeError, 'n_samples must be an int') for cls in ALL if cls is not GridDataset
] + [
    (cls, dict(noise=-0.01), ValueError, 'noise must be ≥ 0; got -0.01') for cls in NOISY
] + [
    (cls, dict(noise='0.1'), TypeError, 'noise must be a real number') for cls in NOISY
] + [
    (cls, dict(noise=math.inf), ValueError, 'noise must be finite') for cls in NOISY
] + [
    (cls, dict(seed=-1), ValueError, 'seed must be ≥ 0') for cls in ALL
] + [
    (cls, dict(seed=2**64), ValueError, 'seed must be < 2**64') for cls in ALL
] + [
    (cls, dict(seed=1.0), TypeError, 'seed must be an int') for cls in ALL
] + [
    (cls, dict(dtype=torch.int32), ValueError, 'dtype must be a floating dtype') for cls in ALL
] + [
    (cls, dict(dtype='float32'), TypeError, 'dtype must be a torch.dtype') for cls in ALL
] + [
    (cls, dict(device='gpu'), ValueError, "device='gpu' is not a valid device") for cls in ALL
] + [
    (cls, dict(device=1.5), TypeError, 'device must be a str, torch.device or None') for cls in ALL
] + [
    (GaussianMixtureDataset, dict(n_components=0), ValueError, 'n_components must be ≥ 1; got 0'),
    (GaussianMixtureDataset, dict(n_components=2.0), TypeError, 'n_components must be an int'),
    (GaussianMixtureDataset, dict(std=-0.1), ValueError, 'std must be ≥ 0; got -0.1'),
    (GaussianMixtureDataset, dict(std=None), TypeError, 'std must be a real number'),
    (GaussianMixtureDataset, dict(radius=0.0), ValueError, 'radius must be positive; got 0.0'),
    (GaussianMixtureDataset, dict(radius=-1), ValueError, 'radius must be positive'),
    (EightGaussiansDataset, dict(std=-0.02), ValueError, 'std must be ≥ 0'),
    (EightGaussiansDataset, dict(scale=0), ValueError, 'scale must be positive'),
    (EightGaussiansDataset, dict(scale=float('nan')), ValueError, 'scale must be finite'),
    (SwissRollDataset, dict(arclength=0), ValueError, 'arclength must be positive'),
    (SwissRollDataset, dict(arclength='3'), TypeError, 'arclength must be a real number'),
    (CircleDataset, dict(radius=-2.0), ValueError, 'radius must be positive'),
    (CheckerboardDataset, dict(range_limit=0), ValueError, 'range_limit must be positive'),
    (CheckerboardDataset, dict(range_limit=math.inf), ValueError, 'range_limit must be finite'),
    (PinwheelDataset, dict(n_classes=0), ValueError, 'n_classes must be ≥ 1; got 0'),
    (PinwheelDataset, dict(n_classes=2.5), TypeError, 'n_classes must be an int'),
    (PinwheelDataset, dict(radial_scale=0), ValueError, 'radial_scale must be positive'),
    (PinwheelDataset, dict(angular_scale=-0.1), ValueError, 'angular_scale must be ≥ 0'),
    (PinwheelDataset, dict(spiral_scale=None), TypeError, 'spiral_scale must be a real number'),
    (PinwheelDataset, dict(spiral_scale=float('nan')), ValueError, 'spiral_scale must be finite'),
    (GridDataset, dict(n_samples_per_dim=0), ValueError, 'n_samples_per_dim must be ≥ 1; got 0'),
    (GridDataset, dict(n_samples_per_dim=-3), ValueError, 'n_samples_per_dim must be ≥ 1'),
    (GridDataset, dict(n_samples_per_dim=3.0), TypeError, 'n_samples_per_dim must be an int'),
    (GridDataset, dict(range_limit=-1.0), ValueError, 'range_limit must be positive'),
    (GridDataset, dict(n_samples=100), TypeError, "unexpected keyword argument 'n_samples'"),
]


@pytest.mark.parametrize('cls, kwargs, error, message', ERRORS,
                         ids=[f"{c.__name__}-{next(iter(k))}={next(iter(k.values()))!r}" for c, k, _, _ in ERRORS])
def test_errors(cls, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        cls(**kwargs)


@pytest.mark.parametrize('cls', ALL, ids=IDS)
def test_regenerate_errors(cls):
    ds = make(cls, 50, seed=0)
    before = ds.data.clone()
    with pytest.raises(ValueError, match='seed must be ≥ 0'): ds.regenerate(seed=-2)
    with pytest.raises(TypeError, match='seed must be an int'): ds.regenerate(seed='1')
    assert torch.equal(ds.data, before) and ds.seed == 0


def test_base_class_is_abstract():
    with pytest.raises(TypeError, match='abstract'):
        BaseSyntheticDataset(10)
