"""MCMC diagnostics and sample-quality metrics against independent float64 numpy references and known values.

The references below are written from the published definitions, with loops and direct O(N²) sums, sharing no code
with `torchebm_nb.utils` (no FFT, no cumulative tricks): Geyer (1992) for the initial monotone sequence, Stan's
multi-chain autocorrelation (Gelman et al. 2013, BDA3 §11.5; Vehtari et al. 2021), split-R-hat and its rank-normalised
folded version (Vehtari et al. 2021, with scipy's average ranks and normal quantiles), Gretton et al. (2012) for the
unbiased MMD², Székely & Rizzo (2013) for the energy distance. Known values: AR(1) with coefficient φ has ρ_k = φ^k and
ESS/N → (1 − φ)/(1 + φ); tolerances come from Monte-Carlo standard errors (Bartlett's formula, or the spread of
independent replicates).
"""
import math

import numpy as np
import pytest
import torch
from scipy import special, stats
from scipy.signal import lfilter

from torchebm_nb.utils import (acceptance_rate, autocorrelation, effective_sample_size, energy_distance, mmd,
                               split_chains, split_rhat)


# ----------------------------------------------------------------------------------------------------------------------
# numpy references (float64)

def ref_autocovariance(chain):
    """γ̂_t = (1/N) Σ_{i<N−t} (x_i − x̄)(x_{i+t} − x̄) by direct summation (np.correlate), t = 0..N−1."""
    c = np.asarray(chain, dtype=np.float64) - np.mean(chain)
    n = len(c)
    return np.correlate(c, c, mode='full')[n - 1:] / n


def ref_ess(x):
    """ESS of (M, N) chains: Stan's combined ρ̂_t, Geyer's initial positive then monotone sequence, loop by loop."""
    x = np.asarray(x, dtype=np.float64)
    m, n = x.shape
    acov = np.array([ref_autocovariance(c) for c in x])
    w = np.mean([np.var(c, ddof=1) for c in x])
    var_plus = w * (n - 1) / n + (np.var(x.mean(1), ddof=1) if m > 1 else 0.0)
    rho = [1.0] + [1.0 - (w - np.mean(acov[:, t])) / var_plus for t in range(1, n)]
    total, running_min, k = 0.0, math.inf, 0
    while 2 * k + 1 < n:
        pair = rho[2 * k] + rho[2 * k + 1]
        if k > 0 and not pair > 0: break          # initial positive sequence: stop at the first non-positive pair
        running_min = min(running_min, pair)      # initial monotone sequence
        total += running_min
        k += 1
    tau = max(-1.0 + 2.0 * total, 1.0 / math.log10(max(m * n, 10)))
    return m * n / tau


def ref_rhat_of(chains):
    """Potential scale reduction of (M, n) chains, BDA3 eq. 11.3–11.4."""
    chains = np.asarray(chains, dtype=np.float64)
    m, n = chains.shape
    means = chains.mean(1)
    b = n * np.sum((means - means.mean())**2) / (m - 1)
    w = np.mean([np.sum((c - c.mean())**2) / (n - 1) for c in chains])
    return math.sqrt(((n - 1) / n * w + b / n) / w)


def ref_split(x):
    x = np.asarray(x)
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]])


def ref_split_rhat(x, rank_normalized=False):
    x = np.asarray(x, dtype=np.float64)
    if not rank_normalized: return ref_rhat_of(ref_split(x))
    def z(values):
        ranks = stats.rankdata(values.ravel(), method='average').reshape(values.shape)
        return stats.norm.ppf((ranks - 0.375) / (values.size + 0.25))
    bulk = ref_rhat_of(z(ref_split(x)))   # split, then rank (Vehtari et al. 2021; ArviZ)
    tail = ref_rhat_of(z(ref_split(np.abs(x - np.median(x)))))
    return max(bulk, tail)


