"""The kernel source as it was before it was split into one string per kernel (commit 0e05ce8), kept to check the split.

`reference_source(energy, dim, external_noise, kernel)` is `kernel_source` as it was then: every kernel in one string,
the one to compile chosen by `#define TEBM_ONLY`. tests/cuda/test_kernel_source_split.py checks that each configuration's
kernel, and every device function it calls, reads the same (after the C preprocessor, whitespace aside) and, where a
CUDA compiler is available, compiles to the same PTX. A deliberate change to a kernel makes the same edit here: the
HMC kernel's momentum draw, trajectory and uniform were since moved into device functions (sm_90 PTX unchanged up to
virtual-register names, checked with nvcc 13.0 when they were).
"""
from typing import Optional

from torchebm_nb.cuda.kernels import ENERGY_IDS, KERNEL_NAMES
from torchebm_nb.cuda.philox import PHILOX_CUDA_SOURCE

REFERENCE_ENERGY_SOURCE = r'''
#define TEBM_INT_MAX 2147483647
#define TEBM_TINY 1.17549435e-38f
// ---- separable energies: one coordinate at a time (d = coordinate index, dim = D) ----
__device__ __forceinline__ float tebm_grad1(float x, int d, int dim, const float* __restrict__ prm) {
#if TEBM_ENERGY == 1      /* double well: (-4hb^2 + 4h x x) x */
    return __fmul_rn(__fmaf_rn(__ldg(prm + 0), __fmul_rn(x, x), __ldg(prm + 1)), x);
#elif TEBM_ENERGY == 2    /* harmonic: x k */
    return __fmul_rn(x, __ldg(prm + 0));
#elif TEBM_ENERGY == 3    /* Gaussian, diagonal precision: (x - mu_d) P_dd */
    return __fmul_rn(__fsub_rn(x, __ldg(prm + d)), __ldg(prm + dim + d));
#elif TEBM_ENERGY == 5    /* Rastrigin: 2x + 2 pi a sin(2 pi x) */
    return __fadd_rn(__fmul_rn(2.0f, x), __fmul_rn(__ldg(prm + 1), sinf(__fmul_rn(__ldg(prm + 0), x))));
#else
    return 0.0f;
#endif
}
__device__ __forceinline__ float tebm_energy_term1(float x, int d, int dim, const float* __restrict__ prm) {
#if TEBM_ENERGY == 1      /* (x^2 - b^2)^2 */
    const float t = __fsub_rn(__fmul_rn(x, x), __ldg(prm + 2)); return __fmul_rn(t, t);
#elif TEBM_ENERGY == 2    /* x^2 */
    return __fmul_rn(x, x);
#elif TEBM_ENERGY == 3    /* (x - mu)^2 P_dd, as (delta P) delta */
    const float t = __fsub_rn(x, __ldg(prm + d)); return __fmul_rn(__fmul_rn(t, __ldg(prm + dim + d)), t);
#elif TEBM_ENERGY == 5    /* x^2 - a cos(2 pi x) */
    return __fsub_rn(__fmul_rn(x, x), __fmul_rn(__ldg(prm + 2), cosf(__fmul_rn(__ldg(prm + 0), x))));
#else
    return 0.0f;
#endif
}
__device__ __forceinline__ float tebm_energy_total1(float sum, const float* __restrict__ prm) {
#if TEBM_ENERGY == 1
    return __fmul_rn(__ldg(prm + 3), sum);
#elif TEBM_ENERGY == 2
    return __fmul_rn(__ldg(prm + 1), sum);
#elif TEBM_ENERGY == 3
    return __fmul_rn(0.5f, sum);
#elif TEBM_ENERGY == 5
    return __fadd_rn(__ldg(prm + 3), sum);
#else
    return sum;
#endif
}
#ifdef TEBM_D
// Ackley's two means: r = sqrt(mean x_d^2) and mean cos(c x_d)
__device__ __forceinline__ void tebm_ackley_means(const float* x, const float* __restrict__ prm, float* r, float* mean_cos) {
    float sq = 0.0f, cs = 0.0f;
    #pragma unroll
    for (int d = 0; d < TEBM_D; ++d) {
        sq = __fadd_rn(sq, __fmul_rn(x[d], x[d]));
        cs = __fadd_rn(cs, cosf(__fmul_rn(__ldg(prm + 2), x[d])));
    }
    const float D = __ldg(prm + 7);
    *r = __fsqrt_rn(__fdiv_rn(sq, D));
    *mean_cos = __fdiv_rn(cs, D);
}
// ---- whole-state gradient and energy of one chain (D = TEBM_D, known at compile time) ----
__device__ __forceinline__ void tebm_grad(const float* x, float* g, const float* __restrict__ prm) {
#if TEBM_ENERGY == 1 || TEBM_ENERGY == 2 || TEBM_ENERGY == 3 || TEBM_ENERGY == 5
    #pragma unroll
    for (int d = 0; d < TEBM_D; ++d) g[d] = tebm_grad1(x[d], d, TEBM_D, prm);
#elif TEBM_ENERGY == 4    /* Gaussian, full precision: g_d = sum_j (x_j - mu_j) P_jd */
    float delta[TEBM_D];
    #pragma unroll
    for (int j = 0; j < TEBM_D; ++j) delta[j] = __fsub_rn(x[j], __ldg(prm + j));
    #pragma unroll
    for (int d = 0; d < TEBM_D; ++d) {
        float acc = 0.0f;
        for (int j = 0; j < TEBM_D; ++j) acc = __fmaf_rn(delta[j], __ldg(prm + TEBM_D + j * TEBM_D + d), acc);
        g[d] = acc;
    }
#elif TEBM_ENERGY == 6    /* Ackley */
    float r, mean_cos;
    tebm_ackley_means(x, prm, &r, &mean_cos);
    const float D = __ldg(prm + 7);
    const float radial = r > 0.0f ? __fdiv_rn(__fmul_rn(__ldg(prm + 0), expf(__fmul_rn(__ldg(prm + 1), r))),
                                              __fmul_rn(D, fmaxf(r, TEBM_TINY))) : 0.0f;
    const float ripple = __fmul_rn(expf(mean_cos), __ldg(prm + 3));
    #pragma unroll
    for (int d = 0; d < TEBM_D; ++d)
        g[d] = __fadd_rn(__fmul_rn(radial, x[d]), __fmul_rn(ripple, sinf(__fmul_rn(__ldg(prm + 2), x[d]))));
#elif TEBM_ENERGY == 7    /* Rosenbrock */
    const float a = __ldg(prm + 0), b4 = __ldg(prm + 2), b2 = __ldg(prm + 3);
    g[TEBM_D - 1] = 0.0f;
    #pragma unroll
    for (int i = 0; i < TEBM_D - 1; ++i) {
        const float inner = __fsub_rn(x[i + 1], __fmul_rn(x[i], x[i]));
        g[i] = __fsub_rn(__fmul_rn(2.0f, __fsub_rn(x[i], a)), __fmul_rn(__fmul_rn(b4, x[i]), inner));
    }
    #pragma unroll
    for (int i = 1; i < TEBM_D; ++i)
        g[i] = __fadd_rn(g[i], __fmul_rn(b2, __fsub_rn(x[i], __fmul_rn(x[i - 1], x[i - 1]))));
#endif
}
__device__ __forceinline__ float tebm_energy(const float* x, const float* __restrict__ prm) {
#if TEBM_ENERGY == 1 || TEBM_ENERGY == 2 || TEBM_ENERGY == 3 || TEBM_ENERGY == 5
    float sum = 0.0f;
    #pragma unroll
    for (int d = 0; d < TEBM_D; ++d) sum = __fadd_rn(sum, tebm_energy_term1(x[d], d, TEBM_D, prm));
    return tebm_energy_total1(sum, prm);
#elif TEBM_ENERGY == 4
    float g[TEBM_D];
    tebm_grad(x, g, prm);
    float sum = 0.0f;
    #pragma unroll
    for (int d = 0; d < TEBM_D; ++d) sum = __fadd_rn(sum, __fmul_rn(g[d], __fsub_rn(x[d], __ldg(prm + d))));
    return __fmul_rn(0.5f, sum);
#elif TEBM_ENERGY == 6
    float r, mean_cos;
    tebm_ackley_means(x, prm, &r, &mean_cos);
    const float t = __fsub_rn(__fmul_rn(__ldg(prm + 4), expf(__fmul_rn(__ldg(prm + 1), r))), expf(mean_cos));
    return __fadd_rn(__fadd_rn(t, __ldg(prm + 5)), __ldg(prm + 6));
#elif TEBM_ENERGY == 7
    const float a = __ldg(prm + 0), b = __ldg(prm + 1);
    float sum = 0.0f;
    #pragma unroll
    for (int i = 0; i < TEBM_D - 1; ++i) {
        const float u = __fsub_rn(a, x[i]), v = __fsub_rn(x[i + 1], __fmul_rn(x[i], x[i]));
        sum = __fadd_rn(sum, __fadd_rn(__fmul_rn(u, u), __fmul_rn(b, __fmul_rn(v, v))));
    }
    return sum;
#else
    return 0.0f;
#endif
}
#endif
'''

