"""Discrete samplers against exact enumeration (issue 16): Gibbs (systematic, random, checkerboard, block), Gibbs-with-
Gradients and DMALA on a dense Ising model of 10 spins, a 4×4 periodic lattice with random bond couplings and a 10×4
Bernoulli RBM. From one seeded run of many parallel chains per case: the marginals and pairwise correlations against
the exact ones, and the total-variation distance between the visited states and the exact distribution, which must
shrink as 1/√N (16 times the samples: 4 times smaller) and stay below the i.i.d. expectation inflated by the measured
autocorrelation time.

Tolerances, from Monte-Carlo standard errors:
- moments: the B chains are independent, so the spread of their time averages gives the standard error of the pooled
  average, autocorrelation included; every |z| < 5 (≤ 56 statistics per case: a false alarm ~ 3e-5).
- TV of n exact i.i.d. draws: each p̂ᵢ is ≈ normal with sd σᵢ = √(pᵢ(1−pᵢ)/n), E|p̂ᵢ − pᵢ| = σᵢ√(2/π), so
  E[TV] = ½ Σᵢ σᵢ √(2/π) = Σᵢ √(pᵢ(1−pᵢ)/(2πn)) ∝ 1/√n. Correlated draws count as n/τ draws, τ the integrated
  autocorrelation time, so E[TV] ≤ √τ · E_iid[TV] with τ the largest over the energy and the single sites (the state
  indicators, which dominate the sum, decorrelate faster than these slow statistics: the bound is conservative).
- the ratio TV(16N)/TV(N) uses the first B/16 chains for N and all B chains for 16N (same chain length, so the same τ:
  N_eff grows exactly 16-fold) and has expectation 1/4 once N_eff·pᵢ ≫ 1. TV(N) sums ~ 10³ terms with |z|-like
  noise, its relative sd is ≈ 10% here (seen over seeds: 0.21–0.32), so [0.15, 0.4] is ≈ ±3 sd; the upper end also
  allows the small-N bias (states not yet visited make TV(N) smaller than its asymptote, pushing the ratio up).
- a lower bound TV(16N) > 0.6·E_iid[TV(16N)]: no sampler here is antithetic, so none beats independent draws; the
  sum over ~ 10³ states has a relative sd of a few percent, so 0.6 is far out.
"""
import math

import pytest
import torch

from torchebm_nb.models import RBM, IsingModel, lattice_couplings
from torchebm_nb.samplers import DMALA, GibbsSampler, GibbsWithGradients
from torchebm_nb.utils import effective_sample_size

F64 = torch.float64
Z_MAX = 5.0
B = 512   # parallel chains; the first B // 16 give the N-sample estimate


def dense_ising(n_sites=10, seed=0, scale=0.3):
    "Random symmetric couplings (mean |corr(sᵢ, sⱼ)| ≈ 0.4) and field: correlated, but not bimodal (τ ≲ 11 sweeps)."
    g = torch.Generator().manual_seed(seed)
    J = torch.randn(n_sites, n_sites, generator=g, dtype=F64).triu(1) * scale
    return IsingModel(J + J.T, torch.randn(n_sites, generator=g, dtype=F64) * 0.3, dtype=F64)


def lattice_ising(seed=5):
    "The 4×4 periodic lattice (bipartite, so checkerboard applies) with a random coupling on each bond and a field."
    g = torch.Generator().manual_seed(seed)
    R = torch.randn(16, 16, generator=g, dtype=F64).triu(1) * 0.6
    J = lattice_couplings(4) * (R + R.T)
    return IsingModel(J, torch.randn(16, generator=g, dtype=F64) * 0.3, lattice_shape=(4, 4), dtype=F64)


def small_rbm(seed=1):
    "A 10×4 Bernoulli RBM, weights of sd 1, biases of sd 0.5."
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(10, 4, init_std=1.0, generator=g, dtype=F64)
    with torch.no_grad():
        rbm.visible_bias.normal_(generator=g).mul_(0.5)
        rbm.hidden_bias.normal_(generator=g).mul_(0.5)
    return rbm


def codes(x):
    "The number Σᵢ [xᵢ > 0] 2ⁱ of each state (bits or spins)."
    return ((x > 0).long() << torch.arange(x.shape[-1])).sum(-1)


def all_states(n):
    return ((torch.arange(2 ** n)[:, None] >> torch.arange(n)) & 1).to(F64)


def exact_dense(model):
    "(p over the 2^D states in `codes` order, E[x], E[xxᵀ]) by enumeration."
    states = all_states(model.n_sites if isinstance(model, IsingModel) else model.n_visible)
    if isinstance(model, IsingModel): states = 2 * states - 1
    with torch.no_grad():
        p = model.log_prob(states).exp() if isinstance(model, RBM) else torch.softmax(-model(states), 0)
    return p, p @ states, torch.einsum('s,si,sj->ij', p, states, states)


