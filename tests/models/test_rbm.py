"""The restricted Boltzmann machine against exact answers (issue 16): brute-force enumeration over both layers for log Z,
free energies and conditionals, numerical integration for the Gaussian–Bernoulli case, seeded sampling within binomial
standard errors, chunking; and the bad-input table (type, argument named, nothing computed)."""
import math

import pytest
import torch
from torch.overrides import TorchFunctionMode

from torchebm_nb.models.rbm import RBM

F64 = torch.float64


def _states(n_units):
    "All of {0,1}^n_units, shape (2**n_units, n_units), float64."
    numbers = torch.arange(2**n_units)
    return ((numbers[:, None] >> torch.arange(n_units)) & 1).to(F64)


def _random_rbm(n_visible=5, n_hidden=4, visible_type='bernoulli', seed=0, scale=1.0):
    "An RBM with random weights and random (non-zero) biases, in float64."
    rbm = RBM(n_visible, n_hidden, visible_type=visible_type, init_std=scale, generator=seed, dtype=F64)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        rbm.visible_bias.copy_(torch.randn(n_visible, generator=g, dtype=F64) * scale)
        rbm.hidden_bias.copy_(torch.randn(n_hidden, generator=g, dtype=F64) * scale)
    return rbm


def _joint(rbm):
    "Every (v, h) pair of a Bernoulli RBM and its energy: (V (2**(D+H), D), H (2**(D+H), H), E (2**(D+H),))."
    all_v, all_h = _states(rbm.n_visible), _states(rbm.n_hidden)
    v, h = all_v.repeat_interleave(len(all_h), 0), all_h.repeat(len(all_v), 1)
    with torch.no_grad(): return v, h, rbm.energy(v, h)


def _brute_energy(rbm, v, h):
    "The joint energy written out from the definition, independent of the library's code."
    W, b, c = rbm.weight.detach(), rbm.visible_bias.detach(), rbm.hidden_bias.detach()
    coupling = torch.einsum('bi,ij,bj->b', v, W, h)
    if rbm.visible_type == 'gaussian': return 0.5 * ((v - b) ** 2).sum(1) - coupling - h @ c
    return -coupling - v @ b - h @ c


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_log_partition_and_free_energy_match_enumerating_both_layers(seed):
    rbm = _random_rbm(seed=seed)
    v, h, energy = _joint(rbm)
    assert torch.allclose(energy, _brute_energy(rbm, v, h), rtol=0, atol=1e-12)
    brute_log_z = torch.logsumexp(-energy, 0)
    with torch.no_grad():
        for layer in (None, 'visible', 'hidden'):
            assert abs(rbm.log_partition(layer=layer).item() - brute_log_z.item()) < 1e-10, layer
        all_v = _states(rbm.n_visible)
        brute_free_energy = -torch.logsumexp(-energy.reshape(len(all_v), -1), 1)
        assert torch.allclose(rbm(all_v), brute_free_energy, rtol=0, atol=1e-10)


@pytest.mark.parametrize('shape', [(7, 5), (4, 9), (6, 6)])
def test_enumerating_visible_or_hidden_agree(shape):
    rbm = _random_rbm(*shape, seed=3, scale=2.0)
    with torch.no_grad():
        assert abs(rbm.log_partition(layer='visible').item() - rbm.log_partition(layer='hidden').item()) < 1e-10


def test_probabilities_sum_to_one():
    rbm = _random_rbm(6, 3, seed=4, scale=1.5)
    with torch.no_grad(): log_p = rbm.log_prob(_states(6))
    assert log_p.dtype == F64 and abs(log_p.exp().sum().item() - 1) < 1e-12


def test_float32_model_agrees_with_float64_enumeration():
    rbm64 = _random_rbm(6, 5, seed=5)
    rbm32 = RBM(6, 5, dtype=torch.float32)
    with torch.no_grad():
        for p32, p64 in zip(rbm32.parameters(), rbm64.parameters()): p32.copy_(p64)
        assert abs(rbm32.log_partition().item() - rbm64.log_partition().item()) < 1e-5   # float32 parameters, float64 sums
        assert rbm32.log_partition().dtype == F64


