"""Benchmark: compiled steps (`compile=True`) against the eager steps, on a neural energy (CPU by default, or a GPU).

The energy: an MLP 16 → 128 → 128 → 1 with SiLU (`MLPEnergy(16, hidden_dim=128, depth=2)`), float32, one thread.
Three workloads, each run eager and compiled (the same sampler class and model, `compile=False` vs `compile=True`):

- Langevin: `LangevinDynamics(step_size=0.01)`, 4,096 chains, ms per step;
- HMC: `HamiltonianMonteCarlo(step_size=0.05, n_leapfrog_steps=10)`, 4,096 chains, ms per iteration (10 gradients);
- CD-10: one training iteration of `ContrastiveDivergence(k_steps=10, init_steps=0)` with Langevin negatives on a
  batch of 256, loss, backward and Adam step, ms per iteration;

plus a hand-written eager torch Langevin loop (autograd gradient, the same update) as the floor of the eager side.
Before timing, eager and compiled runs from the same start and seed are checked to agree to float32 rounding. The
compile time is measured on a cold Inductor cache (a fresh `TORCHINDUCTOR_CACHE_DIR`, set before torch is imported):
the wall time of the run that compiled, less one compiled run of the same length; the break-even step count is
compile time / (eager − compiled time per step). Timed runs are interleaved (alternating which side goes first),
`--repeats` times after a warm-up; medians are reported.

    OMP_NUM_THREADS=1 python benchmarks/bench_compiled.py [--repeats 7] [--out benchmarks/results/cpu_compiled.json]

On a GPU machine (`tools/gpu_check.sh` runs this), the per-step times of the same MLP at 256 and 4,096 chains:

    python3 benchmarks/bench_compiled.py --device cuda --chains 256,4096 --cases langevin,hmc --out OUT/gpu_compiled.json

Timings there synchronise the device before reading the clock.
"""
import os, tempfile
os.environ.setdefault('TORCHINDUCTOR_CACHE_DIR', tempfile.mkdtemp(prefix='inductor-cold-'))   # a cold compile, measured

import argparse, statistics, time, warnings

import torch

from _report import run_meta, write_report

from torchebm_nb.losses import ContrastiveDivergence
from torchebm_nb.models import MLPEnergy
from torchebm_nb.samplers import HamiltonianMonteCarlo, LangevinDynamics

DIM, CHAINS, BATCH = 16, 4096, 256
DEVICE = torch.device('cpu')   # set by --device


def energy(seed=0):
    torch.manual_seed(seed)
    return MLPEnergy(DIM, hidden_dim=128, depth=2).to(DEVICE)


def hand_langevin(model, x, n_steps, gen, h=0.01):
    "Eager Langevin by hand: autograd gradient, x − h∇E + √(2h)ξ."
    c = (2.0 * h) ** 0.5
    for _ in range(n_steps):
        xg = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xg).sum(), xg)
        x = x - h * g + c * torch.randn(x.shape, generator=gen, device=x.device)
    return x


def sync():
    if DEVICE.type == 'cuda': torch.cuda.synchronize()


def timed(fn):
    sync(); t0 = time.perf_counter(); fn(); sync(); return time.perf_counter() - t0


