"""Pseudo-likelihood and ratio matching for discrete models (issue 16): exact values and gradients against enumeration,
consistency of both estimators on exact Ising samples, chunking and site subsets, and bad input refused with an error
naming the argument before the model is evaluated."""
import math

import pytest
import torch
from torch import nn

from torchebm_nb.losses.discrete import PseudoLikelihoodLoss, RatioMatchingLoss
from torchebm_nb.models import IsingModel, PottsModel, RBM


def random_couplings(D, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    J = torch.randn(D, D, generator=gen, dtype=torch.float64) * scale
    return torch.triu(J, 1) + torch.triu(J, 1).T, torch.randn(D, generator=gen, dtype=torch.float64) * 0.3


def all_states(D, q=2):
    "Every state as base-q digits (site 0 the lowest), (q^D, D) long; index n is the state number n."
    n = torch.arange(q ** D)[:, None]
    return (n // q ** torch.arange(D)) % q


def state_index(states, q=2):
    return (states.long() * q ** torch.arange(states.shape[1])).sum(-1)


def enumerated_conditionals(model, states_values, data_digits, q):
    "log p(x_i | x_-i) by normalising the joint over all states and summing it over each site's q values."
    log_p = torch.log_softmax(-model(states_values), 0)
    D = data_digits.shape[1]
    out = []
    for i in range(D):
        alternatives = data_digits[:, None, :].repeat(1, q, 1)
        alternatives[:, :, i] = torch.arange(q)
        own = log_p[state_index(data_digits, q)]
        out.append(own - torch.logsumexp(log_p[state_index(alternatives.reshape(-1, D), q)].reshape(-1, q), 1))
    return torch.stack(out, 1)


def spin_model(D=8, seed=0):
    J, h = random_couplings(D, 0.5, seed)
    return IsingModel(J, h, dtype=torch.float64)


def spin_data(D, B, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (B, D), generator=gen)


# ---------------------------------------------------------------- exact values

def test_pseudo_likelihood_equals_enumerated_conditionals():
    model, D = spin_model(8), 8
    digits = spin_data(D, 32, 1)
    exact = enumerated_conditionals(model, all_states(D).double() * 2 - 1, digits, 2)
    loss = PseudoLikelihoodLoss(model)
    x = digits.double() * 2 - 1
    assert torch.allclose(loss.conditional_log_probs(x), exact, rtol=0, atol=1e-10)
    assert abs(loss(x).item() - (-exact.sum(1).mean() / D).item()) < 1e-10


def test_pseudo_likelihood_gradient_equals_enumerated_gradient():
    D = 7
    model = spin_model(D, 2)
    model.couplings.requires_grad_(True)
    model.field_features.requires_grad_(True)
    digits = spin_data(D, 20, 3)
    x = digits.double() * 2 - 1
    grads = torch.autograd.grad(PseudoLikelihoodLoss(model)(x), [model.couplings, model.field_features])
    exact = -enumerated_conditionals(model, all_states(D).double() * 2 - 1, digits, 2).sum(1).mean() / D
    expected = torch.autograd.grad(exact, [model.couplings, model.field_features])
    for g, e in zip(grads, expected):
        assert g.abs().max() > 1e-3
        assert torch.allclose(g, e, rtol=0, atol=1e-10)


def test_binary_pseudo_likelihood_matches_rbm_log_prob():
    "{0,1} states: log p(x_i | x_-i) = log p(x) − logaddexp(log p(x), log p(x̄ⁱ)) with the RBM's exact log_prob."
    rbm = RBM(6, 4, init_std=0.7, generator=5, dtype=torch.float64)
    v = spin_data(6, 16, 4).double()
    flips = v[:, None, :].repeat(1, 6, 1)
    flips[:, range(6), range(6)] = 1 - flips[:, range(6), range(6)]
    own, other = rbm.log_prob(v), rbm.log_prob(flips.reshape(-1, 6)).reshape(16, 6)
    exact = own[:, None] - torch.logaddexp(own[:, None], other)
    loss = PseudoLikelihoodLoss(rbm, states='binary')
    assert torch.allclose(loss.conditional_log_probs(v), exact, rtol=0, atol=1e-10)


def test_potts_pseudo_likelihood_equals_enumeration():
    D, q = 5, 3
    J, _ = random_couplings(D, 0.6, 6)
    field = torch.randn(D, q, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 0.5
    model = PottsModel(J, field, n_states=q, dtype=torch.float64)
    sigma = torch.randint(0, q, (24, D), generator=torch.Generator().manual_seed(8))
    exact = enumerated_conditionals(model, all_states(D, q), sigma, q)
    loss = PseudoLikelihoodLoss(model, states='categorical', n_states=q)
    assert torch.allclose(loss.conditional_log_probs(sigma), exact, rtol=0, atol=1e-10)
    assert abs(loss(sigma).item() - (-exact.mean()).item()) < 1e-10


def test_ratio_matching_equals_brute_force():
    D = 6
    model = spin_model(D, 9)
    x = spin_data(D, 10, 10).double() * 2 - 1
    total = 0.0
    for row in x:
        for i in range(D):
            flipped = row.clone(); flipped[i] = -flipped[i]
            ratio = math.exp(model(flipped[None]).item() - model(row[None]).item())   # p(x)/p(x̄ⁱ)
            total += (1 / (1 + ratio)) ** 2
    assert abs(RatioMatchingLoss(model)(x).item() - total / (10 * D)) < 1e-12


# ---------------------------------------------------------------- consistency

class FittedIsing(nn.Module):
    "Ising energy with learnable couplings (upper triangle) and field, on spins (B, D)."
    def __init__(self, D):
        super().__init__()
        self.upper = nn.Parameter(torch.zeros(D, D, dtype=torch.float64))
        self.field = nn.Parameter(torch.zeros(D, dtype=torch.float64))
    def couplings(self):
        upper = torch.triu(self.upper, 1)
        return upper + upper.T
    def forward(self, s):
        return -(0.5 * torch.einsum('bi,ij,bj->b', s, self.couplings(), s) + s @ self.field)


def exact_samples(model, D, n, seed):
    states = all_states(D).double() * 2 - 1
    probs = torch.softmax(-model(states), 0)
    return states[torch.multinomial(probs, n, replacement=True, generator=torch.Generator().manual_seed(seed))]


def fit(loss_class, data, D):
    fitted = FittedIsing(D)
    loss = loss_class(fitted)
    optimiser = torch.optim.LBFGS(fitted.parameters(), lr=1, max_iter=200, tolerance_grad=1e-10,
                                  tolerance_change=1e-14, line_search_fn='strong_wolfe')
    def closure():
        optimiser.zero_grad()
        value = loss(data)
        value.backward()
        return value
    optimiser.step(closure)
    return fitted.couplings().detach()


@pytest.mark.parametrize('loss_class', [PseudoLikelihoodLoss, RatioMatchingLoss])
def test_fitting_recovers_true_couplings_with_shrinking_error(loss_class):
    D = 5
    truth = spin_model(D, 11)
    errors = {}
    for n in (1000, 64000):
        data = exact_samples(truth, D, n, seed=n)
        errors[n] = (fit(loss_class, data, D) - truth.couplings).abs().max().item()
        # O(1/√n): √n·(largest of the 10 coupling errors) stayed in [3, 9] over 24 fits at n = 1000…64000
        assert errors[n] < 15.0 / math.sqrt(n), (n, errors[n])
    assert errors[64000] < errors[1000] / 2


# ---------------------------------------------------------------- chunks, subsets, placement

class CountingSpins(nn.Module):
    "E(s) = −Σ a·s over spins or bits, counting its calls; s must arrive in the event shape it is given."
    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(-1, 1, 6, dtype=dtype))
        self.calls = 0
    def forward(self, s):
        self.calls += 1
        return -(s.reshape(s.shape[0], -1) * self.weight).sum(-1)


@pytest.mark.parametrize('chunk_size, calls', [(65536, 1), (7, math.ceil(4 * 7 / 7)), (5, math.ceil(28 / 5)), (1, 28)])
def test_chunking_changes_calls_not_value(chunk_size, calls):
    model = CountingSpins(torch.float64)
    x = spin_data(6, 4, 12).double() * 2 - 1
    reference = PseudoLikelihoodLoss(model)(x)
    model.calls = 0
    value = PseudoLikelihoodLoss(model, chunk_size=chunk_size)(x)
    assert model.calls == calls
    assert torch.allclose(value, reference, rtol=0, atol=1e-14)


def test_event_shape_is_kept():
    model = CountingSpins(torch.float64)
    x = (spin_data(6, 3, 13).double() * 2 - 1)
    flat = PseudoLikelihoodLoss(model)(x)
    assert torch.allclose(PseudoLikelihoodLoss(model)(x.reshape(3, 2, 3)), flat, atol=1e-14)


def test_site_subsets_are_seeded_and_unbiased():
    model = spin_model(8, 14)
    x = spin_data(8, 16, 15).double() * 2 - 1
    full = PseudoLikelihoodLoss(model)(x)
    subset = PseudoLikelihoodLoss(model, n_sites_per_call=3)
    assert subset(x, generator=4) == subset(x, generator=4)
    estimates = torch.stack([subset(x, generator=torch.Generator().manual_seed(s)) for s in range(600)])
    assert abs(estimates.mean() - full) < 4 * estimates.std() / math.sqrt(600)
    every_site = RatioMatchingLoss(model, n_sites_per_call=8)(x)   # k ≥ D scores every site
    assert torch.allclose(every_site, RatioMatchingLoss(model)(x), atol=1e-14)


def test_dtype_and_device_follow_the_model():
    assert PseudoLikelihoodLoss(spin_model(4)).dtype == torch.float64
    assert RatioMatchingLoss(CountingSpins(torch.float32)).dtype == torch.float32
    loss = PseudoLikelihoodLoss(CountingSpins(torch.float64))
    assert loss(torch.ones(2, 6, dtype=torch.float32)).dtype == torch.float64   # float32 data cast to the model's dtype


# ---------------------------------------------------------------- bad input

SPINS = torch.tensor([[1., -1., 1., 1., -1., -1.]] * 2)
CASES = {
    # name: (call(model), exception, argument named, expected words)
    'model is a class': (lambda m: PseudoLikelihoodLoss(CountingSpins), TypeError, 'model', 'instantiate'),
    'model is a number': (lambda m: PseudoLikelihoodLoss(3), TypeError, 'model', 'nn.Module'),
    'states unknown': (lambda m: PseudoLikelihoodLoss(m, states='ising'), ValueError, 'states', "'ising'"),
    'states not a str': (lambda m: PseudoLikelihoodLoss(m, states=2), TypeError, 'states', 'int'),
    'n_states for spins': (lambda m: PseudoLikelihoodLoss(m, n_states=3), ValueError, 'n_states', 'must be 2'),
    'n_states too small': (lambda m: PseudoLikelihoodLoss(m, states='categorical', n_states=1), ValueError, 'n_states', '≥ 2'),
    'n_states a float': (lambda m: PseudoLikelihoodLoss(m, states='categorical', n_states=3.0), TypeError, 'n_states', 'int'),
    'n_sites_per_call zero': (lambda m: PseudoLikelihoodLoss(m, n_sites_per_call=0), ValueError, 'n_sites_per_call', '≥ 1'),
    'n_sites_per_call a bool': (lambda m: RatioMatchingLoss(m, n_sites_per_call=True), TypeError, 'n_sites_per_call', 'int'),
    'chunk_size negative': (lambda m: RatioMatchingLoss(m, chunk_size=-1), ValueError, 'chunk_size', '≥ 1'),
    'chunk_size a float': (lambda m: PseudoLikelihoodLoss(m, chunk_size=2.5), TypeError, 'chunk_size', 'int'),
    'dtype not floating': (lambda m: PseudoLikelihoodLoss(m, dtype=torch.int64), ValueError, 'dtype', 'floating'),
    'dtype disagrees': (lambda m: PseudoLikelihoodLoss(m, dtype=torch.float64), ValueError, 'dtype', 'float32'),
    'ratio matching of labels': (lambda m: RatioMatchingLoss(m, states='categorical'), ValueError, 'states', 'binary'),
    'x not a tensor': (lambda m: PseudoLikelihoodLoss(m)(SPINS.tolist()), TypeError, 'x', 'torch.Tensor'),
    'x integer spins': (lambda m: PseudoLikelihoodLoss(m)(SPINS.long()), TypeError, 'x', 'floating'),
    'x empty': (lambda m: RatioMatchingLoss(m)(SPINS[:0]), ValueError, 'x', 'at least one'),
    'x one-dimensional': (lambda m: PseudoLikelihoodLoss(m)(SPINS[0]), ValueError, 'x', '(B, *S)'),
    'x not spins': (lambda m: PseudoLikelihoodLoss(m)(SPINS * 2), ValueError, 'x', '-1 and +1'),
    'x bits given as spins': (lambda m: RatioMatchingLoss(m)((SPINS + 1) / 2), ValueError, 'x', '-1 and +1'),
    'x spins given as bits': (lambda m: RatioMatchingLoss(m, states='binary')(SPINS), ValueError, 'x', '0s and 1s'),
    'x NaN': (lambda m: PseudoLikelihoodLoss(m)(torch.full((2, 6), float('nan'))), ValueError, 'x', 'spins'),
    'labels floating': (lambda m: PseudoLikelihoodLoss(m, states='categorical', n_states=3)(SPINS), TypeError, 'x', 'integer'),
    'labels bool': (lambda m: PseudoLikelihoodLoss(m, states='categorical', n_states=3)(SPINS > 0), TypeError, 'x', 'integer'),
    'labels too large': (lambda m: PseudoLikelihoodLoss(m, states='categorical', n_states=3)(torch.full((2, 6), 3)),
                         ValueError, 'x', '[0, 3)'),
    'labels negative': (lambda m: PseudoLikelihoodLoss(m, states='categorical', n_states=3)(-torch.ones(2, 6, dtype=torch.long)),
                        ValueError, 'x', '[0, 3)'),
    'generator a string': (lambda m: PseudoLikelihoodLoss(m)(SPINS, generator='seed'), TypeError, 'generator', 'str'),
    'generator a bool': (lambda m: RatioMatchingLoss(m)(SPINS, generator=True), TypeError, 'generator', 'bool'),
}


@pytest.mark.parametrize('name', list(CASES))
def test_bad_input_is_refused_before_the_model_runs(name):
    call, error, argument, words = CASES[name]
    model = CountingSpins()
    with pytest.raises(error) as info:
        call(model)
    message = str(info.value)
    assert argument in message and words in message, message
    assert model.calls == 0


@pytest.mark.parametrize('loss_class', [PseudoLikelihoodLoss, RatioMatchingLoss])
@pytest.mark.parametrize('states, data', [('spin', SPINS), ('binary', (SPINS + 1) / 2)])
def test_sensible_values_still_work(loss_class, states, data):
    model = CountingSpins()
    loss = loss_class(model, states=states, n_sites_per_call=3, chunk_size=4)
    value = loss(data, generator=0)
    assert value.shape == () and torch.isfinite(value) and model.calls == math.ceil(2 * 4 / 4)
    value.backward()
    assert model.weight.grad is not None
