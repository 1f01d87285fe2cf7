"""CPU benchmark: one persistent-CD iteration of the image energy `ConvEnergy` against a hand-written torch loop.

The iteration (IGEBM recipe, issue 15): read 64 chains from a 10 000-chain replay buffer (one random row in each of
64 equal strides), replace 5 % of them (at least one) by uniform noise on [-1, 1], run 20 Langevin steps
x ← clamp(x − h·clamp(∇E(x), −c, c) + σ√(2h)ξ, −1, 1) with h = 1, σ = 0.005, c = 0.01, write the chains back into
the buffer (first in, first out), then the loss mean E(x⁺) − mean E(x⁻) + λ(mean E(x⁺)² + mean E(x⁻)²) with λ = 1,
backward, and an Adam step. Energy: `ConvEnergy(in_channels=1, channels=(32, 64))`; data: 64 images 1×28×28 in
[-1, 1]. The reference does the same maths in plain torch: the same parameters called through the module's layers
(no input checks), autograd gradient, a preallocated noise buffer, in-place updates where the library makes them,
no non-finite checks. Both run in one process on one thread, interleaved, `--repeats` times; medians are reported
with the spread, on the wall clock and on the process CPU clock (which leaves out the time a shared core spends on
other processes), plus the 20 Langevin steps alone (library sampler vs the reference loop) to show where any
difference goes. Before timing, one iteration from the same state and seed is checked to give the same negatives,
buffer, loss and updated parameters on both sides, bit for bit (recorded in the JSON; allclose is asserted).

    OMP_NUM_THREADS=1 python benchmarks/bench_image_pcd.py [--repeats 15] [--iterations 1] [--out benchmarks/results/cpu_image_pcd.json]
"""
import argparse, math, os, statistics, time

import torch

from _report import run_meta, write_report

from torchebm_nb.losses import ContrastiveDivergence
from torchebm_nb.models import ConvEnergy
from torchebm_nb.samplers import LangevinDynamics

BATCH, SIZE, K_STEPS, BUFFER = 64, 28, 20, 10000
STEP_SIZE, NOISE, CLIP, BOX, REG, RATIO, LR = 1.0, 0.005, 0.01, (-1.0, 1.0), 1.0, 0.05, 1e-4


def make_model(seed):
    torch.manual_seed(seed)
    return ConvEnergy(in_channels=1, channels=(32, 64))


def make_library(model):
    sampler = LangevinDynamics(model, step_size=STEP_SIZE, noise_scale=NOISE, clamp=BOX)
    sampler.grad_clip = CLIP
    loss_fn = ContrastiveDivergence(model, sampler, k_steps=K_STEPS, persistent=True, buffer_size=BUFFER, init_steps=0,
                                    new_sample_ratio=RATIO, energy_reg_weight=REG, noise_range=BOX)
    return sampler, loss_fn


# ---- the hand-written reference ----------------------------------------------------------------------------
def plain_energy(m, x):
    "ConvEnergy's forward through its layers, without the input checks."
    return m.head(m.head_activation(m.stages(m.stem(x))).mean((2, 3))).squeeze(-1)


