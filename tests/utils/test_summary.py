"""`summary` (issue 18): bulk ESS, tail ESS and rank-normalised split R-hat against an independent float64 NumPy/SciPy
implementation of Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021) written here; bulk ESS against the exact ESS of
AR(1) chains; the table's shape and printing; and bad input refused with an error naming the argument."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm, rankdata

from torchebm_nb.utils.diagnostics import (Summary, bulk_effective_sample_size, split_rhat, summary,
                                           tail_effective_sample_size)


# ---- an independent reference: Stan's / the paper's algorithm, step by step, in float64 NumPy ----
def ref_split(x):                         # (C, N) -> (2C, N // 2)
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]])


def ref_z(x):                             # rank-normalise over all draws
    r = rankdata(x, method='average').reshape(x.shape)
    return norm.ppf((r - 0.375) / (x.size + 0.25))


def ref_ess(x):                           # Geyer's initial monotone sequence, multi-chain (Stan)
    m, n = x.shape
    acov = np.stack([np.correlate(c - c.mean(), c - c.mean(), 'full')[n - 1:] / n for c in x])
    w = acov[:, 0].mean() * n / (n - 1)
    var_plus = w * (n - 1) / n + (x.mean(1).var(ddof=1) if m > 1 else 0.0)
    rho = 1 - (w - acov.mean(0)) / var_plus
    rho[0] = 1.0
    pairs = []
    for t in range(0, n - 1, 2):
        p = rho[t] + rho[t + 1]
        if p <= 0 and t > 0: break
        pairs.append(min(p, pairs[-1]) if pairs else p)
    tau = max(2 * sum(pairs) - 1, 1 / math.log10(max(m * n, 10)))
    return m * n / tau


def ref_rhat(x):
    n = x.shape[1]
    w = x.var(1, ddof=1).mean()
    return math.sqrt((w * (n - 1) / n + x.mean(1).var(ddof=1)) / w)


def ref_bulk(x): return ref_ess(ref_z(ref_split(x)))


def ref_tail(x):
    q05, q95 = np.quantile(x, [0.05, 0.95])
    return min(ref_ess(ref_split((x <= q05).astype(float))), ref_ess(ref_split((x <= q95).astype(float))))


def ref_rank_rhat(x):
    "Vehtari et al. (2021): split the chains, then rank-normalise (bulk, and the draws folded about the median)."
    folded = np.abs(x - np.median(x))
    return max(ref_rhat(ref_z(ref_split(x))), ref_rhat(ref_z(ref_split(folded))))


def ar1(phi, n_chains, n_draws, seed):
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n_chains, n_draws, generator=g, dtype=torch.float64)
    x = torch.empty_like(noise)
    x[:, 0] = noise[:, 0]
    for i in range(1, n_draws): x[:, i] = phi * x[:, i - 1] + math.sqrt(1 - phi ** 2) * noise[:, i]
    return x


CHAINS = {'ar1 0.8, 4 x 1001 (odd)': (0.8, 4, 1001, 0), 'ar1 0.3, 8 x 500': (0.3, 8, 500, 1),
          'ar1 -0.4, 2 x 300': (-0.4, 2, 300, 2), 'ar1 0.95, 1 x 2000': (0.95, 1, 2000, 3)}


@pytest.mark.parametrize('case', list(CHAINS))
def test_against_the_reference(case):
    x = ar1(*CHAINS[case])
    xn = x.numpy()
    np.testing.assert_allclose(bulk_effective_sample_size(x).item(), ref_bulk(xn), rtol=1e-8)
    np.testing.assert_allclose(tail_effective_sample_size(x).item(), ref_tail(xn), rtol=1e-8)
    np.testing.assert_allclose(split_rhat(x, rank_normalized=True).item(), ref_rank_rhat(xn), rtol=1e-8)
    table = summary(x[..., None])
    np.testing.assert_allclose(table['mean'].item(), xn.mean(), rtol=1e-10)
    np.testing.assert_allclose(table['sd'].item(), xn.std(ddof=1), rtol=1e-10)
    np.testing.assert_allclose(table['mcse_mean'].item(), xn.std(ddof=1) / math.sqrt(ref_ess(ref_split(xn))), rtol=1e-8)
    np.testing.assert_allclose([table[k].item() for k in ('5%', '50%', '95%')], np.quantile(xn, [0.05, 0.5, 0.95]), rtol=1e-10)


@pytest.mark.parametrize('phi', [0.0, 0.5, 0.8])
def test_bulk_ess_of_ar1_chains(phi):
    "ESS ≈ C·N(1 − φ)/(1 + φ); the estimator's relative error at this size is a few per cent (4 ≈ 4 standard errors)."
    x = ar1(phi, 16, 4000, 7)
    exact = x.numel() * (1 - phi) / (1 + phi)
    assert abs(bulk_effective_sample_size(x).item() / exact - 1) < 0.12


def test_table_shapes_and_printing():
    x = ar1(0.5, 4, 200, 5).float().unsqueeze(-1).expand(-1, -1, 3).contiguous()
    diag = {'acceptance_rate': torch.full((200,), 0.8), 'divergences': torch.tensor([0.0, 2.0, 1.0])}
    table = summary((x, diag))
    assert isinstance(table, Summary) and len(table) == 3 and table.names == ['x[0]', 'x[1]', 'x[2]']
    assert all(v.shape == (3,) and v.dtype == torch.float32 for v in table.columns.values())
    text = str(table)
    assert text.splitlines()[0].split() == ['mean', 'sd', 'mcse_mean', '5%', '50%', '95%', 'ess_bulk', 'ess_tail', 'r_hat']
    assert 'Mean acceptance rate: 0.800' in text and 'Number of divergences: 3' in text
    named = summary({'a': x, 'b': x[:, :, 0]}, quantiles=[0.1])
    assert named.names == ['a[0]', 'a[1]', 'a[2]', 'b'] and '10%' in named.columns
    assert summary(x[0, :, 0]).names == ['x']                            # one chain (N,)
    assert summary(torch.zeros(2, 10, 2, 2), name='w').names == ['w[0,0]', 'w[0,1]', 'w[1,0]', 'w[1,1]']


T = torch.zeros(2, 20, 2)
CASES = {  # name: (call, exception, argument named, expected words)
    'a list': (lambda: summary([[1.0] * 20]), TypeError, 'samples', 'must be'),
    'a string': (lambda: summary('chains'), TypeError, 'samples', 'tensor'),
    'a pair without a dict': (lambda: summary((T, T)), TypeError, 'samples', 'diagnostics dict'),
    'an empty dict': (lambda: summary({}), ValueError, 'samples', 'at least one quantity'),
    'a key that is not a str': (lambda: summary({1: T}), TypeError, 'samples', 'str'),
    'an integer tensor': (lambda: summary(T.long()), TypeError, "samples['x']", 'floating'),
    'seven draws': (lambda: summary(T[:, :7]), ValueError, "samples['x']", 'at least 8 draws'),
    'a 0-d tensor': (lambda: summary(torch.tensor(1.0)), ValueError, "samples['x']", '0-d'),
    'quantile 1.5': (lambda: summary(T, quantiles=(0.5, 1.5)), ValueError, 'quantiles', '1.5'),
    'quantile nan': (lambda: summary(T, quantiles=(math.nan,)), ValueError, 'quantiles', 'finite'),
    'quantile a str': (lambda: summary(T, quantiles=('0.5',)), TypeError, 'quantiles', 'real number'),
    'quantiles a float': (lambda: summary(T, quantiles=0.5), TypeError, 'quantiles', 'tuple'),
    'name an int': (lambda: summary(T, name=3), TypeError, 'name', 'str'),
    'bulk of 7 draws': (lambda: bulk_effective_sample_size(T[:, :7]), ValueError, 'chains', 'at least 8'),
    'tail of ints': (lambda: tail_effective_sample_size(T.long()), TypeError, 'chains', 'floating'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_input_is_refused(case):
    call, kind, name, words = CASES[case]
    with pytest.raises(kind) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
