"""Tests of the convolutional energies (issue 15, models): ConvEnergy (IGEBM style) and WideResNetEnergy (JEM).

Shapes and dtypes for 8×8, 28×28, 32×32 and odd sizes; gradients by autograd; the JEM identities
E(x, y) = −f(x)[y] and E(x) = −logsumexp_y f(x)[y]; spectral normalisation bounding each layer's top singular value;
deterministic initialisation; bad arguments refused, naming the argument, before the network runs; and the samplers
driving both models, unconditionally and class-conditionally.
"""
import math

import pytest
import torch
from torch import nn

from torchebm_nb.core import BaseModel
from torchebm_nb.models import ConvEnergy, WideResNetEnergy
from torchebm_nb.samplers import LangevinDynamics

DTYPES = [torch.float32, torch.float64]
SIDES = [8, 28, 32, 7, 1]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def small_conv(**kw):
    return ConvEnergy(**{'channels': (8, 16), **kw})


def small_jem(**kw):
    return WideResNetEnergy(**{'in_channels': 1, 'widen_factor': 1, **kw})


class Counting(nn.Module):
    "Wraps a layer and counts its calls: the tests check that bad input is refused before the network runs."
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def counted(model):
    model.stem = Counting(model.stem)
    return model


# --- shapes, dtypes, gradients ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('side', SIDES)
@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('make', [lambda d: small_conv(dtype=d), lambda d: small_conv(spectral_norm=True, dtype=d),
                                  lambda d: small_jem(dtype=d), lambda d: small_jem(norm='group', dtype=d)],
                         ids=['conv', 'conv-sn', 'jem', 'jem-group'])
def test_energies_and_gradients_have_the_right_shape_and_dtype(make, dtype, side):
    torch.manual_seed(0)
    model = make(dtype).eval()     # eval: spectral norm's power iteration would change the weights between calls
    x = torch.randn(3, 1, side, side, generator=gen(), dtype=dtype)
    energy = model(x)
    assert energy.shape == (3,) and energy.dtype == dtype and torch.isfinite(energy).all()
    grad = model.gradient(x)
    assert grad.shape == x.shape and grad.dtype == dtype and torch.isfinite(grad).all()
    energy2, grad2 = model.energy_and_gradient(x)
    torch.testing.assert_close(energy2, energy.detach()); torch.testing.assert_close(grad2, grad)


@pytest.mark.parametrize('in_channels, side', [(1, 28), (3, 32), (3, 8)])
def test_defaults_take_mnist_and_cifar_sizes(in_channels, side):
    x = torch.randn(2, in_channels, side, side, generator=gen())
    assert ConvEnergy(in_channels=in_channels)(x).shape == (2,)
    jem = WideResNetEnergy(in_channels=in_channels)
    assert jem.logits(x).shape == (2, 10) and jem(x).shape == (2,)


def test_double_converts_a_built_model():
    model = small_conv().double()
    assert model.dtype == torch.float64
    assert model(torch.randn(2, 1, 8, 8, dtype=torch.float64)).dtype == torch.float64


def test_gradient_matches_finite_differences_in_float64():
    torch.manual_seed(0)
    for model in (ConvEnergy(channels=(4, 8), dtype=torch.float64),
                  WideResNetEnergy(in_channels=1, widen_factor=1, norm='group', norm_groups=4, dtype=torch.float64)):
        x = torch.randn(2, 1, 5, 5, generator=gen(), dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda z: model(z), (x,))


@pytest.mark.parametrize('make', [small_conv, small_jem, lambda: small_conv(spectral_norm=True)], ids=['conv', 'jem', 'conv-sn'])
def test_initialisation_is_deterministic_given_the_seed(make):
    torch.manual_seed(3); a = make()
    torch.manual_seed(3); b = make()
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    torch.manual_seed(4); c = make()
    assert not all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))


