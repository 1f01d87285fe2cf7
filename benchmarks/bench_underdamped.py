"""CPU benchmark: underdamped Langevin (BAOAB) chain-steps per second, `UnderdampedLangevin` against a hand-written loop.

The target: the separable 100-D double well E(x) = Σᵢ (xᵢ² − 1)² (`DoubleWellModel(barrier_height=1.0)`, closed-form
gradient 4x(x² − 1)); 4,096 chains in one float32 tensor, one thread, h = 0.05, γ = 1, unit mass. The library runs
`UnderdampedLangevin(model, step_size=h, friction=γ, integrator='baoab').sample(x=start, n_steps=N, generator=g)`.
The reference does the same maths by hand, in place: p ~ N(0, I) from the generator, the gradient at the start, then
per step B(h/2) A(h/2) O(h) A(h/2) B(h/2) with one preallocated noise buffer and one gradient per step (the same
kernels as the model's `_grad`). Before timing, both are run from the same start and seed and checked to give the same
chains. Both run in one process, interleaved (alternating which goes first), `--repeats` times after a warm-up; medians
of chain-steps per second are reported with the ratio library / hand-written time (target ≤ 1.2).

    OMP_NUM_THREADS=1 python benchmarks/bench_underdamped.py [--repeats 7] [--steps 100] [--out benchmarks/results/cpu_underdamped.json]
"""
import argparse, math, statistics, time, warnings

import torch

from _report import run_meta, write_report

from torchebm_nb.core import DoubleWellModel
from torchebm_nb.samplers.underdamped_langevin import UnderdampedLangevin

DIM, CHAINS, STEP, FRICTION = 100, 4096, 0.05, 1.0


def reference(start, n_steps, gen):
    "Hand-written in-place BAOAB on E = Σ (x² − 1)²: the same maths and random draws as the library."
    x = start.clone()
    p = torch.empty_like(x).normal_(generator=gen)
    noise, half = torch.empty_like(x), 0.5 * STEP
    c = math.exp(-FRICTION * STEP); s = math.sqrt(-math.expm1(-2.0 * FRICTION * STEP))
    grad = torch.addcmul(x.new_full((), -4.0), x, x, value=4.0).mul_(x)
    for _ in range(n_steps):
        p.sub_(grad, alpha=half)
        x.add_(p, alpha=half)
        p.mul_(c).add_(noise.normal_(generator=gen), alpha=s)
        x.add_(p, alpha=half)
        grad = torch.addcmul(x.new_full((), -4.0), x, x, value=4.0).mul_(x)
        p.sub_(grad, alpha=half)
    return x


def timed(fn):
    t0 = time.perf_counter(); fn(); return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--steps', type=int, default=100, help='steps per timed run')
    parser.add_argument('--out', default='benchmarks/results/cpu_underdamped.json')
    parser.add_argument('--note', default='1-core development machine shared with other processes, one thread',
                        help='what the machine was doing, for the record')
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings('ignore', message='.*looks unconverged')   # short timed runs; the check still runs
    sampler = UnderdampedLangevin(DoubleWellModel(barrier_height=1.0), step_size=STEP, friction=FRICTION, integrator='baoab')
    start = torch.randn(CHAINS, DIM, generator=torch.Generator().manual_seed(0))
    library = lambda n, seed: sampler.sample(x=start, n_steps=n, generator=torch.Generator().manual_seed(seed))
    hand = lambda n, seed: reference(start, n, torch.Generator().manual_seed(seed))
    same = bool(torch.equal(library(5, 1), hand(5, 1)))   # also the warm-up
    print('same chains after 5 steps:', same)
    assert same, 'the library and the reference must give the same chains'
    lib_t, ref_t = [], []
    for i in range(args.repeats):                                  # interleaved, alternating which side goes first
        pair = [(lib_t, library), (ref_t, hand)] if i % 2 == 0 else [(ref_t, hand), (lib_t, library)]
        for out, fn in pair: out.append(timed(lambda: fn(args.steps, i)))
    lib, ref = statistics.median(lib_t), statistics.median(ref_t)
    work = CHAINS * args.steps
    row = dict(name='underdamped Langevin (BAOAB), 100-D double well, 4096 chains, float32', dim=DIM, chains=CHAINS,
               step_size=STEP, friction=FRICTION, steps=args.steps, repeats=args.repeats, same_chains=same,
               library_s=lib, reference_s=ref, library_chain_steps_per_s=work / lib,
               reference_chain_steps_per_s=work / ref, ratio=lib / ref, target_ratio=1.2,
               library_all_s=lib_t, reference_all_s=ref_t)
    print(f"library {work / lib:,.0f} chain-steps/s   hand-written {work / ref:,.0f} chain-steps/s   ratio {lib / ref:.3f}")
    write_report(args.out, run_meta(machine_note=args.note), [row])


if __name__ == '__main__':
    main()