def exact_lattice(model, block=8):
    "(p of the first `block` spins (the top two rows), E[s], E[ssᵀ]) by enumerating the 2^16 states."
    mean, corr = model.exact_moments()
    p = model.exact_average(lambda s: torch.nn.functional.one_hot(codes(s[:, :block]), 2 ** block))
    return p, mean, corr


# name: (model, sampler, exact, sites read for the TV, burn-in steps, steps kept, thinning)
# GWG flips one site per step and DMALA few: they run ~ D steps per Gibbs sweep, thinned by 10 to the same length.
CASES = {
    'gibbs-systematic-dense': (dense_ising, lambda m: GibbsSampler(m, scan='systematic', dtype=F64), exact_dense, 10, 50, 128, 1),
    'gibbs-random-dense': (dense_ising, lambda m: GibbsSampler(m, scan='random', dtype=F64), exact_dense, 10, 50, 128, 1),
    'gibbs-checkerboard-lattice': (lattice_ising, lambda m: GibbsSampler(m, scan='checkerboard', dtype=F64),
                                   exact_lattice, 8, 50, 128, 1),
    'gibbs-block-rbm': (small_rbm, lambda m: GibbsSampler(m, scan='block', dtype=F64), exact_dense, 10, 50, 128, 1),
    'gwg-dense': (dense_ising, lambda m: GibbsWithGradients(m, dtype=F64), exact_dense, 10, 300, 1280, 10),
    'dmala-dense': (dense_ising, lambda m: DMALA(m, step_size=0.3, dtype=F64), exact_dense, 10, 300, 1280, 10),
    'gwg-rbm': (small_rbm, lambda m: GibbsWithGradients(m, dtype=F64), exact_dense, 10, 300, 1280, 10),
    'dmala-rbm': (small_rbm, lambda m: DMALA(m, step_size=0.3, dtype=F64), exact_dense, 10, 300, 1280, 10),
}


def total_variation(c, p):
    "½ Σ |p̂ − p| of the empirical distribution of the codes `c` against `p`."
    empirical = torch.bincount(c.reshape(-1), minlength=p.numel()).to(F64) / c.numel()
    return 0.5 * (empirical - p).abs().sum().item()


def iid_expected_tv(p, n):
    "E[TV] of n exact i.i.d. draws, normal approximation: Σᵢ √(pᵢ(1−pᵢ)/(2πn))."
    return (p * (1 - p) / (2 * math.pi * n)).sqrt().sum().item()


@pytest.fixture(scope='module', params=list(CASES))
def run(request):
    "One seeded run per case: (model, kept trajectory (B, T, D), exact answers, sites read for the TV)."
    make, build, exact, tv_sites, burn, kept, thin = CASES[request.param]
    model = make()
    seed = list(CASES).index(request.param) + 17
    traj = build(model).sample(n_samples=B, n_steps=burn + kept, return_trajectory=True, generator=seed)
    return request.param, model, traj[:, burn + thin::thin], exact(model), tv_sites


def test_marginals_and_pair_correlations_match_exact(run):
    name, model, traj, (_, mean, corr), _ = run
    n = traj.shape[-1]
    i, j = torch.triu_indices(n, n, 1)
    per_chain = torch.cat([traj.mean(1), torch.einsum('bti,btj->bij', traj, traj)[:, i, j] / traj.shape[1]], 1)
    exact = torch.cat([mean, corr[i, j]])
    z = (per_chain.mean(0) - exact) / (per_chain.std(0) / math.sqrt(B)).clamp_min(1e-4)
    assert z.abs().max() < Z_MAX, f"{name}: worst z = {z.abs().max():.2f} at statistic {int(z.abs().argmax())}"


def test_total_variation_shrinks_at_the_monte_carlo_rate(run):
    name, model, traj, (p, _, _), tv_sites = run
    c = codes(traj[..., :tv_sites])
    few, all_ = c[:B // 16], c
    tv_few, tv_all = total_variation(few, p), total_variation(all_, p)
    ratio = tv_all / tv_few
    assert 0.15 < ratio < 0.4, f"{name}: TV(16N)/TV(N) = {tv_all:.4f}/{tv_few:.4f} = {ratio:.3f}, expected ≈ 1/4"
    with torch.no_grad(): energy = model(traj.reshape(-1, traj.shape[-1])).reshape(traj.shape[:2])
    tau = (c.numel() / effective_sample_size(torch.cat([energy[..., None], traj], -1))).max().item()
    iid = iid_expected_tv(p, c.numel())
    assert 0.6 * iid < tv_all < 1.2 * math.sqrt(max(tau, 1.0)) * iid, \
        f"{name}: TV(16N) = {tv_all:.4f}, i.i.d. expectation {iid:.4f}, τ = {tau:.1f}"