def test_state_dict_round_trip_with_spectral_norm():
    torch.manual_seed(0)
    a, b = small_conv(spectral_norm=True).eval(), small_conv(spectral_norm=True).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 1, 8, 8, generator=gen())
    with torch.no_grad(): torch.testing.assert_close(a(x), b(x))


def test_sum_pooling_is_area_times_mean_pooling():
    torch.manual_seed(0)
    mean, total = small_conv(), small_conv(pooling='sum')
    total.load_state_dict(mean.state_dict())
    x = torch.randn(4, 1, 8, 8, generator=gen())      # 8×8 → 4×4 maps
    with torch.no_grad():
        torch.testing.assert_close(total(x) - total.head.bias, 16 * (mean(x) - mean.head.bias), rtol=1e-5, atol=1e-5)


def test_energy_of_one_image_does_not_depend_on_the_rest_of_the_batch():
    "No batch statistics anywhere (GroupNorm included): each energy is a function of its own image."
    torch.manual_seed(0)
    for model in (small_conv(), small_jem(norm='group')):
        x = torch.randn(5, 1, 8, 8, generator=gen())
        with torch.no_grad():
            torch.testing.assert_close(model(x)[:2], model(x[:2]), rtol=1e-5, atol=1e-6)
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


# --- JEM identities ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('dtype', DTYPES, ids=str)
def test_conditional_energy_is_minus_the_logit(dtype):
    torch.manual_seed(0)
    jem = small_jem(n_classes=7, dtype=dtype)
    x, y = torch.randn(6, 1, 8, 8, generator=gen(), dtype=dtype), torch.tensor([0, 6, 3, 3, 1, 5])
    with torch.no_grad():
        torch.testing.assert_close(jem(x, y), -jem.logits(x)[torch.arange(6), y])
        torch.testing.assert_close(jem(x, y.to(torch.int32)), jem(x, y))


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
def test_marginal_energy_is_minus_logsumexp(dtype):
    torch.manual_seed(0)
    jem = small_jem(n_classes=5, dtype=dtype)
    x = torch.randn(4, 1, 8, 8, generator=gen(), dtype=dtype)
    with torch.no_grad():
        conditional = torch.stack([jem(x, torch.full((4,), k)) for k in range(5)], 1)
        torch.testing.assert_close(jem(x), -torch.logsumexp(-conditional, 1))
        torch.testing.assert_close(jem(x), -torch.logsumexp(jem.logits(x), 1))
        # p(y|x) = exp(E(x) − E(x, y)) is the classifier's softmax
        torch.testing.assert_close(torch.exp(jem(x)[:, None] - conditional), torch.softmax(jem.logits(x), 1))


def test_conditional_gradient_goes_through_model_kwargs():
    torch.manual_seed(0)
    jem = small_jem()
    x, y = torch.randn(3, 1, 8, 8, generator=gen()), torch.tensor([1, 2, 3])
    xr = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(jem(xr, y).sum(), xr)
    torch.testing.assert_close(jem.gradient(x, {'y': y}), expected)
    assert not torch.allclose(jem.gradient(x, {'y': y}), jem.gradient(x))


# --- architecture -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('depth, blocks', [(10, 3), (16, 6), (28, 12)])
def test_wide_resnet_depth_sets_the_number_of_blocks(depth, blocks):
    model = WideResNetEnergy(depth=depth, widen_factor=1)
    assert len(model.stages) == blocks and model.widths == (16, 32, 64)


def test_parameter_count_of_the_default_conv_energy():
    expected = 320 + 2 * (32 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (64 * 64 * 9 + 64) + (32 * 64 + 64) + 65
    assert sum(p.numel() for p in ConvEnergy().parameters()) == expected


@pytest.mark.parametrize('make', [lambda: small_conv(spectral_norm=True), lambda: small_jem(spectral_norm=True)], ids=['conv', 'jem'])
def test_spectral_norm_bounds_each_layer_top_singular_value(make):
    torch.manual_seed(0)
    model = make().train()
    for _ in range(30): model(torch.randn(2, 1, 8, 8, generator=gen()))   # one power-iteration step per call
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers and all(nn.utils.parametrize.is_parametrized(m, 'weight') for m in layers)
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2).item()
        assert abs(sigma - 1.0) < 0.05, (layer, sigma)


