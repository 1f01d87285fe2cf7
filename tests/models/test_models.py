"""Tests of torchebm_nb.models: every component's shapes, dtypes and errors; adaLN-Zero identity / zero-output
initialisation; DiT (small CPU configuration: forward, backward, training steps, conditioning, presets checked on the
meta device); TimeConditionedMLP and MLPEnergy; the deprecated ConditionalTransformer2D; and the wrappers EqMEnergy,
InteractionModel and ClassifierFreeGuidance, alone and driven by the samplers.
"""
import math

import pytest
import torch
from torch import nn
import torch.nn.functional as F

import torchebm_nb.models as models
from torchebm_nb._deprecation import TorchEBMDeprecationWarning, _WARNED_ONCE
from torchebm_nb.core import (BaseModel, GaussianModel, HarmonicModel, LinearScheduler, TemperatureScheduler)
from torchebm_nb.models import (AdaLNZeroBlock, AdaLNZeroLinearHead, AdaLNZeroMLPBlock, AdaLNZeroPatchHead,
                                ClassifierFreeGuidance, ConditionalTransformer2D, ConvPatchEmbed2d, DiT, EqMEnergy,
                                FeedForward, InteractionModel, LabelEmbedder, MLPEnergy, MLPTimestepEmbedder,
                                MultiheadSelfAttention, TimeConditionedMLP, build_2d_sincos_pos_embed, patchify2d,
                                unpatchify2d)
from torchebm_nb.models.dit import _DIT_CONFIGS
from torchebm_nb.samplers import FlowSampler, GradientDescentSampler, LangevinDynamics

F64 = torch.float64
DTYPES = [torch.float32, torch.float64]

API_NAMES = {
    'DiT', 'TimeConditionedMLP', 'ClassifierFreeGuidance', 'ConditionalTransformer2D', 'InteractionModel', 'EqMEnergy',
    *(f'dit_{s}_{p}' for s in ('s', 'b', 'l', 'xl') for p in (2, 4, 8)),
    'MLPTimestepEmbedder', 'LabelEmbedder', 'build_2d_sincos_pos_embed', 'ConvPatchEmbed2d', 'patchify2d', 'unpatchify2d',
    'FeedForward', 'MultiheadSelfAttention', 'AdaLNZeroBlock', 'AdaLNZeroMLPBlock', 'AdaLNZeroLinearHead',
    'AdaLNZeroPatchHead',
}


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def small_dit(**kw):
    cfg = dict(input_size=8, in_channels=3, patch_size=2, embed_dim=32, depth=2, num_heads=4)
    return DiT(**{**cfg, **kw})


def test_exports_are_exactly_the_contract_plus_mlp_energy():
    assert set(models.__all__) == API_NAMES | {'MLPEnergy', 'ConvEnergy', 'WideResNetEnergy', 'RBM', 'IsingModel', 'PottsModel', 'lattice_couplings'}
    assert len(models.__all__) == len(set(models.__all__))
    for name in models.__all__: assert getattr(models, name) is not None
    from torchebm_nb.models import components
    assert set(components.__all__) == API_NAMES - {'DiT', 'TimeConditionedMLP', 'ClassifierFreeGuidance',
                                                   'ConditionalTransformer2D', 'InteractionModel', 'EqMEnergy',
                                                   *(n for n in API_NAMES if n.startswith('dit_'))}


