"""CPU benchmark: torchebm_nb samplers against hand-written torch loops doing the same maths.

The reference loops use the analytic gradient written in place into preallocated buffers, refill a preallocated
noise buffer each step, and update the state in place: the fastest plain-torch version we know how to write.
Both sides run in the same process on one thread, interleaved, `--repeats` times; medians are reported.
The normal RNG is the floor on CPU: its cost (filling the same number of normals) is measured and reported too.

    OMP_NUM_THREADS=1 python benchmarks/bench_samplers_cpu.py [--repeats 5] [--out benchmarks/results/cpu_samplers.json]
"""
import argparse, math, statistics, time

import torch

from _report import run_meta, write_report

from torchebm_nb.core import DoubleWellModel, GaussianModel
from torchebm_nb.samplers import HamiltonianMonteCarlo, LangevinDynamics


def timed(fn):
    start = time.perf_counter(); fn(); return time.perf_counter() - start


# ---- hand-written references -------------------------------------------------------------------------
def langevin_double_well_ref(x0, n_steps, h, barrier, b, gen):
    x, grad, noise = x0.clone(), torch.empty_like(x0), torch.empty_like(x0)
    c, b2 = math.sqrt(2 * h), b * b
    for _ in range(n_steps):
        torch.mul(x, x, out=grad).sub_(b2).mul_(x).mul_(4 * barrier)
        x.add_(grad, alpha=-h).add_(noise.normal_(generator=gen), alpha=c)
    return x


def langevin_gaussian_ref(x0, n_steps, h, mean, prec, gen):
    x, centred, grad, noise = x0.clone(), torch.empty_like(x0), torch.empty_like(x0), torch.empty_like(x0)
    c = math.sqrt(2 * h)
    for _ in range(n_steps):
        torch.mm(torch.sub(x, mean, out=centred), prec, out=grad)
        x.add_(grad, alpha=-h).add_(noise.normal_(generator=gen), alpha=c)
    return x


def hmc_gaussian_ref(x0, n_iter, h, n_leap, mean, prec, gen):
    x = x0.clone()
    energy = lambda y: 0.5 * ((y - mean) @ prec * (y - mean)).sum(-1)
    gradient = lambda y: (y - mean) @ prec
    u, f, p = energy(x), -gradient(x), torch.empty_like(x)
    acc_u = torch.empty(x.shape[0])
    for _ in range(n_iter):
        p.normal_(generator=gen)
        h0 = 0.5 * p.square().sum(-1) + u
        xn, pn = x.clone(), p.add(f, alpha=0.5 * h)
        for i in range(n_leap):
            xn.add_(pn, alpha=h)
            fn = -gradient(xn)
            pn.add_(fn, alpha=h if i < n_leap - 1 else 0.5 * h)
        un = energy(xn)
        accept = acc_u.uniform_(generator=gen).log_() < (h0 - 0.5 * pn.square().sum(-1) - un).clamp_(-50, 50)
        x = torch.where(accept[:, None], xn, x); f = torch.where(accept[:, None], fn, f); u = torch.where(accept, un, u)
    return x


def rng_floor(shape, n_steps, gen):
    buf = torch.empty(shape)
    for _ in range(n_steps): buf.normal_(generator=gen)


# ---- cases ---------------------------------------------------------------------------------------------
def cases():
    dw = DoubleWellModel(barrier_height=2.0, b=1.0)
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]]); mean2 = torch.tensor([1.0, -1.0])
    g2 = GaussianModel(mean2, cov)
    a = torch.randn(50, 50, generator=torch.Generator().manual_seed(0)) / 50 ** 0.5
    cov50 = a @ a.T + torch.eye(50); g50 = GaussianModel(torch.zeros(50), cov50)
    gen = lambda: torch.Generator().manual_seed(0)
    x_dw = torch.randn(4096, 100, generator=gen()); x_g2 = torch.randn(10_000, 2, generator=gen())
    x_small = torch.randn(16, 2, generator=gen()); x_hmc = torch.randn(1000, 50, generator=gen())
    lang_dw, lang_g2 = LangevinDynamics(dw, step_size=1e-3), LangevinDynamics(g2, step_size=1e-2)
    lang_small = LangevinDynamics(dw, step_size=1e-3)
    hmc = HamiltonianMonteCarlo(g50, step_size=0.1, n_leapfrog_steps=10)
    return [
        dict(name='langevin_double_well_100d', chains=4096, dim=100, steps=200,
             lib=lambda: lang_dw.sample(x=x_dw, n_steps=200, generator=gen()),
             ref=lambda: langevin_double_well_ref(x_dw, 200, 1e-3, 2.0, 1.0, gen()),
             floor=lambda: rng_floor((4096, 100), 200, gen())),
        dict(name='langevin_gaussian_2d_correlated', chains=10_000, dim=2, steps=500,
             lib=lambda: lang_g2.sample(x=x_g2, n_steps=500, generator=gen()),
             ref=lambda: langevin_gaussian_ref(x_g2, 500, 1e-2, mean2, g2.cov_inv, gen()),
             floor=lambda: rng_floor((10_000, 2), 500, gen())),
        dict(name='langevin_fixed_cost_16_chains', chains=16, dim=2, steps=4000,
             lib=lambda: lang_small.sample(x=x_small, n_steps=4000, generator=gen()),
             ref=lambda: langevin_double_well_ref(x_small, 4000, 1e-3, 2.0, 1.0, gen()),
             floor=lambda: rng_floor((16, 2), 4000, gen())),
        dict(name='hmc_gaussian_50d', chains=1000, dim=50, steps=50, leapfrog=10,
             lib=lambda: hmc.sample(x=x_hmc, n_steps=50, generator=gen()),
             ref=lambda: hmc_gaussian_ref(x_hmc, 50, 0.1, 10, torch.zeros(50), g50.cov_inv, gen()),
             floor=lambda: rng_floor((1000, 50), 50, gen())),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--out', default='benchmarks/results/cpu_samplers.json')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = []
    for case in cases():
        case['lib'](); case['ref']()                       # warm-up
        lib, ref, floor = [], [], []
        for _ in range(args.repeats):                       # interleaved: both sides see the same machine load
            lib.append(timed(case['lib'])); ref.append(timed(case['ref'])); floor.append(timed(case['floor']))
        row = {k: v for k, v in case.items() if k not in ('lib', 'ref', 'floor')}
        med = lambda v: statistics.median(v)
        row.update(library_s=med(lib), reference_s=med(ref), rng_floor_s=med(floor), ratio=med(lib) / med(ref),
                   library_us_per_step=1e6 * med(lib) / case['steps'], reference_us_per_step=1e6 * med(ref) / case['steps'],
                   rng_fraction_of_library=med(floor) / med(lib), repeats=args.repeats)
        results.append(row)
        print(f"{row['name']:34s} library {row['library_s']*1e3:9.1f} ms  reference {row['reference_s']*1e3:9.1f} ms  "
              f"ratio {row['ratio']:.2f}  ({row['library_us_per_step']:.1f} vs {row['reference_us_per_step']:.1f} µs/step; "
              f"RNG floor {100*row['rng_fraction_of_library']:.0f}% of library time)")
    meta = run_meta()
    write_report(args.out, meta, results)


if __name__ == '__main__':
    main()