@pytest.mark.parametrize('seed', [0, 1])
def test_conditionals_follow_from_the_joint_by_bayes_rule(seed):
    rbm = _random_rbm(4, 3, seed=seed, scale=1.5)
    v, h, energy = _joint(rbm)
    n_v, n_h = 2**4, 2**3
    joint = torch.softmax(-energy, 0).reshape(n_v, n_h)                         # p(v, h)
    all_v, all_h = _states(4), _states(3)
    p_h_given_v = joint / joint.sum(1, keepdim=True)                            # Bayes: p(h | v) = p(v, h) / p(v)
    p_v_given_h = joint / joint.sum(0, keepdim=True)
    with torch.no_grad():
        assert torch.allclose(rbm.hidden_probs(all_v), p_h_given_v @ all_h, rtol=0, atol=1e-12)
        assert torch.allclose(rbm.visible_probs(all_h), p_v_given_h.T @ all_v, rtol=0, atol=1e-12)
        assert torch.allclose(rbm.log_prob(all_v).exp(), joint.sum(1), rtol=0, atol=1e-12)


@pytest.mark.parametrize('n_hidden', [1, 2, 3])
def test_gaussian_log_partition_matches_numerical_integration_in_one_dimension(n_hidden):
    rbm = _random_rbm(1, n_hidden, 'gaussian', seed=n_hidden)
    grid = torch.linspace(-40, 40, 400_001, dtype=F64)[:, None]
    with torch.no_grad():
        by_grid = torch.trapezoid((-rbm(grid)).exp(), grid[:, 0]).log()
        assert abs(rbm.log_partition().item() - by_grid.item()) < 1e-9


def test_gaussian_log_partition_matches_numerical_integration_in_two_dimensions():
    rbm = _random_rbm(2, 2, 'gaussian', seed=7, scale=0.8)
    axis = torch.linspace(-20, 20, 2001, dtype=F64)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        density = (-rbm(grid)).exp().reshape(len(axis), len(axis))
        by_grid = torch.trapezoid(torch.trapezoid(density, axis, dim=1), axis).log()
        assert abs(rbm.log_partition().item() - by_grid.item()) < 1e-8


def test_gaussian_free_energy_sums_the_joint_over_hidden_states():
    rbm = _random_rbm(3, 4, 'gaussian', seed=8)
    v = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    all_h = _states(4)
    energies = torch.stack([_brute_energy(rbm, v, h.expand(6, 4)) for h in all_h], 1)
    with torch.no_grad():
        assert torch.allclose(rbm(v), -torch.logsumexp(-energies, 1), rtol=0, atol=1e-12)
        assert torch.allclose(rbm.energy(v, all_h[5].expand(6, 4)), energies[:, 5], rtol=0, atol=1e-12)


def test_sampled_conditionals_have_the_right_means():
    rbm, n = _random_rbm(5, 4, seed=9), 20_000
    v = torch.tensor([[1., 0., 1., 1., 0.]], dtype=F64).expand(n, 5)
    h = torch.tensor([[0., 1., 1., 0.]], dtype=F64).expand(n, 4)
    with torch.no_grad():
        for draws, p in ((rbm.sample_hidden(v, torch.Generator().manual_seed(1)), rbm.hidden_probs(v[:1])[0]),
                         (rbm.sample_visible(h, torch.Generator().manual_seed(2)), rbm.visible_probs(h[:1])[0])):
            assert set(draws.unique().tolist()) <= {0.0, 1.0}
            standard_error = (p * (1 - p) / n).sqrt()
            assert ((draws.mean(0) - p).abs() <= 5 * standard_error + 1e-12).all(), (draws.mean(0), p)


def test_sampled_gaussian_visible_units_have_the_right_mean_and_unit_variance():
    rbm, n = _random_rbm(3, 2, 'gaussian', seed=10), 20_000
    h = torch.tensor([[1., 0.]], dtype=F64).expand(n, 2)
    with torch.no_grad():
        draws, mean = rbm.sample_visible(h, 3), rbm.visible_probs(h[:1])[0]
    assert ((draws.mean(0) - mean).abs() <= 5 / math.sqrt(n)).all()
    assert ((draws.var(0) - 1).abs() <= 5 * math.sqrt(2 / (n - 1))).all()   # standard error of a normal variance


def test_sampling_is_reproducible_with_a_generator():
    rbm = _random_rbm(seed=11)
    v = torch.ones(50, 5, dtype=F64)
    with torch.no_grad():
        assert torch.equal(rbm.sample_hidden(v, torch.Generator().manual_seed(4)),
                           rbm.sample_hidden(v, torch.Generator().manual_seed(4)))


@pytest.mark.parametrize('layer', ['visible', 'hidden'])
@pytest.mark.parametrize('chunk_size', [1, 3, 7, 64, 10**6])
def test_chunking_gives_the_same_answer(layer, chunk_size):
    rbm = _random_rbm(6, 5, seed=12)
    with torch.no_grad():
        whole = rbm.log_partition(layer=layer, chunk_size=2**6)
        assert abs(rbm.log_partition(layer=layer, chunk_size=chunk_size).item() - whole.item()) < 1e-12