def ref_mmd2(x, y, bandwidth=None):
    """Unbiased MMD² (Gretton et al. 2012, eq. 3) with exp(−d²/2ℓ²); ℓ = median pooled pairwise distance."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    pooled = np.concatenate([x, y])
    d = np.sqrt(((pooled[:, None, :] - pooled[None, :, :])**2).sum(-1))
    if bandwidth is None:
        iu = np.triu_indices(len(pooled), k=1)
        bandwidth = np.median(d[iu])
    k = np.exp(-d**2 / (2 * bandwidth**2))
    n, m = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.sum() / (n * m))


def ref_energy_distance(x, y, unbiased=False):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    dist = lambda a, b: np.sqrt(((a[:, None, :] - b[None, :, :])**2).sum(-1))
    n, m = len(x), len(y)
    dxx, dyy = dist(x, x).sum(), dist(y, y).sum()
    if unbiased: dxx, dyy = dxx / (n * (n - 1)), dyy / (m * (m - 1))
    else: dxx, dyy = dxx / n**2, dyy / m**2
    return 2 * dist(x, y).mean() - dxx - dyy


def ar1(phi, n_chains, n_draws, seed):
    """Stationary AR(1) chains x_{i+1} = φ x_i + √(1 − φ²) ε_i with unit marginal variance, float64 numpy."""
    rng = np.random.default_rng(seed)
    x = lfilter([1.0], [1.0, -phi], rng.standard_normal((n_chains, n_draws)) * math.sqrt(1 - phi**2), axis=1)
    return x + rng.standard_normal((n_chains, 1)) * phi ** np.arange(1, n_draws + 1)


# ----------------------------------------------------------------------------------------------------------------------
# cross-checks against the references

@pytest.mark.parametrize('shape', [(3, 101), (1, 64), (2, 50, 3)])
def test_autocorrelation_matches_direct_sums(shape):
    x = np.random.default_rng(0).standard_normal(shape).cumsum(1)
    ours = autocorrelation(torch.from_numpy(x)).numpy()
    flat = x.reshape(shape[0], shape[1], -1)
    for c in range(shape[0]):
        for k in range(flat.shape[2]):
            g = ref_autocovariance(flat[c, :, k])
            np.testing.assert_allclose(ours.reshape(shape[0], shape[1], -1)[c, :, k], g / g[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('phi, n_chains, n_draws', [(0.5, 4, 500), (0.9, 4, 801), (-0.4, 3, 300), (0.7, 1, 400),
                                                     (0.95, 6, 200)])
def test_ess_matches_reference(phi, n_chains, n_draws):
    x = ar1(phi, n_chains, n_draws, seed=1)
    np.testing.assert_allclose(effective_sample_size(torch.from_numpy(x)).item(), ref_ess(x), rtol=1e-9)


def test_ess_reference_multichain_and_components():
    """Chains with different means (the between-chain term matters) and several components at once."""
    x = ar1(0.6, 4, 300, seed=2)[:, :, None] * np.array([1.0, 2.0, 0.5]) + np.array([0.0, 0.3, 0.0])[None, None]
    x[:, :, 2] += np.arange(4)[:, None] * 0.2
    ours = effective_sample_size(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, [ref_ess(x[:, :, k]) for k in range(3)], rtol=1e-9)
    # float32 on the same data agrees to float32 accuracy
    np.testing.assert_allclose(effective_sample_size(torch.from_numpy(x).float()).numpy(), ours, rtol=1e-3)


@pytest.mark.parametrize('rank_normalized', [False, True])
@pytest.mark.parametrize('n_draws', [200, 201])
def test_split_rhat_matches_reference(rank_normalized, n_draws):
    rng = np.random.default_rng(3)
    x = ar1(0.5, 4, n_draws, seed=4) * np.array([1.0, 1.0, 2.0, 1.0])[:, None] + np.array([0, 0.2, 0, 0])[:, None]
    x = np.stack([x, rng.standard_t(3, size=x.shape)], -1)                     # a heavy-tailed component too
    ours = split_rhat(torch.from_numpy(x), rank_normalized=rank_normalized).numpy()
    np.testing.assert_allclose(ours, [ref_split_rhat(x[..., k], rank_normalized) for k in range(2)], rtol=1e-9)


def test_rank_normalisation_handles_ties_like_scipy():
    x = np.random.default_rng(5).integers(0, 4, size=(4, 50)).astype(np.float64)   # many ties
    np.testing.assert_allclose(split_rhat(torch.from_numpy(x), rank_normalized=True).item(),
                               ref_split_rhat(x, rank_normalized=True), rtol=1e-9)


def test_split_chains_layout():
    x = torch.arange(14.0).reshape(2, 7)
    np.testing.assert_array_equal(split_chains(x).numpy(), ref_split(x.numpy()))


# ----------------------------------------------------------------------------------------------------------------------
# known values

@pytest.mark.parametrize('phi', [0.5, 0.9, -0.5])
def test_ar1_autocorrelation_is_phi_to_the_k(phi):
    n_chains, n_draws, lags = 16, 10000, 10
    rho = autocorrelation(torch.from_numpy(ar1(phi, n_chains, n_draws, seed=6)), max_lag=lags).mean(0).numpy()
    for k in range(lags + 1):
        bartlett = ((1 + phi**2) * (1 - phi**(2 * k)) / (1 - phi**2) - 2 * k * phi**(2 * k)) / n_draws
        se = math.sqrt(max(bartlett, 0.0) / n_chains)
        bias = (k + (1 + phi) / (1 - phi)) / n_draws                  # O(1/N) bias of the ratio estimator
        assert abs(rho[k] - phi**k) < 4 * se + bias + 1e-12, (k, rho[k], phi**k, se)


@pytest.mark.parametrize('phi', [0.5, 0.9, -0.5, 0.0])
def test_ar1_ess_fraction(phi):
    """ESS/N → (1 − φ)/(1 + φ); tolerance: 4 standard errors of the mean over 8 independent replicates."""
    fractions = np.array([effective_sample_size(torch.from_numpy(ar1(phi, 8, 4000, seed=100 + r))).item() / 32000
                          for r in range(8)])
    exact = (1 - phi) / (1 + phi)
    se = fractions.std(ddof=1) / math.sqrt(len(fractions))
    assert abs(fractions.mean() - exact) < 4 * se + 0.005 * exact, (fractions.mean(), exact, se)


def test_rhat_well_mixed_and_stuck():
    mixed = torch.from_numpy(ar1(0.5, 8, 4000, seed=7))
    for rn in (False, True):
        assert abs(split_rhat(mixed, rank_normalized=rn).item() - 1) < 0.005
    stuck = mixed + 2.0 * (torch.arange(8) % 2)[:, None]                           # two groups of chains, 2σ apart
    assert split_rhat(stuck).item() > 1.3
    assert split_rhat(stuck, rank_normalized=True).item() > 1.3
    drift = mixed[:1] + torch.linspace(0, 3, 4000, dtype=torch.float64)              # one chain not yet stationary
    assert split_rhat(drift).item() > 1.1
    # R-hat of well-mixed chains: its known scale, 1 + O(1/ESS)
    assert split_rhat(mixed).item() < 1 + 10 / effective_sample_size(mixed).item()


def test_acceptance_rate_counts_moves():
    x = torch.tensor([[0.0, 0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 2.0, 3.0, 4.0]])[..., None].repeat(1, 1, 2)
    x[0, 4, 1] = 5.0                                                                  # one coordinate moving is a move
    torch.testing.assert_close(acceptance_rate(x), torch.tensor([0.5, 1.0]))


def test_diagnostics_keep_dtype_and_device_and_validate():
    x = torch.randn(3, 40, 2)
    assert effective_sample_size(x).dtype == torch.float32 and split_rhat(x.double()).dtype == torch.float64
    assert autocorrelation(x.bfloat16()).dtype == torch.float32
    with pytest.raises(TypeError, match='chains must be a torch.Tensor'): split_rhat(np.zeros((2, 10)))
    with pytest.raises(ValueError, match='at least 4 draws'): split_rhat(torch.randn(2, 3))
    with pytest.raises(TypeError, match='max_lag must be an int'): autocorrelation(x, max_lag=2.0)


# ----------------------------------------------------------------------------------------------------------------------
# metrics

@pytest.mark.parametrize('bandwidth', [None, 0.7])
def test_mmd_matches_reference(bandwidth):
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((40, 3)), rng.standard_normal((33, 3)) + [0.5, 0.0, -0.2]
    np.testing.assert_allclose(mmd(torch.from_numpy(x), torch.from_numpy(y), bandwidth=bandwidth).item(),
                               ref_mmd2(x, y, bandwidth), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(mmd(torch.from_numpy(x).float(), torch.from_numpy(y).float(), bandwidth).item(),
                               ref_mmd2(x, y, bandwidth), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('unbiased', [False, True])
def test_energy_distance_matches_reference(unbiased):
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((40, 2, 2)), rng.standard_normal((25, 2, 2)) * 1.5
    ours = energy_distance(torch.from_numpy(x), torch.from_numpy(y), unbiased=unbiased).item()
    np.testing.assert_allclose(ours, ref_energy_distance(x.reshape(40, -1), y.reshape(25, -1), unbiased), rtol=1e-9)


def test_energy_distance_agrees_with_the_loss_tests_helper():
    """tests/losses/conftest.py's V-statistic helper is the default here."""
    x, y = torch.randn(50, 2), torch.randn(60, 2) + 1
    xd, yd = x.double(), y.double()
    helper = (2 * torch.cdist(xd, yd).mean() - torch.cdist(xd, xd).mean() - torch.cdist(yd, yd).mean()).item()
    assert abs(energy_distance(xd, yd).item() - helper) < 1e-10


