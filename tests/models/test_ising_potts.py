"""Ising and Potts models (issue 16): exact log partition functions by enumeration and by the transfer matrix against
brute force and closed forms, the q = 2 Potts ↔ Ising mapping, conditionals as ratios of joint probabilities, and bad
input refused with an error naming the argument before the energy is evaluated."""
import itertools
import math

import pytest
import torch

from torchebm_nb.models.lattice import IsingModel, PottsModel, lattice_couplings

F64 = torch.float64


def _brute_log_z(J, h, T, values, pair, single):
    "log Z by a plain double loop over sites, for every state (independent of the library's vectorised code)."
    D = J.shape[0]
    log_w = []
    for state in itertools.product(values, repeat=D):
        e = sum(J[i, j].item() * pair(state[i], state[j]) for i in range(D) for j in range(i + 1, D))
        e += sum(single(h, i, state[i]) for i in range(D))
        log_w.append(e / T)
    return torch.logsumexp(torch.tensor(log_w, dtype=F64), 0).item()


def _ising_brute(model):
    J, h = model.couplings.to(F64), model.field.to(F64)
    return _brute_log_z(J, h, model.temperature, (-1, 1), lambda a, b: a * b, lambda h, i, a: h[i].item() * a)


def _potts_brute(model):
    J, h = model.couplings.to(F64), model.field.to(F64)
    return _brute_log_z(J, h, model.temperature, range(model.n_states), lambda a, b: float(a == b),
                        lambda h, i, a: h[i, a].item())


def _strip_couplings(L, W, g):
    "Random non-uniform couplings on the L×W periodic strip's bonds (plus diagonal ones inside a row)."
    mask = lattice_couplings(L, W) != 0
    for r in range(L):
        for a in range(W):
            for b in range(W):
                if a != b: mask[r * W + a, r * W + b] = True
    J = torch.randn(L * W, L * W, generator=g, dtype=F64) * mask
    return (J + J.T) / 2


@pytest.mark.parametrize('L,W', [(2, 2), (3, 3), (4, 4), (3, 4), (2, 5), (5, 2)])
@pytest.mark.parametrize('temperature', [0.7, 2.269, 5.0])
def test_ising_lattice_transfer_matches_brute_force(L, W, temperature):
    model = IsingModel.lattice(L, W, J=1.0, h=0.3, temperature=temperature, dtype=F64)
    brute = _ising_brute(model) if L * W <= 9 else model.log_partition('enumerate')
    assert abs(model.log_partition('transfer') - brute) < 1e-10
    assert abs(model.log_partition('enumerate') - brute) < 1e-10


@pytest.mark.parametrize('L,W', [(2, 3), (3, 3), (4, 2)])
def test_ising_non_uniform_strip_transfer_matches_brute_force(L, W):
    g = torch.Generator().manual_seed(L * 10 + W)
    J, h = _strip_couplings(L, W, g), torch.randn(L * W, generator=g, dtype=F64)
    model = IsingModel(J, h, temperature=1.3, lattice_shape=(L, W), dtype=F64)
    assert abs(model.log_partition('transfer') - _ising_brute(model)) < 1e-10


def test_enumeration_matches_brute_force_for_dense_couplings():
    g = torch.Generator().manual_seed(3)
    J = torch.randn(7, 7, generator=g, dtype=F64); J = (J + J.T) * (1 - torch.eye(7, dtype=F64))
    model = IsingModel(J, torch.randn(7, generator=g, dtype=F64), temperature=0.9, dtype=F64)
    assert abs(model.log_partition() - _ising_brute(model)) < 1e-10


@pytest.mark.parametrize('L,W', [(2, 1), (3, 1), (7, 1), (16, 1), (40, 1), (1, 2), (1, 7), (1, 16)])
@pytest.mark.parametrize('beta_j', [0.2, 1.0, -0.7])
def test_periodic_chain_closed_form(L, W, beta_j):
    "Z = (2 cosh βJ)^N + (2 sinh βJ)^N at h = 0, as an N×1 column (N = 40 only by the transfer matrix) or a 1×N row."
    N = L * W
    model = IsingModel.lattice(L, W, J=beta_j, temperature=1.0, dtype=F64)
    exact = math.log((2 * math.cosh(beta_j)) ** N + (2 * math.sinh(beta_j)) ** N)
    assert abs(model.log_partition() - exact) < 1e-10 * max(1.0, abs(exact))


