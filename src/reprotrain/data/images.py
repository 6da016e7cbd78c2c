"""A folder of images, one subfolder per class, as a frame of pixel columns.

Each image is decoded with Pillow, converted to grayscale or RGB and resized to the size
in params. Pixels become uint8 columns named like digits' `pixel_<row>_<col>` (with the
channel first when there are several: `pixel_<channel>_<row>_<col>`), flattened in
(channel, row, col) order, so `reshape(-1, C, H, W)` gives the image back and every
stage after `prepare` treats images as ordinary numeric features.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from reprotrain.config.errors import UserError

log = logging.getLogger(__name__)

SUFFIXES = (".png", ".jpg", ".jpeg")
MODES = {"grayscale": ("L", 1), "rgb": ("RGB", 3)}


def image_files(folder: Path) -> list[tuple[str, Path]]:
    """(class name, file) for every PNG/JPEG in the class subfolders, in sorted order."""
    if not folder.is_dir():
        raise UserError(f"{folder}: image folder not found (prepare.source)")
    classes = sorted(path for path in folder.iterdir() if path.is_dir())
    if not classes:
        raise UserError(
            f"{folder}: no class subfolders; allowed: one subfolder of PNG/JPEG images per class"
        )
    files: list[tuple[str, Path]] = []
    skipped = 0
    for class_dir in classes:
        for path in sorted(class_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in SUFFIXES:
                files.append((class_dir.name, path))
            elif not path.name.startswith("."):
                skipped += 1
    if skipped:
        log.info("skipped %d files that are not %s", skipped, "/".join(SUFFIXES))
    if not files:
        raise UserError(
            f"{folder}: no images found; allowed: {', '.join(SUFFIXES)} files in class subfolders"
        )
    return files


def decode(path: Path, size: tuple[int, int], mode: str) -> np.ndarray:
    """One image as a (C, H, W) uint8 array; an undecodable file is a UserError."""
    from PIL import Image, UnidentifiedImageError

    pil_mode, _ = MODES[mode]
    height, width = size
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later
            resized = image.convert(pil_mode).resize((width, height), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UserError(
            f"{path}: cannot decode image ({type(exc).__name__}); allowed: PNG or JPEG files"
        ) from None
    pixels = np.asarray(resized, dtype=np.uint8)
    return pixels[np.newaxis] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def pixel_names(channels: int, height: int, width: int) -> list[str]:
    if channels == 1:
        return [f"pixel_{row}_{col}" for row in range(height) for col in range(width)]
    return [
        f"pixel_{channel}_{row}_{col}"
        for channel in range(channels)
        for row in range(height)
        for col in range(width)
    ]


def load_image_folder(
    folder: Path, target: str, size: tuple[int, int], mode: str
) -> tuple[pd.DataFrame, list[int]]:
    """Pixel columns plus the class name in `target`; and the image shape [C, H, W]."""
    files = image_files(folder)
    channels = MODES[mode][1]
    height, width = size
    pixels = np.empty((len(files), channels * height * width), dtype=np.uint8)
    for row, (_, path) in enumerate(files):
        pixels[row] = decode(path, size, mode).reshape(-1)
    names = pixel_names(channels, height, width)
    if target in names:
        raise UserError(
            f"params.yaml: prepare.target: {target!r} clashes with a pixel column; "
            "allowed: another name, e.g. label"
        )
    frame = pd.DataFrame(pixels, columns=names, copy=False)
    frame[target] = pd.Categorical([label for label, _ in files])
    log.info("read %d images of %d classes from %s", len(files), frame[target].nunique(), folder)
    return frame, [channels, height, width]
