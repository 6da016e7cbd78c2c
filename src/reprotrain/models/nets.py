"""Torch networks. Each is built from a plain config dict that is saved with its weights."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Standardize(nn.Module):
    """(x - mean) / std with the training split's statistics, kept as saved buffers."""

    def __init__(self, n_features: int):
        super().__init__()
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def fit(self, features: torch.Tensor, per_feature: bool = True) -> None:
        """Per-feature statistics for tabular data; one shared mean/std for images, whose
        always-blank border pixels (std 0) would blow up once augmentation moves ink there."""
        if per_feature:
            self.mean.copy_(features.mean(0))
            self.std.copy_(features.std(0, unbiased=False) + 1e-6)
        else:
            self.mean.fill_(float(features.mean()))
            self.std.fill_(float(features.std(unbiased=False)) + 1e-6)

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
        self.output_name = "head"  # the layer a new label set replaces (transfer learning)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(features))  # (B, out)


class CNN(nn.Module):
    """Conv blocks then a small head, for image-shaped rows: (B, C*H*W) -> (B, out).

    Rows arrive flat (as every model sees them) and are viewed as (B, C, H, W).
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        image_shape: list[int],
        channels: list[int],
        kernel_size: int,
        hidden: int,
        dropout: float,
    ):
        super().__init__()
        in_channels, height, width = image_shape
        if in_channels * height * width != n_inputs:
            raise ValueError(f"image_shape {image_shape} does not match {n_inputs} features")
        self.image_shape = tuple(image_shape)
        layers: list[nn.Module] = []
        for out_channels in channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
            ]
            in_channels = out_channels
        if height >= 2 and width >= 2:
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        self.features = nn.Sequential(*layers)
        flat = in_channels * height * width
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(flat, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_outputs),
        )
        # The layer a new label set replaces (transfer learning); the rest is the backbone.
        self.output_name = f"head.{len(self.head) - 1}"

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        images = rows.view(len(rows), *self.image_shape)  # (B, C, H, W)
        return self.head(self.features(images))  # (B, out)


NETS: dict[str, type[nn.Module]] = {"mlp": MLP, "cnn": CNN}


def build_net(config: dict[str, Any]) -> nn.Module:
    """Build a network from {'kind': name, **constructor kwargs}."""
    kwargs = dict(config)
    return NETS[kwargs.pop("kind")](**kwargs)
