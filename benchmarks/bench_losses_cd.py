"""CPU benchmark: one CD-10 training iteration with `ContrastiveDivergence` against a hand-written torch loop.

The iteration: 10 Langevin steps (h = 1e-3, unit noise) from the data batch, with 5 % of the start points nudged by
0.01·N(0, I) (the loss's default `new_sample_ratio`), then the loss mean E(x⁺) − mean E(x⁻) + 1e-3(mean E(x⁺)² +
mean E(x⁻)²), backward, and an Adam step. Energy: MLP 2→128→128→1 (SiLU); batch 256. The reference does the same
maths in plain torch: autograd gradient in the Langevin loop, in-place updates, a preallocated noise buffer, no
checks. Both run in one process on one thread, interleaved, `--repeats` times; medians are reported, plus the
Langevin sampling alone (library sampler vs the reference loop) to show where any difference goes.

    OMP_NUM_THREADS=1 python benchmarks/bench_losses_cd.py [--repeats 7] [--iterations 50] [--out benchmarks/results/cpu_losses_cd.json]
"""
import argparse, math, statistics, time

import torch
from torch import nn

from _report import run_meta, write_report

from torchebm_nb.core import BaseModel
from torchebm_nb.losses.contrastive_divergence import ContrastiveDivergence
from torchebm_nb.samplers import LangevinDynamics

K_STEPS, STEP_SIZE, REG, RATIO, BATCH = 10, 1e-3, 1e-3, 0.05, 256


class MLPEnergy(BaseModel):
    def __init__(self, hidden=128, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


# ---- the hand-written reference ----------------------------------------------------------------------------
def reference_negatives(model, x, gen):
    xk = x.detach().clone()
    n_new = max(1, int(x.shape[0] * RATIO))
    rows = torch.randperm(x.shape[0], generator=gen)[:n_new]
    xk[rows] += 0.01 * torch.randn((n_new, *x.shape[1:]), generator=gen)
    noise, c = torch.empty_like(xk), math.sqrt(2 * STEP_SIZE)
    for _ in range(K_STEPS):
        xk.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(model(xk).sum(), xk)
        xk = xk.detach().add_(grad, alpha=-STEP_SIZE).add_(noise.normal_(generator=gen), alpha=c)
    return xk


def reference_iteration(model, optimizer, x, gen):
    negatives = reference_negatives(model, x, gen)
    pos, neg = model(x), model(negatives)
    loss = pos.mean() - neg.mean() + REG * (pos.square().mean() + neg.square().mean())
    optimizer.zero_grad(); loss.backward(); optimizer.step()
    return loss


def library_iteration(loss_fn, optimizer, x, gen):
    loss, _ = loss_fn(x, generator=gen)
    optimizer.zero_grad(); loss.backward(); optimizer.step()
    return loss


def timed(fn, n):
    start = time.perf_counter()
    for _ in range(n): fn()
    return (time.perf_counter() - start) / n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--iterations', type=int, default=50, help='training iterations per timed repeat')
    parser.add_argument('--out', default='benchmarks/results/cpu_losses_cd.json')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    x = torch.randn(BATCH, 2, generator=torch.Generator().manual_seed(0))
    lib_model, ref_model = MLPEnergy(seed=0), MLPEnergy(seed=0)
    lib_opt = torch.optim.Adam(lib_model.parameters(), lr=1e-4)
    ref_opt = torch.optim.Adam(ref_model.parameters(), lr=1e-4)
    sampler = LangevinDynamics(lib_model, step_size=STEP_SIZE)
    loss_fn = ContrastiveDivergence(lib_model, sampler, k_steps=K_STEPS, energy_reg_weight=REG, new_sample_ratio=RATIO)
    g_lib, g_ref = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)

    # the two sides compute the same thing: same negatives and loss from the same state and seed
    probe_model = MLPEnergy(seed=3)
    probe_loss = ContrastiveDivergence(probe_model, LangevinDynamics(probe_model, step_size=STEP_SIZE), k_steps=K_STEPS,
                                       energy_reg_weight=REG, new_sample_ratio=RATIO)
    got, got_neg = probe_loss(x, generator=torch.Generator().manual_seed(5))
    want_neg = reference_negatives(probe_model, x, torch.Generator().manual_seed(5))
    torch.testing.assert_close(got_neg, want_neg, rtol=1e-5, atol=1e-5)

    cases = {
        'cd10_iteration': (lambda: library_iteration(loss_fn, lib_opt, x, g_lib),
                           lambda: reference_iteration(ref_model, ref_opt, x, g_ref)),
        'langevin_10_steps': (lambda: sampler.sample(x=x, n_steps=K_STEPS, generator=g_lib),
                              lambda: reference_negatives(ref_model, x, g_ref)),
    }
    results = []
    for name, (lib, ref) in cases.items():
        timed(lib, 5); timed(ref, 5)                                  # warm-up
        lib_t, ref_t = [], []
        for _ in range(args.repeats):                                 # interleaved: both sides see the same machine load
            lib_t.append(timed(lib, args.iterations)); ref_t.append(timed(ref, args.iterations))
        med_lib, med_ref = statistics.median(lib_t), statistics.median(ref_t)
        row = dict(name=name, batch=BATCH, k_steps=K_STEPS, library_ms=1e3 * med_lib, reference_ms=1e3 * med_ref,
                   ratio=med_lib / med_ref, library_ms_all=[1e3 * t for t in lib_t], reference_ms_all=[1e3 * t for t in ref_t],
                   repeats=args.repeats, iterations_per_repeat=args.iterations)
        results.append(row)
        print(f"{name:20s} library {row['library_ms']:7.3f} ms  reference {row['reference_ms']:7.3f} ms  ratio {row['ratio']:.3f}")
    meta = run_meta(model='MLP 2→128→128→1 (SiLU)', sampler=f'LangevinDynamics(step_size={STEP_SIZE}, noise_scale=1)',
                optimizer='Adam(lr=1e-4)')
    write_report(args.out, meta, results)


if __name__ == '__main__':
    main()