# ---------------------------------------------------------------------------------------------------- components
@pytest.mark.parametrize('dtype', DTYPES)
def test_timestep_embedder(dtype):
    emb = MLPTimestepEmbedder(16, frequency_embedding_size=10).to(dtype)
    t = torch.rand(5, generator=gen(), dtype=dtype)
    out = emb(t)
    assert out.shape == (5, 16) and out.dtype == dtype
    phi = MLPTimestepEmbedder.sinusoidal_embedding(t, 10)
    k = torch.arange(5, dtype=F64)
    freqs = torch.exp(-math.log(10000) * k / 5)
    expected = torch.cat([torch.cos(t.double()[:, None] * freqs), torch.sin(t.double()[:, None] * freqs)], 1)
    torch.testing.assert_close(phi.double(), expected, rtol=1e-5, atol=1e-6)
    assert MLPTimestepEmbedder.sinusoidal_embedding(t, 9).shape == (5, 9)          # odd: zero-padded
    with pytest.raises(ValueError, match='one time per sample'): emb(torch.zeros(5, 2, dtype=dtype))
    with pytest.raises(ValueError, match='out_dim must be'): MLPTimestepEmbedder(0)


@pytest.mark.parametrize('dtype', DTYPES)
def test_label_embedder(dtype):
    emb = LabelEmbedder(5, 8, dropout_prob=0.3).to(dtype)
    labels = torch.tensor([0, 4, 5, 2])
    assert emb(labels, training=False).dtype == dtype and emb.embedding.num_embeddings == 6
    mask = torch.tensor([False, True, False, True])
    torch.testing.assert_close(emb(labels, training=False, force_drop_mask=mask),
                               emb.embedding(torch.tensor([0, 5, 5, 5])))
    torch.manual_seed(0)
    n = 20000
    rate = (emb.maybe_drop_labels(torch.zeros(n, dtype=torch.long)) == 5).float().mean().item()
    assert abs(rate - 0.3) < 5 * math.sqrt(0.3 * 0.7 / n)
    with pytest.raises(ValueError, match='needs the null token'): LabelEmbedder(5, 8, dropout_prob=0.1, null_token=False)
    with pytest.raises(ValueError, match='needs the null token'):
        LabelEmbedder(5, 8).maybe_drop_labels(labels, force_drop_mask=mask)
    with pytest.raises(TypeError, match='integer tensor'): emb(labels.float(), training=False)


@pytest.mark.parametrize('dtype', DTYPES)
def test_positional_embedding(dtype):
    pe = build_2d_sincos_pos_embed(16, (3, 5), dtype=dtype)
    assert pe.shape == (15, 16) and pe.dtype == dtype
    omega = 1.0 / 10000 ** (torch.arange(4, dtype=F64) / 4)
    i, j = 2, 3                                                                       # token n = i·w + j
    row = torch.cat([torch.sin(j * omega), torch.cos(j * omega), torch.sin(i * omega), torch.cos(i * omega)])
    torch.testing.assert_close(pe[i * 5 + j], row.to(dtype))
    for d in (7, 10):
        with pytest.raises(ValueError, match='embed_dim must be divisible by 4'): build_2d_sincos_pos_embed(d, 4)


@pytest.mark.parametrize('dtype', DTYPES)
def test_patchify_roundtrip_and_conv_embedding(dtype):
    x = torch.randn(2, 3, 6, 10, generator=gen(), dtype=dtype)
    tokens = patchify2d(x, 2)
    assert tokens.shape == (2, 15, 12) and tokens.dtype == dtype
    assert torch.equal(unpatchify2d(tokens, 2, out_channels=3, grid_size=(3, 5)), x)
    embed = ConvPatchEmbed2d(in_channels=3, embed_dim=7, patch_size=2).to(dtype)
    w = embed.proj.weight.permute(0, 2, 3, 1).reshape(7, -1)
    torch.testing.assert_close(embed(x), tokens @ w.T + embed.proj.bias)
    with pytest.raises(ValueError, match='divisible by patch_size=4'): patchify2d(x, 4)
    with pytest.raises(ValueError, match='square grid'): unpatchify2d(tokens, 2, out_channels=3)
    with pytest.raises(ValueError, match='patch_size²·out_channels'): unpatchify2d(tokens, 2, out_channels=2)
    with pytest.raises(ValueError, match='4-D'): patchify2d(x[0], 2)
    with pytest.raises(ValueError, match='in_channels=3'): embed(torch.zeros(1, 2, 4, 4, dtype=dtype))


