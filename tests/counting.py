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
