"""Image EBM training recipes (issue 15): Langevin with a clipped gradient, the IGEBM replay buffer (reinitialisation from
noise in the data range, augmentation of buffer reads), short-run CD from noise (Nijkamp et al., 2019) and JEM
(Grathwohl et al., 2020), on tiny 1×8×8 images with small conv models of this file's own."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchebm_nb.core import BaseModel
from torchebm_nb.core.base_loss import BaseContrastiveDivergence
from torchebm_nb.core.mcmc import accelerated_path, no_convergence_check
from torchebm_nb.losses import (ClassifierEnergy, ContrastiveDivergence, JEMLoss, PersistentContrastiveDivergence,
                                classifier_logits, conditional_energy, marginal_energy)
from torchebm_nb.samplers import LangevinDynamics


def gen(seed):
    return torch.Generator().manual_seed(seed)


class ConvEnergy(BaseModel):
    "A two-layer CNN energy of 1×8×8 images that counts its evaluations."
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.SiLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.net(x).pow(2).mean((1, 2, 3))


class ConvClassifier(nn.Module):
    "A two-layer CNN classifier of 1×8×8 images (2 classes) that counts its evaluations."
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.SiLU(), nn.Flatten(), nn.Linear(4 * 64, 2))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


class Quartic(BaseModel):
    "E(x) = Σ x⁴/4, ∇E = x³ (large away from 0: the clip matters)."
    def forward(self, x):
        return x.pow(4).flatten(1).sum(-1) / 4


class Quadratic(BaseModel):
    "E(x) = ½ Σ aᵢ xᵢ² on 1×2×2 images (the energy of the recorded reference run)."
    def forward(self, x):
        return 0.5 * (torch.linspace(0.5, 2.0, 4).reshape(1, 1, 2, 2) * x ** 2).flatten(1).sum(-1)


class RecordingSampler:
    "A duck-typed sampler that records its starting points and returns them unchanged."
    def __init__(self):
        self.starts = []

    def sample(self, x, n_steps, generator=None):
        self.starts.append((x.clone(), n_steps))
        return x


def images(n=16, seed=0):
    return torch.rand(n, 1, 8, 8, generator=gen(seed)) * 2 - 1


# ---- Langevin with a clipped gradient ----------------------------------------------------------------------------------
@pytest.mark.parametrize('integrator', ['euler_maruyama'])
def test_one_clipped_step_is_the_formula(integrator):
    x0 = torch.tensor([[[[0.5, -2.0], [3.0, -0.2]]], [[[-0.1, 1.5], [-4.0, 0.9]]]])
    h, s, c = 0.1, 0.3, 1.0
    sampler = LangevinDynamics(Quartic(), step_size=h, noise_scale=s, integrator=integrator)
    sampler.grad_clip = c
    out = sampler.sample(x=x0, n_steps=1, generator=gen(5))
    xi = torch.empty_like(x0).normal_(generator=gen(5))
    want = x0 - h * x0.pow(3).clamp(-c, c) + s * math.sqrt(2 * h) * xi
    assert torch.allclose(out, want, atol=1e-6), (out - want).abs().max()
    assert not torch.allclose(out, x0 - h * x0.pow(3) + s * math.sqrt(2 * h) * xi, atol=1e-3)   # the clip did something


# Recorded with the code before `grad_clip` existed: Quadratic, x = randn(3, 1, 2, 2, seed 0), h = 0.05, σ = 0.7,
# clamp (−3, 3), 7 steps, generator seed 3.
REFERENCE = ['0x1.eb24140000000p-1', '-0x1.2004220000000p-3', '-0x1.a34e740000000p+0', '0x1.c1f6640000000p-4',
             '-0x1.6ca2180000000p+0', '-0x1.60b8f60000000p+0', '0x1.8e28ce0000000p-1', '0x1.b1eef80000000p-1',
             '-0x1.035be20000000p+0', '-0x1.d751a80000000p-3', '-0x1.b7dca00000000p-2', '0x1.6cd3ea0000000p-3']


def test_without_clip_the_chain_is_bit_identical_to_before():
    x = torch.randn(3, 1, 2, 2, generator=gen(0))
    sampler = LangevinDynamics(Quadratic(), step_size=0.05, noise_scale=0.7, clamp=(-3.0, 3.0))
    assert sampler.grad_clip is None
    out = sampler.sample(x=x, n_steps=7, generator=gen(3))
    assert [v.hex() for v in out.flatten().tolist()] == REFERENCE
    loose = LangevinDynamics(Quadratic(), step_size=0.05, noise_scale=0.7, clamp=(-3.0, 3.0))
    loose.grad_clip = 1e30   # a bound no component reaches: the same chain, bit for bit
    assert torch.equal(loose.sample(x=x, n_steps=7, generator=gen(3)), out)


def _emulator():
    from torchebm_nb.cuda.emulator import CPUEmulator, find_cxx
    if find_cxx() is None: pytest.skip('no C++ compiler for the CPU emulator')
    return CPUEmulator()


def _spy(monkeypatch, cls):
    calls, real = [], cls.__call__
    monkeypatch.setattr(cls, '__call__', lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_kernel_paths_are_not_taken_with_a_clip(monkeypatch):
    from torchebm_nb.core import DoubleWellModel
    from torchebm_nb.cuda import dispatch
    from torchebm_nb.cuda.kernels import use_backend
    emu = _emulator()
    fused, chain = _spy(monkeypatch, dispatch.FusedLangevinUpdate), _spy(monkeypatch, dispatch.WholeChainLangevin)
    conv, x = ConvEnergy(), images(8)
    plain = LangevinDynamics(conv, step_size=0.01)
    clipped = LangevinDynamics(conv, step_size=0.01)
    clipped.grad_clip = 0.05
    well = LangevinDynamics(DoubleWellModel(), step_size=0.01)
    well_clipped = LangevinDynamics(DoubleWellModel(), step_size=0.01)
    well_clipped.grad_clip = 0.05
    with use_backend(emu), no_convergence_check():
        plain.sample(x=x, n_steps=3, generator=gen(1))
        assert len(fused) == 3                                   # the emulated kernels are live: the unclipped run takes them
        kernel_free = clipped.sample(x=x, n_steps=3, generator=gen(1))
        well.sample(x=torch.zeros(8, 2), n_steps=3, generator=gen(1))
        assert len(chain) == 1
        well_clipped.sample(x=torch.zeros(8, 2), n_steps=3, generator=gen(1))
        paths = [type(accelerated_path(s, s.current_params(), x, s.context())).__name__ for s in (plain, clipped)]
    assert (len(fused), len(chain)) == (3, 1)                    # neither clipped run reached a kernel
    assert paths == ['FusedLangevinPath', '_TorchStep']
    with use_backend(None), no_convergence_check():
        assert torch.equal(kernel_free, clipped.sample(x=x, n_steps=3, generator=gen(1)))


# ---- the IGEBM buffer ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('ratio, replaced', [(0.01, 1), (0.05, 1), (0.25, 5), (0.5, 10), (1.0, 20)])
def test_reinitialised_share_is_exact(ratio, replaced):
    conv = ConvEnergy()
    loss = ContrastiveDivergence(conv, LangevinDynamics(conv), new_sample_ratio=ratio, noise_range=(-1.0, 1.0))
    far = torch.full((20, 1, 8, 8), 5.0)   # outside the noise range: a replaced row lies inside it
    start = loss.get_start_points(far, generator=gen(2))
    inside = (start.abs() <= 1).flatten(1).all(1)
    untouched = (start == 5.0).flatten(1).all(1)
    assert (int(inside.sum()), int(untouched.sum())) == (replaced, 20 - replaced)
    assert conv.calls == 0


def test_buffer_is_filled_with_uniform_noise_in_the_data_range():
    conv = ConvEnergy()
    pcd = PersistentContrastiveDivergence(conv, LangevinDynamics(conv), buffer_size=3000, init_steps=0, noise_range=(-0.5, 1.5))
    buffer = pcd.initialize_buffer((1, 8, 8), generator=gen(0))
    n = buffer.numel()
    assert buffer.min() >= -0.5 and buffer.max() <= 1.5
    assert abs(buffer.mean().item() - 0.5) < 4 * math.sqrt(1 / 3 / n)           # uniform on [−0.5, 1.5]: mean 0.5
    assert abs(buffer.var().item() - 1 / 3) < 4 * math.sqrt(4 / 45 / n)          # variance (b − a)²/12 = 1/3


def test_buffer_burn_in_uses_the_sampler_with_noise_range():
    recorder = RecordingSampler()
    conv = ConvEnergy()
    pcd = ContrastiveDivergence(conv, recorder, persistent=True, buffer_size=10, init_steps=4, noise_range=(-1.0, 1.0))
    pcd.initialize_buffer((1, 8, 8), buffer_chunk_size=4, generator=gen(0))
    assert [(s.shape[0], k) for s, k in recorder.starts] == [(4, 4), (4, 4), (2, 4)]
    assert all(s.abs().max() <= 1 for s, _ in recorder.starts)


@pytest.mark.parametrize('takes_generator', [True, False])
def test_augmentation_is_applied_to_every_buffer_read(takes_generator):
    seen = []
    def flip_some(chains, generator=None):
        seen.append(chains.clone())
        flip = torch.rand(chains.shape[0], generator=generator) < 0.5
        return torch.where(flip[:, None, None, None], chains.flip(-1), chains)
    def plain_flip(chains):
        seen.append(chains.clone())
        return chains.flip(-1)
    augmentation = flip_some if takes_generator else plain_flip
    recorder, conv = RecordingSampler(), ConvEnergy()
    pcd = ContrastiveDivergence(conv, recorder, k_steps=3, persistent=True, buffer_size=16, init_steps=0, new_sample_ratio=0.0,
                                noise_range=(-1.0, 1.0), buffer_augmentation=augmentation)
    pcd.initialize_buffer((1, 8, 8), generator=gen(0))
    state = pcd.replay_buffer.clone()
    pcd(images(), generator=gen(7))
    pcd.replay_buffer.copy_(state)
    pcd(images(), generator=gen(7))
    assert len(seen) == 2 and torch.equal(seen[0], seen[1])        # one call per read, the same rows under the same seed
    assert torch.equal(recorder.starts[0][0], recorder.starts[1][0])   # seeded through the call's generator
    if not takes_generator: assert torch.equal(recorder.starts[0][0], seen[0].flip(-1))
    assert not torch.equal(recorder.starts[0][0], seen[0])           # the chains the sampler got are the augmented ones


# ---- short-run CD from noise ------------------------------------------------------------------------------------------
@pytest.mark.parametrize('noise_range', [(-1.0, 1.0), None])
def test_short_run_chains_start_from_fresh_noise(noise_range):
    recorder, conv = RecordingSampler(), ConvEnergy()
    loss = ContrastiveDivergence(conv, recorder, k_steps=25, start='noise', noise_range=noise_range)
    far = torch.full((64, 1, 8, 8), 5.0)
    loss(far, generator=gen(1))
    loss(far, generator=gen(2))
    (s1, k1), (s2, k2) = recorder.starts
    assert (k1, k2) == (25, 25) and loss.replay_buffer is None
    assert not torch.equal(s1, s2)
    assert torch.equal(s1, loss.noise_chains(64, (1, 8, 8), generator=gen(1)))
    if noise_range is None:   # N(0, I)
        assert abs(s1.mean().item()) < 4 / math.sqrt(s1.numel()) and abs(s1.std().item() - 1) < 0.05
    else:
        assert s1.min() >= -1 and s1.max() <= 1


def test_defaults_keep_torchebm_behaviour():
    conv = ConvEnergy()
    loss = ContrastiveDivergence(conv, LangevinDynamics(conv))
    assert (loss.start, loss.noise_range, loss.buffer_augmentation) == ('data', None, None)
    x = images()
    ours = loss.get_start_points(x, generator=gen(4))
    base = BaseContrastiveDivergence.get_start_points(loss, x, generator=gen(4))
    assert torch.equal(ours, base)
    pcd = PersistentContrastiveDivergence(conv, LangevinDynamics(conv), buffer_size=50, init_steps=0)
    buffer = pcd.initialize_buffer((1, 8, 8), generator=gen(0))
    assert torch.equal(buffer, 0.01 * torch.randn(50, 1, 8, 8, generator=gen(0)))


# ---- JEM ----------------------------------------------------------------------------------------------------------------
def test_jem_energy_identities():
    f, x, y = ConvClassifier(), images(10), torch.tensor([0, 1] * 5)
    logits = f(x)
    e, e_y = marginal_energy(f)(x), conditional_energy(f)(x, y=y)
    assert torch.allclose(e, -torch.logsumexp(logits, -1))
    assert torch.equal(e_y, -logits[torch.arange(10), y])
    assert torch.allclose(e_y - e, F.cross_entropy(logits, y, reduction='none'), atol=1e-6)   # E(x|y) − E(x) = −log p(y|x)
    both = torch.stack([conditional_energy(f)(x, y=torch.full((10,), c)) for c in (0, 1)])
    assert torch.allclose(-torch.logsumexp(-both, 0), e, atol=1e-6)                          # E(x) = −log Σ_y e^{−E(x|y)}
    class WithLogits(nn.Module):
        def __init__(self): super().__init__(); self.inner = f
        def logits(self, x): return self.inner(x)
        def forward(self, x): return None
    assert torch.equal(classifier_logits(WithLogits(), x), logits)


def test_conditional_energy_samples_with_y():
    f = ConvClassifier()
    sampler = LangevinDynamics(conditional_energy(f), step_size=1.0, noise_scale=0.01 / math.sqrt(2), clamp=(-1.0, 1.0))
    y = torch.tensor([0, 1] * 8)
    with no_convergence_check():
        a = sampler.sample(x=images(), n_steps=5, y=y, generator=gen(1))
        b = sampler.sample(x=images(), n_steps=5, model_kwargs={'y': y}, generator=gen(1))
    assert torch.equal(a, b) and a.shape == (16, 1, 8, 8)
    assert (f(a)[torch.arange(16), y] > f(images())[torch.arange(16), y]).float().mean() > 0.9   # the chains raise f(x)[y]


def two_kinds(n, seed):
    g = gen(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    side = torch.where(torch.arange(8) < 4, 0.6, -0.6).expand(8, 8)
    x = torch.where(labels[:, None, None] == 0, side, side.flip(-1)) + 0.3 * torch.randn(n, 8, 8, generator=g)
    return x.clamp(-1, 1).unsqueeze(1), labels


def test_jem_short_training_run():
    train_x, train_y = two_kinds(512, 0)
    test_x, test_y = two_kinds(256, 1)
    f = ConvClassifier(seed=1)
    accuracy = lambda: (f(test_x).argmax(-1) == test_y).float().mean().item()
    before = accuracy()
    jem = JEMLoss(f, k_steps=5, buffer_size=256)
    optimizer = torch.optim.Adam(f.parameters(), lr=1e-3)
    g, losses = gen(0), []
    for _ in range(40):
        idx = torch.randint(0, 512, (32,), generator=g)
        loss, negatives = jem(train_x[idx], train_y[idx], generator=g)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        losses.append(loss.item())
        assert negatives.shape == (32, 1, 8, 8) and negatives.abs().max() <= 1
    after = accuracy()
    assert all(math.isfinite(v) for v in losses)
    assert after > 0.9 and after > before + 0.2, (before, after)
    assert set(jem.last_terms) == {'classification', 'generative'}
    assert int(jem.cd.nonfinite_count) == 0


def test_jem_loss_is_the_weighted_sum():
    f, x, y = ConvClassifier(), images(), torch.tensor([0, 1] * 8)
    jem = JEMLoss(f, k_steps=2, buffer_size=32, classification_weight=0.5, generative_weight=2.0, energy_reg_weight=0.1)
    loss, negatives = jem(x, y, generator=gen(0))
    pos, neg = marginal_energy(f)(x), marginal_energy(f)(negatives)
    generative = pos.mean() - neg.mean() + 0.1 * (pos.square().mean() + neg.square().mean())
    assert torch.allclose(loss, 0.5 * F.cross_entropy(f(x), y) + 2.0 * generative, atol=1e-5)


# ---- bad arguments ------------------------------------------------------------------------------------------------------
def _cd(model, **kw):
    return ContrastiveDivergence(model, LangevinDynamics(model), **kw)


def _set_clip(model, value):
    LangevinDynamics(model).grad_clip = value


def _jem(classifier, **kw):
    return JEMLoss(classifier, **kw)


CASES = {  # name: (call given the counting model and classifier, argument named, expected words, exception type)
    'grad_clip=0': (lambda m, f: _set_clip(m, 0.0), 'grad_clip', 'must be positive', ValueError),
    'grad_clip=-1': (lambda m, f: _set_clip(m, -1.0), 'grad_clip', 'must be positive', ValueError),
    'grad_clip=inf': (lambda m, f: _set_clip(m, math.inf), 'grad_clip', 'finite', ValueError),
    "grad_clip='1'": (lambda m, f: _set_clip(m, '1'), 'grad_clip', 'real number', TypeError),
    "start='buffer'": (lambda m, f: _cd(m, start='buffer'), 'start', "'data' or 'noise'", ValueError),
    'start=1': (lambda m, f: _cd(m, start=1), 'start', "'data' or 'noise'", TypeError),
    "start='noise' persistent": (lambda m, f: _cd(m, start='noise', persistent=True), 'start', 'persistent', ValueError),
    'noise_range=1.0': (lambda m, f: _cd(m, noise_range=1.0), 'noise_range', 'pair (lo, hi)', TypeError),
    'noise_range=(1,)': (lambda m, f: _cd(m, noise_range=(1.0,)), 'noise_range', 'pair (lo, hi)', ValueError),
    'noise_range=(1, -1)': (lambda m, f: _cd(m, noise_range=(1.0, -1.0)), 'noise_range', 'lo < hi', ValueError),
    'noise_range=(0, nan)': (lambda m, f: _cd(m, noise_range=(0.0, math.nan)), 'noise_range[1]', 'finite', ValueError),
    "noise_range=('a', 1)": (lambda m, f: _cd(m, noise_range=('a', 1.0)), 'noise_range[0]', 'real number', TypeError),
    "buffer_augmentation='flip'": (lambda m, f: _cd(m, persistent=True, buffer_augmentation='flip'), 'buffer_augmentation',
                                   'callable', TypeError),
    'buffer_augmentation without buffer': (lambda m, f: _cd(m, buffer_augmentation=lambda c: c), 'buffer_augmentation',
                                           'persistent=True', ValueError),
    'buffer_augmentation changes shape': (lambda m, f: _cd(m, persistent=True, buffer_size=16, init_steps=0,
                                                           buffer_augmentation=lambda c: c[:2])(images()),
                                          'buffer_augmentation', 'shaped like its input', ValueError),
    'JEM classifier=function': (lambda m, f: _jem(lambda x: x), 'classifier', 'nn.Module', TypeError),
    'JEM classification_weight=-1': (lambda m, f: _jem(f, classification_weight=-1.0), 'classification_weight', 'must be', ValueError),
    "JEM generative_weight='1'": (lambda m, f: _jem(f, generative_weight='1'), 'generative_weight', 'real number', TypeError),
    'JEM both weights 0': (lambda m, f: _jem(f, classification_weight=0.0, generative_weight=0.0), 'classification_weight',
                           'both 0', ValueError),
    'JEM sampler on another energy': (lambda m, f: _jem(f, sampler=LangevinDynamics(m)), 'sampler', 'marginal_energy', ValueError),
    'JEM sampler on E(x|y)': (lambda m, f: _jem(f, sampler=LangevinDynamics(conditional_energy(f))), 'sampler', 'marginal_energy',
                              ValueError),
    'JEM noise_range=(1, -1)': (lambda m, f: _jem(f, noise_range=(1.0, -1.0)), 'noise_range', 'lo < hi', ValueError),
    'JEM k_steps=0': (lambda m, f: _jem(f, k_steps=0), 'k_steps', '≥ 1', ValueError),
    'JEM y float': (lambda m, f: _jem(f, buffer_size=16)(images(), torch.zeros(16)), 'y', 'integer tensor', TypeError),
    'JEM y short': (lambda m, f: _jem(f, buffer_size=16)(images(), torch.zeros(3, dtype=torch.long)), 'y', 'shape (16,)', ValueError),
    'JEM y missing': (lambda m, f: _jem(f, buffer_size=16)(images(), None), 'y', 'is required', TypeError),
    'JEM y twice': (lambda m, f: _jem(f, buffer_size=16)(images(), torch.zeros(8, dtype=torch.long), model_kwargs={'y': torch.zeros(8, dtype=torch.long)}), 'y', 'given both', ValueError),
    'JEM x not a batch': (lambda m, f: _jem(f, buffer_size=16)(torch.zeros(5), torch.zeros(5, dtype=torch.long)), 'x', 'batch', ValueError),
    'conditional energy without y': (lambda m, f: conditional_energy(f)(images()), 'y', 'tensor of class labels', TypeError),
    'marginal energy with y': (lambda m, f: marginal_energy(f)(images(), y=torch.zeros(16, dtype=torch.long)), 'y',
                               'marginal energy', ValueError),
    'ClassifierEnergy conditional=1': (lambda m, f: ClassifierEnergy(f, conditional=1), 'conditional', 'bool', TypeError),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_arguments_are_refused_before_any_evaluation(case):
    call, name, words, error = CASES[case]
    model, classifier = ConvEnergy(), ConvClassifier()
    with pytest.raises(error) as caught:
        call(model, classifier)
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
    assert (model.calls, classifier.calls) == (0, 0)


def test_sensible_values_still_work():
    model, f = ConvEnergy(), ConvClassifier()
    sampler = LangevinDynamics(model)
    sampler.grad_clip = 0.01
    assert sampler.grad_clip == 0.01 and sampler.current_params().grad_clip == 0.01 and 'grad_clip=0.01' in repr(sampler)
    sampler.grad_clip = None
    assert sampler.current_params().grad_clip is None
    loss = _cd(model, start='noise', noise_range=[-1, 1])
    assert loss.noise_range == (-1.0, 1.0) and "start='noise'" in loss.extra_repr()
    assert _cd(model, persistent=True, buffer_augmentation=lambda c: c).buffer_augmentation is not None
    assert JEMLoss(f, noise_range=None).cd.noise_range is None
    assert JEMLoss(f).sampler.clamp == (-1.0, 1.0)
    assert JEMLoss(f, generative_weight=0.0)(images(), torch.zeros(16, dtype=torch.long))[1].shape == (0, 1, 8, 8)
