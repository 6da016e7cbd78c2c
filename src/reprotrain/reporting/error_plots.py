"""The dev mistakes of image data as a PNG grid of thumbnails with their labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reprotrain.reporting import plots

MISTAKES_PNG = "dev_mistakes.png"
COLUMNS = 4


def mistakes_figure(images: np.ndarray, titles: list[str], heading: str) -> Any:
    """A grid of (N, C, H, W) images, one title each. Pixel values up to 16 are digits'
    ink (dark on light); otherwise 0-255 intensities."""
    import matplotlib.pyplot as plt

    ink = images.max() <= 16

    n_rows = max(1, -(-len(images) // COLUMNS))
    figure, axes = plt.subplots(n_rows, COLUMNS, figsize=(2.2 * COLUMNS, 2.5 * n_rows))
    for axis in np.atleast_1d(axes).ravel():
        axis.axis("off")
    for axis, image, title in zip(np.atleast_1d(axes).ravel(), images, titles, strict=False):
        if image.shape[0] == 1:
            cmap, top = ("gray_r", 16) if ink else ("gray", 255)
            axis.imshow(image[0], cmap=cmap, vmin=0, vmax=top)
        else:
            axis.imshow(np.clip(image.transpose(1, 2, 0), 0, 255).astype(np.uint8))
        axis.set_title(title, fontsize=9)
    figure.suptitle(heading)
    figure.tight_layout()
    return figure


def write_mistakes_grid(directory: Path, analysis: dict[str, Any] | None, title: str) -> str | None:
    """The grid of the mistaken dev images of an analysis (metrics.dev_errors) into
    `directory`; its file name, or None for tabular data or when there is no mistake."""
    if not analysis or not analysis["summary.json"].get("image_shape"):
        return None
    table = analysis["mistakes.csv"]
    if table.empty:
        return None
    shape = analysis["summary.json"]["image_shape"]
    pixels = table.filter(like="pixel_").to_numpy(dtype=np.float64).reshape(-1, *shape)
    if analysis["summary.json"]["task"] == "classification":
        titles = [
            f"true {row.true} → {row.predicted}\np={row.p_predicted:.2f} (dev row {row.dev_row})"
            for row in table.itertuples()
        ]
    else:
        titles = [
            f"true {row.true:.3g} → {row.predicted:.3g}\n(dev row {row.dev_row})"
            for row in table.itertuples()
        ]
    heading = f"Most confident mistakes on dev ({title} model)"
    plots.save(mistakes_figure(pixels, titles, heading), directory / MISTAKES_PNG)
    return MISTAKES_PNG