REFERENCE_KERNEL_SOURCE = r'''
__device__ __forceinline__ float4 tebm_normal4(unsigned long long seed, unsigned long long counter,
                                               const float* __restrict__ noise, long long e0, long long n) {
#if TEBM_EXTERNAL_NOISE
    return make_float4(e0 < n ? noise[e0] : 0.0f, e0 + 1 < n ? noise[e0 + 1] : 0.0f,
                       e0 + 2 < n ? noise[e0 + 2] : 0.0f, e0 + 3 < n ? noise[e0 + 3] : 0.0f);
#else
    return tebm_philox_normal4(seed, counter);
#endif
}
// one out-of-line copy for the chain-per-thread kernels, which call it from fully unrolled loops over coordinates
__device__ __noinline__ float4 tebm_normal4_call(unsigned long long seed, unsigned long long counter,
                                                 const float* __restrict__ noise, long long e0, long long n) {
    return tebm_normal4(seed, counter, noise, e0, n);
}
__device__ __forceinline__ float tebm_lane(float4 v, int lane) {
    return lane == 0 ? v.x : lane == 1 ? v.y : lane == 2 ? v.z : v.w;
}
__device__ __forceinline__ float tebm_clamp(float v, float lo, float hi) {   // NaN stays NaN, like torch.clamp
    return isnan(v) ? v : fminf(fmaxf(v, lo), hi);
}
__device__ __forceinline__ float tebm_safe_force(float f, float max_force) {   // nan_to_num(nan=0) then clamp
    return isnan(f) ? 0.0f : fminf(fmaxf(f, -max_force), max_force);
}

#ifndef TEBM_ONLY
#define TEBM_ONLY 0
#endif
#if TEBM_ONLY == 0 || TEBM_ONLY == 1
// (1) x <- x - h g + c xi (+ clamp), in place; four elements (one Philox counter) per thread.
extern "C" __global__ void tebm_langevin_update(float* __restrict__ x, const float* __restrict__ g, long long n,
        float h, float c, const long long* __restrict__ seed_ptr, unsigned long long counter,
        const float* __restrict__ noise, int clamp, float lo, float hi, int vec4) {
    const unsigned long long seed = (unsigned long long)__ldg(seed_ptr);
    const long long n4 = (n + 3) >> 2;
    for (long long j = blockIdx.x * (long long)blockDim.x + threadIdx.x; j < n4; j += (long long)gridDim.x * blockDim.x) {
        const long long e0 = j << 2;
        const float4 z = tebm_normal4(seed, counter + (unsigned long long)j, noise, e0, n);
        if (vec4 && e0 + 3 < n) {
            float4 xv = reinterpret_cast<float4*>(x)[j];
            const float4 gv = reinterpret_cast<const float4*>(g)[j];
            xv.x = __fmaf_rn(c, z.x, __fmaf_rn(h, -gv.x, xv.x));
            xv.y = __fmaf_rn(c, z.y, __fmaf_rn(h, -gv.y, xv.y));
            xv.z = __fmaf_rn(c, z.z, __fmaf_rn(h, -gv.z, xv.z));
            xv.w = __fmaf_rn(c, z.w, __fmaf_rn(h, -gv.w, xv.w));
            if (clamp) { xv.x = tebm_clamp(xv.x, lo, hi); xv.y = tebm_clamp(xv.y, lo, hi);
                         xv.z = tebm_clamp(xv.z, lo, hi); xv.w = tebm_clamp(xv.w, lo, hi); }
            reinterpret_cast<float4*>(x)[j] = xv;
        } else {
            for (int l = 0; l < 4 && e0 + l < n; ++l) {
                float v = __fmaf_rn(c, tebm_lane(z, l), __fmaf_rn(h, -g[e0 + l], x[e0 + l]));
                x[e0 + l] = clamp ? tebm_clamp(v, lo, hi) : v;
            }
        }
    }
}

#endif
#if TEBM_ONLY == 0 || TEBM_ONLY == 2
// (2a) whole-chain Langevin, separable energy: every coordinate evolves on its own; four per thread.
extern "C" __global__ void tebm_langevin_separable(float* __restrict__ x, long long n, int dim,
        const float* __restrict__ prm, const float* __restrict__ hs, const float* __restrict__ cs, int n_steps,
        const long long* __restrict__ seed_ptr, unsigned long long counter, const float* __restrict__ noise,
        int clamp, float lo, float hi, int* __restrict__ first_bad, int step0) {
    const unsigned long long seed = (unsigned long long)__ldg(seed_ptr);
    const long long n4 = (n + 3) >> 2;
    for (long long j = blockIdx.x * (long long)blockDim.x + threadIdx.x; j < n4; j += (long long)gridDim.x * blockDim.x) {
        const long long e0 = j << 2;
        float v[4]; int d[4], bad[4];
        #pragma unroll
        for (int l = 0; l < 4; ++l) {
            v[l] = e0 + l < n ? x[e0 + l] : 0.0f;
            d[l] = (int)((e0 + l) % dim);
            bad[l] = TEBM_INT_MAX;
        }
        for (int s = 0; s < n_steps; ++s) {
            const float h = __ldg(hs + s), c = __ldg(cs + s);
            const float4 z = tebm_normal4(seed, counter + (unsigned long long)s * n4 + j, noise + (long long)s * n, e0, n);
            #pragma unroll
            for (int l = 0; l < 4; ++l) {
                float u = __fmaf_rn(c, tebm_lane(z, l), __fmaf_rn(h, -tebm_grad1(v[l], d[l], dim, prm), v[l]));
                if (clamp) u = tebm_clamp(u, lo, hi);
                if (!isfinite(u) && bad[l] == TEBM_INT_MAX) bad[l] = step0 + s + 1;
                v[l] = u;
            }
        }
        #pragma unroll
        for (int l = 0; l < 4; ++l) if (e0 + l < n) {
            x[e0 + l] = v[l];
            if (bad[l] != TEBM_INT_MAX) atomicMin(first_bad + (e0 + l) / dim, bad[l]);
        }
    }
}

#endif
#if defined(TEBM_D) && (TEBM_ONLY == 0 || TEBM_ONLY == 3)
// (2b) whole-chain Langevin, any analytic energy: one chain per thread, its D coordinates in registers.
extern "C" __global__ void tebm_langevin_chain(float* __restrict__ x, int n_chains, const float* __restrict__ prm,
        const float* __restrict__ hs, const float* __restrict__ cs, int n_steps,
        const long long* __restrict__ seed_ptr, unsigned long long counter, const float* __restrict__ noise,
        int clamp, float lo, float hi, int* __restrict__ first_bad, int step0) {
    const unsigned long long seed = (unsigned long long)__ldg(seed_ptr);
    const long long n = (long long)n_chains * TEBM_D, n4 = (n + 3) >> 2;
    for (long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x; b < n_chains; b += (long long)gridDim.x * blockDim.x) {
        float v[TEBM_D], g[TEBM_D];
        const long long base = (long long)b * TEBM_D;
        #pragma unroll
        for (int d = 0; d < TEBM_D; ++d) v[d] = x[base + d];
        int bad = TEBM_INT_MAX;
        for (int s = 0; s < n_steps; ++s) {
            const float h = __ldg(hs + s), c = __ldg(cs + s);
            tebm_grad(v, g, prm);
            long long block = -1; float4 z = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            bool finite = true;
            #pragma unroll
            for (int d = 0; d < TEBM_D; ++d) {
                const long long e = base + d;
                if ((e >> 2) != block) {
                    block = e >> 2;
                    z = tebm_normal4_call(seed, counter + (unsigned long long)s * n4 + block, noise + (long long)s * n, block << 2, n);
                }
                float u = __fmaf_rn(c, tebm_lane(z, (int)(e & 3)), __fmaf_rn(h, -g[d], v[d]));
                if (clamp) u = tebm_clamp(u, lo, hi);
                finite = finite && isfinite(u);
                v[d] = u;
            }
            if (!finite && bad == TEBM_INT_MAX) bad = step0 + s + 1;
        }
        #pragma unroll
        for (int d = 0; d < TEBM_D; ++d) x[base + d] = v[d];
        if (bad != TEBM_INT_MAX) atomicMin(first_bad + b, bad);
    }
}

#endif
#if defined(TEBM_D) && (TEBM_ONLY == 0 || TEBM_ONLY == 4)
// (3) whole-chain HMC, its parts for one chain: kinetic energy, momentum draw, leapfrog trajectory, Metropolis uniform.
// mass_mode 0: m = 1; 1: scalar m (sqrt_m, inv_m scalars); 2: per-dimension m (mass = [sqrt(m) | m | 1/m], 3D floats)
__device__ __forceinline__ float tebm_kinetic_term(float p, int d, int mass_mode, float inv_m, const float* __restrict__ mass) {
    return mass_mode == 2 ? __fdiv_rn(__fmul_rn(p, p), __ldg(mass + TEBM_D + d))
         : mass_mode == 1 ? __fmul_rn(__fmul_rn(p, p), inv_m) : __fmul_rn(p, p);
}
// p = sqrt(M) z for the chain whose coordinates start at `base`; returns sum_d p_d^2 / m_d
__device__ __forceinline__ float tebm_draw_momentum(float* p, long long base, unsigned long long seed, unsigned long long c0,
        const float* noise, long long n, int mass_mode, float sqrt_m, float inv_m, const float* __restrict__ mass) {
    long long block = -1; float4 z = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float K = 0.0f;
    #pragma unroll
    for (int d = 0; d < TEBM_D; ++d) {
        const long long e = base + d;
        if ((e >> 2) != block) { block = e >> 2; z = tebm_normal4_call(seed, c0 + block, noise, block << 2, n); }
        const float zd = tebm_lane(z, (int)(e & 3));
        const float pd = mass_mode == 2 ? __fmul_rn(zd, __ldg(mass + d)) : mass_mode == 1 ? __fmul_rn(zd, sqrt_m) : zd;
        K = __fadd_rn(K, tebm_kinetic_term(pd, d, mass_mode, inv_m, mass));
        p[d] = pd;
    }
    return K;
}
// n_leap leapfrog steps of (x, p), f holding the safe force at x on entry and on exit
__device__ __forceinline__ void tebm_leapfrog(float* x, float* p, float* f, int n_leap, float h, float half, float move,
        int mass_mode, const float* __restrict__ mass, const float* __restrict__ prm, float max_force) {
    for (int l = 0; l < n_leap; ++l) {
        #pragma unroll
        for (int d = 0; d < TEBM_D; ++d) {
            p[d] = __fmaf_rn(half, f[d], p[d]);
            const float md = mass_mode == 2 ? __fmul_rn(h, __ldg(mass + 2 * TEBM_D + d)) : move;
            x[d] = __fmaf_rn(md, p[d], x[d]);
        }
        tebm_grad(x, f, prm);
        #pragma unroll
        for (int d = 0; d < TEBM_D; ++d) {
            f[d] = tebm_safe_force(-f[d], max_force);
            p[d] = __fmaf_rn(half, f[d], p[d]);
        }
    }
}
// the uniform of chain b's Metropolis test at iteration s: uniforms[s, b], or word b % 4 of Philox block c1 + b / 4
__device__ __forceinline__ float tebm_hmc_uniform(long long b, int s, int n_chains, const float* __restrict__ uniforms,
        unsigned long long seed, unsigned long long c1) {
#if TEBM_EXTERNAL_NOISE
    return uniforms[(long long)s * n_chains + b];
#else
    const uint4 w = tebm_philox_bits(seed, c1 + (unsigned long long)(b >> 2));
    const unsigned int word = (b & 3) == 0 ? w.x : (b & 3) == 1 ? w.y : (b & 3) == 2 ? w.z : w.w;
    return tebm_uniform24(word);
#endif
}

extern "C" __global__ void tebm_hmc_chain(float* __restrict__ x, int n_chains, const float* __restrict__ prm,
        const float* __restrict__ hs, const float* __restrict__ halves, const float* __restrict__ moves,
        int n_iter, int n_leap, int mass_mode, float sqrt_m, float inv_m, const float* __restrict__ mass,
        const long long* __restrict__ seed_ptr, unsigned long long counter, const float* __restrict__ noise,
        const float* __restrict__ uniforms, float max_force, float* __restrict__ energy_out,
        int* __restrict__ accepted_last, int* __restrict__ n_accepted, int* __restrict__ first_bad, int step0) {
    const unsigned long long seed = (unsigned long long)__ldg(seed_ptr);
    const long long n = (long long)n_chains * TEBM_D, n4 = (n + 3) >> 2, nb4 = ((long long)n_chains + 3) >> 2;
    for (long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x; b < n_chains; b += (long long)gridDim.x * blockDim.x) {
        float v[TEBM_D], f[TEBM_D], xn[TEBM_D], pn[TEBM_D], fn[TEBM_D];
        const long long base = (long long)b * TEBM_D;
        #pragma unroll
        for (int d = 0; d < TEBM_D; ++d) v[d] = x[base + d];
        tebm_grad(v, f, prm);
        #pragma unroll
        for (int d = 0; d < TEBM_D; ++d) f[d] = tebm_safe_force(-f[d], max_force);
        float E = tebm_clamp(tebm_energy(v, prm), -1e10f, 1e10f);
        int bad = TEBM_INT_MAX, acc_count = 0, acc = 0;
        bool start_finite = true;
        #pragma unroll
        for (int d = 0; d < TEBM_D; ++d) start_finite = start_finite && isfinite(v[d]);
        if (!start_finite && n_iter > 0) bad = step0 + 1;   // a chain that starts non-finite stays so: report it
        for (int s = 0; s < n_iter; ++s) {
            const unsigned long long c0 = counter + (unsigned long long)s * (unsigned long long)(n4 + nb4);
            // momentum p ~ N(0, M), kinetic energy K = clamp(0.5 * sum p^2 / m, 0, 1e10)
            const float K0 = tebm_draw_momentum(pn, base, seed, c0, noise + (long long)s * n, n, mass_mode, sqrt_m, inv_m, mass);
            #pragma unroll
            for (int d = 0; d < TEBM_D; ++d) { xn[d] = v[d]; fn[d] = f[d]; }
            const float H0 = __fadd_rn(tebm_clamp(__fmul_rn(K0, 0.5f), 0.0f, 1e10f), E);
            tebm_leapfrog(xn, pn, fn, n_leap, __ldg(hs + s), __ldg(halves + s), __ldg(moves + s), mass_mode, mass, prm, max_force);
            float K1 = 0.0f;
            #pragma unroll
            for (int d = 0; d < TEBM_D; ++d) K1 = __fadd_rn(K1, tebm_kinetic_term(pn[d], d, mass_mode, inv_m, mass));
            const float E1 = tebm_clamp(tebm_energy(xn, prm), -1e10f, 1e10f);
            const float delta = tebm_clamp(__fsub_rn(__fsub_rn(H0, tebm_clamp(__fmul_rn(K1, 0.5f), 0.0f, 1e10f)), E1), -50.0f, 50.0f);
            const float u = tebm_hmc_uniform(b, s, n_chains, uniforms, seed, c0 + n4);
            acc = logf(u) < delta;          // false for a NaN delta: NaN proposals are rejected
            if (acc) {
                bool finite = true;
                #pragma unroll
                for (int d = 0; d < TEBM_D; ++d) { v[d] = xn[d]; f[d] = fn[d]; finite = finite && isfinite(xn[d]); }
                E = E1;
                ++acc_count;
                if (!finite && bad == TEBM_INT_MAX) bad = step0 + s + 1;
            }
        }
        #pragma unroll
        for (int d = 0; d < TEBM_D; ++d) x[base + d] = v[d];
        energy_out[b] = E;
        accepted_last[b] = acc;
        n_accepted[b] += acc_count;
        if (bad != TEBM_INT_MAX) atomicMin(first_bad + b, bad);
    }
}
#endif
'''


def reference_source(energy: Optional[str] = None, dim: Optional[int] = None, external_noise: bool = False,
                     kernel: Optional[str] = None) -> str:
    "The complete CUDA source for one configuration, assembled as before the split."
    lines = [f'#define TEBM_ENERGY {ENERGY_IDS.get(energy, 0)}', f'#define TEBM_EXTERNAL_NOISE {int(bool(external_noise))}',
             f'#define TEBM_ONLY {0 if kernel is None else KERNEL_NAMES.index(kernel) + 1}']
    if dim is not None: lines.append(f'#define TEBM_D {int(dim)}')
    return '\n'.join(lines) + '\n' + PHILOX_CUDA_SOURCE + REFERENCE_ENERGY_SOURCE + REFERENCE_KERNEL_SOURCE
