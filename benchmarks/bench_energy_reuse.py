"""CPU benchmark: Metropolis samplers on a neural energy, with and without reusing the energy of the gradient's pass.

When a model's `gradient` is autograd's, its forward pass computes E(x) on the way; HMC, MALA and NUTS take the
energy at the proposal from that pass (`BaseModel.energy_and_gradient`) instead of a second forward pass. The
reference is the same model class with `gradient_computes_energy = False`, which makes the samplers evaluate the
energy separately, as before. Both run in one process on one thread, interleaved, `--repeats` times; medians are
reported, and the chains of both sides are checked to be identical.

    OMP_NUM_THREADS=1 python benchmarks/bench_energy_reuse.py [--repeats 7] [--out benchmarks/results/cpu_energy_reuse.json]
"""
import argparse, statistics, time

import torch

from _report import run_meta, write_report

from torchebm_nb.models import MLPEnergy
from torchebm_nb.samplers import MALA, NUTS, HamiltonianMonteCarlo


class SeparateEnergy(MLPEnergy):
    "The same MLP energy, with the reuse switched off: the samplers make one more forward pass per proposal."
    gradient_computes_energy = False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--chains', type=int, default=4096)
    parser.add_argument('--dim', type=int, default=16)
    parser.add_argument('--out', default='benchmarks/results/cpu_energy_reuse.json')
    args = parser.parse_args()
    torch.manual_seed(0)
    fused = MLPEnergy(args.dim, hidden_dim=128, depth=3)
    separate = SeparateEnergy(args.dim, hidden_dim=128, depth=3)
    separate.load_state_dict(fused.state_dict())
    x = torch.randn(args.chains, args.dim, generator=torch.Generator().manual_seed(1))
    cases = [('MALA', MALA, dict(step_size=0.01), 20), ('HMC L=5', HamiltonianMonteCarlo, dict(step_size=0.01, n_leapfrog_steps=5), 5),
             ('NUTS depth<=4', NUTS, dict(step_size=0.05, max_tree_depth=4), 3)]
    results = []
    for name, cls, kwargs, n_steps in cases:
        runs = {'reuse': cls(fused, **kwargs), 'separate': cls(separate, **kwargs)}
        outs = {k: s.sample(x=x, n_steps=n_steps, generator=2) for k, s in runs.items()}   # warm-up, and the check
        times = {k: [] for k in runs}
        for _ in range(args.repeats):
            for k, s in runs.items():
                start = time.perf_counter(); s.sample(x=x, n_steps=n_steps, generator=2); times[k].append(time.perf_counter() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        row = dict(sampler=name, n_steps=n_steps, chains=args.chains, dim=args.dim, identical=torch.equal(outs['reuse'], outs['separate']),
                   reuse_s=med['reuse'], separate_s=med['separate'], speedup=med['separate'] / med['reuse'])
        results.append(row)
        print(f"{name:14s} reuse {med['reuse'] * 1e3:7.1f} ms  separate {med['separate'] * 1e3:7.1f} ms  "
              f"speed-up {row['speedup']:.2f}x  identical chains: {row['identical']}")
    write_report(args.out, run_meta(model='MLPEnergy(dim, hidden 128, depth 3)', repeats=args.repeats), results)


if __name__ == '__main__':
    main()
