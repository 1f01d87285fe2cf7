"""Seeded runs of every sampler (and the losses and tools built on samplers), for the bit-identity test.

`build()` returns {name: tensor}. `tests/samplers/data/reference_chains.pt` holds what `build()` returned at commit
0107aa8, before the MCMC step protocol was made public (issue 12); `test_reference_chains.py` checks that every entry
is still produced bit for bit on the CPU. To regenerate after an intended change of some output:

    OMP_NUM_THREADS=1 python tests/samplers/reference_chains.py --write

and say in the commit which entries changed and why (and set MADE_WITH to the build and CPU that wrote the file).
"""
import argparse
import math
from pathlib import Path

import torch
from torch import nn

from torchebm_nb.core import (BaseModel, DoubleWellModel, ExponentialDecayScheduler, GaussianModel, HarmonicModel,
                              LinearScheduler)
from torchebm_nb.losses import ContrastiveDivergence, ParallelTemperingCD, PersistentContrastiveDivergence
from torchebm_nb.models import MLPEnergy
from torchebm_nb.samplers import (FlowSampler, GradientDescentSampler, HamiltonianMonteCarlo, LangevinDynamics,
                                  MetropolisAdjustedLangevin, NesterovSampler, NoUTurnSampler, ParallelTempering,
                                  RiemannianManifoldHMC, annealed_importance_sampling, window_adaptation)

DATA = Path(__file__).parent / 'data' / 'reference_chains.pt'
MADE_WITH = ('2.13.0+cpu', 'AVX512')   # torch.__version__ and torch.backends.cpu.get_cpu_capability() that DATA was made with


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class ShiftedQuadratic(BaseModel):
    "E(x; shift) = ½‖x − shift‖² + ¼Σx⁴, summed over every event dimension; gradient by autograd (no closed form)."
    def forward(self, x, shift=None):
        z = x if shift is None else x - shift.reshape(shift.shape[0], *([1] * (x.ndim - 1)))
        return 0.5 * z.flatten(1).square().sum(1) + 0.25 * x.flatten(1).pow(4).sum(1)


class Field(nn.Module):
    "A small time-conditioned velocity field v(x, t) for the flow sampler."
    def __init__(self, dim: int):
        super().__init__()
        g = gen(11)
        self.w = nn.Parameter(torch.randn(dim, dim, generator=g) * 0.3)
        self.b = nn.Parameter(torch.randn(dim, generator=g) * 0.1)

    def forward(self, x, t):
        return torch.tanh(x @ self.w + self.b) * (1.0 + t[:, None])


def correlated_gaussian(dim: int) -> GaussianModel:
    a = torch.randn(dim, dim, generator=gen(3)) / math.sqrt(dim)
    return GaussianModel(torch.linspace(-1.0, 1.0, dim), a @ a.T + 0.5 * torch.eye(dim))


def flat(*tensors) -> torch.Tensor:
    "Several outputs as one float64 vector (diagnostics, counts, scalars)."
    return torch.cat([torch.as_tensor(t).double().reshape(-1) for t in tensors])


def langevin_runs(out):
    dw = DoubleWellModel(barrier_height=2.0)
    x = torch.randn(8, 3, generator=gen(0))
    s = LangevinDynamics(dw, step_size=ExponentialDecayScheduler(0.02, 0.99, min_value=1e-3), noise_scale=0.9)
    traj, diag = s.sample(x=x, n_steps=40, thin=3, return_trajectory=True, return_diagnostics=True, generator=gen(1))
    out['langevin_em_traj'] = traj
    out['langevin_em_diag'] = flat(*diag.values())
    out['langevin_default_dim'] = LangevinDynamics(dw, step_size=0.01).sample(dim=4, n_samples=5, n_steps=20, generator=gen(2))
    g = correlated_gaussian(3)
    out['langevin_heun_clamp'] = LangevinDynamics(g, step_size=0.05, clamp=(-1.5, 1.5), integrator='heun').sample(
        x=torch.randn(6, 3, generator=gen(3)), n_steps=30, generator=gen(4))
    cond = ShiftedQuadratic()
    shift = torch.linspace(-1, 1, 5)
    out['langevin_conditioned_image'] = LangevinDynamics(cond, step_size=0.02).sample(
        x=torch.randn(5, 1, 3, 3, generator=gen(5)), n_steps=25, model_kwargs={'shift': shift}, generator=gen(6))


