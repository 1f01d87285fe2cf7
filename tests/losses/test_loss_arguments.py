"""Arguments to losses that were ignored, coerced or misreported (issue 14): an explicit `dtype=`/`device=` that
disagrees with the model's parameters, a contrastive-divergence sampler built on another model, `model_kwargs` that is
not a dict, and lists where tensors belong. Each is refused with an error naming the argument, before the model is
evaluated; the defaults (a float64 model without `dtype=`, a parameterless model, a duck-typed sampler) keep working."""
import pytest
import torch
from torch import nn

from torchebm_nb import losses as L
from torchebm_nb.core import BaseModel, HarmonicModel
from torchebm_nb.core.base_module import check_model_kwargs, check_model_placement
from torchebm_nb.losses import loss_utils as U
from torchebm_nb.samplers import LangevinDynamics

from counting import CountingEnergy, CountingVelocity

F64 = torch.float64


def langevin(model): return LangevinDynamics(model, 0.01, dtype=next(model.parameters()).dtype)

# name: (model class, loss(model, **kwargs), whether it has a CD sampler, whether it is an interpolant loss)
LOSSES = {
    'ContrastiveDivergence': (CountingEnergy, lambda m, **kw: L.ContrastiveDivergence(m, langevin(m), k_steps=2, **kw)),
    'PersistentContrastiveDivergence': (CountingEnergy, lambda m, **kw: L.PersistentContrastiveDivergence(m, langevin(m), k_steps=2, buffer_size=8, **kw)),
    'ParallelTemperingCD': (CountingEnergy, lambda m, **kw: L.ParallelTemperingCD(m, langevin(m), n_replicas=2, k_steps=2, buffer_size=8, init_steps=1, **kw)),
    'ScoreMatching': (CountingEnergy, lambda m, **kw: L.ScoreMatching(m, **kw)),
    'DenoisingScoreMatching': (CountingEnergy, lambda m, **kw: L.DenoisingScoreMatching(m, **kw)),
    'SlicedScoreMatching': (CountingEnergy, lambda m, **kw: L.SlicedScoreMatching(m, **kw)),
    'FlowMatchingLoss': (CountingVelocity, lambda m, **kw: L.FlowMatchingLoss(m, **kw)),
    'EquilibriumMatchingLoss': (CountingVelocity, lambda m, **kw: L.EquilibriumMatchingLoss(m, **kw)),
    'EnergyMatchingLoss': (CountingEnergy, lambda m, **kw: L.EnergyMatchingLoss(m, coupling='independent', n_langevin_steps=2, **kw)),
}
CD_LOSSES = ['ContrastiveDivergence', 'PersistentContrastiveDivergence', 'ParallelTemperingCD']
INTERPOLANT_LOSSES = ['FlowMatchingLoss', 'EquilibriumMatchingLoss', 'EnergyMatchingLoss']
X = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))


# ---- bad arguments: name -> (call(loss factory, model), exception type, words the message must hold) ------------
def construct(**kwargs): return lambda make, model: make(model, **kwargs)
def forward(*args, **kwargs): return lambda make, model: make(model)(*args, **kwargs)
def training_losses(*args, **kwargs): return lambda make, model: make(model).training_losses(*args, **kwargs)

BAD = {
    'dtype disagrees': (construct(dtype=F64), ValueError,
                        ["dtype=torch.float64 but the model's parameters are ['torch.float32']", 'leave it unset']),
    'device disagrees': (construct(device='meta'), ValueError, ["device=meta but the model is on cpu", "device='cpu'"]),
    'dtype not a dtype': (construct(dtype='float64'), TypeError, ['dtype must be a torch.dtype']),
    'model_kwargs a list': (forward(X, model_kwargs=[1]), TypeError, ['model_kwargs must be a dict', 'got list [1]']),
    'model_kwargs a str': (forward(X, model_kwargs='y'), TypeError, ['model_kwargs must be a dict', 'got str']),
}
INTERPOLANT_BAD = {
    'training_losses x1 a list': (training_losses(X.tolist()), TypeError, ['x1 must be a torch.Tensor; got list']),
    'training_losses x0 a list': (training_losses(X, x0=X.tolist()), TypeError, ['x0 must be a torch.Tensor; got list']),
    'training_losses model_kwargs a list': (training_losses(X, model_kwargs=[1]), TypeError, ['model_kwargs must be a dict']),
    'compute_loss x a list': (lambda make, model: make(model).compute_loss(X.tolist()), TypeError, ['x must be a torch.Tensor']),
}
# entry points whose check lives in a notebook this change does not own: strict xfails, to be removed with the fix
PENDING = {}   # entry points whose fix has not landed: none
CASES = [(loss, bad) for loss in LOSSES for bad in BAD] + [(loss, bad) for loss in INTERPOLANT_LOSSES for bad in INTERPOLANT_BAD]


def params(cases):
    return [pytest.param(loss, bad, marks=pytest.mark.xfail(strict=True, reason=PENDING[(loss, bad)]))
            if (loss, bad) in PENDING else (loss, bad) for loss, bad in cases]


@pytest.mark.parametrize('loss,bad', params(CASES))
def test_bad_arguments_are_named_before_the_model_runs(loss, bad):
    make_model, make_loss = LOSSES[loss]
    call, error, words = {**BAD, **INTERPOLANT_BAD}[bad]
    model = make_model()
    with pytest.raises(error) as caught:
        call(make_loss, model)
    assert type(caught.value) is error, repr(caught.value)
    for word in words: assert word in str(caught.value), str(caught.value)
    assert model.calls == 0


