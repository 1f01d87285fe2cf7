"""CPU benchmark: one equilibrium-matching training iteration with torchebm_nb against a hand-written torch loop.

One iteration = draw noise and times, interpolate, evaluate the field at t = 0, the EqM loss against
(x0 − x1)·c(t) with the truncated c, backward, and an Adam step. Both sides train their own copy of the same MLP
field ([x, t] → 128 → 128 → 2, SiLU) on the same data batches (batch 256), with their own seeded generators, in one
process on one thread. Repeats are interleaved (library, reference, reference, library, …) so both see the same
machine load; each repeat times `--iters` iterations, and medians of the per-iteration times are reported, with
the median of the per-repeat ratios (each library/reference pair ran back to back, so it is the least noisy figure
on a loaded machine).

    OMP_NUM_THREADS=1 python benchmarks/bench_losses_eqm.py [--repeats 9] [--iters 200] [--out benchmarks/results/cpu_losses_eqm.json]
"""
import argparse, statistics, time

import torch
from torch import nn

from _report import run_meta, write_report

from torchebm_nb.losses.equilibrium_matching import EquilibriumMatchingLoss


class Field(nn.Module):
    def __init__(self, d=2, hidden=128, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(d + 1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, d))

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None]], -1))


def library_step(loss_fn, opt, x, gen):
    loss = loss_fn(x, generator=gen)
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return loss


def reference_step(model, opt, x, gen, threshold=0.8, multiplier=4.0):
    """The same maths written out: linear path, truncated c(t), field at t = 0, per-sample mean then batch mean."""
    B = x.shape[0]
    x0 = torch.randn(x.shape, generator=gen)
    t = torch.rand(B, generator=gen)
    tt = t[:, None]
    xt = tt * x + (1 - tt) * x0
    c = ((1 - tt) / (1 - threshold)).clamp(max=1.0) * multiplier
    out = model(xt, torch.zeros_like(t))
    loss = (out - (x0 - x) * c).square().mean()
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return loss


def run(step, iters, batches, *state):
    start = time.perf_counter()
    for i in range(iters): step(*state[:2], batches[i % len(batches)], state[2])
    return (time.perf_counter() - start) / iters


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=9)
    parser.add_argument('--iters', type=int, default=200)
    parser.add_argument('--batch', type=int, default=256)
    parser.add_argument('--out', default='benchmarks/results/cpu_losses_eqm.json')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(args.batch, 2, generator=g) * 0.3 + torch.tensor([2.0, 0.0]) for _ in range(16)]

    lib_model, ref_model = Field(seed=0), Field(seed=0)
    loss_fn = EquilibriumMatchingLoss(lib_model)
    lib_state = (loss_fn, torch.optim.Adam(lib_model.parameters(), lr=1e-3), torch.Generator().manual_seed(1))
    ref_state = (ref_model, torch.optim.Adam(ref_model.parameters(), lr=1e-3), torch.Generator().manual_seed(1))

    # the two sides compute the same loss from the same draws
    same_lib = loss_fn(batches[0], generator=torch.Generator().manual_seed(5))
    m = Field(seed=0)
    gen = torch.Generator().manual_seed(5)
    x0 = torch.randn(batches[0].shape, generator=gen); t = torch.rand(args.batch, generator=gen)
    c = ((1 - t[:, None]) / 0.2).clamp(max=1.0) * 4.0
    same_ref = (m(t[:, None] * batches[0] + (1 - t[:, None]) * x0, torch.zeros_like(t)) - (x0 - batches[0]) * c).square().mean()
    assert torch.allclose(same_lib, same_ref, rtol=1e-5), (same_lib.item(), same_ref.item())

    run(library_step, 50, batches, *lib_state); run(reference_step, 50, batches, *ref_state)   # warm-up
    lib, ref = [], []
    for r in range(args.repeats):
        if r % 2 == 0:
            lib.append(run(library_step, args.iters, batches, *lib_state)); ref.append(run(reference_step, args.iters, batches, *ref_state))
        else:
            ref.append(run(reference_step, args.iters, batches, *ref_state)); lib.append(run(library_step, args.iters, batches, *lib_state))
    med = statistics.median
    row = dict(name='eqm_training_iteration_mlp128_batch256', batch=args.batch, hidden=128, iters_per_repeat=args.iters,
               repeats=args.repeats, library_ms_per_iter=1e3 * med(lib), reference_ms_per_iter=1e3 * med(ref),
               ratio=med(lib) / med(ref), median_paired_ratio=med([a / b for a, b in zip(lib, ref)]), library_ms_all=[1e3 * v for v in lib], reference_ms_all=[1e3 * v for v in ref])
    print(f"EqM training iteration: library {row['library_ms_per_iter']:.3f} ms, reference {row['reference_ms_per_iter']:.3f} ms, "
          f"ratio {row['ratio']:.3f}, median of paired ratios {row['median_paired_ratio']:.3f} (medians of {args.repeats} interleaved repeats of {args.iters} iterations)")
    meta = run_meta()
    write_report(args.out, meta, [row])


if __name__ == '__main__':
    main()