class Reference:
    "The replay buffer and its write pointer, as plain tensors; the buffer is filled like the library's (uniform on the box)."
    def __init__(self, model, gen):
        self.model, lo, hi = model, *BOX
        self.buffer = torch.rand((BUFFER, 1, SIZE, SIZE), generator=gen).mul_(hi - lo).add_(lo)
        self.ptr, self.n_new, self.stride = 0, max(1, int(BATCH * RATIO)), BUFFER // BATCH
        self.offsets = torch.arange(BATCH) * self.stride
        self.noise = torch.empty((BATCH, 1, SIZE, SIZE))

    def start(self, gen):
        lo, hi = BOX
        xk = self.buffer[self.offsets + torch.randint(0, self.stride, (BATCH,), generator=gen)]
        rows = torch.randperm(BATCH, generator=gen)[:self.n_new]
        xk[rows] = torch.rand((self.n_new, 1, SIZE, SIZE), generator=gen).mul_(hi - lo).add_(lo)
        return xk

    def langevin(self, xk, gen):
        c = NOISE * math.sqrt(2 * STEP_SIZE)
        for _ in range(K_STEPS):
            self.noise.normal_(generator=gen)
            xk.requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(plain_energy(self.model, xk).sum(), xk)
            xk = xk.detach().add_(grad.clamp_(-CLIP, CLIP), alpha=-STEP_SIZE).add_(self.noise, alpha=c).clamp_(*BOX)
        return xk

    def negatives(self, gen):
        xk = self.langevin(self.start(gen), gen)
        idx = torch.arange(self.ptr, self.ptr + BATCH) % BUFFER              # first in, first out
        self.buffer[idx] = xk
        self.ptr = (self.ptr + BATCH) % BUFFER
        return xk

    def iteration(self, optimizer, x, gen):
        neg = self.negatives(gen)
        pos, neg_e = plain_energy(self.model, x), plain_energy(self.model, neg)
        loss = pos.mean() - neg_e.mean() + REG * (pos.square().mean() + neg_e.square().mean())
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        return loss


def library_iteration(loss_fn, optimizer, x, gen):
    loss, _ = loss_fn(x, generator=gen)
    optimizer.zero_grad(); loss.backward(); optimizer.step()
    return loss


