"""CPU benchmark: one DenoisingScoreMatching training iteration against a hand-written torch loop doing the same maths.

Both sides train the same MLP energy (2 → 128 → 128 → 1, SiLU; two copies with the same initial weights) on batches
of 256 two-moons points with Adam, and one iteration is the whole step: draw the noise, perturb, energy, ∇ₓE with
create_graph, the loss ½ mean‖∇E(x̃) − (x̃ − x)/σ²‖², zero_grad, backward, optimiser step. The reference is the
plain-torch version of that step with nothing else in it. Both run in one process on one thread, interleaved blocks
of `--iters` iterations, `--repeats` times; medians are reported in ms per iteration. The target is ratio ≤ 1.2.
`--profile` prints a torch.profiler table of the library step.

    OMP_NUM_THREADS=1 python benchmarks/bench_losses_dsm.py [--repeats 7] [--iters 200] [--out benchmarks/results/cpu_losses_dsm.json]
"""
import argparse, copy, statistics, time

import torch
from torch import nn

from _report import run_meta, write_report

from torchebm_nb.datasets import TwoMoonsDataset
from torchebm_nb.losses.score_matching import DenoisingScoreMatching

SIGMA, BATCH, HIDDEN, LR = 0.1, 256, 128, 1e-3


class MLPEnergy(nn.Module):
    def __init__(self, hidden=HIDDEN):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def library_step(loss_fn, optimiser, batch, gen):
    loss = loss_fn(batch, generator=gen)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return loss


def reference_step(model, optimiser, batch, gen, sigma=SIGMA):
    noise = torch.randn(batch.shape, generator=gen) * sigma
    noisy = (batch + noise).requires_grad_(True)
    (grad,) = torch.autograd.grad(model(noisy).sum(), noisy, create_graph=True)
    loss = 0.5 * (grad - noise / sigma ** 2).square().sum(-1).mean()
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return loss


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--iters', type=int, default=200)
    parser.add_argument('--out', default='benchmarks/results/cpu_losses_dsm.json')
    parser.add_argument('--profile', action='store_true')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    torch.manual_seed(0)
    lib_model = MLPEnergy()
    ref_model = copy.deepcopy(lib_model)
    loss_fn = DenoisingScoreMatching(lib_model, noise_scale=SIGMA)
    lib_opt = torch.optim.Adam(lib_model.parameters(), lr=LR)
    ref_opt = torch.optim.Adam(ref_model.parameters(), lr=LR)
    data = TwoMoonsDataset(n_samples=BATCH * 16, seed=0).data
    batches = [data[i * BATCH:(i + 1) * BATCH] for i in range(16)]

    # same maths: with the same generator state and weights, one step gives the same loss on both sides
    a = library_step(loss_fn, lib_opt, batches[0], torch.Generator().manual_seed(1)).item()
    b = reference_step(ref_model, ref_opt, batches[0], torch.Generator().manual_seed(1)).item()
    assert abs(a - b) <= 1e-5 * max(1.0, abs(b)), (a, b)

    def run(step, owner, opt, gen):
        def block():
            for i in range(args.iters): step(owner, opt, batches[i % 16], gen)
        return block
    lib_gen, ref_gen = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    lib_block, ref_block = run(library_step, loss_fn, lib_opt, lib_gen), run(reference_step, ref_model, ref_opt, ref_gen)
    lib_block(); ref_block()                                  # warm-up
    lib, ref = [], []
    for r in range(args.repeats):                             # interleaved, alternating which side goes first
        order = [(lib_block, lib), (ref_block, ref)] if r % 2 == 0 else [(ref_block, ref), (lib_block, lib)]
        for block, times in order:
            start = time.perf_counter(); block(); times.append(time.perf_counter() - start)
    lib_ms, ref_ms = (1e3 * statistics.median(t) / args.iters for t in (lib, ref))
    row = dict(name='dsm_training_iteration_mlp_2_128_128_1', batch=BATCH, hidden=HIDDEN, noise_scale=SIGMA,
               optimiser='Adam', iters_per_block=args.iters, repeats=args.repeats,
               library_ms_per_iter=lib_ms, reference_ms_per_iter=ref_ms, ratio=lib_ms / ref_ms,
               library_ms_all=[1e3 * t / args.iters for t in lib], reference_ms_all=[1e3 * t / args.iters for t in ref],
               target_ratio=1.2, meets_target=lib_ms / ref_ms <= 1.2)
    print(f"{row['name']}: library {lib_ms:.3f} ms/iter  reference {ref_ms:.3f} ms/iter  ratio {row['ratio']:.3f} "
          f"(target ≤ 1.2: {'met' if row['meets_target'] else 'MISSED'})")

    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(50): library_step(loss_fn, lib_opt, batches[i % 16], lib_gen)
        print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=25))

    meta = run_meta()
    write_report(args.out, meta, [row])


if __name__ == '__main__':
    main()