def test_without_spectral_norm_nothing_is_parametrized():
    assert not any(nn.utils.parametrize.is_parametrized(m) for m in small_jem().modules())


@pytest.mark.parametrize('name', ['silu', 'swish', 'softplus', 'gelu', 'elu', 'leaky_relu'])
def test_named_activations_build_and_run(name):
    model = small_conv(activation=name)
    assert model(torch.randn(2, 1, 8, 8, generator=gen())).shape == (2,)


def test_activation_factory_is_used():
    model = small_jem(activation=nn.Tanh)
    assert any(isinstance(m, nn.Tanh) for m in model.modules()) and not any(isinstance(m, nn.SiLU) for m in model.modules())


# --- bad arguments ----------------------------------------------------------------------------------------------------

BAD_CONSTRUCTION = {  # name: (call, argument named, expected words, exception type)
    'ConvEnergy in_channels=0': (lambda: ConvEnergy(in_channels=0), 'in_channels', 'must be ≥ 1', ValueError),
    'ConvEnergy in_channels=1.0': (lambda: ConvEnergy(in_channels=1.0), 'in_channels', 'must be an int', TypeError),
    'ConvEnergy channels=32': (lambda: ConvEnergy(channels=32), 'channels', 'sequence of ints', TypeError),
    "ConvEnergy channels='32'": (lambda: ConvEnergy(channels='32'), 'channels', 'sequence of ints', TypeError),
    'ConvEnergy channels=()': (lambda: ConvEnergy(channels=()), 'channels', 'at least one stage width', ValueError),
    'ConvEnergy channels=(32, 0)': (lambda: ConvEnergy(channels=(32, 0)), 'channels[1]', 'must be ≥ 1', ValueError),
    'ConvEnergy channels=(32.0,)': (lambda: ConvEnergy(channels=(32.0,)), 'channels[0]', 'must be an int', TypeError),
    'ConvEnergy blocks_per_stage=0': (lambda: ConvEnergy(blocks_per_stage=0), 'blocks_per_stage', 'must be ≥ 1', ValueError),
    'ConvEnergy spectral_norm=1': (lambda: ConvEnergy(spectral_norm=1), 'spectral_norm', 'must be a bool', TypeError),
    "ConvEnergy activation='relu'": (lambda: ConvEnergy(activation='relu'), 'activation', 'must be one of', ValueError),
    'ConvEnergy activation=nn.SiLU()': (lambda: ConvEnergy(activation=nn.SiLU()), 'activation', 'not nn.SiLU()', TypeError),
    'ConvEnergy activation=lambda: 1': (lambda: ConvEnergy(activation=lambda: 1), 'activation', 'returning an nn.Module', TypeError),
    "ConvEnergy pooling='max'": (lambda: ConvEnergy(pooling='max'), 'pooling', "'mean', 'sum'", ValueError),
    'ConvEnergy dtype=int64': (lambda: ConvEnergy(dtype=torch.int64), 'dtype', 'floating', ValueError),
    'WRN depth=12': (lambda: WideResNetEnergy(depth=12), 'depth', '6n + 4', ValueError),
    'WRN depth=4': (lambda: WideResNetEnergy(depth=4), 'depth', 'must be ≥ 10', ValueError),
    'WRN depth=10.0': (lambda: WideResNetEnergy(depth=10.0), 'depth', 'must be an int', TypeError),
    'WRN widen_factor=0': (lambda: WideResNetEnergy(widen_factor=0), 'widen_factor', 'must be ≥ 1', ValueError),
    'WRN n_classes=0': (lambda: WideResNetEnergy(n_classes=0), 'n_classes', 'must be ≥ 1', ValueError),
    'WRN in_channels=None': (lambda: WideResNetEnergy(in_channels=None), 'in_channels', 'must be an int', TypeError),
    "WRN norm='batch'": (lambda: WideResNetEnergy(norm='batch'), 'norm', "None, 'group'", ValueError),
    'WRN norm=True': (lambda: WideResNetEnergy(norm=True), 'norm', "None, 'group'", ValueError),
    'WRN norm_groups=0': (lambda: WideResNetEnergy(norm_groups=0), 'norm_groups', 'must be ≥ 1', ValueError),
    "WRN spectral_norm='yes'": (lambda: WideResNetEnergy(spectral_norm='yes'), 'spectral_norm', 'must be a bool', TypeError),
    'WRN activation=3': (lambda: WideResNetEnergy(activation=3), 'activation', 'must be a name', TypeError),
}