@pytest.mark.parametrize('N', [2, 5, 12, 40])
@pytest.mark.parametrize('J,h,T', [(1.0, 0.5, 1.0), (-0.5, 0.3, 0.7), (0.8, -1.2, 2.0)])
def test_periodic_chain_with_field_eigenvalues(N, J, h, T):
    "Z = λ₊^N + λ₋^N with λ± = e^{βJ} cosh βh ± √(e^{2βJ} sinh² βh + e^{−2βJ})."
    b = 1 / T
    root = math.sqrt(math.exp(2 * b * J) * math.sinh(b * h) ** 2 + math.exp(-2 * b * J))
    lam_plus, lam_minus = math.exp(b * J) * math.cosh(b * h) + root, math.exp(b * J) * math.cosh(b * h) - root
    exact = math.log(lam_plus ** N + lam_minus ** N)
    model = IsingModel.lattice(N, 1, J=J, h=h, temperature=T, dtype=F64)
    assert abs(model.log_partition() - exact) < 1e-10 * max(1.0, abs(exact))


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_potts_two_states_is_ising_with_half_couplings(seed):
    """δ(σᵢ, σⱼ) = (1 + sᵢsⱼ)/2 with s = 2σ − 1, so Potts(J, h) = Ising(J/2, (h₁ − h₀)/2) − C/T with
    C = ½ Σ_{i<j} Jᵢⱼ + ½ Σᵢ (hᵢ₀ + hᵢ₁): energies differ by −C/T and log Z_Potts = log Z_Ising + C/T."""
    g = torch.Generator().manual_seed(seed)
    J = torch.randn(8, 8, generator=g, dtype=F64); J = (J + J.T) * (1 - torch.eye(8, dtype=F64))
    h, T = torch.randn(8, 2, generator=g, dtype=F64), 0.6 + seed
    potts = PottsModel(J, h, n_states=2, temperature=T, dtype=F64)
    ising = IsingModel(J / 2, (h[:, 1] - h[:, 0]) / 2, temperature=T, dtype=F64)
    C = 0.5 * torch.triu(J, 1).sum().item() + 0.5 * h.sum().item()
    sigma = torch.randint(0, 2, (20, 8), generator=g)
    assert torch.allclose(potts(sigma), ising(2.0 * sigma - 1) - C / T, atol=1e-12)
    assert abs(potts.log_partition() - (ising.log_partition() + C / T)) < 1e-10


def test_potts_two_states_lattice_by_transfer_matrix():
    potts = PottsModel.lattice(6, n_states=2, J=1.0, temperature=1.5, dtype=F64)   # 2^36 states: transfer only
    ising = IsingModel.lattice(6, J=0.5, temperature=1.5, dtype=F64)
    assert abs(potts.log_partition() - (ising.log_partition() + 0.5 * 72 / 1.5)) < 1e-10   # 72 bonds


@pytest.mark.parametrize('q,L,W', [(3, 3, 3), (3, 2, 4), (4, 2, 3)])
def test_potts_transfer_matches_brute_force(q, L, W):
    g = torch.Generator().manual_seed(q * 100 + L * 10 + W)
    J, h = _strip_couplings(L, W, g), torch.randn(L * W, q, generator=g, dtype=F64)
    model = PottsModel(J, h, n_states=q, temperature=0.8, lattice_shape=(L, W), dtype=F64)
    brute = _potts_brute(model)
    assert abs(model.log_partition('transfer') - brute) < 1e-10
    assert abs(model.log_partition('enumerate') - brute) < 1e-10


def test_ising_conditionals_are_ratios_of_joint_probabilities():
    g = torch.Generator().manual_seed(5)
    J = torch.randn(6, 6, generator=g, dtype=F64); J = (J + J.T) * (1 - torch.eye(6, dtype=F64))
    model = IsingModel(J, torch.randn(6, generator=g, dtype=F64), temperature=1.7, dtype=F64)
    s = torch.randint(0, 2, (10, 6), generator=g).double() * 2 - 1
    p_up = torch.sigmoid(2 * model.local_fields(s) / model.temperature)
    for i in range(6):
        up, down = s.clone(), s.clone(); up[:, i], down[:, i] = 1, -1
        ratio = torch.exp(-model(up)) / (torch.exp(-model(up)) + torch.exp(-model(down)))
        assert torch.allclose(p_up[:, i], ratio, atol=1e-12)


