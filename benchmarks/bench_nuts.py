"""CPU benchmark: NUTS effective samples per second on an ill-conditioned Gaussian, eager and compiled.

The target: a 50-D Gaussian N(0, Σ), Σ diagonal with variances log-spaced from 0.01 to 1 (condition number 100),
as `GaussianModel`; `NoUTurnSampler(step_size=0.1)` with identity mass and the default maximum tree depth 10; 200
chains in one float32 tensor started from N(0, Σ) draws; 200 draws (no warm-up needed: the chains start in
equilibrium); one thread. Reported: wall time of `sample(..., return_trajectory=True)`, the worst coordinate's
bulk ESS (rank-normalised, Vehtari et al. 2021) over the 200 × 200 draws, their ratio (effective samples per second),
the mean tree depth and leapfrog steps per iteration, and the error of the sampled variances. Each path runs
`--repeats` times, interleaved; medians are reported. The compiled paths' first runs (which compile) are timed apart.

Paths: `eager`; `compiled` (`compile=True`: on the CPU one graph per doubling, `nuts_doubling_kernel`); `points`
(`compile=True` with one compiled call per tree point, the path other devices take, forced here through
`CompiledSubtree.whole_subtree_devices`).

The issue that asked for this quotes BlackJAX 1.7.1's jitted, vmapped NUTS on jax 0.12 at 12.8k effective samples per
second on this problem (measured in sequence with our eager NUTS at 5.3k); jax is not installed here, so that figure
is quoted, not re-measured.

    OMP_NUM_THREADS=1 python benchmarks/bench_nuts.py [--repeats 7] [--paths eager,compiled,points] [--out benchmarks/results/cpu_nuts.json]
"""
import os, tempfile
os.environ.setdefault('TORCHINDUCTOR_CACHE_DIR', tempfile.mkdtemp(prefix='inductor-cold-'))   # a cold compile, measured

import argparse, statistics, time, warnings

import torch

from _report import run_meta, write_report

from torchebm_nb.core import GaussianModel
from torchebm_nb.samplers import NoUTurnSampler
from torchebm_nb.samplers.nuts import CompiledSubtree
from torchebm_nb.utils.diagnostics import bulk_effective_sample_size

DIM, CHAINS, DRAWS, STEP = 50, 200, 200, 0.1


def target():
    variances = torch.logspace(-2, 0, DIM)
    return GaussianModel(torch.zeros(DIM), torch.diag(variances)), variances


def run(sampler, start, seed, path):
    CompiledSubtree.whole_subtree_devices = () if path == 'points' else ('cpu',)
    t0 = time.perf_counter()
    traj = sampler.sample(start, n_steps=DRAWS, return_trajectory=True, generator=seed)
    return time.perf_counter() - t0, traj


def measure(sampler, variances, start, seed, path):
    seconds, traj = run(sampler, start, seed, path)
    ess = bulk_effective_sample_size(traj)          # (D,) over C chains × N draws
    stats = sampler.last_run_stats
    var_err = float(((traj.reshape(-1, DIM).var(0) / variances) - 1).abs().max())
    return dict(seconds=seconds, min_ess=float(ess.min()), ess_per_s=float(ess.min()) / seconds,
                tree_depth=float(stats['tree_depth'].mean()), n_leapfrog=float(stats['n_leapfrog'].mean()),
                max_rel_var_error=var_err)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--paths', default='eager,compiled,points')
    parser.add_argument('--out', default='benchmarks/results/cpu_nuts.json')
    parser.add_argument('--note', default='2-core development machine shared with other processes, one thread')
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings('ignore', message='.*looks unconverged')
    model, variances = target()
    start = torch.randn(CHAINS, DIM, generator=torch.Generator().manual_seed(0)) * variances.sqrt()
    paths = args.paths.split(',')
    samplers = {p: NoUTurnSampler(model, step_size=STEP, compile=p != 'eager') for p in paths}
    first = {}
    for p, s in samplers.items():               # warm-up (the compiled path compiles here)
        first[p] = run(s, start, 99, p)[0]
    rows = {p: [] for p in paths}
    for i in range(args.repeats):
        for p in (paths if i % 2 == 0 else list(reversed(paths))):   # interleaved, alternating order
            rows[p].append(measure(samplers[p], variances, start, i, p))
    results = []
    for p in paths:
        med = {k: statistics.median(r[k] for r in rows[p]) for k in rows[p][0]}
        row = dict(name=f'NUTS ({p}), 50-D Gaussian, condition number 100, 200 chains x 200 draws', path=p,
                   dim=DIM, chains=CHAINS, draws=DRAWS, step_size=STEP, repeats=args.repeats, first_run_s=first[p],
                   graphs=samplers[p].compile_stats.graphs, compile_seconds=samplers[p].compile_stats.seconds,
                   **{f'median_{k}': v for k, v in med.items()}, all=rows[p],
                   blackjax_quoted_ess_per_s=12800.0)
        results.append(row)
        print(f"{p:9s} {med['seconds']:.2f} s   min bulk ESS {med['min_ess']:.0f}   {med['ess_per_s']:,.0f} ESS/s   "
              f"depth {med['tree_depth']:.2f}   leapfrog {med['n_leapfrog']:.1f}   var err {med['max_rel_var_error']:.3f}   "
              f"(first run {first[p]:.1f} s, {samplers[p].compile_stats.graphs} graphs)")
    write_report(args.out, run_meta(machine_note=args.note), results)


if __name__ == '__main__':
    main()
