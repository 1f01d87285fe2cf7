"""Analytic energies refuse NaN/inf in every numeric parameter and values outside the parameter's domain, with a
ValueError that starts with the parameter's name and shows the value (issue 14: "NaN/inf in model parameters"); and
`annealed_importance_sampling` names `dim` (and the model's dimension) when `dim` does not fit the model."""
import math

import pytest
import torch

from torchebm_nb.core import (AckleyModel, BaseModel, BoothModel, CompositeModel, DoubleWellModel, GaussianModel,
                              HarmonicModel, HimmelblauModel, RastriginModel, RosenbrockModel)
from torchebm_nb.samplers import annealed_importance_sampling

nan, inf = math.nan, math.inf
EYE = torch.eye(2)

CASES = {  # name: (call, argument named, expected words)
    'DoubleWell barrier_height=nan': (lambda: DoubleWellModel(barrier_height=nan), 'barrier_height', 'must be finite; got nan'),
    'DoubleWell barrier_height=inf': (lambda: DoubleWellModel(barrier_height=inf), 'barrier_height', 'must be finite; got inf'),
    'DoubleWell barrier_height=0': (lambda: DoubleWellModel(barrier_height=0.0), 'barrier_height', 'must be positive; got 0.0'),
    'DoubleWell barrier_height=-1': (lambda: DoubleWellModel(barrier_height=-1.0), 'barrier_height', 'must be positive; got -1.0'),
    'DoubleWell b=nan': (lambda: DoubleWellModel(b=nan), 'b', 'must be finite; got nan'),
    'DoubleWell b=-inf': (lambda: DoubleWellModel(b=-inf), 'b', 'must be finite; got -inf'),
    'Gaussian mean [nan, 0]': (lambda: GaussianModel(torch.tensor([nan, 0.0]), EYE), 'mean', 'must be finite; got [nan, 0.0]'),
    'Gaussian mean [0, -inf]': (lambda: GaussianModel(torch.tensor([0.0, -inf]), EYE), 'mean', 'must be finite; got [0.0, -inf]'),
    'Gaussian cov with nan': (lambda: GaussianModel(torch.zeros(2), torch.tensor([[1.0, nan], [nan, 1.0]])), 'cov', 'must be finite; got [[1.0, nan]'),
    'Gaussian cov with inf': (lambda: GaussianModel(torch.zeros(2), torch.tensor([[inf, 0.0], [0.0, 1.0]])), 'cov', 'must be finite'),
    'Gaussian cov not symmetric': (lambda: GaussianModel(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]])), 'cov', 'must be symmetric; got [[1.0, 0.5], [0.0, 1.0]]'),
    'Gaussian cov singular': (lambda: GaussianModel(torch.zeros(2), torch.ones(2, 2)), 'cov', 'must be positive definite'),
    'Gaussian cov negative definite': (lambda: GaussianModel(torch.zeros(2), -EYE), 'cov', 'must be positive definite'),
    'Gaussian cov zero': (lambda: GaussianModel(torch.zeros(2), torch.zeros(2, 2)), 'cov', 'got [[0.0, 0.0], [0.0, 0.0]]'),
    'Gaussian large mean summarised': (lambda: GaussianModel(torch.full((20,), nan), torch.eye(20)), 'mean', 'tensor of shape (20,) with 20 non-finite entries'),
    'Harmonic k=nan': (lambda: HarmonicModel(k=nan), 'k', 'must be finite; got nan'),
    'Harmonic k=inf': (lambda: HarmonicModel(k=inf), 'k', 'must be finite'),
    'Harmonic k=0': (lambda: HarmonicModel(k=0.0), 'k', 'must be positive; got 0.0'),
    'Rosenbrock a=nan': (lambda: RosenbrockModel(a=nan), 'a', 'must be finite; got nan'),
    'Rosenbrock b=inf': (lambda: RosenbrockModel(b=inf), 'b', 'must be finite'),
    'Rosenbrock b=0': (lambda: RosenbrockModel(b=0.0), 'b', 'must be positive; got 0.0'),
    'Rosenbrock b=-100': (lambda: RosenbrockModel(b=-100.0), 'b', 'must be positive; got -100.0'),
    'Ackley a=nan': (lambda: AckleyModel(a=nan), 'a', 'must be finite'),
    'Ackley a=0': (lambda: AckleyModel(a=0.0), 'a', 'must be positive; got 0.0'),
    'Ackley b=-0.2': (lambda: AckleyModel(b=-0.2), 'b', 'must be positive; got -0.2'),
    'Ackley b=inf': (lambda: AckleyModel(b=inf), 'b', 'must be finite'),
    'Ackley c=nan': (lambda: AckleyModel(c=nan), 'c', 'must be finite'),
    'Rastrigin a=nan': (lambda: RastriginModel(a=nan), 'a', 'must be finite'),
    'Rastrigin a=-10': (lambda: RastriginModel(a=-10.0), 'a', 'must be ≥ 0; got -10.0'),
    'Composite weight nan': (lambda: CompositeModel([DoubleWellModel(), HarmonicModel()], [1.0, nan]), 'weights[1]', 'must be finite; got nan'),
    'Composite weight inf': (lambda: CompositeModel([DoubleWellModel()], [inf]), 'weights[0]', 'must be finite'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_parameters_are_refused(case):
    call, name, words = CASES[case]
    with pytest.raises(ValueError) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(name) and words in message, message


TYPE_CASES = {
    'DoubleWell b="1"': (lambda: DoubleWellModel(b='1'), 'b'),
    'Harmonic k=True': (lambda: HarmonicModel(k=True), 'k'),
    'Gaussian mean list': (lambda: GaussianModel([0.0, 0.0], EYE), 'mean'),
    'Composite weight str': (lambda: CompositeModel([DoubleWellModel()], ['2']), 'weights[0]'),
}


@pytest.mark.parametrize('case', list(TYPE_CASES))
def test_parameters_of_the_wrong_type_are_refused(case):
    call, name = TYPE_CASES[case]
    with pytest.raises(TypeError) as caught:
        call()
    assert str(caught.value).startswith(name), str(caught.value)


def test_sensible_parameters_still_work():
    x = torch.tensor([[0.5, -0.5]], dtype=torch.float64)
    assert DoubleWellModel(barrier_height=3.0, b=0.0).barrier_height == 3.0        # b = 0: one quartic well
    assert torch.isfinite(GaussianModel(torch.tensor([1.0, -1.0]), torch.tensor([[2.0, 0.3], [0.3, 1.0]]))(x)).all()
    assert HarmonicModel(k=1e-6).k == 1e-6
    assert RosenbrockModel(a=-2.0, b=1e-3).b == 1e-3
    assert AckleyModel(a=1.0, b=1.0, c=-3.0).c == -3.0
    assert RastriginModel(a=0.0)(x).item() == pytest.approx(0.5)
    assert CompositeModel([DoubleWellModel(), HarmonicModel()], [1.0, -0.5]).weights == [1.0, -0.5]


class CountingGaussian(GaussianModel):
    "A GaussianModel that counts its evaluations."
    calls = 0
    def forward(self, x):
        CountingGaussian.calls += 1
        return super().forward(x)


class CountingBooth(BoothModel):
    calls = 0
    def forward(self, x):
        CountingBooth.calls += 1
        return super().forward(x)


class MeanModel(BaseModel):
    "A non-analytic model that carries a 1-D `mean` (its dimension is known from it)."
    calls = 0
    def __init__(self, d):
        super().__init__()
        self.mean = torch.zeros(d)
    def forward(self, x):
        MeanModel.calls += 1
        return 0.5 * x.square().sum(-1)


AIS_CASES = {  # name: (make model, kwargs, exception, argument named, expected words)
    'dim=3 on a 2-D Gaussian': (lambda: CountingGaussian(torch.zeros(2), EYE), dict(dim=3), ValueError, 'dim',
                                'event dimension 3, but CountingGaussian needs last dimension 2'),
    'dim=3 on Booth (2-D only)': (lambda: CountingBooth(), dict(dim=3), ValueError, 'dim', '2-D only'),
    'dim=3 on Himmelblau': (lambda: HimmelblauModel(), dict(dim=3), ValueError, 'dim', 'even dimension'),
    'dim=1 on Rosenbrock': (lambda: RosenbrockModel(), dict(dim=1), ValueError, 'dim', 'at least 2 dimensions'),
    'dim=3 on a model with a 2-D mean': (lambda: MeanModel(2), dict(dim=3), ValueError, 'dim', 'the model has dimension 2'),
    'dim against base': (lambda: DoubleWellModel(), dict(dim=3, base=GaussianModel(torch.zeros(2), EYE)), ValueError, 'dim',
                         'dim=3 but base has dimension 2'),
    'base of another size than the model': (lambda: CountingGaussian(torch.zeros(3), torch.eye(3)),
                                            dict(base=GaussianModel(torch.zeros(2), EYE)), ValueError, 'dim', 'needs last dimension 3'),
    'dim=0': (lambda: DoubleWellModel(), dict(dim=0), ValueError, 'dim', 'must be ≥ 1'),
    'dim=2.0': (lambda: DoubleWellModel(), dict(dim=2.0), TypeError, 'dim', 'must be an int'),
    'dim missing': (lambda: DoubleWellModel(), dict(), ValueError, 'dim', 'must be provided'),
    'n_samples=1': (lambda: CountingGaussian(torch.zeros(2), EYE), dict(n_samples=1), ValueError, 'n_samples', 'must be ≥ 2'),
    'n_steps=0': (lambda: CountingGaussian(torch.zeros(2), EYE), dict(n_steps=0), ValueError, 'n_steps', 'must be ≥ 1'),
    'n_temperatures=0': (lambda: CountingGaussian(torch.zeros(2), EYE), dict(n_temperatures=0), ValueError, 'n_temperatures', 'must be ≥ 1'),
    'schedule name': (lambda: CountingGaussian(torch.zeros(2), EYE), dict(schedule='cubic'), ValueError, 'schedule', "must be 'linear'"),
    'schedule with nan': (lambda: CountingGaussian(torch.zeros(2), EYE), dict(schedule=[0.0, nan, 1.0]), ValueError, 'schedule', 'strictly increasing'),
    'schedule not ending at 1': (lambda: CountingGaussian(torch.zeros(2), EYE), dict(schedule=[0.0, 0.5]), ValueError, 'schedule', 'from 0 to 1; got [0.0, 0.5]'),
    'step_size=nan': (lambda: CountingGaussian(torch.zeros(2), EYE), dict(step_size=nan), ValueError, 'step_size', 'must be finite'),
    'step_size=0': (lambda: CountingGaussian(torch.zeros(2), EYE), dict(step_size=0.0), ValueError, 'step_size', 'must be positive'),
    'transition not callable': (lambda: CountingGaussian(torch.zeros(2), EYE), dict(transition='mala'), TypeError, 'transition', 'must be a callable'),
}


@pytest.mark.parametrize('case', list(AIS_CASES))
def test_ais_names_the_argument(case):
    make, kwargs, error, name, words = AIS_CASES[case]
    model = make()
    for cls in (CountingGaussian, CountingBooth, MeanModel): cls.calls = 0
    with pytest.raises(error) as caught:
        annealed_importance_sampling(model, n_samples=kwargs.pop('n_samples', 8), n_temperatures=kwargs.pop('n_temperatures', 3),
                                     **kwargs)
    message = str(caught.value)
    assert message.startswith(name) and words in message, message
    assert CountingGaussian.calls == CountingBooth.calls == MeanModel.calls == 0      # the model was never evaluated


def test_ais_with_sensible_dimensions_still_runs():
    model = CountingGaussian(torch.zeros(2), EYE)
    result = annealed_importance_sampling(model, n_samples=16, n_temperatures=3, dim=2, generator=0)
    assert result.samples.shape == (16, 2) and math.isfinite(result.log_z)
    assert annealed_importance_sampling(MeanModel(3), n_samples=8, n_temperatures=2, generator=0).samples.shape == (8, 3)
    assert annealed_importance_sampling(BoothModel(), n_samples=8, n_temperatures=2, dim=2, generator=0).samples.shape == (8, 2)