def test_log_partition_is_differentiable_in_the_parameters():
    rbm = _random_rbm(4, 3, seed=13)
    rbm.log_partition().backward()
    v, h, energy = _joint(rbm)
    expected = (torch.softmax(-energy, 0)[:, None, None] * v[:, :, None] * h[:, None, :]).sum(0)   # ∂log Z/∂W = E[v hᵀ]
    assert torch.allclose(rbm.weight.grad, expected, rtol=0, atol=1e-12)


def test_deterministic_initialisation():
    a, b = RBM(8, 3, generator=5), RBM(8, 3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, RBM(8, 3, generator=6).weight)
    assert torch.equal(a.visible_bias, torch.zeros(8)) and torch.equal(a.hidden_bias, torch.zeros(3))


def test_filters_are_the_columns_of_the_weights():
    rbm = RBM(64, 5, init_std=1.0)
    assert torch.equal(rbm.filters((8, 8))[2].flatten(), rbm.weight.detach()[:, 2])


class ComputeCounter(TorchFunctionMode):
    "Counts the torch operations that do the model's work (products, softplus, sigmoid, log-sum-exp, random draws)."
    WORK = ('matmul', 'softplus', 'sigmoid', 'logsumexp', 'bernoulli', 'randn', 'einsum', 'mm', 'mv')
    def __init__(self):
        super().__init__()
        self.calls = 0
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if any(word in getattr(func, '__name__', '') for word in self.WORK): self.calls += 1
        return func(*args, **(kwargs or {}))


BERNOULLI, GAUSSIAN = _random_rbm(5, 4), _random_rbm(2, 3, 'gaussian')
V, H = torch.zeros(3, 5, dtype=F64), torch.zeros(3, 4, dtype=F64)