def test_metrics_zero_for_same_law_and_growing_with_shift():
    g = torch.Generator().manual_seed(10)
    shifts = [0.0, 0.5, 1.0, 2.0]
    mmds, energies = [], []
    for s in shifts:
        reps = [(torch.randn(200, 2, generator=g, dtype=torch.float64),
                 torch.randn(200, 2, generator=g, dtype=torch.float64) + torch.tensor([s, 0.0], dtype=torch.float64))
                for _ in range(10)]
        mmds.append(np.array([mmd(a, b, bandwidth=1.0).item() for a, b in reps]))
        energies.append(np.array([energy_distance(a, b, unbiased=True).item() for a, b in reps]))
    for values in (mmds, energies):
        null = values[0]
        assert abs(null.mean()) < 4 * null.std(ddof=1) / math.sqrt(len(null))          # unbiased: zero mean under H0
        assert all(a.mean() < b.mean() for a, b in zip(values, values[1:]))
        assert values[1].mean() > 0
    # population MMD² in 2-D for N(0, I) vs N(s e₁, I), ℓ = 1: 2 (1/3) (1 − exp(−s²/6))
    for s, values in zip(shifts, mmds):
        exact = 2 * (1 / 3) * (1 - math.exp(-s**2 / 6))
        assert abs(values.mean() - exact) < 4 * values.std(ddof=1) / math.sqrt(len(values)) + 1e-4