def sampler_case(name, make, steps, repeats, per, hand=None, chains=CHAINS):
    "Eager vs compiled `sample` from one start: agreement, cold compile time, interleaved medians."
    model = energy()
    start = torch.randn(chains, DIM, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    eager, fast = make(model, False), make(model, True)
    run = lambda s, n, seed: s.sample(start, n_steps=n, generator=seed)
    first = timed(lambda: run(fast, steps, 99))            # compiles (cold cache), then runs `steps` steps
    agree = float((run(fast, 5, 1) - run(eager, 5, 1)).abs().max())
    sides = {'eager': lambda i: run(eager, steps, i), 'compiled': lambda i: run(fast, steps, i)}
    if hand is not None:
        sides['hand-written eager'] = lambda i: hand(model, start, steps, torch.Generator(DEVICE).manual_seed(i))
    times = {k: [] for k in sides}
    for i in range(repeats):
        order = list(sides) if i % 2 == 0 else list(reversed(sides))
        for k in order: times[k].append(timed(lambda: sides[k](i)))
    med = {k: statistics.median(v) / steps for k, v in times.items()}
    compile_s = max(first - med['compiled'] * steps, 0.0)
    saved = med['eager'] - med['compiled']
    row = dict(name=name, device=str(DEVICE), chains=chains, dim=DIM, steps=steps, repeats=repeats, unit=per, max_abs_diff_5_steps=agree,
               graphs=fast.compile_stats.graphs, compile_s=compile_s,
               break_even_steps=(compile_s / saved) if saved > 0 else None,
               eager_ms=1e3 * med['eager'], compiled_ms=1e3 * med['compiled'], speedup=med['eager'] / med['compiled'],
               all_s={k: v for k, v in times.items()})
    if hand is not None: row['hand_written_eager_ms'] = 1e3 * med['hand-written eager']
    return row


def cd_case(repeats, iters):
    "One CD-10 iteration (negatives, loss, backward, Adam), eager vs compiled sampler."
    data = torch.randn(BATCH, DIM, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    def make(compile):
        model = energy()
        loss_fn = ContrastiveDivergence(model, LangevinDynamics(model, step_size=0.01, noise_scale=0.1), k_steps=10,
                                        init_steps=0, new_sample_ratio=0.0, compile=compile)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        def iterate(seed):
            opt.zero_grad()
            loss, _ = loss_fn(data, generator=seed)
            loss.backward(); opt.step()
            return float(loss.detach())
        return iterate, loss_fn.sampler
    eager, _ = make(False)
    fast, sampler = make(True)
    t0 = time.perf_counter(); fast(0); first = time.perf_counter() - t0
    e2, f2 = make(False)[0], make(True)[0]
    agree = abs(e2(3) - f2(3))
    times = {'eager': [], 'compiled': []}
    for i in range(repeats):
        for k in (['eager', 'compiled'] if i % 2 == 0 else ['compiled', 'eager']):
            fn = eager if k == 'eager' else fast
            times[k].append(timed(lambda: [fn(100 + j) for j in range(iters)]))
    med = {k: statistics.median(v) / iters for k, v in times.items()}
    compile_s = max(first - med['compiled'], 0.0)
    saved = med['eager'] - med['compiled']
    return dict(name='CD-10 training iteration (Langevin negatives, batch 256, Adam)', device=str(DEVICE), batch=BATCH,
                dim=DIM, k_steps=10,
                compile_note='after the Langevin case compiled this kernel for 4,096 chains: the recompilation for batch 256',
                iterations=iters, repeats=repeats, unit='iteration', loss_abs_diff=agree, graphs=sampler.compile_stats.graphs,
                compile_s=compile_s, break_even_steps=(compile_s / saved) if saved > 0 else None,
                eager_ms=1e3 * med['eager'], compiled_ms=1e3 * med['compiled'], speedup=med['eager'] / med['compiled'],
                all_s=times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--out', default='benchmarks/results/cpu_compiled.json')
    parser.add_argument('--note', default='2-core development machine shared with other processes, one thread',
                        help='what the machine was doing, for the record')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument('--chains', default=str(CHAINS), help='comma-separated chain counts for the Langevin and HMC cases')
    parser.add_argument('--cases', default='langevin,hmc,cd', help='comma-separated subset of langevin, hmc, cd')
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    cases = args.cases.split(',')
    if unknown := set(cases) - {'langevin', 'hmc', 'cd'}: parser.error(f"--cases: unknown {sorted(unknown)}")
    torch.set_num_threads(1)
    warnings.filterwarnings('ignore', message='.*looks unconverged')   # short timed runs; the check still runs
    rows = []
    for n in (int(c) for c in args.chains.split(',')):
        if 'langevin' in cases:
            rows.append(sampler_case(f'Langevin, MLP 16-128-128-1, {n} chains',
                                     lambda m, c: LangevinDynamics(m, step_size=0.01, compile=c), 40, args.repeats, 'step',
                                     hand=hand_langevin, chains=n))
        if 'hmc' in cases:
            rows.append(sampler_case(f'HMC (L = 10), MLP 16-128-128-1, {n} chains',
                                     lambda m, c: HamiltonianMonteCarlo(m, step_size=0.05, n_leapfrog_steps=10, compile=c), 5,
                                     args.repeats, 'iteration', chains=n))
    if 'cd' in cases: rows.append(cd_case(args.repeats, 10))
    for r in rows:
        extra = f"   hand-written eager {r['hand_written_eager_ms']:.2f} ms" if 'hand_written_eager_ms' in r else ''
        print(f"{r['name']}: eager {r['eager_ms']:.2f} ms/{r['unit']}   compiled {r['compiled_ms']:.2f} ms   "
              f"speedup {r['speedup']:.2f}x{extra}   compile {r['compile_s']:.1f} s   break-even "
              f"{r['break_even_steps'] if r['break_even_steps'] is None else round(r['break_even_steps'])} {r['unit']}s")
    meta = run_meta(machine_note=args.note, inductor_cache='cold (fresh TORCHINDUCTOR_CACHE_DIR)', device=str(DEVICE),
                    device_name=torch.cuda.get_device_name() if DEVICE.type == 'cuda' else None)
    write_report(args.out, meta, rows)


if __name__ == '__main__':
    main()
