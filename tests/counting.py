"""Models that count their evaluations, shared by the bad-input tests: each case asserts the error came before the model
was evaluated (`model.calls == 0`)."""
import torch
from torch import nn

from torchebm_nb.core import BaseModel


class CountingEnergy(BaseModel):
    "A quadratic energy with one parameter that counts its evaluations."
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.calls = 0
    def forward(self, x, *args, **kwargs):
        self.calls += 1
        return 0.5 * self.scale * x.pow(2).flatten(1).sum(-1)


class CountingVelocity(nn.Module):
    "A velocity field v(x, t) that counts its evaluations."
    def __init__(self):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(()))
        self.calls = 0
    def forward(self, x, t, *args, **kwargs):
        self.calls += 1
        return x * 0 + self.shift


class CountingGaussian(BaseModel):
    "A standard normal energy (no parameters) that counts its evaluations."
    def __init__(self):
        super().__init__()
        self.calls = 0
    def forward(self, x):
        self.calls += 1
        return 0.5 * x.pow(2).sum(-1)


# The discrete models (issue 16), counting every method that reads the model: its energy and its conditionals.
from torchebm_nb.models import RBM, IsingModel, PottsModel


class CountingIsing(IsingModel):
    "An Ising model that counts its evaluations (energies and local fields)."
    calls = 0
    def forward(self, s): self.calls += 1; return super().forward(s)
    def local_fields(self, s): self.calls += 1; return super().local_fields(s)


class CountingPotts(PottsModel):
    "A Potts model that counts its evaluations (energies and conditional logits)."
    calls = 0
    def forward(self, sigma): self.calls += 1; return super().forward(sigma)
    def conditional_logits(self, sigma): self.calls += 1; return super().conditional_logits(sigma)


class CountingRBM(RBM):
    "An RBM that counts its evaluations: free energies, hidden probabilities and conditional draws."
    calls = 0
    def forward(self, v): self.calls += 1; return super().forward(v)
    def hidden_probs(self, v): self.calls += 1; return super().hidden_probs(v)
    def sample_hidden(self, v, generator=None): self.calls += 1; return super().sample_hidden(v, generator)
    def sample_visible(self, h, generator=None): self.calls += 1; return super().sample_visible(h, generator)