# ---- a contrastive-divergence sampler on another model ---------------------------------------------------------
@pytest.mark.parametrize('loss', CD_LOSSES)
def test_cd_refuses_a_sampler_built_on_another_model(loss):
    model, other = CountingEnergy(), CountingEnergy()
    cls = {'ContrastiveDivergence': L.ContrastiveDivergence, 'PersistentContrastiveDivergence': L.PersistentContrastiveDivergence,
           'ParallelTemperingCD': L.ParallelTemperingCD}[loss]
    with pytest.raises(ValueError) as caught:
        cls(model, LangevinDynamics(other, 0.01))
    message = str(caught.value)
    assert message.startswith('sampler is built on another model (CountingEnergy at'), message
    assert 'LangevinDynamics(model, ...)' in message, message
    assert model.calls == 0 and other.calls == 0


class DescentSteps:
    "A duck-typed sampler without a `model` attribute."
    def __init__(self, energy): self.energy = energy
    def sample(self, x=None, n_steps=1):
        for _ in range(n_steps): x = x - 0.1 * self.energy.gradient(x)
        return x


def test_cd_accepts_the_same_model_and_duck_typed_samplers():
    model = CountingEnergy()
    sampler = LangevinDynamics(model, 0.01)
    assert L.ContrastiveDivergence(model, sampler).sampler is sampler
    duck = L.ContrastiveDivergence(model, DescentSteps(model), k_steps=2)
    loss, negatives = duck(X, generator=0)
    assert torch.isfinite(loss) and negatives.shape == X.shape


def test_cd_sees_through_compile_and_data_parallel_wrappers():
    model = CountingEnergy()
    wrapped = nn.DataParallel(model)
    assert L.ContrastiveDivergence(wrapped, LangevinDynamics(model, 0.01)).model is wrapped


# ---- what must keep working ------------------------------------------------------------------------------------
@pytest.mark.parametrize('loss', list(LOSSES))
def test_float64_models_need_no_dtype(loss):
    make_model, make_loss = LOSSES[loss]
    model = make_model().double()
    loss_fn = make_loss(model)
    assert loss_fn.dtype == F64
    out = loss_fn(X.double(), generator=0)
    value = out[0] if isinstance(out, tuple) else out
    assert value.dtype == F64 and torch.isfinite(value), value


@pytest.mark.parametrize('loss', list(LOSSES))
def test_explicit_arguments_that_agree_are_accepted(loss):
    make_model, make_loss = LOSSES[loss]
    model = make_model().double()
    assert make_loss(model, dtype=F64, device='cpu').dtype == F64
    assert make_loss(make_model(), dtype=torch.float32, device=torch.device('cpu')).dtype == torch.float32


@pytest.mark.parametrize('loss', ['ContrastiveDivergence', 'ScoreMatching', 'DenoisingScoreMatching', 'EnergyMatchingLoss'])
def test_parameterless_models_take_the_loss_dtype(loss):
    make_loss = LOSSES[loss][1]
    model = HarmonicModel()
    if loss == 'ContrastiveDivergence':
        loss_fn = L.ContrastiveDivergence(model, LangevinDynamics(model, 0.01, dtype=F64), dtype=F64)
    else:
        loss_fn = make_loss(model, dtype=F64)
    assert loss_fn.dtype == F64


# ---- the shared checks and the loss utilities -------------------------------------------------------------------
UTILS = {'mean_flat': (lambda: U.mean_flat([1.0, 2.0]), 'tensor'),
         'trimmed_mean': (lambda: U.trimmed_mean([1.0, 2.0], 0.1), 'values'),
         'compute_flow_weight': (lambda: U.compute_flow_weight([0.5]), 't'),
         'compute_eqm_ct': (lambda: U.compute_eqm_ct(0.5), 't'),
         'dispersive_loss': (lambda: U.dispersive_loss([[0.0, 1.0]]), 'z')}


@pytest.mark.parametrize('name', list(UTILS))
def test_loss_utils_name_a_non_tensor(name):
    call, argument = UTILS[name]
    with pytest.raises(TypeError) as caught: call()
    assert str(caught.value).startswith(f'{argument} must be a torch.Tensor; got '), str(caught.value)


def test_loss_utils_still_compute():
    assert torch.equal(U.mean_flat(torch.ones(3, 2, 2)), torch.ones(3))
    assert U.trimmed_mean(torch.tensor([0.0, 1.0, 100.0]), 0.34).item() == pytest.approx(0.5)
    assert U.dispersive_loss(torch.zeros(4, 2)).abs().item() < 1e-6


def test_shared_checks_directly():
    assert check_model_kwargs(None) == {} and check_model_kwargs({'y': 1}) == {'y': 1}
    with pytest.raises(TypeError, match=r'^model_kwargs must be a dict'): check_model_kwargs([1])
    with pytest.raises(TypeError, match=r'^model_kwargs keys must be argument names'): check_model_kwargs({0: 1})
    check_model_placement(nn.Linear(2, 1))                          # nothing asked for
    check_model_placement(nn.Identity(), torch.float16, 'meta')     # nothing to disagree with
    with pytest.raises(ValueError, match=r"^dtype=torch.float64 but the model's parameters are \['torch.float32'\]"):
        check_model_placement(nn.Linear(2, 1), F64)
    with pytest.raises(ValueError, match=r'^device=meta but the model is on cpu'):
        check_model_placement(nn.Linear(2, 1), device='meta')


def test_samplers_use_the_shared_check():
    with pytest.raises(ValueError, match=r"^dtype=torch.float32 but the model's parameters are \['torch.float64'\]"):
        LangevinDynamics(CountingEnergy().double(), 0.01)
    with pytest.raises(ValueError, match=r'^device=meta but the model is on cpu'):
        LangevinDynamics(CountingEnergy(), 0.01, device='meta')
    assert LangevinDynamics(CountingEnergy().double(), 0.01, dtype=F64).dtype == F64
