"""GibbsSampler (issue 16) on the discrete models: statistical agreement with exact moments (Ising: systematic, random and
checkerboard scans; Potts: marginals; RBM: the distribution of v over all states), bit-identical seeded runs, sweeps
that never call the model's value-checking methods, and bad input refused with an error naming the argument before the
model is evaluated. Tolerances are Monte-Carlo standard errors of independent chains (each chain's last state)."""
import math

import pytest
import torch
from torch import nn

from torchebm_nb.models import RBM, IsingModel, PottsModel
from torchebm_nb.samplers.gibbs import GibbsSampler
from counting import CountingIsing, CountingPotts, CountingRBM

Z_MAX = 4.5   # largest |z| allowed over every statistic of a test (≤ 66 statistics: a false alarm ~ 5e-4)


def _couplings(n, scale, seed):
    g = torch.Generator().manual_seed(seed)
    J = (torch.randn(n, n, generator=g, dtype=torch.float64) * scale).triu(1)
    return J + J.T, torch.randn(n, generator=g, dtype=torch.float64) * 0.3


def _random_rbm(seed=3, cls=RBM):
    g = torch.Generator().manual_seed(seed)
    rbm = cls(6, 4, init_std=1.0, generator=g)
    with torch.no_grad():
        rbm.visible_bias.normal_(generator=g)
        rbm.hidden_bias.normal_(generator=g)
    return rbm


def _ising_z_scores(model, samples):
    "z-scores of the empirical E[s_i] and E[s_i s_j] (i < j) of independent samples against the exact moments."
    mean, corr = model.exact_moments()
    s, n = samples.to(torch.float64), samples.shape[0]
    i, j = torch.triu_indices(s.shape[1], s.shape[1], 1)
    z_mean = (s.mean(0) - mean) / ((1 - mean ** 2) / n).sqrt()
    z_corr = ((s.T @ s / n)[i, j] - corr[i, j]) / ((1 - corr[i, j] ** 2) / n).sqrt()
    return torch.cat([z_mean, z_corr])


@pytest.mark.parametrize('scan', ['systematic', 'random'])
def test_dense_ising_moments(scan):
    J, h = _couplings(11, 0.3, seed=0)
    model = IsingModel(J, h)
    samples = GibbsSampler(model, scan=scan).sample(n_samples=4000, n_steps=40, generator=11)
    z = _ising_z_scores(model, samples)
    assert z.abs().max() < Z_MAX, z


def test_lattice_ising_checkerboard_moments():
    model = IsingModel.lattice(4, h=0.1, temperature=3.0)
    samples = GibbsSampler(model, scan='checkerboard').sample(n_samples=4000, n_steps=100, generator=12)
    z = _ising_z_scores(model, samples)
    assert z.abs().max() < Z_MAX, z