@pytest.mark.parametrize('dtype', DTYPES)
def test_attention_and_feedforward(dtype):
    torch.manual_seed(0)
    attn = MultiheadSelfAttention(12, 3).to(dtype)
    x = torch.randn(2, 7, 12, dtype=dtype)
    q, k, v = attn.qkv(x).reshape(2, 7, 3, 3, 4).permute(2, 0, 3, 1, 4)
    ref = attn.out_proj((torch.softmax(q @ k.transpose(-1, -2) / 2.0, -1) @ v).transpose(1, 2).reshape(2, 7, 12))
    torch.testing.assert_close(attn(x), ref)
    ff = FeedForward(12, mlp_ratio=1.5, act_layer=nn.SiLU).to(dtype)
    assert ff(x).shape == x.shape and ff.net[0].out_features == 18 and ff(x).dtype == dtype
    with pytest.raises(ValueError, match='embed_dim=10 must be divisible by num_heads=3'): MultiheadSelfAttention(10, 3)
    with pytest.raises(ValueError, match='embed_dim=12'): attn(torch.zeros(2, 7, 6, dtype=dtype))


@pytest.mark.parametrize('dtype', DTYPES)
def test_adaln_zero_blocks_are_identity_and_heads_zero_at_init(dtype):
    g = gen(1)
    x, v, c = (torch.randn(3, 5, 16, generator=g, dtype=dtype), torch.randn(3, 16, generator=g, dtype=dtype),
               torch.randn(3, 8, generator=g, dtype=dtype))
    block = AdaLNZeroBlock(embed_dim=16, num_heads=4, cond_dim=8).to(dtype)
    mlp_block = AdaLNZeroMLPBlock(embed_dim=16, cond_dim=8).to(dtype)
    patch_head = AdaLNZeroPatchHead(embed_dim=16, cond_dim=8, patch_size=2, out_channels=3, grid_size=(1, 5)).to(dtype)
    lin_head = AdaLNZeroLinearHead(embed_dim=16, cond_dim=8, out_dim=4).to(dtype)
    assert torch.equal(block(x, c), x) and torch.equal(mlp_block(v, c), v)
    assert torch.equal(patch_head(x, c), torch.zeros(3, 3, 2, 10, dtype=dtype))
    assert torch.equal(lin_head(v, c), torch.zeros(3, 4, dtype=dtype))
    # a perturbed block follows the DiT equations with chunk order (shift, scale, gate)
    nn.init.normal_(block.modulation[-1].weight, std=0.2, generator=g)
    s1, g1, a1, s2, g2, a2 = block.modulation(c).chunk(6, -1)
    ln = lambda h: F.layer_norm(h, (16,), eps=1e-6)
    h = x + a1[:, None] * block.attn(ln(x) * (1 + g1[:, None]) + s1[:, None])
    h = h + a2[:, None] * block.mlp(ln(h) * (1 + g2[:, None]) + s2[:, None])
    torch.testing.assert_close(block(x, c), h)
    for m, args in ((block, (x, c[:, :4])), (mlp_block, (v, c[:, :4])), (patch_head, (x, c[:, :4])), (lin_head, (v, c[:, :4]))):
        with pytest.raises(ValueError, match='cond must have shape'): m(*args)


# ---------------------------------------------------------------------------------------------------- DiT
def test_dit_zero_at_init_then_trains_and_every_parameter_gets_gradient():
    torch.manual_seed(0)
    model = small_dit(num_classes=5, pos_embed='learnable', head_dim=24, head_depth=1, head_num_heads=2)
    g = gen(2)
    x, t, y = torch.randn(6, 3, 8, 8, generator=g), torch.rand(6, generator=g), torch.tensor([0, 1, 2, 3, 4, 5])
    with torch.no_grad(): assert torch.equal(model(x, t, y), torch.zeros(6, 3, 8, 8))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    target = -x * t[:, None, None, None]
    losses = []
    for _ in range(6):
        loss = F.mse_loss(model(x, t, y, cond=torch.ones(6, 32)), target)
        opt.zero_grad(); loss.backward(); opt.step(); losses.append(loss.item())
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []
    assert losses[-1] < losses[0]


