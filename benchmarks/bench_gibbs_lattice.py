"""CPU benchmark: checkerboard Gibbs sweeps on a periodic Ising lattice, `GibbsSampler` against a hand-written torch loop.

The model: a 64×64 periodic Ising lattice, J = 1, h = 0, T = 2.269 (near the critical temperature); 1,024 chains in one
float32 tensor, one thread. The library runs `GibbsSampler(model, scan='checkerboard').sample(x=start, n_steps=N,
generator=g)`, which takes the stencil path (per-bond weights, `torch.roll` neighbour sums). The reference does the
same maths by hand: per half-sweep, the neighbour sum of four rolls, p(s = −1) = σ(−2·J·sum/T), a new spin +1 iff the
site's uniform exceeds p, and a masked update of the sites of that colour; one (B, L, W) uniform draw per sweep from
its generator. Before timing, both sides are run from the same start and seed and checked to give the same chains.
Both run in one process, interleaved (alternating which goes first), `--repeats` times after a warm-up; medians of
sweeps per second are reported with the ratio library / hand-written time (target ≤ 1.2).

    OMP_NUM_THREADS=1 python benchmarks/bench_gibbs_lattice.py [--repeats 7] [--sweeps 20] [--out benchmarks/results/cpu_gibbs_lattice.json]
"""
import argparse, statistics, time, warnings

import torch

from _report import run_meta, write_report

from torchebm_nb.models import IsingModel
from torchebm_nb.samplers import GibbsSampler

SIDE, CHAINS, J, TEMPERATURE = 64, 1024, 1.0, 2.269


def reference(start, n_sweeps, gen):
    "Hand-written checkerboard Gibbs on the spins (B, L, W): the same maths as the library's stencil path."
    s = start.view(-1, SIDE, SIDE)
    parity = (torch.arange(SIDE)[:, None] + torch.arange(SIDE)) % 2
    colours, up, down, scale = (parity == 0, parity == 1), s.new_ones(()), s.new_full((), -1.0), -2.0 * J / TEMPERATURE
    for _ in range(n_sweeps):
        u = torch.rand(s.shape, generator=gen, dtype=s.dtype)
        for colour in colours:
            total = s.roll(-1, 2) + s.roll(1, 2) + s.roll(-1, 1) + s.roll(1, 1)
            p_down = total.mul_(scale).sigmoid_()
            s = torch.where(colour, torch.where(u > p_down, up, down), s)
    return s.reshape(start.shape)


def timed(fn):
    t0 = time.perf_counter(); fn(); return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--sweeps', type=int, default=20, help='sweeps per timed run')
    parser.add_argument('--out', default='benchmarks/results/cpu_gibbs_lattice.json')
    parser.add_argument('--note', default='1-core development machine, one thread', help='what the machine was doing, for the record')
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings('ignore', message='GibbsSampler: this run looks unconverged')   # short runs from a random start; the check still runs
    model = IsingModel.lattice(SIDE, J=J, temperature=TEMPERATURE)
    sampler = GibbsSampler(model, scan='checkerboard')
    start = torch.where(torch.rand(CHAINS, SIDE * SIDE, generator=torch.Generator().manual_seed(0)) > 0.5, 1.0, -1.0)
    library = lambda n, seed: sampler.sample(x=start, n_steps=n, generator=torch.Generator().manual_seed(seed))
    hand = lambda n, seed: reference(start, n, torch.Generator().manual_seed(seed))
    same = bool(torch.equal(library(3, 1), hand(3, 1)))   # also the warm-up
    print('same chains after 3 sweeps:', same)
    assert same, 'the library and the reference must give the same chains'
    lib_t, ref_t = [], []
    for i in range(args.repeats):                                  # interleaved, alternating which side goes first
        pair = [(lib_t, library), (ref_t, hand)] if i % 2 == 0 else [(ref_t, hand), (lib_t, library)]
        for out, fn in pair: out.append(timed(lambda: fn(args.sweeps, i)))
    lib, ref = statistics.median(lib_t), statistics.median(ref_t)
    row = dict(name='checkerboard Gibbs, 64x64 periodic Ising, 1024 chains, float32', lattice=[SIDE, SIDE], chains=CHAINS,
               J=J, h=0.0, temperature=TEMPERATURE, sweeps=args.sweeps, repeats=args.repeats, same_chains=same,
               library_s=lib, reference_s=ref, library_sweeps_per_s=args.sweeps / lib,
               reference_sweeps_per_s=args.sweeps / ref, ratio=lib / ref, target_ratio=1.2,
               library_all_s=lib_t, reference_all_s=ref_t)
    print(f"library {args.sweeps / lib:.2f} sweeps/s   hand-written {args.sweeps / ref:.2f} sweeps/s   ratio {lib / ref:.3f}")
    write_report(args.out, run_meta(machine_note=args.note), [row])


if __name__ == '__main__':
    main()