def hmc_runs(out):
    g = correlated_gaussian(4)
    x = torch.randn(10, 4, generator=gen(10))
    s = HamiltonianMonteCarlo(g, step_size=LinearScheduler(0.3, 0.1, n_steps=20), n_leapfrog_steps=5)
    traj, diag = s.sample(x=x, n_steps=24, thin=2, return_trajectory=True, return_diagnostics=True, generator=gen(11))
    out['hmc_traj'] = traj
    out['hmc_diag'] = flat(*diag.values())
    s = HamiltonianMonteCarlo(g, step_size=0.25, n_leapfrog_steps=4, mass=torch.tensor([0.5, 1.0, 2.0, 1.5]))
    out['hmc_vector_mass'] = s.sample(x=x, n_steps=30, generator=gen(12))
    out['hmc_scalar_mass_dim'] = HamiltonianMonteCarlo(g, step_size=0.2, mass=2.0).sample(n_samples=6, n_steps=15, generator=gen(13))
    mlp = MLPEnergy(3, hidden_dim=16, depth=2)
    with torch.no_grad():
        for i, p in enumerate(mlp.parameters()): p.copy_(torch.randn(p.shape, generator=gen(100 + i)) * 0.4)
    out['hmc_mlp_energy_reuse'] = HamiltonianMonteCarlo(mlp, step_size=0.1, n_leapfrog_steps=3).sample(
        x=torch.randn(7, 3, generator=gen(14)), n_steps=20, generator=gen(15))
    cond = ShiftedQuadratic()
    out['hmc_conditioned'] = HamiltonianMonteCarlo(cond, step_size=0.2, n_leapfrog_steps=3).sample(
        x=torch.randn(5, 2, generator=gen(16)), n_steps=20, model_kwargs={'shift': torch.linspace(-1, 1, 5)}, generator=gen(17))
    m = MetropolisAdjustedLangevin(g, step_size=0.1, mass=torch.tensor([1.0, 2.0, 0.5, 1.0]))
    traj, diag = m.sample(x=x, n_steps=30, return_trajectory=True, return_diagnostics=True, generator=gen(18))
    out['mala_traj'] = traj
    out['mala_diag'] = flat(*diag.values())
    n = NoUTurnSampler(g, step_size=0.3, max_tree_depth=5)
    out['nuts_chain'] = n.sample(x=x, n_steps=15, generator=gen(19))
    out['nuts_stats'] = flat(*n.last_run_stats.values())
    dw = DoubleWellModel(barrier_height=1.0)
    out['nuts_double_well_diag'] = flat(*NoUTurnSampler(dw, step_size=0.2, max_tree_depth=4, mass=1.5).sample(
        x=torch.randn(6, 2, generator=gen(20)), n_steps=10, return_diagnostics=True, generator=gen(21))[1].values())

    def metric(y):   # SPD, position dependent
        return torch.diag_embed(1.0 + 0.5 * y.square()) + 0.1
    r = RiemannianManifoldHMC(HarmonicModel(k=1.0), metric_fn=metric, step_size=0.2, n_leapfrog_steps=4)
    traj, diag = r.sample(x=torch.randn(5, 2, generator=gen(22)), n_steps=10, return_trajectory=True,
                          return_diagnostics=True, generator=gen(23))
    out['rmhmc_traj'] = traj
    out['rmhmc_diag'] = flat(*diag.values())


def descent_runs(out):
    g = correlated_gaussian(3)
    x = torch.randn(4, 3, generator=gen(30))
    out['gradient_descent'] = GradientDescentSampler(g, step_size=0.05).sample(x=x, n_steps=20, return_trajectory=True)
    traj, diag = NesterovSampler(g, step_size=0.05, momentum=0.8).sample(x=x, n_steps=20, return_trajectory=True,
                                                                         return_diagnostics=True)
    out['nesterov_traj'] = traj
    out['nesterov_diag'] = flat(*diag.values())


def flow_runs(out):
    field = Field(2)
    x0 = torch.randn(6, 2, generator=gen(40))
    traj, diag = FlowSampler(field, integrator='rk4').sample(x=x0, n_steps=10, return_trajectory=True, return_diagnostics=True)
    out['flow_ode_rk4'] = traj
    out['flow_ode_rk4_diag'] = flat(*diag.values())
    out['flow_sde_eps'] = FlowSampler(field, mode='sde', sample_eps=0.05).sample(x=x0, n_steps=20, generator=gen(41))