def test_dit_condition_is_the_sum_of_embeddings_and_errors():
    torch.manual_seed(0)
    model = small_dit(num_classes=4, cond_dim=16).eval()
    for p in model.head.parameters(): nn.init.normal_(p, std=0.1)
    for b in model.blocks: nn.init.normal_(b.modulation[-1].weight, std=0.1)
    g = gen(3)
    x, t, y, extra = torch.randn(2, 3, 8, 8, generator=g), torch.rand(2, generator=g), torch.tensor([1, 4]), torch.randn(2, 16, generator=g)
    with torch.no_grad():
        c = model.t_embedder(t) + model.y_embedder(y, training=False) + extra
        torch.testing.assert_close(model(x, t, y, cond=extra), model(x, cond=c))
        assert not torch.allclose(model(x, t, y), model(x, t))
    with pytest.raises(ValueError, match='at least one of t, y or cond'): model(x)
    with pytest.raises(ValueError, match='no label embedder'): small_dit()(x, y=y)
    with pytest.raises(ValueError, match='cond_dim=16'): model(x, cond=torch.zeros(2, 32))
    with pytest.raises(ValueError, match='input_size=\\(8, 8\\)'): model(torch.zeros(2, 3, 4, 4), t)
    with pytest.raises(ValueError, match='in_channels=3'): model(torch.zeros(2, 1, 8, 8), t)
    with pytest.raises(ValueError, match='divisible by patch_size'): small_dit(input_size=9)
    with pytest.raises(ValueError, match='pos_embed must be'): small_dit(pos_embed='rope')
    with pytest.raises(ValueError, match='needs num_classes'): small_dit(class_dropout_prob=0.1)
    with pytest.raises(ValueError, match='not both'): small_dit(num_classes=3, y_embedder=nn.Embedding(3, 32))


def test_dit_float64_rectangular_and_state_dict():
    model = small_dit(input_size=(8, 4), out_channels=6).double()
    x = torch.randn(2, 3, 8, 4, dtype=F64)
    out = model(x, torch.rand(2, dtype=F64))
    assert out.shape == (2, 6, 8, 4) and out.dtype == F64
    assert 'pos_embed' not in model.state_dict()                                     # the fixed table is not saved
    clone = small_dit(input_size=(8, 4), out_channels=6).double()
    clone.load_state_dict(model.state_dict())
    assert torch.equal(clone.pos_embed, model.pos_embed)


@pytest.mark.parametrize('size', ['s', 'b', 'l', 'xl'])
@pytest.mark.parametrize('patch', [2, 4, 8])
def test_presets_configuration_on_meta_device(size, patch):
    make = getattr(models, f'dit_{size}_{patch}')
    with torch.device('meta'):                                                        # no memory allocated
        m = make(input_size=32, in_channels=4, out_channels=8, num_classes=1000)
    cfg = _DIT_CONFIGS[size.upper()]
    assert (m.embed_dim, m.depth, m.num_heads, m.patch_size) == (cfg['embed_dim'], cfg['depth'], cfg['num_heads'], patch)
    assert {'S': (384, 12, 6), 'B': (768, 12, 12), 'L': (1024, 24, 16), 'XL': (1152, 28, 16)}[size.upper()] == \
        (m.embed_dim, m.depth, m.num_heads)
    assert next(m.parameters()).device.type == 'meta'
    if (size, patch) == ('xl', 2):   # the reference DiT-XL/2 has 675,129,632 parameters incl. its frozen 256×1152 table
        assert sum(p.numel() for p in m.parameters()) == 675_129_632 - 256 * 1152