@pytest.mark.parametrize('case', list(BAD_CONSTRUCTION))
def test_bad_construction_arguments_name_the_argument(case):
    call, name, words, error = BAD_CONSTRUCTION[case]
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(name) and words in message, message


@pytest.mark.parametrize('make, unknown', [(ConvEnergy, 'n_classes'), (WideResNetEnergy, 'dropout')])
def test_unknown_keywords_are_refused(make, unknown):
    with pytest.raises(TypeError, match=rf"unexpected keyword argument\(s\) '{unknown}'.*Supported parameters: in_channels"):
        make(**{unknown: 1})


X8 = torch.zeros(4, 1, 8, 8)
BAD_INPUTS = {  # name: (model factory, call(model), argument named, expected words, exception type)
    'conv x with 3 channels': (small_conv, lambda m: m(torch.zeros(4, 3, 8, 8)), 'x', 'in_channels=1', ValueError),
    'conv x of rank 3': (small_conv, lambda m: m(torch.zeros(1, 8, 8)), 'x', '(B, in_channels=1, H, W)', ValueError),
    'conv x of rank 5': (small_conv, lambda m: m(torch.zeros(2, 1, 1, 8, 8)), 'x', '(B, in_channels=1, H, W)', ValueError),
    'conv x with H = 0': (small_conv, lambda m: m(torch.zeros(2, 1, 0, 8)), 'x', 'H, W ≥ 1', ValueError),
    'conv x a list': (small_conv, lambda m: m([[0.0]]), 'x', 'torch.Tensor', TypeError),
    'conv x integer': (small_conv, lambda m: m(torch.zeros(4, 1, 8, 8, dtype=torch.int64)), 'x', 'floating', TypeError),
    'conv x float64 to a float32 model': (small_conv, lambda m: m(X8.double()), 'x', 'dtype torch.float64', TypeError),
    'conv gradient, x with 2 channels': (small_conv, lambda m: m.gradient(torch.zeros(4, 2, 8, 8)), 'x', 'in_channels=1', ValueError),
    'jem x with 3 channels': (small_jem, lambda m: m(torch.zeros(4, 3, 8, 8)), 'x', 'in_channels=1', ValueError),
    'jem logits x of rank 2': (small_jem, lambda m: m.logits(torch.zeros(4, 64)), 'x', '(B, in_channels=1, H, W)', ValueError),
    'jem x bad with a good y': (small_jem, lambda m: m(torch.zeros(4, 2, 8, 8), torch.zeros(4, dtype=torch.long)), 'x', 'in_channels', ValueError),
    'jem y float': (small_jem, lambda m: m(X8, torch.zeros(4)), 'y', 'integer tensor', TypeError),
    'jem y bool': (small_jem, lambda m: m(X8, torch.zeros(4, dtype=torch.bool)), 'y', 'integer tensor', TypeError),
    'jem y list': (small_jem, lambda m: m(X8, [0, 1, 2, 3]), 'y', 'got list', TypeError),
    'jem y wrong length': (small_jem, lambda m: m(X8, torch.zeros(3, dtype=torch.long)), 'y', '(B,) = (4,)', ValueError),
    'jem y of rank 2': (small_jem, lambda m: m(X8, torch.zeros(4, 1, dtype=torch.long)), 'y', '(B,) = (4,)', ValueError),
    'jem y = n_classes': (small_jem, lambda m: m(X8, torch.tensor([0, 1, 2, 10])), 'y', 'labels in [0, 10)', ValueError),
    'jem y negative': (small_jem, lambda m: m(X8, torch.tensor([0, -1, 2, 3])), 'y', 'labels in [0, 10)', ValueError),
    'jem gradient with a bad y': (small_jem, lambda m: m.gradient(X8, {'y': torch.tensor([0, 1])}), 'y', '(B,) = (4,)', ValueError),
}


