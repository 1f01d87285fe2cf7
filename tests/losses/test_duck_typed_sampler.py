"""Contrastive divergence accepts any object with a sampler's `sample(x=..., n_steps=...)`, not only BaseSampler.

- A duck-typed sampler that delegates to a LangevinDynamics (but is not a BaseSampler) gives CD and PCD losses,
  negatives and replay buffers identical to the LangevinDynamics itself, with the same generator: the loss passes
  the generator and the conditioning through exactly as it does for a BaseSampler.
- A minimal sampler whose `sample(x, n_steps)` takes neither `generator` nor `model_kwargs` works: its negatives
  are the closed-form result of its deterministic steps, for CD and for PCD (buffer burn-in and continuation);
  conditioning such a sampler raises TypeError before it runs.
- Objects without a callable `sample` are refused at construction with a TypeError naming the argument.
"""
import pytest
import torch
from torch import nn

from torchebm_nb.core import BaseModel, HarmonicModel
from torchebm_nb.losses import ContrastiveDivergence, PersistentContrastiveDivergence
from torchebm_nb.samplers import LangevinDynamics

F64 = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


class Quadratic(BaseModel):
    """E(x) = ½a‖x − μ_y‖²: learnable a; μ_y = y·(1, −1) when conditioned on y, else 0."""
    def __init__(self, a=1.5):
        super().__init__(dtype=F64)
        self.a = nn.Parameter(torch.tensor(a, dtype=F64))

    def forward(self, x, y=None):
        centre = 0.0 if y is None else y.to(x.dtype)[:, None] * torch.tensor([1.0, -1.0], dtype=x.dtype)
        return 0.5 * self.a * (x - centre).square().sum(-1)


class DelegatingSampler:
    """Not a BaseSampler: forwards every call to a LangevinDynamics and records what it was given."""
    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def sample(self, x=None, n_steps=1, **options):
        self.calls.append((n_steps, sorted(options)))
        return self.inner.sample(x=x, n_steps=n_steps, **options)


class HalvingSampler:
    """The smallest sampler there is: n_steps deterministic steps x ← x/2; no generator, no conditioning."""
    def __init__(self):
        self.steps = 0

    def sample(self, x, n_steps):
        self.steps += n_steps
        return x / 2 ** n_steps


def test_cd_with_a_delegating_sampler_matches_the_base_sampler():
    model = Quadratic()
    x = torch.randn(16, 2, generator=gen(0), dtype=F64)
    make = lambda: LangevinDynamics(model, step_size=0.05, dtype=F64)
    duck = DelegatingSampler(make())
    for loss_class in (ContrastiveDivergence, PersistentContrastiveDivergence):
        kw = dict(k_steps=4, dtype=F64) if loss_class is ContrastiveDivergence else dict(k_steps=4, buffer_size=32, init_steps=3, dtype=F64)
        reference, ducked = loss_class(model, make(), **kw), loss_class(model, duck, **kw)
        for call in range(3):                  # PCD: buffer initialisation, then continued chains
            loss_r, neg_r = reference(x, generator=gen(10 + call))
            loss_d, neg_d = ducked(x, generator=gen(10 + call))
            assert torch.equal(neg_d, neg_r), (loss_class.__name__, call, (neg_d - neg_r).abs().max())
            assert torch.equal(loss_d, loss_r), (loss_class.__name__, call, loss_d, loss_r)
        if loss_class is PersistentContrastiveDivergence:
            assert torch.equal(ducked.replay_buffer, reference.replay_buffer)
    assert all(options == ['generator', 'model_kwargs'] for _, options in duck.calls), duck.calls
    assert [n for n, _ in duck.calls] == [4] * 3 + [3, 4, 4, 4], duck.calls   # CD ×3, then PCD burn-in + 3 calls


def test_conditioning_reaches_a_delegating_sampler():
    model = Quadratic()
    x = torch.randn(8, 2, generator=gen(1), dtype=F64)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    reference = ContrastiveDivergence(model, LangevinDynamics(model, step_size=0.05, dtype=F64), k_steps=3, dtype=F64)
    ducked = ContrastiveDivergence(model, DelegatingSampler(LangevinDynamics(model, step_size=0.05, dtype=F64)),
                                   k_steps=3, dtype=F64)
    loss_r, neg_r = reference(x, y=y, generator=gen(2))
    loss_d, neg_d = ducked(x, y=y, generator=gen(2))
    assert torch.equal(neg_d, neg_r) and torch.equal(loss_d, loss_r), (loss_d, loss_r)
    unconditioned = ContrastiveDivergence(model, LangevinDynamics(model, step_size=0.05, dtype=F64), k_steps=3, dtype=F64)
    _, neg_u = unconditioned(x, generator=gen(2))
    assert not torch.equal(neg_u, neg_r)       # the label moved the chains, so it did reach the sampler


def test_minimal_sampler_cd_and_pcd():
    model = HarmonicModel(k=1.0)
    x = torch.randn(8, 2, generator=gen(3))
    cd = ContrastiveDivergence(model, HalvingSampler(), k_steps=3, new_sample_ratio=0.0, energy_reg_weight=0.0)
    loss, negatives = cd(x, generator=gen(4))
    assert torch.equal(negatives, x / 8), (negatives - x / 8).abs().max()
    expected = 0.5 * x.square().sum(-1).mean() - 0.5 * (x / 8).square().sum(-1).mean()
    torch.testing.assert_close(loss, expected)

    halving = HalvingSampler()
    pcd = PersistentContrastiveDivergence(model, halving, k_steps=2, buffer_size=8, init_steps=5, new_sample_ratio=0.0)
    noise = 0.01 * torch.randn((8, 2), generator=gen(5))                # the buffer's initial noise, same generator
    buffer = pcd.initialize_buffer((2,), generator=gen(5))
    torch.testing.assert_close(buffer, noise / 2 ** 5)                # burnt in by the duck sampler
    _, first = pcd(x, generator=gen(6))                                 # buffer_size = batch: one read per row
    _, second = pcd(x, generator=gen(7))
    torch.testing.assert_close(second, first / 4)                     # the chains were continued, k = 2 more halvings
    assert halving.steps == 5 + 2 + 2, halving.steps


def test_minimal_sampler_refuses_conditioning_before_running():
    halving = HalvingSampler()
    cd = ContrastiveDivergence(Quadratic(), halving, k_steps=2, dtype=F64)
    x = torch.randn(4, 2, generator=gen(8), dtype=F64)
    with pytest.raises(TypeError, match=r"HalvingSampler\.sample does not accept model_kwargs"):
        cd(x, y=torch.tensor([0, 1, 0, 1]))
    assert halving.steps == 0


@pytest.mark.parametrize('sampler, shown', [(lambda x: x, 'function'), (object(), 'object'), ('langevin', 'str'),
                                            (type('NotCallable', (), {'sample': 3})(), 'NotCallable')])
def test_objects_without_a_callable_sample_are_refused(sampler, shown):
    for loss_class in (ContrastiveDivergence, PersistentContrastiveDivergence):
        with pytest.raises(TypeError, match=rf"sampler must be a BaseSampler .* callable sample\(x=\.\.\., n_steps=\.\.\.\) method; got {shown}"):
            loss_class(HarmonicModel(), sampler)