def test_presets_pass_overrides_through():
    with torch.device('meta'):
        m = models.dit_b_4(input_size=16, in_channels=1, depth=2, cond_dim=64)
    assert (m.depth, m.cond_dim, m.patch_size, m.embed_dim) == (2, 64, 4, 768)
    with pytest.raises(TypeError): models.dit_s_2()


# ---------------------------------------------------------------------------------------------------- MLPs
@pytest.mark.parametrize('conditioning', ['adaln_zero', 'concat'])
def test_time_conditioned_mlp(conditioning):
    torch.manual_seed(0)
    m = TimeConditionedMLP(in_dim=3, hidden_dim=16, depth=2, conditioning=conditioning, num_classes=2).double()
    x, t, y = torch.randn(4, 3, dtype=F64), torch.rand(4, dtype=F64), torch.tensor([0, 1, 2, 1])
    out = m(x, t, y)
    assert out.shape == (4, 3) and out.dtype == F64
    if conditioning == 'adaln_zero': assert torch.equal(out, torch.zeros_like(out))
    loss = m(x, t, y).sum() + (m(x, t, y) - x).square().sum()
    loss.backward()
    with pytest.raises(ValueError, match='in_dim=3'): m(torch.zeros(4, 2, dtype=F64), t)
    with pytest.raises(ValueError, match='needs a condition'): m(x)


def test_unconditional_concat_mlp_ignores_t():
    m = TimeConditionedMLP(in_dim=2, hidden_dim=8, depth=1, conditioning='concat', cond_dim=0)
    x = torch.randn(3, 2)
    with torch.no_grad(): assert torch.equal(m(x, torch.rand(3)), m(x))
    with pytest.raises(ValueError, match='unconditional'): m(x, cond=torch.zeros(3, 1))
    with pytest.raises(ValueError, match='cond_dim ≥ 1'): TimeConditionedMLP(in_dim=2, cond_dim=0)


def test_mlp_energy_is_a_base_model_and_samples():
    e = MLPEnergy(2, hidden_dim=16)
    x = torch.randn(5, 2)
    assert isinstance(e, BaseModel) and e(x).shape == (5,) and e.gradient(x).shape == (5, 2)
    assert type(e.net[1]) is nn.SiLU and len(e.net) == 5
    out = LangevinDynamics(e, step_size=0.01).sample(dim=2, n_samples=8, n_steps=5, generator=gen())
    assert out.shape == (8, 2) and torch.isfinite(out).all()
    assert MLPEnergy(3, dtype=F64).net[0].weight.dtype == F64
    with pytest.raises(TypeError, match='Supported parameters: in_dim, hidden_dim, depth, activation'): MLPEnergy(2, width=1)


def test_conditional_transformer_2d_is_deprecated_and_equals_dit():
    info = ConditionalTransformer2D.__deprecation__
    _WARNED_ONCE.discard(f"deprecation:{info.module}:{info.name}")
    kw = dict(in_channels=2, out_channels=2, input_size=4, patch_size=2, embed_dim=8, depth=1, num_heads=2, cond_dim=6)
    with pytest.warns(TorchEBMDeprecationWarning, match='DiT'):
        old = ConditionalTransformer2D(**kw)
    assert (info.since, info.deprecated_on) == ('0.1.0', '2026-11-22')
    torch.manual_seed(0)
    for p in old.parameters(): nn.init.normal_(p, std=0.1)
    new = DiT(input_size=4, in_channels=2, out_channels=2, patch_size=2, embed_dim=8, depth=1, num_heads=2, cond_dim=6)
    new.load_state_dict(old.state_dict())
    x, c = torch.randn(3, 2, 4, 4), torch.randn(3, 6)
    with torch.no_grad():
        assert torch.equal(old(x, c), new(x, cond=c)) and torch.equal(old(x, t=c), old(x, c))
    with pytest.raises(ValueError, match='needs a conditioning vector'): old(x)