def test_energy_distance_population_value_in_two_dimensions():
    """E‖Z‖ for Z ~ N(μ, 2I₂) is √2·√(π/2)·L_{1/2}(−|μ|²/4) (Rice mean); check the U-statistic against it."""
    def mean_norm(mu2):   # Z ~ N(μ, σ² I₂), σ² = 2: σ √(π/2) ₁F₁(−½; 1; −|μ|²/2σ²)
        return math.sqrt(2) * math.sqrt(math.pi / 2) * special.hyp1f1(-0.5, 1.0, -mu2 / 4)
    g = torch.Generator().manual_seed(11)
    for s in (0.0, 1.0, 2.5):
        values = np.array([energy_distance(torch.randn(300, 2, generator=g, dtype=torch.float64),
                                           torch.randn(300, 2, generator=g, dtype=torch.float64) + torch.tensor([s, 0.0], dtype=torch.float64),
                                           unbiased=True).item() for _ in range(8)])
        exact = 2 * mean_norm(s**2) - 2 * mean_norm(0.0)
        assert abs(values.mean() - exact) < 4 * values.std(ddof=1) / math.sqrt(len(values)) + 1e-3, (s, values.mean(), exact)


# ----------------------------------------------------------------------------------------------------------------------
# on a GPU: same numbers as on the CPU, and no host synchronisation inside

@pytest.mark.cuda
def test_diagnostics_and_metrics_on_cuda_without_syncs():
    x = torch.from_numpy(ar1(0.7, 4, 1000, seed=12)).float()
    a, b = torch.randn(300, 2), torch.randn(300, 2) + 0.5
    cpu = [effective_sample_size(x), split_rhat(x), split_rhat(x, rank_normalized=True), autocorrelation(x, 20),
           acceptance_rate(x), mmd(a, b), energy_distance(a, b)]
    xc, ac, bc = x.cuda(), a.cuda(), b.cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        gpu = [effective_sample_size(xc), split_rhat(xc), split_rhat(xc, rank_normalized=True), autocorrelation(xc, 20),
               acceptance_rate(xc), mmd(ac, bc), energy_distance(ac, bc)]
    finally:
        torch.cuda.set_sync_debug_mode(0)
    for c, g in zip(cpu, gpu):
        assert g.device.type == 'cuda'
        torch.testing.assert_close(g.cpu(), c, rtol=1e-4, atol=1e-5)