def test_potts_conditionals_are_ratios_of_joint_probabilities():
    g = torch.Generator().manual_seed(6)
    J = torch.randn(5, 5, generator=g, dtype=F64); J = (J + J.T) * (1 - torch.eye(5, dtype=F64))
    model = PottsModel(J, torch.randn(5, 4, generator=g, dtype=F64), n_states=4, temperature=0.9, dtype=F64)
    sigma = torch.randint(0, 4, (10, 5), generator=g)
    probs = torch.softmax(model.conditional_logits(sigma), -1)
    for i in range(5):
        energies = []
        for a in range(4):
            other = sigma.clone(); other[:, i] = a
            energies.append(model(other))
        assert torch.allclose(probs[:, i], torch.softmax(-torch.stack(energies, 1), 1), atol=1e-12)


def test_exact_moments_and_marginals_match_brute_force():
    g = torch.Generator().manual_seed(7)
    model = IsingModel(_strip_couplings(2, 3, g), torch.randn(6, generator=g, dtype=F64), temperature=1.1, dtype=F64)
    states = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=6)), dtype=F64)
    p = torch.softmax(-model(states), 0)
    mean, corr = model.exact_moments()
    assert torch.allclose(mean, p @ states, atol=1e-12)
    assert torch.allclose(corr, torch.einsum('n,ni,nj->ij', p, states, states), atol=1e-12)
    potts = PottsModel(_strip_couplings(2, 2, g), torch.randn(4, 3, generator=g, dtype=F64), n_states=3, dtype=F64)
    labels = torch.tensor(list(itertools.product(range(3), repeat=4)))
    p = torch.softmax(-potts(labels), 0)
    marginals = torch.einsum('n,nia->ia', p, torch.nn.functional.one_hot(labels, 3).to(F64))
    assert torch.allclose(potts.exact_marginals(), marginals, atol=1e-12)


# ---- bad input -------------------------------------------------------------------------------------------------

def _counted(model):
    "The model with its energy evaluation counted (`model.calls`)."
    model.calls, energy = 0, model._energy
    def counting(*args):
        model.calls += 1
        return energy(*args)
    model._energy = counting
    return model


ISING, POTTS = _counted(IsingModel.lattice(3)), _counted(PottsModel.lattice(3, n_states=3))
SYMMETRIC = torch.tensor([[0.0, 1.0], [1.0, 0.0]])