# ---------------------------------------------------------------------------------------------------- wrappers
class LinearField(nn.Module):
    def __init__(self, A): super().__init__(); self.A = nn.Parameter(A)
    def forward(self, x, t, **kw): return x @ self.A.T


@pytest.mark.parametrize('energy_type', ['dot', 'mean', 'l2', 'implicit'])
def test_eqm_energy_closed_forms_under_no_grad(energy_type):
    A = torch.tensor([[1.0, 0.5, 0.0], [-0.3, 2.0, 0.1], [0.2, 0.0, 0.7]], dtype=F64)
    e = EqMEnergy(LinearField(A), energy_type)
    x = torch.randn(5, 3, generator=gen(), dtype=F64)
    expected = {'dot': x @ (A + A.T).T, 'mean': x @ (A + A.T).T, 'l2': -x @ (A.T @ A).T, 'implicit': x @ A.T}[energy_type]
    with torch.no_grad():
        torch.testing.assert_close(e.gradient(x), expected)
        energy = e(x)
    assert energy.shape == (5,)
    if energy_type == 'l2': torch.testing.assert_close(energy, -0.5 * (x @ A.T).square().sum(1))
    else: torch.testing.assert_close(energy, (x * (x @ A.T)).sum(1))


def test_eqm_energy_from_loss_and_errors():
    from torchebm_nb.losses import EquilibriumMatchingLoss
    field = LinearField(torch.eye(2))
    assert EqMEnergy.from_loss(EquilibriumMatchingLoss(field)).energy_type == 'implicit'      # 'none' → 'implicit'
    for kind in ('dot', 'mean', 'l2'):
        adapter = EqMEnergy.from_loss(EquilibriumMatchingLoss(field, energy_type=kind))
        assert adapter.energy_type == kind and adapter.field is field
    with pytest.raises(ValueError, match="energy_type must be one of"): EqMEnergy(field, 'none')
    with pytest.raises(ValueError, match='shaped like x'): EqMEnergy(LinearField(torch.ones(3, 2)))(torch.randn(4, 2))


def test_eqm_energy_implicit_descent_reaches_the_data_point():
    # f(x) = x − μ points from the data point μ towards noise: descending it with GradientDescentSampler converges to μ
    mu = torch.tensor([1.0, -2.0])
    class Field(nn.Module):
        def __init__(self): super().__init__(); self.dummy = nn.Parameter(torch.zeros(()))
        def forward(self, x, t): return x - mu + 0 * self.dummy
    x0 = torch.randn(16, 2, generator=gen()) * 3
    out = GradientDescentSampler(EqMEnergy(Field(), 'implicit'), step_size=0.1).sample(x=x0, n_steps=150)
    torch.testing.assert_close(out, mu.expand(16, 2), atol=1e-5, rtol=0)


