"""Bootstrap resamples as count matrices: a resample of n rows is a vector of how often
each row was drawn, so a score over many resamples is one matrix product. Used for the
test-set intervals (metrics.bootstrap) and the dev slices (metrics.dev_errors)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# Rows of the count matrix held in memory at once: resamples * rows <= this.
CHUNK_CELLS = 2_000_000


def resample_counts(n_rows: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """(chunk, n_rows) matrices of draw counts; each row sums to n_rows."""
    rng = np.random.default_rng(seed)
    chunk = max(1, CHUNK_CELLS // max(n_rows, 1))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        draws = rng.integers(0, n_rows, size=(size, n_rows))
        offsets = np.arange(size)[:, None] * n_rows
        flat = np.bincount((draws + offsets).ravel(), minlength=size * n_rows)
        yield flat.reshape(size, n_rows).astype(np.float64)