CASES = {  # name: (call, exception type, argument named, model evaluated by the call or None)
    'Ising couplings not symmetric': (lambda: IsingModel(torch.tensor([[0.0, 1.0], [2.0, 0.0]])), ValueError, 'couplings', None),
    'Ising couplings diagonal': (lambda: IsingModel(torch.eye(3)), ValueError, 'couplings', None),
    'Ising couplings not square': (lambda: IsingModel(torch.zeros(2, 3)), ValueError, 'couplings', None),
    'Ising couplings NaN': (lambda: IsingModel(torch.tensor([[0.0, math.nan], [math.nan, 0.0]])), ValueError, 'couplings', None),
    'Ising couplings a list': (lambda: IsingModel([[0.0, 1.0], [1.0, 0.0]]), TypeError, 'couplings', None),
    'Ising couplings vs field size': (lambda: IsingModel(SYMMETRIC, torch.zeros(3)), ValueError, 'couplings', None),
    'Ising field 2-D': (lambda: IsingModel(SYMMETRIC, torch.zeros(2, 1)), ValueError, 'field', None),
    'Ising field inf': (lambda: IsingModel(SYMMETRIC, torch.tensor([math.inf, 0.0])), ValueError, 'field', None),
    'Ising neither': (lambda: IsingModel(), ValueError, 'couplings', None),
    'temperature 0': (lambda: IsingModel(SYMMETRIC, temperature=0.0), ValueError, 'temperature', None),
    'temperature -1': (lambda: IsingModel(SYMMETRIC, temperature=-1.0), ValueError, 'temperature', None),
    'temperature NaN': (lambda: IsingModel(SYMMETRIC, temperature=math.nan), ValueError, 'temperature', None),
    'temperature str': (lambda: IsingModel(SYMMETRIC, temperature='1'), TypeError, 'temperature', None),
    'lattice L=0': (lambda: IsingModel.lattice(0), ValueError, 'L', None),
    'lattice W=1.5': (lambda: IsingModel.lattice(3, 1.5), TypeError, 'W', None),
    'lattice h NaN': (lambda: IsingModel.lattice(3, h=math.nan), ValueError, 'h', None),
    'lattice_shape mismatch': (lambda: IsingModel(SYMMETRIC, lattice_shape=(3, 1)), ValueError, 'lattice_shape', None),
    'spins 0': (lambda: ISING(torch.zeros(2, 9)), ValueError, 's', ISING),
    'spins 0.5': (lambda: ISING(torch.full((2, 9), 0.5)), ValueError, 's', ISING),
    'spins wrong D': (lambda: ISING(torch.ones(2, 8)), ValueError, 's', ISING),
    'spins 1-D': (lambda: ISING(torch.ones(9)), ValueError, 's', ISING),
    'spins empty': (lambda: ISING(torch.ones(0, 9)), ValueError, 's', ISING),
    'spins bool': (lambda: ISING(torch.ones(2, 9, dtype=torch.bool)), TypeError, 's', ISING),
    'spins a list': (lambda: ISING([[1.0] * 9]), TypeError, 's', ISING),
    'local_fields spins 0': (lambda: ISING.local_fields(torch.zeros(2, 9)), ValueError, 's', ISING),
    'log_partition method': (lambda: ISING.log_partition('exact'), ValueError, 'method', ISING),
    'log_partition too many states': (lambda: IsingModel.lattice(5).log_partition('enumerate'), ValueError, 'log_partition', None),
    'log_partition too wide': (lambda: IsingModel.lattice(13, 13).log_partition(), ValueError, 'method', None),
    'transfer without lattice': (lambda: IsingModel(SYMMETRIC).log_partition('transfer'), ValueError, 'method', None),
    'transfer far rows': (lambda: IsingModel(torch.ones(4, 4) - torch.eye(4), lattice_shape=(4, 1)).log_partition('transfer'),
                          ValueError, 'method', None),
    'exact_moments too many states': (lambda: IsingModel.lattice(5).exact_moments(), ValueError, 'exact_average', None),
    'exact_average not callable': (lambda: ISING.exact_average(3), TypeError, 'statistic', ISING),
    'Potts n_states 1': (lambda: PottsModel(SYMMETRIC, n_states=1), ValueError, 'n_states', None),
    'Potts n_states 2.0': (lambda: PottsModel(SYMMETRIC, n_states=2.0), TypeError, 'n_states', None),
    'Potts field shape': (lambda: PottsModel(SYMMETRIC, torch.zeros(2, 2), n_states=3), ValueError, 'field', None),
    'Potts couplings not symmetric': (lambda: PottsModel(torch.tensor([[0.0, 1.0], [0.0, 0.0]])), ValueError, 'couplings', None),
    'Potts labels 3': (lambda: POTTS(torch.full((2, 9), 3)), ValueError, 'sigma', POTTS),
    'Potts labels -1': (lambda: POTTS(torch.full((2, 9), -1)), ValueError, 'sigma', POTTS),
    'Potts labels float': (lambda: POTTS(torch.zeros(2, 9)), TypeError, 'sigma', POTTS),
    'Potts labels wrong D': (lambda: POTTS(torch.zeros(2, 4, dtype=torch.long)), ValueError, 'sigma', POTTS),
    'Potts conditional labels 5': (lambda: POTTS.conditional_logits(torch.full((1, 9), 5)), ValueError, 'sigma', POTTS),
    'Potts too many states': (lambda: PottsModel.lattice(5, n_states=3).log_partition('enumerate'), ValueError, 'log_partition', None),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_input_is_refused_naming_the_argument(case):
    call, kind, name, model = CASES[case]
    if model is not None: model.calls = 0
    with pytest.raises(kind) as caught:
        call()
    message = str(caught.value)
    assert type(caught.value) is kind and message.startswith(name), message
    if model is not None: assert model.calls == 0


def test_sensible_values_still_work():
    ISING.calls = POTTS.calls = 0
    assert ISING(torch.ones(2, 9)).shape == (2,) and ISING(torch.ones(2, 9, dtype=torch.long)).shape == (2,)
    assert POTTS(torch.zeros(2, 9, dtype=torch.long)).shape == (2,)
    assert ISING.calls == 2 and POTTS.calls == 1
    assert IsingModel(field=torch.zeros(3)).log_partition() == pytest.approx(3 * math.log(2), abs=1e-12)
    assert IsingModel(SYMMETRIC, temperature=1e-3).temperature == 1e-3
    assert PottsModel(SYMMETRIC, n_states=2).log_partition() == pytest.approx(math.log(2 * math.e + 2), abs=1e-6)
    assert IsingModel.lattice(13, 8, temperature=2.0).log_partition() > 0          # 2^104 states, by the transfer matrix