def test_interaction_model_energy_and_closed_form_gradient():
    # analytic V (a Gaussian, closed-form gradient) on (B, D)
    x = torch.randn(6, 2, generator=gen(), dtype=F64)
    V = GaussianModel(torch.zeros(2), torch.tensor([[2.0, 0.3], [0.3, 1.0]]), dtype=F64)
    im = InteractionModel(V, sigma_w=1.5, strength=0.4)
    brute = V(x) - 0.5 * 0.4 / 1.5 ** 2 * torch.cdist(x, x).square().sum(1)
    torch.testing.assert_close(im(x), brute)
    torch.testing.assert_close(im.gradient(x), BaseModel.gradient(im, x))             # closed form = autograd
    torch.testing.assert_close(im.gradient(x), V.gradient(x) - 2 * 0.4 / 2.25 * (6 * x - x.sum(0)))
    # neural V on images (B, C, H, W): V's autograd gradient plus the closed-form interaction
    class ImageEnergy(BaseModel):
        def forward(self, x): return 0.5 * x.flatten(1).square().sum(1) + x.flatten(1)[:, 0] ** 3
    imgs = torch.randn(5, 2, 2, 2, generator=gen(1), dtype=F64)
    flat = imgs.flatten(1)
    im2 = InteractionModel(ImageEnergy(dtype=F64), sigma_w=1.5, strength=0.4)
    brute = 0.5 * flat.square().sum(1) + flat[:, 0] ** 3 - 0.5 * 0.4 / 2.25 * torch.cdist(flat, flat).square().sum(1)
    torch.testing.assert_close(im2(imgs), brute)
    with torch.no_grad(): torch.testing.assert_close(im2.gradient(imgs), BaseModel.gradient(im2, imgs))
    state = imgs.clone()
    im2.gradient(state).neg_()                                                        # samplers negate in place
    assert torch.equal(state, imgs)
    with pytest.raises(ValueError, match='sigma_w must be positive'): InteractionModel(V, sigma_w=0.0)
    with pytest.raises(ValueError, match='sigma_w must be positive'): InteractionModel(V, sigma_w=-2)
    with pytest.raises(TypeError, match="unexpected keyword argument"): InteractionModel(V, 1.0, beta=1.0)


def test_interaction_strength_is_stepped_by_samplers():
    im = InteractionModel(HarmonicModel(), sigma_w=4.0, strength=LinearScheduler(1.0, 0.0, 10))
    sampler = LangevinDynamics(im, step_size=0.01)
    sampler.step_schedulers(); sampler.step_schedulers()
    assert im.strength == pytest.approx(0.8)
    sampler.sample(dim=2, n_samples=4, n_steps=7, generator=gen())
    assert im.strength == pytest.approx(0.3)                                          # reset at entry, then 7 steps
    temp = TemperatureScheduler(0.15, 0.8, n_steps=10, sqrt=False)
    im.strength = temp
    sampler.sample(dim=2, n_samples=4, n_steps=10, generator=gen())
    assert im.strength == pytest.approx(0.15)


def test_interaction_doubles_the_spread_of_harmonic_chains():
    # V = ½‖x‖², B = 64, s = 1, σ_w = 16: around the batch mean the stiffness drops from 1 to 1 − 2sB/σ² = ½, so the
    # stationary variance around the mean doubles (up to Euler–Maruyama's O(h) bias)
    spread = []
    for model in (HarmonicModel(), InteractionModel(HarmonicModel(), sigma_w=16.0, strength=1.0)):
        traj = LangevinDynamics(model, step_size=0.02).sample(dim=2, n_samples=64, n_steps=3000, thin=20,
                                                               return_trajectory=True, generator=gen(5))[:, 50:]
        spread.append((traj - traj.mean(0, keepdim=True)).square().mean().item())
    assert spread[1] / spread[0] == pytest.approx(2.0, abs=0.35)


class CountingField(nn.Module):
    def __init__(self): super().__init__(); self.calls = 0; self.w = nn.Parameter(torch.ones(()))
    def forward(self, x, t, y=None, scale=None, tag=None):
        self.calls += 1
        factor = 1.0 if y is None else (y.to(x.dtype) + 1).view(-1, *([1] * (x.ndim - 1)))
        out = self.w * x * factor + t.view(-1, *([1] * (x.ndim - 1)))
        if scale is not None: out = out + scale.view(-1, *([1] * (x.ndim - 1))) * torch.arange(x.shape[1]).view(1, -1, *([1] * (x.ndim - 2)))
        return out, 'activations'


