"""Torch networks. Each is built from a plain config dict that is saved with its weights."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Standardize(nn.Module):
    """(x - mean) / std with the training split's statistics, kept as saved buffers."""

    def __init__(self, n_features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def fit(self, features: torch.Tensor) -> None:
        self.mean.copy_(features.mean(0))
        self.std.copy_(features.std(0, unbiased=False) + 1e-6)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std  # (B, F)


class MLP(nn.Module):
    """Fully connected layers with ReLU and dropout: (B, F) -> (B, out)."""

    def __init__(self, n_inputs: int, n_outputs: int, hidden_sizes: list[int], dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_inputs
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_outputs)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(features))  # (B, out)


NETS: dict[str, type[nn.Module]] = {"mlp": MLP}


def build_net(config: dict[str, Any]) -> nn.Module:
    """Build a network from {'kind': name, **constructor kwargs}."""
    kwargs = dict(config)
    return NETS[kwargs.pop("kind")](**kwargs)
