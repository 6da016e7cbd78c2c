"""Data augmentation for image-shaped rows: random shifts, small rotations, noise, and for
photos horizontal flips, random crops resized back and colour jitter.

Torch ops on whole batches (no torchvision), seeded by the training generator, applied
to training batches only. Flips, crops and rotations are one affine grid per batch; a
transform that is off draws no random numbers, so turning on a new one leaves the draws
of the others as they were.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name

from reprotrain.config import AugmentParams

# ITU-R 601 luma weights: the grey an RGB pixel has (saturation jitter blends towards it)
LUMA = (0.299, 0.587, 0.114)


def _uniform(n_rows: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + torch.rand(n_rows, generator=generator) * (high - low)


def _crop_and_flip(
    params: AugmentParams, n_rows: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image: x and y scale of the sampling grid (a crop of `scale**2` of the area,
    flipped when x's is negative) and the crop's centre offset, in [-1, 1] coordinates."""
    scale = torch.ones(n_rows)
    offset = torch.zeros(n_rows, 2)
    if params.crop_scale < 1:
        scale = _uniform(n_rows, params.crop_scale, 1.0, generator).sqrt()
        # the crop stays inside the image: its centre moves at most 1 - side
        offset = (torch.rand(n_rows, 2, generator=generator) * 2 - 1) * (1 - scale)[:, None]
    x_scale = scale
    if params.flip:
        flips = torch.rand(n_rows, generator=generator) < 0.5
        x_scale = torch.where(flips, -scale, scale)
    return x_scale, scale, offset


def _jitter(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and (RGB) saturation, each scaled by a factor in [1-s, 1+s]."""
    n_rows, channels = images.shape[:2]

    def factor() -> torch.Tensor:
        drawn = _uniform(n_rows, 1 - strength, 1 + strength, generator)
        return drawn.to(images.device, images.dtype)[:, None, None, None]  # (B, 1, 1, 1)

    images = images * factor()  # brightness
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = mean + (images - mean) * factor()  # contrast
    if channels == 3:
        luma = torch.tensor(LUMA, device=images.device, dtype=images.dtype)[None, :, None, None]
        grey = (images * luma).sum(1, keepdim=True)  # (B, 1, H, W)
        images = grey + (images - grey) * factor()  # saturation
    return images


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
        x_scale, y_scale, offset = _crop_and_flip(params, n_rows, generator)
        shift = shift + offset
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(
            [
                torch.stack([cos * x_scale, -sin * y_scale, shift[:, 0]], 1),
                torch.stack([sin * x_scale, cos * y_scale, shift[:, 1]], 1),
            ],
            1,
        ).to(batch.device, batch.dtype)  # (B, 2, 3)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        moved = F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)
        if params.color_jitter > 0:
            moved = _jitter(moved, params.color_jitter, generator)
        if noise_std > 0:
            noise = torch.randn(moved.shape, generator=generator) * noise_std
            moved = moved + noise.to(batch.device, batch.dtype)
        return moved.reshape(n_rows, -1)

    return augment