def test_cfg_is_one_batched_call_equal_to_two_calls():
    f = CountingField()
    g = gen(4)
    x, t, y, scale = torch.randn(4, 3, 2, 2, generator=g), torch.rand(4, generator=g), torch.tensor([0, 1, 2, 0]), torch.randn(4, generator=g)
    cfg = ClassifierFreeGuidance(f, guidance_scale=2.5, null_condition=3)
    with torch.no_grad():
        guided = cfg(x, t, y, scale=scale, tag='keep')
        assert f.calls == 1
        cond, uncond = f(x, t, y, scale=scale)[0], f(x, t, torch.full_like(y, 3), scale=scale)[0]
        torch.testing.assert_close(guided, uncond + 2.5 * (cond - uncond))
        f.calls = 0
        torch.testing.assert_close(ClassifierFreeGuidance(f, 0.0, 3)(x, t, y, scale=scale), uncond)
        assert f.calls == 1                                                            # w = 0: one un-doubled call
        f.calls = 0
        torch.testing.assert_close(cfg(x, t, scale=scale), f(x, t, scale=scale)[0]); assert f.calls == 2  # no y: plain
        part = ClassifierFreeGuidance(f, 2.5, 3, guide_channels=2)(x, t, y, scale=scale)
        torch.testing.assert_close(part[:, :2], guided[:, :2]); torch.testing.assert_close(part[:, 2:], uncond[:, 2:])
        null_vec = ClassifierFreeGuidance(f, 2.5, torch.tensor(3))(x, t, y, scale=scale)
        torch.testing.assert_close(null_vec, guided)
    with pytest.raises(ValueError, match='null_condition is required'): ClassifierFreeGuidance(f, 2.0, None)


def test_cfg_wraps_dit_and_drives_flow_sampler():
    torch.manual_seed(0)
    dit = small_dit(num_classes=3, depth=1).eval()
    for p in dit.parameters(): nn.init.normal_(p, std=0.05)
    cfg = ClassifierFreeGuidance(dit, guidance_scale=4.0, null_condition=3)
    x, t, y = torch.randn(2, 3, 8, 8, generator=gen()), torch.rand(2, generator=gen()), torch.tensor([0, 2])
    with torch.no_grad():
        torch.testing.assert_close(cfg(x, t, y), dit(x, t, torch.tensor([3, 3])) + 4.0 * (dit(x, t, y) - dit(x, t, torch.tensor([3, 3]))),
                                   rtol=1e-4, atol=1e-5)
    calls = []
    dit.register_forward_hook(lambda m, a, k: calls.append(a[0].shape[0]))
    out = FlowSampler(cfg, integrator='euler').sample(x=x, n_steps=3, y=y, generator=gen())
    assert out.shape == x.shape and calls == [4, 4, 4]                               # one 2B call per step


def test_cfg_guides_an_energy_gradient():
    class ClassEnergy(BaseModel):
        def __init__(self):
            super().__init__(); self.register_buffer('mu', torch.tensor([[2.0, 0.0], [-2.0, 1.0], [0.0, 0.0]]))
        def forward(self, x, y): return 0.5 * (x - self.mu[y]).square().sum(-1)
    guided = ClassifierFreeGuidance(ClassEnergy(), guidance_scale=1.5, null_condition=2)
    x, y = torch.randn(5, 2, generator=gen()), torch.tensor([0, 1, 1, 0, 2])
    with torch.no_grad():
        torch.testing.assert_close(guided.gradient(x, {'y': y}), x - 1.5 * guided.model.mu[y])


@pytest.mark.cuda
def test_dit_on_cuda_with_bf16_autocast():
    model = small_dit(embed_dim=64, num_classes=4).cuda()
    x, t, y = torch.randn(4, 3, 8, 8, device='cuda'), torch.rand(4, device='cuda'), torch.tensor([0, 1, 2, 3], device='cuda')
    with torch.autocast('cuda', dtype=torch.bfloat16):
        out = model(x, t, y)
    assert out.shape == x.shape and torch.equal(out.float(), torch.zeros_like(x))
    out.float().sum().backward()
    ref = small_dit(embed_dim=64).cuda().double()
    assert ref(x.double(), t.double()).dtype == F64
