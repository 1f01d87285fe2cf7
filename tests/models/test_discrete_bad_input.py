"""Bad input to the discrete models and what samples or trains them (issue 16), refused before any work with the right
exception type and a message naming the argument: states outside the model's alphabet at every entry point, couplings
that are not a finite symmetric zero-diagonal (D, D) matrix, and enumerations asked for too many states. The cases
complement those of tests/models/test_ising_potts.py, test_rbm.py, tests/samplers/test_gibbs.py,
test_gradient_discrete.py and tests/losses/test_discrete_losses.py (not repeated here); per class:

- IsingModel: forward / local_fields states; couplings inf, 3-D, empty, complex, bool; exact_average too many states.
- PottsModel: conditional_logits labels; couplings diagonal, NaN, inf, non-square, list; field NaN; exact_marginals and
  exact_average too many states.
- RBM: check_visible(values=True) (and its `name`), log_prob NaN, log_partition / log_prob over max_units by default.
- GibbsSampler, GibbsWithGradients, DMALA: `sample(x=…)` outside the alphabet; GWG/DMALA refuse a Potts model.
- PseudoLikelihoodLoss, RatioMatchingLoss: data outside the alphabet.
Every case whose caller (a sampler, a loss, the RBM's log_prob) could evaluate a model runs on a counting subclass and
asserts it was not evaluated; a model's own checking methods are called on a plain model (the check is their first line)."""
import math

import pytest
import torch

from torchebm_nb.losses import PseudoLikelihoodLoss, RatioMatchingLoss
from torchebm_nb.models import RBM, IsingModel, PottsModel
from counting import CountingIsing, CountingPotts, CountingRBM
from torchebm_nb.samplers import DMALA, GibbsSampler, GibbsWithGradients

F64 = torch.float64
NAN = math.nan


def ising(): return CountingIsing.lattice(2, 3, J=0.5, h=0.1)                    # 6 spins
def potts(): return CountingPotts.lattice(2, 3, J=0.5, n_states=3)               # 6 sites, labels 0..2
def rbm(): return CountingRBM(5, 3, init_std=0.5, generator=0, dtype=F64)
def wide_rbm(): return CountingRBM(24, 22, generator=0, dtype=F64)               # 2^22 states on its smaller layer
def no_model(): return None
def plain_ising(): return IsingModel.lattice(2, 3, J=0.5, h=0.1)   # for calls of the model's own methods: the check is
def plain_potts(): return PottsModel.lattice(2, 3, J=0.5, n_states=3)   # their first line, a counter would count the call


SYMMETRIC = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
SPINS = torch.tensor([[1.0, -1.0, 1.0, 1.0, -1.0, -1.0]] * 2)
LABELS = torch.tensor([[0, 1, 2, 0, 1, 2]] * 2)
BITS = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0]] * 2, dtype=F64)

