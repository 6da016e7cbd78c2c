"""Data augmentation for image-shaped rows: random shifts, small rotations, noise.

Torch ops on whole batches (no torchvision), seeded by the training generator, applied
to training batches only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name

from reprotrain.config import AugmentParams


def make_augment(params: AugmentParams, image_shape: list[int], pixel_std: float):
    """A function batch -> augmented batch, or None when augmentation is off."""
    if not params.enabled:
        return None
    shape = tuple(image_shape)
    max_angle = math.radians(params.rotate)
    noise_std = params.noise * pixel_std

    def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n_rows = len(batch)
        images = batch.view(n_rows, *shape)  # (B, C, H, W)
        angle = (torch.rand(n_rows, generator=generator) * 2 - 1) * max_angle
        # affine_grid works in [-1, 1] coordinates: a shift of f of the side is 2f.
        shift = (torch.rand(n_rows, 2, generator=generator) * 2 - 1) * (2 * params.shift)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        ).to(batch.device, batch.dtype)  # (B, 2, 3)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        moved = F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)
        if noise_std > 0:
            noise = torch.randn(moved.shape, generator=generator) * noise_std
            moved = moved + noise.to(batch.device, batch.dtype)
        return moved.reshape(n_rows, -1)

    return augment