@pytest.mark.parametrize('case', list(BAD_INPUTS))
def test_bad_inputs_are_refused_before_the_network_runs(case):
    make, call, name, words, error = BAD_INPUTS[case]
    model = counted(make())
    with pytest.raises(error) as caught:
        call(model)
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
    assert model.stem.calls == 0


def test_sensible_inputs_still_work():
    conv, jem = counted(small_conv()), counted(small_jem())
    assert conv(X8).shape == (4,) and conv.stem.calls == 1
    assert jem(X8, torch.tensor([0, 9, 2, 3], dtype=torch.int16)).shape == (4,) and jem.stem.calls == 1
    assert jem(torch.zeros(0, 1, 8, 8)).shape == (0,)
    assert isinstance(conv, BaseModel) and isinstance(jem, BaseModel)


# --- with the samplers ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('make', [small_conv, lambda **kw: small_conv(spectral_norm=True, **kw), small_jem],
                         ids=['conv', 'conv-sn', 'jem-marginal'])
def test_langevin_runs_on_the_models(make, dtype):
    torch.manual_seed(0)
    model = make(dtype=dtype)
    x = torch.randn(4, 1, 8, 8, generator=gen(), dtype=dtype)
    out = LangevinDynamics(model, step_size=0.01, noise_scale=0.1, dtype=dtype).sample(x=x, n_steps=3, generator=gen(1))
    assert out.shape == x.shape and out.dtype == dtype and torch.isfinite(out).all()
    assert not torch.equal(out, x)


def test_langevin_class_conditional_jem():
    torch.manual_seed(0)
    jem = small_jem()
    x, labels = torch.randn(4, 1, 8, 8, generator=gen()), torch.tensor([0, 1, 2, 3])
    sampler = LangevinDynamics(jem, step_size=0.01, noise_scale=0.1)
    a = sampler.sample(x=x, n_steps=3, model_kwargs={'y': labels}, generator=gen(1))
    b = sampler.sample(x=x, n_steps=3, y=labels, generator=gen(1))
    c = sampler.sample(x=x, n_steps=3, model_kwargs={'y': torch.tensor([4, 5, 6, 7])}, generator=gen(1))
    assert a.shape == x.shape and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)                       # y= and model_kwargs={'y': ...} are the same conditioning
    assert not torch.allclose(a, c)                        # the labels matter


def test_langevin_with_bad_labels_names_y_before_the_network_runs():
    jem = counted(small_jem())
    with pytest.raises(ValueError, match=r'^y must hold labels in \[0, 10\)'):
        LangevinDynamics(jem, step_size=0.01).sample(x=X8, n_steps=3, model_kwargs={'y': torch.tensor([0, 1, 2, 11])})
    assert jem.stem.calls == 0


def test_conditional_sampling_raises_p_y_given_x():
    "With a large step on an untrained network, class-conditional Langevin moves the chains toward the requested labels."
    torch.manual_seed(0)
    jem = small_jem()
    x, labels = torch.randn(16, 1, 8, 8, generator=gen()), torch.arange(16) % 10
    out = LangevinDynamics(jem, step_size=30.0, noise_scale=0.01).sample(x=x, n_steps=40, y=labels, generator=gen(1))
    with torch.no_grad():
        before = torch.softmax(jem.logits(x), 1)[torch.arange(16), labels].mean()
        after = torch.softmax(jem.logits(out), 1)[torch.arange(16), labels].mean()
    assert after > before + 0.05, (before, after)
