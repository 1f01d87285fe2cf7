"""The stencil path of GibbsSampler's checkerboard scan (issue 16): on a periodic L×W lattice with even sides ≥ 3 and
nearest-neighbour couplings only, the local fields come from per-bond weights and `torch.roll`, not from the dense
(D, D) couplings. Checked here: the stencil fields equal the dense ones (random non-uniform bonds and fields, Ising and
Potts, L ≠ W); which models take the stencil and which the dense path; the chains equal the dense path's for the same
seed; the moments match exact enumeration (4×4 Ising) or the transfer matrix (4×4 and 4×6 Potts, q = 3: the mean
energy as a derivative of log Z, and the symmetric marginals); seeded runs are bit-identical. Tolerances are Monte-Carlo
standard errors of independent chains (each chain's last state)."""
import pytest
import torch

from torchebm_nb.models import IsingModel, PottsModel
from torchebm_nb.samplers.gibbs import (GibbsSampler, lattice_energy, lattice_tables, stencil_fields)

Z_MAX = 4.5   # largest |z| allowed over every statistic of a test (≤ 136 statistics: a false alarm ~ 1e-3)


def _rough_couplings(L, W, seed, keep=1.0):
    "Random non-uniform nearest-neighbour couplings of the periodic L×W lattice (a fraction `keep` of the bonds)."
    g = torch.Generator().manual_seed(seed)
    mask = (IsingModel.lattice(L, W).couplings != 0) & (torch.rand(L * W, L * W, generator=g) < keep)
    J = torch.where(mask, torch.randn(L * W, L * W, generator=g, dtype=torch.float64) * 0.4, 0.0).triu(1)
    return J + J.T, g


def _rough_ising(L, W, seed, keep=1.0):
    J, g = _rough_couplings(L, W, seed, keep)
    return IsingModel(J, torch.randn(L * W, generator=g, dtype=torch.float64) * 0.3, lattice_shape=(L, W))


def _rough_potts(L, W, seed, keep=1.0):
    J, g = _rough_couplings(L, W, seed, keep)
    field = torch.randn(L * W, 3, generator=g, dtype=torch.float64) * 0.3
    return PottsModel(J, field, n_states=3, lattice_shape=(L, W))


@pytest.mark.parametrize('shape', [(4, 6), (6, 4), (8, 4)])
@pytest.mark.parametrize('keep', [1.0, 0.7])
def test_stencil_fields_equal_dense_fields(shape, keep):
    L, W = shape
    g = torch.Generator().manual_seed(1)
    ising, potts = _rough_ising(L, W, 2, keep), _rough_potts(L, W, 3, keep)
    spins = torch.randint(0, 2, (5, L * W), generator=g).double() * 2 - 1
    dense = spins @ ising.couplings.double() + ising.field.double()
    stencil = stencil_fields(spins.view(5, L, W), lattice_tables(ising, spins)).reshape(5, L * W)
    assert torch.allclose(stencil, dense, rtol=0, atol=1e-12)
    features = torch.nn.functional.one_hot(torch.randint(0, 3, (5, L * W), generator=g), 3).double()
    dense = torch.einsum('ij,bjk->bik', potts.couplings.double(), features) + potts.field.double()
    stencil = stencil_fields(features.view(5, L, W, 3), lattice_tables(potts, spins)).reshape(5, L * W, 3)
    assert torch.allclose(stencil, dense, rtol=0, atol=1e-12)


def test_lattice_energy_equals_the_models():
    ising, potts = _rough_ising(4, 6, 4), _rough_potts(6, 4, 5)
    g = torch.Generator().manual_seed(6)
    spins, labels = torch.randint(0, 2, (7, 24), generator=g).double() * 2 - 1, torch.randint(0, 3, (7, 24), generator=g)
    e = lattice_energy(spins.view(7, 4, 6), lattice_tables(ising, spins), ising.temperature)
    assert torch.allclose(e, ising(spins).double(), atol=1e-4)
    one_hot = torch.nn.functional.one_hot(labels, 3).double().view(7, 6, 4, 3)
    assert torch.allclose(lattice_energy(one_hot, lattice_tables(potts, spins), potts.temperature), potts(labels).double(), atol=1e-4)


def _with_long_range_bond():
    J = IsingModel.lattice(4, 6).couplings.clone()
    J[0, 3] = J[3, 0] = 0.5   # sites (0, 0) and (0, 3): not neighbours, of different colours (still bipartite)
    return IsingModel(J, lattice_shape=(4, 6))


PATHS = {  # name: (make the model, scan, the stencil expected)
    'Ising 4×6': (lambda: IsingModel.lattice(4, 6), 'checkerboard', True),
    'Potts 6×4, rough bonds': (lambda: _rough_potts(6, 4, 7), 'checkerboard', True),
    'Ising 4×4, 30 % of bonds missing': (lambda: _rough_ising(4, 4, 8, keep=0.7), 'checkerboard', True),
    'Ising 2×4 (L = 2)': (lambda: IsingModel.lattice(2, 4), 'checkerboard', False),
    'Ising 4×4 without lattice_shape': (lambda: IsingModel(IsingModel.lattice(4).couplings), 'checkerboard', False),
    'Ising 4×6, a long-range bond': (_with_long_range_bond, 'checkerboard', False),
    'Ising 4×6, systematic scan': (lambda: IsingModel.lattice(4, 6), 'systematic', False),
}


