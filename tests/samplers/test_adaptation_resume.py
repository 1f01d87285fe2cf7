"""A warm-up interrupted after k iterations, saved to a file, loaded into a fresh `WindowAdaptation` and continued gives a
result bit-identical to a straight `window_adaptation` (issue 14: resume from every point a user can save at)."""
import pytest
import torch

from torchebm_nb.core import GaussianModel, HarmonicModel
from torchebm_nb.samplers import HamiltonianMonteCarlo, MetropolisAdjustedLangevin, NoUTurnSampler, window_adaptation
from torchebm_nb.samplers.adaptation import WindowAdaptation, adaptation_windows

N_WARMUP = 60
WINDOWS = adaptation_windows(N_WARMUP)   # [(9, 54)] for 60 iterations: the slow window and the final fast phase
SKEWED = GaussianModel(torch.zeros(3), torch.diag(torch.tensor([0.1, 1.0, 4.0])))
SAMPLERS = {'mala': lambda: MetropolisAdjustedLangevin(SKEWED, step_size=0.05),
            'hmc': lambda: HamiltonianMonteCarlo(SKEWED, step_size=0.05, n_leapfrog_steps=3),
            'nuts': lambda: NoUTurnSampler(SKEWED, step_size=0.05, max_tree_depth=4)}
START = torch.randn(16, 3, generator=torch.Generator().manual_seed(1))
# k = 0 (before any iteration), early, inside the slow window, at its end (the mass update), in the last phase, the end
STOPS = [0, 1, 5, WINDOWS[0][0], 30, WINDOWS[0][1], WINDOWS[0][1] + 1, N_WARMUP - 1, N_WARMUP]


def _same(a, b):
    assert torch.equal(a.x, b.x)
    assert a.step_size == b.step_size and a.step_sizes == b.step_sizes and a.acceptance_rate == b.acceptance_rate
    assert (a.mass is None and b.mass is None) or torch.equal(torch.as_tensor(a.mass), torch.as_tensor(b.mass))


@pytest.fixture(scope='module')
def straight():
    return {(name, mass): window_adaptation(make(), START, N_WARMUP, adapt_mass=mass, generator=2)
            for name, make in SAMPLERS.items() for mass in (False, True)}


@pytest.mark.parametrize('adapt_mass', [False, True])
@pytest.mark.parametrize('k', STOPS)
@pytest.mark.parametrize('name', list(SAMPLERS))
def test_resume_after_k_iterations_is_bit_identical(name, k, adapt_mass, straight, tmp_path):
    first = WindowAdaptation(SAMPLERS[name](), START, N_WARMUP, adapt_mass=adapt_mass, generator=2)
    out = first.run(k)
    assert (out is None) == (k < N_WARMUP)
    path = tmp_path / 'warmup.pt'
    torch.save(first.state_dict(), path)
    fresh_sampler = SAMPLERS[name]()
    resumed = WindowAdaptation(fresh_sampler, START, N_WARMUP, adapt_mass=adapt_mass, generator=123)
    resumed.load_state_dict(torch.load(path, weights_only=True))
    result = resumed.run()
    _same(result, straight[name, adapt_mass])
    assert fresh_sampler.schedulers['step_size'].get_value() == result.step_size   # the fresh sampler is tuned
    _same(first.run(), straight[name, adapt_mass])   # the object that was saved goes on unchanged by the saving


@pytest.mark.parametrize('pieces', [[7, 13, 40], [1] * N_WARMUP, [54, 0, 6]])
def test_many_saves_in_a_row(pieces, straight, tmp_path):
    adaptation, result = WindowAdaptation(SAMPLERS['mala'](), START, N_WARMUP, adapt_mass=True, generator=2), None
    for j, n in enumerate(pieces):
        result = adaptation.run(n)
        torch.save(adaptation.state_dict(), tmp_path / 'w.pt')
        adaptation = WindowAdaptation(SAMPLERS['mala'](), START, N_WARMUP, adapt_mass=True, generator=j + 50)
        adaptation.load_state_dict(torch.load(tmp_path / 'w.pt', weights_only=True))
    _same(adaptation.run(), straight['mala', True])


def test_global_rng_resume_is_bit_identical(tmp_path):
    torch.manual_seed(5)
    reference = window_adaptation(SAMPLERS['hmc'](), START, N_WARMUP)
    torch.manual_seed(5)
    first = WindowAdaptation(SAMPLERS['hmc'](), START, N_WARMUP)
    first.run(17)
    torch.save(first.state_dict(), tmp_path / 'w.pt')
    torch.manual_seed(999)
    resumed = WindowAdaptation(SAMPLERS['hmc'](), START, N_WARMUP)
    resumed.load_state_dict(torch.load(tmp_path / 'w.pt', weights_only=True))
    _same(resumed.run(), reference)


def test_resume_from_random_starting_points(tmp_path):
    reference = window_adaptation(SAMPLERS['mala'](), None, N_WARMUP, dim=3, n_samples=8, generator=4)
    first = WindowAdaptation(SAMPLERS['mala'](), None, N_WARMUP, dim=3, n_samples=8, generator=4)
    torch.save(first.state_dict(), tmp_path / 'w.pt')   # saved before run(): the drawn starting points are kept
    resumed = WindowAdaptation(SAMPLERS['mala'](), None, N_WARMUP, dim=3, n_samples=8, generator=9)
    resumed.load_state_dict(torch.load(tmp_path / 'w.pt', weights_only=True))
    _same(resumed.run(), reference)


BAD_STATES = {  # name: (change to a good state dict, exception, words)
    'not a dict': (lambda s: 3, TypeError, 'state_dict must be a dict'),
    'missing rng': (lambda s: {k: v for k, v in s.items() if k != 'rng'}, ValueError, "missing entries ['rng']"),
    'unknown entry': (lambda s: {**s, 'speed': 1}, ValueError, "unknown entries ['speed']"),
    'other n_warmup': (lambda s: {**s, 'n_warmup': 80}, ValueError, 'n_warmup=80'),
    'other adapt_mass': (lambda s: {**s, 'adapt_mass': True}, ValueError, 'adapt_mass=True'),
    'iteration too far': (lambda s: {**s, 'iteration': N_WARMUP + 1}, ValueError, "state_dict['iteration'] must be"),
    'controller not a dict': (lambda s: {**s, 'controller': 1.0}, TypeError, 'state_dict must be a dict'),
    'other target_accept': (lambda s: {**s, 'controller': {**s['controller'], 'target_accept': 0.9}}, ValueError, 'target_accept=0.9'),
}


@pytest.mark.parametrize('case', list(BAD_STATES))
def test_bad_saved_states_are_refused_and_change_nothing(case):
    change, error, words = BAD_STATES[case]
    saved = WindowAdaptation(SAMPLERS['hmc'](), START, N_WARMUP, generator=2)
    saved.run(10)
    target = WindowAdaptation(SAMPLERS['hmc'](), START, N_WARMUP, generator=2)
    target.run(3)
    with pytest.raises(error) as caught:
        target.load_state_dict(change(saved.state_dict()))
    assert words in str(caught.value), str(caught.value)
    assert target.iteration == 3 and len(target.step_sizes) == 3


def test_the_function_is_the_object_run_to_the_end():
    a = window_adaptation(HamiltonianMonteCarlo(HarmonicModel(), 0.01), dim=2, n_samples=8, n_warmup=30, generator=3)
    b = WindowAdaptation(HamiltonianMonteCarlo(HarmonicModel(), 0.01), dim=2, n_samples=8, n_warmup=30, generator=3).run()
    _same(a, b)