BAD_INPUT = {  # name: (call, exception type, argument named, expected words)
    'n_visible=0': (lambda: RBM(0, 4), ValueError, 'n_visible', '≥ 1'),
    'n_visible=2.0': (lambda: RBM(2.0, 4), TypeError, 'n_visible', 'must be an int'),
    'n_visible=True': (lambda: RBM(True, 4), TypeError, 'n_visible', 'must be an int'),
    'n_hidden=-1': (lambda: RBM(5, -1), ValueError, 'n_hidden', '≥ 1'),
    "visible_type='binary'": (lambda: RBM(5, 4, visible_type='binary'), ValueError, 'visible_type', 'one of'),
    'visible_type=1': (lambda: RBM(5, 4, visible_type=1), TypeError, 'visible_type', 'one of'),
    'init_std=-0.1': (lambda: RBM(5, 4, init_std=-0.1), ValueError, 'init_std', '≥ 0'),
    'init_std=nan': (lambda: RBM(5, 4, init_std=math.nan), ValueError, 'init_std', 'finite'),
    "generator='seed'": (lambda: RBM(5, 4, generator='seed'), TypeError, 'generator', 'torch.Generator'),
    'dtype=int64': (lambda: RBM(5, 4, dtype=torch.int64), ValueError, 'dtype', 'floating'),
    'forward list': (lambda: BERNOULLI([[0.0] * 5]), TypeError, 'v', 'torch.Tensor'),
    'forward (3, 4)': (lambda: BERNOULLI(torch.zeros(3, 4, dtype=F64)), ValueError, 'v', 'n_visible=5'),
    'forward (5,)': (lambda: BERNOULLI(torch.zeros(5, dtype=F64)), ValueError, 'v', 'shape (B, n_visible=5)'),
    'forward empty': (lambda: BERNOULLI(torch.zeros(0, 5, dtype=F64)), ValueError, 'v', 'non-empty'),
    'forward int64': (lambda: BERNOULLI(torch.zeros(3, 5, dtype=torch.int64)), TypeError, 'v', 'floating'),
    'forward float32': (lambda: BERNOULLI(torch.zeros(3, 5)), TypeError, 'v', 'float64'),
    'energy h (3, 5)': (lambda: BERNOULLI.energy(V, torch.zeros(3, 5, dtype=F64)), ValueError, 'h', 'n_hidden=4'),
    'energy batch sizes': (lambda: BERNOULLI.energy(V, H[:2]), ValueError, 'h', 'as many states as v'),
    'hidden_probs int': (lambda: BERNOULLI.hidden_probs(V.long()), TypeError, 'v', 'floating'),
    'visible_probs (3, 5)': (lambda: BERNOULLI.visible_probs(V), ValueError, 'h', 'n_hidden=4'),
    "sample_hidden generator='x'": (lambda: BERNOULLI.sample_hidden(V, 'x'), TypeError, 'generator', 'torch.Generator'),
    'sample_visible generator=True': (lambda: BERNOULLI.sample_visible(H, True), TypeError, 'generator', 'bool'),
    'sample_visible h float32': (lambda: BERNOULLI.sample_visible(H.float()), TypeError, 'h', 'float64'),
    'log_prob v=0.5': (lambda: BERNOULLI.log_prob(torch.full((3, 5), 0.5, dtype=F64)), ValueError, 'v', 'only 0s and 1s'),
    'log_prob v=-1': (lambda: BERNOULLI.log_prob(-torch.ones(3, 5, dtype=F64)), ValueError, 'v', 'only 0s and 1s'),
    'log_prob (3, 4)': (lambda: BERNOULLI.log_prob(torch.zeros(3, 4, dtype=F64)), ValueError, 'v', 'n_visible=5'),
    'log_partition max_units=3': (lambda: BERNOULLI.log_partition(max_units=3), ValueError, 'max_units',
                                  'n_visible=5, n_hidden=4'),
    'log_partition max_units=0': (lambda: BERNOULLI.log_partition(max_units=0), ValueError, 'max_units', 'in [1, 62]'),
    'log_partition max_units=63': (lambda: BERNOULLI.log_partition(max_units=63), ValueError, 'max_units', 'in [1, 62]'),
    "log_partition max_units='20'": (lambda: BERNOULLI.log_partition(max_units='20'), TypeError, 'max_units', 'int'),
    'log_partition chunk_size=0': (lambda: BERNOULLI.log_partition(chunk_size=0), ValueError, 'chunk_size', '≥ 1'),
    'log_partition chunk_size=2.5': (lambda: BERNOULLI.log_partition(chunk_size=2.5), TypeError, 'chunk_size', 'int'),
    "log_partition layer='both'": (lambda: BERNOULLI.log_partition(layer='both'), ValueError, 'layer', "'visible'"),
    'log_partition layer=1': (lambda: BERNOULLI.log_partition(layer=1), TypeError, 'layer', "'visible'"),
    "gaussian layer='visible'": (lambda: GAUSSIAN.log_partition(layer='visible'), ValueError, 'layer',
                                 'cannot be enumerated'),
    "layer='visible' over max_units": (lambda: BERNOULLI.log_partition(layer='visible', max_units=4), ValueError,
                                       'max_units', '2**5 states'),
    'filters (8, 8)': (lambda: BERNOULLI.filters((8, 8)), ValueError, 'image_shape', 'n_visible=5'),
    'filters 5': (lambda: BERNOULLI.filters(5), TypeError, 'image_shape', 'tuple'),
    'filters (5, 1.0)': (lambda: BERNOULLI.filters((5, 1.0)), TypeError, 'image_shape', 'int'),
}


@pytest.mark.parametrize('case', list(BAD_INPUT))
def test_bad_input_is_refused_before_any_work(case):
    call, kind, name, words = BAD_INPUT[case]
    counter = ComputeCounter()
    with counter, pytest.raises(kind) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
    assert counter.calls == 0, f"{counter.calls} model operations ran before the error"


def test_the_counter_sees_the_work():
    counter = ComputeCounter()
    with counter, torch.no_grad(): BERNOULLI(V)
    assert counter.calls > 0


def test_sensible_input_still_works():
    with torch.no_grad():
        assert BERNOULLI(V).shape == (3,) and BERNOULLI.energy(V, H).shape == (3,)
        assert BERNOULLI.hidden_probs(V).shape == (3, 4) and BERNOULLI.visible_probs(H).shape == (3, 5)
        assert BERNOULLI.sample_hidden(V, 0).shape == (3, 4) and BERNOULLI.sample_visible(H, 0).shape == (3, 5)
        assert BERNOULLI.log_prob(V).shape == (3,) and BERNOULLI.log_partition(max_units=4).ndim == 0
        assert BERNOULLI.log_partition(layer='visible', max_units=5).ndim == 0
        assert BERNOULLI(torch.full((3, 5), 0.5, dtype=F64)).shape == (3,)   # the free energy extends to [0, 1]
        assert GAUSSIAN.log_prob(torch.randn(4, 2, dtype=F64)).shape == (4,)
        assert RBM(5, 4, visible_type='gaussian', init_std=0.0, generator=None).n_hidden == 4
        assert BERNOULLI.filters([5, 1]).shape == (4, 5, 1)
    assert BERNOULLI.gradient(torch.rand(3, 5, dtype=F64)).shape == (3, 5)      # BaseModel's autograd gradient
