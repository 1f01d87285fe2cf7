"""GPU benchmark: torchebm_nb's CUDA kernels against the eager torch path, side by side in one process.

Cases (the targets are issue 6's):
  whole_chain_langevin_*  LangevinDynamics with its kernel (one launch for all steps) against the same sampler run inside
                          `use_backend(None)` (eager torch, five or six kernels per step). Headline: double well,
                          4096 chains × 32 dims × 1000 steps, target ≥ 30×; the other analytic energies are recorded too.
  fused_update            x ← x − h g + c ξ on n float32 elements: `langevin_update_` (ξ from Philox in registers) against
                          the eager update (`normal_`, then two scaled adds). The kernel must move 12n bytes (read x and g,
                          write x); its bandwidth is reported against the device's peak (memory clock × bus width × 2) and a
                          measured device-to-device copy. Target ≥ 70 % of peak.
  fused_langevin_mlp      one Langevin step of an MLP energy through the sampler: autograd gradient + fused update against
                          autograd gradient + the eager update (the fused path's end-to-end effect).
  whole_chain_hmc_*       HamiltonianMonteCarlo with its kernel against the eager torch path.

Each case times both sides interleaved, `--repeats` times, after a warm-up (which also compiles the kernels), and
reports medians; GPU work is timed between `torch.cuda.synchronize()` calls.

    python benchmarks/bench_cuda.py [--repeats 5] [--out benchmarks/results/gpu_kernels.json]
    python benchmarks/bench_cuda.py --emulate    # tiny sizes on CPU through CPUEmulator: checks this script, not speed
"""
import argparse, contextlib, math, statistics, sys, time

import torch

from _report import run_meta, write_report

from torchebm_nb.core import AckleyModel, DoubleWellModel, GaussianModel, HarmonicModel, RastriginModel, RosenbrockModel
from torchebm_nb.cuda import CPUEmulator, get_cupy, kernels_available, langevin_update_, use_backend
from torchebm_nb.models import MLPEnergy
from torchebm_nb.samplers import HamiltonianMonteCarlo, LangevinDynamics


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def timed(fn, device):
    sync(device); start = time.perf_counter(); fn(); sync(device)
    return time.perf_counter() - start


def peak_bandwidth(device):
    "Theoretical DRAM bandwidth in bytes/s (2 × memory clock × bus width), or None when the driver does not say."
    cp = get_cupy()
    if device.type != 'cuda' or cp is None: return None
    try:   # cudaDevAttrMemoryClockRate = 36 (kHz), cudaDevAttrGlobalMemoryBusWidth = 37 (bits)
        clock_khz = cp.cuda.runtime.deviceGetAttribute(36, device.index or 0)
        bus_bits = cp.cuda.runtime.deviceGetAttribute(37, device.index or 0)
        return 2.0 * clock_khz * 1e3 * bus_bits / 8 if clock_khz and bus_bits else None
    except Exception:
        return None


def pair(lib_sampler, ref_sampler, x, n_steps, device, **kw):
    "Library (kernel) and reference (eager: no kernel back end inside `use_backend(None)`) closures for the same settings."
    gen = lambda: torch.Generator(device).manual_seed(0)
    def eager():
        with use_backend(None): return ref_sampler.sample(x=x, n_steps=n_steps, generator=gen(), **kw)
    return lambda: lib_sampler.sample(x=x, n_steps=n_steps, generator=gen(), **kw), eager