def tuning_and_estimation_runs(out):
    g = correlated_gaussian(3)
    res = window_adaptation(HamiltonianMonteCarlo(g, step_size=0.1, n_leapfrog_steps=3),
                            x=torch.randn(8, 3, generator=gen(50)), n_warmup=60, adapt_mass=True, generator=gen(51))
    out['adaptation_hmc'] = flat(res.x, res.step_size, res.mass, res.acceptance_rate, res.step_sizes)
    res = window_adaptation(MetropolisAdjustedLangevin(g, step_size=0.05), x=torch.randn(8, 3, generator=gen(52)),
                            n_warmup=40, generator=gen(53))
    out['adaptation_mala'] = flat(res.x, res.step_size, res.acceptance_rate, res.step_sizes)
    res = window_adaptation(NoUTurnSampler(g, step_size=0.1, max_tree_depth=4), x=torch.randn(6, 3, generator=gen(54)),
                            n_warmup=25, generator=gen(55))
    out['adaptation_nuts'] = flat(res.x, res.step_size, res.acceptance_rate, res.step_sizes)
    dw = DoubleWellModel(barrier_height=1.0)
    ais = annealed_importance_sampling(dw, n_samples=20, n_temperatures=15, dim=2, generator=gen(56))
    out['ais_default'] = flat(ais.log_weights, ais.samples, ais.log_z)
    ais = annealed_importance_sampling(dw, n_samples=12, n_temperatures=8, dim=2, n_steps=2, generator=gen(57),
                                       transition=lambda path: HamiltonianMonteCarlo(path, step_size=0.2, n_leapfrog_steps=3))
    out['ais_hmc'] = flat(ais.log_weights, ais.samples)


def tempering_runs(out):
    dw = DoubleWellModel(barrier_height=3.0)
    x = torch.randn(5, 2, generator=gen(60))
    pt = ParallelTempering(LangevinDynamics(dw, step_size=0.02), n_replicas=3, max_temperature=5.0, swap_every=2)
    traj, diag = pt.sample(x=x, n_steps=20, thin=4, return_trajectory=True, return_diagnostics=True, generator=gen(61))
    out['pt_langevin_traj'] = traj
    out['pt_langevin_diag'] = flat(*diag.values())
    out['pt_langevin_replicas'] = pt.last_replicas
    pt = ParallelTempering(HamiltonianMonteCarlo(dw, step_size=0.2, n_leapfrog_steps=3), temperatures=[1.0, 2.0, 4.5])
    out['pt_hmc'] = pt.sample(x=x, n_steps=12, generator=gen(62))
    out['pt_hmc_swaps'] = pt.swap_acceptance.clone()
    replicas, accepted = pt.run_replicas(pt.last_replicas, n_steps=5, generator=gen(63))
    out['pt_hmc_continue'] = flat(replicas, accepted)


def loss_runs(out):
    def model():
        m = MLPEnergy(2, hidden_dim=8, depth=2)
        with torch.no_grad():
            for i, p in enumerate(m.parameters()): p.copy_(torch.randn(p.shape, generator=gen(200 + i)) * 0.5)
        return m
    data = torch.randn(16, 2, generator=gen(70))
    for name, make in (('cd', lambda m: ContrastiveDivergence(m, LangevinDynamics(m, step_size=0.01), k_steps=5)),
                       ('pcd', lambda m: PersistentContrastiveDivergence(m, HamiltonianMonteCarlo(m, step_size=0.05, n_leapfrog_steps=2),
                                                                         k_steps=3, buffer_size=32, init_steps=4)),
                       ('ptcd', lambda m: ParallelTemperingCD(m, LangevinDynamics(m, step_size=0.01), n_replicas=3, k_steps=4,
                                                              buffer_size=32, init_steps=3))):
        m = model()
        loss_fn = make(m)
        g = gen(71)
        values, negs = [], []
        for _ in range(2):
            loss, neg = loss_fn(data, generator=g)
            loss.backward()
            values.append(loss.detach()); negs.append(neg)
        grads = [p.grad.reshape(-1) for p in m.parameters()]
        out[f'loss_{name}'] = flat(*values, *negs, *grads)


def build() -> dict:
    "Every run, on one thread (the thread count the caller had is restored)."
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for runs in (langevin_runs, hmc_runs, descent_runs, flow_runs, tuning_and_estimation_runs, tempering_runs, loss_runs):
            runs(out)
    finally: torch.set_num_threads(threads)
    return {k: (v.detach().clone() if torch.is_tensor(v) else torch.as_tensor(v)) for k, v in out.items()}


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--write', action='store_true', help=f'write {DATA}')
    args = parser.parse_args()
    result = build()
    for k, v in result.items(): print(f'{k:32s} {tuple(v.shape)} {v.dtype}')
    if args.write:
        DATA.parent.mkdir(exist_ok=True)
        torch.save(result, DATA)
        print(f'written {DATA} ({DATA.stat().st_size} bytes)')