@pytest.mark.parametrize('case', list(PATHS))
def test_which_path_is_taken(case):
    make, scan, stencil = PATHS[case]
    model = make()
    sampler = GibbsSampler(model, scan=scan)
    x = sampler.initial_state(n_samples=3, generator=torch.Generator().manual_seed(0))
    state = sampler.init(x, sampler.context(None, None, 0))
    assert (state.lattice is not None) == stencil
    assert sampler.sample(x, n_steps=2, generator=0).shape == x.shape   # both paths run


def test_odd_sides_keep_the_dense_path():
    "An odd periodic side has odd cycles: no checkerboard at all, and no stencil tables."
    model = IsingModel.lattice(3, 4)
    assert lattice_tables(model, torch.zeros(1)) is None
    with pytest.raises(ValueError, match='bipartite'):
        GibbsSampler(model, scan='checkerboard')


@pytest.mark.parametrize('kind', ['ising', 'potts'])
def test_stencil_chains_equal_dense_chains(kind):
    "Same seed, same uniforms: the stencil path and the dense path (the model without lattice_shape) draw the same chains."
    model = _rough_ising(4, 6, 9) if kind == 'ising' else _rough_potts(4, 6, 10)
    cls, extra = (IsingModel, {}) if kind == 'ising' else (PottsModel, dict(n_states=3))
    dense_model = cls(model.couplings, model.field, temperature=model.temperature, **extra)
    stencil, dense = GibbsSampler(model, scan='checkerboard', dtype=torch.float64), GibbsSampler(dense_model, scan='checkerboard', dtype=torch.float64)
    a = stencil.sample(n_samples=64, n_steps=5, return_trajectory=True, generator=3)
    b = dense.sample(n_samples=64, n_steps=5, return_trajectory=True, generator=3)
    assert torch.equal(a, b)


def test_stencil_ising_moments_match_enumeration():
    model = _rough_ising(4, 4, 11)
    samples = GibbsSampler(model, scan='checkerboard').sample(n_samples=4000, n_steps=60, generator=12).double()
    mean, corr = model.exact_moments()
    n, (i, j) = samples.shape[0], torch.triu_indices(16, 16, 1)
    z_mean = (samples.mean(0) - mean) / ((1 - mean ** 2) / n).sqrt()
    z_corr = ((samples.T @ samples / n)[i, j] - corr[i, j]) / ((1 - corr[i, j] ** 2) / n).sqrt()
    z = torch.cat([z_mean, z_corr])
    assert z.abs().max() < Z_MAX, z


@pytest.mark.parametrize('shape', [(4, 4), (4, 6)])
def test_stencil_potts_matches_the_transfer_matrix(shape):
    "Mean of the coupling sum S = Σ J δ(σᵢ, σⱼ) = −T·E equals d log Z / dβ (central difference of the exact log Z)."
    L, W = shape
    T, eps, n = 1.6, 1e-4, 4000
    model = PottsModel.lattice(L, W, J=1.0, n_states=3, temperature=T)
    samples = GibbsSampler(model, scan='checkerboard').sample(n_samples=n, n_steps=80, generator=14)
    S = -T * model(samples.long()).double()
    log_z = lambda t: float(PottsModel.lattice(L, W, J=1.0, n_states=3, temperature=t).log_partition())
    exact = (log_z(1 / (1 / T + eps)) - log_z(1 / (1 / T - eps))) / (2 * eps)
    z_energy = (S.mean() - exact) / (S.std() / n ** 0.5)
    marginals = torch.nn.functional.one_hot(samples.long(), 3).double().mean(0)   # no field: 1/3 by symmetry
    z_marginals = (marginals - 1 / 3) / ((2 / 9) / n) ** 0.5
    assert abs(float(z_energy)) < Z_MAX, (float(S.mean()), exact)
    assert z_marginals.abs().max() < Z_MAX, z_marginals


@pytest.mark.parametrize('kind', ['ising', 'potts'])
def test_seeded_stencil_runs_are_bit_identical(kind):
    model = IsingModel.lattice(4, 6, temperature=2.3) if kind == 'ising' else _rough_potts(6, 4, 15)
    sampler = GibbsSampler(model, scan='checkerboard')
    first = sampler.sample(n_samples=16, n_steps=6, return_trajectory=True, generator=5)
    again = sampler.sample(n_samples=16, n_steps=6, return_trajectory=True, generator=torch.Generator().manual_seed(5))
    other = sampler.sample(n_samples=16, n_steps=6, return_trajectory=True, generator=6)
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_stencil_diagnostics_energy_is_the_models():
    model = _rough_potts(4, 6, 16)
    out, diagnostics = GibbsSampler(model, scan='checkerboard').sample(n_samples=32, n_steps=4, return_diagnostics=True,
                                                                       generator=0)
    assert torch.allclose(diagnostics['energy'][-1].double(), model(out.long()).double().mean(), atol=1e-4)