CASES = {  # name: (model factory, call, exception type, argument named, expected words)
    # ------------------------------------------------------------------ IsingModel
    'Ising forward NaN spins': (plain_ising, lambda m: m(torch.full((2, 6), NAN)), ValueError, 's', '{-1, +1}'),
    'Ising forward spins ±2': (plain_ising, lambda m: m(2 * SPINS), ValueError, 's', '{-1, +1}'),
    'Ising local_fields spins 0.5': (plain_ising, lambda m: m.local_fields(torch.full((2, 6), 0.5)), ValueError, 's', '0.5'),
    'Ising local_fields wrong D': (plain_ising, lambda m: m.local_fields(SPINS[:, :5]), ValueError, 's', '(B, 6)'),
    'Ising local_fields a list': (plain_ising, lambda m: m.local_fields(SPINS.tolist()), TypeError, 's', 'list'),
    'Ising couplings inf': (no_model, lambda m: IsingModel(torch.tensor([[0.0, math.inf], [math.inf, 0.0]])),
                            ValueError, 'couplings', 'finite'),
    'Ising couplings 3-D': (no_model, lambda m: IsingModel(torch.zeros(2, 2, 2)), ValueError, 'couplings', '(2, 2, 2)'),
    'Ising couplings empty': (no_model, lambda m: IsingModel(torch.zeros(0, 0)), ValueError, 'couplings', 'non-empty'),
    'Ising couplings complex': (no_model, lambda m: IsingModel(SYMMETRIC.to(torch.complex64)), TypeError, 'couplings',
                                'complex64'),
    'Ising couplings bool': (no_model, lambda m: IsingModel(SYMMETRIC.bool()), TypeError, 'couplings', 'torch.bool'),
    'Ising couplings 1-D': (no_model, lambda m: IsingModel(torch.zeros(4)), ValueError, 'couplings', '(4,)'),
    'Ising exact_average 2^25 states': (no_model, lambda m: IsingModel.lattice(5).exact_average(lambda s: s),
                                        ValueError, 'exact_average', '2^25'),
    # ------------------------------------------------------------------ PottsModel
    'Potts conditional_logits labels -1': (plain_potts, lambda m: m.conditional_logits(-torch.ones(2, 6, dtype=torch.long)),
                                           ValueError, 'sigma', '[0, 3)'),
    'Potts conditional_logits float labels': (plain_potts, lambda m: m.conditional_logits(LABELS.double()), TypeError,
                                              'sigma', 'float64'),
    'Potts conditional_logits wrong D': (plain_potts, lambda m: m.conditional_logits(LABELS[:, :4]), ValueError, 'sigma', '(B, 6)'),
    'Potts forward labels 1-D': (plain_potts, lambda m: m(LABELS[0]), ValueError, 'sigma', '(B, 6)'),
    'Potts couplings diagonal': (no_model, lambda m: PottsModel(torch.eye(3)), ValueError, 'couplings', 'zero diagonal'),
    'Potts couplings NaN': (no_model, lambda m: PottsModel(torch.tensor([[0.0, NAN], [NAN, 0.0]])), ValueError,
                            'couplings', 'finite'),
    'Potts couplings inf': (no_model, lambda m: PottsModel(torch.tensor([[0.0, math.inf], [math.inf, 0.0]])), ValueError,
                            'couplings', 'finite'),
    'Potts couplings not square': (no_model, lambda m: PottsModel(torch.zeros(3, 2)), ValueError, 'couplings', '(3, 2)'),
    'Potts couplings a list': (no_model, lambda m: PottsModel([[0.0, 1.0], [1.0, 0.0]]), TypeError, 'couplings', 'list'),
    'Potts field NaN': (no_model, lambda m: PottsModel(SYMMETRIC, torch.full((2, 3), NAN)), ValueError, 'field', 'finite'),
    'Potts exact_marginals 3^25 states': (no_model, lambda m: PottsModel.lattice(5).exact_marginals(), ValueError,
                                          'exact_average', '3^25'),
    'Potts exact_average 3^16 states': (no_model, lambda m: PottsModel.lattice(4, n_states=3).exact_average(lambda s: s),
                                        ValueError, 'exact_average', '3^16'),
    # ------------------------------------------------------------------ RBM
    'RBM check_visible values 0.5': (rbm, lambda m: m.check_visible(torch.full((2, 5), 0.5, dtype=F64), values=True),
                                     ValueError, 'v', 'only 0s and 1s'),
    'RBM check_visible values -1, named x': (rbm, lambda m: m.check_visible(-BITS, name='x', values=True), ValueError,
                                             'x must', 'only 0s and 1s'),
    'RBM check_visible NaN': (rbm, lambda m: m.check_visible(torch.full((2, 5), NAN, dtype=F64), values=True),
                              ValueError, 'v', 'nan'),
    'RBM log_prob NaN': (rbm, lambda m: m.log_prob(torch.full((2, 5), NAN, dtype=F64)), ValueError, 'v', 'only 0s and 1s'),
    'RBM log_partition over max_units': (wide_rbm, lambda m: m.log_partition(), ValueError, 'max_units', '2**22'),
    'RBM log_prob over max_units': (wide_rbm, lambda m: m.log_prob(torch.zeros(2, 24, dtype=F64)), ValueError,
                                    'max_units', '2**22'),
    # ------------------------------------------------------------------ samplers: sample(x=…)
    'Gibbs Ising x 0.5': (ising, lambda m: GibbsSampler(m).sample(x=torch.full((2, 6), 0.5), n_steps=2), ValueError,
                          'x', '0.5'),
    'Gibbs Ising x bits': (ising, lambda m: GibbsSampler(m, scan='random').sample(x=(SPINS + 1) / 2, n_steps=2),
                           ValueError, 'x', '[-1.0, 1.0]'),
    'Gibbs Ising x wrong D': (ising, lambda m: GibbsSampler(m).sample(x=SPINS[:, :5], n_steps=2), ValueError, 'x', '(B, 6)'),
    'Gibbs Potts x label 3': (potts, lambda m: GibbsSampler(m).sample(x=torch.full((2, 6), 3.0), n_steps=2), ValueError,
                              'x', '3.0'),
    'Gibbs RBM x 0.5': (rbm, lambda m: GibbsSampler(m, dtype=F64).sample(x=torch.full((2, 5), 0.5, dtype=F64), n_steps=2),
                        ValueError, 'x', '0.5'),
    'GWG Ising x bits': (ising, lambda m: GibbsWithGradients(m).sample(x=(SPINS + 1) / 2, n_steps=2), ValueError, 'x',
                         "'spin'"),
    'GWG RBM x 0.5': (rbm, lambda m: GibbsWithGradients(m, dtype=F64).sample(x=torch.full((2, 5), 0.5, dtype=F64),
                                                                             n_steps=2), ValueError, 'x', '0.5'),
    'DMALA Ising x NaN': (ising, lambda m: DMALA(m).sample(x=torch.full((2, 6), NAN), n_steps=2), ValueError, 'x', 'nan'),
    'DMALA RBM x spins': (rbm, lambda m: DMALA(m, dtype=F64).sample(x=2 * BITS - 1, n_steps=2), ValueError, 'x',
                          "'binary'"),
    'GWG of a Potts model': (potts, lambda m: GibbsWithGradients(m), ValueError, 'model',
                             'site values (0, 1, 2)'),
    'DMALA of a Potts model': (potts, lambda m: DMALA(m).sample(n_samples=2, n_steps=2), ValueError, 'model',
                               'GibbsSampler'),
    'GWG Ising alphabet binary': (ising, lambda m: GibbsWithGradients(m, alphabet='binary'), ValueError, 'alphabet',
                                  "'binary'"),
    # ------------------------------------------------------------------ losses: data outside the alphabet
    'PLL spins 0.5': (ising, lambda m: PseudoLikelihoodLoss(m)(torch.full((2, 6), 0.5)), ValueError, 'x', '-1 and +1'),
    'PLL bits 2': (rbm, lambda m: PseudoLikelihoodLoss(m, states='binary', dtype=F64)(2 * BITS), ValueError, 'x',
                   '0s and 1s'),
    'RM bits NaN': (rbm, lambda m: RatioMatchingLoss(m, states='binary', dtype=F64)(BITS * NAN), ValueError, 'x',
                    '0s and 1s'),
    'RM spins 0': (ising, lambda m: RatioMatchingLoss(m)(torch.zeros(2, 6)), ValueError, 'x', '-1 and +1'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_discrete_input_is_refused_before_any_work(case):
    make, call, error, argument, words = CASES[case]
    model = make()
    with pytest.raises(error) as info:
        call(model)
    message = str(info.value)
    assert argument in message and words in message, message
    if hasattr(model, 'calls'): assert model.calls == 0, f"{case}: the model was evaluated {model.calls} times"


def test_sensible_values_still_work():
    "The same entry points accept states in the alphabet, and evaluate the model."
    m = ising()
    assert m(SPINS).shape == (2,) and m.local_fields(SPINS).shape == (2, 6)
    p = potts()
    assert p(LABELS).shape == (2,) and p.conditional_logits(LABELS).shape == (2, 6, 3)
    assert p.exact_marginals().shape == (6, 3)
    r = rbm()
    assert torch.equal(r.check_visible(BITS, values=True), BITS)
    assert torch.isfinite(r.log_prob(BITS)).all()
    assert wide_rbm().log_partition(max_units=22).isfinite()   # asked for explicitly: enumerated
    assert set(GibbsSampler(m).sample(x=SPINS, n_steps=2, generator=0).unique().tolist()) <= {-1.0, 1.0}
    assert set(GibbsSampler(p).sample(x=LABELS.float(), n_steps=2, generator=0).unique().tolist()) <= {0.0, 1.0, 2.0}
    for sampler in (GibbsWithGradients(m), DMALA(m), GibbsWithGradients(m, alphabet='spin')):
        assert set(sampler.sample(x=SPINS, n_steps=3, generator=0).unique().tolist()) <= {-1.0, 1.0}
    assert m.calls > 0 and p.calls > 0
    assert PseudoLikelihoodLoss(m)(SPINS).isfinite() and RatioMatchingLoss(r, states='binary', dtype=F64)(BITS).isfinite()