@pytest.mark.parametrize('scan', ['systematic', 'random', 'checkerboard'])
def test_potts_marginals(scan):
    if scan == 'checkerboard':   # a bipartite graph: the periodic 4×2 lattice
        model = PottsModel.lattice(4, 2, J=0.7, n_states=3)
    else:
        J, _ = _couplings(8, 0.4, seed=1)
        field = torch.randn(8, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.5
        model = PottsModel(J, field, n_states=3)
    n = 4000
    samples = GibbsSampler(model, scan=scan).sample(n_samples=n, n_steps=40, generator=13)
    exact = model.exact_marginals()
    empirical = torch.nn.functional.one_hot(samples.long(), 3).to(torch.float64).mean(0)
    z = (empirical - exact) / (exact * (1 - exact) / n).sqrt()
    assert z.abs().max() < Z_MAX, z


def _rbm_total_variation(rbm, n, seed):
    v = GibbsSampler(rbm).sample(n_samples=n, n_steps=50, generator=seed)
    states = ((torch.arange(64)[:, None] >> torch.arange(6)) & 1).float()
    exact = rbm.log_prob(states).detach().exp()
    empirical = torch.bincount((v * 2 ** torch.arange(6)).sum(1).long(), minlength=64).to(torch.float64) / n
    expected = 0.5 * (2 * exact * (1 - exact) / (math.pi * n)).sqrt().sum()   # E[TV] of n exact draws (normal approx.)
    return 0.5 * (empirical - exact).abs().sum(), expected


def test_rbm_block_gibbs_matches_exact_distribution():
    rbm = _random_rbm()
    tv_small, expected_small = _rbm_total_variation(rbm, 2000, seed=21)
    tv_large, expected_large = _rbm_total_variation(rbm, 32000, seed=22)
    assert 0.5 * expected_small < tv_small < 1.6 * expected_small, (tv_small, expected_small)
    assert 0.5 * expected_large < tv_large < 1.6 * expected_large, (tv_large, expected_large)
    assert 2 < tv_small / tv_large < 8   # 16 times the samples: about 4 times smaller, as 1/√n


MODELS = {'systematic': lambda: IsingModel(*_couplings(7, 0.3, seed=4)),
          'random': lambda: PottsModel(_couplings(7, 0.3, seed=4)[0], n_states=3),
          'checkerboard': lambda: IsingModel.lattice(4),
          'block': lambda: _random_rbm()}


@pytest.mark.parametrize('scan', list(MODELS))
def test_seeded_runs_are_bit_identical(scan):
    sampler = GibbsSampler(MODELS[scan](), scan=scan)
    first = sampler.sample(n_samples=8, n_steps=6, thin=2, return_trajectory=True, generator=5)
    again = sampler.sample(n_samples=8, n_steps=6, thin=2, return_trajectory=True, generator=torch.Generator().manual_seed(5))
    other = sampler.sample(n_samples=8, n_steps=6, thin=2, return_trajectory=True, generator=6)
    assert first.shape == (8, 3, sampler.n_sites)
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize('scan', ['systematic', 'random', 'checkerboard'])
def test_pairwise_sweeps_never_call_the_checked_methods(scan):
    "No host sync per sweep: the fields come from the couplings, the diagnostics' energies from the state."
    ising = CountingIsing.lattice(4)
    out, diagnostics = GibbsSampler(ising, scan=scan).sample(n_samples=40, n_steps=12, return_diagnostics=True, generator=0)
    potts = CountingPotts.lattice(2, 4)
    GibbsSampler(potts, scan=scan).sample(n_samples=40, n_steps=12, return_diagnostics=True, generator=0)
    assert (ising.calls, potts.calls) == (0, 0)
    assert torch.allclose(diagnostics['energy'][-1], IsingModel.lattice(4)(out).mean())


def _x(rows):
    return torch.tensor(rows, dtype=torch.float32)


CASES = {  # name: (make model, call on it, exception type, argument named, expected words)
    'x spin 0': (lambda: CountingIsing.lattice(2), lambda m: GibbsSampler(m).sample(torch.zeros(2, 4), n_steps=2),
                 ValueError, 'x', 'site values [-1.0, 1.0]'),
    'x Potts label 3': (lambda: CountingPotts.lattice(2), lambda m: GibbsSampler(m).sample(torch.full((2, 4), 3.0), n_steps=2),
                        ValueError, 'x', 'site values [0.0, 1.0, 2.0]'),
    'x Potts label 1.5': (lambda: CountingPotts.lattice(2), lambda m: GibbsSampler(m).sample(torch.full((2, 4), 1.5), n_steps=2),
                          ValueError, 'x', 'e.g. [1.5'),
    'x RBM 0.5': (lambda: _random_rbm(cls=CountingRBM), lambda m: GibbsSampler(m).sample(torch.full((2, 6), 0.5), n_steps=2),
                  ValueError, 'x', 'site values [0.0, 1.0]'),
    'x width 5 for 4 sites': (lambda: CountingIsing.lattice(2), lambda m: GibbsSampler(m).sample(torch.ones(2, 5), n_steps=2),
                              ValueError, 'x', 'shape (B, 4)'),
    'x integer labels': (lambda: CountingPotts.lattice(2),
                         lambda m: GibbsSampler(m).sample(torch.zeros(2, 4, dtype=torch.long), n_steps=2),
                         TypeError, 'x', 'floating'),
    'dim 5 for 4 sites': (lambda: CountingIsing.lattice(2), lambda m: GibbsSampler(m).sample(dim=5, n_steps=2),
                          ValueError, 'dim', 'got 5'),
    'n_steps -1': (lambda: CountingIsing.lattice(2), lambda m: GibbsSampler(m).sample(n_samples=2, n_steps=-1),
                   ValueError, 'n_steps', '-1'),
    'checkerboard, 3×3 periodic': (lambda: CountingIsing.lattice(3), lambda m: GibbsSampler(m, scan='checkerboard'),
                                   ValueError, 'scan', 'bipartite'),
    'checkerboard, dense': (lambda: CountingPotts(_couplings(5, 0.3, 0)[0]), lambda m: GibbsSampler(m, scan='checkerboard'),
                            ValueError, 'scan', 'bipartite'),
    'scan metropolis': (lambda: CountingIsing.lattice(2), lambda m: GibbsSampler(m, scan='metropolis'),
                        ValueError, 'scan', "'metropolis'"),
    'scan Systematic': (lambda: CountingIsing.lattice(2), lambda m: GibbsSampler(m, scan='Systematic'),
                        ValueError, 'scan', 'one of'),
    'scan 1': (lambda: CountingIsing.lattice(2), lambda m: GibbsSampler(m, scan=1), TypeError, 'scan', 'got int'),
    'block on Ising': (lambda: CountingIsing.lattice(2), lambda m: GibbsSampler(m, scan='block'),
                       ValueError, 'scan', 'RBM'),
    'systematic on RBM': (lambda: _random_rbm(cls=CountingRBM), lambda m: GibbsSampler(m, scan='systematic'),
                          ValueError, 'scan', "scan='block'"),
    'model continuous': (lambda: nn.Linear(3, 1), lambda m: GibbsSampler(m), TypeError, 'model', 'Linear'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_input_is_refused_before_the_model_is_evaluated(case):
    make, call, error, name, words = CASES[case]
    model = make()
    with pytest.raises(error) as caught:
        call(model)
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
    assert getattr(model, 'calls', 0) == 0


def test_sensible_input_still_works():
    potts = PottsModel.lattice(2)
    assert GibbsSampler(potts).sample(torch.tensor([[0.0, 1.0, 2.0, 0.0]]), n_steps=2, generator=0).shape == (1, 4)
    assert GibbsSampler(IsingModel.lattice(2)).sample(dim=4, n_samples=3, n_steps=1, generator=0).abs().eq(1).all()
    assert GibbsSampler(IsingModel.lattice(2), scan='checkerboard').sample(dim=(4,), n_samples=3, n_steps=0).shape == (3, 4)
    v = GibbsSampler(_random_rbm()).sample(_x([[0, 1, 0, 1, 1, 0]]), n_steps=3, generator=0)
    assert set(v.flatten().tolist()) <= {0.0, 1.0}
