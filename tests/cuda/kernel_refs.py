"""Shared references for the kernel tests: torch samplers fed given numbers, and the Philox numbers each kernel draws."""
import math

import torch

from torchebm_nb.core import (AckleyModel, DoubleWellModel, GaussianModel, HarmonicModel, RastriginModel,
                              RosenbrockModel)
from torchebm_nb.cuda.philox import philox4x32, philox_counters, philox_normal, uniform_from_bits
from torchebm_nb.samplers import HamiltonianMonteCarlo, LangevinDynamics


def energies(dim: int = 4, device='cpu'):
    "One instance of every analytic energy the kernels support, by name (D = dim)."
    g = torch.Generator().manual_seed(11)
    a = torch.randn(dim, dim, generator=g)
    full_cov = a @ a.T / dim + 0.5 * torch.eye(dim)
    diag_cov = torch.diag(torch.linspace(0.5, 2.0, dim))
    mean = torch.linspace(-1.0, 1.0, dim)
    models = {
        'double_well': DoubleWellModel(barrier_height=1.5, b=1.2),
        'harmonic': HarmonicModel(k=2.5),
        'gaussian_diag': GaussianModel(mean, diag_cov),
        'gaussian_full': GaussianModel(mean, full_cov),
        'rastrigin': RastriginModel(a=3.0),
        'ackley': AckleyModel(),
        'rosenbrock': RosenbrockModel(a=1.0, b=5.0),
    }
    return {k: m.to(device) for k, m in models.items()}


class FedLangevin(LangevinDynamics):
    "The torch Langevin path (run it outside `use_backend`), drawing its noise from a given (n_steps, *x.shape) tensor."
    def __init__(self, *args, noise=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fed = noise
    def _draw_noise(self, state, generator):
        self._i = getattr(self, '_i', -1) + 1
        return self.fed[self._i].reshape(state.x.shape).to(state.x.dtype).clone()


class FedHMC(HamiltonianMonteCarlo):
    "The torch HMC path, drawing momenta and uniforms from given (n_iter, B, D) and (n_iter, B) tensors."
    def __init__(self, *args, momenta=None, uniforms=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fed_p, self.fed_u = momenta, uniforms
        self._ip = self._iu = -1
    def _draw_momentum(self, x, generator):
        self._ip += 1
        return self.fed_p[self._ip].reshape(x.shape).to(x.dtype).clone()
    def _draw_uniform(self, x, generator):
        self._iu += 1
        return self.fed_u[self._iu].to(x.dtype).clone()


def langevin_normals(n_steps: int, shape, seed: int, counter: int = 0, device='cpu'):
    "The normals the Langevin kernels draw: step s uses philox_normal(numel, seed, counter + s⌈numel/4⌉)."
    numel = math.prod(shape)
    per = philox_counters(numel)
    return torch.stack([philox_normal((numel,), seed, counter + s * per, device=device).reshape(shape)
                        for s in range(n_steps)])


def hmc_numbers(n_iter: int, n_chains: int, dim: int, seed: int, counter: int = 0, device='cpu'):
    "The momenta (n_iter, B, D) and Metropolis uniforms (n_iter, B) the HMC kernel draws."
    n4, nb4 = philox_counters(n_chains * dim), -(-n_chains // 4)
    key = torch.tensor([seed & 0xFFFFFFFF, seed >> 32], dtype=torch.int64, device=device)
    ps, us = [], []
    for s in range(n_iter):
        c = counter + s * (n4 + nb4)
        ps.append(philox_normal((n_chains * dim,), seed, c, device=device).reshape(n_chains, dim))
        j = c + n4 + torch.arange(nb4, dtype=torch.int64, device=device)
        ctr = torch.stack([j & 0xFFFFFFFF, j >> 32, torch.zeros_like(j), torch.zeros_like(j)], -1)
        us.append(uniform_from_bits(philox4x32(ctr, key)).reshape(-1)[:n_chains])
    return torch.stack(ps), torch.stack(us)


def sampler_seed(generator_seed: int, device='cpu') -> int:
    "The Philox key a kernel-path sampler draws first from `torch.Generator().manual_seed(generator_seed)` (x given)."
    g = torch.Generator(device).manual_seed(generator_seed)
    return int(torch.randint(0, 2**62, (1,), generator=g, device=device, dtype=torch.int64).item())
