"""LangevinDynamics (and the MCMC samplers sharing BaseSampler) beyond the notebook: dim inference."""
import torch



def test_every_mcmc_sampler_infers_dim_from_a_gaussian():
    "BaseSampler.infer_event_shape: a model with a `mean` gives the event shape, for Langevin as for HMC."
    from torchebm_nb.core import GaussianModel
    from torchebm_nb.samplers import HamiltonianMonteCarlo, LangevinDynamics
    model = GaussianModel(torch.zeros(3), torch.eye(3))
    for sampler in (LangevinDynamics(model, step_size=0.1), HamiltonianMonteCarlo(model, step_size=0.1)):
        assert sampler.sample(n_samples=5, n_steps=2).shape == (5, 3)