def cases(device, small):
    B, D, T = (64, 8, 20) if small else (4096, 32, 1000)
    gen = torch.Generator(device).manual_seed(1)
    x = torch.randn(B, D, device=device, generator=gen)
    out = []
    energies = {'double_well': DoubleWellModel(barrier_height=2.0), 'harmonic': HarmonicModel(),
                'rastrigin': RastriginModel(a=1.0), 'ackley': AckleyModel(), 'rosenbrock': RosenbrockModel(b=10.0)}
    for name, model in energies.items():
        model = model.to(device)
        h = 1e-4 if name == 'rosenbrock' else 1e-3
        lib, ref = pair(LangevinDynamics(model, step_size=h), LangevinDynamics(model, step_size=h), x, T, device)
        out.append(dict(name=f'whole_chain_langevin_{name}', chains=B, dim=D, steps=T, lib=lib, ref=ref,
                        unit='chain-steps', work=B * T, target=30.0 if name == 'double_well' else None))
    # HMC on a full-covariance Gaussian and on the double well
    a = torch.randn(D, D, generator=torch.Generator().manual_seed(0)) / math.sqrt(D)
    gauss = GaussianModel(torch.zeros(D), a @ a.T + torch.eye(D)).to(device)
    n_iter, L = (5, 3) if small else (100, 10)
    for name, model, h in (('gaussian_full', gauss, 0.2), ('double_well', DoubleWellModel().to(device), 0.02)):
        lib, ref = pair(HamiltonianMonteCarlo(model, step_size=h, n_leapfrog_steps=L),
                        HamiltonianMonteCarlo(model, step_size=h, n_leapfrog_steps=L), x, n_iter, device)
        out.append(dict(name=f'whole_chain_hmc_{name}', chains=B, dim=D, steps=n_iter, leapfrog=L, lib=lib, ref=ref,
                        unit='chain-iterations', work=B * n_iter))
    # the fused update alone
    n = 1 << (12 if small else 26)
    xs, g, noise = (torch.randn(n, device=device, generator=gen) for _ in range(3))
    h, c = 1e-3, math.sqrt(2e-3)
    k = 2 if small else 20
    def fused():
        for i in range(k): langevin_update_(xs, g, h, c, seed=7, counter=i * n)
    def eager():
        for _ in range(k): noise.normal_(generator=gen); xs.add_(g, alpha=-h).add_(noise, alpha=c)
    out.append(dict(name='fused_update', elements=n, calls=k, lib=fused, ref=eager, unit='elements', work=n * k,
                    bytes_per_call=12 * n, eager_bytes_per_call=28 * n,
                    copy=lambda: [g.copy_(xs) for _ in range(k)]))
    # one sampler step of an MLP energy: autograd gradient, then the fused update (or the eager one)
    mlp = MLPEnergy(D, hidden_dim=64 if small else 256).to(device)
    steps = 5 if small else 200
    lib, ref = pair(LangevinDynamics(mlp, step_size=1e-3), LangevinDynamics(mlp, step_size=1e-3), x, steps, device)
    out.append(dict(name='fused_langevin_mlp', chains=B, dim=D, steps=steps, lib=lib, ref=ref,
                    unit='chain-steps', work=B * steps))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--out', default='benchmarks/results/gpu_kernels.json')
    parser.add_argument('--emulate', action='store_true', help='CPU smoke run through CPUEmulator at tiny sizes')
    parser.add_argument('--only', default='', help='run the cases whose name contains this')
    args = parser.parse_args(argv)
    if args.emulate:
        device, ctx = torch.device('cpu'), use_backend(CPUEmulator())
    else:
        if not (torch.cuda.is_available() and kernels_available('cuda')):
            sys.exit('bench_cuda needs a CUDA GPU with CuPy (or --emulate for a CPU smoke run)')
        device, ctx = torch.device('cuda', torch.cuda.current_device()), contextlib.nullcontext()
    results = []
    with ctx:
        peak = peak_bandwidth(device)
        for case in cases(device, small=args.emulate):
            if args.only not in case['name']: continue
            case['lib'](); case['ref']()                                   # warm-up (and kernel compilation)
            lib, ref, cp = [], [], []
            for _ in range(args.repeats):
                lib.append(timed(case['lib'], device)); ref.append(timed(case['ref'], device))
                if 'copy' in case: cp.append(timed(case['copy'], device))
            med = statistics.median
            row = {k: v for k, v in case.items() if k not in ('lib', 'ref', 'copy')}
            row.update(library_s=med(lib), reference_s=med(ref), speedup=med(ref) / med(lib), repeats=args.repeats,
                       library_throughput=case['work'] / med(lib), reference_throughput=case['work'] / med(ref))
            line = (f"{row['name']:36s} kernel {row['library_s']*1e3:9.3f} ms  eager {row['reference_s']*1e3:9.3f} ms  "
                    f"speedup {row['speedup']:7.1f}×")
            if 'bytes_per_call' in case:
                bw = case['bytes_per_call'] * case['calls'] / med(lib)
                copy_bw = 8 * case['elements'] * case['calls'] / med(cp)    # read + write 4 bytes each
                row.update(kernel_bytes_per_s=bw, copy_bytes_per_s=copy_bw, peak_bytes_per_s=peak,
                           fraction_of_peak=(bw / peak) if peak else None, fraction_of_copy=bw / copy_bw)
                line += f"  {bw/1e9:7.1f} GB/s ({100*bw/copy_bw:.0f}% of copy" + (f", {100*bw/peak:.0f}% of peak {peak/1e9:.0f} GB/s)" if peak else ')')
            if case.get('target'): line += f"  [target ≥ {case['target']:.0f}×]"
            print(line, flush=True)
            results.append(row)
    meta = run_meta(emulated=args.emulate,
                device=torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu (CPUEmulator)',
                cupy=getattr(get_cupy(), '__version__', None), peak_bytes_per_s=peak)
    if device.type == 'cuda':
        meta.update(cuda=torch.version.cuda, sm_count=torch.cuda.get_device_properties(device).multi_processor_count)
    write_report(args.out, meta, results)


if __name__ == '__main__':
    main()