def check_same(x):
    "One iteration from the same parameters, buffer and seed: the same negatives, buffer, loss and Adam step on both sides."
    lib_model, ref_model = make_model(3), make_model(3)
    _, loss_fn = make_library(lib_model)
    loss_fn.initialize_buffer((1, SIZE, SIZE), generator=torch.Generator().manual_seed(4))
    ref = Reference(ref_model, torch.Generator().manual_seed(4))
    torch.testing.assert_close(loss_fn.replay_buffer, ref.buffer, rtol=0, atol=0)
    lib_opt, ref_opt = torch.optim.Adam(lib_model.parameters(), lr=LR), torch.optim.Adam(ref_model.parameters(), lr=LR)
    got, got_neg = loss_fn(x, generator=torch.Generator().manual_seed(5))
    lib_opt.zero_grad(); got.backward(); lib_opt.step()
    gen = torch.Generator().manual_seed(5)
    want_neg = ref.negatives(gen)
    pos, neg_e = plain_energy(ref_model, x), plain_energy(ref_model, want_neg)
    want = pos.mean() - neg_e.mean() + REG * (pos.square().mean() + neg_e.square().mean())
    ref_opt.zero_grad(); want.backward(); ref_opt.step()
    exact = dict(negatives=torch.equal(got_neg, want_neg), buffer=torch.equal(loss_fn.replay_buffer, ref.buffer),
                 loss=torch.equal(got, want),
                 parameters=all(torch.equal(a, b) for a, b in zip(lib_model.parameters(), ref_model.parameters())))
    torch.testing.assert_close(got_neg, want_neg, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss_fn.replay_buffer, ref.buffer, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for a, b in zip(lib_model.parameters(), ref_model.parameters()): torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    return exact


def timed(fn, n):
    "(wall, CPU) seconds per call; the process CPU time leaves out the time the shared core spends on other processes."
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n): fn()
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def summary(times):
    "Median and spread (min, max) of a list of seconds, in ms."
    return dict(median=1e3 * statistics.median(times), min=1e3 * min(times), max=1e3 * max(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=15)
    parser.add_argument('--iterations', type=int, default=1, help='training iterations per timed repeat')
    parser.add_argument('--out', default='benchmarks/results/cpu_image_pcd.json')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    x = torch.rand((BATCH, 1, SIZE, SIZE), generator=torch.Generator().manual_seed(0)).mul_(2).sub_(1)
    exact = check_same(x)
    print('one iteration, same seed: bit-identical', exact)

    lib_model, ref_model = make_model(0), make_model(0)
    sampler, loss_fn = make_library(lib_model)
    loss_fn.initialize_buffer((1, SIZE, SIZE), generator=torch.Generator().manual_seed(1))
    ref = Reference(ref_model, torch.Generator().manual_seed(1))
    lib_opt, ref_opt = torch.optim.Adam(lib_model.parameters(), lr=LR), torch.optim.Adam(ref_model.parameters(), lr=LR)
    g_lib, g_ref = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    start = ref.start(torch.Generator().manual_seed(3))

    cases = {
        'pcd20_iteration': (lambda: library_iteration(loss_fn, lib_opt, x, g_lib),
                            lambda: ref.iteration(ref_opt, x, g_ref)),
        'langevin_20_steps': (lambda: sampler.sample(x=start, n_steps=K_STEPS, generator=g_lib),
                              lambda: ref.langevin(start.clone(), g_ref)),
    }
    sampler.check_convergence = False   # as inside the loss (which runs its sampler under no_convergence_check)
    results = []
    for name, (lib, ref_fn) in cases.items():
        timed(lib, 1); timed(ref_fn, 1)                                # warm-up
        lib_t, ref_t = [], []
        for i in range(args.repeats):                                  # interleaved, alternating which side goes first
            if i % 2: ref_t.append(timed(ref_fn, args.iterations)); lib_t.append(timed(lib, args.iterations))
            else: lib_t.append(timed(lib, args.iterations)); ref_t.append(timed(ref_fn, args.iterations))
        row = dict(name=name, batch=BATCH, image=[1, SIZE, SIZE], k_steps=K_STEPS, repeats=args.repeats,
                   iterations_per_repeat=args.iterations)
        for clock, k in (('wall', 0), ('cpu', 1)):
            lt, rt = [t[k] for t in lib_t], [t[k] for t in ref_t]
            pair = [a / b for a, b in zip(lt, rt)]                     # the ratio within each repeat
            row[clock] = dict(library_ms=summary(lt), reference_ms=summary(rt),
                              ratio=statistics.median(lt) / statistics.median(rt),
                              ratio_per_repeat=dict(median=statistics.median(pair), min=min(pair), max=max(pair)),
                              library_ms_all=[1e3 * t for t in lt], reference_ms_all=[1e3 * t for t in rt])
            w = row[clock]
            print(f"{name:18s} {clock:4s} library {w['library_ms']['median']:8.1f} ms ({w['library_ms']['min']:.0f}–"
                  f"{w['library_ms']['max']:.0f})  reference {w['reference_ms']['median']:8.1f} ms ({w['reference_ms']['min']:.0f}–"
                  f"{w['reference_ms']['max']:.0f})  ratio {w['ratio']:.3f}  per repeat {min(pair):.3f}–{max(pair):.3f}")
        row.update(library_ms=row['wall']['library_ms']['median'], reference_ms=row['wall']['reference_ms']['median'],
                   ratio=row['wall']['ratio'], ratio_cpu=row['cpu']['ratio'])
        results.append(row)
    meta = run_meta(model='ConvEnergy(in_channels=1, channels=(32, 64), blocks_per_stage=1, silu)',
                    sampler=f'LangevinDynamics(step_size={STEP_SIZE}, noise_scale={NOISE}, clamp={BOX}), grad_clip={CLIP}',
                    loss=f'ContrastiveDivergence(k_steps={K_STEPS}, persistent=True, buffer_size={BUFFER}, init_steps=0, '
                         f'new_sample_ratio={RATIO}, energy_reg_weight={REG}, noise_range={BOX})',
                    optimizer=f'Adam(lr={LR})', same_one_iteration_bitwise=exact, target_ratio=1.1,
                    omp_num_threads=os.environ.get('OMP_NUM_THREADS'), cpu_count=os.cpu_count(),
                    clocks='wall: time.perf_counter; cpu: time.process_time (excludes time the core serves other processes)')
    write_report(args.out, meta, results)


if __name__ == '__main__':
    main()
